// kiln._core: the nanobind module the `kiln` Python package wraps, over kiln::ServingEngine.
// Thin on purpose: request parsing and validation are the api layer's (include/kiln/openai.h,
// the same code as the server's), tool-call parsing is include/kiln/tools.h, and the OpenAI
// object shapes live in Python (kiln/_types.py); this file moves requests in and stream events
// out, releasing the GIL whenever the engine may block.
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include <chrono>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "kiln/openai.h"
#include "kiln/serving.h"
#include "kiln/tools.h"

namespace nb = nanobind;
using namespace nb::literals;

namespace kiln::python {
namespace {

// A non-OK kiln::Status crossing into Python: raised as kiln._core.StatusError(code, message).
class StatusException : public std::runtime_error {
 public:
  explicit StatusException(const Status& s)
      : std::runtime_error(s.message()), code_(StatusCodeName(s.code())) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

// An OpenAI request error: raised as kiln._core.RequestError(http_status, message, type,
// param, code); kiln/_errors.py maps it to the exception class.
class RequestException : public std::runtime_error {
 public:
  explicit RequestException(openai::RequestError e)
      : std::runtime_error(e.message), error_(std::move(e)) {}
  const openai::RequestError& error() const { return error_; }

 private:
  openai::RequestError error_;
};

// A parsed, validated request (kiln.Engine passes it back to submit_request).
struct PyRequest {
  openai::Request request;
};

PyRequest ParseRequest(const std::string& body, bool chat, int64_t n_vocab) {
  PyRequest out;
  openai::RequestLimits limits;
  limits.n_vocab = n_vocab;
  auto endpoint = chat ? openai::Endpoint::kChat : openai::Endpoint::kCompletion;
  std::optional<openai::RequestError> err;
  {
    nb::gil_scoped_release release;
    err = openai::ParseRequest(body, endpoint, limits, &out.request);
  }
  if (err) throw RequestException(std::move(*err));
  return out;
}

template <typename T>
T ValueOrThrow(StatusOr<T> v) {
  if (!v.ok()) throw StatusException(v.status());
  return std::move(v).value();
}

// One request's stream. Close() of the engine detaches it (Cancel + drop) under mu_, so a
// Python object outliving the engine never touches freed engine state.
class PyStream {
 public:
  explicit PyStream(std::unique_ptr<RequestStream> stream)
      : stream_(std::move(stream)), id_(stream_->id()) {}
  // Dropping an unfinished stream (a `break` out of the iterator) cancels its request.
  ~PyStream() {
    if (stream_ && !ended_) stream_->Cancel();
  }

  // Blocks up to timeout_ms without the GIL. nullopt on timeout; an "abort" done event when the
  // engine was closed underneath the stream.
  std::optional<StreamEvent> Next(int timeout_ms) {
    nb::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    if (!stream_) {
      if (ended_) return std::nullopt;
      ended_ = true;
      StreamEvent e;
      e.finish_reason = "abort";
      e.done = true;
      return e;
    }
    std::optional<StreamEvent> e = stream_->Next(std::chrono::milliseconds(timeout_ms));
    if (e && e->done) ended_ = true;
    return e;
  }

  void Cancel() {
    nb::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    if (stream_) stream_->Cancel();
  }

  void Detach() {
    std::lock_guard<std::mutex> lock(mu_);
    if (stream_) stream_->Cancel();
    stream_.reset();
  }

  const std::string& id() const { return id_; }

 private:
  std::mutex mu_;
  std::unique_ptr<RequestStream> stream_;
  std::string id_;
  bool ended_ = false;
};

EngineMode ParseMode(const std::string& mode) {
  if (mode == "local") return EngineMode::kLocal;
  if (mode == "interactive") return EngineMode::kInteractive;
  if (mode == "server") return EngineMode::kServer;
  throw StatusException(
      Status(StatusCode::kInvalidArgument,
             "unknown mode '" + mode + "' (expected local, interactive or server)"));
}

class PyEngine {
 public:
  explicit PyEngine(const ServingOptions& options) {
    nb::gil_scoped_release release;
    engine_ = ValueOrThrow(ServingEngine::Start(options));
  }
  ~PyEngine() { Close(); }

  // Every method drops the GIL before taking mu_: a thread holding mu_ never waits for the GIL.
  void Close() {
    nb::gil_scoped_release release;
    std::vector<std::shared_ptr<PyStream>> streams;
    std::unique_ptr<ServingEngine> engine;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& w : streams_) {
        if (auto s = w.lock()) streams.push_back(std::move(s));
      }
      streams_.clear();
      engine = std::move(engine_);
    }
    for (auto& s : streams) s->Detach();
    engine.reset();  // joins the engine's threads
  }

