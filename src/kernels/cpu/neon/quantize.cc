// The neon tables' activation quantizers (f32 row → dot type), byte-identical to the reference
// quantizers (kernels/ref): the same scale formulas in the same float operations, round half
// to even (FCVTNS, as the reference's nearbyint/NearestInt), and the reference's F16/BF16
// conversions (tensor/fp16.h) for scales, tails and NaN lanes.
#include <arm_neon.h>

#include <cmath>
#include <cstring>

#include "kernels/cpu/neon/neon_kernels.h"
#include "tensor/fp16.h"
#include "tensor/quant_blocks.h"

namespace kiln::kernels::neon {
namespace {

void StoreHalf(uint8_t* p, float f) {
  const uint16_t h = Fp32ToFp16(f);
  std::memcpy(p, &h, sizeof(h));
}

// 16 int32 → 16 int8 (values already within [-128, 127]).
int8x16_t Narrow16(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d) {
  const int16x8_t ab = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
  const int16x8_t cd = vcombine_s16(vqmovn_s32(c), vqmovn_s32(d));
  return vcombine_s8(vqmovn_s16(ab), vqmovn_s16(cd));
}

// One block of 32: d = amax / 127 and quants round_half_even(x * (127 / amax)), as the
// reference activation quantizer; returns the sum of the quants.
int32_t QuantizeBlock32(const float* x, float* d_out, uint8_t* qs) {
  float32x4_t v[8];
  float32x4_t amax = vdupq_n_f32(0.0f);
  for (int i = 0; i < 8; ++i) {
    v[i] = vld1q_f32(x + 4 * i);
    amax = vmaxq_f32(amax, vabsq_f32(v[i]));
  }
  const float max_abs = vmaxvq_f32(amax);
  const float d = max_abs / 127.0f;
  const float id = max_abs != 0.0f ? 127.0f / max_abs : 0.0f;
  int32x4_t q[8];
  int32x4_t sum = vdupq_n_s32(0);
  for (int i = 0; i < 8; ++i) {
    q[i] = vcvtnq_s32_f32(vmulq_n_f32(v[i], id));
    sum = vaddq_s32(sum, q[i]);
  }
  vst1q_s8(reinterpret_cast<int8_t*>(qs), Narrow16(q[0], q[1], q[2], q[3]));
  vst1q_s8(reinterpret_cast<int8_t*>(qs + 16), Narrow16(q[4], q[5], q[6], q[7]));
  *d_out = d;
  return vaddvq_s32(sum);
}

}  // namespace

void QuantizeQ8_0(const float* x, void* vy, int64_t n) {
  uint8_t* y = static_cast<uint8_t*>(vy);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK, y += sizeof(BlockQ8_0)) {
    float d;
    QuantizeBlock32(x, &d, y + offsetof(BlockQ8_0, qs));
    StoreHalf(y + offsetof(BlockQ8_0, d), d);
  }
}

void QuantizeQ8_1(const float* x, void* vy, int64_t n) {
  uint8_t* y = static_cast<uint8_t*>(vy);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK, y += sizeof(BlockQ8_1)) {
    float d;
    const int32_t sum = QuantizeBlock32(x, &d, y + offsetof(BlockQ8_1, qs));
    StoreHalf(y + offsetof(BlockQ8_1, d), d);
    StoreHalf(y + offsetof(BlockQ8_1, s), static_cast<float>(sum) * d);
  }
}

