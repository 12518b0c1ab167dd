// Packed weight layouts: a quantized matrix's rows interleaved in groups of kPackRows at load
// time, so one vector instruction works on the same block of 16 rows and the per-row result
// needs no horizontal sum. The packed matrix has exactly the original's bytes, moved: row
// bytes, matrix size and block contents are unchanged (memory is never doubled).
//
// Layout. Group g (rows [16g, 16g + 16)) occupies bytes [16g·row_bytes, 16(g+1)·row_bytes).
// Inside a group, block b (elements [32b, 32b + 32) of every row; for the K types the
// super-block of 256) follows block b − 1 and holds, in this order, fields of 16 f16 values
// (row r's at +2r, 32 bytes) and fields of chunks of 64 bytes = 16 rows × 4 bytes (row r's 4
// bytes at chunk + 4r):
//   kQ4_0_R16: 16 d; 4 chunks. Chunk j, row r, byte i (j < 4, i < 4) = q[4j+i] | q[16+4j+i] << 4,
//              q[e] the 4-bit value (0…15) of element e of the row's block: the low nibbles
//              of chunk j are elements 4j…4j+3, the high nibbles elements 16+4j…16+4j+3
//              (chunk j = the file's qs[4j…4j+3]).
//   kQ8_0_R16: 16 d; 8 chunks. Chunk j, row r, byte i (j < 8, i < 4) = uint8(qs[4j+i] + 128)
//              (the signed value offset to unsigned, for u8 × s8 dot instructions).
//   kQ5_0_R16: 16 d; 4 nibble chunks exactly as kQ4_0_R16 (the low 4 bits of the 5-bit q);
//              then 1 chunk of high bits: row r's 32-bit word H (little endian) has at bit
//              c + 8i the 5th bit of element 4c + i (c < 8, i < 4), i.e. of byte i of "chunk"
//              c, where c < 4 are the low nibbles of nibble chunk c and c ≥ 4 the high nibbles
//              of nibble chunk c − 4. (H << (4 − c)) & 0x10101010 (c ≤ 4; H >> (c − 4) for
//              c > 4) gives 0x10 in each byte whose element has the bit: one shift, one AND.
//   kQ4_K_R16: 16 d; 16 dmin; 3 chunks of the 12 scale bytes (chunk w = the file's
//              scales[4w…4w+3]: 6-bit sub-scales and sub-mins, decoded in the kernel); 32
//              chunks of nibbles (chunk c = the file's qs[4c…4c+3]: low nibbles elements
//              64(c/8) + 4(c%8) + i of sub-block 2(c/8), high nibbles the same + 32, sub-block
//              2(c/8) + 1).
//   kQ6_K_R16: 16 d; 4 chunks of the 16 int8 sub-scales (chunk w = scales[4w…4w+3]); then for
//              h < 2, L < 8 three chunks: the file's ql[64h + 4L …+3], ql[64h + 32 + 4L …+3]
//              and qh[32h + 4L …+3] (one pass over the block in the kernel's order). Bytes
//              keep the file's meaning: ql[64h + l] (l < 32) holds elements 128h + l (low
//              nibble) and 128h + l + 64 (high), ql[64h + 32 + l] elements 128h + l + 32 and
//              128h + l + 96; qh[32h + l] bits 2s…2s+1 are the top 2 bits of element
//              128h + 32s + l.
//
// Arithmetic. Q4_0, Q5_0 and Q8_0 packed gemms compute, for every (row, token), the block
// sum in integers (exact, the weight as signed value: q − 8, q5 − 16, qs) and accumulate
// blocks in order with one fused multiply-add:
//   acc = 0;  for b: acc = fma(float(isum_b), d_w[b] * d_a[b], acc);  out = acc
// (d_w·d_a rounded to float first), the shape of llama.cpp's repacked x86 kernels.
// Q4_K (activations Q8_K: f32 d_a, bsums), per super-block, all integer sums exact:
//   isum = Σ_j sc_j · dot_j   (j < 8 sub-blocks of 32; dot_j over the nibbles 0…15 and the int8
//                              activations; |isum| ≤ 8·63·32·15·127 < 2^25)
//   msum = Σ_j m_j · (bsums[2j] + bsums[2j+1])
//   acc = fma(float(isum), d_w·d_a, acc);  acc = fma(float(−msum), dmin_w·d_a, acc)
// Q6_K, per super-block: isum = Σ_j sc_j · dot_j (j < 16 sub-blocks of 16, dot_j over q6 − 32
// in [−32, 31] and the activations: |dot_j| ≤ 16·32·128, |isum| ≤ 16·128·65536 = 2^27, so
// int32 is exact); acc = fma(float(isum), d_w·d_a, acc).
// Every table's packed gemm gives exactly ref's bits; the order is per (row, token), so a
// token's result does not depend on the batch (batch invariance) and decode equals prefill.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "tensor/dtype.h"

namespace kiln::kernels {

constexpr int64_t kPackRows = 16;

// The packed layout of weight type t (kQ4_0 → kQ4_0_R16, kQ8_0 → kQ8_0_R16, kQ5_0, kQ4_K,
// kQ6_K → …_R16), if it has one.
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
// UnpackedTypeOf(packed) · activation row (Q8_0; Q8_K for the K types), in the order above.
float VecDotPackedOrder(DType packed, const void* w_row, const void* a_row, int64_t k);
// The ref table's gemm for packed types (GemmFn contract of kernel_table.h, with row_begin
// and row_end multiples of kPackRows): unpacks each row and calls VecDotPackedOrder.
#define KILN_REF_DECLARE_PACKED_GEMM(T)                                                     \
  void Gemm##T(const void* w, size_t w_row_bytes, const void* a, size_t a_row_bytes,         \
               int64_t n_tokens, int64_t k, float* out, int64_t out_stride, int64_t row_begin, \
               int64_t row_end);
KILN_REF_DECLARE_PACKED_GEMM(Q4_0R16)
KILN_REF_DECLARE_PACKED_GEMM(Q8_0R16)
KILN_REF_DECLARE_PACKED_GEMM(Q5_0R16)
KILN_REF_DECLARE_PACKED_GEMM(Q4_KR16)
KILN_REF_DECLARE_PACKED_GEMM(Q6_KR16)
#undef KILN_REF_DECLARE_PACKED_GEMM
}  // namespace ref

}  // namespace kiln::kernels
