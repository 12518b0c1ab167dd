// Gemm for the packed weight layouts (kernels/pack.h: kQ4_0_R16, kQ5_0_R16, kQ8_0_R16; the K
// types' micro-kernels are in packed_k_inl.h), shared by the x86 ISAs. A vector lane is a
// weight row: one integer multiply-add covers 4 elements of 8 (AVX2) or 16 (AVX-512) rows for
// one token, and a row's result needs no horizontal sum.
//
// Arithmetic per (row, token), exactly ref::VecDotPackedOrder's:
//   acc = 0;  for b: acc = fma(float(isum_b), d_w[b] * d_a[b], acc)
// isum_b is the exact integer block dot. The weights are stored with an offset (Q4_0: the
// nibble q = value + 8; Q5_0: the 5-bit q = value + 16; Q8_0: the byte u = value + 128), so
// the unsigned × signed products sum to isum_b + offset · Σa_b: the integer accumulator
// starts at corr = −offset · Σa_b instead of 0, which keeps every step in exact int32
// arithmetic before the single convert. Σa_b and d_a as float are computed once per call for
// every (token, block) into a thread_local scratch (TokenBlockInfo, Q8_0Infos).
//
// A micro-kernel M (one per ISA and type) provides:
//   kSubRows       rows per vector (16 AVX-512, 8 AVX2); a group has kPackRows / kSubRows
//   kGroupBlockBytes  bytes of one block of a 16-row group (scales then chunks)
//   kMaxTokens     tokens per tile (registers)
//   kBlockElems, Info, Infos(a, a_row_bytes, n_tokens, nb): elements per block and the
//        per-(token, block) activation information M reads (Q8_0Infos<offset>: d_a and
//        −offset·Σa; packed_k_inl.h for the K types), computed once per call
//   template <int kT> static void Tile(const uint8_t* group, int sub, int64_t nb,
//        const uint8_t* const* a, const Info* const* info, float* out, int64_t out_stride)
//     writes out[t * out_stride + i] for kT tokens and the kSubRows rows of sub-tile `sub`.
// See common_inl.h for why this is an anonymous namespace in a header.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/cpu/x86/common_inl.h"

namespace kiln::kernels::x86 {
namespace {

constexpr int64_t kPackGroupRows = 16;    // kernels::kPackRows
constexpr int64_t kQ8ABlockBytes = 34;    // Q8_0 activation block: f16 d, 32 int8
constexpr int64_t kQ4R16BlockBytes = 16 * 18;
constexpr int64_t kQ8R16BlockBytes = 16 * 34;
constexpr int64_t kQ5R16BlockBytes = 16 * 22;
constexpr int64_t kQ5HighBitsAt = 32 + 4 * 64;  // the high-bit chunk after 4 nibble chunks
constexpr int64_t kPackScaleBytes = 32;   // 16 f16 scales before the chunks of a block

// Per (token, block): the activation scale as float and the offset correction −offset·Σa.
struct TokenBlockInfo {
  float d;
  int32_t corr;
};

inline uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// The 4 activation bytes at p broadcast to every 32-bit lane (vpbroadcastd / m32bcst).
KILN_X86_INLINE __m256i Bcast4(const uint8_t* p) {
  return _mm256_set1_epi32(static_cast<int>(Load32(p)));
}

// Σ of the 32 int8 of a Q8_0 activation block's quants (exact).
inline int32_t SumQ8(const uint8_t* qs) {
  const __m256i v = LoadU256(qs);
  const __m256i pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), v);  // |pair| <= 256
  return HSumI32(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

// info[t * nb + b] for n_tokens activation rows.
inline const TokenBlockInfo* ComputeTokenInfo(const uint8_t* a, size_t a_row_bytes,
                                              int64_t n_tokens, int64_t nb, int32_t offset,
                                              std::vector<TokenBlockInfo>& buf) {
  const size_t need = static_cast<size_t>(n_tokens * nb);
  if (buf.size() < need) buf.resize(need);
  for (int64_t t = 0; t < n_tokens; ++t) {
    const uint8_t* row = a + t * a_row_bytes;
    TokenBlockInfo* dst = buf.data() + t * nb;
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = row + b * kQ8ABlockBytes;
      dst[b].d = HalfToFloat(blk);
      dst[b].corr = offset == 0 ? 0 : -offset * SumQ8(blk + 2);
    }
  }
  return buf.data();
}

// The per-(token, block) information of the Q8_0-activation kernels, in a per-thread scratch.
template <int32_t kOffset>
struct Q8_0Infos {
  using Info = TokenBlockInfo;
  static constexpr int64_t kBlockElems = 32;
  static const Info* Infos(const uint8_t* a, size_t a_row_bytes, int64_t n_tokens, int64_t nb) {
    thread_local std::vector<TokenBlockInfo> scratch;
    return ComputeTokenInfo(a, a_row_bytes, n_tokens, nb, kOffset, scratch);
  }
};

// acc = fma(float(isum), d_w * d_a, acc), 8 rows.
KILN_X86_INLINE __m256 BlockFma(__m256 acc, __m256i isum, __m256 dw, float da) {
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, _mm256_set1_ps(da)), acc);
}

