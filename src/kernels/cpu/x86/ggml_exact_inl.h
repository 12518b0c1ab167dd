// The llama.cpp-exact layer kernels of kernels/ggml_exact.h over 16 float lanes: the same
// bits as the scalar functions in kernels/ref/ggml_exact.cc, computed with vectors. Included
// ONLY by avx2/ggml_exact.cc and avx512/ggml_exact.cc (anonymous namespace: each ISA gets its
// own copy, see common_inl.h on the ODR trap). Files are built with -ffp-contract=off, so every
// fused multiply-add below is an explicit Fma.
//
// G is a 16-lane float type with ops that round exactly like their scalar counterparts:
//   F; Zero Set1 Load Store LoadF16(16 halves) Add Sub Mul Div Fma(a,b,c)=a*b+c (one rounding)
//   Max, RoundF16 (to f16 and back, nearest-even), Reduce16 (ggml's _mm512_reduce_add_ps order,
//   kernels/ref/ggml_exact.cc ReduceAdd16), Reduce16x16(v[16], out[16]) (out[c] =
//   Reduce16(v[c]), bit for bit), MaxLanes(v, a, b) (largest of lanes [a, b)), KeepLanes(v, a, b) (lanes outside [a, b) → +0),
//   Expf (ggml_v_expf as ref's ExpfImpl).
//
// Why the vector forms are exact: every product below multiplies two values representable in
// f16 (11 significant bits), so it is exact in float and fma(a, b, c) = c + a * b; the sums run
// over the same values in the same order as the scalar twin (per output element, lane by lane),
// and skipped terms are exact zeros that cannot change a sum that starts at +0.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "base/check.h"
#include "kernels/attention.h"
#include "kernels/cpu/x86/common_inl.h"
#include "kernels/ggml_exact.h"

