// Block kernels (tile_inl.h) for the F32, F16 and BF16 dot products on AArch64: a block is 32
// elements in eight 4-float registers, each with its own FMA chain (32 float lanes, summed
// pairwise at the end). A partial last block is zero-padded (kPadTail).
// See common_inl.h for why this is an anonymous namespace in a header.
#pragma once

#include "kernels/cpu/neon/common_inl.h"

namespace kiln::kernels::arm {
namespace {

KILN_NEON_INLINE float32x4_t LoadF32x4(const uint8_t* p) {
  return vreinterpretq_f32_u8(vld1q_u8(p));
}
KILN_NEON_INLINE float32x4_t LoadF16x4(const uint8_t* p) {
  return vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(p)));
}
KILN_NEON_INLINE float32x4_t LoadBF16x4(const uint8_t* p) {
  return vreinterpretq_f32_u32(vshll_n_u16(vreinterpret_u16_u8(vld1_u8(p)), 16));
}

struct F32x32 {
  float32x4_t v[8];
};

// Load4(p): 4 floats from p; kBytes per element (same type for weights and activations).
template <int kBytes, float32x4_t (*Load4)(const uint8_t*)>
struct FloatKernel {
  static constexpr int kBlockElems = 32;
  static constexpr int64_t kWBlockBytes = 32 * kBytes;
  static constexpr int64_t kABlockBytes = 32 * kBytes;
  static constexpr bool kPadTail = true;
  static constexpr int kElemBytes = kBytes;
  using W = F32x32;
  using Acc = F32x32;
  KILN_NEON_INLINE static void Load(const uint8_t* p, W& w) {
    for (int i = 0; i < 8; ++i) w.v[i] = Load4(p + 4 * kBytes * i);
  }
  static void Init(Acc& a) {
    for (auto& v : a.v) v = vdupq_n_f32(0.0f);
  }
  KILN_NEON_INLINE static void Add(const W& w, const uint8_t* a, Acc& acc) {
    for (int i = 0; i < 8; ++i) acc.v[i] = vfmaq_f32(acc.v[i], w.v[i], Load4(a + 4 * kBytes * i));
  }
  static float Finish(const Acc& a) {
    const float32x4_t s0 = vaddq_f32(vaddq_f32(a.v[0], a.v[1]), vaddq_f32(a.v[2], a.v[3]));
    const float32x4_t s1 = vaddq_f32(vaddq_f32(a.v[4], a.v[5]), vaddq_f32(a.v[6], a.v[7]));
    return vaddvq_f32(vaddq_f32(s0, s1));
  }
};

using F32Kernel = FloatKernel<4, LoadF32x4>;
using F16Kernel = FloatKernel<2, LoadF16x4>;
using BF16Kernel = FloatKernel<2, LoadBF16x4>;

}  // namespace
}  // namespace kiln::kernels::arm