  bool closed() {
    nb::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    return !engine_;
  }

  std::shared_ptr<PyStream> Submit(std::vector<int32_t> prompt_ids,
                                   const SamplingOptions& sampling, int32_t priority) {
    CompletionRequest request;
    request.prompt_ids = std::move(prompt_ids);
    request.sampling = sampling;
    request.priority = priority;
    nb::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    auto stream = std::make_shared<PyStream>(ValueOrThrow(Get().Submit(std::move(request))));
    std::erase_if(streams_, [](const std::weak_ptr<PyStream>& w) { return w.expired(); });
    streams_.push_back(stream);
    return stream;
  }

  // The server's path: template (+ tools), tokens, constraint check, then Submit.
  std::shared_ptr<PyStream> SubmitRequest(const PyRequest& parsed) {
    nb::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    CompletionRequest request;
    if (auto err = openai::BuildCompletionRequest(Get(), parsed.request, &request)) {
      throw RequestException(std::move(*err));
    }
    auto submitted = Get().Submit(std::move(request));
    if (!submitted.ok()) throw RequestException(openai::ErrorFromStatus(submitted.status()));
    auto stream = std::make_shared<PyStream>(std::move(*submitted));
    std::erase_if(streams_, [](const std::weak_ptr<PyStream>& w) { return w.expired(); });
    streams_.push_back(stream);
    return stream;
  }

  std::vector<int32_t> Tokenize(const std::string& text, bool add_special, bool parse_special) {
    nb::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    return ValueOrThrow(Get().Tokenize(text, add_special, parse_special));
  }

  std::string Detokenize(const std::vector<int32_t>& ids) {
    nb::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    ServingEngine& engine = Get();
    for (int32_t id : ids) {
      if (id < 0 || id >= engine.Info().n_vocab) {
        throw StatusException(Status(StatusCode::kInvalidArgument,
                                     "token id " + std::to_string(id) + " out of range"));
      }
    }
    return engine.Detokenize(ids);
  }

  std::string ApplyChatTemplate(const std::string& messages_json, const std::string& tools_json,
                                bool add_generation_prompt) {
    nb::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    return ValueOrThrow(Get().ApplyChatTemplate(messages_json, tools_json, add_generation_prompt));
  }

  EngineMetrics Metrics() {
    nb::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    return Get().Metrics();
  }

  nb::dict Info() {
    ModelInfo i;
    {
      nb::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mu_);
      i = Get().Info();
    }
    nb::dict d;
    d["path"] = i.path;
    d["format"] = i.format;
    d["architecture"] = i.architecture;
    d["name"] = i.name;
    d["n_params"] = i.n_params;
    d["n_bytes"] = i.n_bytes;
    d["n_vocab"] = i.n_vocab;
    d["n_ctx_train"] = i.n_ctx_train;
    d["chat_template"] = i.chat_template;
    d["bos_id"] = i.bos_id;
    d["eos_id"] = i.eos_id;
    d["eot_id"] = i.eot_id;
    return d;
  }

  std::string DescribeConfig() {
    nb::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mu_);
    return Get().DescribeConfig();
  }

 private:
  ServingEngine& Get() {
    if (!engine_) {
      throw StatusException(Status(StatusCode::kFailedPrecondition, "the engine is closed"));
    }
    return *engine_;
  }

  std::mutex mu_;
  std::unique_ptr<ServingEngine> engine_;
  std::vector<std::weak_ptr<PyStream>> streams_;
};

