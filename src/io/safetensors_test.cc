#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>

#include "io/io_test_util.h"

namespace kiln::io {
namespace {

using namespace kiln::io::testing;  // NOLINT
using Type = MetaValue::Type;

std::string St(const std::string& header, const std::string& data) {
  Bytes b;
  b.Pod<uint64_t>(header.size());
  return b.buf + header + data;
}

// a: F32 [2, 2] (16 bytes), b: BF16 [3] (6 bytes), c: I64 [1] (8 bytes).
std::string ValidSt() {
  return St(R"({"__metadata__":{"format":"pt"},)"
            R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]},)"
            R"("a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
            R"("c":{"dtype":"I64","shape":[1],"data_offsets":[22,30]}})",
            Filled(30, 7));
}

Status ParseBytes(const std::string& bytes, std::vector<TensorInfo>* out) {
  TempDir dir;
  auto f = File::Open(dir.Write("m.safetensors", bytes));
  if (!f.ok()) return f.status();
  return ParseSafetensors(*f, out);
}

void ExpectError(const std::string& bytes, std::string_view part,
                 StatusCode code = StatusCode::kInvalidArgument) {
  std::vector<TensorInfo> out;
  Status st = ParseBytes(bytes, &out);
  ASSERT_FALSE(st.ok()) << "expected: " << part;
  EXPECT_EQ(st.code(), code) << st.ToString();
  EXPECT_TRUE(Contains(st.message(), part)) << st.ToString();
}

constexpr char kConfig[] = R"({"architectures":["LlamaForCausalLM"],"hidden_size":64,
  "rope_scaling":{"rope_type":"llama3","factor":8.0,"inner":{"x":null}},"eos_token_id":[1,2],
  "mixed":[1,2.5],"big":18446744073709551615,"tie_word_embeddings":false,"objs":[{"a":1}],
  "empty":{}})";

TEST(SafetensorsTest, ParsesSingleFile) {
  TempDir dir;
  auto f = File::Open(dir.Write("m.safetensors", ValidSt()));
  ASSERT_TRUE(f.ok());
  std::vector<TensorInfo> ts;
  ASSERT_TRUE(ParseSafetensors(*f, &ts).ok());
  ASSERT_EQ(ts.size(), 3u);
  EXPECT_EQ(ts[0].name, "a");  // ordered by offset
  EXPECT_EQ(ts[0].dtype, DType::kF32);
  EXPECT_EQ(ts[0].shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(ts[0].n_bytes, 16u);
  size_t header = f->size() - 30;
  EXPECT_EQ(ts[0].data, f->data() + header);
  EXPECT_EQ(ts[1].dtype, DType::kBF16);
  EXPECT_EQ(ts[1].data, f->data() + header + 16);
  EXPECT_EQ(ts[2].dtype, DType::kI64);
  EXPECT_EQ(std::memcmp(ts[1].data, Filled(30, 7).data() + 16, 6), 0);
  EXPECT_TRUE(CheckSupported(ts[0]).ok());
  EXPECT_EQ(CheckSupported(ts[2]).code(), StatusCode::kUnimplemented);
}

TEST(SafetensorsTest, EveryTruncationFails) {
  std::string bytes = ValidSt();
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> copy(bytes.begin(), bytes.begin() + n);  // exact size: ASan sees overreads
    std::vector<TensorInfo> out;
    EXPECT_FALSE(ParseSafetensors(File::Borrow(copy.data(), n, "mem"), &out).ok()) << n;
  }
}

TEST(SafetensorsTest, HostileHeaders) {
  Bytes huge;
  huge.Pod<uint64_t>(1ull << 62);
  ExpectError(huge.buf + "{}", "header length");
  ExpectError("1234", "no header");
  ExpectError(St("{not json", ""), "invalid JSON");
  ExpectError(St("[1]", ""), "not a JSON object");
  ExpectError(St(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", "abcd"), "'a' has no dtype");
  ExpectError(St(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "a"),
              "dtype U8", StatusCode::kUnimplemented);
  ExpectError(St(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "abcd"),
              "non-negative");
  ExpectError(St(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", "abcd"),
              "outside the data section");
  ExpectError(St(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "abcd"),
              "outside the data section");
  ExpectError(St(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", "abcd"),
              "4 bytes in data_offsets, but shape and dtype F32 need 8");
  ExpectError(St(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}})",
                 "abcd"), "overflows");
  ExpectError(St(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},)"
                 R"("b":{"dtype":"F16","shape":[2],"data_offsets":[2,6]}})", "abcdef"),
              "'a' and 'b' overlap");
  ExpectError(St(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},)"
                 R"("a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", "abcd"),
              "duplicate key 'a'");
  ExpectError(St(R"({"a":{"dtype":"F16","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,2]}})",
                 "ab"), "9 dims");
}

