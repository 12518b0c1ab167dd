// The f32 layer kernels (attention, RMSNorm, RoPE, gated activations, residual add) written
// once over a vector-traits type V that each ISA file defines (avx2/layer.cc: 8 floats,
// avx512/layer.cc: 16 floats). Included ONLY by those ISA files; everything is in an anonymous
// namespace so each ISA gets its own copy (see common_inl.h on the ODR trap).
//
// V provides: kW floats per F; Zero Set1 Load LoadF16 Store Add Sub Mul Fma(a,b,c)=a*b+c Max
// RoundF16 HSum HMax; Fold64(acc[64/kW]) → the 8-lane partial of ref::GgmlF16Dot's fold; and
// kWD doubles per D: ToD (kWD floats → D) FromD (D → kWD floats) SetD AddD SubD MulD DivD SelectLtD
// MinD MaxD RoundD Pow2D(k) HSumD; GatherTable (f32 table indexed by x's f16 bits).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "base/check.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/rope.h"
#include "tensor/dtype.h"

namespace kiln::kernels::x86 {
namespace {

inline float RoundF16Scalar(float x) { return _cvtsh_ss(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT)); }

inline float KvScalar(const uint8_t* row, int i, bool f16) {
  if (f16) {
    uint16_t h;
    std::memcpy(&h, row + 2 * static_cast<size_t>(i), 2);
    return _cvtsh_ss(h);
  }
  float f;
  std::memcpy(&f, row + 4 * static_cast<size_t>(i), 4);
  return f;
}

// A K or V row → f32 (f16 converted, f32 copied).
template <class V>
inline void RowToF32(const uint8_t* row, int d, bool f16, float* out) {
  int i = 0;
  if (f16) {
    for (; i + V::kW <= d; i += V::kW) V::Store(out + i, V::LoadF16(row + 2 * i));
  } else {
    for (; i + V::kW <= d; i += V::kW) V::Store(out + i, V::Load(reinterpret_cast<const float*>(row) + i));
  }
  for (; i < d; ++i) out[i] = KvScalar(row, i, f16);
}

// ─── Attention: llama.cpp-compatible path (round_qp, f16 KV) ─────────────────────────────
// Bit-identical to ref::AttentionHead's GgmlAttentionHead: the products of f16 values are
// exact in f32, so a fused multiply-add equals the reference's multiply then add, and every
// sum below adds the same values in the same order as ref::GgmlF16Dot.

// (b0 + b1) + (b2 + b3) where b = a[0:4] + a[4:8]: ref's ReduceAdd16 after its first step.
inline float Reduce8(__m256 a) {
  const __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  const __m128 t = _mm_add_ps(b, _mm_movehdup_ps(b));  // t0 = b0+b1, t2 = b2+b3
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehl_ps(t, t)));
}

template <class V>
inline float GgmlDot(const float* x, const float* y, int n) {
  constexpr int kAcc = 64 / V::kW;
  typename V::F acc[kAcc];
  for (auto& a : acc) a = V::Zero();
  const int n_simd = n - n % 64;
  for (int i = 0; i < n_simd; i += 64) {
    for (int m = 0; m < kAcc; ++m) {
      acc[m] = V::Fma(V::Load(x + i + m * V::kW), V::Load(y + i + m * V::kW), acc[m]);
    }
  }
  double sum = Reduce8(V::Fold64(acc));
  for (int i = n_simd; i < n; ++i) sum += static_cast<double>(x[i] * y[i]);
  return static_cast<float>(sum);
}

