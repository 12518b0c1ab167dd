// Implements include/kiln/engine.h on top of engine/ (loading, generation, evaluation) and
// tokenizer/ (tokenize, chat templates). Generation runs through the serving engine's
// Scheduler (one sequence, stepped on the caller's thread): one decode path for every front
// end, with one per-token pipeline (grammar mask, penalties, sampling, detokenizing, stops).
#include "kiln/engine.h"

#include <chrono>

#include "api/constraint.h"
#include "api/speculate.h"
#include "engine/evaluate.h"
#include "engine/inspect.h"
#include "engine/loaded_model.h"
#include "engine/scheduler.h"
#include "engine/step_model.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace kiln {
namespace {

ModelInfo ToInfo(const engine::ModelSummary& s) {
  ModelInfo info;
  info.path = s.path;
  info.format = s.format;
  info.architecture = s.architecture;
  info.name = s.name;
  info.n_params = s.n_params;
  info.n_bytes = s.n_bytes;
  info.n_vocab = s.n_vocab;
  info.n_ctx_train = s.n_ctx_train;
  info.n_embd = s.n_embd;
  info.n_layers = s.n_layers;
  info.n_heads = s.n_heads;
  info.n_heads_kv = s.n_heads_kv;
  info.head_dim = s.head_dim;
  info.n_ff = s.n_ff;
  info.dtype_counts = s.dtype_counts;
  info.chat_template = s.chat_template;
  info.bos_id = s.bos_id;
  info.eos_id = s.eos_id;
  info.eot_id = s.eot_id;
  for (const engine::TensorRow& t : s.tensors) info.tensors.push_back({t.name, t.dtype, t.shape, t.n_bytes});
  info.metadata = s.metadata;
  return info;
}

class EngineImpl final : public Engine {
 public:
  EngineImpl(std::unique_ptr<engine::LoadedModel> lm, ModelInfo info,
             engine::SpeculateConfig speculate, SpeculateOptions speculate_options)
      : lm_(std::move(lm)),
        info_(std::move(info)),
        constraints_(lm_->tokenizer),
        speculate_(speculate),
        speculate_options_(std::move(speculate_options)) {}

  const ModelInfo& Info() const override { return info_; }

  StatusOr<GenerateResult> Generate(const GenerateRequest& req,
                                    const std::function<bool(std::string_view)>& on_text) override {
    GenerateResult result;
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<const grammar::CompiledGrammar> grammar,
                          constraints_.Compile(req.constraint));
    if (!req.prompt_ids.empty()) {
      for (int32_t id : req.prompt_ids) {
        if (id < 0 || id >= info_.n_vocab) return InvalidArgument("prompt token id %d out of range", id);
      }
      result.prompt_ids = req.prompt_ids;
    } else {
      std::string prompt = req.prompt;
      bool add_special = req.add_special;
      if (req.chat) {
        KILN_ASSIGN_OR_RETURN(prompt, ApplyChatTemplate(UserMessage(req.prompt), "", true));
        add_special = false;  // the template writes BOS itself where the model wants it
      }
      KILN_ASSIGN_OR_RETURN(result.prompt_ids,
                            lm_->tokenizer->Encode(prompt, {.add_special = add_special,
                                                            .parse_special = req.parse_special || req.chat}));
      if (result.prompt_ids.empty()) return InvalidArgument("the prompt encodes to no tokens");
    }
    const int32_t n_ctx = lm_->model->options().n_ctx;
    if (static_cast<int64_t>(result.prompt_ids.size()) >= n_ctx) {
      return InvalidArgument("the prompt has %zu tokens; the context holds %d",
                             result.prompt_ids.size(), n_ctx);
    }
    if (req.max_tokens < 0) return InvalidArgument("max_tokens must be >= 0, got %d", req.max_tokens);
    engine::Request r;
    r.id = "generate";
    r.prompt = result.prompt_ids;
    engine::RequestOptions& o = r.options;
    o.sampling = {.temperature = req.temperature, .top_k = req.top_k, .top_p = req.top_p,
                  .min_p = req.min_p, .seed = req.seed};
    KILN_RETURN_IF_ERROR(o.sampling.Validate());
    o.max_tokens = req.max_tokens;
    o.stop = req.stop;
    o.ignore_eos = req.ignore_eos;
    o.token_mask_factory = constraints_.MaskFactory(std::move(grammar));
    r.stream = std::make_shared<engine::OutputStream>();
    result.load_ms = lm_->load_ms;
    result.finish_reason = "length";
    if (req.max_tokens == 0) return result;
    KILN_RETURN_IF_ERROR(Run(std::move(r), on_text, &result));
    return result;
  }

  StatusOr<std::vector<int32_t>> Tokenize(std::string_view text, bool add_special,
                                          bool parse_special) const override {
    return lm_->tokenizer->Encode(text, {.add_special = add_special, .parse_special = parse_special});
  }

