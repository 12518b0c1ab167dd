// Helpers shared by the x86 kernel files. Included ONLY by translation units compiled for an
// x86 ISA (avx2/, avx512/), each with its own target flags. Everything here is in an anonymous
// namespace on purpose: a shared inline function with external linkage would be emitted once
// per ISA and the linker could keep the AVX-512 copy for the AVX2 table (an ODR trap).
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

// Hot-loop helpers must inline into the tile loops: GCC's heuristics left some out of line
// under AVX-512 flags (a call plus vzeroupper per 256-element block halved Q5_K's speed).
#define KILN_X86_INLINE inline __attribute__((always_inline))

namespace kiln::kernels::x86 {
namespace {

inline uint16_t LoadU16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline float LoadF32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// IEEE half → float, exact (F16C).
inline float HalfToFloat(const uint8_t* p) { return _cvtsh_ss(LoadU16(p)); }

inline __m256i LoadU256(const void* p) {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
inline __m128i LoadU128(const void* p) {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}

// Sum of 8 floats in a fixed order (lane halves, then pairs), so results are reproducible.
inline float HSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline int32_t HSumI32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

inline float HMaxF32(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// roundf(): nearest, ties away from zero (the reference quantizers' rounding; the SIMD
// round instruction would round ties to even and change blocks).
inline __m256 RoundHalfAway(__m256 v) {
  const __m256 sign_mask = _mm256_set1_ps(-0.0f);
  __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  __m256 frac = _mm256_andnot_ps(sign_mask, _mm256_sub_ps(v, t));  // exact for |v| < 2^23
  __m256 ge_half = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
  __m256 step = _mm256_or_ps(_mm256_and_ps(v, sign_mask), _mm256_set1_ps(1.0f));
  return _mm256_add_ps(t, _mm256_and_ps(ge_half, step));
}

// 32 int32 in a..d (elements 0-7, 8-15, 16-23, 24-31) → 32 int8, in order, saturating.
inline __m256i PackI32ToI8(__m256i a, __m256i b, __m256i c, __m256i d) {
  __m256i ab = _mm256_packs_epi32(a, b);
  __m256i cd = _mm256_packs_epi32(c, d);
  __m256i abcd = _mm256_packs_epi16(ab, cd);
  return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// 32 bits → 32 bytes, byte i = 0xFF where bit i is set.
inline __m256i BytesFromBits(uint32_t bits) {
  const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                        2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), shuf);
  const __m256i bit_mask = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ULL));
  return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit_mask), bit_mask);
}

// 16 bytes of nibbles → 32 bytes: low nibbles first, then high nibbles (legacy 4-bit order).
// The 16 bytes go to both 128-bit lanes by a broadcast load and the high lane is shifted by a
// per-lane variable shift: no cross-lane shuffle, whose port is the busy one in these loops.
inline __m256i UnpackNibbles16(const uint8_t* p) {
  const __m256i q = _mm256_broadcastsi128_si256(LoadU128(p));
  const __m256i shifted = _mm256_srlv_epi64(q, _mm256_setr_epi64x(0, 0, 4, 4));
  return _mm256_and_si256(shifted, _mm256_set1_epi8(0x0F));
}

}  // namespace
}  // namespace kiln::kernels::x86
