// Reference kernels of the legacy 32-element block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// Q8_1). The float expressions keep ggml's shape and order (which operand is multiplied
// first, where a value is converted) because that is what makes the blocks byte-identical;
// this file must be compiled without FP contraction (see kernels/CMakeLists.txt).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "kernels/ref/quant_rows.h"
#include "kernels/ref/quant_util.h"
#include "tensor/quant_blocks.h"

namespace kiln::kernels::ref {
namespace {

using internal::LoadBlock;
using internal::MaxOrNan;
using internal::NumBlocks;
using internal::StoreBlock;
using internal::TruncToInt8;
using internal::TruncToUint8;

// The value of largest magnitude in a block, with its sign (first one wins on ties).
float SignedAbsMax(const float* x, int n) {
  float amax = 0.0f;
  float max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void MinMax(const float* x, int n, float* min_out, float* max_out) {
  float min = FLT_MAX;
  float max = -FLT_MAX;
  for (int j = 0; j < n; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  *min_out = min;
  *max_out = max;
}

float AbsMax(const float* x, int n) {
  float amax = 0.0f;
  for (int j = 0; j < n; ++j) amax = MaxOrNan(amax, std::fabs(x[j]));
  return amax;
}

float Inverse(float d) { return d != 0.0f ? 1.0f / d : 0.0f; }

// Packs 5-bit values: low nibbles into qs (j | j+16 << 4), bit 4 of element j into qh bit j.
void Pack5(const uint8_t* q, uint8_t* qs, uint8_t* qh_bytes) {
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    const uint8_t q0 = q[j];
    const uint8_t q1 = q[j + kQK / 2];
    qs[j] = static_cast<uint8_t>((q0 & 0x0F) | ((q1 & 0x0F) << 4));
    qh |= static_cast<uint32_t>((q0 & 0x10u) >> 4) << j;
    qh |= static_cast<uint32_t>((q1 & 0x10u) >> 4) << (j + kQK / 2);
  }
  std::memcpy(qh_bytes, &qh, sizeof(qh));
}

// The 5-bit values of a Q5 block, in element order.
void Unpack5(const uint8_t* qs, const uint8_t* qh_bytes, int* q) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, sizeof(qh));
  for (int j = 0; j < kQK / 2; ++j) {
    q[j] = (qs[j] & 0x0F) | static_cast<int>(((qh >> j) << 4) & 0x10);
    q[j + kQK / 2] = (qs[j] >> 4) | static_cast<int>((qh >> (j + 12)) & 0x10);
  }
}

// sum_j q[j] * a[j] over one block, as two half sums like ggml (integers: order is free).
int DotBlock(const int* q, const int8_t* a) {
  int sum = 0;
  for (int j = 0; j < kQK; ++j) sum += q[j] * a[j];
  return sum;
}

void Unpack4(const uint8_t* qs, int offset, int* q) {
  for (int j = 0; j < kQK / 2; ++j) {
    q[j] = (qs[j] & 0x0F) - offset;
    q[j + kQK / 2] = (qs[j] >> 4) - offset;
  }
}

}  // namespace

// ── Quantize ────────────────────────────────────────────────────────────────────────────

void QuantizeRowQ4_0(const float* x, void* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK);
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const float d = SignedAbsMax(x, kQK) / -8;
    const float id = Inverse(d);
    BlockQ4_0 b;
    b.d = Fp32ToFp16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>(TruncToInt8(x[j] * id + 8.5f)));
      const int q1 = std::min(15, static_cast<int>(TruncToInt8(x[j + kQK / 2] * id + 8.5f)));
      b.qs[j] = static_cast<uint8_t>(static_cast<uint8_t>(q0) | (static_cast<uint8_t>(q1) << 4));
    }
    StoreBlock(y, i, b);
  }
}

void QuantizeRowQ4_1(const float* x, void* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK);
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float min, max;
    MinMax(x, kQK, &min, &max);
    const float d = (max - min) / 15;
    const float id = Inverse(d);
    BlockQ4_1 b;
    b.d = Fp32ToFp16(d);
    b.m = Fp32ToFp16(min);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>(TruncToInt8((x[j] - min) * id + 0.5f)));
      const int q1 =
          std::min(15, static_cast<int>(TruncToInt8((x[j + kQK / 2] - min) * id + 0.5f)));
      b.qs[j] = static_cast<uint8_t>(static_cast<uint8_t>(q0) | (static_cast<uint8_t>(q1) << 4));
    }
    StoreBlock(y, i, b);
  }
}

