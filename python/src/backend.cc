// StartBackend: the real ServingEngine, or LocalServingEngine, an adapter that runs requests one
// at a time (FIFO) on one worker thread through kiln::Engine::Generate.
#include "backend.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace kiln::python {
namespace {

constexpr int kDefaultContext = 4096;

// What one request's stream and the worker share.
struct StreamState {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<StreamEvent> events;
  bool finished = false;  // the done event has been queued
  std::atomic<bool> cancelled{false};

  void Push(StreamEvent event) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (finished) return;
      finished = event.done;
      events.push_back(std::move(event));
    }
    cv.notify_all();
  }
};

class LocalStream final : public RequestStream {
 public:
  LocalStream(std::shared_ptr<StreamState> state, std::string id)
      : state_(std::move(state)), id_(std::move(id)) {}

  std::optional<StreamEvent> Next(std::chrono::milliseconds timeout) override {
    std::unique_lock<std::mutex> lock(state_->mu);
    if (!state_->cv.wait_for(lock, timeout, [&] { return !state_->events.empty(); })) {
      return std::nullopt;
    }
    StreamEvent event = std::move(state_->events.front());
    state_->events.pop_front();
    return event;
  }
  void Cancel() override { state_->cancelled = true; }
  const std::string& id() const override { return id_; }

 private:
  std::shared_ptr<StreamState> state_;
  std::string id_;
};

struct Job {
  CompletionRequest request;
  std::shared_ptr<StreamState> state;
};

StreamEvent FinalEvent(std::string reason, std::string error, Usage usage) {
  StreamEvent e;
  e.finish_reason = std::move(reason);
  e.error = std::move(error);
  e.done = true;
  e.usage = usage;
  return e;
}

// Sampling fields Engine::Generate cannot honour fail closed, naming the field.
Status CheckSupported(const SamplingOptions& s) {
  auto unsupported = [](const char* field) {
    return Status(StatusCode::kUnimplemented,
                  std::string("'") + field + "' needs the serving engine (not built)");
  };
  if (s.n != 1) return unsupported("n");
  if (s.repetition_penalty != 1.0f) return unsupported("repetition_penalty");
  if (s.presence_penalty != 0.0f) return unsupported("presence_penalty");
  if (s.frequency_penalty != 0.0f) return unsupported("frequency_penalty");
  if (!s.logit_bias.empty()) return unsupported("logit_bias");
  if (!s.stop_token_ids.empty()) return unsupported("stop_token_ids");
  if (s.min_tokens != 0) return unsupported("min_tokens");
  if (s.logprobs || s.top_logprobs != 0) return unsupported("logprobs");
  return Status::Ok();
}

class LocalServingEngine final : public ServingEngine {
 public:
  LocalServingEngine(std::unique_ptr<Engine> engine, int n_ctx)
      : engine_(std::move(engine)), n_ctx_(n_ctx), worker_([this] { Run(); }) {}