void BindTypes(nb::module_& m) {
  nb::class_<SamplingOptions>(m, "SamplingOptions")
      .def(nb::init<>())
      .def_rw("temperature", &SamplingOptions::temperature)
      .def_rw("top_p", &SamplingOptions::top_p)
      .def_rw("top_k", &SamplingOptions::top_k)
      .def_rw("min_p", &SamplingOptions::min_p)
      .def_rw("repetition_penalty", &SamplingOptions::repetition_penalty)
      .def_rw("presence_penalty", &SamplingOptions::presence_penalty)
      .def_rw("frequency_penalty", &SamplingOptions::frequency_penalty)
      .def_rw("logit_bias", &SamplingOptions::logit_bias)
      .def_rw("seed", &SamplingOptions::seed)
      .def_rw("n", &SamplingOptions::n)
      .def_rw("stop", &SamplingOptions::stop)
      .def_rw("stop_token_ids", &SamplingOptions::stop_token_ids)
      .def_rw("max_tokens", &SamplingOptions::max_tokens)
      .def_rw("min_tokens", &SamplingOptions::min_tokens)
      .def_rw("ignore_eos", &SamplingOptions::ignore_eos)
      .def_rw("logprobs", &SamplingOptions::logprobs)
      .def_rw("top_logprobs", &SamplingOptions::top_logprobs);

  nb::class_<TokenLogprob>(m, "TokenLogprob")
      .def_ro("id", &TokenLogprob::id)
      .def_prop_ro("bytes", [](const TokenLogprob& t) { return nb::bytes(t.text.data(), t.text.size()); })
      .def_ro("logprob", &TokenLogprob::logprob);
  nb::class_<LogprobEntry>(m, "LogprobEntry")
      .def_ro("token", &LogprobEntry::token)
      .def_ro("top", &LogprobEntry::top);
  nb::class_<Usage>(m, "Usage")
      .def_ro("prompt_tokens", &Usage::prompt_tokens)
      .def_ro("completion_tokens", &Usage::completion_tokens)
      .def_ro("cached_tokens", &Usage::cached_tokens)
      .def_ro("drafted_tokens", &Usage::drafted_tokens)
      .def_ro("accepted_tokens", &Usage::accepted_tokens);
  nb::class_<StreamEvent>(m, "StreamEvent")
      .def_ro("choice", &StreamEvent::choice)
      // Bytes: a delta is UTF-8-safe by contract, but decoding stays in Python (errors="replace").
      .def_prop_ro("text", [](const StreamEvent& e) { return nb::bytes(e.text.data(), e.text.size()); })
      .def_ro("token_ids", &StreamEvent::token_ids)
      .def_ro("logprobs", &StreamEvent::logprobs)
      .def_ro("finish_reason", &StreamEvent::finish_reason)
      .def_ro("error", &StreamEvent::error)
      .def_ro("done", &StreamEvent::done)
      .def_ro("usage", &StreamEvent::usage);

  nb::class_<EngineMetrics>(m, "EngineMetrics")
      .def_ro("queue_length", &EngineMetrics::queue_length)
      .def_ro("running", &EngineMetrics::running)
      .def_ro("kv_blocks_total", &EngineMetrics::kv_blocks_total)
      .def_ro("kv_blocks_used", &EngineMetrics::kv_blocks_used)
      .def_ro("kv_block_tokens", &EngineMetrics::kv_block_tokens)
      .def_ro("kv_blocks_cached", &EngineMetrics::kv_blocks_cached)
      .def_ro("kv_slots_allocated", &EngineMetrics::kv_slots_allocated)
      .def_ro("kv_slots_unfilled", &EngineMetrics::kv_slots_unfilled)
      .def_ro("prefix_cache_queries", &EngineMetrics::prefix_cache_queries)
      .def_ro("prefix_cache_hit_tokens", &EngineMetrics::prefix_cache_hit_tokens)
      .def_ro("prefix_cache_query_tokens", &EngineMetrics::prefix_cache_query_tokens)
      .def_ro("requests_finished", &EngineMetrics::requests_finished)
      .def_ro("prompt_tokens_total", &EngineMetrics::prompt_tokens_total)
      .def_ro("generated_tokens_total", &EngineMetrics::generated_tokens_total)
      .def_ro("preemptions", &EngineMetrics::preemptions)
      .def_ro("spec_drafted_tokens", &EngineMetrics::spec_drafted_tokens)
      .def_ro("spec_accepted_tokens", &EngineMetrics::spec_accepted_tokens)
      .def_ro("gen_tok_s", &EngineMetrics::gen_tok_s)
      .def_ro("ttft_ms_buckets", &EngineMetrics::ttft_ms_buckets)
      .def_ro("ttft_ms_counts", &EngineMetrics::ttft_ms_counts)
      .def_ro("itl_ms_buckets", &EngineMetrics::itl_ms_buckets)
      .def_ro("itl_ms_counts", &EngineMetrics::itl_ms_counts);
}

