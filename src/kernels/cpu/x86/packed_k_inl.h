// Gemm micro-kernels for the packed K layouts (kernels/pack.h: kQ4_K_R16, kQ6_K_R16) with
// Q8_K activations, for PackedGemm (packed_inl.h). A vector lane is a weight row; the 6-bit
// (Q4_K) or int8 (Q6_K) sub-scales of the 16 rows are decoded once per super-block per
// group and tile of tokens, amortised over 256 elements × the tile's tokens.
//
// Arithmetic per (row, token, super-block), exactly ref::VecDotPackedOrder's:
//   Q4_K: isum = Σ_j sc_j·dot_j (8 sub-blocks of 32), msum = Σ_j m_j·bsum_j;
//         acc = fma(float(isum), d_w·d_a, acc); acc = fma(float(−msum), dmin_w·d_a, acc)
//   Q6_K: isum = Σ_j sc_j·dot_j (16 sub-blocks of 16, values q6 − 32);
//         acc = fma(float(isum), d_w·d_a, acc)
// Every integer step is exact in int32 (bounds in pack.h), so the order of the integer
// additions is free; only the two float steps per super-block are ordered.
//
// Q6_K speed (issue #4): the loops over (h, u, s) are compile-time (template parameters,
// `#pragma GCC unroll`) so every shift count is an immediate and nothing is a runtime loop
// inside a super-block; with runtime loops GCC 12 left the u loop rolled and extracted each
// sub-scale with variable shifts and scalar bookkeeping, which made the 1-token kernel slower
// than the unpacked one on DRAM-sized matrices.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cpu/x86/packed_inl.h"

