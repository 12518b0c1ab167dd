#include "io/gguf.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "io/io_test_util.h"

namespace kiln::io {
namespace {

using namespace kiln::io::testing;  // NOLINT
using Type = MetaValue::Type;

// f32 [2, 3] (ne = {3, 2}): 24 bytes; q4_0 [2, 64]: 2 rows * 2 blocks * 18 bytes = 72 bytes.
GgufWriter ValidWriter() {
  GgufWriter w;
  w.String("general.architecture", "llama");
  w.Scalar<uint32_t>("llama.block_count", kU32, 30);
  w.Scalar<uint8_t>("k.u8", kU8, 250);
  w.Scalar<int8_t>("k.i8", kI8, -5);
  w.Scalar<uint16_t>("k.u16", kU16, 65000);
  w.Scalar<int16_t>("k.i16", kI16, -30000);
  w.Scalar<int32_t>("k.i32", kI32, -70000);
  w.Scalar<float>("k.f32", kF32, 1.5f);
  w.Scalar<uint8_t>("k.bool", kBool, 1);
  w.Scalar<uint64_t>("k.u64", kU64, 18446744073709551615ull);
  w.Scalar<int64_t>("k.i64", kI64, -9000000000ll);
  w.Scalar<double>("k.f64", kF64, 0.25);
  w.Kv("k.arr_u32", kArr, Bytes().Pod(kU32).Pod<uint64_t>(3).Pod<uint32_t>(7).Pod<uint32_t>(8)
                              .Pod<uint32_t>(9));
  w.Kv("k.arr_str", kArr, Bytes().Pod(kStr).Pod<uint64_t>(2).Str("hello").Str(""));
  // [[1, 2], []] as an array of arrays of int16.
  w.Kv("k.arr_nested", kArr,
       Bytes().Pod(kArr).Pod<uint64_t>(2).Pod(kI16).Pod<uint64_t>(2).Pod<int16_t>(1)
           .Pod<int16_t>(2).Pod(kI16).Pod<uint64_t>(0));
  w.Kv("k.arr_empty", kArr, Bytes().Pod(kF32).Pod<uint64_t>(0));
  w.AddTensor({"a.weight", {3, 2}, 0, std::nullopt, Filled(24, 1)});
  w.AddTensor({"b.weight", {64, 2}, 2, std::nullopt, Filled(72, 2)});
  return w;
}

StatusOr<std::unique_ptr<GgufFile>> OpenBytes(const TempDir& dir, const std::string& bytes) {
  return GgufFile::Open(dir.Write("t.gguf", bytes));
}

// Opens and expects a failure whose message contains `part`.
void ExpectError(const std::string& bytes, std::string_view part,
                 StatusCode code = StatusCode::kInvalidArgument) {
  TempDir dir;
  auto g = OpenBytes(dir, bytes);
  ASSERT_FALSE(g.ok()) << "expected error containing: " << part;
  EXPECT_EQ(g.status().code(), code) << g.status().ToString();
  EXPECT_TRUE(Contains(g.status().message(), part)) << g.status().ToString();
}

TEST(GgufTest, ReadsEveryValueTypeAndTensor) {
  TempDir dir;
  std::string bytes = ValidWriter().Build();
  auto g = OpenBytes(dir, bytes);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  const GgufFile& f = **g;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  EXPECT_EQ(f.metadata().size(), 16u);
  EXPECT_EQ(f.key_order().front(), "general.architecture");
  EXPECT_EQ(f.FindMeta("general.architecture")->s, "llama");
  EXPECT_EQ(*f.FindMeta("llama.block_count")->AsInt("x"), 30);
  EXPECT_EQ(f.FindMeta("k.u8")->i, 250);
  EXPECT_EQ(f.FindMeta("k.i8")->i, -5);
  EXPECT_EQ(f.FindMeta("k.u16")->i, 65000);
  EXPECT_EQ(f.FindMeta("k.i16")->i, -30000);
  EXPECT_EQ(f.FindMeta("k.i32")->i, -70000);
  EXPECT_EQ(f.FindMeta("k.f32")->f, 1.5);
  EXPECT_EQ(f.FindMeta("k.f32")->type, Type::kFloat32);
  EXPECT_TRUE(f.FindMeta("k.bool")->b);
  EXPECT_EQ(f.FindMeta("k.u64")->u, 18446744073709551615ull);
  EXPECT_FALSE(f.FindMeta("k.u64")->AsInt("k.u64").ok());
  EXPECT_EQ(f.FindMeta("k.i64")->i, -9000000000ll);
  EXPECT_EQ(*f.FindMeta("k.f64")->AsDouble("k"), 0.25);
  const MetaValue* arr = f.FindMeta("k.arr_u32");
  ASSERT_EQ(arr->array.size(), 3u);
  EXPECT_EQ(arr->elem_type, Type::kUint32);
  EXPECT_EQ(arr->array[2].i, 9);
  const MetaValue* strs = f.FindMeta("k.arr_str");
  ASSERT_EQ(strs->array.size(), 2u);
  EXPECT_EQ(strs->array[0].s, "hello");
  EXPECT_EQ(strs->array[1].s, "");
  const MetaValue* nested = f.FindMeta("k.arr_nested");
  ASSERT_EQ(nested->array.size(), 2u);
  EXPECT_EQ(nested->elem_type, Type::kArray);
  ASSERT_EQ(nested->array[0].array.size(), 2u);
  EXPECT_EQ(nested->array[0].array[1].i, 2);
  EXPECT_TRUE(nested->array[1].array.empty());
  EXPECT_EQ(nested->ToString(), "[[1, 2], []]");
  EXPECT_TRUE(f.FindMeta("k.arr_empty")->array.empty());
  EXPECT_EQ(f.FindMeta("missing"), nullptr);

  ASSERT_EQ(f.tensors().size(), 2u);
  const TensorInfo* a = f.FindTensor("a.weight");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, DType::kF32);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a->NumElements(), 6);
  EXPECT_EQ(a->n_bytes, 24u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(a->data), 24), Filled(24, 1));
  const TensorInfo* b = f.FindTensor("b.weight");
  EXPECT_EQ(b->dtype, DType::kQ4_0);
  EXPECT_EQ(b->shape, (std::vector<int64_t>{2, 64}));
  EXPECT_EQ(b->n_bytes, 72u);
  EXPECT_EQ(f.RelativeOffset(1), 32u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b->data), 72), Filled(72, 2));
  EXPECT_EQ(f.FindTensor("nope"), nullptr);
  EXPECT_TRUE(CheckSupported(*b).ok());
}

