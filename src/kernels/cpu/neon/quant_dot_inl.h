// Block kernels (tile_inl.h) for the quantized dot products on AArch64, templated on Ops, the
// int8 dot product of the table:
//   Ops::Dot(acc, a, b)  acc + sums of a[i] * b[i] (int8 × int8, 16 of them) in 4 int32 lanes
// neon (dot.cc) builds it from SMULL/SADALP, neon_dotprod (dot_dotprod.cc) is one SDOT; the
// lanes hold different partial sums, but integer sums are exact either way.
// Per block the integer sum is exact, as in the reference; only the float accumulation order
// differs from ref (a 4-lane chain of d_w * d_a * lane sums in block order, summed at the end),
// within the tolerances of kernels_cpu_test. Every (row, token) pair runs the same code in
// vec_dot and gemm, so gemm is bit-identical to vec_dot.
// See common_inl.h for why this is an anonymous namespace in a header.
#pragma once

#include <type_traits>

#include "kernels/cpu/neon/common_inl.h"
#include "tensor/quant_blocks.h"

namespace kiln::kernels::arm {
namespace {

// ── Legacy 32-element blocks ─────────────────────────────────────────────────────────────

struct LegacyW {
  int8x16_t q0, q1;  // elements 0-15 and 16-31, as signed values
  float d, m;        // m: the *_1 types' min
};

struct LegacyAcc {
  float32x4_t v;
  float m;  // the *_1 types: sum of m_w * s_a in block order
};

// kMin: Q4_1/Q5_1 against Q8_1 (block = d_w d_a sum(q y) + m_w s_a); else against Q8_0.
template <class Ops, class Decode, bool kMin>
struct LegacyKernel {
  using ABlock = std::conditional_t<kMin, BlockQ8_1, BlockQ8_0>;
  static constexpr int kBlockElems = kQK;
  static constexpr int64_t kWBlockBytes = Decode::kBytes;
  static constexpr int64_t kABlockBytes = sizeof(ABlock);
  static constexpr bool kPadTail = false;
  static constexpr int kElemBytes = 0;
  using W = LegacyW;
  using Acc = LegacyAcc;
  KILN_NEON_INLINE static void Load(const uint8_t* p, W& w) {
    Decode::Quants(p, &w.q0, &w.q1);
    w.d = HalfToFloat(p);  // d is the first field of every legacy block
    w.m = kMin ? HalfToFloat(p + 2) : 0.0f;  // m follows d in Q4_1 and Q5_1
  }
  static void Init(Acc& a) {
    a.v = vdupq_n_f32(0.0f);
    a.m = 0.0f;
  }
  KILN_NEON_INLINE static void Add(const W& w, const uint8_t* a, Acc& acc) {
    const uint8_t* y = a + offsetof(ABlock, qs);
    int32x4_t sumi = Ops::Dot(vdupq_n_s32(0), w.q0, LoadS8(y));
    sumi = Ops::Dot(sumi, w.q1, LoadS8(y + 16));
    const float da = HalfToFloat(a + offsetof(ABlock, d));
    acc.v = vfmaq_n_f32(acc.v, vcvtq_f32_s32(sumi), w.d * da);
    if constexpr (kMin) acc.m += w.m * HalfToFloat(a + offsetof(BlockQ8_1, s));
  }
  static float Finish(const Acc& a) { return vaddvq_f32(a.v) + a.m; }
};

// Nibbles of 16 bytes: low nibbles are elements 0-15, high nibbles 16-31.
KILN_NEON_INLINE void Nibbles(const uint8_t* qs, uint8x16_t* lo, uint8x16_t* hi) {
  const uint8x16_t v = LoadU8(qs);
  *lo = vandq_u8(v, vdupq_n_u8(0x0F));
  *hi = vshrq_n_u8(v, 4);
}

struct DecodeQ4_0 {
  static constexpr int64_t kBytes = sizeof(BlockQ4_0);
  KILN_NEON_INLINE static void Quants(const uint8_t* p, int8x16_t* q0, int8x16_t* q1) {
    uint8x16_t lo, hi;
    Nibbles(p + offsetof(BlockQ4_0, qs), &lo, &hi);
    *q0 = vsubq_s8(vreinterpretq_s8_u8(lo), vdupq_n_s8(8));
    *q1 = vsubq_s8(vreinterpretq_s8_u8(hi), vdupq_n_s8(8));
  }
};

struct DecodeQ4_1 {
  static constexpr int64_t kBytes = sizeof(BlockQ4_1);
  KILN_NEON_INLINE static void Quants(const uint8_t* p, int8x16_t* q0, int8x16_t* q1) {
    uint8x16_t lo, hi;
    Nibbles(p + offsetof(BlockQ4_1, qs), &lo, &hi);
    *q0 = vreinterpretq_s8_u8(lo);
    *q1 = vreinterpretq_s8_u8(hi);
  }
};

template <class Block, int kOffset>
struct DecodeQ5 {
  static constexpr int64_t kBytes = sizeof(Block);
  KILN_NEON_INLINE static void Quants(const uint8_t* p, int8x16_t* q0, int8x16_t* q1) {
    uint8x16_t lo, hi, b_lo, b_hi;
    Nibbles(p + offsetof(Block, qs), &lo, &hi);
    FifthBits(LoadU32(p + offsetof(Block, qh)), &b_lo, &b_hi);
    *q0 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, b_lo)), vdupq_n_s8(kOffset));
    *q1 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(hi, b_hi)), vdupq_n_s8(kOffset));
  }
};
using DecodeQ5_0 = DecodeQ5<BlockQ5_0, 16>;
using DecodeQ5_1 = DecodeQ5<BlockQ5_1, 0>;