namespace kiln::kernels::x86 {
namespace {

constexpr int64_t kQ8KBlockBytes = 292;  // f32 d, 256 int8, 16 int16 bsums
constexpr int64_t kQ8KBsumsAt = 260;
constexpr int64_t kQ4KR16BlockBytes = 16 * 144;
constexpr int64_t kQ6KR16BlockBytes = 16 * 210;
// Byte offsets inside a group's super-block (pack.h).
constexpr int64_t kQ4KScalesAt = 64;    // after 16 d and 16 dmin
constexpr int64_t kQ4KQuantsAt = 256;   // after 3 chunks of scale bytes
constexpr int64_t kQ6KScalesAt = 32;    // after 16 d
constexpr int64_t kQ6KQuantsAt = 32 + 4 * 64;  // then per (h, L): ql A, ql B, qh chunks
constexpr int64_t kQ6KTripleBytes = 3 * 64;

// The 3 chunks of (h, L) of a Q6_K_R16 super-block (pack.h).
inline const uint8_t* Q6Triple(const uint8_t* blk, int h, int L) {
  return blk + kQ6KQuantsAt + kQ6KTripleBytes * (8 * h + L);
}

// Per (token, super-block): d_a and 16 words derived from the bsums (KInfoKind).
struct KTokenInfo {
  float d;
  int32_t w[16];
};

enum class KInfoKind {
  kPairs32,  // w[p], p < 4: int16 pair (−bs_2p, −bs_2p+1), bs_j = Σ of sub-block j of 32
  kPairs16,  // w[p], p < 8: int16 pair (−bsums[2p], −bsums[2p+1]) (sub-blocks of 16)
  kCorr16,   // w[j], j < 16: −32·bsums[j], × 4 for j % 8 ≥ 6 (Avx512Q6KR16's quarter s = 3)
};

inline int32_t PairI16(int lo, int hi) {
  return static_cast<int32_t>((static_cast<uint32_t>(static_cast<uint16_t>(lo))) |
                              (static_cast<uint32_t>(static_cast<uint16_t>(hi)) << 16));
}

template <KInfoKind kKind>
struct Q8_KInfos {
  using Info = KTokenInfo;
  static constexpr int64_t kBlockElems = 256;
  static const Info* Infos(const uint8_t* a, size_t a_row_bytes, int64_t n_tokens, int64_t nb) {
    thread_local std::vector<KTokenInfo> buf;
    const size_t need = static_cast<size_t>(n_tokens * nb);
    if (buf.size() < need) buf.resize(need);
    for (int64_t t = 0; t < n_tokens; ++t) {
      for (int64_t b = 0; b < nb; ++b) {
        const uint8_t* blk = a + t * a_row_bytes + b * kQ8KBlockBytes;
        KTokenInfo& in = buf[static_cast<size_t>(t * nb + b)];
        std::memcpy(&in.d, blk, 4);
        int16_t bs[16];
        std::memcpy(bs, blk + kQ8KBsumsAt, sizeof(bs));
        for (int j = 0; j < 16; ++j) {
          if constexpr (kKind == KInfoKind::kPairs32) {
            const int k4 = 4 * j;
            in.w[j] = j < 4 ? PairI16(-(bs[k4] + bs[k4 + 1]), -(bs[k4 + 2] + bs[k4 + 3])) : 0;
          } else if constexpr (kKind == KInfoKind::kPairs16) {
            in.w[j] = j < 8 ? PairI16(-bs[2 * j], -bs[2 * j + 1]) : 0;
          } else {
            in.w[j] = (j % 8 >= 6 ? -128 : -32) * bs[j];
          }
        }
      }
    }
    return buf.data();
  }
};

// Activation quants of token row `row`, super-block b.
inline const uint8_t* Q8KQuants(const uint8_t* row, int64_t b) {
  return row + b * kQ8KBlockBytes + 4;
}

KILN_X86_INLINE __m256i Srl32(__m256i v, int n) {
  return _mm256_srl_epi32(v, _mm_cvtsi32_si128(n));
}

// Q4_K sub-scale (kMin: sub-min) j of 8 rows from the 3 scale words w0, w1, w2 (pack.h).
KILN_X86_INLINE __m256i Q4KScale256(const __m256i* w, int j, bool min) {
  const __m256i m6 = _mm256_set1_epi32(63), m4 = _mm256_set1_epi32(0xF);
  const __m256i m30 = _mm256_set1_epi32(0x30);
  const __m256i& lo6 = min ? w[1] : w[0];
  if (j < 4) return _mm256_and_si256(Srl32(lo6, 8 * j), m6);
  const int i = j - 4;
  return _mm256_or_si256(_mm256_and_si256(Srl32(w[2], 8 * i + (min ? 4 : 0)), m4),
                         _mm256_and_si256(Srl32(lo6, 8 * i + 2), m30));
}

// int16 pair (lo, hi) per 32-bit lane from two int32 vectors of small values.
KILN_X86_INLINE __m256i Pair256(__m256i lo, __m256i hi) {
  return _mm256_blend_epi16(lo, _mm256_slli_epi32(hi, 16), 0xAA);
}

// AVX2, Q4_K_R16: 8 rows × kT tokens. maddubs of nibbles with int8 activations (≥ −128):
// |pair| <= 2·15·128, the 8 chunks of a sub-block sum to <= 30720 < 2^15 in int16; madd with
// the sub-scale as an int16 pair gives sc_j·dot_j in int32.
struct Avx2Q4KR16 : Q8_KInfos<KInfoKind::kPairs32> {
  static constexpr int kSubRows = 8;
  static constexpr int64_t kGroupBlockBytes = kQ4KR16BlockBytes;
  static constexpr int kMaxTokens = 3;
  template <int kT>
  KILN_X86_INLINE static void Tile(const uint8_t* group, int sub, int64_t nb,
                                   const uint8_t* const* a, const KTokenInfo* const* info,
                                   float* out, int64_t out_stride) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256 acc[kT];
    for (int t = 0; t < kT; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = group + b * kGroupBlockBytes;
      const __m256 dw = _mm256_cvtph_ps(LoadU128(blk + 16 * sub));
      const __m256 dmin = _mm256_cvtph_ps(LoadU128(blk + 32 + 16 * sub));
      __m256i w[3];
      for (int i = 0; i < 3; ++i) w[i] = LoadU256(blk + kQ4KScalesAt + 64 * i + 32 * sub);
      __m256i isum[kT];
      for (int t = 0; t < kT; ++t) isum[t] = _mm256_setzero_si256();
      for (int g = 0; g < 4; ++g) {
        __m256i s_lo[kT], s_hi[kT];
        for (int t = 0; t < kT; ++t) s_lo[t] = s_hi[t] = _mm256_setzero_si256();
        for (int cc = 0; cc < 8; ++cc) {
          const __m256i c = LoadU256(blk + kQ4KQuantsAt + 64 * (8 * g + cc) + 32 * sub);
          const __m256i lo = _mm256_and_si256(c, low4);
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(c, 4), low4);
          for (int t = 0; t < kT; ++t) {
            const uint8_t* q = Q8KQuants(a[t], b) + 64 * g + 4 * cc;
            s_lo[t] = _mm256_add_epi16(s_lo[t], _mm256_maddubs_epi16(lo, Bcast4(q)));
            s_hi[t] = _mm256_add_epi16(s_hi[t], _mm256_maddubs_epi16(hi, Bcast4(q + 32)));
          }
        }
        const __m256i sc_lo = Q4KScale256(w, 2 * g, false);
        const __m256i sc_hi = Q4KScale256(w, 2 * g + 1, false);
        const __m256i p_lo = Pair256(sc_lo, sc_lo), p_hi = Pair256(sc_hi, sc_hi);
        for (int t = 0; t < kT; ++t) {
          isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(s_lo[t], p_lo));
          isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(s_hi[t], p_hi));
        }
      }
      __m256i mp[4];
      for (int p = 0; p < 4; ++p) {
        mp[p] = Pair256(Q4KScale256(w, 2 * p, true), Q4KScale256(w, 2 * p + 1, true));
      }
      for (int t = 0; t < kT; ++t) {
        const KTokenInfo& in = info[t][b];
        __m256i neg_m = _mm256_setzero_si256();
        for (int p = 0; p < 4; ++p) {
          neg_m = _mm256_add_epi32(neg_m, _mm256_madd_epi16(mp[p], _mm256_set1_epi32(in.w[p])));
        }
        const __m256 da = _mm256_set1_ps(in.d);
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_mul_ps(dw, da), acc[t]);
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(neg_m), _mm256_mul_ps(dmin, da), acc[t]);
      }
    }
    for (int t = 0; t < kT; ++t) _mm256_storeu_ps(out + t * out_stride, acc[t]);
  }
};

