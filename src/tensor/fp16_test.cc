// F16/BF16 conversions against independent oracles: GCC's _Float16 (libgcc's correctly
// rounded software conversion) and an exact nearest-value search in double. ggml's own
// conversions are compared bit for bit in kernels/ref/quant_ggml_test.cc.
#include "tensor/fp16.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

namespace kiln {
namespace {

uint16_t HalfBitsViaCompiler(float f) {
  const _Float16 h = static_cast<_Float16>(f);
  uint16_t bits;
  std::memcpy(&bits, &h, sizeof(bits));
  return bits;
}

float HalfToFloatViaCompiler(uint16_t bits) {
  _Float16 h;
  std::memcpy(&h, &bits, sizeof(h));
  return static_cast<float>(h);
}

// Correctly rounded bf16 of a finite float: the nearer of the two neighbouring bf16 values,
// ties to the even one; differences are exact in double.
uint16_t Bf16Nearest(float f) {
  const uint32_t u = FloatBits(f);
  const uint16_t lo = static_cast<uint16_t>(u >> 16);
  const uint16_t hi = static_cast<uint16_t>(lo + 1);
  if ((u & 0xFFFFu) == 0) return lo;
  const double dlo = std::fabs(static_cast<double>(f) - Bf16ToFp32(lo));
  const double dhi = std::fabs(static_cast<double>(Bf16ToFp32(hi)) - f);  // inf: 2^128
  const double dhi_exact = std::isinf(Bf16ToFp32(hi))
                               ? std::fabs(std::ldexp(1.0, 128) - std::fabs(static_cast<double>(f)))
                               : dhi;
  if (dlo < dhi_exact) return lo;
  if (dhi_exact < dlo) return hi;
  return (lo & 1) ? hi : lo;
}

TEST(Fp16Test, AllHalvesToFloatMatchCompiler) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float ours = Fp16ToFp32(static_cast<uint16_t>(h));
    const float ref = HalfToFloatViaCompiler(static_cast<uint16_t>(h));
    if (std::isnan(ref)) {
      EXPECT_TRUE(std::isnan(ours)) << h;
      EXPECT_EQ(FloatBits(ours) & 0x00400000u, 0x00400000u) << "NaN not quiet: " << h;
      continue;
    }
    EXPECT_EQ(FloatBits(ours), FloatBits(ref)) << "half 0x" << std::hex << h;
  }
}

TEST(Fp16Test, AllHalvesRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t bits = static_cast<uint16_t>(h);
    const bool is_nan = (bits & 0x7C00u) == 0x7C00u && (bits & 0x3FFu) != 0;
    if (is_nan) {
      EXPECT_EQ(Fp32ToFp16(Fp16ToFp32(bits)), (bits & 0x8000u) | 0x7E00u);
    } else {
      EXPECT_EQ(Fp32ToFp16(Fp16ToFp32(bits)), bits) << std::hex << h;
    }
  }
}

// Every rounding boundary: each half's float value, its float neighbours, and the exact
// midpoints to the next half with their neighbours.
TEST(Fp16Test, RoundingBoundariesMatchCompiler) {
  for (uint32_t h = 0; h < 0x7C00u; ++h) {
    for (uint32_t sign : {0u, 0x8000u}) {
      const float v = Fp16ToFp32(static_cast<uint16_t>(h | sign));
      const float next = h + 1 < 0x7C00u ? Fp16ToFp32(static_cast<uint16_t>((h + 1) | sign))
                                         : (sign ? -65536.f : 65536.f);
      const float mid = static_cast<float>((static_cast<double>(v) + next) / 2);
      for (float f : {v, std::nextafter(v, 0.f), std::nextafter(v, 2 * next), mid,
                      std::nextafter(mid, 0.f), std::nextafter(mid, 2 * next)}) {
        ASSERT_EQ(Fp32ToFp16(f), HalfBitsViaCompiler(f)) << "f=" << f << " bits 0x" << std::hex
                                                          << FloatBits(f);
      }
    }
  }
}

TEST(Fp16Test, RandomFloatsMatchCompiler) {
  std::mt19937 rng(1234);
  for (int i = 0; i < 1'000'000; ++i) {
    const float f = FloatFromBits(static_cast<uint32_t>(rng()));
    if (std::isnan(f)) {
      EXPECT_EQ(Fp32ToFp16(f), ((FloatBits(f) >> 16) & 0x8000u) | 0x7E00u);
      continue;
    }
    ASSERT_EQ(Fp32ToFp16(f), HalfBitsViaCompiler(f)) << "bits 0x" << std::hex << FloatBits(f);
  }
}

TEST(Fp16Test, SpecialValues) {
  EXPECT_EQ(Fp32ToFp16(0.0f), 0x0000);
  EXPECT_EQ(Fp32ToFp16(-0.0f), 0x8000);
  EXPECT_EQ(Fp32ToFp16(1.0f), 0x3C00);
  EXPECT_EQ(Fp32ToFp16(65504.0f), 0x7BFF);
  EXPECT_EQ(Fp32ToFp16(65520.0f), 0x7C00);  // halfway to 2^16 rounds to even: inf
  EXPECT_EQ(Fp32ToFp16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_EQ(Fp32ToFp16(-std::numeric_limits<float>::infinity()), 0xFC00);
  EXPECT_EQ(Fp32ToFp16(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(Fp32ToFp16(std::ldexp(1.0f, -25)), 0x0000);  // tie with 0 → even (0)
  EXPECT_EQ(Fp16ToFp32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(Fp16ToFp32(0x3555), 0.333251953125f);
}

TEST(Bf16Test, RandomFloatsRoundToNearestEven) {
  std::mt19937 rng(99);
  for (int i = 0; i < 1'000'000; ++i) {
    uint32_t u = static_cast<uint32_t>(rng());
    if (i % 4 == 0) u = (u & 0xFFFF0000u) | 0x8000u;  // exact ties
    const float f = FloatFromBits(u);
    if (std::isnan(f)) {
      EXPECT_EQ(Fp32ToBf16(f), static_cast<uint16_t>((u >> 16) | 0x40u));
      continue;
    }
    ASSERT_EQ(Fp32ToBf16(f), Bf16Nearest(f)) << "bits 0x" << std::hex << u;
  }
}

TEST(Bf16Test, AllBf16RoundTripAndSpecials) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t bits = static_cast<uint16_t>(h);
    const float f = Bf16ToFp32(bits);
    EXPECT_EQ(FloatBits(f), h << 16);
    const uint16_t expect = std::isnan(f) ? static_cast<uint16_t>(bits | 0x40u) : bits;
    EXPECT_EQ(Fp32ToBf16(f), expect) << std::hex << h;
  }
  EXPECT_EQ(Fp32ToBf16(std::numeric_limits<float>::max()), 0x7F80);  // rounds to inf
  EXPECT_EQ(Fp32ToBf16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(Fp32ToBf16(FloatFromBits(0x00018000u)), 0x0002);  // subnormal tie → even
}

}  // namespace
}  // namespace kiln
