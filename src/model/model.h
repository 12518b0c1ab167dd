// Model: a loaded decoder-only transformer (config + mmapped weights + backend) and its
// forward pass. Context: one sequence's state (KV cache, filled length).
//
// Batch rows carry (token, position, sequence, want_logits) so that several sequences can
// share one forward later; today a Context holds one sequence (seq_idx 0) whose positions
// continue from Context::n_past().
//
// Engine-thread only: Forward is not thread-safe (it uses the model's scratch arena).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "base/status.h"
#include "base/thread_pool.h"
#include "io/tensor_source.h"
#include "kv/kv_cache.h"
#include "model/config.h"
#include "model/weights.h"

namespace kiln::model {

struct LoadOptions {
  int n_threads = 0;            // compute threads incl. the caller; 0 = hardware concurrency
  int32_t n_ctx = 0;            // KV positions per Context; 0 = min(context_length, 4096)
  DType kv_dtype = DType::kF16;  // kF16 or kF32
  int32_t max_batch = 256;      // rows per internal step: sizes the activation arena
};

struct BatchRow {
  int32_t token = 0;
  int32_t pos = 0;
  int32_t seq_idx = 0;
  bool want_logits = false;
  // The row's attention summation order (backend::RowOrder; matters only where the backend
  // computes like llama.cpp, Model::UsesRowOrders). Unset: llama.cpp's rule for one call,
  // kBatched when the forward call holds >= 2 rows of the row's sequence, else kSingle. The
  // serving engine sets it from the row's role so that batching never changes a sequence.
  std::optional<backend::RowOrder> order;
};

struct Batch {
  std::vector<BatchRow> rows;

  void Add(int32_t token, int32_t pos, int32_t seq_idx, bool want_logits,
           std::optional<backend::RowOrder> order = std::nullopt) {
    rows.push_back({token, pos, seq_idx, want_logits, order});
  }
  void Clear() { rows.clear(); }
  size_t NumLogitRows() const;
};

// One sequence's KV cache and length. Created by Model::NewContext; usable only with it.
class Context {
 public:
  int32_t n_ctx() const { return kv_->n_ctx(); }
  // Positions 0..n_past()-1 are in the cache; the next batch must start at n_past().
  int32_t n_past() const { return n_past_; }
  // Forgets every position (a new sequence, or the next perplexity chunk).
  void Clear() { n_past_ = 0; }
  // Keeps positions < n_keep. InvalidArgument if n_keep is negative or beyond n_past().
  Status Truncate(int32_t n_keep);

 private:
  friend class Model;
  explicit Context(std::unique_ptr<kv::KvCache> kv) : kv_(std::move(kv)) {}
  std::unique_ptr<kv::KvCache> kv_;
  int32_t n_past_ = 0;
};

// K/V of many sequences in one paged store (kv/ BlockPool + BlockTable): storage slots are
// block * block_tokens + offset; tables[seq_idx] lists a sequence's blocks in position order.
struct PagedKv {
  kv::KvCache* storage = nullptr;
  int32_t block_tokens = 0;
  std::vector<const std::vector<int32_t>*> tables;  // indexed by BatchRow::seq_idx
  // Optional, polled before every layer: true stops the forward, which returns Cancelled
  // (shutdown, or a request of the batch was cancelled). K/V of the batch's positions may then
  // be partly written; the caller treats them as not computed and recomputes them later.
  std::function<bool()> abort;
};

class Model {
 public:
  static StatusOr<std::unique_ptr<Model>> Load(std::unique_ptr<io::TensorSource> source,
                                               const LoadOptions& opts);
  // Opens a .gguf file or a Hugging Face folder, then loads it.
  static StatusOr<std::unique_ptr<Model>> Load(const std::string& path, const LoadOptions& opts);
  ~Model();

  const ModelConfig& config() const { return config_; }
  const io::TensorSource& source() const { return *source_; }
  const Weights& weights() const { return *weights_; }
  const LoadOptions& options() const { return opts_; }
  int NumThreads() const { return pool_ ? pool_->NumThreads() : 1; }
  std::string KernelIsa() const { return backend_->KernelIsa(); }
  // True when BatchRow::order changes the numbers (llama.cpp's arithmetic is on: a GGUF model
  // with an f16 cache, KILN_GGML_EXACT not 0); K/V computed with different row orders then
  // differ, and the prefix cache must tell them apart.
  bool UsesRowOrders() const { return backend_->UsesRowOrders(); }

