#include "sampling/sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace kiln::sampling {
namespace {

// Best first: probability descending, ties by lower id, so the order is fully determined.
bool ByP(const Sampler::Candidate& a, const Sampler::Candidate& b) {
  return a.p > b.p || (a.p == b.p && a.id < b.id);
}

int BinOf(float p) {
  // p >= 0, so its bit pattern orders like its value; NaN and p > 1 land in the top bin.
  const uint32_t bits = std::bit_cast<uint32_t>(p) >> 20;
  return static_cast<int>(std::min<uint32_t>(bits, 1023));
}

float BinFloor(int bin) { return std::bit_cast<float>(static_cast<uint32_t>(bin) << 20); }

}  // namespace

Status SamplingParams::Validate() const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature)) {
    return InvalidArgument("temperature must be a finite number >= 0, got %g", temperature);
  }
  if (top_k < 0) return InvalidArgument("top_k must be >= 0, got %d", top_k);
  if (!(top_p > 0.0f && top_p <= 1.0f)) {
    return InvalidArgument("top_p must be in (0, 1], got %g", top_p);
  }
  if (!(min_p >= 0.0f && min_p <= 1.0f)) {
    return InvalidArgument("min_p must be in [0, 1], got %g", min_p);
  }
  return Status::Ok();
}