// Q6_K values of quarter s (elements 128h + 32s + 4L + i) from the (h, L) chunks (pack.h):
// 4 low bits from ql chunk A (s even) or B (s odd), low nibble for s < 2, high for s ≥ 2, and
// bits 2s…2s+1 of the qh chunk moved to bits 4…5 of each byte.
KILN_X86_INLINE __m256i Q6Values256(__m256i ql, __m256i qh, int s) {
  const __m256i low4 = _mm256_set1_epi8(0x0F), bits45 = _mm256_set1_epi8(0x30);
  const __m256i lo = _mm256_and_si256(s < 2 ? ql : _mm256_srli_epi16(ql, 4), low4);
  __m256i hi;
  switch (s) {
    case 0: hi = _mm256_slli_epi16(qh, 4); break;
    case 1: hi = _mm256_slli_epi16(qh, 2); break;
    case 2: hi = qh; break;
    default: hi = _mm256_srli_epi16(qh, 2); break;
  }
  return _mm256_or_si256(lo, _mm256_and_si256(hi, bits45));
}

// AVX2, Q6_K_R16: 8 rows × kT tokens. maddubs of the values 0…63 with int8 activations:
// |pair| <= 2·63·128 = 16128, two chunks sum to <= 32256 < 2^15 in int16; madd with (sc, sc)
// gives sc_j·(dot of 8 elements). The −32·Σa correction: Σ_j sc_j·(−bsums[j]) by madd of
// (sc_2p, sc_2p+1) with the token's (−bsums[2p], −bsums[2p+1]), times 32 (a shift; exact:
// |Σ| <= 16·128·2048 = 2^22).
struct Avx2Q6KR16 : Q8_KInfos<KInfoKind::kPairs16> {
  static constexpr int kSubRows = 8;
  static constexpr int64_t kGroupBlockBytes = kQ6KR16BlockBytes;
  static constexpr int kMaxTokens = 2;
  template <int kT>
  KILN_X86_INLINE static void Tile(const uint8_t* group, int sub, int64_t nb,
                                   const uint8_t* const* a, const KTokenInfo* const* info,
                                   float* out, int64_t out_stride) {
    __m256 acc[kT];
    for (int t = 0; t < kT; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) Block<kT>(group + b * kGroupBlockBytes, sub, a, info, b, acc);
    for (int t = 0; t < kT; ++t) _mm256_storeu_ps(out + t * out_stride, acc[t]);
  }

