// Scalar reference attention for one query head: two passes (scores, then softmax-weighted
// sum of values), everything accumulated in double; or llama.cpp's f16 rounding on request.
#include <algorithm>
#include <cmath>
#include <vector>

#include "base/check.h"
#include "kernels/attention.h"
#include "tensor/fp16.h"
#include <cstring>

namespace kiln::kernels::ref {

float KvElem(const KvView& kv, const uint8_t* row, int i) {
  if (kv.dtype == DType::kF16) {
    uint16_t h;
    std::memcpy(&h, row + 2 * static_cast<size_t>(i), 2);
    return Fp16ToFp32(h);
  }
  float f;
  std::memcpy(&f, row + 4 * static_cast<size_t>(i), 4);
  return f;
}

namespace {

// f32 → nearest f16 → f32.
float RoundF16(float x) { return Fp16ToFp32(Fp32ToFp16(x)); }

// Horizontal sum of 16 float lanes in the order of GCC's _mm512_reduce_add_ps: halves of
// 8, then 4, then adjacent pairs, then the two pair sums.
float ReduceAdd16(const float* v) {
  float a[8], b[4];
  for (int i = 0; i < 8; ++i) a[i] = v[i] + v[i + 8];
  for (int i = 0; i < 4; ++i) b[i] = a[i] + a[i + 4];
  return (b[0] + b[1]) + (b[2] + b[3]);
}

// Scores and softmax of the llama.cpp-compatible path (see attention.h); leaves the f16-rounded
// probabilities in scores.
void GgmlSoftmaxScores(const float* q, const KvView& kv, int kv_head, int32_t pos_begin,
                       int32_t pos_end, float scale, float* scores) {
  const int d = kv.head_dim;
  float qh[kMaxAttentionHeadDim], krow[kMaxAttentionHeadDim];
  for (int i = 0; i < d; ++i) qh[i] = RoundF16(q[i]);
  float max_score = -INFINITY;
  for (int32_t p = pos_begin; p < pos_end; ++p) {
    const uint8_t* k = kv.KRow(p, kv_head);
    for (int i = 0; i < d; ++i) krow[i] = KvElem(kv, k, i);
    const float s = GgmlF16Dot(qh, krow, d) * scale;
    scores[p - pos_begin] = s;
    max_score = std::max(max_score, s);
  }
  double sum = 0.0;
  for (int32_t p = pos_begin; p < pos_end; ++p) {
    const float e = std::exp(scores[p - pos_begin] - max_score);
    scores[p - pos_begin] = e;
    sum += e;
  }
  const float inv_sum = static_cast<float>(1.0 / sum);
  for (int32_t p = pos_begin; p < pos_end; ++p) {
    scores[p - pos_begin] = RoundF16(scores[p - pos_begin] * inv_sum);
  }
}

// The llama.cpp-compatible path: P.V as one f16 dot per output element over the positions
// (llama.cpp stores V transposed without flash attention). Its dot runs over every cache cell
// with masked cells at probability 0, so position p sits in lane p % 64 and nothing falls in
// the tail: arrays here start at position 0 and are padded with zeros to a multiple of 64.
void GgmlAttentionHead(const float* q, const KvView& kv, int kv_head, int32_t pos_begin,
                       int32_t pos_end, float scale, float* scores, float* out) {
  const int d = kv.head_dim;
  GgmlSoftmaxScores(q, kv, kv_head, pos_begin, pos_end, scale, scores);
  const size_t n_pad = (static_cast<size_t>(pos_end) + 63) / 64 * 64;
  thread_local std::vector<float> probs, vcol;
  probs.assign(n_pad, 0.0f);
  vcol.assign(n_pad, 0.0f);
  for (int32_t p = pos_begin; p < pos_end; ++p) probs[p] = scores[p - pos_begin];
  for (int i = 0; i < d; ++i) {
    for (int32_t p = pos_begin; p < pos_end; ++p) vcol[p] = KvElem(kv, kv.VRow(p, kv_head), i);
    out[i] = GgmlF16Dot(probs.data(), vcol.data(), static_cast<int>(n_pad));
  }
}

}  // namespace

float GgmlF16Dot(const float* x, const float* y, int n) {
  constexpr int kLanes = 64;
  float lanes[kLanes] = {};
  const int n_simd = n - n % kLanes;
  for (int i = 0; i < n_simd; ++i) lanes[i % kLanes] += x[i] * y[i];
  float v[16];
  for (int l = 0; l < 16; ++l) {
    const float a = lanes[l] + lanes[32 + l];
    const float b = lanes[16 + l] + lanes[48 + l];
    v[l] = a + b;
  }
  double sum = ReduceAdd16(v);
  for (int i = n_simd; i < n; ++i) sum += static_cast<double>(x[i] * y[i]);
  return static_cast<float>(sum);
}

void AttentionHead(const float* q, const KvView& kv, int kv_head, int32_t pos_begin,
                   int32_t pos_end, float scale, float* scores, float* out,
                   bool round_qp_to_kv_dtype) {
  KILN_CHECK(pos_end > pos_begin) << "empty attention range " << pos_begin << ".." << pos_end;
  const int d = kv.head_dim;
  KILN_CHECK(d > 0 && d <= kMaxAttentionHeadDim) << "head_dim " << d;
  if (round_qp_to_kv_dtype && kv.dtype == DType::kF16) {
    GgmlAttentionHead(q, kv, kv_head, pos_begin, pos_end, scale, scores, out);
    return;
  }
  double max_score = -INFINITY;
  for (int32_t p = pos_begin; p < pos_end; ++p) {
    const uint8_t* k = kv.KRow(p, kv_head);
    double dot = 0.0;
    for (int i = 0; i < d; ++i) dot += static_cast<double>(q[i]) * KvElem(kv, k, i);
    const double s = dot * scale;
    scores[p - pos_begin] = static_cast<float>(s);
    if (s > max_score) max_score = s;
  }
  double sum = 0.0;
  for (int32_t p = pos_begin; p < pos_end; ++p) {
    const double e = std::exp(static_cast<double>(scores[p - pos_begin]) - max_score);
    scores[p - pos_begin] = static_cast<float>(e);
    sum += e;
  }
  KILN_CHECK(d > 0 && d <= kMaxAttentionHeadDim) << "head_dim " << d;
  double acc[kMaxAttentionHeadDim] = {};
  for (int32_t p = pos_begin; p < pos_end; ++p) {
    const uint8_t* v = kv.VRow(p, kv_head);
    const double wgt = scores[p - pos_begin] / sum;
    for (int i = 0; i < d; ++i) acc[i] += wgt * KvElem(kv, v, i);
  }
  for (int i = 0; i < d; ++i) out[i] = static_cast<float>(acc[i]);
}

void AttentionRows(const AttentionBlock& b, const KvView& kv, float* scratch,
                   size_t scratch_floats) {
  for (int t = 0; t < b.n_tok; ++t) {
    KILN_CHECK(static_cast<size_t>(b.pos_end[t] - b.pos_begin[t]) <= scratch_floats)
        << "attention scratch " << scratch_floats;
    for (int g = 0; g < b.n_group; ++g) {
      const size_t off = static_cast<size_t>(g) * kv.head_dim;
      AttentionHead(b.q + t * b.q_tok_stride + off, kv, b.kv_head, b.pos_begin[t], b.pos_end[t],
                    b.scale, scratch, b.out + t * b.out_tok_stride + off, b.round_qp);
    }
  }
}

}  // namespace kiln::kernels::ref
