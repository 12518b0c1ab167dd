#include "engine/evaluate.h"

#include <chrono>
#include <cmath>

#include "engine/generate.h"

namespace kiln::engine {
namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// -log softmax(logits)[target], in double.
double Nll(const float* logits, int64_t n_vocab, int32_t target) {
  double max_l = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) max_l = std::max<double>(max_l, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - max_l);
  return -(static_cast<double>(logits[target]) - max_l - std::log(sum));
}

}  // namespace

StatusOr<PerplexityOutput> Perplexity(LoadedModel& lm, std::string_view text, int32_t n_ctx,
                                      int32_t max_chunks) {
  if (n_ctx < 4) return InvalidArgument("perplexity context must be >= 4 tokens, got %d", n_ctx);
  const tokenizer::Tokenizer& tok = *lm.tokenizer;
  KILN_ASSIGN_OR_RETURN(std::vector<int32_t> ids,
                        tok.Encode(text, {.add_special = true, .parse_special = false}));
  int32_t n_chunks = static_cast<int32_t>(ids.size() / n_ctx);
  if (max_chunks > 0) n_chunks = std::min(n_chunks, max_chunks);
  if (n_chunks == 0) {
    return InvalidArgument("the text has %zu tokens, fewer than one chunk of %d", ids.size(), n_ctx);
  }
  KILN_ASSIGN_OR_RETURN(auto ctx, lm.model->NewContext(n_ctx));
  const int64_t n_vocab = lm.model->config().n_vocab;
  const bool add_bos = tok.add_bos() && tok.bos_id() >= 0;
  PerplexityOutput out;
  out.n_ctx = n_ctx;
  out.n_chunks = n_chunks;
  double total = 0;
  std::vector<float> logits;
  const int32_t first = n_ctx / 2;
  for (int32_t c = 0; c < n_chunks; ++c) {
    std::vector<int32_t> chunk(ids.begin() + static_cast<int64_t>(c) * n_ctx,
                               ids.begin() + static_cast<int64_t>(c + 1) * n_ctx);
    if (add_bos) chunk[0] = tok.bos_id();
    ctx->Clear();
    KILN_RETURN_IF_ERROR(Prefill(*lm.model, *ctx, chunk, /*all_logits=*/true, &logits));
    double chunk_sum = 0;
    int32_t n = 0;
    for (int32_t j = first; j < n_ctx - 1; ++j) {
      chunk_sum += Nll(logits.data() + static_cast<int64_t>(j) * n_vocab, n_vocab, chunk[j + 1]);
      ++n;
    }
    out.chunk_nll.push_back(chunk_sum / n);
    total += chunk_sum;
    out.n_scored += n;
  }
  out.perplexity = std::exp(total / static_cast<double>(out.n_scored));
  return out;
}

StatusOr<std::vector<float>> AllLogits(LoadedModel& lm, const std::vector<int32_t>& ids) {
  KILN_ASSIGN_OR_RETURN(auto ctx, lm.model->NewContext(static_cast<int32_t>(ids.size()) + 1));
  std::vector<float> logits;
  KILN_RETURN_IF_ERROR(Prefill(*lm.model, *ctx, ids, /*all_logits=*/true, &logits));
  return logits;
}

StatusOr<BenchOutput> Bench(LoadedModel& lm, int32_t n_prompt, int32_t n_gen) {
  if (n_prompt < 1) return InvalidArgument("bench needs at least one prompt token");
  KILN_ASSIGN_OR_RETURN(auto ctx, lm.model->NewContext(n_prompt + n_gen + 1));
  const int64_t n_vocab = lm.model->config().n_vocab;
  std::vector<int32_t> ids(n_prompt);
  for (int32_t i = 0; i < n_prompt; ++i) ids[i] = static_cast<int32_t>((i * 7919 + 13) % n_vocab);
  std::vector<float> logits;
  // Warm-up: one token, so page faults of the mmapped weights are not timed.
  KILN_RETURN_IF_ERROR(Prefill(*lm.model, *ctx, {ids[0]}, false, &logits));
  ctx->Clear();
  BenchOutput out;
  auto t0 = std::chrono::steady_clock::now();
  KILN_RETURN_IF_ERROR(Prefill(*lm.model, *ctx, ids, false, &logits));
  out.pp_tok_s = n_prompt / Seconds(t0);
  if (n_gen > 0) {
    model::Batch step;
    t0 = std::chrono::steady_clock::now();
    for (int32_t i = 0; i < n_gen; ++i) {
      step.Clear();
      step.Add(static_cast<int32_t>((i * 104729 + 7) % n_vocab), ctx->n_past(), 0, true);
      KILN_RETURN_IF_ERROR(lm.model->Forward(step, *ctx, &logits));
    }
    out.tg_tok_s = n_gen / Seconds(t0);
  }
  return out;
}

}  // namespace kiln::engine
