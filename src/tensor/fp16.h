// Scalar, portable F16/BF16 <-> F32 conversions, bit for bit as ggml's portable (non-F16C)
// ones: quantized blocks store their scales as F16, so a conversion differing in one rounding
// or one NaN bit would change blocks. Integer bit manipulation only (no intrinsics, no FP
// environment dependence), so every compiler and flag set gives the same bits.
#pragma once

#include <cstdint>
#include <cstring>

namespace kiln {

inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

inline float FloatFromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// IEEE binary16 → binary32: exact for every finite value and infinity. NaNs keep sign and
// payload and come out quiet (ggml's conversion goes through a float multiply, which quiets).
inline float Fp16ToFp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) {  // inf / NaN
    uint32_t bits = sign | 0x7F800000u | (mant << 13);
    if (mant != 0) bits |= 0x00400000u;  // quiet
    return FloatFromBits(bits);
  }
  if (exp != 0) return FloatFromBits(sign | ((exp + 112u) << 23) | (mant << 13));
  if (mant == 0) return FloatFromBits(sign);
  // Subnormal half: value = mant * 2^-24; normalise into a float.
  int e = -1;
  do {
    mant <<= 1;
    ++e;
  } while ((mant & 0x400u) == 0);
  mant &= 0x3FFu;
  return FloatFromBits(sign | ((112u - static_cast<uint32_t>(e)) << 23) | (mant << 13));
}

// binary32 → binary16, round to nearest even; overflow gives ±inf, tiny values round into
// subnormals or ±0. Every NaN becomes sign | 0x7E00 (ggml's portable conversion drops the
// payload).
inline uint16_t Fp32ToFp16(float f) {
  const uint32_t u = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return sign | 0x7E00u;  // NaN
  if (abs >= 0x477FF000u) return sign | 0x7C00u;  // ≥ 65520 rounds to inf (and inf itself)
  const int32_t exp = static_cast<int32_t>(abs >> 23) - 127;
  if (exp >= -14) {  // normal half: drop 13 mantissa bits with round-to-nearest-even
    const uint32_t rebased = abs - (112u << 23);  // exponent rebias 127 → 15
    const uint32_t round = 0xFFFu + ((rebased >> 13) & 1u);
    return sign | static_cast<uint16_t>((rebased + round) >> 13);
  }
  if (exp < -25) return sign;  // below half the smallest subnormal: ±0
  // Subnormal half: value = m * 2^-24 with m = full_mantissa >> shift, rounded to even.
  const uint32_t full = (abs & 0x7FFFFFu) | 0x800000u;
  const uint32_t shift = static_cast<uint32_t>(-exp - 1);  // 14..24
  const uint32_t half_ulp = 1u << (shift - 1);
  const uint32_t rest = full & ((1u << shift) - 1u);
  uint32_t m = full >> shift;
  if (rest > half_ulp || (rest == half_ulp && (m & 1u))) ++m;  // may carry into the exponent
  return sign | static_cast<uint16_t>(m);
}

// bfloat16 → binary32: the top half of the float, exact.
inline float Bf16ToFp32(uint16_t h) { return FloatFromBits(static_cast<uint32_t>(h) << 16); }

// binary32 → bfloat16, round to nearest even (subnormals kept, overflow to ±inf); NaNs keep
// their top bits and are made quiet.
inline uint16_t Fp32ToBf16(float f) {
  const uint32_t u = FloatBits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

}  // namespace kiln
