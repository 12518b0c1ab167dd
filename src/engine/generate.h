// The generation loop for one sequence: prefill the prompt, then sample, detokenize and stop
// (EOS/EOT, stop strings, length). The serving engine of issue #5 replaces the loop with a
// scheduler step over many sequences; this function keeps the same per-sequence semantics.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "engine/loaded_model.h"
#include "engine/request.h"
#include "sampling/sampler.h"

namespace kiln::engine {

struct GenerateParams {
  sampling::SamplingParams sampling;
  int32_t max_tokens = 128;
  std::vector<std::string> stop;
  bool ignore_eos = false;
  // Null: unconstrained. Else one TokenMask for the generation (#7): applied before sampling,
  // EOS/EOT allowed only where it allows them, "stop" when it is Done, and its Forced tokens
  // (jump-forward) are appended without sampling and computed in one forward pass.
  std::function<std::unique_ptr<TokenMask>()> token_mask_factory;
};

struct GenerateOutput {
  std::vector<int32_t> output_ids;
  std::string text;
  std::string finish_reason;  // "stop" | "length"
  int32_t n_forced = 0;       // output tokens appended by jump-forward (not sampled)
  double prompt_ms = 0;
  double gen_ms = 0;
};

// Runs prompt_ids from an empty context. on_text (may be empty) receives UTF-8-safe deltas;
// returning false stops generation (finish_reason "stop").
StatusOr<GenerateOutput> Generate(LoadedModel& lm, model::Context& ctx,
                                  const std::vector<int32_t>& prompt_ids,
                                  const GenerateParams& params,
                                  const std::function<bool(std::string_view)>& on_text);

// Prefills ids into ctx (from ctx.n_past()) in chunks of the model's max batch; logits of the
// last row (or every row if all_logits) go to *logits. The rows are a prompt's: RowOrder
// kBatched (kSingle for one id), so the chunking does not change the numbers.
Status Prefill(model::Model& m, model::Context& ctx, const std::vector<int32_t>& ids,
               bool all_logits, std::vector<float>* logits);

}  // namespace kiln::engine