void QuantizeRowQ5_0(const float* x, void* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK);
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const float d = SignedAbsMax(x, kQK) / -16;
    const float id = Inverse(d);
    BlockQ5_0 b;
    b.d = Fp32ToFp16(d);
    uint8_t q[kQK];
    for (int j = 0; j < kQK; ++j) {
      q[j] = static_cast<uint8_t>(std::min(31, static_cast<int>(TruncToInt8(x[j] * id + 16.5f))));
    }
    Pack5(q, b.qs, b.qh);
    StoreBlock(y, i, b);
  }
}

void QuantizeRowQ5_1(const float* x, void* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK);
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float min, max;
    MinMax(x, kQK, &min, &max);
    const float d = (max - min) / 31;
    const float id = Inverse(d);
    BlockQ5_1 b;
    b.d = Fp32ToFp16(d);
    b.m = Fp32ToFp16(min);
    uint8_t q[kQK];
    // No clamp to 31 here, as in ggml: a value rounding to 32 wraps in the packing.
    for (int j = 0; j < kQK; ++j) q[j] = TruncToUint8((x[j] - min) * id + 0.5f);
    Pack5(q, b.qs, b.qh);
    StoreBlock(y, i, b);
  }
}

void QuantizeRowQ8_0(const float* x, void* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK);
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const float d = AbsMax(x, kQK) / 127;
    const float id = Inverse(d);
    BlockQ8_0 b;
    b.d = Fp32ToFp16(d);
    for (int j = 0; j < kQK; ++j) b.qs[j] = TruncToInt8(std::round(x[j] * id));
    StoreBlock(y, i, b);
  }
}

void QuantizeRowQ8_1(const float* x, void* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK);
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    const float d = AbsMax(x, kQK) / 127;
    const float id = Inverse(d);
    BlockQ8_1 b;
    b.d = Fp32ToFp16(d);
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
      b.qs[j] = TruncToInt8(std::round(x[j] * id));
      sum += b.qs[j];
    }
    b.s = Fp32ToFp16(static_cast<float>(sum) * d);
    StoreBlock(y, i, b);
  }
}

// Activation quantizers for dot products: the arithmetic ggml's CPU backend uses at inference
// on x86 (id = 127 / amax, round half to even), which differs from its _ref weight quantizer
// (id = 1 / d, round half away from zero) in the last bit often enough to change greedy
// decoding. Weights keep QuantizeRowQ8_0 (bit-exact with quantize_row_q8_0_ref).
namespace {

// Returns the sum of the quants; *d_out gets the float scale.
template <typename Block>
int32_t QuantizeActivationBlock(const float* x, Block* b, float* d_out) {
  const float amax = AbsMax(x, kQK);
  const float d = amax / 127;
  *d_out = d;
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  b->d = Fp32ToFp16(d);
  int32_t sum = 0;
  for (int j = 0; j < kQK; ++j) {
    b->qs[j] = TruncToInt8(std::nearbyint(x[j] * id));
    sum += b->qs[j];
  }
  return sum;
}

}  // namespace

void QuantizeActivationRowQ8_0(const float* x, void* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK);
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    BlockQ8_0 b;
    float d;
    QuantizeActivationBlock(x, &b, &d);
    StoreBlock(y, i, b);
  }
}

void QuantizeActivationRowQ8_1(const float* x, void* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK);
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    BlockQ8_1 b;
    float d;
    const int32_t sum = QuantizeActivationBlock(x, &b, &d);
    b.s = Fp32ToFp16(static_cast<float>(sum) * d);
    StoreBlock(y, i, b);
  }
}

// ── Dequantize ──────────────────────────────────────────────────────────────────────────

void DequantizeRowQ4_0(const void* x, float* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK);
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const auto b = LoadBlock<BlockQ4_0>(x, i);
    const float d = Fp16ToFp32(b.d);
    int q[kQK];
    Unpack4(b.qs, 8, q);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(q[j]) * d;
  }
}