// AVX2, Q4_0_R16 and Q5_0_R16: 8 rows (half a group) × kT tokens. maddubs of the unsigned
// weights (Q4: 0…15, Q5: 0…31) with int8 activations gives int16 pairs of magnitude
// <= 2·31·128. Q4: the 8 chunk products of a block add up to <= 30720 < 2^15, summed in int16
// and widened once per block. Q5: 4 products (<= 31744) per int16 sum, widened twice per block.
// Q5's 5th bit comes from the row's high-bit word (pack.h): (H << (4 − c)) or (H >> (c − 4)),
// AND 0x10 per byte, for chunk c.
template <bool kQ5>
struct Avx2NibR16 : Q8_0Infos<kQ5 ? 16 : 8> {
  static constexpr int kSubRows = 8;
  static constexpr int64_t kGroupBlockBytes = kQ5 ? kQ5R16BlockBytes : kQ4R16BlockBytes;
  static constexpr int kMaxTokens = 4;
  template <int kT>
  KILN_X86_INLINE static void Tile(const uint8_t* group, int sub, int64_t nb,
                                   const uint8_t* const* a, const TokenBlockInfo* const* info,
                                   float* out, int64_t out_stride) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256 acc[kT];
    for (int t = 0; t < kT; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = group + b * kGroupBlockBytes;
      const __m256 dw = _mm256_cvtph_ps(LoadU128(blk + 16 * sub));
      __m256i s16[kT], s32[kT];
      for (int t = 0; t < kT; ++t) {
        s16[t] = _mm256_setzero_si256();
        s32[t] = _mm256_set1_epi32(info[t][b].corr);
      }
      __m256i h = _mm256_setzero_si256();
      if constexpr (kQ5) h = LoadU256(blk + kQ5HighBitsAt + 32 * sub);
      for (int j = 0; j < 4; ++j) {
        const __m256i c = LoadU256(blk + kPackScaleBytes + 64 * j + 32 * sub);
        __m256i lo = _mm256_and_si256(c, low4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(c, 4), low4);
        if constexpr (kQ5) {
          const __m128i lo_shift = _mm_cvtsi32_si128(4 - j), hi_shift = _mm_cvtsi32_si128(j);
          lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_sll_epi32(h, lo_shift), bit4));
          hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_srl_epi32(h, hi_shift), bit4));
        }
        for (int t = 0; t < kT; ++t) {
          const uint8_t* q = a[t] + b * kQ8ABlockBytes + 2;
          s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(lo, Bcast4(q + 4 * j)));
          s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(hi, Bcast4(q + 16 + 4 * j)));
        }
        if (kQ5 ? j % 2 == 1 : j == 3) {
          for (int t = 0; t < kT; ++t) {
            s32[t] = _mm256_add_epi32(s32[t], _mm256_madd_epi16(s16[t], ones16));
            s16[t] = _mm256_setzero_si256();
          }
        }
      }
      for (int t = 0; t < kT; ++t) acc[t] = BlockFma(acc[t], s32[t], dw, info[t][b].d);
    }
    for (int t = 0; t < kT; ++t) _mm256_storeu_ps(out + t * out_stride, acc[t]);
  }
};
using Avx2Q4R16 = Avx2NibR16<false>;
using Avx2Q5R16 = Avx2NibR16<true>;

