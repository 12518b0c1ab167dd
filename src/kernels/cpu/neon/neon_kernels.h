// Declarations of the AArch64 kernels (this folder), for cpu_tables.cc. Plain declarations
// only, safe in files compiled with any flags. Two tables share them:
//   neon          Advanced SIMD (ARMv8.0): every AArch64 CPU
//   neon_dotprod  the same, with the quantized dot products on SDOT (ARMv8.2 dotprod
//                 extension; HWCAP_ASIMDDP at run time)
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/kernel_table.h"

// Weight types whose vec_dot/gemm differ between the two tables (integer dot products).
#define KILN_NEON_QUANT_TYPES(X) X(Q4_0) X(Q4_1) X(Q5_0) X(Q5_1) X(Q8_0) X(Q4_K) X(Q5_K) X(Q6_K)
// Weight types with float dot products (shared by both tables).
#define KILN_NEON_FLOAT_TYPES(X) X(F32) X(F16) X(BF16)

#define KILN_NEON_DECLARE_DOT(T)                                                            \
  float VecDot##T(const void* w, const void* a, int64_t n);                                 \
  void Gemm##T(const void* w, size_t w_row_bytes, const void* a, size_t a_row_bytes,         \
               int64_t n_tokens, int64_t k, float* out, int64_t out_stride, int64_t row_begin, \
               int64_t row_end);

// Defines the pair for weight type T from block kernel K (tile_inl.h), gemm tile kTile tokens.
#define KILN_NEON_DEFINE_DOT(T, K, kTile)                                                    \
  float VecDot##T(const void* w, const void* a, int64_t n) {                                \
    return ::kiln::kernels::arm::VecDot<K>(w, a, n);                                         \
  }                                                                                          \
  void Gemm##T(const void* w, size_t w_row_bytes, const void* a, size_t a_row_bytes,         \
               int64_t n_tokens, int64_t k, float* out, int64_t out_stride, int64_t row_begin, \
               int64_t row_end) {                                                            \
    ::kiln::kernels::arm::Gemm<K, kTile>(w, w_row_bytes, a, a_row_bytes, n_tokens, k, out,  \
                                         out_stride, row_begin, row_end);                    \
  }

namespace kiln::kernels::neon {

// f32 activations → dot types; byte-identical to the reference quantizers (quantize.cc).
void QuantizeQ8_0(const float* x, void* y, int64_t n);
void QuantizeQ8_1(const float* x, void* y, int64_t n);
void QuantizeQ8_K(const float* x, void* y, int64_t n);
void QuantizeF16(const float* x, void* y, int64_t n);
void QuantizeBF16(const float* x, void* y, int64_t n);
void CopyF32(const float* x, void* y, int64_t n);

KILN_NEON_FLOAT_TYPES(KILN_NEON_DECLARE_DOT)
KILN_NEON_QUANT_TYPES(KILN_NEON_DECLARE_DOT)

// f32 layer ops (layer.cc, attention.cc).
void Attention(const AttentionBlock& block, const KvView& kv, float* scratch,
               size_t scratch_floats);
void RmsNorm(const float* x, const float* w, float w_offset, float eps, int64_t n, float* out);
void Rope(float* x, int n_heads, int head_dim, const float* inv_freq, int32_t pos,
          RopeStyle style);
void GatedActivation(Activation act, const float* gate, const float* up, int64_t n, float* out);
void Add(float* x, const float* y, int64_t n);

}  // namespace kiln::kernels::neon

namespace kiln::kernels::neon_dotprod {

KILN_NEON_QUANT_TYPES(KILN_NEON_DECLARE_DOT)

}  // namespace kiln::kernels::neon_dotprod