  std::string Detokenize(const std::vector<int32_t>& ids) const override {
    return lm_->tokenizer->Decode(ids);
  }

  StatusOr<std::string> ApplyChatTemplate(const std::string& messages_json,
                                          const std::string& tools_json,
                                          bool add_generation_prompt) const override {
    return engine::RenderChat(*lm_->tokenizer, lm_->chat_template.get(), messages_json, tools_json,
                              add_generation_prompt);
  }

  StatusOr<PerplexityResult> Perplexity(std::string_view text, int32_t n_ctx,
                                        int32_t max_chunks) override {
    KILN_ASSIGN_OR_RETURN(engine::PerplexityOutput o, engine::Perplexity(*lm_, text, n_ctx, max_chunks));
    return PerplexityResult{o.n_ctx, o.n_chunks, o.n_scored, o.perplexity, o.chunk_nll};
  }

  StatusOr<std::vector<float>> Logits(const std::vector<int32_t>& ids) override {
    for (int32_t id : ids) {
      if (id < 0 || id >= info_.n_vocab) return InvalidArgument("token id %d out of range", id);
    }
    if (ids.empty()) return InvalidArgument("no token ids");
    return engine::AllLogits(*lm_, ids);
  }

  StatusOr<BenchResult> Bench(int32_t n_prompt, int32_t n_gen, int32_t n_reps) override {
    KILN_ASSIGN_OR_RETURN(engine::BenchOutput o, engine::Bench(*lm_, n_prompt, n_gen, n_reps));
    auto mean = [](const std::vector<double>& v) {
      double s = 0;
      for (double x : v) s += x;
      return v.empty() ? 0.0 : s / static_cast<double>(v.size());
    };
    BenchResult r;
    r.n_prompt = n_prompt;
    r.n_gen = n_gen;
    r.n_reps = n_reps;
    r.n_threads = engine::NumThreads(*lm_);
    r.pp_tok_s = o.pp.mean;
    r.tg_tok_s = o.tg.mean;
    r.pp_tok_s_std = o.pp.stddev;
    r.tg_tok_s_std = o.tg.stddev;
    r.pp_runs = o.pp.tok_s;
    r.tg_runs = o.tg.tok_s;
    r.pp_cpu_s = mean(o.pp.cpu_s);
    r.tg_cpu_s = mean(o.tg.cpu_s);
    r.pp_wall_s = mean(o.pp.wall_s);
    r.tg_wall_s = mean(o.tg.wall_s);
    r.load_ms = lm_->load_ms;
    r.isa = engine::KernelIsa(*lm_);
    r.read_gbs = o.read_gbs;
    r.tg_bytes_per_token = o.tg_bytes_per_token;
    r.tg_roofline = o.tg_roofline;
    return r;
  }

