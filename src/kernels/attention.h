// Contract for causal attention of one query head over cached keys and values.
//
// K/V are read through KvView, not as one tensor: the key of position p and kv head h starts at
// k + p * pos_stride + h * head_dim * elem_bytes (same for v). The single-sequence cache of today
// gives one base per layer; a paged cache gives a view per block (attention over several views
// combines their partial results), so the kernel never assumes the whole context is contiguous.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"

namespace kiln::kernels {

// Largest head_dim the kernels accept (stack accumulators).
constexpr int kMaxAttentionHeadDim = 1024;

struct KvView {
  DType dtype = DType::kF32;  // kF32 or kF16
  const uint8_t* k = nullptr;
  const uint8_t* v = nullptr;
  size_t pos_stride = 0;  // bytes from one position to the next
  int head_dim = 0;
  // Paged cache (kv/): when set, position p lives in slot
  // block_ids[p / block_tokens] * block_tokens + p % block_tokens of k/v; else slot = p.
  const int32_t* block_ids = nullptr;
  int32_t block_tokens = 0;

  size_t ElemBytes() const { return dtype == DType::kF16 ? 2 : 4; }
  size_t Slot(int32_t pos) const {
    if (block_ids == nullptr) return static_cast<size_t>(pos);
    return static_cast<size_t>(block_ids[pos / block_tokens]) * block_tokens + pos % block_tokens;
  }
  const uint8_t* KRow(int32_t pos, int kv_head) const {
    return k + Slot(pos) * pos_stride + static_cast<size_t>(kv_head) * head_dim * ElemBytes();
  }
  const uint8_t* VRow(int32_t pos, int kv_head) const {
    return v + Slot(pos) * pos_stride + static_cast<size_t>(kv_head) * head_dim * ElemBytes();
  }
};

}  // namespace kiln::kernels

namespace kiln::kernels::ref {

// out[head_dim] = sum_j softmax_j(scale * q . K[j]) V[j] over positions j in [pos_begin, pos_end)
// of kv_head (the caller applies causality and sliding windows by choosing the range;
// pos_end > pos_begin). scores: scratch of pos_end - pos_begin floats. Accumulates in double.
//
// round_qp_to_kv_dtype (only meaningful for f16 views): reproduce llama.cpp's CPU attention
// without flash attention, the numerics GGUF models are judged by. There q is rounded to f16
// before q.K, the scores get scale and a float softmax (exp in float, sum in double, one float
// reciprocal), the probabilities are rounded to f16 before P.V, and both dot products are f16
// products summed in float lanes in the AVX-512 order (GgmlF16Dot). Greedy decoding of small
// quantized models flips on differences this size, so the HF path keeps the exact version.
void AttentionHead(const float* q, const KvView& kv, int kv_head, int32_t pos_begin,
                   int32_t pos_end, float scale, float* scores, float* out,
                   bool round_qp_to_kv_dtype = false);

// Sum of x[i] * y[i] (values exactly representable in f16) the way ggml's AVX-512
// vec_dot_f16 adds them: 64 float lanes (4 vectors of 16), element i into lane i % 64, the
// vectors folded pairwise, 16 lanes reduced as a tree; a tail of n % 64 added in double.
float GgmlF16Dot(const float* x, const float* y, int n);

// Stored K/V element as float (f32 or f16 views).
float KvElem(const KvView& kv, const uint8_t* row, int i);

}  // namespace kiln::kernels::ref