TEST(SafetensorsTest, FlattensConfig) {
  auto meta = ParseHfConfig(kConfig);
  ASSERT_TRUE(meta.ok()) << meta.status().ToString();
  const Metadata& m = *meta;
  EXPECT_EQ(m.at("hidden_size").type, Type::kInt64);
  EXPECT_EQ(m.at("hidden_size").i, 64);
  EXPECT_EQ(m.at("rope_scaling.rope_type").s, "llama3");
  EXPECT_EQ(m.at("rope_scaling.factor").f, 8.0);
  EXPECT_EQ(m.at("rope_scaling.inner.x").type, Type::kNull);
  EXPECT_EQ(m.at("eos_token_id").elem_type, Type::kInt64);
  EXPECT_EQ(m.at("eos_token_id").array[1].i, 2);
  EXPECT_EQ(m.at("mixed").elem_type, Type::kFloat64);
  EXPECT_EQ(m.at("mixed").array[0].f, 1.0);
  EXPECT_EQ(m.at("big").type, Type::kUint64);
  EXPECT_EQ(m.at("big").u, 18446744073709551615ull);
  EXPECT_FALSE(m.at("tie_word_embeddings").b);
  EXPECT_EQ(m.at("architectures").array[0].s, "LlamaForCausalLM");
  EXPECT_EQ(m.at("objs").array[0].s, R"({"a":1})");
  EXPECT_EQ(m.count("empty"), 0u);
  EXPECT_FALSE(ParseHfConfig("[]").ok());
  EXPECT_FALSE(ParseHfConfig(std::string(100, '[') + std::string(100, ']')).ok());
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += R"({"a":)";
  deep += "1" + std::string(100, '}');
  EXPECT_FALSE(ParseHfConfig(deep).ok());
}

TEST(SafetensorsTest, OpensSingleFolder) {
  TempDir dir;
  dir.Write("config.json", kConfig);
  dir.Write("model.safetensors", ValidSt());
  auto src = OpenTensorSource(dir.path());
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  EXPECT_EQ((*src)->format(), SourceFormat::kSafetensors);
  EXPECT_EQ((*src)->tensors().size(), 3u);
  EXPECT_EQ((*src)->FindMeta("hf.dir")->s, dir.path());
  EXPECT_EQ((*src)->FindMeta("rope_scaling.rope_type")->s, "llama3");
  EXPECT_NE((*src)->FindTensor("b"), nullptr);
}

TEST(SafetensorsTest, OpensShardedFolder) {
  TempDir dir;
  dir.Write("config.json", kConfig);
  dir.Write("model-00001-of-00002.safetensors",
            St(R"({"x":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", "abcd"));
  dir.Write("model-00002-of-00002.safetensors",
            St(R"({"y":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "efgh"));
  dir.Write("model.safetensors.index.json",
            R"({"metadata":{"total_size":8},"weight_map":{"x":"model-00001-of-00002.safetensors",
                "y":"model-00002-of-00002.safetensors"}})");
  auto src = SafetensorsFolder::Open(dir.path() + "/");
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  ASSERT_EQ((*src)->tensors().size(), 2u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>((*src)->FindTensor("y")->data), 4), "efgh");
  EXPECT_EQ((*src)->path(), dir.path());

  dir.Write("model.safetensors.index.json",
            R"({"weight_map":{"x":"model-00001-of-00002.safetensors",
                "z":"model-00002-of-00002.safetensors"}})");
  auto missing = SafetensorsFolder::Open(dir.path());
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(Contains(missing.status().message(), "'z'")) << missing.status().ToString();

  dir.Write("model.safetensors.index.json", R"({"weight_map":{"x":"../evil.safetensors"}})");
  EXPECT_FALSE(SafetensorsFolder::Open(dir.path()).ok());
  dir.Write("model.safetensors.index.json", R"({"weight_map":{"x":"model-00001-of-00002.safetensors",
      "y":"model-00001-of-00002.safetensors"}})");
  EXPECT_FALSE(SafetensorsFolder::Open(dir.path()).ok());  // y is not in shard 1... or anywhere
  dir.Write("model-00002-of-00002.safetensors",
            St(R"({"x":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", "abcd"));
  dir.Write("model.safetensors.index.json", R"({"weight_map":{"x":"model-00001-of-00002.safetensors",
      "y":"model-00002-of-00002.safetensors"}})");
  auto dup = SafetensorsFolder::Open(dir.path());
  ASSERT_FALSE(dup.ok());
  EXPECT_TRUE(Contains(dup.status().message(), "more than one shard")) << dup.status().ToString();
}

TEST(SafetensorsTest, FolderErrors) {
  TempDir dir;
  EXPECT_EQ(OpenTensorSource(dir.path()).status().code(), StatusCode::kNotFound);  // no config
  dir.Write("config.json", kConfig);
  EXPECT_EQ(OpenTensorSource(dir.path()).status().code(), StatusCode::kNotFound);  // no weights
  dir.Write("config.json", "{bad");
  dir.Write("model.safetensors", ValidSt());
  EXPECT_EQ(OpenTensorSource(dir.path()).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(OpenTensorSource(dir.path() + "/nope").status().code(), StatusCode::kNotFound);
  std::string txt = dir.Write("model.bin", "x");
  EXPECT_EQ(OpenTensorSource(txt).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln::io