int32_t Argmax(std::span<const float> logits) {
  KILN_CHECK(!logits.empty());
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

void Sampler::Softmax(std::span<const float> logits) {
  const size_t n = logits.size();
  KILN_CHECK(n > 0);
  probs_.resize(n);
  bin_mass_.fill(0);
  bin_count_.fill(0);
  const float inv_t = 1.0f / params_.temperature;
  float max_l = -INFINITY;
  for (size_t i = 0; i < n; ++i) max_l = std::max(max_l, logits[i] * inv_t);
  // Softmax in double for a stable, order-fixed sum.
  double sum = 0;
  float p_max = 0;
  for (size_t i = 0; i < n; ++i) {
    float p = std::exp(logits[i] * inv_t - max_l);
    probs_[i] = p;
    sum += p;
    p_max = std::max(p_max, p);
    const int b = BinOf(p);
    bin_mass_[b] += p;
    ++bin_count_[b];
  }
  sum_ = sum;
  p_max_ = p_max;
}

float Sampler::ThresholdForMass(double mass) const {
  double acc = 0;
  for (int b = kBins - 1; b > 0; --b) {
    acc += bin_mass_[b];
    if (acc >= mass) return BinFloor(b);
  }
  return 0.0f;
}

float Sampler::ThresholdForCount(int64_t count) const {
  int64_t acc = 0;
  for (int b = kBins - 1; b > 0; --b) {
    acc += bin_count_[b];
    if (acc >= count) return BinFloor(b);
  }
  return 0.0f;
}

void Sampler::CollectSorted(float threshold) {
  // Every p >= threshold: a prefix of the fully sorted row, whatever the threshold.
  candidates_.clear();
  const size_t n = probs_.size();
  for (size_t i = 0; i < n; ++i) {
    if (probs_[i] >= threshold) candidates_.push_back({probs_[i], static_cast<int32_t>(i)});
  }
  std::sort(candidates_.begin(), candidates_.end(), ByP);
}

size_t Sampler::FilterCandidates() {
  const size_t n = probs_.size();
  const bool top_k = params_.top_k > 0 && static_cast<size_t>(params_.top_k) < n;
  const bool top_p = params_.top_p < 1.0f;
  const bool min_p = params_.min_p > 0.0f;
  size_t keep;
  double denom = sum_;
  if (top_k) {
    keep = static_cast<size_t>(params_.top_k);
    CollectSorted(ThresholdForCount(params_.top_k));
    keep = std::min(keep, candidates_.size());  // fewer only with NaN probabilities
    // top-p then sees the top-k renormalised (vLLM, llama.cpp).
    denom = 0;
    for (size_t i = 0; i < keep; ++i) denom += candidates_[i].p;
  } else if (top_p) {
    // Enough candidates to reach the mass (with a margin); the exact loop below checks it.
    CollectSorted(ThresholdForMass(static_cast<double>(params_.top_p) * sum_ * (1 + 1e-6)));
    keep = candidates_.size();
  } else if (min_p) {
    CollectSorted(std::min(params_.min_p * p_max_, p_max_));
    keep = candidates_.size();
  } else {
    CollectSorted(0.0f);
    return candidates_.size();
  }
  if (top_p) {
    double mass = 0;
    size_t i = 0;
    for (; i < keep; ++i) {
      mass += candidates_[i].p / denom;
      if (mass >= params_.top_p) break;
    }
    if (i == keep && !top_k && keep < n) {  // the margin was not enough: use the whole row
      CollectSorted(0.0f);
      keep = n;
      mass = 0;
      for (i = 0; i < keep; ++i) {
        mass += candidates_[i].p / denom;
        if (mass >= params_.top_p) break;
      }
    }
    keep = std::min(keep, i + 1);
  }
  if (min_p && keep > 0) {
    const float threshold = params_.min_p * candidates_[0].p;
    size_t i = 1;
    while (i < keep && candidates_[i].p >= threshold) ++i;
    keep = i;
  }
  return keep;
}

std::span<const Sampler::Candidate> Sampler::Filter(std::span<const float> logits) {
  if (params_.IsGreedy()) {
    const int32_t id = Argmax(logits);
    candidates_.assign(1, {1.0f, id});
    return candidates_;
  }
  Softmax(logits);
  const size_t keep = FilterCandidates();
  return std::span<const Candidate>(candidates_.data(), keep);
}

int32_t Sampler::DrawFrom(size_t keep, double u) {
  keep = std::min(keep, candidates_.size());
  if (keep == 0) return -1;  // NaN probabilities only
  double kept = 0;
  for (size_t i = 0; i < keep; ++i) kept += candidates_[i].p;
  double r = u * kept;
  double acc = 0;
  for (size_t i = 0; i < keep; ++i) {
    acc += candidates_[i].p;
    if (r < acc) return candidates_[i].id;
  }
  // r rounded up to the total (u within an ulp of 1): the last token that has probability,
  // never a masked (p = 0) one.
  for (size_t i = keep; i-- > 0;) {
    if (candidates_[i].p > 0) return candidates_[i].id;
  }
  return candidates_[keep - 1].id;
}

// No filter: the draw needs the total in sorted order, which only a full sort gives exactly.
// The total in index order (sum_) differs from it by at most B = 4 n 2^-53 sum_ (recursive
// summation bound, twice), so r lies in [u (sum_ - B), u (sum_ + B)]. When the sorted prefix
// puts both ends of that interval under the same token, that token is the answer; otherwise
// (probability about n 2^-52) fall back to the full sort.
int32_t Sampler::DrawUnfiltered(double u) {
  const size_t n = probs_.size();
  const double bound = 4.0 * static_cast<double>(n) * 0x1p-53 * sum_;
  const double r_lo = u * (sum_ - bound), r_hi = u * (sum_ + bound);
  CollectSorted(ThresholdForMass(r_hi * (1 + 1e-6) + bound));
  double acc = 0;
  size_t j_lo = n;
  for (size_t i = 0; i < candidates_.size(); ++i) {
    acc += candidates_[i].p;
    if (j_lo == n && r_lo < acc) j_lo = i;
    if (r_hi < acc) {
      if (j_lo == i) return candidates_[i].id;
      break;
    }
  }
  CollectSorted(0.0f);
  return DrawFrom(n, u);
}

int32_t Sampler::Sample(std::span<const float> logits) {
  if (params_.IsGreedy()) return Argmax(logits);
  Softmax(logits);
  const size_t n = probs_.size();
  const bool filtered = (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < n) ||
                        params_.top_p < 1.0f || params_.min_p > 0.0f;
  const int32_t id = filtered ? DrawFrom(FilterCandidates(), rng_.NextDouble())
                              : DrawUnfiltered(rng_.NextDouble());
  return id >= 0 ? id : Argmax(logits);
}

}  // namespace kiln::sampling
