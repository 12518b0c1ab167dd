// The neon tables' attention (kernels/attention.h's AttentionFn) on 4-float vectors, in two
// paths like the x86 tables:
//  - round_qp with an f16 view: llama.cpp's numerics, bit for bit ref::AttentionHead's
//    (f16 products are exact in f32, so an FMA equals the reference's multiply then add, and
//    every sum adds the same values in the same order as ref::GgmlF16Dot's 64 lanes);
//  - otherwise one pass of online softmax over blocks of 64 positions aligned to absolute
//    positions (a row's result does not depend on the other rows of the call), within
//    kMaxAttentionRelErr of ref.
#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "base/check.h"
#include "kernels/cpu/neon/neon_kernels.h"
#include "tensor/fp16.h"

namespace kiln::kernels::neon {
namespace {

constexpr int kW = 4;  // floats per vector

inline float RoundF16Scalar(float x) { return Fp16ToFp32(Fp32ToFp16(x)); }
inline float32x4_t RoundF16(float32x4_t v) { return vcvt_f32_f16(vcvt_f16_f32(v)); }
inline float32x4_t LoadF16(const uint8_t* p) { return vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(p))); }

inline float KvScalar(const uint8_t* row, int i, bool f16) {
  if (f16) {
    uint16_t h;
    std::memcpy(&h, row + 2 * static_cast<size_t>(i), 2);
    return Fp16ToFp32(h);
  }
  float f;
  std::memcpy(&f, row + 4 * static_cast<size_t>(i), 4);
  return f;
}

// A K or V row → f32 (f16 converted, f32 copied).
void RowToF32(const uint8_t* row, int d, bool f16, float* out) {
  int i = 0;
  if (f16) {
    for (; i + kW <= d; i += kW) vst1q_f32(out + i, LoadF16(row + 2 * i));
  } else {
    for (; i + kW <= d; i += kW) vst1q_f32(out + i, vreinterpretq_f32_u8(vld1q_u8(row + 4 * i)));
  }
  for (; i < d; ++i) out[i] = KvScalar(row, i, f16);
}

// ─── llama.cpp-compatible path (round_qp, f16 KV) ────────────────────────────────────────

// ref::GgmlF16Dot's fold of 64 lanes (acc[m] = lanes 4m..4m+3): v[l] = (lane l + lane 32+l)
// + (lane 16+l + lane 48+l); a = v[0:8] + v[8:16]; b = a[0:4] + a[4:8]; (b0+b1) + (b2+b3).
inline float Fold64(const float32x4_t* acc) {
  float32x4_t v[4];
  for (int j = 0; j < 4; ++j) {
    v[j] = vaddq_f32(vaddq_f32(acc[j], acc[8 + j]), vaddq_f32(acc[4 + j], acc[12 + j]));
  }
  const float32x4_t b = vaddq_f32(vaddq_f32(v[0], v[2]), vaddq_f32(v[1], v[3]));
  const float32x4_t p = vpaddq_f32(b, b);  // b0+b1, b2+b3
  return vgetq_lane_f32(p, 0) + vgetq_lane_f32(p, 1);
}

inline float GgmlDot(const float* x, const float* y, int n) {
  float32x4_t acc[16];
  for (auto& a : acc) a = vdupq_n_f32(0.0f);
  const int n_simd = n - n % 64;
  for (int i = 0; i < n_simd; i += 64) {
    for (int m = 0; m < 16; ++m) {
      acc[m] = vfmaq_f32(acc[m], vld1q_f32(x + i + 4 * m), vld1q_f32(y + i + 4 * m));
    }
  }
  double sum = Fold64(acc);
  for (int i = n_simd; i < n; ++i) sum += static_cast<double>(x[i] * y[i]);
  return static_cast<float>(sum);
}