// out[i] = the fold of acc[0..63][i] in GgmlF16Dot's lane order, for i < d.
template <class V>
inline void FoldLanes(const float* acc, size_t stride, int d, float* out) {
  auto lane = [&](int l, int i) { return V::Load(acc + l * stride + i); };
  int i = 0;
  for (; i + V::kW <= d; i += V::kW) {
    typename V::F v[16];
    for (int m = 0; m < 16; ++m) {
      v[m] = V::Add(V::Add(lane(m, i), lane(32 + m, i)), V::Add(lane(16 + m, i), lane(48 + m, i)));
    }
    typename V::F a[8], b[4];
    for (int k = 0; k < 8; ++k) a[k] = V::Add(v[k], v[k + 8]);
    for (int k = 0; k < 4; ++k) b[k] = V::Add(a[k], a[k + 4]);
    V::Store(out + i, V::Add(V::Add(b[0], b[1]), V::Add(b[2], b[3])));
  }
  for (; i < d; ++i) {
    auto s = [&](int l) { return acc[l * stride + i]; };
    float v[16], a[8], b[4];
    for (int m = 0; m < 16; ++m) v[m] = (s(m) + s(32 + m)) + (s(16 + m) + s(48 + m));
    for (int k = 0; k < 8; ++k) a[k] = v[k] + v[k + 8];
    for (int k = 0; k < 4; ++k) b[k] = a[k] + a[k + 4];
    out[i] = (b[0] + b[1]) + (b[2] + b[3]);
  }
}

// Scores of every row against its positions, K rows converted once and shared by the rows.
template <class V>
void GgmlScores(const AttentionBlock& b, const KvView& kv, int32_t lo, int32_t hi,
                const float* qh, float* scores, size_t span) {
  const int d = kv.head_dim;
  alignas(64) float kf[kMaxAttentionHeadDim];
  for (int32_t p = lo; p < hi; ++p) {
    RowToF32<V>(kv.KRow(p, b.kv_head), d, true, kf);
    for (int t = 0; t < b.n_tok; ++t) {
      if (p < b.pos_begin[t] || p >= b.pos_end[t]) continue;
      for (int g = 0; g < b.n_group; ++g) {
        const int r = t * b.n_group + g;
        scores[r * span + (p - lo)] = GgmlDot<V>(qh + static_cast<size_t>(r) * d, kf, d) * b.scale;
      }
    }
  }
}

// Softmax of one row's scores in place → f16-rounded probabilities (ref's float softmax).
template <class V>
void GgmlSoftmax(float* s, int32_t n) {
  float max_score = -INFINITY;
  for (int32_t j = 0; j < n; ++j) max_score = std::max(max_score, s[j]);
  double sum = 0.0;
  for (int32_t j = 0; j < n; ++j) {
    const float e = std::exp(s[j] - max_score);
    s[j] = e;
    sum += e;
  }
  const float inv_sum = static_cast<float>(1.0 / sum);
  const typename V::F inv = V::Set1(inv_sum);
  int32_t j = 0;
  for (; j + V::kW <= n; j += V::kW) V::Store(s + j, V::RoundF16(V::Mul(V::Load(s + j), inv)));
  for (; j < n; ++j) s[j] = RoundF16Scalar(s[j] * inv_sum);
}

