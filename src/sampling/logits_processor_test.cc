// Penalty cases re-derived from llama.cpp's tests/test-sampling.cpp (test_penalties: logits =
// log(probs), penalties applied, softmax, compared sorted) and sampler distributions checked
// statistically against the same file's top-k / top-p / min-p expectations.
#include "sampling/logits_processor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "sampling/sampler.h"

namespace kiln::sampling {
namespace {

std::vector<float> SortedProbs(std::vector<float> logits) {
  std::vector<float> lp;
  LogSoftmax(logits, &lp);
  for (float& x : lp) x = std::exp(x);
  std::sort(lp.rbegin(), lp.rend());
  return lp;
}

struct PenaltyCase {
  std::vector<int32_t> history;
  std::vector<float> expected;  // sorted probabilities
  float repetition, frequency, presence;
};

TEST(PenaltiesTest, LlamaCppVectors) {
  const std::vector<PenaltyCase> cases = {
      {{0}, {0.25f, 0.25f, 0.25f, 0.25f, 0}, 50.0f, 0, 0},
      {{0, 1, 2}, {0.5f, 0.5f, 0, 0, 0}, 50.0f, 0, 0},
      {{0, 1, 2, 0, 0}, {0.5f, 0.5f, 0, 0, 0}, 50.0f, 0, 0},
      {{0}, {0.249997f, 0.249997f, 0.249997f, 0.249997f, 0.000011f}, 1.0f, 5.0f, 5.0f},
      {{0, 1, 2}, {0.499966f, 0.499966f, 0.000023f, 0.000023f, 0.000023f}, 1.0f, 5.0f, 5.0f},
      {{0, 1, 2, 0, 0}, {0.499977f, 0.499977f, 0.000023f, 0.000023f, 0.000000f}, 1.0f, 5.0f, 5.0f},
  };
  for (const PenaltyCase& c : cases) {
    std::vector<float> logits(5, std::log(0.2f));
    PenaltyState state;
    for (int32_t id : c.history) state.AddOutput(id);
    state.Apply({c.repetition, c.presence, c.frequency}, logits);
    std::vector<float> got = SortedProbs(logits);
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], c.expected[i], 1e-5) << i;
  }
}

TEST(PenaltiesTest, RepetitionCoversPromptPresenceOnlyOutput) {
  std::vector<float> logits = {2.0f, -2.0f, 2.0f, 1.0f};
  PenaltyState state;
  const std::vector<int32_t> prompt = {0, 1};
  state.AddPrompt(prompt);
  state.AddOutput(3);
  state.AddOutput(3);
  state.Apply({2.0f, 0.5f, 0.25f}, logits);
  EXPECT_FLOAT_EQ(logits[0], 1.0f);    // 2 / 2
  EXPECT_FLOAT_EQ(logits[1], -4.0f);   // -2 * 2
  EXPECT_FLOAT_EQ(logits[2], 2.0f);    // untouched
  EXPECT_FLOAT_EQ(logits[3], 0.5f - 0.5f - 0.5f);  // 1/2, then -(0.25*2 + 0.5)
}

TEST(PenaltiesTest, ValidateNamesTheField) {
  EXPECT_NE((PenaltyParams{0.0f, 0, 0}).Validate().message().find("repetition_penalty"),
            std::string::npos);
  EXPECT_NE((PenaltyParams{1.0f, 3.0f, 0}).Validate().message().find("presence_penalty"),
            std::string::npos);
  EXPECT_TRUE(PenaltyParams{}.Validate().ok());
}

TEST(ProcessorsTest, BiasBanMaskAndTopLogprobs) {
  std::vector<float> logits = {0, 1, 2, 3};
  ApplyLogitBias({{0, 10.0f}, {9, 1.0f}}, logits);
  EXPECT_EQ(logits[0], 10.0f);
  const std::vector<int32_t> ban = {1};
  BanTokens(ban, logits);
  EXPECT_TRUE(std::isinf(logits[1]));
  const std::vector<uint32_t> mask = {0b1101};
  ApplyTokenBitmask(mask, logits);
  EXPECT_TRUE(std::isinf(logits[1]));
  EXPECT_EQ(logits[2], 2.0f);
  std::vector<float> lp;
  LogSoftmax(std::vector<float>{0.0f, 0.0f, std::log(2.0f)}, &lp);
  EXPECT_NEAR(std::exp(lp[2]), 0.5, 1e-6);
  auto top = TopK(lp, 2);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].first, 2);
  EXPECT_EQ(top[1].first, 0);  // tie with id 1 → lower id first
}

// Frequencies of n draws from probs {0.1, 0.2, 0.3, 0.4} as logits, vs llama.cpp's expected
// filtered distributions (test_top_k / test_top_p / test_min_p), within 5 sigma.
void ExpectDistribution(const SamplingParams& params, const std::vector<double>& expected) {
  const std::vector<float> logits = {std::log(0.1f), std::log(0.2f), std::log(0.3f),
                                     std::log(0.4f)};
  Sampler sampler(params);
  constexpr int kDraws = 40000;
  std::vector<int> counts(4, 0);
  for (int i = 0; i < kDraws; ++i) ++counts[sampler.Sample(logits)];
  for (int i = 0; i < 4; ++i) {
    const double p = expected[i], sigma = std::sqrt(p * (1 - p) / kDraws);
    EXPECT_NEAR(counts[i] / double(kDraws), p, 5 * sigma + 1e-9) << "token " << i;
  }
}

TEST(SamplerStatsTest, MatchesLlamaCppFilteredDistributions) {
  SamplingParams p;
  p.seed = 42;
  ExpectDistribution(p, {0.1, 0.2, 0.3, 0.4});
  p.top_k = 3;
  ExpectDistribution(p, {0, 0.2 / 0.9, 0.3 / 0.9, 0.4 / 0.9});
  p.top_k = 0;
  p.top_p = 0.7f;
  ExpectDistribution(p, {0, 0, 0.3 / 0.7, 0.4 / 0.7});
  p.top_p = 1.0f;
  p.min_p = 0.74f;
  ExpectDistribution(p, {0, 0, 0.3 / 0.7, 0.4 / 0.7});
  p.min_p = 0.0f;
  p.temperature = 0.5f;  // p_i ∝ p_i^2
  ExpectDistribution(p, {0.01 / 0.3, 0.04 / 0.3, 0.09 / 0.3, 0.16 / 0.3});
}

}  // namespace
}  // namespace kiln::sampling