// AVX2, Q8_0_R16: 8 rows × kT tokens. The stored bytes are value + 128; maddubs would
// saturate on them (2·255·127 > 2^15), so each chunk is turned back into int8 (xor 0x80) and
// multiplied with the sign trick: |w| (u8) × sign(a, w) (s8), pair sums <= 2·128·127 < 2^15
// (activations are Q8_0 quants in [−127, 127]). No offset correction.
struct Avx2Q8R16 : Q8_0Infos<0> {
  static constexpr int kSubRows = 8;
  static constexpr int64_t kGroupBlockBytes = kQ8R16BlockBytes;
  static constexpr int kMaxTokens = 4;
  template <int kT>
  KILN_X86_INLINE static void Tile(const uint8_t* group, int sub, int64_t nb,
                                   const uint8_t* const* a, const TokenBlockInfo* const* info,
                                   float* out, int64_t out_stride) {
    const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256 acc[kT];
    for (int t = 0; t < kT; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = group + b * kGroupBlockBytes;
      const __m256 dw = _mm256_cvtph_ps(LoadU128(blk + 16 * sub));
      __m256i s32[kT];
      for (int t = 0; t < kT; ++t) s32[t] = _mm256_setzero_si256();
      for (int j = 0; j < 8; ++j) {
        const __m256i w =
            _mm256_xor_si256(LoadU256(blk + kPackScaleBytes + 64 * j + 32 * sub), bias);
        const __m256i aw = _mm256_abs_epi8(w);
        for (int t = 0; t < kT; ++t) {
          const __m256i s = _mm256_sign_epi8(Bcast4(a[t] + b * kQ8ABlockBytes + 2 + 4 * j), w);
          s32[t] = _mm256_add_epi32(s32[t], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, s), ones16));
        }
      }
      for (int t = 0; t < kT; ++t) acc[t] = BlockFma(acc[t], s32[t], dw, info[t][b].d);
    }
    for (int t = 0; t < kT; ++t) _mm256_storeu_ps(out + t * out_stride, acc[t]);
  }
};

#if defined(__AVX512VNNI__)

KILN_X86_INLINE __m512i Bcast4x16(const uint8_t* p) {
  return _mm512_set1_epi32(static_cast<int>(Load32(p)));
}

// acc = fma(float(isum), d_w * d_a, acc), 16 rows.
KILN_X86_INLINE __m512 BlockFma512(__m512 acc, __m512i isum, __m512 dw, float da) {
  return _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, _mm512_set1_ps(da)), acc);
}

// AVX-512 VNNI, Q4_0_R16, Q5_0_R16 and Q8_0_R16: a whole group (16 rows) × kT tokens;
// vpdpbusd of the unsigned weights with the broadcast int8 activations, accumulators started
// at corr. kBits: 4 (Q4_0), 5 (Q5_0, 5th bit from the high-bit word as in Avx2NibR16), 8.
template <int kBits>
struct Avx512R16 : Q8_0Infos<kBits == 4 ? 8 : kBits == 5 ? 16 : 128> {
  static constexpr int kSubRows = 16;
  static constexpr int64_t kGroupBlockBytes =
      kBits == 4 ? kQ4R16BlockBytes : kBits == 5 ? kQ5R16BlockBytes : kQ8R16BlockBytes;
  static constexpr int kMaxTokens = kBits == 8 ? 10 : 6;  // measured: 4-12 tokens within 5 %
  template <int kT>
  KILN_X86_INLINE static void Tile(const uint8_t* group, int /*sub*/, int64_t nb,
                                   const uint8_t* const* a, const TokenBlockInfo* const* info,
                                   float* out, int64_t out_stride) {
    const __m512i low4 = _mm512_set1_epi8(0x0F);
    const __m512i bit4 = _mm512_set1_epi8(0x10);
    __m512 acc[kT];
    for (int t = 0; t < kT; ++t) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = group + b * kGroupBlockBytes;
      const __m512 dw = _mm512_cvtph_ps(LoadU256(blk));
      __m512i s[kT];
      for (int t = 0; t < kT; ++t) s[t] = _mm512_set1_epi32(info[t][b].corr);  // −offset·Σa
      const uint8_t* chunks = blk + kPackScaleBytes;
      if constexpr (kBits < 8) {
        __m512i h = _mm512_setzero_si512();
        if constexpr (kBits == 5) h = _mm512_loadu_si512(blk + kQ5HighBitsAt);
        for (int j = 0; j < 4; ++j) {
          const __m512i c = _mm512_loadu_si512(chunks + 64 * j);
          __m512i lo = _mm512_and_si512(c, low4);
          __m512i hi = _mm512_and_si512(_mm512_srli_epi16(c, 4), low4);
          if constexpr (kBits == 5) {
            const __m128i lo_shift = _mm_cvtsi32_si128(4 - j), hi_shift = _mm_cvtsi32_si128(j);
            lo = _mm512_ternarylogic_epi32(lo, _mm512_sll_epi32(h, lo_shift), bit4, 0xF8);
            hi = _mm512_ternarylogic_epi32(hi, _mm512_srl_epi32(h, hi_shift), bit4, 0xF8);
          }
          for (int t = 0; t < kT; ++t) {
            const uint8_t* q = a[t] + b * kQ8ABlockBytes + 2;
            s[t] = _mm512_dpbusd_epi32(s[t], lo, Bcast4x16(q + 4 * j));
            s[t] = _mm512_dpbusd_epi32(s[t], hi, Bcast4x16(q + 16 + 4 * j));
          }
        }
      } else {
        for (int j = 0; j < 8; ++j) {
          const __m512i c = _mm512_loadu_si512(chunks + 64 * j);
          for (int t = 0; t < kT; ++t) {
            s[t] = _mm512_dpbusd_epi32(s[t], c,
                                       Bcast4x16(a[t] + b * kQ8ABlockBytes + 2 + 4 * j));
          }
        }
      }
      for (int t = 0; t < kT; ++t) acc[t] = BlockFma512(acc[t], s[t], dw, info[t][b].d);
    }
    for (int t = 0; t < kT; ++t) _mm512_storeu_ps(out + t * out_stride, acc[t]);
  }
};

