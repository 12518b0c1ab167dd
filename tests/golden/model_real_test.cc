// The default real model (SmolLM2-135M-Instruct Q4_1, fetched by scripts/fetch_models.sh)
// against llama.cpp: greedy tokens of one prompt, recorded from tools/oracle/llama_ref.mjs
// (node-llama-cpp). Skips when the model is not cached.
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/model.h"

namespace kiln::model {
namespace {

std::string ModelPath() {
  const char* cache = std::getenv("KILN_CACHE");
  const char* home = std::getenv("HOME");
  std::string base = cache ? cache : (home ? std::string(home) + "/.cache/kiln" : ".");
  return base + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

TEST(ModelRealTest, SmolLm2GreedyMatchesLlamaCpp) {
  const std::string path = ModelPath();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not cached (scripts/fetch_models.sh)";
  LoadOptions opts;
  opts.n_threads = 2;
  opts.n_ctx = 64;
  auto model = Model::Load(path, opts);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto ctx = (*model)->NewContext();
  ASSERT_TRUE(ctx.ok());
  // "The capital of France is" → llama.cpp: " Paris.\n\nThe United States has …". The first
  // five tokens are clear winners; later ones are near-ties that depend on the kernel ISA's
  // rounding (our ref and AVX tables split at token 6 too).
  const std::vector<int32_t> prompt = {504, 3575, 282, 4649, 314};
  const std::vector<int32_t> want = {7042, 30, 198, 198, 504};
  Batch batch;
  for (size_t i = 0; i < prompt.size(); ++i) batch.Add(prompt[i], static_cast<int32_t>(i), 0, i + 1 == prompt.size());
  std::vector<float> logits;
  std::vector<int32_t> got;
  for (size_t step = 0; step < want.size(); ++step) {
    Status st = (*model)->Forward(batch, **ctx, &logits);
    ASSERT_TRUE(st.ok()) << st.ToString();
    ASSERT_EQ(logits.size(), static_cast<size_t>((*model)->config().n_vocab));
    int32_t best = 0;
    for (size_t v = 0; v < logits.size(); ++v) {
      ASSERT_TRUE(std::isfinite(logits[v])) << "step " << step << " vocab " << v;
      if (logits[v] > logits[best]) best = static_cast<int32_t>(v);
    }
    got.push_back(best);
    batch.Clear();
    batch.Add(best, (*ctx)->n_past(), 0, true);
  }
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace kiln::model
