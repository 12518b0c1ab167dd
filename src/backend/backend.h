// Backend: the ops one forward pass needs, on f32 activations and weights of any supported
// dtype. The model layer calls only this interface, never kernels by name, so a Vulkan or
// multi-device backend can replace the CPU one. Buffers are host memory for now.
//
// Shapes are row-major. Ops are batch invariant: a row's result never depends on the other
// rows of the call (fixed reduction order per row). Not thread-safe: one caller (the engine
// thread) at a time; ops parallelise internally.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"
#include "base/thread_pool.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/ggml_exact.h"
#include "kernels/kernel_table.h"
#include "kernels/rope.h"
#include "tensor/dtype.h"

namespace kiln::backend {

using kernels::Activation;
using kernels::KvView;
using kernels::RopeScaling;
using kernels::RopeScalingType;
using kernels::RopeStyle;

// Largest head_dim the attention op accepts.
constexpr int kMaxHeadDim = kernels::kMaxAttentionHeadDim;

// A read-only weight matrix [rows, cols] of any dtype: row r is `row_bytes` bytes at
// data + r * row_bytes (a Linear(in=cols, out=rows) weight, or an embedding table).
struct Matrix {
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* data = nullptr;
  size_t row_bytes = 0;

  const uint8_t* Row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes; }
};

// One product of Backend::MatMulShared: out = w x (+ bias if not null).
struct MatMulOut {
  const Matrix* w = nullptr;
  const float* bias = nullptr;
  float* out = nullptr;
};

// The summation order of one query row of Attention where the backend computes like
// llama.cpp (SetGgmlExact): llama.cpp evaluates a forward step of two or more tokens with
// tinyBLAS matrix products (kBatched) and a step of one token with ggml_vec_dot (kSingle),
// which round differently. A row's order is a property of the row (the engine gives prompt
// rows of a prompt of >= 2 tokens kBatched, every other row kSingle), never of how rows were
// grouped into calls, so a sequence's numbers do not depend on batching. Ignored otherwise.
enum class RowOrder : uint8_t { kBatched = 0, kSingle = 1 };

// One sequence of a ragged batch for Attention: batch rows [begin, end) and the sequence's
// block table (KvView::block_ids; null: slot = position).
struct AttentionSeq {
  int64_t begin = 0, end = 0;
  const int32_t* block_ids = nullptr;
};

// Attention over one sequence's cache for a block of query tokens.
struct AttentionParams {
  int n_heads = 0;
  int n_heads_kv = 0;  // n_heads % n_heads_kv == 0 (GQA: query head h reads kv head h / group)
  int head_dim = 0;
  int32_t window = 0;  // > 0: token at pos attends to (pos - window, pos]; 0: full causal
  float scale = 1.0f;  // applied to q.k
  // f16 KV only: round q and the softmax probabilities to f16 like llama.cpp's CPU attention
  // (kernels::ref::AttentionHead); set for GGUF models, never for Hugging Face ones.
  bool round_qp_to_kv_dtype = false;
  // [n_tokens] order of each query row; null: every row kBatched when n_tokens >= 2, else
  // kSingle (the call is one llama.cpp step).
  const RowOrder* row_orders = nullptr;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // The kernel ISA this backend computes with ("ref", "avx2", "avx512", …), for reports.
  virtual std::string KernelIsa() const = 0;

  // OK if MatMul / EmbeddingRows can use weights of this dtype; Unimplemented naming it if not.
  virtual Status CheckWeightType(DType dtype) const = 0;
  // Plans scratch for MatMul calls of up to max_tokens rows of up to max_cols columns and
  // attention over up to max_positions positions, so later calls do not allocate.
  virtual void Reserve(int64_t max_tokens, int64_t max_cols, int32_t max_positions) = 0;

  // Called once per weight matrix used in MatMul, after loading and before any MatMul: the
  // backend may move it into a layout its kernels prefer (the CPU backend interleaves Q4_0 and
  // Q8_0 rows, kernels/pack.h), updating m's dtype and data; the backend owns the new bytes
  // and the original's are no longer read. MatMul and EmbeddingRows accept the result.
  virtual void PrepareMatMulWeight(Matrix* m) { (void)m; }
  // Matrices PrepareMatMulWeight moved into another layout (for reports).
  virtual int64_t PackedMatrices() const { return 0; }