void DequantizeRowQ4_1(const void* x, float* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK);
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const auto b = LoadBlock<BlockQ4_1>(x, i);
    const float d = Fp16ToFp32(b.d);
    const float m = Fp16ToFp32(b.m);
    int q[kQK];
    Unpack4(b.qs, 0, q);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(q[j]) * d + m;
  }
}

void DequantizeRowQ5_0(const void* x, float* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK);
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const auto b = LoadBlock<BlockQ5_0>(x, i);
    const float d = Fp16ToFp32(b.d);
    int q[kQK];
    Unpack5(b.qs, b.qh, q);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(q[j] - 16) * d;
  }
}

void DequantizeRowQ5_1(const void* x, float* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK);
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const auto b = LoadBlock<BlockQ5_1>(x, i);
    const float d = Fp16ToFp32(b.d);
    const float m = Fp16ToFp32(b.m);
    int q[kQK];
    Unpack5(b.qs, b.qh, q);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(q[j]) * d + m;
  }
}

void DequantizeRowQ8_0(const void* x, float* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK);
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const auto b = LoadBlock<BlockQ8_0>(x, i);
    const float d = Fp16ToFp32(b.d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(b.qs[j]) * d;
  }
}

void DequantizeRowQ8_1(const void* x, float* y, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK);
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const auto b = LoadBlock<BlockQ8_1>(x, i);
    const float d = Fp16ToFp32(b.d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(b.qs[j]) * d;
  }
}

// ── Dot products (weight row · activation row) ──────────────────────────────────────────

float VecDotQ4_0Q8_0(const void* w, const void* a, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK);
  float sum = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    const auto x = LoadBlock<BlockQ4_0>(w, i);
    const auto y = LoadBlock<BlockQ8_0>(a, i);
    int q[kQK];
    Unpack4(x.qs, 8, q);
    const int sumi = DotBlock(q, y.qs);
    sum += static_cast<float>(sumi) * Fp16ToFp32(x.d) * Fp16ToFp32(y.d);
  }
  return sum;
}

float VecDotQ4_1Q8_1(const void* w, const void* a, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK);
  float sum = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    const auto x = LoadBlock<BlockQ4_1>(w, i);
    const auto y = LoadBlock<BlockQ8_1>(a, i);
    int q[kQK];
    Unpack4(x.qs, 0, q);
    const int sumi = DotBlock(q, y.qs);
    sum += (Fp16ToFp32(x.d) * Fp16ToFp32(y.d)) * static_cast<float>(sumi) +
           Fp16ToFp32(x.m) * Fp16ToFp32(y.s);
  }
  return sum;
}

float VecDotQ5_0Q8_0(const void* w, const void* a, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK);
  float sum = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    const auto x = LoadBlock<BlockQ5_0>(w, i);
    const auto y = LoadBlock<BlockQ8_0>(a, i);
    int q[kQK];
    Unpack5(x.qs, x.qh, q);
    for (int& v : q) v -= 16;
    const int sumi = DotBlock(q, y.qs);
    sum += (Fp16ToFp32(x.d) * Fp16ToFp32(y.d)) * static_cast<float>(sumi);
  }
  return sum;
}

float VecDotQ5_1Q8_1(const void* w, const void* a, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK);
  float sum = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    const auto x = LoadBlock<BlockQ5_1>(w, i);
    const auto y = LoadBlock<BlockQ8_1>(a, i);
    int q[kQK];
    Unpack5(x.qs, x.qh, q);
    const int sumi = DotBlock(q, y.qs);
    sum += (Fp16ToFp32(x.d) * Fp16ToFp32(y.d)) * static_cast<float>(sumi) +
           Fp16ToFp32(x.m) * Fp16ToFp32(y.s);
  }
  return sum;
}

float VecDotQ8_0Q8_0(const void* w, const void* a, int64_t n) {
  const int64_t nb = NumBlocks(n, kQK);
  float sum = 0.0f;
  for (int64_t i = 0; i < nb; ++i) {
    const auto x = LoadBlock<BlockQ8_0>(w, i);
    const auto y = LoadBlock<BlockQ8_0>(a, i);
    int sumi = 0;
    for (int j = 0; j < kQK; ++j) sumi += x.qs[j] * y.qs[j];
    sum += static_cast<float>(sumi) * (Fp16ToFp32(x.d) * Fp16ToFp32(y.d));
  }
  return sum;
}

}  // namespace kiln::kernels::ref