template <class V>
void GgmlAttention(const AttentionBlock& b, const KvView& kv, int32_t lo, int32_t hi,
                   float* scratch, size_t scratch_floats) {
  const int d = kv.head_dim;
  const int n_rows = b.n_tok * b.n_group;
  const size_t span = static_cast<size_t>(hi - lo);
  const size_t d_pad = (static_cast<size_t>(d) + 15) / 16 * 16;
  float* qh = scratch;                                        // [n_rows][d]
  float* scores = qh + static_cast<size_t>(n_rows) * d;        // [n_rows][span]
  float* acc = scores + static_cast<size_t>(n_rows) * span;    // [64][d_pad]
  KILN_CHECK(static_cast<size_t>(acc + 64 * d_pad - scratch) <= scratch_floats)
      << "attention scratch " << scratch_floats;
  for (int t = 0; t < b.n_tok; ++t) {
    for (int g = 0; g < b.n_group; ++g) {
      const float* q = b.q + t * b.q_tok_stride + static_cast<size_t>(g) * d;
      float* dst = qh + static_cast<size_t>(t * b.n_group + g) * d;
      int i = 0;
      for (; i + V::kW <= d; i += V::kW) V::Store(dst + i, V::RoundF16(V::Load(q + i)));
      for (; i < d; ++i) dst[i] = RoundF16Scalar(q[i]);
    }
  }
  GgmlScores<V>(b, kv, lo, hi, qh, scores, span);
  // acc is all zeros between rows: each row clears only the lanes it used (a short context
  // uses few of the 64), as adding those zeros in the fold changes nothing.
  std::fill(acc, acc + 64 * d_pad, 0.0f);
  for (int r = 0; r < n_rows; ++r) {
    const int t = r / b.n_group;
    const int32_t begin = b.pos_begin[t], end = b.pos_end[t];
    float* prob = scores + r * span + (begin - lo);
    GgmlSoftmax<V>(prob, end - begin);
    // P.V: lane p % 64 of every output element accumulates its positions in order.
    for (int32_t p = begin; p < end; ++p) {
      const uint8_t* v = kv.VRow(p, b.kv_head);
      float* a = acc + (p % 64) * d_pad;
      const float w = prob[p - begin];
      const typename V::F wv = V::Set1(w);
      int i = 0;
      for (; i + V::kW <= d; i += V::kW) V::Store(a + i, V::Fma(wv, V::LoadF16(v + 2 * i), V::Load(a + i)));
      for (; i < d; ++i) a[i] += w * KvScalar(v, i, true);
    }
    FoldLanes<V>(acc, d_pad, d, b.out + t * b.out_tok_stride + static_cast<size_t>(r % b.n_group) * d);
    if (end - begin >= 64) {
      std::fill(acc, acc + 64 * d_pad, 0.0f);
    } else {
      for (int32_t p = begin; p < end; ++p) std::fill_n(acc + (p % 64) * d_pad, d_pad, 0.0f);
    }
  }
}

// ─── Attention: online softmax (f32 KV, or f16 without llama.cpp rounding) ────────────────
// FlashAttention-style: one pass over K/V in blocks of 64 positions aligned to absolute
// positions (so a row's result does not depend on which other rows share the call); running
// max and sum per row; K and V rows converted once per block and shared by all rows.

constexpr int kKeyBlock = 64;

template <class V>
inline float Dot(const float* x, const float* y, int n) {
  typename V::F a0 = V::Zero(), a1 = V::Zero();
  int i = 0;
  for (; i + 2 * V::kW <= n; i += 2 * V::kW) {
    a0 = V::Fma(V::Load(x + i), V::Load(y + i), a0);
    a1 = V::Fma(V::Load(x + i + V::kW), V::Load(y + i + V::kW), a1);
  }
  for (; i + V::kW <= n; i += V::kW) a0 = V::Fma(V::Load(x + i), V::Load(y + i), a0);
  float s = V::HSum(V::Add(a0, a1));
  for (; i < n; ++i) s += x[i] * y[i];
  return s;
}

// acc[i] = acc[i] * alpha + w * x[i].
template <class V>
inline void ScaleAxpy(float* acc, float alpha, float w, const float* x, int n) {
  const typename V::F av = V::Set1(alpha), wv = V::Set1(w);
  int i = 0;
  for (; i + V::kW <= n; i += V::kW) {
    V::Store(acc + i, V::Fma(wv, V::Load(x + i), V::Mul(V::Load(acc + i), av)));
  }
  for (; i < n; ++i) acc[i] = acc[i] * alpha + w * x[i];
}

