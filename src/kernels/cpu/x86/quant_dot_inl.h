// Block kernels (tile_inl.h) for the quantized dot products, 256-bit integer code templated
// on Ops, the ISA's int8 multiply-add:
//   Ops::DotU8S8(acc, u, s)         acc + sum of 4 adjacent u8*s8 products per int32 lane
//   Ops::DotU8S8Scaled(acc, u, s, c) acc + per int32 lane sum over two int16 pairs of
//                                    (u8*s8 + u8*s8) * c16
// AVX2 builds them from maddubs/madd (which saturate at int16: every caller keeps pair sums
// below 2^15 by construction); AVX-512 VNNI uses vpdpbusd for DotU8S8.
// Integer block sums are exact, so each block contributes what the reference's does; only the
// float accumulation order differs from ref. The legacy types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0)
// accumulate exactly like ggml's x86 vec_dot (arch/x86/quants.c, AVX2 branch, which its
// AVX-512 builds also run): one 8-lane chain acc = fma(d_w*d_a, (float)sumi, acc) in block
// order, an 8-lane horizontal sum, and for the *_1 types a scalar fma chain over m_w*s_a
// added last; so their results are bit-identical to llama.cpp's on x86 (tested in
// kernels/ref/quant_ggml_test.cc against libggml-cpu-zen4/haswell). The K quants still use
// their own order. The legacy kernels decode an activation block once (struct A, LoadA) for
// every weight row of a tile; what a gemm tile shares changes no (row, token) value.
// See common_inl.h for why this is an anonymous namespace in a header.
#pragma once

#include "kernels/cpu/x86/common_inl.h"
#include "tensor/quant_blocks.h"

namespace kiln::kernels::x86 {
namespace {

// One chain in block order, like ggml's (the block kernels ignore kParity).
struct Acc1 {
  __m256 v;
};

// Acc1 plus the sum of the min terms (m_w * s_a) of the *_1 types, kept in block order.
struct Acc1M {
  __m256 v;
  __m128 m;  // lane 1: fma chain of m_w * s_a in block order (lane 0 unused)
};

// acc += d * (float)sumi
inline __m256 ScaleAdd(__m256 acc, float d, __m256i sumi) {
  return _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
}

// Signed × signed via |x| and sign(y, x): x in [-128, 127] with |x|*|y| pair sums < 2^15.
template <class Ops>
inline __m256i DotS8S8(__m256i abs_x, __m256i x, __m256i y) {
  return Ops::DotU8S8(_mm256_setzero_si256(), abs_x, _mm256_sign_epi8(y, x));
}

// The f16 at p, converted and broadcast to 8 lanes (exact, no scalar round trip).
inline __m256 BroadcastHalf(const uint8_t* p) {
  return _mm256_cvtph_ps(_mm_set1_epi16(static_cast<short>(LoadU16(p))));
}

// The two adjacent f16 at p (d then m, or d then s) → lanes 0 and 1.
inline __m128 HalfPairAt(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(v)));
}

// Q8_0 activation block decoded once per (token, block) and shared by a tile's rows.
struct Q8A {
  __m256i y;   // the 32 quants
  __m256 d;    // d_a, broadcast
};

// Weight blocks with signed quants (Q4_0, Q5_0, Q8_0) against Q8_0 activations, signed x
// signed through |x| and sign(y, x) (no bias: safe with maddubs for every int8 range).
struct SignedW {
  __m256i x, abs_x;
  __m256 d;  // broadcast
};

template <class Ops, class Decode>
struct SignedQ8_0Kernel {
  static constexpr int kBlockElems = kQK;
  static constexpr int64_t kWBlockBytes = Decode::kBytes;
  static constexpr int64_t kABlockBytes = sizeof(BlockQ8_0);
  static constexpr bool kPadTail = false;
  using W = SignedW;
  using A = Q8A;
  using Acc = Acc1;
  KILN_X86_INLINE static void Load(const uint8_t* p, W& w) {
    w.x = Decode::SignedQuants(p);
    w.abs_x = _mm256_abs_epi8(w.x);
    w.d = BroadcastHalf(p);
  }
  KILN_X86_INLINE static void LoadA(const uint8_t* a, A& y) {
    y.y = LoadU256(a + offsetof(BlockQ8_0, qs));
    y.d = BroadcastHalf(a);
  }
  static void Init(Acc& a) { a.v = _mm256_setzero_ps(); }
  template <int kParity>
  KILN_X86_INLINE static void Add(const W& w, const A& y, Acc& acc) {
    const __m256i sumi = DotS8S8<Ops>(w.abs_x, w.x, y.y);
    acc.v = _mm256_fmadd_ps(_mm256_mul_ps(w.d, y.d), _mm256_cvtepi32_ps(sumi), acc.v);
  }
  static float Finish(const Acc& a) { return HSum(a.v); }
};

