// The sampler's fast paths against (1) the published sampler vectors of llama.cpp's
// tests/test-sampling.cpp, re-derived here as data (test_top_k / test_top_p / test_min_p on
// probs {0.1, 0.2, 0.3, 0.4}, and test_sampler_queue on logits log(id) over 10,000 tokens), and
// (2) a plain full-sort sampler written independently below: same seed → same token, on
// 1,200 random draws (400 rows).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "sampling/logits_processor.h"
#include "sampling/sampler.h"

namespace kiln::sampling {
namespace {

std::vector<float> Normalised(std::span<const Sampler::Candidate> kept) {
  double z = 0;
  for (const auto& c : kept) z += c.p;
  std::vector<float> out;
  for (const auto& c : kept) out.push_back(static_cast<float>(c.p / z));
  return out;
}

struct VectorCase {
  SamplingParams params;
  std::vector<float> expected;  // kept probabilities, best first, renormalised
};

TEST(SamplerVectorsTest, LlamaCppTopKTopPMinP) {
  const std::vector<float> probs = {0.1f, 0.2f, 0.3f, 0.4f};
  std::vector<float> logits;
  for (float p : probs) logits.push_back(std::log(p));
  const std::vector<VectorCase> cases = {
      {{.temperature = 1, .top_k = 1}, {1.0f}},
      {{.temperature = 1, .top_k = 3}, {0.44444f, 0.33333f, 0.22222f}},
      {{.temperature = 1, .top_k = 4}, {0.4f, 0.3f, 0.2f, 0.1f}},
      {{.temperature = 1, .top_k = 0}, {0.4f, 0.3f, 0.2f, 0.1f}},
      {{.temperature = 1, .top_p = 0.0f}, {1.0f}},
      {{.temperature = 1, .top_p = 0.7f}, {0.571429f, 0.428571f}},
      {{.temperature = 1, .top_p = 0.8f}, {0.44444f, 0.33333f, 0.22222f}},
      {{.temperature = 1, .top_p = 1.0f}, {0.4f, 0.3f, 0.2f, 0.1f}},
      {{.temperature = 1, .min_p = 0.00f}, {0.4f, 0.3f, 0.2f, 0.1f}},
      {{.temperature = 1, .min_p = 0.24f}, {0.4f, 0.3f, 0.2f, 0.1f}},
      {{.temperature = 1, .min_p = 0.26f}, {0.4f / 0.9f, 0.3f / 0.9f, 0.2f / 0.9f}},
      {{.temperature = 1, .min_p = 0.49f}, {0.4f / 0.9f, 0.3f / 0.9f, 0.2f / 0.9f}},
      {{.temperature = 1, .min_p = 0.51f}, {0.4f / 0.7f, 0.3f / 0.7f}},
      {{.temperature = 1, .min_p = 0.74f}, {0.4f / 0.7f, 0.3f / 0.7f}},
      {{.temperature = 1, .min_p = 0.76f}, {1.0f}},
      {{.temperature = 1, .min_p = 1.00f}, {1.0f}},
      {{.temperature = 1, .min_p = 1.05f}, {1.0f}},
      {{.temperature = 0}, {1.0f}},  // test_temp(0): greedy
  };
  for (size_t c = 0; c < cases.size(); ++c) {
    Sampler s(cases[c].params);
    const std::vector<float> got = Normalised(s.Filter(logits));
    ASSERT_EQ(got.size(), cases[c].expected.size()) << "case " << c;
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_NEAR(got[i], cases[c].expected[i], 1e-5) << "case " << c << " rank " << i;
    }
  }
}

// test_sampler_queue: logits log(id) over n_vocab tokens (token 0 has p = 0), so token ids
// sort by probability and the kept set is [min_id, n_vocab). The expected sizes follow the
// closed forms of that test, in kiln's fixed order top-k → top-p → min-p.
int32_t ExpectedTopPMin(int32_t n_vocab, int32_t min_id, float top_p) {
  // Smallest suffix [m, n_vocab) whose id sum reaches ceil(top_p * sum of [min_id, n_vocab)).
  const int64_t divisor =
      int64_t{n_vocab} * (n_vocab - 1) / 2 - int64_t{min_id} * (min_id - 1) / 2;
  const int64_t target = static_cast<int64_t>(std::ceil(top_p * static_cast<double>(divisor)));
  int32_t m = n_vocab;
  int64_t cum = 0;
  do {
    --m;
    cum += m;
  } while (cum < target);
  return m;
}

TEST(SamplerVectorsTest, LlamaCppSamplerQueue) {
  const int32_t n_vocab = 10000;
  std::vector<float> logits(n_vocab);
  for (int32_t i = 0; i < n_vocab; ++i) logits[i] = std::log(static_cast<float>(i));
  struct QueueCase {
    int32_t top_k;
    float top_p, min_p;
  };
  const std::vector<QueueCase> cases = {
      {10000, 1.0f, 0.0f}, {1, 1.0f, 0.0f},      {100, 1.0f, 0.0f},   {0, 0.0003f, 0.0f},
      {0, 0.8f, 0.0f},     {0, 1.0f, 1e-12f},    {0, 1.0f, 0.1f},
      {0, 1.0f, 9997.9f / 9999.0f},              {100, 0.8f, 0.0f},   {100, 1.0f, 0.1f},
      {0, 0.8f, 0.1f},     {100, 0.8f, 0.1f},
  };
  for (const QueueCase& q : cases) {
    int32_t min_id = 1;  // p(0) = 0 is never kept unless everything is (top_k 10000, below)
    if (q.top_k > 0 && q.top_k < n_vocab) min_id = n_vocab - q.top_k;
    if (q.top_k == 10000) min_id = 0;
    if (q.top_p < 1.0f) min_id = ExpectedTopPMin(n_vocab, min_id, q.top_p);
    if (q.min_p > 0.0f) {
      min_id = std::max(min_id, std::max<int32_t>(1, static_cast<int32_t>(
                                                         std::ceil(q.min_p * (n_vocab - 1)))));
    }
    Sampler s({.temperature = 1, .top_k = q.top_k, .top_p = q.top_p, .min_p = q.min_p});
    std::span<const Sampler::Candidate> kept = s.Filter(logits);
    const std::string what = "k=" + std::to_string(q.top_k) + " p=" + std::to_string(q.top_p) +
                             " m=" + std::to_string(q.min_p);
    ASSERT_EQ(static_cast<int32_t>(kept.size()), n_vocab - min_id) << what;
    EXPECT_EQ(kept.front().id, n_vocab - 1) << what;
    EXPECT_EQ(kept.back().id, min_id) << what;
  }
}

// The obvious implementation: softmax, sort everything, filter, draw. Kept apart from the
// fast one so that the two can disagree.
int32_t ReferenceSample(const SamplingParams& sp, Rng& rng, const std::vector<float>& logits) {
  if (sp.temperature <= 0) return Argmax(logits);
  const size_t n = logits.size();
  const float inv_t = 1.0f / sp.temperature;
  float max_l = -INFINITY;
  for (size_t i = 0; i < n; ++i) max_l = std::max(max_l, logits[i] * inv_t);
  std::vector<Sampler::Candidate> c(n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    float p = std::exp(logits[i] * inv_t - max_l);
    c[i] = {p, static_cast<int32_t>(i)};
    sum += p;
  }
  std::sort(c.begin(), c.end(), [](const auto& a, const auto& b) {
    return a.p > b.p || (a.p == b.p && a.id < b.id);
  });
  size_t keep = n;
  if (sp.top_k > 0 && static_cast<size_t>(sp.top_k) < n) {
    keep = sp.top_k;
    sum = 0;
    for (size_t i = 0; i < keep; ++i) sum += c[i].p;
  }
  if (sp.top_p < 1.0f) {
    double mass = 0;
    size_t i = 0;
    for (; i < keep; ++i) {
      mass += c[i].p / sum;
      if (mass >= sp.top_p) break;
    }
    keep = std::min(keep, i + 1);
  }
  if (sp.min_p > 0.0f) {
    size_t i = 1;
    while (i < keep && c[i].p >= sp.min_p * c[0].p) ++i;
    keep = i;
  }
  double kept = 0;
  for (size_t i = 0; i < keep; ++i) kept += c[i].p;
  const double r = rng.NextDouble() * kept;
  double acc = 0;
  for (size_t i = 0; i < keep; ++i) {
    acc += c[i].p;
    if (r < acc) return c[i].id;
  }
  return c[keep - 1].id;
}

TEST(SamplerVectorsTest, FastPathsDrawTheSameTokensAsAFullSort) {
  std::mt19937 gen(1234);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const std::vector<SamplingParams> configs = {
      {.temperature = 1.0f},
      {.temperature = 0.7f},
      {.temperature = 1.5f},
      {.temperature = 1.0f, .top_k = 40},
      {.temperature = 0.8f, .top_k = 1},
      {.temperature = 1.0f, .top_p = 0.9f},
      {.temperature = 1.2f, .top_p = 0.5f},
      {.temperature = 1.0f, .min_p = 0.05f},
      {.temperature = 1.0f, .top_k = 50, .top_p = 0.95f, .min_p = 0.02f},
      {.temperature = 1.0f, .top_p = 0.99f, .min_p = 0.1f},
  };
  int rows = 0;
  for (int trial = 0; trial < 40; ++trial) {
    const size_t n = trial == 0 ? 49152 : 1 + gen() % 2000;
    const float scale = std::array<float, 4>{0.3f, 2.0f, 6.0f, 20.0f}[trial % 4];
    std::vector<float> logits(n);
    for (float& l : logits) l = normal(gen) * scale;
    if (trial % 3 == 1) {  // ties: coarse logits
      for (float& l : logits) l = std::round(l);
    }
    if (trial % 5 == 2) {  // a grammar mask: most tokens banned
      for (size_t i = 0; i < n; ++i) {
        if (i % 7 != 0) logits[i] = -INFINITY;
      }
    }
    for (size_t c = 0; c < configs.size(); ++c) {
      SamplingParams sp = configs[c];
      sp.seed = 1000 + trial * 31 + c;
      Sampler fast(sp);
      Rng ref_rng(sp.seed);
      for (int draw = 0; draw < 3; ++draw) {
        ASSERT_EQ(fast.Sample(logits), ReferenceSample(sp, ref_rng, logits))
            << "trial " << trial << " n " << n << " config " << c << " draw " << draw;
        ++rows;
      }
    }
  }
  EXPECT_EQ(rows, 40 * 10 * 3);
}

std::vector<std::pair<int32_t, float>> ReferenceTopK(const std::vector<float>& lp, int32_t k) {
  std::vector<std::pair<int32_t, float>> all;
  for (size_t i = 0; i < lp.size(); ++i) all.push_back({static_cast<int32_t>(i), lp[i]});
  std::stable_sort(all.begin(), all.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  all.resize(std::min<size_t>(k, all.size()));
  return all;
}

TEST(SamplerVectorsTest, TopLogprobsByPartialSelection) {
  std::mt19937 gen(99);
  for (int trial = 0; trial < 40; ++trial) {
    std::vector<float> logits(1 + gen() % 5000);
    for (float& l : logits) l = static_cast<float>(gen() % 50) * 0.25f;  // many ties
    std::vector<float> lp;
    LogSoftmax(logits, &lp);
    for (int32_t k : {0, 1, 5, 20}) {
      EXPECT_EQ(TopK(lp, k), ReferenceTopK(lp, k)) << "trial " << trial << " k " << k;
    }
  }
}

}  // namespace
}  // namespace kiln::sampling
