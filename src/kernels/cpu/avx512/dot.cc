// AVX-512 dot products and gemm (compiled with -mavx512f/bw/vl/dq/vnni + AVX2/FMA/F16C).
// Legacy quants (Q4_0 … Q8_0) take two blocks per 512-bit register with vpdpbusd; K quants
// reuse the 256-bit block kernels of x86/quant_dot_inl.h (with 32 registers, gemm tiles hold
// eight tokens); float types use 512-bit vectors.
#include "kernels/cpu/x86/isa_kernels.h"
#include "kernels/cpu/x86/quant_dot_inl.h"
#include "kernels/cpu/x86/tile_inl.h"

namespace kiln::kernels::avx512 {
namespace {

using namespace ::kiln::kernels::x86;  // NOLINT: block kernels of this ISA

struct VnniOps {
  static __m256i DotU8S8(__m256i acc, __m256i u, __m256i s) { return _mm256_dpbusd_epi32(acc, u, s); }
  // Not vpdpwssd: the K kernels chain eight of these per block through acc, and its 5-cycle
  // latency made them latency-bound (2.5x slower than madd + add, whose add is 1 cycle).
  static __m256i DotU8S8Scaled(__m256i acc, __m256i u, __m256i s, __m256i scale16) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scale16));
  }
};

inline float HSum512(__m512 v) {
  const __m256 lo = _mm512_castps512_ps256(v);
  const __m256 hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  return HSum(_mm256_add_ps(lo, hi));
}

inline __m512 LoadF32x16(const uint8_t* p) { return _mm512_loadu_ps(p); }
inline __m512 LoadF16x16(const uint8_t* p) { return _mm512_cvtph_ps(LoadU256(p)); }
inline __m512 LoadBF16x16(const uint8_t* p) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(LoadU256(p)), 16));
}

struct F32x32 {
  __m512 v[2];
};
struct Acc4x512 {
  __m512 v[2][2];
};

// 32 elements per block in two registers, even/odd blocks in separate accumulators.
template <int kElemBytes, __m512 (*Load16)(const uint8_t*)>
struct FloatKernel512 {
  static constexpr int kBlockElems = 32;
  static constexpr int64_t kWBlockBytes = 32 * kElemBytes;
  static constexpr int64_t kABlockBytes = 32 * kElemBytes;
  static constexpr bool kPadTail = true;
  static constexpr int kTailUnitElems = 1;
  static constexpr int64_t kTailUnitWBytes = kElemBytes;
  static constexpr int64_t kTailUnitABytes = kElemBytes;
  using W = F32x32;
  using Acc = Acc4x512;
  static void Load(const uint8_t* p, W& w) {
    w.v[0] = Load16(p);
    w.v[1] = Load16(p + 16 * kElemBytes);
  }
  static void Init(Acc& a) {
    for (auto& pair : a.v) pair[0] = pair[1] = _mm512_setzero_ps();
  }
  template <int kParity>
  static void Add(const W& w, const uint8_t* a, Acc& acc) {
    acc.v[kParity][0] = _mm512_fmadd_ps(w.v[0], Load16(a), acc.v[kParity][0]);
    acc.v[kParity][1] = _mm512_fmadd_ps(w.v[1], Load16(a + 16 * kElemBytes), acc.v[kParity][1]);
  }
  static float Finish(const Acc& a) {
    return HSum512(_mm512_add_ps(_mm512_add_ps(a.v[0][0], a.v[1][0]),
                                 _mm512_add_ps(a.v[0][1], a.v[1][1])));
  }
};

// ── Legacy quants, two 32-element blocks per 512-bit register ─────────────────────────────
// A kernel "block" is a pair of legacy blocks (tile_inl.h pads an odd last one with a zero
// block, whose scale 0 adds exactly 0). int32 lanes 0-7 hold the first block's sums, 8-15 the
// second's; the two scales are multiplied in lanes 0 and 1 of an xmm and spread to match.

// The two f16 scales at p0 and p1 → floats in lanes 0 and 1.
inline __m128 HalfPair(const uint8_t* p0, const uint8_t* p1) {
  const __m128i h = _mm_insert_epi16(_mm_cvtsi32_si128(LoadU16(p0)), LoadU16(p1), 1);
  return _mm_cvtph_ps(h);
}

// Lanes 0 and 1 of s → lanes 0-7 and 8-15.
inline __m512 SpreadPair(__m128 s) {
  const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(s));
}

inline __m512i Load2x256(const uint8_t* p0, const uint8_t* p1) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(LoadU256(p0)), LoadU256(p1), 1);
}