  // out[t, r] = sum_c w[r, c] * x[t, c] (+ bias[r] if bias). x [n_tokens, w.cols] f32,
  // out [n_tokens, w.rows]. Each x row is converted once to the weight type's dot type.
  virtual void MatMul(const Matrix& w, const float* x, int64_t n_tokens, const float* bias,
                      float* out) = 0;
  // MatMul of several matrices over the same x (e.g. Q/K/V, gate/up): the activations are
  // converted once when the matrices share a dot type, and the products run in one parallel
  // dispatch. Each output is bit-identical to its own MatMul call.
  virtual void MatMulShared(const MatMulOut* outs, int n, const float* x, int64_t n_tokens) {
    for (int i = 0; i < n; ++i) MatMul(*outs[i].w, x, n_tokens, outs[i].bias, outs[i].out);
  }
  // out[i, :] = dequantized row ids[i] of table. ids must be < table.rows (caller validates).
  virtual void EmbeddingRows(const Matrix& table, const int32_t* ids, int64_t n, float* out) = 0;
  // Row-wise RMSNorm of x [n_rows, dim] with weight w [dim] (+ w_offset); out may equal x.
  virtual void RmsNorm(const float* x, const float* w, float w_offset, float eps, int64_t n_rows,
                       int64_t dim, float* out) = 0;
  // Rotates x [n_tokens, n_heads, head_dim] in place; token t at positions[t].
  virtual void Rope(float* x, int64_t n_tokens, int n_heads, int head_dim,
                    const int32_t* positions, const float* inv_freq, RopeStyle style) = 0;
  // Rope with llama.cpp's angle recurrence and rounding (kernels::ggml::Rope).
  virtual void RopeGgml(float* x, int64_t n_tokens, int n_heads, int head_dim,
                        const int32_t* positions, const kernels::ggml::RopeParams& rp,
                        RopeStyle style) = 0;
  // On: RmsNorm, GatedActivation(kSilu) and Attention over f16 KV compute exactly what
  // llama.cpp's CPU backend computes (kernels/ggml_exact.h), for GGUF models judged against it.
  virtual void SetGgmlExact(bool on) = 0;
  // True when Attention's results depend on AttentionParams::row_orders (llama.cpp's
  // numerics are on and active); the prefix cache then keys blocks by their rows' orders.
  virtual bool UsesRowOrders() const = 0;
  // q [n_tokens, n_heads, head_dim] at positions[t]; K/V of every attended position (those
  // <= positions[t], within the window) must already be in `kv`. out [n_tokens, n_heads*head_dim].
  virtual void Attention(const float* q, int64_t n_tokens, const int32_t* positions,
                         const KvView& kv, const AttentionParams& p, float* out) = 0;
  // Attention for every sequence of a ragged batch in one parallel pass (one dispatch per
  // layer, not one per sequence): the rows of seqs[s] attend over kv with
  // block_ids = seqs[s].block_ids. q, positions, out and p.row_orders index batch rows.
  // Each row's result is what Attention computes for it alone.
  virtual void AttentionBatch(const float* q, const int32_t* positions, const AttentionSeq* seqs,
                              int n_seqs, const KvView& kv, const AttentionParams& p,
                              float* out) = 0;
  // out = act(gate) * up, elementwise over n values; out may alias gate or up.
  virtual void GatedActivation(Activation act, const float* gate, const float* up, int64_t n,
                               float* out) = 0;
  // x += y over n values.
  virtual void Add(float* x, const float* y, int64_t n) = 0;
  // x *= s over n values.
  virtual void Scale(float* x, float s, int64_t n) = 0;
};

// RoPE frequency table inv_freq[head_dim/2] for Backend::Rope (kernels/rope.h's definition);
// computed once per model.
void RopeInvFreq(int head_dim, float theta, const RopeScaling& scaling, const float* freq_factors,
                 float* inv_freq);

// CPU backend over `table` (kernels::ActiveKernelTable() in production); runs ops on `pool`
// (not owned; may be null to run inline). table must outlive the backend.
std::unique_ptr<Backend> MakeCpuBackend(ThreadPool* pool, const kernels::KernelTable& table);
// The same over kernels::ActiveKernelTable() (the best ISA of this CPU).
std::unique_ptr<Backend> MakeCpuBackend(ThreadPool* pool);

}  // namespace kiln::backend
