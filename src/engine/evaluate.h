// Evaluation over a loaded model: perplexity (llama.cpp's method), raw logits, speed bench.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/aligned.h"
#include "base/status.h"
#include "base/thread_pool.h"
#include "engine/loaded_model.h"

namespace kiln::engine {

struct PerplexityOutput {
  int32_t n_ctx = 0, n_chunks = 0;
  int64_t n_scored = 0;
  double perplexity = 0;
  std::vector<double> chunk_nll;
};

// Prefills ids into ctx (from ctx.n_past()) in chunks of the model's max batch; logits of the
// last row (or every row if all_logits) go to *logits. The rows are a prompt's: RowOrder
// kBatched (kSingle for one id), so the chunking does not change the numbers.
Status Prefill(model::Model& m, model::Context& ctx, const std::vector<int32_t>& ids,
               bool all_logits, std::vector<float>* logits);

// Tokenizes text (BOS as the tokenizer says), splits it into chunks of n_ctx tokens (at most
// max_chunks, 0 = all), evaluates each from an empty context with its first token replaced by
// BOS when the model adds one, and averages the NLL of tokens in the second half of each chunk
// (positions n_ctx/2 .. n_ctx-1 predicted from the logits one position earlier).
StatusOr<PerplexityOutput> Perplexity(LoadedModel& lm, std::string_view text, int32_t n_ctx,
                                      int32_t max_chunks);

// Logits of every position of ids from an empty context: [ids.size() * n_vocab].
StatusOr<std::vector<float>> AllLogits(LoadedModel& lm, const std::vector<int32_t>& ids);

// One measured phase over the repetitions: tokens/s of each run (wall time) and the process
// CPU seconds each run used (all threads), with their mean and sample standard deviation.
struct BenchPhase {
  std::vector<double> tok_s, cpu_s, wall_s;
  double mean = 0, stddev = 0;
};
struct BenchOutput {
  double pp_tok_s = 0, tg_tok_s = 0;  // means
  BenchPhase pp, tg;
  // The tg memory roofline: read bandwidth with the model's thread count (GB/s, the best of
  // ReadBandwidthProbe passes run right after each tg repetition, so the figure and the tg runs
  // share the machine's state), bytes one decode step reads at the mean tg position
  // (Model::DecodeBytesRead(n_prompt + n_gen / 2)), and tg_tok_s × bytes ÷ bandwidth (0 without tg).
  double read_gbs = 0, tg_bytes_per_token = 0, tg_roofline = 0;
};

// Read bandwidth of n_threads threads (a ThreadPool started once, so thread start-up is not
// timed) summing disjoint slices of a `bytes` buffer (huge pages, as the packed weights),
// written once first so every page is resident.
class ReadBandwidthProbe {
 public:
  ReadBandwidthProbe(int n_threads, size_t bytes = size_t{256} << 20);
  // GB/s, best of `passes`; 0 if a pass did not read every element.
  double Measure(int passes = 3);

 private:
  std::unique_ptr<ThreadPool> pool_;
  AlignedBuffer buf_;
};

// Per repetition: pp = one batch of n_prompt tokens from an empty context; tg = n_gen
// single-token steps after it (positions n_prompt…). Before the first repetition, an untimed
// warm-up runs one prefill of n_prompt tokens and one decode step (page faults of the mmapped
// weights, thread start-up, scratch growth). Token ids are drawn deterministically from the
// vocabulary (speed does not depend on them). n_reps >= 1.
StatusOr<BenchOutput> Bench(LoadedModel& lm, int32_t n_prompt, int32_t n_gen, int32_t n_reps = 1);

}  // namespace kiln::engine
