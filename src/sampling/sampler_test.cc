#include "sampling/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace kiln::sampling {
namespace {

TEST(SamplerTest, GreedyIsArgmaxLowestIndexOnTies) {
  std::vector<float> logits = {0.1f, 3.0f, -1.0f, 3.0f};
  Sampler s({.temperature = 0.0f});
  EXPECT_EQ(s.Sample(logits), 1);
}

TEST(SamplerTest, ValidateNamesTheField) {
  EXPECT_NE(SamplingParams{.temperature = -1}.Validate().message().find("temperature"), std::string::npos);
  EXPECT_NE(SamplingParams{.top_k = -2}.Validate().message().find("top_k"), std::string::npos);
  EXPECT_NE(SamplingParams{.top_p = 0}.Validate().message().find("top_p"), std::string::npos);
  EXPECT_NE(SamplingParams{.min_p = 2}.Validate().message().find("min_p"), std::string::npos);
  EXPECT_TRUE(SamplingParams{}.Validate().ok());
}

TEST(SamplerTest, SameSeedSameTokens) {
  std::vector<float> logits(100);
  for (int i = 0; i < 100; ++i) logits[i] = std::sin(i * 0.37f) * 3;
  Sampler a({.temperature = 1.0f, .seed = 42}), b({.temperature = 1.0f, .seed = 42}),
      c({.temperature = 1.0f, .seed = 43});
  int differ = 0;
  for (int i = 0; i < 50; ++i) {
    int ta = a.Sample(logits);
    EXPECT_EQ(ta, b.Sample(logits));
    differ += ta != c.Sample(logits);
  }
  EXPECT_GT(differ, 0);
}

// Empirical frequencies match the softmax of logits / T within sampling error.
TEST(SamplerTest, FrequenciesFollowSoftmax) {
  std::vector<float> logits = {1.0f, 2.0f, 0.5f, -1.0f};
  const float t = 0.7f;
  Sampler s({.temperature = t, .seed = 7});
  std::vector<int> counts(4);
  const int n = 40000;
  for (int i = 0; i < n; ++i) counts[s.Sample(logits)]++;
  double z = 0;
  for (float l : logits) z += std::exp(l / t);
  for (int i = 0; i < 4; ++i) {
    double p = std::exp(logits[i] / t) / z;
    double sigma = std::sqrt(p * (1 - p) / n);
    EXPECT_NEAR(counts[i] / double(n), p, 5 * sigma + 1e-4) << "token " << i;
  }
}

TEST(SamplerTest, TopKTopPMinPRestrictSupport) {
  std::vector<float> logits = {4.0f, 3.0f, 2.0f, 1.0f, 0.0f};
  auto support = [&](SamplingParams p) {
    Sampler s(p);
    std::map<int, int> seen;
    for (int i = 0; i < 3000; ++i) seen[s.Sample(logits)]++;
    return seen.size();
  };
  EXPECT_EQ(support({.temperature = 1, .top_k = 2, .seed = 1}), 2u);
  // p ≈ [0.636, 0.234, 0.086, 0.032, 0.012]: top_p 0.8 keeps 2 tokens, 0.9 keeps 3.
  EXPECT_EQ(support({.temperature = 1, .top_p = 0.8f, .seed = 1}), 2u);
  EXPECT_EQ(support({.temperature = 1, .top_p = 0.9f, .seed = 1}), 3u);
  // min_p 0.1 keeps p >= 0.0636: 3 tokens.
  EXPECT_EQ(support({.temperature = 1, .min_p = 0.1f, .seed = 1}), 3u);
  EXPECT_EQ(support({.temperature = 1, .seed = 1}), 5u);
}

}  // namespace
}  // namespace kiln::sampling