template <class V>
void OnlineAttention(const AttentionBlock& b, const KvView& kv, int32_t lo, int32_t hi,
                     float* scratch, size_t scratch_floats) {
  const int d = kv.head_dim;
  const bool f16 = kv.dtype == DType::kF16;
  const int n_rows = b.n_tok * b.n_group;
  float* acc = scratch;                                          // [n_rows][d]
  float* run_max = acc + static_cast<size_t>(n_rows) * d;        // [n_rows]
  float* run_sum = run_max + n_rows;                             // [n_rows]
  float* probs = run_sum + n_rows;                               // [n_rows][kKeyBlock]
  KILN_CHECK(static_cast<size_t>(probs + n_rows * kKeyBlock - scratch) <= scratch_floats)
      << "attention scratch " << scratch_floats;
  std::fill(acc, acc + static_cast<size_t>(n_rows) * d, 0.0f);
  std::fill(run_max, run_max + n_rows, -INFINITY);
  std::fill(run_sum, run_sum + n_rows, 0.0f);
  alignas(64) float kf[kMaxAttentionHeadDim];
  auto q_row = [&](int r) {
    return b.q + (r / b.n_group) * b.q_tok_stride + static_cast<size_t>(r % b.n_group) * d;
  };
  for (int32_t p0 = lo - lo % kKeyBlock; p0 < hi; p0 += kKeyBlock) {
    const int32_t b0 = std::max(p0, lo), b1 = std::min(p0 + kKeyBlock, hi);
    for (int r = 0; r < n_rows; ++r) std::fill_n(probs + r * kKeyBlock, kKeyBlock, -INFINITY);
    for (int32_t p = b0; p < b1; ++p) {
      RowToF32<V>(kv.KRow(p, b.kv_head), d, f16, kf);
      for (int r = 0; r < n_rows; ++r) {
        const int t = r / b.n_group;
        if (p < b.pos_begin[t] || p >= b.pos_end[t]) continue;
        probs[r * kKeyBlock + (p - p0)] = Dot<V>(q_row(r), kf, d) * b.scale;
      }
    }
    // Per row: new running max, rescale, probabilities (0 outside the row's range).
    for (int r = 0; r < n_rows; ++r) {
      float* s = probs + r * kKeyBlock;
      float block_max = -INFINITY;
      for (int j = 0; j < kKeyBlock; ++j) block_max = std::max(block_max, s[j]);
      if (block_max == -INFINITY) {  // no position of this row in the block
        std::fill_n(s, kKeyBlock, 0.0f);
        continue;
      }
      const float new_max = std::max(run_max[r], block_max);
      const float alpha = std::exp(run_max[r] - new_max);  // 0 on the first block
      float sum = 0.0f;
      for (int j = 0; j < kKeyBlock; ++j) {
        s[j] = s[j] == -INFINITY ? 0.0f : std::exp(s[j] - new_max);
        sum += s[j];
      }
      run_sum[r] = run_sum[r] * alpha + sum;
      run_max[r] = new_max;
      float* a = acc + static_cast<size_t>(r) * d;
      if (alpha != 1.0f) {
        const typename V::F av = V::Set1(alpha);
        int i = 0;
        for (; i + V::kW <= d; i += V::kW) V::Store(a + i, V::Mul(V::Load(a + i), av));
        for (; i < d; ++i) a[i] *= alpha;
      }
    }
    for (int32_t p = b0; p < b1; ++p) {
      RowToF32<V>(kv.VRow(p, b.kv_head), d, f16, kf);
      for (int r = 0; r < n_rows; ++r) {
        const float w = probs[r * kKeyBlock + (p - p0)];
        if (w != 0.0f) ScaleAxpy<V>(acc + static_cast<size_t>(r) * d, 1.0f, w, kf, d);
      }
    }
  }
  for (int r = 0; r < n_rows; ++r) {
    const int t = r / b.n_group;
    float* out = b.out + t * b.out_tok_stride + static_cast<size_t>(r % b.n_group) * d;
    const float inv = 1.0f / run_sum[r];
    const float* a = acc + static_cast<size_t>(r) * d;
    for (int i = 0; i < d; ++i) out[i] = a[i] * inv;
  }
}

template <class V>
void AttentionT(const AttentionBlock& b, const KvView& kv, float* scratch, size_t scratch_floats) {
  KILN_CHECK(kv.head_dim > 0 && kv.head_dim <= kMaxAttentionHeadDim) << "head_dim " << kv.head_dim;
  if (b.n_tok <= 0 || b.n_group <= 0) return;
  int32_t lo = b.pos_begin[0], hi = b.pos_end[0];
  for (int t = 0; t < b.n_tok; ++t) {
    KILN_CHECK(b.pos_end[t] > b.pos_begin[t] && b.pos_begin[t] >= 0)
        << "attention range " << b.pos_begin[t] << ".." << b.pos_end[t];
    lo = std::min(lo, b.pos_begin[t]);
    hi = std::max(hi, b.pos_end[t]);
  }
  if (b.round_qp && kv.dtype == DType::kF16) {
    GgmlAttention<V>(b, kv, lo, hi, scratch, scratch_floats);
  } else {
    OnlineAttention<V>(b, kv, lo, hi, scratch, scratch_floats);
  }
}