TEST(GgufTest, Version2AndCustomAlignment) {
  GgufWriter w;
  w.version = 2;
  w.alignment = 64;
  w.Scalar<uint32_t>("general.alignment", kU32, 64);
  w.AddTensor({"x", {4}, 0, std::nullopt, Filled(16, 3)});
  w.AddTensor({"y", {8}, 1, std::nullopt, Filled(16, 4)});
  TempDir dir;
  auto g = OpenBytes(dir, w.Build());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ((*g)->version(), 2u);
  EXPECT_EQ((*g)->alignment(), 64u);
  EXPECT_EQ((*g)->data_offset() % 64, 0u);
  EXPECT_EQ((*g)->RelativeOffset(1), 64u);
  EXPECT_EQ((*g)->tensors()[1].dtype, DType::kF16);
}

TEST(GgufTest, EmptyAndScalarTensors) {
  GgufWriter w;
  w.AddTensor({"empty", {0, 4}, 0, std::nullopt, ""});
  w.AddTensor({"scalar", {}, 0, std::nullopt, Filled(4, 5)});
  TempDir dir;
  auto g = OpenBytes(dir, w.Build());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ((*g)->tensors()[0].n_bytes, 0u);
  EXPECT_EQ((*g)->tensors()[0].shape, (std::vector<int64_t>{4, 0}));
  EXPECT_EQ((*g)->tensors()[1].NumElements(), 1);
}

// Parses from an exact-size heap copy so ASan flags any read past the end.
StatusOr<std::unique_ptr<GgufFile>> ParseCopy(std::string_view bytes) {
  static std::vector<uint8_t> copy;
  copy.assign(bytes.begin(), bytes.end());
  copy.shrink_to_fit();
  return GgufFile::FromFile(File::Borrow(copy.data(), copy.size(), "mem.gguf"));
}

TEST(GgufTest, EveryTruncationFails) {
  std::string bytes = ValidWriter().Build();
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto g = ParseCopy(std::string_view(bytes).substr(0, n));
    ASSERT_FALSE(g.ok()) << "prefix of " << n << " bytes opened";
    EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument) << g.status().ToString();
  }
}