struct DecodeQ8_0 {
  static constexpr int64_t kBytes = sizeof(BlockQ8_0);
  KILN_NEON_INLINE static void Quants(const uint8_t* p, int8x16_t* q0, int8x16_t* q1) {
    *q0 = LoadS8(p + offsetof(BlockQ8_0, qs));
    *q1 = LoadS8(p + offsetof(BlockQ8_0, qs) + 16);
  }
};

// ── K super-blocks against Q8_K ──────────────────────────────────────────────────────────
// The weight block is decoded once into 256 signed quants (Q6_K's with its -32 folded in)
// and per-sub-block scales; each token then needs only loads and dot products.
// block = d_w d_a sum_j sc[j] sum(q_j y_j) - dmin_w d_a sum_s m[s] bsums[s]

template <int kSubElems>
struct KW {
  alignas(16) int8_t q[kQK_K];
  int32_t sc[kQK_K / kSubElems];
  alignas(16) int16_t mins[kQK_K / 16];  // per 16 elements (Q4_K/Q5_K: m[s / 2])
  float d, dmin;
};

struct KAcc {
  float32x4_t v;
  float m;  // sum of dmin_w d_a (mins · bsums), subtracted at the end
};

// Q4_K/Q5_K 6-bit scales and mins (layout in quant_blocks.h).
KILN_NEON_INLINE void DecodeScalesMins(const uint8_t* s, int32_t* sc, int16_t* mins16) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = s[j] & 63;
    sc[j + 4] = (s[j + 8] & 0x0F) | ((s[j] >> 6) << 4);
    const int16_t m0 = static_cast<int16_t>(s[j + 4] & 63);
    const int16_t m1 = static_cast<int16_t>((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
    mins16[2 * j] = mins16[2 * j + 1] = m0;
    mins16[2 * (j + 4)] = mins16[2 * (j + 4) + 1] = m1;
  }
}