  ~LocalServingEngine() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      for (Job& job : jobs_) job.state->cancelled = true;
      if (current_) current_->cancelled = true;
    }
    cv_.notify_all();
    worker_.join();
  }

  const ModelInfo& Info() const override { return engine_->Info(); }
  std::string DescribeConfig() const override {
    return "local adapter over kiln::Engine (one request at a time), context " +
           std::to_string(n_ctx_);
  }

  StatusOr<std::unique_ptr<RequestStream>> Submit(CompletionRequest request) override {
    if (request.prompt_ids.empty()) return InvalidArgument("the prompt is empty");
    if (static_cast<int>(request.prompt_ids.size()) >= n_ctx_) {
      return InvalidArgument("the prompt has %zu tokens; the context holds %d",
                             request.prompt_ids.size(), n_ctx_);
    }
    if (!request.grammar.empty()) {
      return Status(StatusCode::kUnimplemented, "'grammar' needs the serving engine (not built)");
    }
    KILN_RETURN_IF_ERROR(CheckSupported(request.sampling));
    auto state = std::make_shared<StreamState>();
    std::string id;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return Status(StatusCode::kUnavailable, "the engine is closed");
      id = "req-" + std::to_string(++n_submitted_);
      jobs_.push_back(Job{std::move(request), state});
    }
    cv_.notify_all();
    return std::unique_ptr<RequestStream>(new LocalStream(state, id));
  }

  EngineMetrics Metrics() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return metrics_;
  }

  StatusOr<std::vector<int32_t>> Tokenize(std::string_view text, bool add_special,
                                          bool parse_special) const override {
    return engine_->Tokenize(text, add_special, parse_special);
  }
  std::string Detokenize(const std::vector<int32_t>& ids) const override {
    return engine_->Detokenize(ids);
  }
  StatusOr<std::string> ApplyChatTemplate(const std::string& messages_json,
                                          const std::string& tools_json,
                                          bool add_generation_prompt) const override {
    return engine_->ApplyChatTemplate(messages_json, tools_json, add_generation_prompt);
  }

 private:
  void Run() {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopping
        job = std::move(jobs_.front());
        jobs_.pop_front();
        current_ = job.state;
        metrics_.queue_length = static_cast<int64_t>(jobs_.size());
        metrics_.running = 1;
      }
      RunJob(job);
      std::lock_guard<std::mutex> lock(mu_);
      current_.reset();
      metrics_.running = 0;
    }
  }

  void RunJob(const Job& job) {
    StreamState& state = *job.state;
    Usage usage;
    usage.prompt_tokens = static_cast<int32_t>(job.request.prompt_ids.size());
    if (state.cancelled) {
      state.Push(FinalEvent("abort", "", usage));
      return;
    }
    const SamplingOptions& s = job.request.sampling;
    GenerateRequest req;
    req.prompt_ids = job.request.prompt_ids;
    int room = n_ctx_ - usage.prompt_tokens;
    req.max_tokens = s.max_tokens < 0 ? room : std::min(s.max_tokens, room);
    req.temperature = s.temperature;
    req.top_k = s.top_k;
    req.top_p = s.top_p;
    req.min_p = s.min_p;
    req.seed = s.seed.value_or(static_cast<uint64_t>(
        std::chrono::steady_clock::now().time_since_epoch().count()));
    req.stop = s.stop;
    req.ignore_eos = s.ignore_eos;
    auto on_text = [&](std::string_view delta) {
      if (state.cancelled) return false;
      StreamEvent e;
      e.text = std::string(delta);
      state.Push(std::move(e));
      return true;
    };
    StatusOr<GenerateResult> result = engine_->Generate(req, on_text);
    if (!result.ok()) {
      state.Push(FinalEvent("error", result.status().message(), usage));
      return;
    }
    usage.completion_tokens = static_cast<int32_t>(result->output_ids.size());
    StreamEvent last = FinalEvent(state.cancelled ? "abort" : result->finish_reason, "", usage);
    last.token_ids = result->output_ids;
    {
      std::lock_guard<std::mutex> lock(mu_);
      metrics_.requests_finished++;
      metrics_.running = 0;
      metrics_.prompt_tokens_total += usage.prompt_tokens;
      metrics_.generated_tokens_total += usage.completion_tokens;
      if (result->gen_ms > 0 && usage.completion_tokens > 1) {
        metrics_.gen_tok_s = (usage.completion_tokens - 1) * 1000.0 / result->gen_ms;
      }
    }
    state.Push(std::move(last));
  }

  std::unique_ptr<Engine> engine_;
  int n_ctx_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  std::shared_ptr<StreamState> current_;
  bool stopping_ = false;
  int64_t n_submitted_ = 0;
  EngineMetrics metrics_;
  std::thread worker_;  // last: starts after the members it uses
};

}  // namespace

bool HaveServingEngine() {
#ifdef KILN_PY_HAVE_SERVING
  return true;
#else
  return false;
#endif
}

StatusOr<std::unique_ptr<ServingEngine>> StartBackend(const ServingOptions& options) {
#ifdef KILN_PY_HAVE_SERVING
  return ServingEngine::Start(options);
#else
  LoadOptions load;
  load.model = options.model;
  load.n_threads = options.n_threads;
  load.n_ctx = options.max_context;
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Load(load));
  int64_t train = engine->Info().n_ctx_train;
  int n_ctx = options.max_context > 0
                  ? options.max_context
                  : static_cast<int>(train > 0 ? std::min<int64_t>(train, kDefaultContext)
                                               : kDefaultContext);
  return std::unique_ptr<ServingEngine>(new LocalServingEngine(std::move(engine), n_ctx));
#endif
}

}  // namespace kiln::python