// ─── RMSNorm ──────────────────────────────────────────────────────────────────────────
// Sum of squares in double (4 accumulators of kWD lanes); the scaling in float in ref's order.
template <class V>
void RmsNormT(const float* x, const float* w, float w_offset, float eps, int64_t n, float* out) {
  typename V::D s0 = V::SetD(0.0), s1 = V::SetD(0.0);
  int64_t i = 0;
  for (; i + 2 * V::kWD <= n; i += 2 * V::kWD) {
    const typename V::D a = V::ToD(x + i), c = V::ToD(x + i + V::kWD);
    s0 = V::AddD(s0, V::MulD(a, a));
    s1 = V::AddD(s1, V::MulD(c, c));
  }
  double sum_sq = V::HSumD(V::AddD(s0, s1));
  for (; i < n; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
  const float inv_rms = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(n) + eps));
  const typename V::F inv = V::Set1(inv_rms), off = V::Set1(w_offset);
  i = 0;
  for (; i + V::kW <= n; i += V::kW) {
    V::Store(out + i, V::Mul(V::Mul(V::Load(x + i), inv), V::Add(V::Load(w + i), off)));
  }
  for (; i < n; ++i) out[i] = x[i] * inv_rms * (w[i] + w_offset);
}

// ─── RoPE ─────────────────────────────────────────────────────────────────────────────
// cos/sin once per token (double, like ref), shared by all heads; rotations in double.
template <class V>
void RopeT(float* x, int n_heads, int head_dim, const float* inv_freq, int32_t pos,
           RopeStyle style) {
  const int half = head_dim / 2;
  alignas(64) double c[kMaxAttentionHeadDim / 2], s[kMaxAttentionHeadDim / 2];
  KILN_CHECK(half <= kMaxAttentionHeadDim / 2) << "head_dim " << head_dim;
  for (int i = 0; i < half; ++i) {
    const float angle = static_cast<float>(pos) * inv_freq[i];
    c[i] = std::cos(static_cast<double>(angle));
    s[i] = std::sin(static_cast<double>(angle));
  }
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    if (style == RopeStyle::kNeox) {
      int i = 0;
      for (; i + V::kWD <= half; i += V::kWD) {
        const typename V::D a = V::ToD(v + i), b = V::ToD(v + half + i);
        const typename V::D cv = V::LoadD(c + i), sv = V::LoadD(s + i);
        V::FromD(v + i, V::SubD(V::MulD(a, cv), V::MulD(b, sv)));
        V::FromD(v + half + i, V::AddD(V::MulD(a, sv), V::MulD(b, cv)));
      }
      for (; i < half; ++i) {
        const double a = v[i], b = v[i + half];
        v[i] = static_cast<float>(a * c[i] - b * s[i]);
        v[i + half] = static_cast<float>(a * s[i] + b * c[i]);
      }
    } else {
      for (int i = 0; i < half; ++i) {
        const double a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = static_cast<float>(a * c[i] - b * s[i]);
        v[2 * i + 1] = static_cast<float>(a * s[i] + b * c[i]);
      }
    }
  }
}

