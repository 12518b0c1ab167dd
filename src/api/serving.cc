// Implements include/kiln/serving.h: mode presets → SchedulerConfig, request validation, and
// the conversion between the public types and engine/'s plain data. The engine thread lives in
// engine::EngineLoop.
#include "kiln/serving.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "api/constraint.h"
#include "api/speculate.h"
#include "base/thread_pool.h"
#include "engine/engine_loop.h"
#include "engine/loaded_model.h"
#include "engine/step_model.h"

namespace kiln {
namespace {

constexpr int32_t kMaxChoices = 64;
constexpr int32_t kMaxTopLogprobs = 20;
constexpr float kMaxLogitBias = 100.0f;

int64_t MemAvailableBytes() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return int64_t{4} << 30;  // unknown: assume 4 GiB
}

const char* ModeName(EngineMode m) {
  switch (m) {
    case EngineMode::kLocal: return "local";
    case EngineMode::kInteractive: return "interactive";
    case EngineMode::kServer: return "server";
  }
  return "?";
}

struct Plan {
  engine::SchedulerConfig sched;
  int64_t kv_bytes = 0;
  size_t kv_bytes_per_token = 0;
};

// Mode presets (MLC-LLM style), then the caller's overrides, then fitted to memory.
StatusOr<Plan> MakePlan(const ServingOptions& o, int64_t n_ctx_train, size_t kv_bytes_per_token) {
  if (o.max_sequences < 0 || o.max_context < 0 || o.kv_memory_bytes < 0 || o.prefill_chunk < 0 ||
      o.n_threads < 0) {
    return InvalidArgument("serving options must be >= 0 (0 = from the mode preset)");
  }
  Plan p;
  engine::SchedulerConfig& c = p.sched;
  const int32_t ctx_cap = static_cast<int32_t>(std::max<int64_t>(n_ctx_train, 256));
  int64_t kv_tokens = 0;
  switch (o.mode) {
    case EngineMode::kInteractive:
      c.max_sequences = 1;
      c.max_context = std::min(ctx_cap, 8192);
      c.prefill_chunk = 512;
      break;
    case EngineMode::kLocal:
      c.max_sequences = 4;
      c.max_context = std::min(ctx_cap, 4096);
      c.prefill_chunk = 256;
      break;
    case EngineMode::kServer:
      c.max_sequences = 16;
      c.max_context = std::min(ctx_cap, 4096);
      c.prefill_chunk = 512;
      break;
  }
  if (o.max_sequences > 0) c.max_sequences = o.max_sequences;
  if (o.max_context > 0) c.max_context = std::min(o.max_context, ctx_cap);
  if (o.prefill_chunk > 0) c.prefill_chunk = o.prefill_chunk;
  KILN_ASSIGN_OR_RETURN(c.speculate, api::ToSpeculateConfig(o.speculate));
  if (o.max_context > 0 && o.max_context > ctx_cap) {
    return InvalidArgument("max_context %d exceeds the model's training context %d",
                           o.max_context, ctx_cap);
  }
  // Interactive: one full context. Local: half of every sequence's full context (short chats
  // rarely fill it). Server: every sequence's full context, capped by free memory.
  kv_tokens = o.mode == EngineMode::kLocal
                  ? std::max<int64_t>(c.max_context, int64_t{c.max_sequences} * c.max_context / 2)
                  : int64_t{c.max_sequences} * c.max_context;
  int64_t kv_bytes = kv_tokens * static_cast<int64_t>(kv_bytes_per_token);
  const int64_t mem_cap = MemAvailableBytes() * (o.mode == EngineMode::kServer ? 6 : 3) / 10;
  if (o.kv_memory_bytes > 0) {
    kv_bytes = o.kv_memory_bytes;
  } else {
    kv_bytes = std::min(kv_bytes, mem_cap);
  }
  const int64_t block_bytes = int64_t{c.block_tokens} * static_cast<int64_t>(kv_bytes_per_token);
  c.n_blocks = static_cast<int32_t>(std::min<int64_t>(kv_bytes / block_bytes, 1 << 24));
  if (c.n_blocks < 2) {
    return InvalidArgument("kv_memory_bytes %lld holds fewer than 2 blocks of %d tokens (%lld "
                           "bytes each)", static_cast<long long>(kv_bytes), c.block_tokens,
                           static_cast<long long>(block_bytes));
  }
  // A single sequence must always fit the pool (admission then always makes progress).
  c.max_context = std::min<int32_t>(c.max_context, c.n_blocks * c.block_tokens);
  p.kv_bytes = int64_t{c.n_blocks} * block_bytes;
  p.kv_bytes_per_token = kv_bytes_per_token;
  return p;
}

class RequestStreamImpl final : public RequestStream {
 public:
  RequestStreamImpl(std::string id, std::shared_ptr<engine::OutputStream> s,
                    std::shared_ptr<const tokenizer::Tokenizer> tok)
      : id_(std::move(id)), s_(std::move(s)), tok_(std::move(tok)) {}
  ~RequestStreamImpl() override { s_->Cancel(); }  // a dropped handle frees its blocks

