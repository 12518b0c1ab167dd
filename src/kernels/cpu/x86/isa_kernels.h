// Declarations of the kernels each x86 ISA directory (avx2/, avx512/) defines, with the
// same names in the ISA's namespace: kernels::avx2::VecDotQ4_0, kernels::avx512::GemmQ4_K …
// Plain declarations only (no inline code), so this header is safe to include from files
// compiled with and without ISA flags. cpu_tables.cc turns them into KernelTables.
#pragma once

#include <cstddef>
#include <cstdint>

// Weight types with a vec_dot/gemm pair (the activation type is DotTypeFor(weight type)).
#define KILN_X86_DOT_TYPES(X) \
  X(F32) X(F16) X(BF16) X(Q4_0) X(Q4_1) X(Q5_0) X(Q5_1) X(Q8_0) X(Q4_K) X(Q5_K) X(Q6_K)

#define KILN_X86_DECLARE_DOT(T)                                                             \
  float VecDot##T(const void* w, const void* a, int64_t n);                                 \
  void Gemm##T(const void* w, size_t w_row_bytes, const void* a, size_t a_row_bytes,         \
               int64_t n_tokens, int64_t k, float* out, int64_t out_stride, int64_t row_begin, \
               int64_t row_end);

// Defines the pair for weight type T from block kernel K (tile_inl.h): gemm tiles of kRows
// rows × kTile tokens, matrix × vector (one token) tiles of kVecRows rows.
#define KILN_X86_DEFINE_DOT(T, K, kRows, kTile, kVecRows)                                   \
  float VecDot##T(const void* w, const void* a, int64_t n) {                                \
    return ::kiln::kernels::x86::VecDot<K>(w, a, n);                                         \
  }                                                                                          \
  void Gemm##T(const void* w, size_t w_row_bytes, const void* a, size_t a_row_bytes,         \
               int64_t n_tokens, int64_t k, float* out, int64_t out_stride, int64_t row_begin, \
               int64_t row_end) {                                                            \
    ::kiln::kernels::x86::Gemm<K, kRows, kTile, kVecRows>(w, w_row_bytes, a, a_row_bytes,   \
                                                         n_tokens, k, out, out_stride,       \
                                                         row_begin, row_end);                \
  }

// Packed layouts (kernels/pack.h): gemm only, row_begin/row_end multiples of 16 (packed.cc).
#define KILN_X86_DECLARE_PACKED_GEMM(T)                                                     \
  void Gemm##T(const void* w, size_t w_row_bytes, const void* a, size_t a_row_bytes,         \
               int64_t n_tokens, int64_t k, float* out, int64_t out_stride, int64_t row_begin, \
               int64_t row_end);
#define KILN_X86_PACKED_TYPES(X) X(Q4_0R16) X(Q8_0R16) X(Q5_0R16) X(Q4_KR16) X(Q6_KR16)
// Defines packed type T's gemm from micro-kernel M (x86/packed_inl.h's PackedGemm<M>).
#define KILN_X86_DEFINE_PACKED_GEMM(T, M)                                                   \
  void Gemm##T(const void* w, size_t w_row_bytes, const void* a, size_t a_row_bytes,         \
               int64_t n_tokens, int64_t k, float* out, int64_t out_stride, int64_t row_begin, \
               int64_t row_end) {                                                            \
    ::kiln::kernels::x86::PackedGemm<M>(w, w_row_bytes, a, a_row_bytes, n_tokens, k, out,     \
                                        out_stride, row_begin, row_end);                     \
  }

namespace kiln::kernels::avx2 {

// f32 activations → dot types; byte-identical to the reference quantizers.
void QuantizeQ8_0(const float* x, void* y, int64_t n);
void QuantizeQ8_1(const float* x, void* y, int64_t n);
void QuantizeQ8_K(const float* x, void* y, int64_t n);
void QuantizeF16(const float* x, void* y, int64_t n);
void QuantizeBF16(const float* x, void* y, int64_t n);
void CopyF32(const float* x, void* y, int64_t n);

KILN_X86_DOT_TYPES(KILN_X86_DECLARE_DOT)
KILN_X86_PACKED_TYPES(KILN_X86_DECLARE_PACKED_GEMM)

}  // namespace kiln::kernels::avx2

namespace kiln::kernels::avx512 {

// The AVX-512 table reuses avx2's quantizers (a small share of the time, and identical bytes).
KILN_X86_DOT_TYPES(KILN_X86_DECLARE_DOT)
KILN_X86_PACKED_TYPES(KILN_X86_DECLARE_PACKED_GEMM)

}  // namespace kiln::kernels::avx512