TEST(GgufTest, EveryFlippedByteIsSafe) {
  // Not every flip is an error (a flipped data byte is fine), but none may crash or read out
  // of bounds; run under ASan to make that a real check.
  std::string bytes = ValidWriter().Build();
  for (size_t pos = 0; pos < bytes.size(); ++pos) {
    std::string b = bytes;
    b[pos] = static_cast<char>(b[pos] ^ 0xA5);
    auto g = ParseCopy(b);
    if (g.ok()) {
      for (const TensorInfo& t : (*g)->tensors()) {
        volatile uint8_t sink = 0;
        for (size_t k = 0; k < t.n_bytes; ++k) sink = sink + t.data[k];
      }
    }
  }
}

TEST(GgufTest, BadHeader) {
  GgufWriter w = ValidWriter();
  w.magic = 0x46554746;
  ExpectError(w.Build(), "bad magic");
  w = ValidWriter();
  w.version = 1;
  ExpectError(w.Build(), "version 1", StatusCode::kUnimplemented);
  w.version = 4;
  ExpectError(w.Build(), "unsupported version 4", StatusCode::kUnimplemented);
  w.version = 0x03000000;
  ExpectError(w.Build(), "big-endian", StatusCode::kUnimplemented);
  ExpectError("", "truncated");
  w = ValidWriter();
  w.n_kv_override = 1ull << 60;
  ExpectError(w.Build(), "metadata entries cannot fit");
  w = ValidWriter();
  w.n_tensors_override = 1ull << 40;
  ExpectError(w.Build(), "tensor infos cannot fit");
}

TEST(GgufTest, HostileMetadata) {
  GgufWriter w;
  w.Kv("k", kStr, Bytes().Pod<uint64_t>(1ull << 60));
  ExpectError(w.Build(), "metadata string");
  GgufWriter w2;
  w2.Kv("k", kArr, Bytes().Pod(kU8).Pod<uint64_t>(1ull << 60));
  ExpectError(w2.Build(), "array of 1152921504606846976 uint8");
  GgufWriter w3;
  w3.Kv("k", kArr, Bytes().Pod(kStr).Pod<uint64_t>(1000).Str("a"));
  ExpectError(w3.Build(), "array of 1000 string");
  GgufWriter w4;
  w4.Kv("k", 99, Bytes().Pod<uint32_t>(0));
  ExpectError(w4.Build(), "unknown value type 99");
  GgufWriter w5;
  w5.Scalar<uint8_t>("k", kBool, 2);
  ExpectError(w5.Build(), "bool value 2");
  GgufWriter w6;
  w6.Scalar<uint32_t>("k", kU32, 1).Scalar<uint32_t>("k", kU32, 2);
  ExpectError(w6.Build(), "duplicate metadata key 'k'");
  GgufWriter w7;
  Bytes deep;
  for (int i = 0; i < 20; ++i) deep.Pod(kArr).Pod<uint64_t>(1);
  deep.Pod(kU8).Pod<uint64_t>(0);
  w7.Kv("k", kArr, deep);
  ExpectError(w7.Build(), "nested deeper");
  GgufWriter w8;
  w8.Kv("k", kArr, Bytes().Pod(13u).Pod<uint64_t>(0));
  ExpectError(w8.Build(), "unknown array element type 13");
}

TEST(GgufTest, TooManyMetadataElements) {
  GgufWriter w;
  Bytes big;
  big.Pod(kU8).Pod<uint64_t>(kGgufMaxMetaElements + 1);
  big.buf.resize(big.buf.size() + kGgufMaxMetaElements + 1, '\0');
  w.Kv("k", kArr, big);
  ExpectError(w.Build(), "exceed");
}

TEST(GgufTest, BadAlignment) {
  GgufWriter w;
  w.Scalar<uint32_t>("general.alignment", kU32, 48);
  ExpectError(w.Build(), "not a power of two");
  GgufWriter w2;
  w2.Scalar<uint32_t>("general.alignment", kU32, 0);
  ExpectError(w2.Build(), "not a power of two");
  GgufWriter w3;
  w3.Scalar<uint64_t>("general.alignment", kU64, 32);
  ExpectError(w3.Build(), "expected uint32");
}