void BindRequestTypes(nb::module_& m) {
  nb::class_<PyRequest>(m, "Request")
      .def_prop_ro("model", [](const PyRequest& r) { return r.request.model; })
      .def_prop_ro("stream", [](const PyRequest& r) { return r.request.stream; })
      .def_prop_ro("include_usage", [](const PyRequest& r) { return r.request.include_usage; })
      .def_prop_ro("messages_json", [](const PyRequest& r) { return r.request.messages_json; })
      .def_prop_ro("sampling", [](const PyRequest& r) { return r.request.sampling; })
      .def_prop_ro("tools_active", [](const PyRequest& r) { return r.request.tools.Active(); });
  m.def("parse_request", &ParseRequest, "body"_a, "chat"_a, "n_vocab"_a = 0,
        "Parses and validates an OpenAI request body (JSON text); raises RequestError.");

  nb::class_<ToolCallParser>(m, "ToolCallParser")
      .def(nb::init<bool>(), "tools_active"_a)
      // (content bytes, [(index, id or None, name or None, arguments)]) to send for this delta.
      .def("feed",
           [](ToolCallParser& p, nb::bytes delta) {
             ToolCallParser::Output o = p.Feed(std::string_view(delta.c_str(), delta.size()));
             nb::list calls;
             for (const ToolCallDelta& d : o.calls) {
               calls.append(nb::make_tuple(d.index, d.id, d.name, d.arguments));
             }
             return nb::make_tuple(nb::bytes(o.content.data(), o.content.size()), calls);
           })
      .def("is_tool_call", &ToolCallParser::IsToolCall)
      .def("in_envelope", &ToolCallParser::in_envelope)
      .def("calls", [](const ToolCallParser& p) {
        nb::list out;
        for (const ToolCall& c : p.calls()) out.append(nb::make_tuple(c.id, c.name, c.arguments));
        return out;
      });
}

}  // namespace
}  // namespace kiln::python

NB_MODULE(_core, m) {
  using namespace kiln::python;
  m.doc() = "kiln engine bindings (see the kiln package for the public API)";
  static nb::exception<StatusException> status_error(m, "StatusError");
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const StatusException& e) {
      nb::object args = nb::make_tuple(e.code(), e.what());
      PyErr_SetObject(status_error.ptr(), args.ptr());
    }
  });
  BindTypes(m);

  static nb::exception<RequestException> request_error(m, "RequestError");
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const RequestException& e) {
      const kiln::openai::RequestError& r = e.error();
      nb::object args = nb::make_tuple(r.http_status, r.message, r.type, r.param, r.code);
      PyErr_SetObject(request_error.ptr(), args.ptr());
    }
  });
  BindRequestTypes(m);

  nb::class_<PyStream>(m, "Stream")
      .def("next", &PyStream::Next, "timeout_ms"_a,
           "The next event, or None after timeout_ms (the GIL is released while waiting).")
      .def("cancel", &PyStream::Cancel)
      .def_prop_ro("id", &PyStream::id);

  nb::class_<PyEngine>(m, "Engine")
      .def("__init__",
           [](PyEngine* self, const std::string& model, const std::string& mode, int n_threads,
              int max_sequences, int max_context, int64_t kv_memory_bytes, int prefill_chunk,
              const std::string& speculate, int draft_max, const std::string& draft) {
             kiln::ServingOptions o;
             o.model = model;
             o.mode = ParseMode(mode);
             o.n_threads = n_threads;
             o.max_sequences = max_sequences;
             o.max_context = max_context;
             o.kv_memory_bytes = kv_memory_bytes;
             o.prefill_chunk = prefill_chunk;
             o.speculate.mode = ValueOrThrow(kiln::ParseSpeculateMode(speculate));
             o.speculate.draft_max = draft_max;
             o.speculate.draft_model = draft;
             new (self) PyEngine(o);
           },
           "model"_a = "default", "mode"_a = "local", "n_threads"_a = 0, "max_sequences"_a = 0,
           "max_context"_a = 0, "kv_memory_bytes"_a = 0, "prefill_chunk"_a = 0,
           "speculate"_a = "auto", "draft_max"_a = 0, "draft"_a = "")
      .def("close", &PyEngine::Close)
      .def_prop_ro("closed", &PyEngine::closed)
      .def("submit", &PyEngine::Submit, "prompt_ids"_a, "sampling"_a, "priority"_a = 0)
      .def("submit_request", &PyEngine::SubmitRequest, "request"_a)
      .def("tokenize", &PyEngine::Tokenize, "text"_a, "add_special"_a = false,
           "parse_special"_a = false)
      .def("detokenize", &PyEngine::Detokenize, "ids"_a)
      .def("apply_chat_template", &PyEngine::ApplyChatTemplate, "messages_json"_a,
           "tools_json"_a = "", "add_generation_prompt"_a = true)
      .def("metrics", &PyEngine::Metrics)
      .def("info", &PyEngine::Info)
      .def("describe_config", &PyEngine::DescribeConfig);
}