// Q4_K (kHigh = false) and Q5_K (kHigh = true) quants: group g of 64 elements is the low
// nibbles of qs[32g..32g+32) then their high nibbles; Q5_K adds 16 where qh[l] has bit 2g
// (low half) or 2g+1 (high half).
template <class Block, bool kHigh>
KILN_NEON_INLINE void DecodeQ45_K(const uint8_t* p, int8_t* q) {
  const uint8x16_t nib = vdupq_n_u8(0x0F);
  uint8x16_t qh0 = vdupq_n_u8(0), qh1 = vdupq_n_u8(0);
  if constexpr (kHigh) {
    qh0 = LoadU8(p + offsetof(BlockQ5_K, qh));
    qh1 = LoadU8(p + offsetof(BlockQ5_K, qh) + 16);
  }
  const uint8x16_t x10 = vdupq_n_u8(0x10);
  for (int g = 0; g < 4; ++g) {
    const uint8x16_t v0 = LoadU8(p + offsetof(Block, qs) + 32 * g);
    const uint8x16_t v1 = LoadU8(p + offsetof(Block, qs) + 32 * g + 16);
    uint8x16_t lo0 = vandq_u8(v0, nib), lo1 = vandq_u8(v1, nib);
    uint8x16_t hi0 = vshrq_n_u8(v0, 4), hi1 = vshrq_n_u8(v1, 4);
    if constexpr (kHigh) {
      const uint8x16_t m_lo = vdupq_n_u8(static_cast<uint8_t>(1u << (2 * g)));
      const uint8x16_t m_hi = vdupq_n_u8(static_cast<uint8_t>(2u << (2 * g)));
      lo0 = vorrq_u8(lo0, vandq_u8(vtstq_u8(qh0, m_lo), x10));
      lo1 = vorrq_u8(lo1, vandq_u8(vtstq_u8(qh1, m_lo), x10));
      hi0 = vorrq_u8(hi0, vandq_u8(vtstq_u8(qh0, m_hi), x10));
      hi1 = vorrq_u8(hi1, vandq_u8(vtstq_u8(qh1, m_hi), x10));
    }
    int8_t* o = q + 64 * g;
    vst1q_s8(o, vreinterpretq_s8_u8(lo0));
    vst1q_s8(o + 16, vreinterpretq_s8_u8(lo1));
    vst1q_s8(o + 32, vreinterpretq_s8_u8(hi0));
    vst1q_s8(o + 48, vreinterpretq_s8_u8(hi1));
  }
}

// Q6_K quants minus 32: half h of 128 elements from ql[64h..64h+64) and qh[32h..32h+32):
// element l (< 32) = ql[l] low | qh bits 0-1, l+32 = ql[l+32] low | bits 2-3,
// l+64 = ql[l] high | bits 4-5, l+96 = ql[l+32] high | bits 6-7.
KILN_NEON_INLINE void DecodeQ6_K(const uint8_t* p, int8_t* q) {
  const uint8x16_t nib = vdupq_n_u8(0x0F);
  const uint8x16_t two = vdupq_n_u8(0x30);
  for (int h = 0; h < 2; ++h) {
    const uint8_t* ql = p + offsetof(BlockQ6_K, ql) + 64 * h;
    const uint8_t* qh = p + offsetof(BlockQ6_K, qh) + 32 * h;
    int8_t* o = q + 128 * h;
    for (int c = 0; c < 2; ++c) {  // elements l in [16c, 16c + 16)
      const uint8x16_t a = LoadU8(ql + 16 * c);
      const uint8x16_t b = LoadU8(ql + 32 + 16 * c);
      const uint8x16_t hb = LoadU8(qh + 16 * c);
      const uint8x16_t r0 = vorrq_u8(vandq_u8(a, nib), vandq_u8(vshlq_n_u8(hb, 4), two));
      const uint8x16_t r1 = vorrq_u8(vandq_u8(b, nib), vandq_u8(vshlq_n_u8(hb, 2), two));
      const uint8x16_t r2 = vorrq_u8(vshrq_n_u8(a, 4), vandq_u8(hb, two));
      const uint8x16_t r3 = vorrq_u8(vshrq_n_u8(b, 4), vandq_u8(vshrq_n_u8(hb, 2), two));
      const int8x16_t off = vdupq_n_s8(32);
      vst1q_s8(o + 16 * c, vsubq_s8(vreinterpretq_s8_u8(r0), off));
      vst1q_s8(o + 32 + 16 * c, vsubq_s8(vreinterpretq_s8_u8(r1), off));
      vst1q_s8(o + 64 + 16 * c, vsubq_s8(vreinterpretq_s8_u8(r2), off));
      vst1q_s8(o + 96 + 16 * c, vsubq_s8(vreinterpretq_s8_u8(r3), off));
    }
  }
}