TEST(GgufTest, HostileTensorInfos) {
  auto one = [](GgufWriter::Tensor t) {
    GgufWriter w;
    w.AddTensor(std::move(t));
    return w.Build();
  };
  ExpectError(one({"t", {1, 1, 1, 1, 1}, 0, 0, Filled(4, 0)}), "tensor 't' has 5 dims, max 4");
  ExpectError(one({"t", {1ull << 62, 1ull << 62}, 0, 0, ""}), "'t': element count overflows");
  ExpectError(one({"t", {~0ull}, 0, 0, ""}), "'t' has negative dim");
  ExpectError(one({"blk.0.attn_q.weight", {4}, 99, 0, Filled(16, 0)}),
              "tensor 'blk.0.attn_q.weight' has unknown type id 99");
  ExpectError(one({"t", {33, 2}, 2, 0, Filled(200, 0)}), "not a whole number of q4_0 blocks");
  ExpectError(one({"t", {4}, 0, 64, Filled(16, 0)}).substr(0, 100), "extends past end of file");
  ExpectError(one({"t", {4}, 0, 8, Filled(16, 0)}), "offset 8 is not a multiple of the alignment");
  ExpectError(one({"t", {4}, 0, ~0ull & ~31ull, ""}), "extends past end of file");
  GgufWriter w;
  w.AddTensor({"a", {8}, 0, 0, Filled(32, 0)});
  w.AddTensor({"b", {8}, 0, 0, Filled(32, 0)});
  ExpectError(w.Build(), "tensors 'a' [0, 32) and 'b' [0, 32) overlap");
  GgufWriter w2;
  w2.AddTensor({"a", {16}, 0, 0, Filled(64, 0)});
  w2.AddTensor({"b", {8}, 0, 32, Filled(32, 0)});
  ExpectError(w2.Build(), "overlap");
  GgufWriter w3;
  w3.AddTensor({"a", {8}, 0, std::nullopt, Filled(32, 0)});
  w3.AddTensor({"a", {8}, 0, std::nullopt, Filled(32, 0)});
  ExpectError(w3.Build(), "duplicate tensor name 'a'");
  // Wrong byte size: the data section holds fewer bytes than q8_0 [2, 32] needs (68).
  ExpectError(one({"t", {32, 2}, 8, 0, Filled(40, 0)}), "extends past end of file");
}

// Real files: counts known from the gguf Python package (tests/py/test_io_gguf.py compares all).
TEST(GgufTest, RealModels) {
  std::string home = std::getenv("HOME") ? std::getenv("HOME") : "";
  struct Known {
    const char* file;
    size_t n_tensors;
    const char* arch;
    const char* int_key;
    int64_t int_value;
  };
  const Known kKnown[] = {
      {"gemma-3-270m-q4_k_m.gguf", 236, "gemma3", "gemma3.block_count", 18},
      {"SmolLM2-135M-Instruct.Q4_1.gguf", 272, "llama", "llama.block_count", 30},
  };
  int n_checked = 0;
  for (const Known& k : kKnown) {
    std::string path = home + "/.cache/kiln/models/" + k.file;
    if (!std::filesystem::exists(path)) continue;
    auto g = GgufFile::Open(path);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    EXPECT_EQ((*g)->tensors().size(), k.n_tensors) << k.file;
    EXPECT_EQ((*g)->FindMeta("general.architecture")->s, k.arch);
    EXPECT_EQ(*(*g)->FindMeta(k.int_key)->AsInt(k.int_key), k.int_value);
    ++n_checked;
  }
  if (n_checked == 0) GTEST_SKIP() << "no models in ~/.cache/kiln/models (scripts/fetch_models.sh)";
}

TEST(GgufTest, TokenizerVocabFilesOpen) {
  // ../shared beside the checkout (ctest runs in the source dir), as CI lays it out.
  std::string dir = "../shared/data/tokenizer-vectors";
  if (access(dir.c_str(), R_OK) != 0) dir = "/work/shared/data/tokenizer-vectors";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << dir << " is absent";
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".gguf") continue;
    auto g = GgufFile::Open(e.path().string());
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    EXPECT_NE((*g)->FindMeta("tokenizer.ggml.model"), nullptr) << e.path();
    ++n;
  }
  EXPECT_GT(n, 0);
}

}  // namespace
}  // namespace kiln::io