  // A fresh context with opts.n_ctx positions (or n_ctx when given, > 0).
  StatusOr<std::unique_ptr<Context>> NewContext(int32_t n_ctx = 0) const;

  // Runs the batch: appends its K/V to ctx and writes logits [n_logit_rows, n_vocab] (rows with
  // want_logits, in batch order) into *logits (resized). Errors leave ctx unchanged:
  // InvalidArgument for token ids outside [0, n_vocab), seq_idx != 0, or positions that do
  // not continue ctx.n_past() one by one; ResourceExhausted when positions reach n_ctx.
  Status Forward(const Batch& batch, Context& ctx, std::vector<float>* logits);

  // Paged K/V storage for n_blocks blocks of block_tokens positions (all layers).
  StatusOr<std::unique_ptr<kv::KvCache>> NewPagedStorage(int32_t n_blocks,
                                                         int32_t block_tokens) const;
  // Bytes of K+V per cached token (all layers), for sizing the pool.
  size_t KvBytesPerToken() const;
  // Bytes one decode step at `position` reads: every matrix of a product whole (the output
  // head too: a tied head is the embedding table), one embedding row, the norm/bias vectors,
  // and the K/V of every attended position (a sliding layer's window only). The numerator
  // of the memory roofline (kiln bench).
  double DecodeBytesRead(int32_t position) const;
  // Ragged batch over many sequences: row r stores its K/V at position rows[r].pos of sequence
  // rows[r].seq_idx (through kv.tables) and attends to that sequence's positions <= pos, which
  // must be stored already or earlier in this batch. A row whose BatchRow::order is set has
  // numbers that do not depend on the other rows (batch invariance). Logits as in Forward.
  // InvalidArgument for bad tokens, seq_idx or positions outside the sequence's blocks;
  // Cancelled when kv.abort said so.
  Status ForwardPaged(const Batch& batch, const PagedKv& kv, std::vector<float>* logits);

 private:
  Model() = default;
  Status Init();
  // Rows [r0, r1) of a validated batch; logits of its logit rows go to `logits_out`.
  // Where one call's rows store and read K/V: slot per row, runs of rows of one sequence.
  struct KvTarget {
    kv::KvCache* storage = nullptr;
    const int32_t* slots = nullptr;  // [n rows]
    using Run = backend::AttentionSeq;  // rows [begin, end), block_ids (null: slot = position)
    std::vector<Run> runs;
    int32_t block_tokens = 0;
    const std::function<bool()>* abort = nullptr;  // PagedKv::abort, polled before each layer
  };
  void ForwardRows(const Batch& batch, size_t r0, size_t r1, Context& ctx, float* logits_out);
  // Both return false when target.abort stopped them (nothing after the aborted layer ran).
  bool ForwardRowsPaged(const Batch& batch, size_t r0, size_t r1, const PagedKv& kv,
                        float* logits_out);
  bool RunRows(const Batch& batch, size_t r0, size_t r1, const KvTarget& target,
               float* logits_out);
  // arena_.orders[t] of rows [r0, r0 + n): BatchRow::order, or the one-call rule per run.
  void ResolveOrders(const Batch& batch, size_t r0, const KvTarget& target);
  void Layer(int il, int64_t n, const KvTarget& target);
  const float* InvFreq(int il) const;

  std::unique_ptr<io::TensorSource> source_;
  ModelConfig config_;
  LoadOptions opts_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<backend::Backend> backend_;
  std::unique_ptr<Weights> weights_;
  std::vector<float> inv_freq_global_;  // [head_dim/2]
  std::vector<float> inv_freq_local_;   // [head_dim/2], sliding layers when config.local_rope
  // GGUF models with an f16 cache compute like llama.cpp (backend SetGgmlExact, RopeGgml).
  bool ggml_exact_ = false;
  kernels::ggml::RopeParams rope_ggml_global_, rope_ggml_local_;

  // Activation arena, sized at load for max_batch rows.
  struct Arena {
    std::vector<int32_t> ids, pos, slots;
    std::vector<backend::RowOrder> orders;
    std::vector<float> x, xn, q, k, v, attn, tmp, gate, up;
  } arena_;
};

}  // namespace kiln::model
