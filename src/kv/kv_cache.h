// KvCache: keys and values of ONE sequence for every layer, sized once (n_ctx positions).
// Slot = position. Attention reads it only through backend::KvView (base pointers + a stride
// per position), so the paged cache (BlockPool + BlockTable, a later issue) can replace this
// class without touching the attention op's contract.
//
// Layout per layer: K and V each [n_heads_kv, n_ctx, head_dim], f32 or f16, row-major: head-
// major, so the rows one kv head's attention reads are contiguous (a linear stream the hardware
// prefetcher follows; position-major rows were n_heads_kv * head_dim apart, and decode attention
// stalled on each).
// Not thread-safe; owned by one Context on the engine thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "base/aligned.h"
#include "base/status.h"
#include "tensor/dtype.h"

namespace kiln::kv {

struct KvCacheOptions {
  int n_layers = 0;
  int32_t n_ctx = 0;
  int n_heads_kv = 0;
  int head_dim = 0;
  DType dtype = DType::kF16;  // kF32 or kF16
};

class KvCache {
 public:
  // InvalidArgument for non-positive sizes or another dtype; ResourceExhausted if the
  // allocation fails.
  static StatusOr<std::unique_ptr<KvCache>> Create(const KvCacheOptions& opts);

  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  const KvCacheOptions& options() const { return opts_; }
  int32_t n_ctx() const { return opts_.n_ctx; }
  size_t SizeBytes() const { return 2 * static_cast<size_t>(opts_.n_layers) * layer_bytes_; }

  // Stores K and V of n_tokens tokens ([n_tokens, n_heads_kv * head_dim] f32 each) at
  // positions[t] of `layer`, converting to the cache dtype. Positions must be < n_ctx.
  void Store(int layer, const int32_t* positions, int64_t n_tokens, const float* k,
             const float* v);
  backend::KvView View(int layer) const;
  // Copies K and V of slots [src, src + n) to [dst, dst + n) in every layer (copy-on-write of a
  // paged block). The ranges must not overlap.
  void CopySlots(int32_t src, int32_t dst, int32_t n);

 private:
  explicit KvCache(const KvCacheOptions& opts);

  KvCacheOptions opts_;
  size_t row_bytes_ = 0;    // bytes of one head's row at one position (head_dim elements)
  size_t head_bytes_ = 0;   // bytes of one kv head's rows in a layer (n_ctx rows)
  size_t layer_bytes_ = 0;  // bytes of one layer's K (or V)
  AlignedBuffer k_;         // [n_layers][n_heads_kv][n_ctx][head_dim]
  AlignedBuffer v_;
};

}  // namespace kiln::kv
