// The public SpeculateOptions (kiln/engine.h) → the scheduler's SpeculateConfig, and the draft
// model of draft-model speculation. Shared by the single-sequence Engine (kiln run) and the
// ServingEngine.
#pragma once

#include <memory>

#include "base/status.h"
#include "engine/loaded_model.h"
#include "engine/scheduler.h"
#include "engine/speculate.h"
#include "engine/step_model.h"
#include "kiln/engine.h"
#include "tokenizer/tokenizer.h"

namespace kiln::api {

// InvalidArgument for a draft_max outside [0, 64], mode draft without a draft model, or a
// draft model with mode off or lookup.
StatusOr<engine::SpeculateConfig> ToSpeculateConfig(const SpeculateOptions& options);

// OK when the draft's vocabulary is the target's, token for token; else InvalidArgument
// naming the first token that differs.
Status CheckSameVocabulary(const tokenizer::Tokenizer& target, const tokenizer::Tokenizer& draft);

// The draft model over its own paged pool of n_blocks x block_tokens slots.
struct DraftModel {
  std::unique_ptr<engine::LoadedModel> loaded;
  std::unique_ptr<engine::PagedModel> paged;
  int32_t n_blocks = 0;
  void AttachTo(engine::Scheduler& scheduler) { scheduler.SetDraftModel(paged.get(), n_blocks); }
};
// Null when options.draft_model is empty. load: the target's threads, context and batch.
StatusOr<std::unique_ptr<DraftModel>> LoadDraftModel(const SpeculateOptions& options,
                                                     const tokenizer::Tokenizer& target,
                                                     const model::LoadOptions& load,
                                                     int32_t n_blocks, int32_t block_tokens);

}  // namespace kiln::api