// kType: 4 (Q4_K), 5 (Q5_K) or 6 (Q6_K).
template <class Ops, int kType>
struct KKernel {
  static constexpr bool kHasMins = kType != 6;
  static constexpr int kSubElems = kType == 6 ? 16 : 32;
  static constexpr int kBlockElems = kQK_K;
  static constexpr int64_t kWBlockBytes =
      kType == 4 ? sizeof(BlockQ4_K) : kType == 5 ? sizeof(BlockQ5_K) : sizeof(BlockQ6_K);
  static constexpr int64_t kABlockBytes = sizeof(BlockQ8_K);
  static constexpr bool kPadTail = false;
  static constexpr int kElemBytes = 0;
  using W = KW<kSubElems>;
  using Acc = KAcc;
  KILN_NEON_INLINE static void Load(const uint8_t* p, W& w) {
    if constexpr (kType == 6) {
      DecodeQ6_K(p, w.q);
      const int8_t* sc = reinterpret_cast<const int8_t*>(p + offsetof(BlockQ6_K, scales));
      for (int s = 0; s < 16; ++s) w.sc[s] = sc[s];
      w.d = HalfToFloat(p + offsetof(BlockQ6_K, d));
      w.dmin = 0.0f;
    } else {
      static_assert(offsetof(BlockQ5_K, scales) == offsetof(BlockQ4_K, scales) &&
                    offsetof(BlockQ5_K, dmin) == offsetof(BlockQ4_K, dmin));
      if constexpr (kType == 4) {
        DecodeQ45_K<BlockQ4_K, false>(p, w.q);
      } else {
        DecodeQ45_K<BlockQ5_K, true>(p, w.q);
      }
      DecodeScalesMins(p + offsetof(BlockQ4_K, scales), w.sc, w.mins);
      w.d = HalfToFloat(p + offsetof(BlockQ4_K, d));
      w.dmin = HalfToFloat(p + offsetof(BlockQ4_K, dmin));
    }
  }
  static void Init(Acc& a) {
    a.v = vdupq_n_f32(0.0f);
    a.m = 0.0f;
  }
  KILN_NEON_INLINE static void Add(const W& w, const uint8_t* a, Acc& acc) {
    const uint8_t* y = a + offsetof(BlockQ8_K, qs);
    int32x4_t sumi = vdupq_n_s32(0);
    for (int j = 0; j < kQK_K / kSubElems; ++j) {
      int32x4_t dot = vdupq_n_s32(0);
      for (int c = 0; c < kSubElems; c += 16) {
        dot = Ops::Dot(dot, vld1q_s8(w.q + kSubElems * j + c), LoadS8(y + kSubElems * j + c));
      }
      sumi = vmlaq_n_s32(sumi, dot, w.sc[j]);
    }
    const float da = LoadF32(a + offsetof(BlockQ8_K, d));
    acc.v = vfmaq_n_f32(acc.v, vcvtq_f32_s32(sumi), w.d * da);
    if constexpr (kHasMins) {
      const uint8_t* bs = a + offsetof(BlockQ8_K, bsums);
      const int16x8_t b0 = vreinterpretq_s16_u8(LoadU8(bs));
      const int16x8_t b1 = vreinterpretq_s16_u8(LoadU8(bs + 16));
      const int16x8_t m0 = vld1q_s16(w.mins), m1 = vld1q_s16(w.mins + 8);
      int32x4_t p = vmull_s16(vget_low_s16(b0), vget_low_s16(m0));
      p = vmlal_high_s16(p, b0, m0);
      p = vmlal_s16(p, vget_low_s16(b1), vget_low_s16(m1));
      p = vmlal_high_s16(p, b1, m1);
      acc.m += (w.dmin * da) * static_cast<float>(vaddvq_s32(p));
    }
  }
  static float Finish(const Acc& a) { return vaddvq_f32(a.v) - a.m; }
};

}  // namespace
}  // namespace kiln::kernels::arm
