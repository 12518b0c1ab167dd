#include "engine/generate.h"

#include <chrono>

#include "tokenizer/detokenizer.h"

namespace kiln::engine {
namespace {

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

Status Prefill(model::Model& m, model::Context& ctx, const std::vector<int32_t>& ids,
               bool all_logits, std::vector<float>* logits) {
  if (ids.empty()) return InvalidArgument("the prompt is empty");
  model::Batch batch;
  batch.rows.reserve(ids.size());
  const int32_t pos0 = ctx.n_past();
  for (size_t i = 0; i < ids.size(); ++i) {
    batch.Add(ids[i], pos0 + static_cast<int32_t>(i), 0, all_logits || i + 1 == ids.size());
  }
  return m.Forward(batch, ctx, logits);
}

StatusOr<GenerateOutput> Generate(LoadedModel& lm, model::Context& ctx,
                                  const std::vector<int32_t>& prompt_ids,
                                  const GenerateParams& params,
                                  const std::function<bool(std::string_view)>& on_text) {
  KILN_RETURN_IF_ERROR(params.sampling.Validate());
  if (params.max_tokens < 0) return InvalidArgument("max_tokens must be >= 0, got %d", params.max_tokens);
  if (static_cast<int64_t>(prompt_ids.size()) >= ctx.n_ctx()) {
    return InvalidArgument("the prompt has %zu tokens; the context holds %d", prompt_ids.size(),
                           ctx.n_ctx());
  }
  GenerateOutput out;
  const auto t0 = std::chrono::steady_clock::now();
  ctx.Clear();
  std::vector<float> logits;
  KILN_RETURN_IF_ERROR(Prefill(*lm.model, ctx, prompt_ids, /*all_logits=*/false, &logits));

  const tokenizer::Tokenizer& tok = *lm.tokenizer;
  sampling::Sampler sampler(params.sampling);
  tokenizer::Detokenizer detok(lm.tokenizer, params.stop);
  auto t_first = t0;
  out.finish_reason = "length";
  model::Batch step;
  for (int32_t n = 0; n < params.max_tokens; ++n) {
    const int32_t id = sampler.Sample(logits);
    if (n == 0) {
      t_first = std::chrono::steady_clock::now();
      out.prompt_ms = MsSince(t0);
    }
    out.output_ids.push_back(id);
    if (!params.ignore_eos && tok.IsEndOfGeneration(id)) {
      out.finish_reason = "stop";
      break;
    }
    std::string delta = detok.Push(id);
    out.text += delta;
    if (!delta.empty() && on_text && !on_text(delta)) {
      out.finish_reason = "stop";
      break;
    }
    if (detok.stopped()) {
      out.finish_reason = "stop";
      break;
    }
    if (n + 1 == params.max_tokens) break;
    if (ctx.n_past() >= ctx.n_ctx()) break;  // context full: "length"
    step.Clear();
    step.Add(id, ctx.n_past(), 0, true);
    KILN_RETURN_IF_ERROR(lm.model->Forward(step, ctx, &logits));
  }
  if (!detok.stopped()) {
    std::string tail = detok.Finish();
    out.text += tail;
    if (!tail.empty() && on_text) on_text(tail);
  }
  out.gen_ms = out.output_ids.empty() ? 0 : MsSince(t_first);
  return out;
}

}  // namespace kiln::engine
