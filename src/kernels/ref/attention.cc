// Scalar reference attention for one query head: two passes (scores, then softmax-weighted
// sum of values), everything accumulated in double.
#include <cmath>

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

void AttentionHead(const float* q, const KvView& kv, int kv_head, int32_t pos_begin,
                   int32_t pos_end, float scale, float* scores, float* out) {
  KILN_CHECK(pos_end > pos_begin) << "empty attention range " << pos_begin << ".." << pos_end;
  const int d = kv.head_dim;
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

}  // namespace kiln::kernels::ref
