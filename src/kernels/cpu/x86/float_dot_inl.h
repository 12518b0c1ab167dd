// Block kernels (tile_inl.h) for F32, F16 and BF16 dot products, 256-bit FMA code: a block is
// 16 elements in two registers, and even/odd blocks use separate accumulators, so four FMA
// chains run per token. A partial last block is zero-padded (kPadTail).
// See common_inl.h for why this is an anonymous namespace in a header.
#pragma once

#include "kernels/cpu/x86/common_inl.h"

namespace kiln::kernels::x86 {
namespace {

struct F32x16 {
  __m256 v[2];
};

struct Acc4 {
  __m256 v[2][2];
};

inline __m256 LoadF16x8(const uint8_t* p) { return _mm256_cvtph_ps(LoadU128(p)); }
inline __m256 LoadBF16x8(const uint8_t* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(LoadU128(p)), 16));
}
inline __m256 LoadF32x8(const uint8_t* p) {
  return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
}

// Load(p) gives 8 floats from p; kElemBytes per element (same type for weights and activations).
template <int kElemBytes, __m256 (*Load8)(const uint8_t*)>
struct FloatKernel256 {
  static constexpr int kBlockElems = 16;
  static constexpr int64_t kWBlockBytes = 16 * kElemBytes;
  static constexpr int64_t kABlockBytes = 16 * kElemBytes;
  static constexpr bool kPadTail = true;
  static constexpr int kTailUnitElems = 1;
  static constexpr int64_t kTailUnitWBytes = kElemBytes;
  static constexpr int64_t kTailUnitABytes = kElemBytes;
  using W = F32x16;
  using Acc = Acc4;
  KILN_X86_INLINE static void Load(const uint8_t* p, W& w) {
    w.v[0] = Load8(p);
    w.v[1] = Load8(p + 8 * kElemBytes);
  }
  static void Init(Acc& a) {
    for (auto& pair : a.v) pair[0] = pair[1] = _mm256_setzero_ps();
  }
  template <int kParity>
  KILN_X86_INLINE static void Add(const W& w, const uint8_t* a, Acc& acc) {
    acc.v[kParity][0] = _mm256_fmadd_ps(w.v[0], Load8(a), acc.v[kParity][0]);
    acc.v[kParity][1] = _mm256_fmadd_ps(w.v[1], Load8(a + 8 * kElemBytes), acc.v[kParity][1]);
  }
  static float Finish(const Acc& a) {
    return HSum(_mm256_add_ps(_mm256_add_ps(a.v[0][0], a.v[1][0]),
                              _mm256_add_ps(a.v[0][1], a.v[1][1])));
  }
};

using F32Kernel256 = FloatKernel256<4, LoadF32x8>;
using F16Kernel256 = FloatKernel256<2, LoadF16x8>;
using BF16Kernel256 = FloatKernel256<2, LoadBF16x8>;

}  // namespace
}  // namespace kiln::kernels::x86
