// Helpers shared by the AArch64 kernel files. Included ONLY by the files of this folder, which
// are compiled with different -march flags (dot_dotprod.cc has +dotprod). Everything is in an
// anonymous namespace on purpose: an inline function with external linkage would be emitted
// by both and the linker could keep the +dotprod copy for the plain NEON table (an ODR trap).
// For the same reason these files convert halves with NEON instructions, not tensor/fp16.h.
#pragma once

#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#define KILN_NEON_INLINE inline __attribute__((always_inline))

namespace kiln::kernels::arm {
namespace {

KILN_NEON_INLINE uint16_t LoadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

KILN_NEON_INLINE uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

KILN_NEON_INLINE float LoadF32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// IEEE half → float, exact (FCVT; NaNs come out quiet with their payload, like tensor/fp16.h).
KILN_NEON_INLINE float HalfToFloat(const uint8_t* p) {
  return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(LoadU16(p)))), 0);
}

// Byte loads at any address (ld1 has no alignment requirement).
KILN_NEON_INLINE int8x16_t LoadS8(const uint8_t* p) {
  return vld1q_s8(reinterpret_cast<const int8_t*>(p));
}
KILN_NEON_INLINE uint8x16_t LoadU8(const uint8_t* p) { return vld1q_u8(p); }

// 32 bits → 32 bytes in two vectors: byte i = 0x10 where bit i is set (the fifth bit of the
// legacy 5-bit quants).
KILN_NEON_INLINE void FifthBits(uint32_t bits, uint8x16_t* lo, uint8x16_t* hi) {
  const uint8x8_t b = vreinterpret_u8_u32(vdup_n_u32(bits));
  const uint8x16_t idx_lo = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
  const uint8x16_t idx_hi = {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
  const uint8x16_t mask = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  const uint8x16_t bq = vcombine_u8(b, b);
  const uint8x16_t x16 = vdupq_n_u8(0x10);
  *lo = vandq_u8(vtstq_u8(vqtbl1q_u8(bq, idx_lo), mask), x16);
  *hi = vandq_u8(vtstq_u8(vqtbl1q_u8(bq, idx_hi), mask), x16);
}

}  // namespace
}  // namespace kiln::kernels::arm
