// kernels::ref::QuantizeRow / DequantizeRow / VecDot: one table row per type, dispatching
// to the per-type kernels of quant_rows.h; plus the plain-type (F32/F16/BF16) kernels and
// kernels::DotTypeFor.
#include <cstring>

#include "base/check.h"
#include "kernels/quant.h"
#include "kernels/ref/quant_rows.h"
#include "tensor/fp16.h"

namespace kiln::kernels {
namespace {

struct RefRowKernels {
  DType type;
  QuantizeRowFn quantize;      // nullptr: kiln never produces this type
  DequantizeRowFn dequantize;
  VecDotFn vec_dot;            // nullptr: not a weight type
  DType dot_type;
};

constexpr RefRowKernels kRows[] = {
    {DType::kF32, ref::QuantizeRowF32, ref::DequantizeRowF32, ref::VecDotF32, DType::kF32},
    {DType::kF16, ref::QuantizeRowF16, ref::DequantizeRowF16, ref::VecDotF16, DType::kF16},
    {DType::kBF16, ref::QuantizeRowBF16, ref::DequantizeRowBF16, ref::VecDotBF16, DType::kBF16},
    {DType::kQ4_0, ref::QuantizeRowQ4_0, ref::DequantizeRowQ4_0, ref::VecDotQ4_0Q8_0,
     DType::kQ8_0},
    {DType::kQ4_1, ref::QuantizeRowQ4_1, ref::DequantizeRowQ4_1, ref::VecDotQ4_1Q8_1,
     DType::kQ8_1},
    {DType::kQ5_0, ref::QuantizeRowQ5_0, ref::DequantizeRowQ5_0, ref::VecDotQ5_0Q8_0,
     DType::kQ8_0},
    {DType::kQ5_1, ref::QuantizeRowQ5_1, ref::DequantizeRowQ5_1, ref::VecDotQ5_1Q8_1,
     DType::kQ8_1},
    {DType::kQ8_0, ref::QuantizeRowQ8_0, ref::DequantizeRowQ8_0, ref::VecDotQ8_0Q8_0,
     DType::kQ8_0},
    {DType::kQ8_1, ref::QuantizeRowQ8_1, ref::DequantizeRowQ8_1, nullptr, DType::kQ8_1},
    {DType::kQ4_K, ref::QuantizeRowQ4_K, ref::DequantizeRowQ4_K, ref::VecDotQ4_KQ8_K,
     DType::kQ8_K},
    {DType::kQ5_K, ref::QuantizeRowQ5_K, ref::DequantizeRowQ5_K, ref::VecDotQ5_KQ8_K,
     DType::kQ8_K},
    {DType::kQ6_K, ref::QuantizeRowQ6_K, ref::DequantizeRowQ6_K, ref::VecDotQ6_KQ8_K,
     DType::kQ8_K},
    {DType::kQ8_K, ref::QuantizeRowQ8_K, ref::DequantizeRowQ8_K, nullptr, DType::kQ8_K},
};

const RefRowKernels& RowsFor(DType type) {
  for (const RefRowKernels& r : kRows) {
    if (r.type == type) return r;
  }
  KILN_CHECK(false) << "no reference kernels for dtype " << DTypeName(type);
  return kRows[0];  // unreachable
}

}  // namespace

DType DotTypeFor(DType weight_type) {
  const RefRowKernels& r = RowsFor(weight_type);
  KILN_CHECK(r.vec_dot != nullptr) << DTypeName(weight_type) << " is not a weight type";
  return r.dot_type;
}

namespace ref {

void QuantizeRow(DType type, const float* x, void* y, int64_t n) {
  RowsFor(type).quantize(x, y, n);
}

void DequantizeRow(DType type, const void* x, float* y, int64_t n) {
  RowsFor(type).dequantize(x, y, n);
}

float VecDot(DType weight_type, const void* w, const void* a, int64_t n) {
  const RefRowKernels& r = RowsFor(weight_type);
  KILN_CHECK(r.vec_dot != nullptr) << DTypeName(weight_type) << " is not a weight type";
  return r.vec_dot(w, a, n);
}

// ── Plain types ─────────────────────────────────────────────────────────────────────────

namespace {

template <typename T>
T LoadAt(const void* base, int64_t i) {
  T v;
  std::memcpy(&v, static_cast<const uint8_t*>(base) + i * static_cast<int64_t>(sizeof(T)),
              sizeof(T));
  return v;
}

template <typename T>
void StoreAt(void* base, int64_t i, T v) {
  std::memcpy(static_cast<uint8_t*>(base) + i * static_cast<int64_t>(sizeof(T)), &v, sizeof(T));
}

// ggml_vec_dot_{f32,f16,bf16} (generic): f32 products, double accumulation.
template <typename T, typename ToF32>
float DotDoubleAccum(const void* w, const void* a, int64_t n, ToF32 to_f32) {
  KILN_CHECK(n >= 0) << "negative row length " << n;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float p = to_f32(LoadAt<T>(w, i)) * to_f32(LoadAt<T>(a, i));
    sum += static_cast<double>(p);
  }
  return static_cast<float>(sum);
}

float Identity(float v) { return v; }

}  // namespace

void QuantizeRowF32(const float* x, void* y, int64_t n) {
  KILN_CHECK(n >= 0) << "negative row length " << n;
  if (n > 0) std::memmove(y, x, static_cast<size_t>(n) * sizeof(float));
}

void QuantizeRowF16(const float* x, void* y, int64_t n) {
  KILN_CHECK(n >= 0) << "negative row length " << n;
  for (int64_t i = 0; i < n; ++i) StoreAt<uint16_t>(y, i, Fp32ToFp16(x[i]));
}

void QuantizeRowBF16(const float* x, void* y, int64_t n) {
  KILN_CHECK(n >= 0) << "negative row length " << n;
  for (int64_t i = 0; i < n; ++i) StoreAt<uint16_t>(y, i, Fp32ToBf16(x[i]));
}

void DequantizeRowF32(const void* x, float* y, int64_t n) {
  KILN_CHECK(n >= 0) << "negative row length " << n;
  if (n > 0) std::memmove(y, x, static_cast<size_t>(n) * sizeof(float));
}

void DequantizeRowF16(const void* x, float* y, int64_t n) {
  KILN_CHECK(n >= 0) << "negative row length " << n;
  for (int64_t i = 0; i < n; ++i) y[i] = Fp16ToFp32(LoadAt<uint16_t>(x, i));
}

void DequantizeRowBF16(const void* x, float* y, int64_t n) {
  KILN_CHECK(n >= 0) << "negative row length " << n;
  for (int64_t i = 0; i < n; ++i) y[i] = Bf16ToFp32(LoadAt<uint16_t>(x, i));
}

float VecDotF32(const void* w, const void* a, int64_t n) {
  return DotDoubleAccum<float>(w, a, n, Identity);
}

float VecDotF16(const void* w, const void* a, int64_t n) {
  return DotDoubleAccum<uint16_t>(w, a, n, Fp16ToFp32);
}

float VecDotBF16(const void* w, const void* a, int64_t n) {
  return DotDoubleAccum<uint16_t>(w, a, n, Bf16ToFp32);
}

}  // namespace ref
}  // namespace kiln::kernels