  std::optional<StreamEvent> Next(std::chrono::milliseconds timeout) override {
    std::optional<engine::Event> e = s_->Pop(timeout);
    if (!e) return std::nullopt;
    StreamEvent out;
    out.choice = e->choice;
    out.text = std::move(e->text);
    out.token_ids = std::move(e->token_ids);
    for (const engine::LogprobEntry& le : e->logprobs) {
      LogprobEntry l;
      l.token = Convert(le.token);
      for (const engine::TokenLogprob& t : le.top) l.top.push_back(Convert(t));
      out.logprobs.push_back(std::move(l));
    }
    out.finish_reason = std::move(e->finish_reason);
    out.error = std::move(e->error);
    out.done = e->done;
    out.usage = {e->usage.prompt_tokens, e->usage.completion_tokens, e->usage.cached_tokens,
                 e->usage.drafted_tokens, e->usage.accepted_tokens};
    return out;
  }
  void Cancel() override { s_->Cancel(); }
  const std::string& id() const override { return id_; }

 private:
  TokenLogprob Convert(const engine::TokenLogprob& t) const {
    return {t.id, std::string(tok_->TokenBytes(t.id, /*skip_special=*/false)), t.logprob};
  }
  std::string id_;
  std::shared_ptr<engine::OutputStream> s_;
  std::shared_ptr<const tokenizer::Tokenizer> tok_;
};

Status ValidateSampling(const SamplingOptions& s, int32_t n_vocab) {
  sampling::SamplingParams sp{s.temperature, s.top_k, s.top_p, s.min_p, 0};
  KILN_RETURN_IF_ERROR(sp.Validate());
  KILN_RETURN_IF_ERROR(
      (sampling::PenaltyParams{s.repetition_penalty, s.presence_penalty, s.frequency_penalty})
          .Validate());
  for (const auto& [id, bias] : s.logit_bias) {
    if (id < 0 || id >= n_vocab) {
      return InvalidArgument("logit_bias: token id %d is outside the vocabulary [0, %d)", id,
                             n_vocab);
    }
    if (!(bias >= -kMaxLogitBias && bias <= kMaxLogitBias)) {
      return InvalidArgument("logit_bias: value %g for token %d is not in [-100, 100]", bias, id);
    }
  }
  if (s.n < 1 || s.n > kMaxChoices) {
    return InvalidArgument("n must be in [1, %d], got %d", kMaxChoices, s.n);
  }
  for (const std::string& stop : s.stop) {
    if (stop.empty()) return InvalidArgument("stop: empty stop string");
  }
  for (int32_t id : s.stop_token_ids) {
    if (id < 0 || id >= n_vocab) {
      return InvalidArgument("stop_token_ids: token id %d is outside the vocabulary [0, %d)", id,
                             n_vocab);
    }
  }
  if (s.max_tokens == 0 || s.max_tokens < -1) {
    return InvalidArgument("max_tokens must be >= 1 (or -1 for no limit), got %d", s.max_tokens);
  }
  if (s.min_tokens < 0) return InvalidArgument("min_tokens must be >= 0, got %d", s.min_tokens);
  if (s.max_tokens > 0 && s.min_tokens > s.max_tokens) {
    return InvalidArgument("min_tokens (%d) must not exceed max_tokens (%d)", s.min_tokens,
                           s.max_tokens);
  }
  if (s.top_logprobs < 0 || s.top_logprobs > kMaxTopLogprobs) {
    return InvalidArgument("top_logprobs must be in [0, %d], got %d", kMaxTopLogprobs,
                           s.top_logprobs);
  }
  if (s.top_logprobs > 0 && !s.logprobs) {
    return InvalidArgument("top_logprobs requires logprobs to be true");
  }
  return Status::Ok();
}

class ServingEngineImpl final : public ServingEngine {
 public:
  ServingEngineImpl(std::unique_ptr<engine::LoadedModel> lm,
                    std::unique_ptr<api::DraftModel> draft, ModelInfo info, Plan plan,
                    const ServingOptions& options)
      : draft_(std::move(draft)),
        lm_(std::move(lm)),
        info_(std::move(info)),
        plan_(plan),
        options_(options),
        constraints_(lm_->tokenizer) {}