  // One token, all 16 rows of a group: both sub-tiles per super-block, so the group is read
  // once, in order (Tile<1> per sub-tile would pass over it twice). Same sums as Tile<1>.
  static void MatVec(const uint8_t* w, int64_t group_bytes, const uint8_t* a,
                     const KTokenInfo* info, int64_t nb, float* out, int64_t g_begin,
                     int64_t g_end) {
    const uint8_t* a_rows[1] = {a};
    const KTokenInfo* infos[1] = {info};
    for (int64_t g = g_begin; g < g_end; ++g) {
      const uint8_t* group = w + g * group_bytes;
      __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
      for (int64_t b = 0; b < nb; ++b) {
        Block<1>(group + b * kGroupBlockBytes, 0, a_rows, infos, b, &acc[0]);
        Block<1>(group + b * kGroupBlockBytes, 1, a_rows, infos, b, &acc[1]);
      }
      _mm256_storeu_ps(out + g * kPackGroupRows, acc[0]);
      _mm256_storeu_ps(out + g * kPackGroupRows + kSubRows, acc[1]);
    }
  }

 private:
  // Sign-extended int8 sub-scale kJ of 8 rows (lane r: byte kJ % 4 of word w[kJ / 4]).
  template <int kJ>
  KILN_X86_INLINE static __m256i Scale(const __m256i* w) {
    if constexpr (kJ % 4 == 3) return _mm256_srai_epi32(w[kJ / 4], 24);
    return _mm256_srai_epi32(_mm256_slli_epi32(w[kJ / 4], 24 - 8 * (kJ % 4)), 24);
  }

