#include "engine/step_model.h"

namespace kiln::engine {

StatusOr<std::unique_ptr<PagedModel>> PagedModel::Create(model::Model* model, int32_t n_blocks,
                                                         int32_t block_tokens) {
  std::unique_ptr<PagedModel> pm(new PagedModel());
  pm->model_ = model;
  pm->block_tokens_ = block_tokens;
  KILN_ASSIGN_OR_RETURN(pm->storage_, model->NewPagedStorage(n_blocks, block_tokens));
  return pm;
}

Status PagedModel::Forward(const model::Batch& batch,
                           const std::vector<const std::vector<int32_t>*>& tables,
                           std::vector<float>* logits) {
  model::PagedKv kv;
  kv.storage = storage_.get();
  kv.block_tokens = block_tokens_;
  kv.tables = tables;
  kv.abort = abort_check_;
  return model_->ForwardPaged(batch, kv, logits);
}

}  // namespace kiln::engine