  Status Init() {
    KILN_ASSIGN_OR_RETURN(std::unique_ptr<engine::PagedModel> pm,
                          engine::PagedModel::Create(lm_->model.get(), plan_.sched.n_blocks,
                                                     plan_.sched.block_tokens));
    auto sched = std::make_unique<engine::Scheduler>(plan_.sched, pm.get(), lm_->tokenizer);
    if (draft_) draft_->AttachTo(*sched);
    loop_ = std::make_unique<engine::EngineLoop>(std::move(pm), std::move(sched));
    return Status::Ok();
  }
  ~ServingEngineImpl() override { loop_.reset(); }  // joins the engine thread first

  const ModelInfo& Info() const override { return info_; }

  std::string DescribeConfig() const override {
    const engine::SchedulerConfig& c = plan_.sched;
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "mode %s: max_sequences %d, max_context %d, prefill_chunk %d, kv %.1f MiB "
                  "(%d blocks x %d tokens, %zu B/token, %lld tokens), threads %d, kernels %s, "
                  "prefix cache on, speculate %s (draft max %d)",
                  ModeName(options_.mode), c.max_sequences, c.max_context, c.prefill_chunk,
                  plan_.kv_bytes / 1048576.0, c.n_blocks, c.block_tokens,
                  plan_.kv_bytes_per_token,
                  static_cast<long long>(int64_t{c.n_blocks} * c.block_tokens),
                  engine::NumThreads(*lm_), engine::KernelIsa(*lm_).c_str(),
                  options_.speculate.draft_model.empty()
                      ? SpeculateModeName(options_.speculate.mode)
                      : "with a draft model",
                  c.speculate.enabled ? c.speculate.draft_max : 0);
    return buf;
  }

  StatusOr<std::unique_ptr<RequestStream>> Submit(CompletionRequest request) override {
    const int32_t n_vocab = static_cast<int32_t>(info_.n_vocab);
    if (request.prompt_ids.empty()) return InvalidArgument("prompt: no tokens");
    for (int32_t id : request.prompt_ids) {
      if (id < 0 || id >= n_vocab) {
        return InvalidArgument("prompt: token id %d is outside the vocabulary [0, %d)", id,
                               n_vocab);
      }
    }
    const int32_t max_ctx = plan_.sched.max_context;
    if (static_cast<int64_t>(request.prompt_ids.size()) >= max_ctx) {
      return InvalidArgument("prompt: %zu tokens do not fit the context of %d tokens (the "
                             "prompt must be shorter than max_context)",
                             request.prompt_ids.size(), max_ctx);
    }
    const SamplingOptions& s = request.sampling;
    KILN_RETURN_IF_ERROR(ValidateSampling(s, n_vocab));
    KILN_ASSIGN_OR_RETURN(std::shared_ptr<const grammar::CompiledGrammar> grammar,
                          constraints_.Compile(request.constraint));

    engine::Request r;
    r.id = "req-" + std::to_string(next_id_.fetch_add(1));
    r.prompt = std::move(request.prompt_ids);
    r.priority = request.priority;
    engine::RequestOptions& o = r.options;
    o.sampling = {s.temperature, s.top_k, s.top_p, s.min_p, s.seed ? *s.seed : RandomSeed()};
    o.penalties = {s.repetition_penalty, s.presence_penalty, s.frequency_penalty};
    o.logit_bias = s.logit_bias;
    o.n = s.n;
    o.stop = s.stop;
    o.stop_token_ids = s.stop_token_ids;
    o.max_tokens = s.max_tokens;
    o.min_tokens = s.min_tokens;
    o.ignore_eos = s.ignore_eos;
    o.logprobs = s.logprobs;
    o.top_logprobs = s.top_logprobs;
    o.token_mask_factory = constraints_.MaskFactory(std::move(grammar));
    o.speculate = request.speculate;
    for (int32_t id : request.prediction_ids) {
      if (id < 0 || id >= n_vocab) return InvalidArgument("prediction: token id %d out of range", id);
    }
    o.prediction = std::move(request.prediction_ids);
    r.stream = std::make_shared<engine::OutputStream>();
    auto handle = std::make_unique<RequestStreamImpl>(r.id, r.stream, lm_->tokenizer);
    loop_->Submit(std::move(r));
    return std::unique_ptr<RequestStream>(std::move(handle));
  }

  Status CheckConstraint(const Constraint& c) const override {
    return constraints_.Compile(c).status();
  }

