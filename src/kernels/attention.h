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
void AttentionHead(const float* q, const KvView& kv, int kv_head, int32_t pos_begin,
                   int32_t pos_end, float scale, float* scores, float* out);

// Stored K/V element as float (f32 or f16 views).
float KvElem(const KvView& kv, const uint8_t* row, int i);

}  // namespace kiln::kernels::ref
