// Per-type reference row kernels behind kernels::ref::QuantizeRow / DequantizeRow / VecDot
// (kernels/quant.h states the contract). Each has exactly the QuantizeRowFn /
// DequantizeRowFn / VecDotFn signature, so kernel tables can point at them directly, and ISA
// tests can call one type's oracle without the dispatch switch.
//
// Quantize* equal ggml's quantize_row_*_ref byte for byte; Dequantize* equal ggml's
// dequantize_row_* bit for bit; VecDot* reproduce ggml's generic (scalar) vec_dot, block by
// block in the same order and float expression shape, so they match it bit for bit too.
#pragma once

#include <cstdint>

namespace kiln::kernels::ref {

// Plain types: "quantize" is a conversion, F32 a copy.
void QuantizeRowF32(const float* x, void* y, int64_t n);
void QuantizeRowF16(const float* x, void* y, int64_t n);
void QuantizeRowBF16(const float* x, void* y, int64_t n);
void DequantizeRowF32(const void* x, float* y, int64_t n);
void DequantizeRowF16(const void* x, float* y, int64_t n);
void DequantizeRowBF16(const void* x, float* y, int64_t n);
// Products in f32 (exact for f16/bf16 inputs), accumulated in double like ggml_vec_dot_*.
float VecDotF32(const void* w, const void* a, int64_t n);
float VecDotF16(const void* w, const void* a, int64_t n);
float VecDotBF16(const void* w, const void* a, int64_t n);

// Legacy 32-element blocks (quant_legacy.cc).
void QuantizeRowQ4_0(const float* x, void* y, int64_t n);
void QuantizeRowQ4_1(const float* x, void* y, int64_t n);
void QuantizeRowQ5_0(const float* x, void* y, int64_t n);
void QuantizeRowQ5_1(const float* x, void* y, int64_t n);
void QuantizeRowQ8_0(const float* x, void* y, int64_t n);
void QuantizeRowQ8_1(const float* x, void* y, int64_t n);
// Activation (dot-type) quantizers: ggml's x86 inference arithmetic (see quant_legacy.cc).
void QuantizeActivationRowQ8_0(const float* x, void* y, int64_t n);
void QuantizeActivationRowQ8_1(const float* x, void* y, int64_t n);
void DequantizeRowQ4_0(const void* x, float* y, int64_t n);
void DequantizeRowQ4_1(const void* x, float* y, int64_t n);
void DequantizeRowQ5_0(const void* x, float* y, int64_t n);
void DequantizeRowQ5_1(const void* x, float* y, int64_t n);
void DequantizeRowQ8_0(const void* x, float* y, int64_t n);
void DequantizeRowQ8_1(const void* x, float* y, int64_t n);  // d * q (ggml has none)
float VecDotQ4_0Q8_0(const void* w, const void* a, int64_t n);
float VecDotQ4_1Q8_1(const void* w, const void* a, int64_t n);
float VecDotQ5_0Q8_0(const void* w, const void* a, int64_t n);
float VecDotQ5_1Q8_1(const void* w, const void* a, int64_t n);
float VecDotQ8_0Q8_0(const void* w, const void* a, int64_t n);

// K super-blocks of 256 (quant_k.cc).
void QuantizeRowQ4_K(const float* x, void* y, int64_t n);
void QuantizeRowQ5_K(const float* x, void* y, int64_t n);
void QuantizeRowQ6_K(const float* x, void* y, int64_t n);
void QuantizeRowQ8_K(const float* x, void* y, int64_t n);
void DequantizeRowQ4_K(const void* x, float* y, int64_t n);
void DequantizeRowQ5_K(const void* x, float* y, int64_t n);
void DequantizeRowQ6_K(const void* x, float* y, int64_t n);
void DequantizeRowQ8_K(const void* x, float* y, int64_t n);
float VecDotQ4_KQ8_K(const void* w, const void* a, int64_t n);
float VecDotQ5_KQ8_K(const void* w, const void* a, int64_t n);
float VecDotQ6_KQ8_K(const void* w, const void* a, int64_t n);

}  // namespace kiln::kernels::ref