  int32_t MaxContext() const override { return plan_.sched.max_context; }

  EngineMetrics Metrics() const override {
    const engine::EngineLoop::Snapshot snap = loop_->Stats();
    const engine::SchedulerStats& s = snap.stats;
    EngineMetrics m;
    m.queue_length = s.waiting + snap.queued;
    m.running = s.running;
    m.kv_blocks_total = s.kv_blocks_total;
    m.kv_blocks_used = s.kv_blocks_used;
    m.kv_block_tokens = s.kv_block_tokens;
    m.kv_blocks_cached = s.kv_blocks_cached;
    m.kv_slots_allocated = s.kv_slots_allocated;
    m.kv_slots_unfilled = s.kv_slots_unfilled;
    m.kv_slot_steps_allocated = s.kv_slot_steps_allocated;
    m.kv_slot_steps_unfilled = s.kv_slot_steps_unfilled;
    m.prefix_cache_queries = s.prefix_cache_queries;
    m.prefix_cache_hit_tokens = s.prefix_cache_hit_tokens;
    m.prefix_cache_query_tokens = s.prefix_cache_query_tokens;
    m.requests_finished = s.requests_finished;
    m.prompt_tokens_total = s.prompt_tokens_total;
    m.generated_tokens_total = s.generated_tokens_total;
    m.preemptions = s.preemptions;
    m.spec_drafted_tokens = s.spec_drafted_tokens;
    m.spec_accepted_tokens = s.spec_accepted_tokens;
    m.gen_tok_s = snap.gen_tok_s;
    m.ttft_ms_buckets = s.ttft_ms.bounds;
    m.ttft_ms_counts = s.ttft_ms.counts;
    m.itl_ms_buckets = s.itl_ms.bounds;
    m.itl_ms_counts = s.itl_ms.counts;
    m.ttft_ms_sum = s.ttft_ms.sum;
    m.itl_ms_sum = s.itl_ms.sum;
    return m;
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
    return engine::RenderChat(*lm_->tokenizer, lm_->chat_template.get(), messages_json,
                              tools_json, add_generation_prompt);
  }

 private:
  uint64_t RandomSeed() {
    std::lock_guard<std::mutex> lock(seed_mu_);
    return (static_cast<uint64_t>(rd_()) << 32) ^ rd_();
  }

  std::unique_ptr<api::DraftModel> draft_;  // used by loop_'s scheduler: outlives it
  std::unique_ptr<engine::LoadedModel> lm_;
  ModelInfo info_;
  Plan plan_;
  ServingOptions options_;
  api::ConstraintCompiler constraints_;  // grammars for this model's vocabulary, cached
  std::unique_ptr<engine::EngineLoop> loop_;
  std::atomic<uint64_t> next_id_{1};
  std::mutex seed_mu_;
  std::random_device rd_;
};

}  // namespace

StatusOr<std::unique_ptr<ServingEngine>> ServingEngine::Start(const ServingOptions& options) {
  KILN_ASSIGN_OR_RETURN(ModelInfo info, InspectModel(options.model));
  // Size the plan from the model's shape before loading (KV bytes per token need the config).
  const size_t kv_bytes_per_token = 2 * 2 * static_cast<size_t>(info.n_layers) *
                                    static_cast<size_t>(info.n_heads_kv) * info.head_dim;
  KILN_ASSIGN_OR_RETURN(Plan plan, MakePlan(options, info.n_ctx_train, kv_bytes_per_token));
  model::LoadOptions mo;
  mo.n_threads = options.n_threads;
  mo.n_ctx = plan.sched.max_context;
  // A step's rows: a prefill chunk, a decode row per sequence, and drafted rows within
  // speculate.step_rows.
  mo.max_batch = plan.sched.prefill_chunk + plan.sched.max_sequences +
                 (plan.sched.speculate.enabled ? plan.sched.speculate.step_rows : 0);
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<engine::LoadedModel> lm,
                        engine::LoadModel(info.path, mo));
  if (lm->model->KvBytesPerToken() != kv_bytes_per_token) {
    return Internal("KV bytes per token %zu, planned %zu", lm->model->KvBytesPerToken(),
                    kv_bytes_per_token);
  }
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<api::DraftModel> draft,
                        api::LoadDraftModel(options.speculate, *lm->tokenizer, mo,
                                            plan.sched.n_blocks, plan.sched.block_tokens));
  auto impl = std::make_unique<ServingEngineImpl>(std::move(lm), std::move(draft),
                                                  std::move(info), plan, options);
  KILN_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<ServingEngine>(std::move(impl));
}

}  // namespace kiln
