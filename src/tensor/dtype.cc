#include "tensor/dtype.h"

#include <limits>

#include "base/check.h"

namespace kiln {
namespace {

// Block sizes and byte sizes are ggml's (see quant_blocks.h for the layouts).
constexpr DTypeInfo kInfos[] = {
    {DType::kF32, "f32", 1, 4, false, true},
    {DType::kF16, "f16", 1, 2, false, true},
    {DType::kQ4_0, "q4_0", 32, 18, true, true},
    {DType::kQ4_1, "q4_1", 32, 20, true, true},
    {DType::kQ5_0, "q5_0", 32, 22, true, true},
    {DType::kQ5_1, "q5_1", 32, 24, true, true},
    {DType::kQ8_0, "q8_0", 32, 34, true, true},
    {DType::kQ8_1, "q8_1", 32, 36, true, false},
    {DType::kQ2_K, "q2_K", 256, 84, true, false},
    {DType::kQ3_K, "q3_K", 256, 110, true, false},
    {DType::kQ4_K, "q4_K", 256, 144, true, true},
    {DType::kQ5_K, "q5_K", 256, 176, true, true},
    {DType::kQ6_K, "q6_K", 256, 210, true, true},
    {DType::kQ8_K, "q8_K", 256, 292, true, true},
    {DType::kI8, "i8", 1, 1, false, false},
    {DType::kI16, "i16", 1, 2, false, false},
    {DType::kI32, "i32", 1, 4, false, false},
    {DType::kI64, "i64", 1, 8, false, false},
    {DType::kF64, "f64", 1, 8, false, false},
    {DType::kBF16, "bf16", 1, 2, false, true},
    // Sizes are per row, as the original type's: packing moves bytes, never adds any.
    {DType::kQ4_0_R16, "q4_0_r16", 32, 18, true, true, /*internal=*/true},
    {DType::kQ8_0_R16, "q8_0_r16", 32, 34, true, true, /*internal=*/true},
    {DType::kQ5_0_R16, "q5_0_r16", 32, 22, true, true, /*internal=*/true},
    {DType::kQ4_K_R16, "q4_K_r16", 256, 144, true, true, /*internal=*/true},
    {DType::kQ6_K_R16, "q6_K_r16", 256, 210, true, true, /*internal=*/true},
};

const DTypeInfo* FindAny(uint32_t id) {
  for (const DTypeInfo& info : kInfos) {
    if (static_cast<uint32_t>(info.dtype) == id) return &info;
  }
  return nullptr;
}

}  // namespace

const DTypeInfo* FindDTypeInfo(uint32_t id) {
  const DTypeInfo* info = FindAny(id);
  return info != nullptr && !info->internal ? info : nullptr;
}

const DTypeInfo& Info(DType dtype) {
  const DTypeInfo* info = FindAny(static_cast<uint32_t>(dtype));
  KILN_CHECK(info != nullptr) << "unknown dtype " << static_cast<uint32_t>(dtype);
  return *info;
}

std::optional<DType> DTypeFromName(std::string_view name) {
  for (const DTypeInfo& info : kInfos) {
    if (name == info.name && !info.internal) return info.dtype;
  }
  return std::nullopt;
}

std::optional<size_t> RowBytes(DType dtype, int64_t n_elems) {
  const DTypeInfo& info = Info(dtype);
  if (n_elems < 0 || n_elems % info.block_elems != 0) return std::nullopt;
  uint64_t n_blocks = static_cast<uint64_t>(n_elems / info.block_elems);
  if (n_blocks > std::numeric_limits<uint64_t>::max() / info.block_bytes) return std::nullopt;
  return static_cast<size_t>(n_blocks * info.block_bytes);
}

}  // namespace kiln
