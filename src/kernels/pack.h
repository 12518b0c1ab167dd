// Packed weight layouts: a quantized matrix's rows interleaved in groups of kPackRows at load
// time, so one vector instruction works on the same block of 16 rows and the per-row result
// needs no horizontal sum. The packed matrix has exactly the original's bytes, moved: row
// bytes, matrix size and block contents are unchanged (memory is never doubled).
//
// Layout. Group g (rows [16g, 16g + 16)) occupies bytes [16g·row_bytes, 16(g+1)·row_bytes).
// Inside a group, block b (elements [32b, 32b + 32) of every row) follows block b − 1:
//   16 f16 scales, d of row 0 … row 15 of the group (32 bytes), then the quants in chunks of
//   64 bytes = 16 rows × 4 bytes (row r's 4 bytes at chunk + 4r):
//   kQ4_0_R16: 4 chunks. Chunk j, row r, byte i (j < 4, i < 4) = q[4j+i] | q[16+4j+i] << 4,
//              q[e] the 4-bit value (0…15) of element e of the row's block: the low nibbles
//              of chunk j are elements 4j…4j+3, the high nibbles elements 16+4j…16+4j+3.
//   kQ8_0_R16: 8 chunks. Chunk j, row r, byte i (j < 8, i < 4) = uint8(qs[4j+i] + 128)
//              (the signed value offset to unsigned, for u8 × s8 dot instructions).
//
// Arithmetic. A packed type's gemm computes, for every (row, token), the block sum in integers
// (exact) and accumulates blocks in order with one fused multiply-add:
//   acc = 0;  for b: acc = fma(float(isum_b), d_w[b] * d_a[b], acc);  out = acc
// (d_w·d_a rounded to float first), the shape of llama.cpp's repacked x86 kernels. Every
// table's packed gemm gives exactly ref's bits; the order is per (row, token), so a token's
// result does not depend on the batch (batch invariance) and decode equals prefill.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "tensor/dtype.h"

namespace kiln::kernels {

constexpr int64_t kPackRows = 16;

// The packed layout of weight type t (kQ4_0 → kQ4_0_R16, kQ8_0 → kQ8_0_R16), if it has one.
std::optional<DType> PackedTypeOf(DType t);
// The original type of a packed type (kQ4_0_R16 → kQ4_0); t itself for other types.
DType UnpackedTypeOf(DType t);
bool IsPacked(DType t);

// Packs a whole matrix: src has `rows` rows of row_bytes bytes of type t (rows % kPackRows ==
// 0, k elements per row, PackedTypeOf(t) set); dst (rows · row_bytes bytes, not overlapping
// src) receives the packed layout.
void PackRows(DType t, const void* src, size_t row_bytes, int64_t rows, int64_t k, void* dst);

// Row r of a packed matrix (type `packed`), written in the original type's layout to dst
// (row_bytes bytes).
void UnpackRow(DType packed, const void* data, size_t row_bytes, int64_t r, int64_t k,
               void* dst);

namespace ref {
// The packed types' arithmetic on an original (unpacked) row: weight row of type
// UnpackedTypeOf(packed) · Q8_0 activation row, in the order described above.
float VecDotPackedOrder(DType packed, const void* w_row, const void* a_row, int64_t k);
// The ref table's gemm for packed types (GemmFn contract of kernel_table.h, with row_begin
// and row_end multiples of kPackRows): unpacks each row and calls VecDotPackedOrder.
void GemmQ4_0R16(const void* w, size_t w_row_bytes, const void* a, size_t a_row_bytes,
                 int64_t n_tokens, int64_t k, float* out, int64_t out_stride, int64_t row_begin,
                 int64_t row_end);
void GemmQ8_0R16(const void* w, size_t w_row_bytes, const void* a, size_t a_row_bytes,
                 int64_t n_tokens, int64_t k, float* out, int64_t out_stride, int64_t row_begin,
                 int64_t row_end);
}  // namespace ref

}  // namespace kiln::kernels