// Q8_K: the scale keeps the sign of the element of largest magnitude (the first on ties):
// q = min(127, round_half_even(x * (-127 / max))), d = 1 / iscale, bsums per 16.
void QuantizeQ8_K(const float* x, void* vy, int64_t n) {
  uint8_t* y = static_cast<uint8_t*>(vy);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K, y += sizeof(BlockQ8_K)) {
    float32x4_t amax_v = vdupq_n_f32(0.0f);
    for (int i = 0; i < kQK_K; i += 4) amax_v = vmaxq_f32(amax_v, vabsq_f32(vld1q_f32(x + i)));
    const float amax = vmaxvq_f32(amax_v);
    uint8_t* qs = y + offsetof(BlockQ8_K, qs);
    int16_t bsums[kQK_K / 16] = {};
    if (amax == 0.0f) {
      const float zero = 0.0f;
      std::memcpy(y + offsetof(BlockQ8_K, d), &zero, sizeof(zero));
      std::memset(qs, 0, kQK_K);
      std::memcpy(y + offsetof(BlockQ8_K, bsums), bsums, sizeof(bsums));
      continue;
    }
    float max = 0.0f;
    for (int i = 0; i < kQK_K; ++i) {
      if (std::fabs(x[i]) == amax) {
        max = x[i];
        break;
      }
    }
    const float iscale = -127.0f / max;
    const int32x4_t q_max = vdupq_n_s32(127);
    for (int i = 0; i < kQK_K; i += 16) {
      int32x4_t q[4];
      for (int j = 0; j < 4; ++j) {
        q[j] = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + i + 4 * j), iscale)), q_max);
      }
      bsums[i / 16] =
          static_cast<int16_t>(vaddvq_s32(vaddq_s32(vaddq_s32(q[0], q[1]), vaddq_s32(q[2], q[3]))));
      vst1q_s8(reinterpret_cast<int8_t*>(qs + i), Narrow16(q[0], q[1], q[2], q[3]));
    }
    const float d = 1.0f / iscale;
    std::memcpy(y + offsetof(BlockQ8_K, d), &d, sizeof(d));
    std::memcpy(y + offsetof(BlockQ8_K, bsums), bsums, sizeof(bsums));
  }
}

void CopyF32(const float* x, void* y, int64_t n) {
  if (n > 0) std::memmove(y, x, static_cast<size_t>(n) * sizeof(float));
}

namespace {

inline void StoreU16(uint8_t* y, int64_t i, uint16_t v) { std::memcpy(y + 2 * i, &v, sizeof(v)); }

// True when one of the 4 lanes is NaN (those blocks take the reference's scalar conversion).
inline bool AnyNan(float32x4_t v) { return vminvq_u32(vceqq_f32(v, v)) == 0; }

}  // namespace

void QuantizeF16(const float* x, void* vy, int64_t n) {
  uint8_t* y = static_cast<uint8_t*>(vy);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t v = vld1q_f32(x + i);
    if (AnyNan(v)) {
      for (int j = 0; j < 4; ++j) StoreU16(y, i + j, Fp32ToFp16(x[i + j]));
    } else {
      vst1_u8(y + 2 * i, vreinterpret_u8_f16(vcvt_f16_f32(v)));
    }
  }
  for (; i < n; ++i) StoreU16(y, i, Fp32ToFp16(x[i]));
}

void QuantizeBF16(const float* x, void* vy, int64_t n) {
  uint8_t* y = static_cast<uint8_t*>(vy);
  const uint32x4_t bias = vdupq_n_u32(0x7FFF);
  const uint32x4_t one = vdupq_n_u32(1);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t v = vld1q_f32(x + i);
    if (AnyNan(v)) {
      for (int j = 0; j < 4; ++j) StoreU16(y, i + j, Fp32ToBf16(x[i + j]));
      continue;
    }
    const uint32x4_t u = vreinterpretq_u32_f32(v);
    const uint32x4_t odd = vandq_u32(vshrq_n_u32(u, 16), one);
    const uint16x4_t r = vshrn_n_u32(vaddq_u32(u, vaddq_u32(bias, odd)), 16);
    vst1_u8(y + 2 * i, vreinterpret_u8_u16(r));
  }
  for (; i < n; ++i) StoreU16(y, i, Fp32ToBf16(x[i]));
}

}  // namespace kiln::kernels::neon