// The same products with the weight quants kept unsigned (u = x + offset, so x = u - offset):
// per int32 lane sum(x * y) = sum(u * y) - offset * sum(y), where offset * sum(y) is
// computed once per activation block and seeds the multiply-add. Integer sums are exact, so
// each lane equals SignedQ8_0Kernel's (and ggml's). Needs Ops::DotU8S8 without intermediate
// saturation for u up to 2 * offset - 1 (vpdpbusd; maddubs only for offset <= 16).
struct BiasedA {
  __m256i y;
  __m256i neg_bias;  // -offset * (sum of 4 quants) per int32 lane
  __m256 d;
};

struct BiasedW {
  __m256i u;
  __m256 d;
};

template <class Ops, class Decode>
struct BiasedQ8_0Kernel {
  static constexpr int kBlockElems = kQK;
  static constexpr int64_t kWBlockBytes = Decode::kBytes;
  static constexpr int64_t kABlockBytes = sizeof(BlockQ8_0);
  static constexpr bool kPadTail = false;
  using W = BiasedW;
  using A = BiasedA;
  using Acc = Acc1;
  KILN_X86_INLINE static void Load(const uint8_t* p, W& w) {
    w.u = Decode::Quants(p);
    w.d = BroadcastHalf(p);
  }
  KILN_X86_INLINE static void LoadA(const uint8_t* a, A& y) {
    y.y = LoadU256(a + offsetof(BlockQ8_0, qs));
    const __m256i bias = Ops::DotU8S8(_mm256_setzero_si256(),
                                      _mm256_set1_epi8(static_cast<char>(Decode::kOffset)), y.y);
    y.neg_bias = _mm256_sub_epi32(_mm256_setzero_si256(), bias);
    y.d = BroadcastHalf(a);
  }
  static void Init(Acc& a) { a.v = _mm256_setzero_ps(); }
  template <int kParity>
  KILN_X86_INLINE static void Add(const W& w, const A& y, Acc& acc) {
    const __m256i sumi = Ops::DotU8S8(y.neg_bias, w.u, y.y);
    acc.v = _mm256_fmadd_ps(_mm256_mul_ps(w.d, y.d), _mm256_cvtepi32_ps(sumi), acc.v);
  }

  static float Finish(const Acc& a) { return HSum(a.v); }
};

// Decoders: unsigned quants u (x = u - kOffset).
struct DecodeQ4_0 {
  static constexpr int64_t kBytes = sizeof(BlockQ4_0);
  static constexpr int kOffset = 8;
  KILN_X86_INLINE static __m256i Quants(const uint8_t* p) {
    return UnpackNibbles16(p + offsetof(BlockQ4_0, qs));
  }
  KILN_X86_INLINE static __m256i SignedQuants(const uint8_t* p) {
    return _mm256_sub_epi8(Quants(p), _mm256_set1_epi8(kOffset));
  }
};

inline uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

struct DecodeQ5_0 {
  static constexpr int64_t kBytes = sizeof(BlockQ5_0);
  static constexpr int kOffset = 16;
  KILN_X86_INLINE static __m256i Quants(const uint8_t* p) {
    const __m256i lo = UnpackNibbles16(p + offsetof(BlockQ5_0, qs));
    const __m256i hi = _mm256_and_si256(BytesFromBits(LoadU32(p + offsetof(BlockQ5_0, qh))),
                                        _mm256_set1_epi8(0x10));
    return _mm256_or_si256(lo, hi);
  }
  KILN_X86_INLINE static __m256i SignedQuants(const uint8_t* p) {
    return _mm256_sub_epi8(Quants(p), _mm256_set1_epi8(kOffset));
  }
};

struct DecodeQ8_0 {
  static constexpr int64_t kBytes = sizeof(BlockQ8_0);
  static constexpr int kOffset = 128;
  // x + 128 as u8 (flipping the sign bit).
  KILN_X86_INLINE static __m256i Quants(const uint8_t* p) {
    return _mm256_xor_si256(SignedQuants(p), _mm256_set1_epi8(-128));
  }
  KILN_X86_INLINE static __m256i SignedQuants(const uint8_t* p) {
    return LoadU256(p + offsetof(BlockQ8_0, qs));
  }
};

