// Activation quantizers (f32 row → dot type) for x86 tables, 256-bit AVX2 + F16C code.
// Output is byte-identical to the reference quantizers (kernels/ref): same scale formulas in
// the same float operations, round half to even (the reference's activation quantizers for
// Q8_0/Q8_1, and Q8_K), and the reference's NaN encodings for F16/BF16.
// See common_inl.h for why this is an anonymous namespace in a header.
#pragma once

#include "kernels/cpu/x86/common_inl.h"
#include "tensor/quant_blocks.h"

namespace kiln::kernels::x86 {
namespace {

inline __m256 AbsPs(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

// One block of 32: scale d = amax / 127 (float) and 32 int8 quants = round_half_even(x * 127 /
// amax), as the reference activation quantizer (ggml's x86 inference arithmetic); returns the
// sum of the quants.
inline int32_t QuantizeBlock32(const float* x, float* d_out, int8_t* qs) {
  __m256 v[4];
  __m256 amax = _mm256_setzero_ps();
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_loadu_ps(x + 8 * i);
    amax = _mm256_max_ps(amax, AbsPs(v[i]));
  }
  const float max_abs = HMaxF32(amax);
  const float d = max_abs / 127.0f;
  const float id = max_abs != 0.0f ? 127.0f / max_abs : 0.0f;
  const __m256 idv = _mm256_set1_ps(id);
  __m256i q[4];
  __m256i sum = _mm256_setzero_si256();
  for (int i = 0; i < 4; ++i) {
    q[i] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[i], idv),
                                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    sum = _mm256_add_epi32(sum, q[i]);
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs), PackI32ToI8(q[0], q[1], q[2], q[3]));
  *d_out = d;
  return HSumI32(sum);
}

inline void StoreHalf(uint8_t* p, float f) {
  const uint16_t h = _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  std::memcpy(p, &h, sizeof(h));
}

void QuantizeQ8_0(const float* x, void* vy, int64_t n) {
  uint8_t* y = static_cast<uint8_t*>(vy);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK, y += sizeof(BlockQ8_0)) {
    float d;
    QuantizeBlock32(x, &d, reinterpret_cast<int8_t*>(y + offsetof(BlockQ8_0, qs)));
    StoreHalf(y + offsetof(BlockQ8_0, d), d);
  }
}

void QuantizeQ8_1(const float* x, void* vy, int64_t n) {
  uint8_t* y = static_cast<uint8_t*>(vy);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK, y += sizeof(BlockQ8_1)) {
    float d;
    const int32_t sum =
        QuantizeBlock32(x, &d, reinterpret_cast<int8_t*>(y + offsetof(BlockQ8_1, qs)));
    StoreHalf(y + offsetof(BlockQ8_1, d), d);
    StoreHalf(y + offsetof(BlockQ8_1, s), static_cast<float>(sum) * d);
  }
}

// Q8_K: scale from the element of largest magnitude (the first one on ties), keeping its
// sign: q = min(127, round_to_even(x * -127 / max)), d = 1 / iscale, bsums per 16.
void QuantizeQ8_K(const float* x, void* vy, int64_t n) {
  uint8_t* y = static_cast<uint8_t*>(vy);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K, y += sizeof(BlockQ8_K)) {
    __m256 amax_v = _mm256_setzero_ps();
    for (int i = 0; i < kQK_K; i += 8) amax_v = _mm256_max_ps(amax_v, AbsPs(_mm256_loadu_ps(x + i)));
    const float amax = HMaxF32(amax_v);
    int8_t* qs = reinterpret_cast<int8_t*>(y + offsetof(BlockQ8_K, qs));
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
      if (__builtin_fabsf(x[i]) == amax) {
        max = x[i];
        break;
      }
    }
    const float iscale = -127.0f / max;
    const __m256 isv = _mm256_set1_ps(iscale);
    const __m256i q_max = _mm256_set1_epi32(127);
    for (int i = 0; i < kQK_K; i += 32) {
      __m256i q[4];
      for (int j = 0; j < 4; ++j) {
        __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * j), isv),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q[j] = _mm256_min_epi32(_mm256_cvtps_epi32(r), q_max);
      }
      // Each 16-element group is two int32 vectors; their lane sum is the group's bsum.
      bsums[i / 16] = static_cast<int16_t>(HSumI32(_mm256_add_epi32(q[0], q[1])));
      bsums[i / 16 + 1] = static_cast<int16_t>(HSumI32(_mm256_add_epi32(q[2], q[3])));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs + i), PackI32ToI8(q[0], q[1], q[2], q[3]));
    }
    const float d = 1.0f / iscale;
    std::memcpy(y + offsetof(BlockQ8_K, d), &d, sizeof(d));
    std::memcpy(y + offsetof(BlockQ8_K, bsums), bsums, sizeof(bsums));
  }
}

void CopyF32(const float* x, void* y, int64_t n) {
  if (n > 0) std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float));
}

// Scalar twins of the vector conversions, for tails and NaN lanes; bit-for-bit the
// reference's (round to nearest even; F16 NaN → sign|0x7E00; BF16 NaN keeps top bits, quiet).
inline uint16_t FloatToHalfScalar(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>(((u >> 16) & 0x8000u) | 0x7E00u);
  return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

inline uint16_t FloatToBf16Scalar(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// y may be at any byte address: element stores go through memcpy.
inline void StoreU16(uint8_t* y, int64_t i, uint16_t v) { std::memcpy(y + 2 * i, &v, sizeof(v)); }

void QuantizeF16(const float* x, void* vy, int64_t n) {
  uint8_t* y = static_cast<uint8_t*>(vy);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + 2 * i),
                     _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)) != 0) {
      for (int j = 0; j < 8; ++j) StoreU16(y, i + j, FloatToHalfScalar(x[i + j]));
    }
  }
  for (; i < n; ++i) StoreU16(y, i, FloatToHalfScalar(x[i]));
}

void QuantizeBF16(const float* x, void* vy, int64_t n) {
  uint8_t* y = static_cast<uint8_t*>(vy);
  const __m256i round_bias = _mm256_set1_epi32(0x7FFF);
  const __m256i one = _mm256_set1_epi32(1);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i r[2];
    bool has_nan = false;
    for (int j = 0; j < 2; ++j) {
      const __m256 v = _mm256_loadu_ps(x + i + 8 * j);
      const __m256i u = _mm256_castps_si256(v);
      const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
      r[j] = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(round_bias, odd)), 16);
      has_nan |= _mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)) != 0;
    }
    // packus works per 128-bit lane; permute restores element order.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r[0], r[1]), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + 2 * i), packed);
    if (has_nan) {
      for (int j = 0; j < 16; ++j) StoreU16(y, i + j, FloatToBf16Scalar(x[i + j]));
    }
  }
  for (; i < n; ++i) StoreU16(y, i, FloatToBf16Scalar(x[i]));
}

}  // namespace
}  // namespace kiln::kernels::x86
