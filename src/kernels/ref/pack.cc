// Packed weight layouts (kernels/pack.h): packing, unpacking, and the scalar arithmetic every
// table's packed gemm must equal bit for bit.
#include "kernels/pack.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "base/check.h"
#include "tensor/fp16.h"
#include "tensor/quant_blocks.h"

namespace kiln::kernels {
namespace {

constexpr int64_t kQK = 32;
constexpr size_t kScaleBytes = 2 * kPackRows;  // 16 f16 scales per block of a group

// Bytes of one 32-element block of one row in the original layout.
size_t BlockBytes(DType t) { return t == DType::kQ4_0 ? sizeof(BlockQ4_0) : sizeof(BlockQ8_0); }

// Packs or unpacks one block of one row: `orig` is the row's block in the original layout,
// `group_block` the packed block of its group (scales, then chunks), r the row in the group.
void MoveBlock(DType t, uint8_t* orig, uint8_t* group_block, int64_t r, bool pack) {
  uint8_t* scale = group_block + 2 * r;
  uint8_t* chunks = group_block + kScaleBytes + 4 * r;
  if (pack) {
    std::memcpy(scale, orig, 2);
  } else {
    std::memcpy(orig, scale, 2);
  }
  if (t == DType::kQ4_0) {
    uint8_t* qs = orig + 2;  // qs[e] = element e (low nibble) | element 16 + e (high nibble)
    for (int j = 0; j < 4; ++j) {
      for (int i = 0; i < 4; ++i) {
        const int e = 4 * j + i;
        uint8_t& p = chunks[j * 64 + i];
        if (pack) {
          p = qs[e];  // the same nibble pairing: (e, 16 + e)
        } else {
          qs[e] = p;
        }
      }
    }
  } else {
    uint8_t* qs = orig + 2;
    for (int j = 0; j < 8; ++j) {
      for (int i = 0; i < 4; ++i) {
        uint8_t& p = chunks[j * 64 + i];
        if (pack) {
          p = static_cast<uint8_t>(qs[4 * j + i] ^ 0x80);  // int8 + 128 as uint8
        } else {
          qs[4 * j + i] = static_cast<uint8_t>(p ^ 0x80);
        }
      }
    }
  }
}

size_t GroupBlockBytes(DType t) { return BlockBytes(t) * kPackRows; }

}  // namespace

std::optional<DType> PackedTypeOf(DType t) {
  if (t == DType::kQ4_0) return DType::kQ4_0_R16;
  if (t == DType::kQ8_0) return DType::kQ8_0_R16;
  return std::nullopt;
}

DType UnpackedTypeOf(DType t) {
  if (t == DType::kQ4_0_R16) return DType::kQ4_0;
  if (t == DType::kQ8_0_R16) return DType::kQ8_0;
  return t;
}

bool IsPacked(DType t) { return t == DType::kQ4_0_R16 || t == DType::kQ8_0_R16; }

void PackRows(DType t, const void* src, size_t row_bytes, int64_t rows, int64_t k, void* dst) {
  KILN_CHECK(PackedTypeOf(t).has_value()) << DTypeName(t) << " has no packed layout";
  KILN_CHECK(rows % kPackRows == 0 && k % kQK == 0) << rows << " x " << k;
  const int64_t nb = k / kQK;
  KILN_CHECK(static_cast<size_t>(nb) * BlockBytes(t) == row_bytes) << row_bytes;
  const uint8_t* s = static_cast<const uint8_t*>(src);
  uint8_t* d = static_cast<uint8_t*>(dst);
  for (int64_t g = 0; g < rows / kPackRows; ++g) {
    uint8_t* group = d + static_cast<size_t>(g) * kPackRows * row_bytes;
    for (int64_t r = 0; r < kPackRows; ++r) {
      const uint8_t* row = s + static_cast<size_t>(g * kPackRows + r) * row_bytes;
      for (int64_t b = 0; b < nb; ++b) {
        uint8_t block[sizeof(BlockQ8_0)];
        std::memcpy(block, row + b * BlockBytes(t), BlockBytes(t));
        MoveBlock(t, block, group + b * GroupBlockBytes(t), r, /*pack=*/true);
      }
    }
  }
}

void UnpackRow(DType packed, const void* data, size_t row_bytes, int64_t r, int64_t k,
               void* dst) {
  const DType t = UnpackedTypeOf(packed);
  KILN_CHECK(IsPacked(packed) && k % kQK == 0) << DTypeName(packed) << " " << k;
  const int64_t nb = k / kQK;
  const uint8_t* group = static_cast<const uint8_t*>(data) +
                         static_cast<size_t>(r / kPackRows) * kPackRows * row_bytes;
  uint8_t* out = static_cast<uint8_t*>(dst);
  for (int64_t b = 0; b < nb; ++b) {
    // MoveBlock only reads the group when unpacking.
    MoveBlock(t, out + b * BlockBytes(t), const_cast<uint8_t*>(group + b * GroupBlockBytes(t)),
              r % kPackRows, /*pack=*/false);
  }
}

namespace ref {

float VecDotPackedOrder(DType packed, const void* w_row, const void* a_row, int64_t k) {
  const DType t = UnpackedTypeOf(packed);
  KILN_CHECK(IsPacked(packed)) << DTypeName(packed);
  const int64_t nb = k / kQK;
  const auto* w = static_cast<const uint8_t*>(w_row);
  const auto* a = static_cast<const BlockQ8_0*>(a_row);
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    BlockQ8_0 ab;
    std::memcpy(&ab, a + b, sizeof(ab));
    int32_t isum = 0;
    uint16_t d;
    if (t == DType::kQ4_0) {
      BlockQ4_0 wb;
      std::memcpy(&wb, w + b * sizeof(BlockQ4_0), sizeof(wb));
      for (int e = 0; e < 16; ++e) {
        isum += ((wb.qs[e] & 0x0F) - 8) * ab.qs[e];
        isum += ((wb.qs[e] >> 4) - 8) * ab.qs[16 + e];
      }
      d = wb.d;
    } else {
      BlockQ8_0 wb;
      std::memcpy(&wb, w + b * sizeof(BlockQ8_0), sizeof(wb));
      for (int e = 0; e < kQK; ++e) isum += wb.qs[e] * ab.qs[e];
      d = wb.d;
    }
    const float scale = Fp16ToFp32(d) * Fp16ToFp32(ab.d);
    acc = std::fma(static_cast<float>(isum), scale, acc);
  }
  return acc;
}

namespace {

void GemmPacked(DType packed, const void* w, size_t w_row_bytes, const void* a,
                size_t a_row_bytes, int64_t n_tokens, int64_t k, float* out, int64_t out_stride,
                int64_t row_begin, int64_t row_end) {
  KILN_CHECK(row_begin % kPackRows == 0 && row_end % kPackRows == 0)
      << row_begin << ".." << row_end;
  std::vector<uint8_t> row(w_row_bytes);
  for (int64_t r = row_begin; r < row_end; ++r) {
    UnpackRow(packed, w, w_row_bytes, r, k, row.data());
    for (int64_t t = 0; t < n_tokens; ++t) {
      out[t * out_stride + r] = VecDotPackedOrder(
          packed, row.data(), static_cast<const uint8_t*>(a) + t * a_row_bytes, k);
    }
  }
}

}  // namespace

void GemmQ4_0R16(const void* w, size_t w_row_bytes, const void* a, size_t a_row_bytes,
                 int64_t n_tokens, int64_t k, float* out, int64_t out_stride, int64_t row_begin,
                 int64_t row_end) {
  GemmPacked(DType::kQ4_0_R16, w, w_row_bytes, a, a_row_bytes, n_tokens, k, out, out_stride,
             row_begin, row_end);
}

void GemmQ8_0R16(const void* w, size_t w_row_bytes, const void* a, size_t a_row_bytes,
                 int64_t n_tokens, int64_t k, float* out, int64_t out_stride, int64_t row_begin,
                 int64_t row_end) {
  GemmPacked(DType::kQ8_0_R16, w, w_row_bytes, a, a_row_bytes, n_tokens, k, out, out_stride,
             row_begin, row_end);
}

}  // namespace ref
}  // namespace kiln::kernels
