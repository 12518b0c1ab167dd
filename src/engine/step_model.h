// StepModel: what the scheduler needs from a model — one ragged forward over many sequences
// through their block tables, and a block copy for copy-on-write. PagedModel runs the real
// model; scheduler tests use a fake (no weights). Engine-thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "base/status.h"
#include "kv/kv_cache.h"
#include "model/model.h"

namespace kiln::engine {

class StepModel {
 public:
  virtual ~StepModel() = default;
  virtual int32_t n_vocab() const = 0;
  // rows[r].seq_idx indexes tables; logits [n_logit_rows, n_vocab].
  virtual Status Forward(const model::Batch& batch,
                         const std::vector<const std::vector<int32_t>*>& tables,
                         std::vector<float>* logits) = 0;
  // Copies every slot of block src to block dst (all layers).
  virtual void CopyBlock(int32_t src, int32_t dst) = 0;
  // True when a row's numbers depend on BatchRow::order (Model::UsesRowOrders): the scheduler
  // then keys prefix-cache blocks by their rows' orders. Fakes: false.
  virtual bool UsesRowOrders() const { return false; }
  // Polled during Forward (between layers): true makes Forward stop early and return
  // Cancelled, so a long prefill never delays shutdown or a cancellation by a whole step. Null:
  // never. A model that cannot stop early may ignore it.
  void SetAbortCheck(std::function<bool()> check) { abort_check_ = std::move(check); }

 protected:
  std::function<bool()> abort_check_;
};

// The real model over a paged KV store of n_blocks x block_tokens slots.
class PagedModel final : public StepModel {
 public:
  static StatusOr<std::unique_ptr<PagedModel>> Create(model::Model* model, int32_t n_blocks,
                                                      int32_t block_tokens);
  int32_t n_vocab() const override { return static_cast<int32_t>(model_->config().n_vocab); }
  Status Forward(const model::Batch& batch, const std::vector<const std::vector<int32_t>*>& tables,
                 std::vector<float>* logits) override;
  void CopyBlock(int32_t src, int32_t dst) override {
    storage_->CopySlots(src * block_tokens_, dst * block_tokens_, block_tokens_);
  }
  bool UsesRowOrders() const override { return model_->UsesRowOrders(); }

 private:
  model::Model* model_ = nullptr;
  std::unique_ptr<kv::KvCache> storage_;
  int32_t block_tokens_ = 0;
};

}  // namespace kiln::engine