  // One super-block (group bytes blk) of sub-tile `sub` into acc.
  template <int kT>
  KILN_X86_INLINE static void Block(const uint8_t* blk, int sub, const uint8_t* const* a,
                                    const KTokenInfo* const* info, int64_t b, __m256* acc) {
    const __m256 dw = _mm256_cvtph_ps(LoadU128(blk + 16 * sub));
    __m256i w[4];
    for (int i = 0; i < 4; ++i) w[i] = LoadU256(blk + kQ6KScalesAt + 64 * i + 32 * sub);
    __m256i isum[kT], neg[kT];
    for (int t = 0; t < kT; ++t) isum[t] = neg[t] = _mm256_setzero_si256();
    SubBlocks<kT, 0, 0>(blk, sub, w, a, b, isum);
    SubBlocks<kT, 0, 1>(blk, sub, w, a, b, isum);
    SubBlocks<kT, 1, 0>(blk, sub, w, a, b, isum);
    SubBlocks<kT, 1, 1>(blk, sub, w, a, b, isum);
    Corr<kT, 0>(w, info, b, neg);
    Corr<kT, 1>(w, info, b, neg);
    for (int t = 0; t < kT; ++t) {
      const __m256i total = _mm256_add_epi32(isum[t], _mm256_slli_epi32(neg[t], 5));
      const __m256 da = _mm256_set1_ps(info[t][b].d);
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_mul_ps(dw, da), acc[t]);
    }
  }

  // Sub-blocks j = 8h + 2s + u (s < 4): chunks L = 4u…4u+3 of half h, int16 sums over 2 chunks.
  template <int kT, int kH, int kU>
  KILN_X86_INLINE static void SubBlocks(const uint8_t* blk, int sub, const __m256i* w,
                                        const uint8_t* const* a, int64_t b, __m256i* isum) {
    const __m256i scp[4] = {
        Pair256(Scale<8 * kH + kU>(w), Scale<8 * kH + kU>(w)),
        Pair256(Scale<8 * kH + 2 + kU>(w), Scale<8 * kH + 2 + kU>(w)),
        Pair256(Scale<8 * kH + 4 + kU>(w), Scale<8 * kH + 4 + kU>(w)),
        Pair256(Scale<8 * kH + 6 + kU>(w), Scale<8 * kH + 6 + kU>(w))};
#pragma GCC unroll 2
    for (int half = 0; half < 2; ++half) {
      __m256i s16[kT][4];
#pragma GCC unroll 2
      for (int l2 = 0; l2 < 2; ++l2) {
        const int L = 4 * kU + 2 * half + l2;
        const uint8_t* tri = Q6Triple(blk, kH, L) + 32 * sub;
        const __m256i ql_a = LoadU256(tri), ql_b = LoadU256(tri + 64);
        const __m256i qh = LoadU256(tri + 128);
        const __m256i v[4] = {Q6Values256(ql_a, qh, 0), Q6Values256(ql_b, qh, 1),
                              Q6Values256(ql_a, qh, 2), Q6Values256(ql_b, qh, 3)};
        for (int t = 0; t < kT; ++t) {
          const uint8_t* q = Q8KQuants(a[t], b) + 128 * kH + 4 * L;
          for (int s = 0; s < 4; ++s) {
            const __m256i p = _mm256_maddubs_epi16(v[s], Bcast4(q + 32 * s));
            s16[t][s] = l2 == 0 ? p : _mm256_add_epi16(s16[t][s], p);
          }
        }
      }
      for (int t = 0; t < kT; ++t) {
        for (int s = 0; s < 4; ++s) {
          isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(s16[t][s], scp[s]));
        }
      }
    }
  }

  // The −Σa half of half h: Σ_j sc_j·(−bsums[j]) by madd of (sc_2p, sc_2p+1) pairs.
  template <int kT, int kH>
  KILN_X86_INLINE static void Corr(const __m256i* w, const KTokenInfo* const* info, int64_t b,
                                   __m256i* neg) {
    const __m256i pair[4] = {Pair256(Scale<8 * kH + 0>(w), Scale<8 * kH + 1>(w)),
                             Pair256(Scale<8 * kH + 2>(w), Scale<8 * kH + 3>(w)),
                             Pair256(Scale<8 * kH + 4>(w), Scale<8 * kH + 5>(w)),
                             Pair256(Scale<8 * kH + 6>(w), Scale<8 * kH + 7>(w))};
    for (int s = 0; s < 4; ++s) {
      for (int t = 0; t < kT; ++t) {
        const int32_t bp = info[t][b].w[4 * kH + s];  // (−bsums[j], −bsums[j + 1])
        neg[t] = _mm256_add_epi32(neg[t], _mm256_madd_epi16(pair[s], _mm256_set1_epi32(bp)));
      }
    }
  }
};

#if defined(__AVX512VNNI__)