// out[i] = the fold of acc[0..63][i] in GgmlF16Dot's lane order, for i < d.
void FoldLanes(const float* acc, size_t stride, int d, float* out) {
  auto lane = [&](int l, int i) { return vld1q_f32(acc + l * stride + i); };
  int i = 0;
  for (; i + kW <= d; i += kW) {
    float32x4_t v[16], a[8], b[4];
    for (int m = 0; m < 16; ++m) {
      v[m] = vaddq_f32(vaddq_f32(lane(m, i), lane(32 + m, i)),
                       vaddq_f32(lane(16 + m, i), lane(48 + m, i)));
    }
    for (int k = 0; k < 8; ++k) a[k] = vaddq_f32(v[k], v[k + 8]);
    for (int k = 0; k < 4; ++k) b[k] = vaddq_f32(a[k], a[k + 4]);
    vst1q_f32(out + i, vaddq_f32(vaddq_f32(b[0], b[1]), vaddq_f32(b[2], b[3])));
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

// Softmax of one row's scores in place → f16-rounded probabilities (ref's float softmax).
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
  int32_t j = 0;
  for (; j + kW <= n; j += kW) vst1q_f32(s + j, RoundF16(vmulq_n_f32(vld1q_f32(s + j), inv_sum)));
  for (; j < n; ++j) s[j] = RoundF16Scalar(s[j] * inv_sum);
}

void GgmlAttention(const AttentionBlock& b, const KvView& kv, int32_t lo, int32_t hi,
                   float* scratch, size_t scratch_floats) {
  const int d = kv.head_dim;
  const int n_rows = b.n_tok * b.n_group;
  const size_t span = static_cast<size_t>(hi - lo);
  const size_t d_pad = (static_cast<size_t>(d) + 15) / 16 * 16;
  float* qh = scratch;                                      // [n_rows][d]
  float* scores = qh + static_cast<size_t>(n_rows) * d;      // [n_rows][span]
  float* acc = scores + static_cast<size_t>(n_rows) * span;  // [64][d_pad]
  KILN_CHECK(static_cast<size_t>(acc + 64 * d_pad - scratch) <= scratch_floats)
      << "attention scratch " << scratch_floats;
  for (int r = 0; r < n_rows; ++r) {
    const float* q = b.q + (r / b.n_group) * b.q_tok_stride + static_cast<size_t>(r % b.n_group) * d;
    float* dst = qh + static_cast<size_t>(r) * d;
    int i = 0;
    for (; i + kW <= d; i += kW) vst1q_f32(dst + i, RoundF16(vld1q_f32(q + i)));
    for (; i < d; ++i) dst[i] = RoundF16Scalar(q[i]);
  }
  // Scores: each K row converted once, shared by the rows whose range holds it.
  alignas(16) float kf[kMaxAttentionHeadDim];
  for (int32_t p = lo; p < hi; ++p) {
    RowToF32(kv.KRow(p, b.kv_head), d, true, kf);
    for (int r = 0; r < n_rows; ++r) {
      const int t = r / b.n_group;
      if (p < b.pos_begin[t] || p >= b.pos_end[t]) continue;
      scores[r * span + (p - lo)] = GgmlDot(qh + static_cast<size_t>(r) * d, kf, d) * b.scale;
    }
  }
  // P.V: lane p % 64 of every output element accumulates its positions in order. acc is all
  // zeros between rows: each row clears the lanes it used.
  std::fill(acc, acc + 64 * d_pad, 0.0f);
  for (int r = 0; r < n_rows; ++r) {
    const int t = r / b.n_group;
    const int32_t begin = b.pos_begin[t], end = b.pos_end[t];
    float* prob = scores + r * span + (begin - lo);
    GgmlSoftmax(prob, end - begin);
    for (int32_t p = begin; p < end; ++p) {
      const uint8_t* v = kv.VRow(p, b.kv_head);
      float* a = acc + (p % 64) * d_pad;
      const float w = prob[p - begin];
      int i = 0;
      for (; i + kW <= d; i += kW) {
        vst1q_f32(a + i, vfmaq_n_f32(vld1q_f32(a + i), LoadF16(v + 2 * i), w));
      }
      for (; i < d; ++i) a[i] += w * KvScalar(v, i, true);
    }
    FoldLanes(acc, d_pad, d, b.out + t * b.out_tok_stride + static_cast<size_t>(r % b.n_group) * d);
    if (end - begin >= 64) {
      std::fill(acc, acc + 64 * d_pad, 0.0f);
    } else {
      for (int32_t p = begin; p < end; ++p) std::fill_n(acc + (p % 64) * d_pad, d_pad, 0.0f);
    }
  }
}

// ─── Online softmax (f32 KV, or f16 without llama.cpp's rounding) ────────────────────────

constexpr int kKeyBlock = 64;

inline float Dot(const float* x, const float* y, int n) {
  float32x4_t a0 = vdupq_n_f32(0.0f), a1 = vdupq_n_f32(0.0f);
  int i = 0;
  for (; i + 2 * kW <= n; i += 2 * kW) {
    a0 = vfmaq_f32(a0, vld1q_f32(x + i), vld1q_f32(y + i));
    a1 = vfmaq_f32(a1, vld1q_f32(x + i + kW), vld1q_f32(y + i + kW));
  }
  for (; i + kW <= n; i += kW) a0 = vfmaq_f32(a0, vld1q_f32(x + i), vld1q_f32(y + i));
  float s = vaddvq_f32(vaddq_f32(a0, a1));
  for (; i < n; ++i) s += x[i] * y[i];
  return s;
}

// acc[i] += w * x[i].
inline void Axpy(float* acc, float w, const float* x, int n) {
  int i = 0;
  for (; i + kW <= n; i += kW) vst1q_f32(acc + i, vfmaq_n_f32(vld1q_f32(acc + i), vld1q_f32(x + i), w));
  for (; i < n; ++i) acc[i] += w * x[i];
}

// Per row of one key block: new running max, rescaled accumulator, probabilities (0 outside
// the row's range). s holds the block's scores (-inf where the row does not attend).
void BlockSoftmax(float* s, float* run_max, float* run_sum, float* acc, int d) {
  float block_max = -INFINITY;
  for (int j = 0; j < kKeyBlock; ++j) block_max = std::max(block_max, s[j]);
  if (block_max == -INFINITY) {  // no position of this row in the block
    std::fill_n(s, kKeyBlock, 0.0f);
    return;
  }
  const float new_max = std::max(*run_max, block_max);
  const float alpha = std::exp(*run_max - new_max);  // 0 on the first block
  float sum = 0.0f;
  for (int j = 0; j < kKeyBlock; ++j) {
    s[j] = s[j] == -INFINITY ? 0.0f : std::exp(s[j] - new_max);
    sum += s[j];
  }
  *run_sum = *run_sum * alpha + sum;
  *run_max = new_max;
  if (alpha != 1.0f) {
    int i = 0;
    for (; i + kW <= d; i += kW) vst1q_f32(acc + i, vmulq_n_f32(vld1q_f32(acc + i), alpha));
    for (; i < d; ++i) acc[i] *= alpha;
  }
}

void OnlineAttention(const AttentionBlock& b, const KvView& kv, int32_t lo, int32_t hi,
                     float* scratch, size_t scratch_floats) {
  const int d = kv.head_dim;
  const bool f16 = kv.dtype == DType::kF16;
  const int n_rows = b.n_tok * b.n_group;
  float* acc = scratch;                                    // [n_rows][d]
  float* run_max = acc + static_cast<size_t>(n_rows) * d;  // [n_rows]
  float* run_sum = run_max + n_rows;                       // [n_rows]
  float* probs = run_sum + n_rows;                         // [n_rows][kKeyBlock]
  KILN_CHECK(static_cast<size_t>(probs + n_rows * kKeyBlock - scratch) <= scratch_floats)
      << "attention scratch " << scratch_floats;
  std::fill(acc, acc + static_cast<size_t>(n_rows) * d, 0.0f);
  std::fill(run_max, run_max + n_rows, -INFINITY);
  std::fill(run_sum, run_sum + n_rows, 0.0f);
  alignas(16) float kf[kMaxAttentionHeadDim];
  auto q_row = [&](int r) {
    return b.q + (r / b.n_group) * b.q_tok_stride + static_cast<size_t>(r % b.n_group) * d;
  };
  for (int32_t p0 = lo - lo % kKeyBlock; p0 < hi; p0 += kKeyBlock) {
    const int32_t b0 = std::max(p0, lo), b1 = std::min(p0 + kKeyBlock, hi);
    for (int r = 0; r < n_rows; ++r) std::fill_n(probs + r * kKeyBlock, kKeyBlock, -INFINITY);
    for (int32_t p = b0; p < b1; ++p) {
      RowToF32(kv.KRow(p, b.kv_head), d, f16, kf);
      for (int r = 0; r < n_rows; ++r) {
        const int t = r / b.n_group;
        if (p < b.pos_begin[t] || p >= b.pos_end[t]) continue;
        probs[r * kKeyBlock + (p - p0)] = Dot(q_row(r), kf, d) * b.scale;
      }
    }
    for (int r = 0; r < n_rows; ++r) {
      BlockSoftmax(probs + r * kKeyBlock, run_max + r, run_sum + r,
                   acc + static_cast<size_t>(r) * d, d);
    }
    for (int32_t p = b0; p < b1; ++p) {
      RowToF32(kv.VRow(p, b.kv_head), d, f16, kf);
      for (int r = 0; r < n_rows; ++r) {
        const float w = probs[r * kKeyBlock + (p - p0)];
        if (w != 0.0f) Axpy(acc + static_cast<size_t>(r) * d, w, kf, d);
      }
    }
  }
  for (int r = 0; r < n_rows; ++r) {
    float* out = b.out + (r / b.n_group) * b.out_tok_stride + static_cast<size_t>(r % b.n_group) * d;
    const float inv = 1.0f / run_sum[r];
    const float* a = acc + static_cast<size_t>(r) * d;
    for (int i = 0; i < d; ++i) out[i] = a[i] * inv;
  }
}

}  // namespace

void Attention(const AttentionBlock& b, const KvView& kv, float* scratch, size_t scratch_floats) {
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
    GgmlAttention(b, kv, lo, hi, scratch, scratch_floats);
  } else {
    OnlineAttention(b, kv, lo, hi, scratch, scratch_floats);
  }
}

}  // namespace kiln::kernels::neon
