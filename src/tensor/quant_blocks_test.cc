// The block structs must agree with the dtype table (both restate ggml's sizes).
#include "tensor/quant_blocks.h"

#include <gtest/gtest.h>

#include "tensor/dtype.h"

namespace kiln {
namespace {

TEST(QuantBlocksTest, StructSizesMatchDTypeTable) {
  struct Row {
    DType dtype;
    size_t struct_bytes;
    int64_t elems;
  };
  const Row rows[] = {
      {DType::kQ4_0, sizeof(BlockQ4_0), kQK}, {DType::kQ4_1, sizeof(BlockQ4_1), kQK},
      {DType::kQ5_0, sizeof(BlockQ5_0), kQK}, {DType::kQ5_1, sizeof(BlockQ5_1), kQK},
      {DType::kQ8_0, sizeof(BlockQ8_0), kQK}, {DType::kQ8_1, sizeof(BlockQ8_1), kQK},
      {DType::kQ4_K, sizeof(BlockQ4_K), kQK_K}, {DType::kQ5_K, sizeof(BlockQ5_K), kQK_K},
      {DType::kQ6_K, sizeof(BlockQ6_K), kQK_K}, {DType::kQ8_K, sizeof(BlockQ8_K), kQK_K},
  };
  for (const Row& r : rows) {
    const DTypeInfo& info = Info(r.dtype);
    EXPECT_EQ(info.block_bytes, r.struct_bytes) << info.name;
    EXPECT_EQ(info.block_elems, r.elems) << info.name;
    EXPECT_TRUE(info.quantized) << info.name;
  }
}

TEST(QuantBlocksTest, FieldOffsetsAreGgmls) {
  EXPECT_EQ(offsetof(BlockQ5_0, qh), 2u);
  EXPECT_EQ(offsetof(BlockQ5_1, qh), 4u);
  EXPECT_EQ(offsetof(BlockQ8_1, qs), 4u);
  EXPECT_EQ(offsetof(BlockQ4_K, scales), 4u);
  EXPECT_EQ(offsetof(BlockQ4_K, qs), 16u);
  EXPECT_EQ(offsetof(BlockQ5_K, qh), 16u);
  EXPECT_EQ(offsetof(BlockQ5_K, qs), 48u);
  EXPECT_EQ(offsetof(BlockQ6_K, qh), 128u);
  EXPECT_EQ(offsetof(BlockQ6_K, scales), 192u);
  EXPECT_EQ(offsetof(BlockQ6_K, d), 208u);
  EXPECT_EQ(offsetof(BlockQ8_K, bsums), 260u);
}

}  // namespace
}  // namespace kiln