KILN_X86_INLINE __m512i Srl32x16(__m512i v, int n) {
  return _mm512_srl_epi32(v, _mm_cvtsi32_si128(n));
}

KILN_X86_INLINE __m512i Q4KScale512(const __m512i* w, int j, bool min) {
  const __m512i m6 = _mm512_set1_epi32(63), m4 = _mm512_set1_epi32(0xF);
  const __m512i m30 = _mm512_set1_epi32(0x30);
  const __m512i& lo6 = min ? w[1] : w[0];
  if (j < 4) return _mm512_and_si512(Srl32x16(lo6, 8 * j), m6);
  const int i = j - 4;
  return _mm512_or_si512(_mm512_and_si512(Srl32x16(w[2], 8 * i + (min ? 4 : 0)), m4),
                         _mm512_and_si512(Srl32x16(lo6, 8 * i + 2), m30));
}

// AVX-512 VNNI, Q4_K_R16: 16 rows × kT tokens; vpdpbusd per sub-block, × sc_j (vpmulld),
// mins by vpdpwssd of (m_2p, m_2p+1) with the token's (−bs_2p, −bs_2p+1).
struct Avx512Q4KR16 : Q8_KInfos<KInfoKind::kPairs32> {
  static constexpr int kSubRows = 16;
  static constexpr int64_t kGroupBlockBytes = kQ4KR16BlockBytes;
  static constexpr int kMaxTokens = 4;
  template <int kT>
  KILN_X86_INLINE static void Tile(const uint8_t* group, int /*sub*/, int64_t nb,
                                   const uint8_t* const* a, const KTokenInfo* const* info,
                                   float* out, int64_t out_stride) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    __m512 acc[kT];
    for (int t = 0; t < kT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = group + b * kGroupBlockBytes;
      const __m512 dw = _mm512_cvtph_ps(LoadU256(blk));
      const __m512 dmin = _mm512_cvtph_ps(LoadU256(blk + 32));
      __m512i w[3];
      for (int i = 0; i < 3; ++i) w[i] = _mm512_loadu_si512(blk + kQ4KScalesAt + 64 * i);
      __m512i isum[kT];
      for (int t = 0; t < kT; ++t) isum[t] = _mm512_setzero_si512();
      for (int g = 0; g < 4; ++g) {
        __m512i s_lo[kT], s_hi[kT];
        for (int t = 0; t < kT; ++t) s_lo[t] = s_hi[t] = _mm512_setzero_si512();
        for (int cc = 0; cc < 8; ++cc) {
          const __m512i c = _mm512_loadu_si512(blk + kQ4KQuantsAt + 64 * (8 * g + cc));
          const __m512i lo = _mm512_and_si512(c, low4);
          const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(c, 4), low4);
          for (int t = 0; t < kT; ++t) {
            const uint8_t* q = Q8KQuants(a[t], b) + 64 * g + 4 * cc;
            s_lo[t] = _mm512_dpbusd_epi32(s_lo[t], lo, Bcast4x16(q));
            s_hi[t] = _mm512_dpbusd_epi32(s_hi[t], hi, Bcast4x16(q + 32));
          }
        }
        const __m512i sc_lo = Q4KScale512(w, 2 * g, false);
        const __m512i sc_hi = Q4KScale512(w, 2 * g + 1, false);
        for (int t = 0; t < kT; ++t) {
          isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(s_lo[t], sc_lo));
          isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(s_hi[t], sc_hi));
        }
      }
      __m512i mp[4];
      for (int p = 0; p < 4; ++p) {
        mp[p] = _mm512_mask_blend_epi16(0xAAAAAAAA, Q4KScale512(w, 2 * p, true),
                                        _mm512_slli_epi32(Q4KScale512(w, 2 * p + 1, true), 16));
      }
      for (int t = 0; t < kT; ++t) {
        const KTokenInfo& in = info[t][b];
        __m512i neg_m = _mm512_setzero_si512();
        for (int p = 0; p < 4; ++p) {
          neg_m = _mm512_dpwssd_epi32(neg_m, mp[p], _mm512_set1_epi32(in.w[p]));
        }
        const __m512 da = _mm512_set1_ps(in.d);
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_mul_ps(dw, da), acc[t]);
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(neg_m), _mm512_mul_ps(dmin, da), acc[t]);
      }
    }
    for (int t = 0; t < kT; ++t) _mm512_storeu_ps(out + t * out_stride, acc[t]);
  }
};

