#include "engine/generate.h"

#include <chrono>

#include "engine/grammar_mask.h"
#include "sampling/logits_processor.h"
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
  // Prompt rows in llama.cpp's order for a prompt (one batch), however Forward splits them;
  // a one-token prompt as a decoded token (the serving engine's rule, Scheduler).
  const backend::RowOrder order =
      ids.size() >= 2 ? backend::RowOrder::kBatched : backend::RowOrder::kSingle;
  for (size_t i = 0; i < ids.size(); ++i) {
    batch.Add(ids[i], pos0 + static_cast<int32_t>(i), 0, all_logits || i + 1 == ids.size(),
              order);
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
  std::unique_ptr<TokenMask> mask = params.token_mask_factory ? params.token_mask_factory() : nullptr;
  std::vector<uint32_t> allowed;
  auto t_first = t0;
  out.finish_reason = "length";
  // Appends one output token; true when generation must stop (stop string or on_text).
  auto emit = [&](int32_t id) {
    out.output_ids.push_back(id);
    std::string delta = detok.Push(id);
    out.text += delta;
    if (!delta.empty() && on_text && !on_text(delta)) return true;
    return detok.stopped();
  };
  const size_t max_tokens = static_cast<size_t>(params.max_tokens);
  std::vector<int32_t> feed;  // tokens of the next forward: the sampled one + forced ones
  model::Batch step;
  while (out.output_ids.size() < max_tokens) {
    if (mask && mask->Fill(&allowed)) {
      if (!AnyAllowed(allowed, tok.n_vocab())) {
        if (!mask->Error().empty()) return Internal("%s", mask->Error().c_str());
        return Internal("constraint: the grammar allows no token");
      }
      sampling::ApplyTokenBitmask(allowed, logits);
    }
    const int32_t id = sampler.Sample(logits);
    if (out.output_ids.empty()) {
      t_first = std::chrono::steady_clock::now();
      out.prompt_ms = MsSince(t0);
    }
    if (mask) {
      mask->Accept(id);
      if (!mask->Error().empty()) return Internal("%s", mask->Error().c_str());
    }
    const bool done = mask && mask->Done();  // a finished grammar ends generation
    if ((!params.ignore_eos || done) && tok.IsEndOfGeneration(id)) {
      out.output_ids.push_back(id);
      out.finish_reason = "stop";
      break;
    }
    if (emit(id) || done) {
      out.finish_reason = "stop";
      break;
    }
    if (out.output_ids.size() == max_tokens) break;
    if (ctx.n_past() >= ctx.n_ctx()) break;  // context full: "length"
    feed.assign(1, id);
    if (mask) {
      // Jump-forward: forced tokens join the next forward pass instead of one pass each.
      const int64_t room = std::min<int64_t>(max_tokens - out.output_ids.size(),
                                             ctx.n_ctx() - ctx.n_past() - 1);
      bool stop = false;
      for (int32_t f : mask->Forced(static_cast<int32_t>(room))) {
        feed.push_back(f);
        ++out.n_forced;
        if ((stop = emit(f))) break;
      }
      if (stop) {
        out.finish_reason = "stop";
        break;
      }
      if (out.output_ids.size() == max_tokens) break;
    }
    step.Clear();
    // Generated tokens (sampled or forced) in the order of a decoded token, as the engine.
    for (size_t i = 0; i < feed.size(); ++i) {
      step.Add(feed[i], ctx.n_past() + static_cast<int32_t>(i), 0, i + 1 == feed.size(),
               backend::RowOrder::kSingle);
    }
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