#endif  // __AVX512VNNI__

// M::Tile<n> for a runtime n in [1, kMax].
template <class M, int kMax>
KILN_X86_INLINE void TileN(int n, const uint8_t* group, int sub, int64_t nb,
                           const uint8_t* const* a, const typename M::Info* const* info,
                           float* out, int64_t out_stride) {
  if constexpr (kMax > 1) {
    if (n < kMax) return TileN<M, kMax - 1>(n, group, sub, nb, a, info, out, out_stride);
  }
  M::template Tile<kMax>(group, sub, nb, a, info, out, out_stride);
}

// One token (decode): groups in order, so the matrix is read as one linear stream, which the
// hardware prefetcher follows at the full DRAM rate (measured on Zen 4: software prefetches
// 1-16 KiB ahead made the DRAM-sized Qwen head 10-25 % slower, unlike the unpacked matvec's
// interleaved row streams).
template <class M>
void PackedMatVec(const uint8_t* w, int64_t group_bytes, const uint8_t* a,
                  const typename M::Info* info, int64_t nb, float* out, int64_t g_begin,
                  int64_t g_end) {
  constexpr int kSubs = kPackGroupRows / M::kSubRows;
  const uint8_t* a_rows[1] = {a};
  const typename M::Info* infos[1] = {info};
  for (int64_t g = g_begin; g < g_end; ++g) {
    const uint8_t* group = w + g * group_bytes;
    float* o = out + g * kPackGroupRows;
    for (int sub = 0; sub < kSubs; ++sub) {
      M::template Tile<1>(group, sub, nb, a_rows, infos, o + sub * M::kSubRows, 0);
    }
  }
}

// GemmFn (kernel_table.h) for a packed type; row_begin and row_end are multiples of 16.
// Groups are taken in chunks of about kChunkBytes of weights (L1/L2) that every token tile
// passes over; each (row, token) result is one Tile call's, whatever the tiling.
template <class M>
void PackedGemm(const void* vw, size_t w_row_bytes, const void* va, size_t a_row_bytes,
                int64_t n_tokens, int64_t k, float* out, int64_t out_stride, int64_t row_begin,
                int64_t row_end) {
  if (n_tokens <= 0 || row_end <= row_begin) return;
  const uint8_t* w = static_cast<const uint8_t*>(vw);
  const uint8_t* a = static_cast<const uint8_t*>(va);
  const int64_t nb = k / M::kBlockElems;
  const int64_t group_bytes = kPackGroupRows * static_cast<int64_t>(w_row_bytes);
  const int64_t g_begin = row_begin / kPackGroupRows, g_end = row_end / kPackGroupRows;
  const typename M::Info* info = M::Infos(a, a_row_bytes, n_tokens, nb);
  if (n_tokens == 1) return PackedMatVec<M>(w, group_bytes, a, info, nb, out, g_begin, g_end);
  constexpr int kSubs = kPackGroupRows / M::kSubRows;
  constexpr int64_t kChunkBytes = 48 * 1024;
  int64_t chunk = kChunkBytes / (group_bytes > 0 ? group_bytes : 1);
  if (chunk < 1) chunk = 1;
  constexpr int kT = M::kMaxTokens;
  for (int64_t g0 = g_begin; g0 < g_end; g0 += chunk) {
    const int64_t g1 = g0 + chunk < g_end ? g0 + chunk : g_end;
    for (int64_t t0 = 0; t0 < n_tokens; t0 += kT) {
      const int n = static_cast<int>(n_tokens - t0 < kT ? n_tokens - t0 : kT);
      const uint8_t* a_rows[kT];
      const typename M::Info* infos[kT];
      for (int t = 0; t < n; ++t) {
        a_rows[t] = a + (t0 + t) * a_row_bytes;
        infos[t] = info + (t0 + t) * nb;
      }
      for (int64_t g = g0; g < g1; ++g) {
        for (int sub = 0; sub < kSubs; ++sub) {
          float* o = out + t0 * out_stride + g * kPackGroupRows + sub * M::kSubRows;
          TileN<M, kT>(n, w + g * group_bytes, sub, nb, a_rows, infos, o, out_stride);
        }
      }
    }
  }
}

}  // namespace
}  // namespace kiln::kernels::x86
