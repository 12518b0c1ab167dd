// Logits of the tiny generated models (tests/testdata/tiny, tools/gen_tiny_models.py) against
// transformers' float32 reference, loaded both as the Hugging Face folder and as each GGUF
// variant, run three ways (whole prompt, one token at a time, 5-token chunks with a 3-row
// arena) so the KV cache, sub-batching and sliding windows are exercised. The three ways
// must agree bit for bit (batch invariance).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "model/model.h"

namespace kiln::model {
namespace {

const std::string kTinyDir = std::string(KILN_TESTDATA_DIR) + "/tiny";

// Max |logit - reference| allowed per weight type of the file (logit std is ~1.2). F32 is the
// math itself (measured ~1e-5). The others also round activations to the weight type's dot
// type (f16, bf16, or Q8_0 blocks), exactly as llama.cpp does, while transformers' reference
// keeps activations in f32: measured 7e-3 (F16), 4e-2 (BF16), 0.22 (Q8_0, Q4_0), and
// llama.cpp itself differs from the reference by the same 0.22 on the Q8_0/Q4_0 files.
double ToleranceFor(const std::string& type) {
  if (type == "F32") return 1e-3;
  if (type == "F16") return 2e-2;
  if (type == "BF16") return 8e-2;
  return 0.35;  // 8-bit activation blocks (Q8_0, Q4_0, … weights)
}

struct Case {
  std::string name;     // fixture name + format
  std::string path;     // HF folder or .gguf file
  std::string logits;   // reference logits file
  std::string type;     // weight type of the file
  std::vector<int32_t> tokens;
  int64_t n_vocab = 0;
};

std::vector<Case> LoadCases() {
  std::vector<Case> cases;
  std::ifstream in(kTinyDir + "/manifest.json");
  if (!in) return cases;
  nlohmann::json m = nlohmann::json::parse(in);
  for (const auto& model : m["models"]) {
    Case c;
    c.tokens = model["token_ids"].get<std::vector<int32_t>>();
    c.n_vocab = model["logits"]["shape"][1].get<int64_t>();
    c.name = model["name"].get<std::string>() + "/hf";
    c.path = kTinyDir + "/" + model["hf_dir"].get<std::string>();
    c.logits = kTinyDir + "/" + model["logits"]["file"].get<std::string>();
    c.type = model["safetensors_dtype"].get<std::string>();
    cases.push_back(c);
    for (const auto& g : model["gguf"]) {
      c.name = model["name"].get<std::string>() + "/" + g["file"].get<std::string>();
      c.path = kTinyDir + "/" + g["file"].get<std::string>();
      c.logits = kTinyDir + "/" + g["logits"].get<std::string>();
      c.type = g["type"].get<std::string>();
      cases.push_back(c);
    }
  }
  return cases;
}

std::vector<float> ReadF32(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  std::vector<float> v;
  if (!in) return v;
  v.resize(static_cast<size_t>(in.tellg()) / 4);
  in.seekg(0);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  return v;
}

// Feeds tokens in Forward calls of `chunk` rows; returns logits of every row.
std::vector<float> RunTokens(Model& model, const std::vector<int32_t>& tokens, size_t chunk,
                       DType kv = DType::kF32) {
  auto ctx = model.NewContext(64);
  EXPECT_TRUE(ctx.ok()) << ctx.status().ToString();
  std::vector<float> all, part;
  for (size_t b = 0; b < tokens.size(); b += chunk) {
    Batch batch;
    for (size_t i = b; i < std::min(tokens.size(), b + chunk); ++i) {
      batch.Add(tokens[i], static_cast<int32_t>(i), 0, true);
    }
    Status st = model.Forward(batch, **ctx, &part);
    EXPECT_TRUE(st.ok()) << st.ToString();
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

double MaxAbsErr(const std::vector<float>& a, const std::vector<float>& b) {
  double m = a.size() == b.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    m = std::max(m, std::abs(double(a[i]) - b[i]));
  }
  return m;
}

class ModelTinyTest : public ::testing::TestWithParam<Case> {};

TEST_P(ModelTinyTest, MatchesTransformersLogits) {
  const Case& c = GetParam();
  const std::vector<float> ref = ReadF32(c.logits);
  ASSERT_EQ(ref.size(), c.tokens.size() * c.n_vocab) << c.logits;

  LoadOptions opts;
  opts.n_threads = 2;
  opts.kv_dtype = DType::kF32;
  auto model = Model::Load(c.path, opts);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  ASSERT_EQ((*model)->config().n_vocab, c.n_vocab);

  const std::vector<float> whole = RunTokens(**model, c.tokens, c.tokens.size());
  const std::vector<float> single = RunTokens(**model, c.tokens, 1);
  opts.max_batch = 3;  // 5-row calls split into 3 + 2 inside Forward
  auto small = Model::Load(c.path, opts);
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  const std::vector<float> chunked = RunTokens(**small, c.tokens, 5);
  opts.kv_dtype = DType::kF16;
  auto f16 = Model::Load(c.path, opts);
  ASSERT_TRUE(f16.ok()) << f16.status().ToString();
  const std::vector<float> kv16 = RunTokens(**f16, c.tokens, 7);

  const double err = MaxAbsErr(whole, ref), err16 = MaxAbsErr(kv16, ref);
  std::printf("[ model_tiny ] %-34s %-5s max|err| %.3g (kv f16: %.3g)\n", c.name.c_str(),
              c.type.c_str(), err, err16);
  // GGUF Gemma uses llama.cpp's f16-table GELU (kernels/activation.h) on purpose: llama.cpp
  // itself is 2.97e-3 from transformers on gemma3.gguf, kiln 2.97e-3 too (6.7e-4 from llama.cpp).
  const double gelu_table = (*model)->config().activation == Activation::kGeluTanhF16Table ? 4e-3 : 0;
  EXPECT_LE(err, ToleranceFor(c.type) + gelu_table) << c.name;
  EXPECT_LE(err16, ToleranceFor(c.type) + 1e-2) << c.name;
  // Batch invariance: the same numbers however the prompt is split.
  EXPECT_EQ(whole, single) << c.name;
  EXPECT_EQ(whole, chunked) << c.name;
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  std::string s = info.param.name;
  for (char& ch : s) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return s;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ModelTinyTest, ::testing::ValuesIn(LoadCases()), CaseName);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ModelTinyTest);

}  // namespace
}  // namespace kiln::model