// Weight blocks with unsigned quants and a min (Q4_1, Q5_1) against Q8_1 activations:
// block = d_w * d_a * sum(q * y) + m_w * s_a.
struct UnsignedW {
  __m256i q;
  __m256 d;   // d_w, broadcast
  __m128 dm;  // lanes 0, 1: d_w, m_w
};

struct Q8_1A {
  __m256i y;
  __m256 d;   // d_a, broadcast
  __m128 ds;  // lanes 0, 1: d_a, s_a
};

template <class Ops, class Decode>
struct MinQ8_1Kernel {
  static constexpr int kBlockElems = kQK;
  static constexpr int64_t kWBlockBytes = Decode::kBytes;
  static constexpr int64_t kABlockBytes = sizeof(BlockQ8_1);
  static constexpr bool kPadTail = false;
  using W = UnsignedW;
  using A = Q8_1A;
  using Acc = Acc1M;
  KILN_X86_INLINE static void Load(const uint8_t* p, W& w) {
    w.q = Decode::Quants(p);
    w.dm = HalfPairAt(p);  // m follows d in both Q4_1 and Q5_1
    w.d = _mm256_broadcastss_ps(w.dm);
  }
  KILN_X86_INLINE static void LoadA(const uint8_t* a, A& y) {
    static_assert(offsetof(BlockQ8_1, s) == offsetof(BlockQ8_1, d) + 2);
    y.y = LoadU256(a + offsetof(BlockQ8_1, qs));
    y.ds = HalfPairAt(a);  // d_a, s_a
    y.d = _mm256_broadcastss_ps(y.ds);
  }
  static void Init(Acc& a) {
    a.v = _mm256_setzero_ps();
    a.m = _mm_setzero_ps();
  }
  template <int kParity>
  KILN_X86_INLINE static void Add(const W& w, const A& y, Acc& acc) {
    const __m256i sumi = Ops::DotU8S8(_mm256_setzero_si256(), w.q, y.y);
    acc.v = _mm256_fmadd_ps(_mm256_mul_ps(w.d, y.d), _mm256_cvtepi32_ps(sumi), acc.v);
    acc.m = _mm_fmadd_ps(w.dm, y.ds, acc.m);  // lane 1: fma(m_w, s_a, summs)
  }

  static float Finish(const Acc& a) { return HSum(a.v) + _mm_cvtss_f32(_mm_movehdup_ps(a.m)); }
};

struct DecodeQ4_1 {
  static constexpr int64_t kBytes = sizeof(BlockQ4_1);
  KILN_X86_INLINE static __m256i Quants(const uint8_t* p) {
    return UnpackNibbles16(p + offsetof(BlockQ4_1, qs));
  }
};

struct DecodeQ5_1 {
  static constexpr int64_t kBytes = sizeof(BlockQ5_1);
  KILN_X86_INLINE static __m256i Quants(const uint8_t* p) {
    const __m256i lo = UnpackNibbles16(p + offsetof(BlockQ5_1, qs));
    const __m256i hi = _mm256_and_si256(BytesFromBits(LoadU32(p + offsetof(BlockQ5_1, qh))),
                                        _mm256_set1_epi8(0x10));
    return _mm256_or_si256(lo, hi);
  }
};

// ── K quants against Q8_K ────────────────────────────────────────────────────────────────

// Q4_K/Q5_K 6-bit scales and mins → sc[0..7], m[0..7] (layout in quant_blocks.h).
KILN_X86_INLINE void DecodeScalesMins(const uint8_t* s, uint8_t* sc, uint8_t* m) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = s[j] & 63;
    m[j] = s[j + 4] & 63;
    sc[j + 4] = static_cast<uint8_t>((s[j + 8] & 0x0F) | ((s[j] >> 6) << 4));
    m[j + 4] = static_cast<uint8_t>((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
  }
}

struct KW {
  const uint8_t* p;     // the block (quants are read per token, from L1)
  __m256i mins16;       // m[j] for bsums 2j and 2j+1: {m0, m0, m1, m1, …}
  int16_t sc[8];
  float d, dmin;
};

// Q4_K and Q5_K share the head of the block (d, dmin, scales).
static_assert(offsetof(BlockQ5_K, scales) == offsetof(BlockQ4_K, scales) &&
              offsetof(BlockQ5_K, dmin) == offsetof(BlockQ4_K, dmin));
