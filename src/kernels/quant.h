// Contract for quantized-type kernels: row quantize / dequantize and dot products of a weight
// row with an activation row already quantized to the weight type's "dot type" (ggml's
// vec_dot_type): Q4_0/Q5_0/Q8_0 → Q8_0, Q4_1/Q5_1 → Q8_1, Q4_K/Q5_K/Q6_K → Q8_K, F16 → F16,
// BF16 → BF16, F32 → F32. Block layouts are ggml's, bit for bit (tensor/quant_blocks.h).
//
// Every ISA implements this table; kernels/ref is the oracle the others are tested against.
// n (elements) must be a multiple of the type's block size; pointers need no alignment.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"

namespace kiln::kernels {

// Activation type a weight type's dot product consumes.
DType DotTypeFor(DType weight_type);

using QuantizeRowFn = void (*)(const float* x, void* y, int64_t n);
using DequantizeRowFn = void (*)(const void* x, float* y, int64_t n);
// Returns sum_i w[i] * a[i] over n elements, w of the weight type, a of its dot type.
using VecDotFn = float (*)(const void* w, const void* a, int64_t n);

}  // namespace kiln::kernels

namespace kiln::kernels::ref {

// Reference quantizer, equal byte for byte to ggml's quantize_row_*_ref.
// Supported for every type with Info(t).supported plus Q8_1; unsupported types KILN_CHECK.
void QuantizeRow(DType type, const float* x, void* y, int64_t n);
// Exact dequantization, equal to ggml's dequantize_row_*.
void DequantizeRow(DType type, const void* x, float* y, int64_t n);
// Reference dot product of a weight row (type) with an activation row of DotTypeFor(type),
// summing blocks in order, as ggml's generic vec_dot does.
float VecDot(DType weight_type, const void* w, const void* a, int64_t n);

}  // namespace kiln::kernels::ref
