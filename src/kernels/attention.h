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
// Budget of the fast kernels' online-softmax path (f32 or unrounded f16 KV) against the
// reference: |out - ref| <= kMaxAttentionRelErr * max_j |V[j]| per output element.
constexpr float kMaxAttentionRelErr = 2e-5f;

struct KvView {
  DType dtype = DType::kF32;  // kF32 or kF16
  const uint8_t* k = nullptr;
  const uint8_t* v = nullptr;
  size_t pos_stride = 0;   // bytes from one position (slot) to the next
  int head_dim = 0;
  // Paged cache (kv/): when set, position p lives in slot
  // block_ids[p / block_tokens] * block_tokens + p % block_tokens of k/v; else slot = p.
  const int32_t* block_ids = nullptr;
  int32_t block_tokens = 0;
  // Bytes from one kv head to the next; 0: head_dim elements (the heads of a position
  // adjacent). kv::KvCache is head-major, so one kv head's rows are contiguous and attention
  // reads them as a stream. (Last, so aggregate initialisers of the fields above still work.)
  size_t head_stride = 0;

  size_t ElemBytes() const { return dtype == DType::kF16 ? 2 : 4; }
  size_t Slot(int32_t pos) const {
    if (block_ids == nullptr) return static_cast<size_t>(pos);
    return static_cast<size_t>(block_ids[pos / block_tokens]) * block_tokens + pos % block_tokens;
  }
  size_t HeadOffset(int kv_head) const {
    return static_cast<size_t>(kv_head) *
           (head_stride != 0 ? head_stride : static_cast<size_t>(head_dim) * ElemBytes());
  }
  const uint8_t* KRow(int32_t pos, int kv_head) const {
    return k + Slot(pos) * pos_stride + HeadOffset(kv_head);
  }
  const uint8_t* VRow(int32_t pos, int kv_head) const {
    return v + Slot(pos) * pos_stride + HeadOffset(kv_head);
  }
};

// A block of query rows that share one kv head, for the table's attention kernel:
// n_tok tokens × n_group consecutive query heads. Row (t, g) reads q + t * q_tok_stride +
// g * head_dim and writes out + t * out_tok_stride + g * head_dim (floats); token t attends
// positions [pos_begin[t], pos_end[t]) (pos_end > pos_begin; causality and sliding windows are
// the caller's choice of range). K/V of every position in the union of the ranges must be
// stored. round_qp: llama.cpp's f16 rounding (see ref::AttentionHead), only for f16 views.
struct AttentionBlock {
  const float* q = nullptr;
  float* out = nullptr;
  size_t q_tok_stride = 0, out_tok_stride = 0;
  int n_tok = 0, n_group = 0;
  const int32_t* pos_begin = nullptr;
  const int32_t* pos_end = nullptr;
  int kv_head = 0;
  float scale = 1.0f;
  bool round_qp = false;
};

// Floats of scratch an attention kernel needs for a block of n_rows = n_tok * n_group rows
// whose ranges together span `span` positions (max pos_end - min pos_begin).
inline size_t AttentionScratchFloats(int n_rows, int32_t span, int head_dim) {
  const size_t d = (static_cast<size_t>(head_dim) + 15) / 16 * 16;
  const size_t rows = static_cast<size_t>(n_rows);
  // The last term: the llama.cpp-exact kernels' P·V partial sums (ggml_exact_inl.h).
  return rows * (static_cast<size_t>(span) + 128) + 64 * d + rows * (d + 8) + 64 + 72 * 64;
}

// Fast kernels compute the rows with tiles over positions; outputs match ref::AttentionHead
// bit for bit when round_qp (f16 view), else within kMaxAttentionRelErr of it (online softmax
// in float). Scratch: AttentionScratchFloats(...) floats, any alignment.
using AttentionFn = void (*)(const AttentionBlock& block, const KvView& kv, float* scratch,
                             size_t scratch_floats);

}  // namespace kiln::kernels

namespace kiln::kernels::ref {

// The table form of AttentionHead: each row of the block in turn (the oracle's AttentionFn).
void AttentionRows(const AttentionBlock& block, const KvView& kv, float* scratch,
                   size_t scratch_floats);

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