KILN_X86_INLINE void LoadKW(const uint8_t* p, KW& w) {
  uint8_t sc[8], m[8];
  DecodeScalesMins(p + offsetof(BlockQ4_K, scales), sc, m);
  for (int j = 0; j < 8; ++j) w.sc[j] = sc[j];
  const __m128i m8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(m));
  w.mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
  w.d = HalfToFloat(p + offsetof(BlockQ4_K, d));
  w.dmin = HalfToFloat(p + offsetof(BlockQ4_K, dmin));
  w.p = p;
}

// acc += d_w*d_a * sumi - dmin_w*d_a * (mins · bsums)
KILN_X86_INLINE void FinishKBlock(const KW& w, const uint8_t* a, __m256i sumi, Acc1& acc) {
  const float da = LoadF32(a + offsetof(BlockQ8_K, d));
  const __m256i bsums = LoadU256(a + offsetof(BlockQ8_K, bsums));
  const __m256i mins = _mm256_madd_epi16(bsums, w.mins16);
  acc.v = ScaleAdd(acc.v, w.d * da, sumi);
  acc.v = _mm256_fnmadd_ps(_mm256_set1_ps(w.dmin * da), _mm256_cvtepi32_ps(mins), acc.v);
}

template <class Ops>
struct Q4_KKernel {
  static constexpr int kBlockElems = kQK_K;
  static constexpr int64_t kWBlockBytes = sizeof(BlockQ4_K);
  static constexpr int64_t kABlockBytes = sizeof(BlockQ8_K);
  static constexpr bool kPadTail = false;
  using W = KW;
  using Acc = Acc1;
  KILN_X86_INLINE static void Load(const uint8_t* p, W& w) { LoadKW(p, w); }
  static void Init(Acc& a) { a.v = _mm256_setzero_ps(); }
  template <int kParity>
  KILN_X86_INLINE static void Add(const W& w, const uint8_t* a, Acc& acc) {
    const uint8_t* qs = w.p + offsetof(BlockQ4_K, qs);
    const uint8_t* y = a + offsetof(BlockQ8_K, qs);
    const __m256i nib = _mm256_set1_epi8(0x0F);
    __m256i sumi = _mm256_setzero_si256();
    for (int g = 0; g < 4; ++g) {
      const __m256i q = LoadU256(qs + 32 * g);
      const __m256i lo = _mm256_and_si256(q, nib);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), nib);
      sumi = Ops::DotU8S8Scaled(sumi, lo, LoadU256(y + 64 * g), _mm256_set1_epi16(w.sc[2 * g]));
      sumi = Ops::DotU8S8Scaled(sumi, hi, LoadU256(y + 64 * g + 32),
                                _mm256_set1_epi16(w.sc[2 * g + 1]));
    }
    FinishKBlock(w, a, sumi, acc);
  }
  static float Finish(const Acc& a) { return HSum(a.v); }
};

template <class Ops>
struct Q5_KKernel {
  static constexpr int kBlockElems = kQK_K;
  static constexpr int64_t kWBlockBytes = sizeof(BlockQ5_K);
  static constexpr int64_t kABlockBytes = sizeof(BlockQ8_K);
  static constexpr bool kPadTail = false;
  using W = KW;
  using Acc = Acc1;
  KILN_X86_INLINE static void Load(const uint8_t* p, W& w) { LoadKW(p, w); }
  static void Init(Acc& a) { a.v = _mm256_setzero_ps(); }
  template <int kParity>
  KILN_X86_INLINE static void Add(const W& w, const uint8_t* a, Acc& acc) {
    const uint8_t* qs = w.p + offsetof(BlockQ5_K, qs);
    const __m256i qh = LoadU256(w.p + offsetof(BlockQ5_K, qh));
    const uint8_t* y = a + offsetof(BlockQ8_K, qs);
    const __m256i nib = _mm256_set1_epi8(0x0F);
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    __m256i sumi = _mm256_setzero_si256();
    for (int g = 0; g < 4; ++g) {
      const __m256i q = LoadU256(qs + 32 * g);
      const __m256i m_lo = _mm256_set1_epi8(static_cast<char>(1 << (2 * g)));
      const __m256i m_hi = _mm256_set1_epi8(static_cast<char>(1 << (2 * g + 1)));
      const __m256i h_lo = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, m_lo), m_lo), bit4);
      const __m256i h_hi = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, m_hi), m_hi), bit4);
      const __m256i lo = _mm256_or_si256(_mm256_and_si256(q, nib), h_lo);
      const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), nib), h_hi);
      sumi = Ops::DotU8S8Scaled(sumi, lo, LoadU256(y + 64 * g), _mm256_set1_epi16(w.sc[2 * g]));
      sumi = Ops::DotU8S8Scaled(sumi, hi, LoadU256(y + 64 * g + 32),
                                _mm256_set1_epi16(w.sc[2 * g + 1]));
    }
    FinishKBlock(w, a, sumi, acc);
  }
  static float Finish(const Acc& a) { return HSum(a.v); }
};