namespace kiln::kernels::x86 {
namespace {

// The two dot-product orders of llama.cpp's attention over f16 values (products exact):
// ggml_vec_dot_f16 (AVX-512; one-token decode): element i into lane i % 64 (four 16-lane sums),
// folded as (s0 + s2) + (s1 + s3), reduced, the tail of d % 64 elements added in double;
// tinyBLAS (batches): one 16-lane sum over the whole length (d % 16 == 0), reduced.

// Scores of one query row against 16 K rows (krows[c * d ...]) into out[0..16): per cell
// tinyBLAS's sum, the 16 reductions done together.
template <class G>
inline void GgmlScores16Batched(const float* q, const float* krows, int d, float* out) {
  using F = typename G::F;
  F acc[16];
  for (int c = 0; c < 16; c += 4) {  // four cells' chains interleaved
    const float* k = krows + c * d;
    F a0 = G::Zero(), a1 = G::Zero(), a2 = G::Zero(), a3 = G::Zero();
    for (int b = 0; b < d; b += 16) {
      const F qv = G::Load(q + b);
      a0 = G::Fma(qv, G::Load(k + b), a0);
      a1 = G::Fma(qv, G::Load(k + d + b), a1);
      a2 = G::Fma(qv, G::Load(k + 2 * d + b), a2);
      a3 = G::Fma(qv, G::Load(k + 3 * d + b), a3);
    }
    acc[c] = a0;
    acc[c + 1] = a1;
    acc[c + 2] = a2;
    acc[c + 3] = a3;
  }
  G::Reduce16x16(acc, out);
}

// The same with ggml_vec_dot_f16's sums (four 16-lane sums folded, a double tail of d % 64).
template <class G>
inline void GgmlScores16Decode(const float* q, const float* krows, int d, float* out) {
  using F = typename G::F;
  F acc[16];
  const int n_simd = d - d % 64;
  for (int c = 0; c < 16; ++c) {
    const float* k = krows + c * d;
    F a0 = G::Zero(), a1 = G::Zero(), a2 = G::Zero(), a3 = G::Zero();
    for (int b = 0; b < n_simd; b += 64) {
      a0 = G::Fma(G::Load(q + b), G::Load(k + b), a0);
      a1 = G::Fma(G::Load(q + b + 16), G::Load(k + b + 16), a1);
      a2 = G::Fma(G::Load(q + b + 32), G::Load(k + b + 32), a2);
      a3 = G::Fma(G::Load(q + b + 48), G::Load(k + b + 48), a3);
    }
    acc[c] = G::Add(G::Add(a0, a2), G::Add(a1, a3));
  }
  G::Reduce16x16(acc, out);
  if (n_simd == d) return;
  for (int c = 0; c < 16; ++c) {
    double sum = out[c];
    for (int i = n_simd; i < d; ++i) sum += static_cast<double>(q[i] * krows[c * d + i]);
    out[c] = static_cast<float>(sum);
  }
}

// GgmlScores16Decode for head_dim = 64 * NB: q stays in registers across the 16 cells and the
// lane sums go straight into the reduction (the same operations in the same order).
template <class G, int NB>
inline void GgmlScores16DecodeFixed(const float* q, const float* krows, float* out) {
  using F = typename G::F;
  constexpr int d = 64 * NB;
  F qv[NB][4];
  for (int b = 0; b < NB; ++b) {
    for (int i = 0; i < 4; ++i) qv[b][i] = G::Load(q + 64 * b + 16 * i);
  }
  F acc[16];
  for (int c = 0; c < 16; ++c) {
    const float* k = krows + c * d;
    F a[4];
    for (int i = 0; i < 4; ++i) a[i] = G::Fma(qv[0][i], G::Load(k + 16 * i), G::Zero());
    for (int b = 1; b < NB; ++b) {
      for (int i = 0; i < 4; ++i) a[i] = G::Fma(qv[b][i], G::Load(k + 64 * b + 16 * i), a[i]);
    }
    acc[c] = G::Add(G::Add(a[0], a[2]), G::Add(a[1], a[3]));
  }
  G::Reduce16x16(acc, out);
}

// out[c] for 16-wide column vectors c < nv: the 16 partial sums part[l][c] (l = 0..15) reduced
// in Reduce16's order, element by element.
template <class G>
inline void ReduceLanes16(const float* part, int stride, int nv, float* out) {
  for (int c = 0; c < nv; ++c) {
    typename G::F a[8], b[4];
    for (int l = 0; l < 8; ++l) {
      a[l] = G::Add(G::Load(part + (l + 8) * stride + 16 * c), G::Load(part + l * stride + 16 * c));
    }
    for (int l = 0; l < 4; ++l) b[l] = G::Add(a[l + 4], a[l]);
    G::Store(out + 16 * c, G::Add(G::Add(b[0], b[2]), G::Add(b[1], b[3])));
  }
}

// Row p of one kv head whose position-0 row is `head` (KvView::KRow/VRow, forced inline: the
// P·V loop asks for one row per cell and head group, and an out-of-line call there costs more
// than the row's FMAs).
KILN_X86_INLINE const uint8_t* RowAt(const KvView& kv, const uint8_t* head, int32_t p) {
  return head + kv.Slot(p) * kv.pos_stride;
}

// Demand-loads every cache line of rows [lo, hi) in order. P·V walks V with a stride of 64 (or
// 16) rows, which the hardware prefetchers do not follow; after the weight stream of the other
// ops V is in DRAM, and that walk stalled on every line (~20 % of decode attention). One
// sequential pass first brings the rows into L2. prefetcht0/t1 on the same lines did not help
// in the model (measured; docs/performance.md), demand loads do. Only worth it while the rows
// stay in L2 until P·V reads them: longer ranges are left to the walk.
constexpr size_t kWarmMaxBytes = size_t{512} << 10;
KILN_X86_INLINE void WarmRows(const KvView& kv, const uint8_t* head, int32_t lo, int32_t hi,
                              size_t row_bytes) {
  if (static_cast<size_t>(hi - lo) * row_bytes > kWarmMaxBytes) return;
  uint64_t x = 0;
  for (int32_t p = lo; p < hi; ++p) {
    const uint8_t* r = RowAt(kv, head, p);
    for (size_t o = 0; o < row_bytes; o += 64) {
      uint64_t v;
      std::memcpy(&v, r + o, sizeof(v));
      x ^= v;
    }
  }
  volatile uint64_t sink = x;  // keeps the loads
  (void)sink;
}

constexpr int kGgmlMaxHeads = 8;  // query heads of one token accumulated together in P·V

// 16-float column vectors per P·V pass for `ng` heads: ng × vectors sums stay in registers
// (≤ 16). Fewer heads take more columns per pass; more heads take fewer columns, so every head of
// a GQA group (Qwen2.5: 7) shares one read of each V row instead of one read per 4 heads.
constexpr int PvVectors(int ng) { return ng <= 4 ? 4 : ng <= 8 ? 2 : 1; }

// Floats of `part` scratch GgmlPv needs: per head, 16 lane sums and s0 (then s0 + s2) and s1,
// each 16 × PvVectors(ng) floats wide; ng × PvVectors(ng) <= 16.
constexpr size_t kGgmlPvScratch = (16 + 2) * 16 * 16;

// P·V for `ng` query heads of one token (same range [pb, pe)), columns [c0, c0 + 16 * nv) of
// the head: out_g[i] = dot(P_g, V[:, i]) in ggml_vec_dot_f16's order over cells (cell p into
// lane p % 64, lanes l, l+16, l+32, l+48 folded as (s0 + s2) + (s1 + s3), the 16 folds reduced)
// or tinyBLAS's (`batched`: lane p % 16, reduced). probs[g][p - base] = P_g[p].
// NG heads and NV column vectors are template arguments so the sums stay in registers.
template <class G, int NG, int NV>
void GgmlPvT(const KvView& kv, int kv_head, int32_t pb, int32_t pe, const float* const* probs,
             int32_t base, int c0, bool batched, float* part, float* const* out) {
  static_assert(NG * NV <= 16 && NG <= kGgmlMaxHeads, "P·V sums must fit the registers");
  using F = typename G::F;
  constexpr int ng = NG, nv = NV, w = 16 * NV;  // w: floats per lane row of `part`
  const int n_lanes = batched ? 16 : 64;
  float* tmp = part + ng * 16 * w;  // per head: s0 (then s0 + s2) and s1
  F acc[NG][NV];
  const uint8_t* vhead = kv.v + kv.HeadOffset(kv_head) + 2 * static_cast<size_t>(c0);
  for (int l = 0; l < 16; ++l) {
    for (int j = 0; j < n_lanes / 16; ++j) {
      const int lane = l + 16 * j;
      for (int g = 0; g < ng; ++g) {
        for (int c = 0; c < nv; ++c) acc[g][c] = G::Zero();
      }
      // Cells p >= pb with p % n_lanes == lane, in increasing order (the scalar's order).
      for (int32_t p = pb + ((lane - pb % n_lanes) + n_lanes) % n_lanes; p < pe; p += n_lanes) {
        const uint8_t* vrow = RowAt(kv, vhead, p);
        F v[NV];
        for (int c = 0; c < nv; ++c) v[c] = G::LoadF16(vrow + 32 * c);
        for (int g = 0; g < ng; ++g) {
          const F pg = G::Set1(probs[g][p - base]);
          for (int c = 0; c < nv; ++c) acc[g][c] = G::Fma(pg, v[c], acc[g][c]);
        }
      }
      for (int g = 0; g < ng; ++g) {
        float* dst = part + (g * 16 + l) * w;
        float* s02 = tmp + g * 2 * w;
        float* s1 = s02 + w;
        for (int c = 0; c < nv; ++c) {
          const int o = 16 * c;
          if (batched) {
            G::Store(dst + o, acc[g][c]);
          } else if (j == 0) {
            G::Store(s02 + o, acc[g][c]);
          } else if (j == 1) {
            G::Store(s1 + o, acc[g][c]);
          } else if (j == 2) {
            G::Store(s02 + o, G::Add(G::Load(s02 + o), acc[g][c]));
          } else {
            G::Store(dst + o, G::Add(G::Load(s02 + o), G::Add(G::Load(s1 + o), acc[g][c])));
          }
        }
      }
    }
  }
  for (int g = 0; g < ng; ++g) ReduceLanes16<G>(part + g * 16 * w, w, nv, out[g] + c0);
}

template <class G, int NG>
void GgmlPvNv(const KvView& kv, int kv_head, int32_t pb, int32_t pe, const float* const* probs,
              int32_t base, int c0, int nv, bool batched, float* part, float* const* out) {
  constexpr int kMax = PvVectors(NG);
  KILN_CHECK(nv >= 1 && nv <= kMax) << "P·V with " << NG << " heads takes " << kMax << " vectors";
  if constexpr (kMax >= 4) {
    if (nv == 4) return GgmlPvT<G, NG, 4>(kv, kv_head, pb, pe, probs, base, c0, batched, part, out);
    if (nv == 3) return GgmlPvT<G, NG, 3>(kv, kv_head, pb, pe, probs, base, c0, batched, part, out);
  }
  if constexpr (kMax >= 2) {
    if (nv == 2) return GgmlPvT<G, NG, 2>(kv, kv_head, pb, pe, probs, base, c0, batched, part, out);
  }
  return GgmlPvT<G, NG, 1>(kv, kv_head, pb, pe, probs, base, c0, batched, part, out);
}

template <class G>
void GgmlPv(const KvView& kv, int kv_head, int32_t pb, int32_t pe, const float* const* probs,
            int32_t base, int ng, int c0, int nv, bool batched, float* part, float* const* out) {
  switch (ng) {
    case 1: return GgmlPvNv<G, 1>(kv, kv_head, pb, pe, probs, base, c0, nv, batched, part, out);
    case 2: return GgmlPvNv<G, 2>(kv, kv_head, pb, pe, probs, base, c0, nv, batched, part, out);
    case 3: return GgmlPvNv<G, 3>(kv, kv_head, pb, pe, probs, base, c0, nv, batched, part, out);
    case 4: return GgmlPvNv<G, 4>(kv, kv_head, pb, pe, probs, base, c0, nv, batched, part, out);
    case 5: return GgmlPvNv<G, 5>(kv, kv_head, pb, pe, probs, base, c0, nv, batched, part, out);
    case 6: return GgmlPvNv<G, 6>(kv, kv_head, pb, pe, probs, base, c0, nv, batched, part, out);
    case 7: return GgmlPvNv<G, 7>(kv, kv_head, pb, pe, probs, base, c0, nv, batched, part, out);
    default: return GgmlPvNv<G, 8>(kv, kv_head, pb, pe, probs, base, c0, nv, batched, part, out);
  }
}

// kernels::ggml::AttentionRows (the contract and the scalar twin are in kernels/ggml_exact.h
// and kernels/ref/ggml_exact.cc). head_dim % 16 != 0 takes the scalar twin.
template <class G>
void GgmlAttentionT(const AttentionBlock& b, const KvView& kv, bool batched, float* scratch,
                    size_t scratch_floats) {
  using F = typename G::F;
  KILN_CHECK(kv.dtype == DType::kF16) << "ggml-exact attention needs an f16 KV cache";
  const int d = kv.head_dim;
  KILN_CHECK(d > 0 && d <= kMaxAttentionHeadDim) << "head_dim " << d;
  if (d % 16 != 0) return ggml::AttentionRows(b, kv, batched);
  int32_t lo = INT32_MAX, hi = 0;
  for (int t = 0; t < b.n_tok; ++t) {
    KILN_CHECK(b.pos_end[t] > b.pos_begin[t] && b.pos_begin[t] >= 0) << "bad attention range";
    lo = std::min(lo, b.pos_begin[t]);
    hi = std::max(hi, b.pos_end[t]);
  }
  const int n_rows = b.n_tok * b.n_group;
  // Scratch: q rounded to f16 (n_rows × d), scores/probabilities per row (stride S, cell p
  // of token t's rows at p - base_t, base_t = pos_begin[t] rounded down to 16), each row's
  // maximum score, 16 K rows, the P·V partial sums.
  const size_t S = static_cast<size_t>(hi - lo) + 32;
  const size_t need = static_cast<size_t>(n_rows) * (d + S + 1) + 16 * static_cast<size_t>(d) +
                      kGgmlPvScratch;
  KILN_CHECK(need <= scratch_floats && need <= AttentionScratchFloats(n_rows, hi - lo, d))
      << "attention scratch " << scratch_floats << " < " << need;
  float* qh = scratch;
  float* probs = qh + static_cast<size_t>(n_rows) * d;
  float* max_score = probs + static_cast<size_t>(n_rows) * S;
  float* krows = max_score + n_rows;  // 16 K rows
  float* part = krows + 16 * static_cast<size_t>(d);
  for (int t = 0; t < b.n_tok; ++t) {
    for (int g = 0; g < b.n_group; ++g) {
      const float* q = b.q + t * b.q_tok_stride + static_cast<size_t>(g) * d;
      float* dst = qh + static_cast<size_t>(t * b.n_group + g) * d;
      for (int i = 0; i < d; i += 16) G::Store(dst + i, G::RoundF16(G::Load(q + i)));
    }
  }
  // Scores, 16 cells at a time: their K rows converted once, then for every row whose range
  // meets them 16 lane sums reduced together (G::Reduce16x16: Reduce16's order per cell).
  for (int r = 0; r < n_rows; ++r) max_score[r] = -INFINITY;
  const int32_t lo16 = lo / 16 * 16;
  const uint8_t* khead = kv.k + kv.HeadOffset(b.kv_head);
  for (int32_t p0 = lo16; p0 < hi; p0 += 16) {
    const int32_t k0 = std::max(p0, lo), k1 = std::min(p0 + 16, hi);
    for (int32_t p = p0; p < p0 + 16; ++p) {
      float* kr = krows + static_cast<size_t>(p - p0) * d;
      if (p < k0 || p >= k1) {
        for (int i = 0; i < d; i += 16) G::Store(kr + i, G::Zero());
        continue;
      }
      const uint8_t* k16 = RowAt(kv, khead, p);
      for (int i = 0; i < d; i += 16) G::Store(kr + i, G::LoadF16(k16 + 2 * i));
    }
    for (int t = 0; t < b.n_tok; ++t) {
      const int32_t c0 = std::max(p0, b.pos_begin[t]), c1 = std::min(p0 + 16, b.pos_end[t]);
      if (c0 >= c1) continue;
      const int32_t base = b.pos_begin[t] / 16 * 16;
      for (int g = 0; g < b.n_group; ++g) {
        const int r = t * b.n_group + g;
        const float* qr = qh + static_cast<size_t>(r) * d;
        float* pr = probs + static_cast<size_t>(r) * S + (p0 - base);
        if (batched) {
          GgmlScores16Batched<G>(qr, krows, d, pr);
        } else if (d == 64) {
          GgmlScores16DecodeFixed<G, 1>(qr, krows, pr);
        } else if (d == 128) {
          GgmlScores16DecodeFixed<G, 2>(qr, krows, pr);
        } else {
          GgmlScores16Decode<G>(qr, krows, d, pr);
        }
        G::Store(pr, G::Mul(G::Load(pr), G::Set1(b.scale)));
      }
    }
  }
  // Softmax per row: exp in chunks of 16 cells aligned to multiples of 16, each chunk reduced
  // in float, the chunk sums added in double; then P = f16(e * (float)(1 / sum)).
  for (int t = 0; t < b.n_tok; ++t) {
    const int32_t pb = b.pos_begin[t], pe = b.pos_end[t], base = pb / 16 * 16;
    for (int g = 0; g < b.n_group; ++g) {
      const int r = t * b.n_group + g;
      float* pr = probs + static_cast<size_t>(r) * S;
      // The row's largest score: full chunks through a vector max, the partial first and last
      // chunks lane by lane (the maximum does not depend on the order).
      F mv = G::Set1(-INFINITY);
      for (int32_t c0 = base; c0 < pe; c0 += 16) {
        const int a = std::max(c0, pb) - c0, e = std::min(c0 + 16, pe) - c0;
        const F x = G::Load(pr + (c0 - base));
        if (a == 0 && e == 16) {
          mv = G::Max(mv, x);
        } else {
          max_score[r] = std::max(max_score[r], G::MaxLanes(x, a, e));
        }
      }
      max_score[r] = std::max(max_score[r], G::MaxLanes(mv, 0, 16));
      const F mx = G::Set1(max_score[r]);
      double sum = 0.0;
      for (int32_t c0 = base; c0 < pe; c0 += 16) {
        const int a = std::max(c0, pb) - c0, e = std::min(c0 + 16, pe) - c0;
        const F x = G::KeepLanes(G::Expf(G::Sub(G::Load(pr + (c0 - base)), mx)), a, e);
        G::Store(pr + (c0 - base), x);
        sum += G::Reduce16(x);
      }
      const F inv = G::Set1(static_cast<float>(1.0 / sum));
      for (int32_t c0 = base; c0 < pe; c0 += 16) {
        G::Store(pr + (c0 - base), G::RoundF16(G::Mul(G::Load(pr + (c0 - base)), inv)));
      }
    }
  }
  WarmRows(kv, kv.v + kv.HeadOffset(b.kv_head), lo, hi, 2 * static_cast<size_t>(d));
  // P·V per token: the group's heads in near-equal passes of at most kGgmlMaxHeads, each over
  // 16 × PvVectors(heads) columns at a time.
  const int n_head_passes = (b.n_group + kGgmlMaxHeads - 1) / kGgmlMaxHeads;
  const int heads_per_pass = (b.n_group + n_head_passes - 1) / n_head_passes;
  for (int t = 0; t < b.n_tok; ++t) {
    const int32_t pb = b.pos_begin[t], pe = b.pos_end[t], base = pb / 16 * 16;
    for (int g0 = 0; g0 < b.n_group; g0 += heads_per_pass) {
      const int ng = std::min(heads_per_pass, b.n_group - g0);
      const int cols = 16 * PvVectors(ng);
      const float* pr[kGgmlMaxHeads];
      float* out[kGgmlMaxHeads];
      for (int g = 0; g < ng; ++g) {
        pr[g] = probs + static_cast<size_t>(t * b.n_group + g0 + g) * S;
        out[g] = b.out + t * b.out_tok_stride + static_cast<size_t>(g0 + g) * d;
      }
      for (int c0 = 0; c0 < d; c0 += cols) {
        GgmlPv<G>(kv, b.kv_head, pb, pe, pr, base, ng, c0, std::min(cols, d - c0) / 16, batched,
                  part, out);
      }
    }
  }
}

// kernels::ggml::SwiGlu: out = (g / (1 + Expf(0 - g))) * up.
template <class G>
void GgmlSwiGluT(const float* gate, const float* up, int64_t n, float* out) {
  const typename G::F one = G::Set1(1.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const typename G::F g = G::Load(gate + i);
    const typename G::F s = G::Div(g, G::Add(one, G::Expf(G::Sub(G::Zero(), g))));
    G::Store(out + i, G::Mul(s, G::Load(up + i)));
  }
  if (i < n) ggml::SwiGlu(gate + i, up + i, n - i, out + i);
}

}  // namespace
}  // namespace kiln::kernels::x86

// The table entries of x86/layer_kernels.h, defined in an ISA's namespace over its 16-lane G.
#define KILN_X86_DEFINE_GGML(G)                                                                \
  void GgmlAttention(const AttentionBlock& block, const KvView& kv, bool batched,             \
                     float* scratch, size_t scratch_floats) {                                 \
    x86::GgmlAttentionT<G>(block, kv, batched, scratch, scratch_floats);                      \
  }                                                                                           \
  void GgmlSwiGlu(const float* gate, const float* up, int64_t n, float* out) {                \
    x86::GgmlSwiGluT<G>(gate, up, n, out);                                                    \
  }