// ─── Gated activations ────────────────────────────────────────────────────────────────
// exp in double: 2^k · e^r, |r| <= ln2/2, Taylor to degree 13 (relative error ~1e-16), so
// the float results equal ref's libm-based ones except for double-rounding corners.
template <class V>
inline typename V::D ExpD(typename V::D x) {
  x = V::MinD(V::MaxD(x, V::SetD(-708.0)), V::SetD(708.0));
  const typename V::D k = V::RoundD(V::MulD(x, V::SetD(1.4426950408889634)));
  typename V::D r = V::SubD(x, V::MulD(k, V::SetD(6.93147180369123816490e-01)));
  r = V::SubD(r, V::MulD(k, V::SetD(1.90821492927058770002e-10)));
  typename V::D p = V::SetD(1.0 / 6227020800.0);
  constexpr double kInvFact[] = {1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                                 1.0 / 362880.0,    1.0 / 40320.0,    1.0 / 5040.0,
                                 1.0 / 720.0,       1.0 / 120.0,      1.0 / 24.0,
                                 1.0 / 6.0,         0.5,              1.0,
                                 1.0};
  for (double f : kInvFact) p = V::AddD(V::MulD(p, r), V::SetD(f));
  return V::Pow2D(p, k);
}

// ggml's f16 GELU table as floats (built once; same float formula as ref's).
inline const float* GeluF16Table() {
  static const float* table = [] {
    static float t[1 << 16];
    for (uint32_t h = 0; h < (1u << 16); ++h) {
      const float x = _cvtsh_ss(static_cast<uint16_t>(h));
      constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
      constexpr float kCoefA = 0.044715f;
      const float g = 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + kCoefA * x * x)));
      t[h] = RoundF16Scalar(g);
    }
    return t;
  }();
  return table;
}

template <class V>
void GatedActivationT(Activation act, const float* gate, const float* up, int64_t n, float* out) {
  int64_t i = 0;
  if (act == Activation::kGeluTanhF16Table) {
    const float* table = GeluF16Table();
    for (; i + V::kW <= n; i += V::kW) {
      V::Store(out + i, V::Mul(V::GeluTable(table, V::Load(gate + i)), V::Load(up + i)));
    }
    for (; i < n; ++i) {
      const float x = gate[i];
      const float a = x <= -10.0f ? 0.0f : x >= 10.0f ? x : table[_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT)];
      out[i] = a * up[i];
    }
    return;
  }
  const bool silu = act == Activation::kSilu;
  for (; i + V::kWD <= n; i += V::kWD) {
    const typename V::D x = V::ToD(gate + i);
    typename V::D a;
    if (silu) {
      a = V::DivD(x, V::AddD(V::SetD(1.0), ExpD<V>(V::SubD(V::SetD(0.0), x))));
    } else {
      // 0.5 x (1 + tanh(y)) = x e / (e + 1) with e = exp(2y).
      const typename V::D y = V::MulD(V::SetD(0.7978845608028654),
                                      V::AddD(x, V::MulD(V::SetD(0.044715), V::MulD(V::MulD(x, x), x))));
      const typename V::D e = ExpD<V>(V::MulD(V::SetD(2.0), V::MinD(V::MaxD(y, V::SetD(-40.0)), V::SetD(40.0))));
      a = V::DivD(V::MulD(x, e), V::AddD(e, V::SetD(1.0)));
      // Below -19.07 ref's tanh(y) rounds to -1 in double and its result is x * 0.
      a = V::SelectLtD(y, V::SetD(-19.07), V::MulD(x, V::SetD(0.0)), a);
    }
    // ref: float(act) * up in float.
    alignas(64) float af[16];
    V::FromD(af, a);
    for (int j = 0; j < V::kWD; ++j) out[i + j] = af[j] * up[i + j];
  }
  for (; i < n; ++i) {
    const double x = gate[i];
    float a;
    if (silu) {
      a = static_cast<float>(x / (1.0 + std::exp(-x)));
    } else {
      const double k = std::sqrt(2.0 / 3.14159265358979323846);
      a = static_cast<float>(0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x))));
    }
    out[i] = a * up[i];
  }
}

template <class V>
void AddT(float* x, const float* y, int64_t n) {
  int64_t i = 0;
  for (; i + V::kW <= n; i += V::kW) V::Store(x + i, V::Add(V::Load(x + i), V::Load(y + i)));
  for (; i < n; ++i) x[i] += y[i];
}

}  // namespace
}  // namespace kiln::kernels::x86