 private:
  static std::string UserMessage(const std::string& text) {
    std::string escaped;
    for (unsigned char c : text) {
      switch (c) {
        case '"': escaped += "\\\""; break;
        case '\\': escaped += "\\\\"; break;
        case '\n': escaped += "\\n"; break;
        case '\r': escaped += "\\r"; break;
        case '\t': escaped += "\\t"; break;
        default:
          if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", c);
            escaped += buf;
          } else {
            escaped += static_cast<char>(c);
          }
      }
    }
    return "[{\"role\":\"user\",\"content\":\"" + escaped + "\"}]";
  }

  std::unique_ptr<engine::LoadedModel> lm_;
  ModelInfo info_;
  api::ConstraintCompiler constraints_;  // grammars for this model's vocabulary, cached
  // Steps the request to its end on this thread, the scheduler made once (a pool of one full
  // context, no prefix cache: one-shot generation).
  Status Run(engine::Request r, const std::function<bool(std::string_view)>& on_text,
             GenerateResult* result) {
    if (!scheduler_) {
      const model::LoadOptions& mo = lm_->model->options();
      engine::SchedulerConfig c;
      c.max_sequences = 1;
      c.max_context = mo.n_ctx;
      c.n_blocks = (mo.n_ctx + c.block_tokens - 1) / c.block_tokens;
      c.prefill_chunk = mo.max_batch;
      c.prefix_cache = false;
      c.speculate = speculate_;
      KILN_ASSIGN_OR_RETURN(paged_, engine::PagedModel::Create(lm_->model.get(), c.n_blocks,
                                                               c.block_tokens));
      KILN_ASSIGN_OR_RETURN(draft_, api::LoadDraftModel(speculate_options_, *lm_->tokenizer, mo,
                                                        c.n_blocks, c.block_tokens));
      scheduler_ = std::make_unique<engine::Scheduler>(c, paged_.get(), lm_->tokenizer);
      if (draft_) draft_->AttachTo(*scheduler_);
    }
    using Clock = std::chrono::steady_clock;
    auto ms = [](Clock::time_point a, Clock::time_point b) {
      return std::chrono::duration<double, std::milli>(b - a).count();
    };
    std::shared_ptr<engine::OutputStream> stream = r.stream;
    const Clock::time_point t0 = Clock::now();
    Clock::time_point t_first = t0;
    bool caller_stopped = false;
    std::string error;
    scheduler_->Add(std::move(r));
    while (scheduler_->HasWork()) {
      scheduler_->Step();
      while (std::optional<engine::Event> ev = stream->Pop(std::chrono::milliseconds(0))) {
        if (!ev->token_ids.empty() && result->output_ids.empty()) {
          t_first = Clock::now();
          result->prompt_ms = ms(t0, t_first);
        }
        if (ev->done) {
          result->drafted_tokens = ev->usage.drafted_tokens;
          result->accepted_tokens = ev->usage.accepted_tokens;
        }
        if (caller_stopped) continue;  // the cancellation's own final event
        result->output_ids.insert(result->output_ids.end(), ev->token_ids.begin(),
                                  ev->token_ids.end());
        result->n_forced += ev->n_forced;
        result->text += ev->text;
        if (ev->finish_reason) {
          result->finish_reason = *ev->finish_reason;
          error = ev->error;
        }
        if (!ev->text.empty() && on_text && !on_text(ev->text)) {
          caller_stopped = true;  // ends at the next step
          stream->Cancel();
          result->finish_reason = "stop";
        }
      }
    }
    result->gen_ms = result->output_ids.empty() ? 0 : ms(t_first, Clock::now());
    if (result->finish_reason == "error") {
      return Internal("%s", error.empty() ? "generation failed" : error.c_str());
    }
    return Status::Ok();
  }

  engine::SpeculateConfig speculate_;
  SpeculateOptions speculate_options_;
  std::unique_ptr<api::DraftModel> draft_;
  std::unique_ptr<engine::PagedModel> paged_;
  std::unique_ptr<engine::Scheduler> scheduler_;  // uses paged_: destroyed first
};

class TokenizerHandleImpl final : public TokenizerHandle {
 public:
  explicit TokenizerHandleImpl(engine::LoadedTokenizer t) : t_(std::move(t)) {}
  StatusOr<std::vector<int32_t>> Encode(std::string_view text, bool add_special,
                                        bool parse_special) const override {
    return t_.tokenizer->Encode(text, {.add_special = add_special, .parse_special = parse_special});
  }
  std::string Decode(const std::vector<int32_t>& ids) const override { return t_.tokenizer->Decode(ids); }
  std::string Piece(int32_t id) const override { return std::string(t_.tokenizer->TokenText(id)); }
  int32_t VocabSize() const override { return t_.tokenizer->n_vocab(); }
  StatusOr<std::string> ApplyChatTemplate(const std::string& messages_json,
                                          const std::string& tools_json,
                                          bool add_generation_prompt) const override {
    return engine::RenderChat(*t_.tokenizer, t_.chat_template.get(), messages_json, tools_json,
                              add_generation_prompt);
  }

 private:
  engine::LoadedTokenizer t_;
};

}  // namespace

StatusOr<std::unique_ptr<TokenizerHandle>> TokenizerHandle::Load(const std::string& model_or_tokenizer) {
  KILN_ASSIGN_OR_RETURN(engine::LoadedTokenizer t, engine::LoadTokenizer(model_or_tokenizer));
  return std::unique_ptr<TokenizerHandle>(new TokenizerHandleImpl(std::move(t)));
}

StatusOr<ModelInfo> InspectModel(const std::string& model) {
  KILN_ASSIGN_OR_RETURN(engine::ModelSummary s, engine::Inspect(model));
  return ToInfo(s);
}

StatusOr<std::string> ResolveModel(const std::string& model) {
  return engine::ResolveReference(model);
}

StatusOr<std::unique_ptr<Engine>> Engine::Load(const LoadOptions& options) {
  if (options.n_threads < 0) return InvalidArgument("n_threads must be >= 0");
  if (options.n_ctx < 0) return InvalidArgument("n_ctx must be >= 0");
  KILN_ASSIGN_OR_RETURN(engine::SpeculateConfig speculate,
                        api::ToSpeculateConfig(options.speculate));
  KILN_ASSIGN_OR_RETURN(engine::ModelSummary summary, engine::Inspect(options.model));
  model::LoadOptions mo;
  mo.n_threads = options.n_threads;
  mo.n_ctx = options.n_ctx;
  KILN_ASSIGN_OR_RETURN(auto lm, engine::LoadModel(summary.path, mo));
  return std::unique_ptr<Engine>(
      new EngineImpl(std::move(lm), ToInfo(summary), speculate, options.speculate));
}

}  // namespace kiln