// Q6_K: sum_s sc[s] * sum(q_s * y_s) - 32 * sum_s sc[s] * bsums[s], q in [0, 63], all exact.
struct Q6W {
  const uint8_t* p;
  __m256i sc16;        // the 16 sub-scales as int16
  __m256i pair[8];     // pair[i]: sc[2i] in the low 128-bit lane, sc[2i+1] in the high one
  float d;
};

template <class Ops>
struct Q6_KKernel {
  static constexpr int kBlockElems = kQK_K;
  static constexpr int64_t kWBlockBytes = sizeof(BlockQ6_K);
  static constexpr int64_t kABlockBytes = sizeof(BlockQ8_K);
  static constexpr bool kPadTail = false;
  using W = Q6W;
  using Acc = Acc1;
  KILN_X86_INLINE static void Load(const uint8_t* p, W& w) {
    const int8_t* sc = reinterpret_cast<const int8_t*>(p + offsetof(BlockQ6_K, scales));
    w.sc16 = _mm256_cvtepi8_epi16(LoadU128(sc));
    for (int i = 0; i < 8; ++i) {
      w.pair[i] = _mm256_set_m128i(_mm_set1_epi16(sc[2 * i + 1]), _mm_set1_epi16(sc[2 * i]));
    }
    w.d = HalfToFloat(p + offsetof(BlockQ6_K, d));
    w.p = p;
  }
  static void Init(Acc& a) { a.v = _mm256_setzero_ps(); }
  template <int kParity>
  KILN_X86_INLINE static void Add(const W& w, const uint8_t* a, Acc& acc) {
    const uint8_t* y = a + offsetof(BlockQ8_K, qs);
    const __m256i nib = _mm256_set1_epi8(0x0F);
    const __m256i hmask = _mm256_set1_epi8(0x30);
    __m256i sumi = _mm256_setzero_si256();
    for (int n = 0; n < 2; ++n) {
      const __m256i ql0 = LoadU256(w.p + offsetof(BlockQ6_K, ql) + 64 * n);
      const __m256i ql1 = LoadU256(w.p + offsetof(BlockQ6_K, ql) + 64 * n + 32);
      const __m256i qh = LoadU256(w.p + offsetof(BlockQ6_K, qh) + 32 * n);
      const __m256i q1 = _mm256_or_si256(_mm256_and_si256(ql0, nib),
                                         _mm256_and_si256(_mm256_slli_epi16(qh, 4), hmask));
      const __m256i q2 = _mm256_or_si256(_mm256_and_si256(ql1, nib),
                                         _mm256_and_si256(_mm256_slli_epi16(qh, 2), hmask));
      const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), nib),
                                         _mm256_and_si256(qh, hmask));
      const __m256i q4 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), nib),
                                         _mm256_and_si256(_mm256_srli_epi16(qh, 2), hmask));
      const uint8_t* yn = y + 128 * n;
      sumi = Ops::DotU8S8Scaled(sumi, q1, LoadU256(yn), w.pair[4 * n + 0]);
      sumi = Ops::DotU8S8Scaled(sumi, q2, LoadU256(yn + 32), w.pair[4 * n + 1]);
      sumi = Ops::DotU8S8Scaled(sumi, q3, LoadU256(yn + 64), w.pair[4 * n + 2]);
      sumi = Ops::DotU8S8Scaled(sumi, q4, LoadU256(yn + 96), w.pair[4 * n + 3]);
    }
    const __m256i bsums = LoadU256(a + offsetof(BlockQ8_K, bsums));
    const __m256i bias = _mm256_madd_epi16(bsums, w.sc16);
    sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(bias, 5));
    acc.v = ScaleAdd(acc.v, w.d * LoadF32(a + offsetof(BlockQ8_K, d)), sumi);
  }
  static float Finish(const Acc& a) { return HSum(a.v); }
};

}  // namespace
}  // namespace kiln::kernels::x86