// Sign-extended int8 sub-scale j of 16 rows (lane r: byte j % 4 of the word at chunk j / 4).
template <int kJ>
KILN_X86_INLINE __m512i Q6Scale512(const uint8_t* blk) {
  const __m512i w = _mm512_loadu_si512(blk + kQ6KScalesAt + 64 * (kJ / 4));
  if constexpr (kJ % 4 == 3) return _mm512_srai_epi32(w, 24);
  return _mm512_srai_epi32(_mm512_slli_epi32(w, 24 - 8 * (kJ % 4)), 24);
}

// AVX-512 VNNI, Q6_K_R16: 16 rows × kT tokens; per sub-block of 16 a vpdpbusd chain of 4
// chunks started at the token's correction (so it ends at the signed dot_j), × sc_j.
// Values of the (h, L) chunks in 10 operations for 4 vectors (pack.h): with q03 = qh & 0x33
// (top bits of quarters 0 and 2 at bits 0-1 and 4-5) and q0c = qh & 0xCC (quarters 1 and 3
// at bits 2-3 and 6-7), every high part is clean outside the bits it fills, so one ternary
// select per vector (bits 0-3 from the nibble source, the rest from the high part) forms
//   s = 0: ql_a | (q03 << 4)      s = 1: ql_b | (q0c << 2)      s = 2: (ql_a >> 4) | q03
//   s = 3: 4·value = (ql_b >> 2) [bits 2-5] | q0c [bits 6-7]  (one shift fewer)
// (16-bit shifts: bits that cross a byte boundary land only where the select takes the other
// operand). Quarter 3's chains therefore hold 4·dot_j (their correction is 4·(−32·Σa_j),
// KInfoKind::kCorr16) and their sc_j products are summed apart and shifted right by 2, which is
// exact (every term is a multiple of 4; |4·isum| < 2^29).
struct Avx512Q6KR16 : Q8_KInfos<KInfoKind::kCorr16> {
  static constexpr int kSubRows = 16;
  static constexpr int64_t kGroupBlockBytes = kQ6KR16BlockBytes;
  static constexpr int kMaxTokens = 3;  // measured (GFLOP/s): 2: 196, 3: 225, 4: 193
  template <int kT>
  KILN_X86_INLINE static void Tile(const uint8_t* group, int /*sub*/, int64_t nb,
                                   const uint8_t* const* a, const KTokenInfo* const* info,
                                   float* out, int64_t out_stride) {
    const __m512i m33 = _mm512_set1_epi8(0x33), mcc = _mm512_set1_epi8(static_cast<char>(0xCC));
    const __m512i m0f = _mm512_set1_epi8(0x0F), m3c = _mm512_set1_epi8(0x3C);
    __m512 acc[kT];
    for (int t = 0; t < kT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = group + b * kGroupBlockBytes;
      const __m512 dw = _mm512_cvtph_ps(LoadU256(blk));
      __m512i isum[kT], isum4[kT];
      for (int t = 0; t < kT; ++t) isum[t] = isum4[t] = _mm512_setzero_si512();
      SubBlocks<kT, 0, 0>(blk, a, info, b, m33, mcc, m0f, m3c, isum, isum4);
      SubBlocks<kT, 0, 1>(blk, a, info, b, m33, mcc, m0f, m3c, isum, isum4);
      SubBlocks<kT, 1, 0>(blk, a, info, b, m33, mcc, m0f, m3c, isum, isum4);
      SubBlocks<kT, 1, 1>(blk, a, info, b, m33, mcc, m0f, m3c, isum, isum4);
      for (int t = 0; t < kT; ++t) {
        const __m512i total = _mm512_add_epi32(isum[t], _mm512_srai_epi32(isum4[t], 2));
        const __m512 da = _mm512_set1_ps(info[t][b].d);
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total), _mm512_mul_ps(dw, da), acc[t]);
      }
    }
    for (int t = 0; t < kT; ++t) _mm512_storeu_ps(out + t * out_stride, acc[t]);
  }

 private:
  // Sub-blocks j = 8h + 2s + u (s < 4) of super-block b: chunks L = 4u…4u+3 of half h.
  template <int kT, int kH, int kU>
  KILN_X86_INLINE static void SubBlocks(const uint8_t* blk, const uint8_t* const* a,
                                        const KTokenInfo* const* info, int64_t b, __m512i m33,
                                        __m512i mcc, __m512i m0f, __m512i m3c, __m512i* isum,
                                        __m512i* isum4) {
    __m512i d[kT][4];
    for (int t = 0; t < kT; ++t) {
      for (int s = 0; s < 4; ++s) {
        d[t][s] = _mm512_set1_epi32(info[t][b].w[8 * kH + 2 * s + kU]);
      }
    }
#pragma GCC unroll 4
    for (int l = 0; l < 4; ++l) {
      const int L = 4 * kU + l;
      const uint8_t* tri = Q6Triple(blk, kH, L);
      const __m512i ql_a = _mm512_loadu_si512(tri), ql_b = _mm512_loadu_si512(tri + 64);
      const __m512i qh = _mm512_loadu_si512(tri + 128);
      const __m512i q03 = _mm512_and_si512(qh, m33), q0c = _mm512_and_si512(qh, mcc);
      __m512i v[4];
      // 0xCA: first operand (the byte mask) ? second : third, bit by bit.
      v[0] = _mm512_ternarylogic_epi32(m0f, ql_a, _mm512_slli_epi16(q03, 4), 0xCA);
      v[1] = _mm512_ternarylogic_epi32(m0f, ql_b, _mm512_slli_epi16(q0c, 2), 0xCA);
      v[2] = _mm512_ternarylogic_epi32(m0f, _mm512_srli_epi16(ql_a, 4), q03, 0xCA);
      v[3] = _mm512_ternarylogic_epi32(m3c, _mm512_srli_epi16(ql_b, 2), q0c, 0xCA);
      for (int t = 0; t < kT; ++t) {
        const uint8_t* q = Q8KQuants(a[t], b) + 128 * kH + 4 * L;
        for (int s = 0; s < 4; ++s) {
          d[t][s] = _mm512_dpbusd_epi32(d[t][s], v[s], Bcast4x16(q + 32 * s));
        }
      }
    }
    const __m512i sc0 = Q6Scale512<8 * kH + kU>(blk), sc1 = Q6Scale512<8 * kH + 2 + kU>(blk);
    const __m512i sc2 = Q6Scale512<8 * kH + 4 + kU>(blk), sc3 = Q6Scale512<8 * kH + 6 + kU>(blk);
    for (int t = 0; t < kT; ++t) {
      const __m512i p01 = _mm512_add_epi32(_mm512_mullo_epi32(d[t][0], sc0),
                                           _mm512_mullo_epi32(d[t][1], sc1));
      const __m512i p012 = _mm512_add_epi32(p01, _mm512_mullo_epi32(d[t][2], sc2));
      isum[t] = _mm512_add_epi32(isum[t], p012);
      isum4[t] = _mm512_add_epi32(isum4[t], _mm512_mullo_epi32(d[t][3], sc3));
    }
  }
};

#endif  // __AVX512VNNI__

}  // namespace
}  // namespace kiln::kernels::x86