// Nibbles of two legacy blocks (16 bytes each) → 64 bytes: lo0 hi0 lo1 hi1.
inline __m512i UnpackNibblesPair(const uint8_t* q0, const uint8_t* q1) {
  const __m256i qq = _mm256_set_m128i(LoadU128(q1), LoadU128(q0));
  const __m256i nib = _mm256_set1_epi8(0x0F);
  const __m256i lo = _mm256_and_si256(qq, nib);                          // lo0 lo1
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qq, 4), nib);    // hi0 hi1
  const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);  // lo0 lo1 hi0 hi1
  return _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
}

// The fifth bits of two Q5 blocks → 0x10 where set.
inline __m512i HighBitsPair(const uint8_t* qh0, const uint8_t* qh1) {
  uint32_t h0, h1;
  std::memcpy(&h0, qh0, 4);
  std::memcpy(&h1, qh1, 4);
  const __mmask64 m = static_cast<__mmask64>(h0) | (static_cast<__mmask64>(h1) << 32);
  return _mm512_maskz_mov_epi8(m, _mm512_set1_epi8(0x10));
}

struct Q4_0Pair {
  static constexpr int64_t kBytes = sizeof(BlockQ4_0);
  static __m512i Quants(const uint8_t* p0, const uint8_t* p1) {
    return _mm512_sub_epi8(UnpackNibblesPair(p0 + offsetof(BlockQ4_0, qs), p1 + offsetof(BlockQ4_0, qs)),
                           _mm512_set1_epi8(8));
  }
};
struct Q5_0Pair {
  static constexpr int64_t kBytes = sizeof(BlockQ5_0);
  static __m512i Quants(const uint8_t* p0, const uint8_t* p1) {
    const __m512i lo = UnpackNibblesPair(p0 + offsetof(BlockQ5_0, qs), p1 + offsetof(BlockQ5_0, qs));
    const __m512i hi = HighBitsPair(p0 + offsetof(BlockQ5_0, qh), p1 + offsetof(BlockQ5_0, qh));
    return _mm512_sub_epi8(_mm512_or_si512(lo, hi), _mm512_set1_epi8(16));
  }
};
struct Q8_0Pair {
  static constexpr int64_t kBytes = sizeof(BlockQ8_0);
  static __m512i Quants(const uint8_t* p0, const uint8_t* p1) {
    return Load2x256(p0 + offsetof(BlockQ8_0, qs), p1 + offsetof(BlockQ8_0, qs));
  }
};
struct Q4_1Pair {
  static constexpr int64_t kBytes = sizeof(BlockQ4_1);
  static __m512i Quants(const uint8_t* p0, const uint8_t* p1) {
    return UnpackNibblesPair(p0 + offsetof(BlockQ4_1, qs), p1 + offsetof(BlockQ4_1, qs));
  }
};
struct Q5_1Pair {
  static constexpr int64_t kBytes = sizeof(BlockQ5_1);
  static __m512i Quants(const uint8_t* p0, const uint8_t* p1) {
    const __m512i lo = UnpackNibblesPair(p0 + offsetof(BlockQ5_1, qs), p1 + offsetof(BlockQ5_1, qs));
    return _mm512_or_si512(lo, HighBitsPair(p0 + offsetof(BlockQ5_1, qh), p1 + offsetof(BlockQ5_1, qh)));
  }
};

struct Acc512 {
  __m512 v[2];
  __m128 m;  // *_1 types: m_w * s_a of the two blocks in lanes 0 and 1
};

// Shared geometry of the pair kernels; ABlock is the activation block (Q8_0 or Q8_1).
template <class Decode, class ABlock>
struct PairGeometry {
  static constexpr int kBlockElems = 2 * kQK;
  static constexpr int64_t kWBlockBytes = 2 * Decode::kBytes;
  static constexpr int64_t kABlockBytes = 2 * sizeof(ABlock);
  static constexpr bool kPadTail = true;
  static constexpr int kTailUnitElems = kQK;
  static constexpr int64_t kTailUnitWBytes = Decode::kBytes;
  static constexpr int64_t kTailUnitABytes = sizeof(ABlock);
  using Acc = Acc512;
  static void Init(Acc& a) {
    a.v[0] = a.v[1] = _mm512_setzero_ps();
    a.m = _mm_setzero_ps();
  }
};

