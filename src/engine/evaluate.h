// Evaluation over a loaded model: perplexity (llama.cpp's method), raw logits, speed bench.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "engine/loaded_model.h"

namespace kiln::engine {

struct PerplexityOutput {
  int32_t n_ctx = 0, n_chunks = 0;
  int64_t n_scored = 0;
  double perplexity = 0;
  std::vector<double> chunk_nll;
};

// Tokenizes text (BOS as the tokenizer says), splits it into chunks of n_ctx tokens (at most
// max_chunks, 0 = all), evaluates each from an empty context with its first token replaced by
// BOS when the model adds one, and averages the NLL of tokens in the second half of each chunk
// (positions n_ctx/2 .. n_ctx-1 predicted from the logits one position earlier).
StatusOr<PerplexityOutput> Perplexity(LoadedModel& lm, std::string_view text, int32_t n_ctx,
                                      int32_t max_chunks);

// Logits of every position of ids from an empty context: [ids.size() * n_vocab].
StatusOr<std::vector<float>> AllLogits(LoadedModel& lm, const std::vector<int32_t>& ids);

struct BenchOutput {
  double pp_tok_s = 0, tg_tok_s = 0;
};
// pp: one batch of n_prompt tokens from an empty context; tg: n_gen single-token steps after it.
// Token ids are drawn deterministically from the vocabulary (speed does not depend on them).
StatusOr<BenchOutput> Bench(LoadedModel& lm, int32_t n_prompt, int32_t n_gen);

}  // namespace kiln::engine
