// Implements include/kiln/engine.h on top of engine/ (loading, generation, evaluation) and
// tokenizer/ (tokenize, chat templates).
#include "kiln/engine.h"

#include <chrono>

#include "api/constraint.h"
#include "engine/evaluate.h"
#include "engine/generate.h"
#include "engine/inspect.h"
#include "engine/loaded_model.h"
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
  EngineImpl(std::unique_ptr<engine::LoadedModel> lm, ModelInfo info)
      : lm_(std::move(lm)), info_(std::move(info)), constraints_(lm_->tokenizer) {}

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
    if (!ctx_ || ctx_->n_ctx() < static_cast<int32_t>(result.prompt_ids.size()) + 1) {
      KILN_ASSIGN_OR_RETURN(ctx_, lm_->model->NewContext());
    }
    engine::GenerateParams params;
    params.sampling = {.temperature = req.temperature, .top_k = req.top_k, .top_p = req.top_p,
                       .min_p = req.min_p, .seed = req.seed};
    params.max_tokens = req.max_tokens;
    params.stop = req.stop;
    params.ignore_eos = req.ignore_eos;
    params.token_mask_factory = constraints_.MaskFactory(std::move(grammar));
    KILN_ASSIGN_OR_RETURN(engine::GenerateOutput out,
                          engine::Generate(*lm_, *ctx_, result.prompt_ids, params, on_text));
    result.output_ids = std::move(out.output_ids);
    result.text = std::move(out.text);
    result.finish_reason = std::move(out.finish_reason);
    result.n_forced = out.n_forced;
    result.prompt_ms = out.prompt_ms;
    result.gen_ms = out.gen_ms;
    result.load_ms = lm_->load_ms;
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
  std::unique_ptr<model::Context> ctx_;
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
  KILN_ASSIGN_OR_RETURN(engine::ModelSummary summary, engine::Inspect(options.model));
  model::LoadOptions mo;
  mo.n_threads = options.n_threads;
  mo.n_ctx = options.n_ctx;
  KILN_ASSIGN_OR_RETURN(auto lm, engine::LoadModel(summary.path, mo));
  return std::unique_ptr<Engine>(new EngineImpl(std::move(lm), ToInfo(summary)));
}

}  // namespace kiln