// Signed weights (Q4_0, Q5_0, Q8_0) · Q8_0: |x| · (y negated where x < 0).
template <class Decode>
struct SignedPairKernel : PairGeometry<Decode, BlockQ8_0> {
  using Base = PairGeometry<Decode, BlockQ8_0>;
  struct W {
    __m512i abs_x;
    __mmask64 neg;
    __m128 d;
  };
  static void Load(const uint8_t* p, W& w) {
    const __m512i x = Decode::Quants(p, p + Decode::kBytes);
    w.abs_x = _mm512_abs_epi8(x);
    w.neg = _mm512_movepi8_mask(x);
    w.d = HalfPair(p, p + Decode::kBytes);
  }
  template <int kParity>
  static void Add(const W& w, const uint8_t* a, typename Base::Acc& acc) {
    constexpr int64_t kA = sizeof(BlockQ8_0);
    const __m512i y = Load2x256(a + offsetof(BlockQ8_0, qs), a + kA + offsetof(BlockQ8_0, qs));
    const __m512i sy = _mm512_mask_sub_epi8(y, w.neg, _mm512_setzero_si512(), y);
    const __m512i sumi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w.abs_x, sy);
    const __m512 scale = SpreadPair(_mm_mul_ps(w.d, HalfPair(a, a + kA)));
    acc.v[kParity] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(sumi), acc.v[kParity]);
  }
  static float Finish(const typename Base::Acc& a) { return HSum512(_mm512_add_ps(a.v[0], a.v[1])); }
};

// Unsigned weights with a min (Q4_1, Q5_1) · Q8_1.
template <class Decode>
struct MinPairKernel : PairGeometry<Decode, BlockQ8_1> {
  using Base = PairGeometry<Decode, BlockQ8_1>;
  struct W {
    __m512i q;
    __m128 d, m;
  };
  static void Load(const uint8_t* p, W& w) {
    w.q = Decode::Quants(p, p + Decode::kBytes);
    w.d = HalfPair(p, p + Decode::kBytes);
    w.m = HalfPair(p + 2, p + Decode::kBytes + 2);  // m follows d in Q4_1 and Q5_1
  }
  template <int kParity>
  static void Add(const W& w, const uint8_t* a, typename Base::Acc& acc) {
    constexpr int64_t kA = sizeof(BlockQ8_1);
    const __m512i y = Load2x256(a + offsetof(BlockQ8_1, qs), a + kA + offsetof(BlockQ8_1, qs));
    const __m512i sumi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w.q, y);
    const __m512 scale = SpreadPair(_mm_mul_ps(w.d, HalfPair(a, a + kA)));
    acc.v[kParity] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(sumi), acc.v[kParity]);
    const __m128 s = HalfPair(a + offsetof(BlockQ8_1, s), a + kA + offsetof(BlockQ8_1, s));
    acc.m = _mm_add_ps(acc.m, _mm_mul_ps(w.m, s));
  }
  static float Finish(const typename Base::Acc& a) {
    const float m = _mm_cvtss_f32(_mm_add_ss(a.m, _mm_movehdup_ps(a.m)));
    return HSum512(_mm512_add_ps(a.v[0], a.v[1])) + m;
  }
};

constexpr int kTile = 8;
using KF32 = FloatKernel512<4, LoadF32x16>;
using KF16 = FloatKernel512<2, LoadF16x16>;
using KBF16 = FloatKernel512<2, LoadBF16x16>;
using KQ4_0 = SignedPairKernel<Q4_0Pair>;
using KQ5_0 = SignedPairKernel<Q5_0Pair>;
using KQ8_0 = SignedPairKernel<Q8_0Pair>;
using KQ4_1 = MinPairKernel<Q4_1Pair>;
using KQ5_1 = MinPairKernel<Q5_1Pair>;

}  // namespace

KILN_X86_DEFINE_DOT(F32, KF32, 4)
KILN_X86_DEFINE_DOT(F16, KF16, 4)
KILN_X86_DEFINE_DOT(BF16, KBF16, 4)
KILN_X86_DEFINE_DOT(Q4_0, KQ4_0, kTile)
KILN_X86_DEFINE_DOT(Q4_1, KQ4_1, kTile)
KILN_X86_DEFINE_DOT(Q5_0, KQ5_0, kTile)
KILN_X86_DEFINE_DOT(Q5_1, KQ5_1, kTile)
KILN_X86_DEFINE_DOT(Q8_0, KQ8_0, kTile)
KILN_X86_DEFINE_DOT(Q4_K, Q4_KKernel<VnniOps>, kTile)
KILN_X86_DEFINE_DOT(Q5_K, Q5_KKernel<VnniOps>, kTile)
KILN_X86_DEFINE_DOT(Q6_K, Q6_KKernel<VnniOps>, kTile)

}  // namespace kiln::kernels::avx512
