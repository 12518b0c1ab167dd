// The C API (include/kiln/kiln.h) over kiln's C++ serving API: handles around ServingEngine and
// RequestStream, request bodies through the shared OpenAI parser (kiln/openai.h) and answers
// through the shared builders (kiln/openai_response.h), so the JSON equals the server's.
// Every entry point catches what C++ may throw and reports it as a status: nothing unwinds into
// C. Uses include/kiln only (a front end in DESIGN.md's table).
#include "kiln/kiln.h"

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "kiln/openai.h"
#include "kiln/openai_response.h"
#include "kiln/serving.h"

#ifndef KILN_VERSION_STRING
#error "KILN_VERSION_STRING must be defined by the build (src/capi/CMakeLists.txt)"
#endif

namespace kiln::capi {
namespace {

using nlohmann::json;
using openai::RequestError;
using Clock = std::chrono::steady_clock;

constexpr int kMaxJsonDepth = 64;                      // as the server's
constexpr auto kWaitSlice = std::chrono::milliseconds(100);  // re-check cancel/destroy this often

// The calling thread's last error (kiln_last_error / kiln_last_error_json).
struct LastError {
  std::string message;
  std::string json;
};
thread_local LastError t_error;

kiln_status StatusFromCode(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return KILN_OK;
    case StatusCode::kInvalidArgument: return KILN_ERROR_INVALID_ARGUMENT;
    case StatusCode::kNotFound: return KILN_ERROR_NOT_FOUND;
    case StatusCode::kOutOfRange: return KILN_ERROR_OUT_OF_RANGE;
    case StatusCode::kResourceExhausted: return KILN_ERROR_RESOURCE_EXHAUSTED;
    case StatusCode::kUnimplemented: return KILN_ERROR_UNIMPLEMENTED;
    case StatusCode::kFailedPrecondition: return KILN_ERROR_FAILED_PRECONDITION;
    case StatusCode::kCancelled: return KILN_ERROR_CANCELLED;
    case StatusCode::kUnavailable: return KILN_ERROR_UNAVAILABLE;
    case StatusCode::kDataLoss: return KILN_ERROR_DATA_LOSS;
    case StatusCode::kInternal: return KILN_ERROR_INTERNAL;
  }
  return KILN_ERROR_INTERNAL;
}

// A RequestError carries an HTTP status (openai::ErrorFromStatus is the one mapping); this is
// its inverse for the statuses it produces.
kiln_status StatusFromRequestError(const RequestError& e) {
  switch (e.http_status) {
    case 400: return e.code == "unsupported_parameter" ? KILN_ERROR_UNIMPLEMENTED
                                                        : KILN_ERROR_INVALID_ARGUMENT;
    case 404: return KILN_ERROR_NOT_FOUND;
    case 429: return KILN_ERROR_RESOURCE_EXHAUSTED;
    case 499: return KILN_ERROR_CANCELLED;
    case 503: return KILN_ERROR_UNAVAILABLE;
    default: return KILN_ERROR_INTERNAL;
  }
}

kiln_status Fail(kiln_status status, const RequestError& error) {
  t_error.message = error.message;
  t_error.json = openai::Dump(openai::ErrorBody(error));
  return status;
}

kiln_status Fail(const RequestError& error) { return Fail(StatusFromRequestError(error), error); }

kiln_status Fail(const Status& status, std::string param = "") {
  return Fail(StatusFromCode(status.code()), openai::ErrorFromStatus(status, std::move(param)));
}

kiln_status Invalid(const std::string& message, std::string param = "") {
  return Fail(KILN_ERROR_INVALID_ARGUMENT, RequestError{.message = message, .param = std::move(param)});
}

// The value a C caller passed for an enum parameter, read as bytes: C may pass any int, and in
// C++ loading an enum object whose value is outside its enumerators' range is undefined
// (UBSan's -fsanitize=enum flags it), so such parameters are never read as the enum type.
template <typename Enum>
int RawEnum(const Enum& e) {
  static_assert(sizeof(Enum) == sizeof(int), "C enums are int-sized here");
  int v = 0;
  std::memcpy(&v, &e, sizeof v);
  return v;
}

kiln_status Ok() {
  t_error.message.clear();
  t_error.json.clear();
  return KILN_OK;
}

// Runs `fn` (returning kiln_status) with every C++ exception turned into KILN_ERROR_INTERNAL.
template <typename Fn>
kiln_status Guard(Fn&& fn) noexcept {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return Fail(KILN_ERROR_RESOURCE_EXHAUSTED,
                RequestError{.http_status = 500, .message = "out of memory", .type = "server_error"});
  } catch (const std::exception& e) {
    return Fail(KILN_ERROR_INTERNAL, RequestError{.http_status = 500,
                                                  .message = std::string("internal error: ") + e.what(),
                                                  .type = "server_error"});
  } catch (...) {
    return Fail(KILN_ERROR_INTERNAL,
                RequestError{.http_status = 500, .message = "internal error", .type = "server_error"});
  }
}

// ── Engine options ─────────────────────────────────────────────────────────────────────

struct EngineConfig {
  ServingOptions serving;
  std::string model_id;  // "" → from the model's path
};

// An integer option in [0, max]; `key` names it in errors.
std::optional<RequestError> IntOption(const json& v, const char* key, int64_t max, int64_t* out) {
  if (!v.is_number_integer()) {
    return RequestError{.message = StrFormat("options: '%s' must be an integer, got %s", key,
                                             v.dump().c_str()),
                        .param = key};
  }
  // Unsigned JSON integers above INT64_MAX read as negative: also out of range.
  int64_t x = v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)
                  ? -1
                  : v.get<int64_t>();
  if (x < 0 || x > max) {
    return RequestError{.message = StrFormat("options: '%s' must be in [0, %lld], got %s", key,
                                             static_cast<long long>(max), v.dump().c_str()),
                        .param = key};
  }
  *out = x;
  return std::nullopt;
}

std::optional<RequestError> StringOption(const json& v, const char* key, std::string* out) {
  if (!v.is_string()) {
    return RequestError{.message = StrFormat("options: '%s' must be a string", key), .param = key};
  }
  *out = v.get<std::string>();
  return std::nullopt;
}

std::optional<RequestError> ModeOption(const json& v, EngineMode* out) {
  std::string mode;
  if (auto err = StringOption(v, "mode", &mode)) return err;
  if (mode == "local") {
    *out = EngineMode::kLocal;
  } else if (mode == "interactive") {
    *out = EngineMode::kInteractive;
  } else if (mode == "server") {
    *out = EngineMode::kServer;
  } else {
    return RequestError{.message = "options: 'mode' must be \"local\", \"interactive\" or "
                                   "\"server\", got \"" + mode + "\"",
                        .param = "mode"};
  }
  return std::nullopt;
}

std::optional<RequestError> OneOption(const std::string& key, const json& v, EngineConfig* c) {
  ServingOptions& s = c->serving;
  int64_t x = 0;
  auto set_int = [&](const char* name, int64_t max, auto* field) -> std::optional<RequestError> {
    if (auto err = IntOption(v, name, max, &x)) return err;
    *field = static_cast<std::remove_pointer_t<decltype(field)>>(x);
    return std::nullopt;
  };
  if (key == "mode") return ModeOption(v, &s.mode);
  if (key == "threads") return set_int("threads", 4096, &s.n_threads);
  if (key == "context") return set_int("context", INT32_MAX, &s.max_context);
  if (key == "max_sequences") return set_int("max_sequences", 65536, &s.max_sequences);
  if (key == "kv_memory_bytes") return set_int("kv_memory_bytes", INT64_MAX, &s.kv_memory_bytes);
  if (key == "prefill_chunk") return set_int("prefill_chunk", INT32_MAX, &s.prefill_chunk);
  if (key == "speculate") {
    std::string mode;
    if (auto err = StringOption(v, "speculate", &mode)) return err;
    StatusOr<SpeculateMode> m = ParseSpeculateMode(mode);
    if (!m.ok()) {
      return RequestError{.message = "options: 'speculate': " + m.status().message(),
                          .param = "speculate"};
    }
    s.speculate.mode = *m;
    return std::nullopt;
  }
  if (key == "draft_max") return set_int("draft_max", 1024, &s.speculate.draft_max);
  if (key == "draft") return StringOption(v, "draft", &s.speculate.draft_model);
  if (key == "model_id") {
    if (auto err = StringOption(v, "model_id", &c->model_id)) return err;
    if (c->model_id.empty()) {
      return RequestError{.message = "options: 'model_id' must not be empty", .param = "model_id"};
    }
    return std::nullopt;
  }
  if (key == "device") {
    std::string device;
    if (auto err = StringOption(v, "device", &device)) return err;
    if (device == "cpu") return std::nullopt;
    return RequestError{.message = "options: 'device' \"" + device + "\" is not available in "
                                   "this build (available: \"cpu\")",
                        .param = "device", .code = "unsupported_parameter"};
  }
  return RequestError{.message = "options: unknown key '" + key + "' (known: mode, threads, "
                                 "context, max_sequences, kv_memory_bytes, prefill_chunk, "
                                 "speculate, draft, draft_max, model_id, device)",
                      .param = key};
}

std::optional<RequestError> ParseOptions(const char* text, EngineConfig* out) {
  if (text == nullptr || text[0] == '\0') return std::nullopt;
  if (auto err = openai::CheckJsonBody(text, kMaxJsonDepth)) {
    err->message = "options: " + err->message;
    return err;
  }
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return RequestError{.message = "options must be a JSON object"};
  for (const auto& [key, value] : j.items()) {
    if (auto err = OneOption(key, value, out)) return err;
  }
  return std::nullopt;
}

}  // namespace
}  // namespace kiln::capi

// ── Handles ──────────────────────────────────────────────────────────────────────────────

struct kiln_engine {
  std::unique_ptr<kiln::ServingEngine> engine;
  std::string model_id;
  std::string fingerprint;
  kiln::openai::RequestLimits limits;
  // False once kiln_engine_destroy began: requests that outlive the engine check it.
  std::shared_ptr<std::atomic<bool>> alive = std::make_shared<std::atomic<bool>>(true);
};

// One request. kiln_request_next runs on one thread at a time (mu); kiln_request_cancel on any
// thread touches only the atomics and RequestStream::Cancel (thread-safe).
struct kiln_request {
  std::shared_ptr<std::atomic<bool>> engine_alive;
  std::unique_ptr<kiln::RequestStream> stream;
  std::string id;
  std::optional<kiln::openai::ChunkRenderer> renderer;      // "stream": true
  std::optional<kiln::openai::ResponseCollector> collector;  // otherwise
  std::atomic<bool> cancelled{false};
  std::atomic<bool> engine_done{false};  // the done event arrived

  std::mutex mu;
  std::deque<std::string> pending;  // items ready for kiln_request_next
  std::string current;              // the item last returned (owned here)
  kiln_status terminal = KILN_OK;   // once over: KILN_DONE or the error, replayed
  kiln::openai::RequestError terminal_error;
};

namespace kiln::capi {
namespace {

// Reports how the request ended (again): KILN_DONE, or its error with the message.
kiln_status Replay(const kiln_request* r) {
  if (r->terminal != KILN_DONE) return Fail(r->terminal, r->terminal_error);
  Ok();
  return KILN_DONE;
}

// Ends the request with `status` (KILN_DONE or an error) and reports it; later calls replay it.
kiln_status End(kiln_request* r, kiln_status status, RequestError error) {
  r->terminal = status;
  r->terminal_error = std::move(error);
  if (status != KILN_DONE) r->stream->Cancel();
  return Replay(r);
}

kiln_status PopPending(kiln_request* r, const char** out) {
  r->current = std::move(r->pending.front());
  r->pending.pop_front();
  *out = r->current.c_str();
  return Ok();
}

// Why a request can no longer advance, if it cannot: cancelled, or its engine destroyed.
std::optional<kiln_status> Stopped(kiln_request* r) {
  if (r->cancelled.load()) {
    return End(r, KILN_ERROR_CANCELLED,
               RequestError{.http_status = 499, .message = "the request was cancelled",
                            .type = "cancelled"});
  }
  if (!r->engine_alive->load()) {
    return End(r, KILN_ERROR_FAILED_PRECONDITION,
               RequestError{.message = "the engine of this request was destroyed",
                            .code = "engine_destroyed"});
  }
  return std::nullopt;
}

// Turns one event into pending items; an error ends the request.
std::optional<kiln_status> Consume(kiln_request* r, const StreamEvent& ev) {
  if (ev.done) r->engine_done.store(true);
  if (r->renderer) {
    std::vector<std::string> chunks;
    std::optional<RequestError> err = r->renderer->Render(ev, &chunks);
    if (err) return End(r, KILN_ERROR_INTERNAL, *err);
    for (std::string& c : chunks) r->pending.push_back(std::move(c));
  } else {
    r->collector->Add(ev);
    if (r->collector->done()) {
      if (r->collector->error()) return End(r, KILN_ERROR_INTERNAL, *r->collector->error());
      r->pending.push_back(openai::Dump(r->collector->Body()));
    }
  }
  return std::nullopt;
}

kiln_status Next(kiln_request* r, int32_t timeout_ms, const char** out) {
  std::lock_guard<std::mutex> lock(r->mu);
  if (r->terminal != KILN_OK) return Replay(r);
  // A request whose done event arrived has ended: what it produced is delivered even when it
  // is cancelled or its engine destroyed afterwards.
  if (!r->engine_done.load()) {
    if (auto s = Stopped(r)) return *s;
  }
  if (!r->pending.empty()) return PopPending(r, out);
  if (r->engine_done.load()) return End(r, KILN_DONE, {});
  const bool forever = timeout_ms < 0;
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(std::max(timeout_ms, 0));
  for (;;) {
    auto wait = forever ? kWaitSlice
                        : std::min<Clock::duration>(kWaitSlice, std::max<Clock::duration>(
                                                                     deadline - Clock::now(), {}));
    std::optional<StreamEvent> ev =
        r->stream->Next(std::chrono::duration_cast<std::chrono::milliseconds>(wait));
    // Checked after the wait: the abort event of a cancel or a destroy is never rendered.
    if (auto s = Stopped(r)) return *s;
    if (ev) {
      if (auto s = Consume(r, *ev)) return *s;
      if (!r->pending.empty()) return PopPending(r, out);
      if (r->engine_done.load()) return End(r, KILN_DONE, {});
      continue;  // an event with nothing to send (e.g. an empty delta): wait on
    }
    if (!forever && Clock::now() >= deadline) {
      Ok();
      return KILN_TIMEOUT;
    }
  }
}

// The body with "model" set to the engine's model_id when it has none: inserted as text right
// after the opening brace, so the rest of the body (property order of schemas, number
// spelling) reaches the parser unchanged.
std::optional<RequestError> WithDefaultModel(const char* body, const std::string& model_id,
                                             std::string* out) {
  *out = body;
  if (auto err = openai::CheckJsonBody(*out, kMaxJsonDepth)) return err;
  json j = json::parse(*out, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.contains("model")) return std::nullopt;  // the parser's errors
  const size_t brace = out->find('{');
  std::string field = "\"model\":" + json(model_id).dump() + (j.empty() ? "" : ",");
  out->insert(brace + 1, field);
  return std::nullopt;
}

kiln_status CreateRequest(kiln_engine* e, int endpoint, const char* body,
                          kiln_request** out) {
  if (out == nullptr) return Invalid("out must not be NULL");
  *out = nullptr;
  if (e == nullptr || !e->engine) return Invalid("engine must not be NULL");
  if (body == nullptr) return Invalid("body_json must not be NULL");
  if (endpoint != KILN_ENDPOINT_CHAT && endpoint != KILN_ENDPOINT_COMPLETIONS) {
    return Invalid(StrFormat("unknown endpoint %d (KILN_ENDPOINT_CHAT or "
                             "KILN_ENDPOINT_COMPLETIONS)", endpoint));
  }
  const openai::Endpoint ep =
      endpoint == KILN_ENDPOINT_CHAT ? openai::Endpoint::kChat : openai::Endpoint::kCompletion;
  std::string text;
  if (auto err = WithDefaultModel(body, e->model_id, &text)) return Fail(*err);
  openai::Request parsed;
  if (auto err = openai::ParseRequest(text, ep, e->limits, &parsed)) return Fail(*err);
  CompletionRequest request;
  // Template (+ tools), tokens and the response_format / tools constraint: the server's path.
  if (auto err = openai::BuildCompletionRequest(*e->engine, parsed, &request)) return Fail(*err);
  if (auto err = openai::CheckContextLength(request, e->engine->MaxContext())) return Fail(*err);
  StatusOr<std::unique_ptr<RequestStream>> stream = e->engine->Submit(std::move(request));
  if (!stream.ok()) return Fail(stream.status());
  openai::ResponseMeta meta{.endpoint = ep,
                            .id = openai::NewResponseId(ep),
                            .created = openai::UnixNow(),
                            .model = parsed.model,
                            .system_fingerprint = e->fingerprint};
  auto r = std::make_unique<kiln_request>();
  r->engine_alive = e->alive;
  r->stream = std::move(*stream);
  r->id = meta.id;
  if (parsed.stream) {
    r->renderer.emplace(std::move(meta), parsed);
    std::vector<std::string> chunks;
    r->renderer->Start(&chunks);
    for (std::string& c : chunks) r->pending.push_back(std::move(c));
  } else {
    r->collector.emplace(std::move(meta), parsed);
  }
  *out = r.release();
  return Ok();
}

kiln_status CreateEngine(const char* model, const char* options, kiln_engine** out) {
  if (out == nullptr) return Invalid("out must not be NULL");
  *out = nullptr;
  if (model == nullptr || model[0] == '\0') return Invalid("model must be a path or reference");
  EngineConfig config;
  if (auto err = ParseOptions(options, &config)) return Fail(*err);
  config.serving.model = model;
  if (!config.serving.speculate.draft_model.empty()) {  // its errors name the option
    StatusOr<std::string> draft = ResolveModel(config.serving.speculate.draft_model);
    if (!draft.ok()) return Fail(draft.status(), "draft");
  }
  StatusOr<std::unique_ptr<ServingEngine>> engine = ServingEngine::Start(config.serving);
  if (!engine.ok()) return Fail(engine.status(), "model");
  auto e = std::make_unique<kiln_engine>();
  e->engine = std::move(*engine);
  const ModelInfo& info = e->engine->Info();
  e->model_id = config.model_id.empty() ? openai::ModelIdFromPath(info.path) : config.model_id;
  e->fingerprint = openai::SystemFingerprint(info.architecture);
  e->limits.n_vocab = info.n_vocab;
  *out = e.release();
  return Ok();
}

std::string InfoJson(const kiln_engine& e) {
  const ModelInfo& i = e.engine->Info();
  nlohmann::ordered_json j = {
      {"model_id", e.model_id},       {"path", i.path},
      {"format", i.format},           {"architecture", i.architecture},
      {"name", i.name},               {"n_params", i.n_params},
      {"n_bytes", i.n_bytes},         {"n_vocab", i.n_vocab},
      {"n_ctx_train", i.n_ctx_train}, {"n_embd", i.n_embd},
      {"n_layers", i.n_layers},       {"n_heads", i.n_heads},
      {"n_heads_kv", i.n_heads_kv},   {"head_dim", i.head_dim},
      {"n_ff", i.n_ff},               {"bos_id", i.bos_id},
      {"eos_id", i.eos_id},           {"eot_id", i.eot_id},
      {"chat_template", i.chat_template},
      {"max_context", e.engine->MaxContext()},
      {"config", e.engine->DescribeConfig()}};
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string MetricsJson(const EngineMetrics& m) {
  nlohmann::ordered_json j = {
      {"queue_length", m.queue_length},
      {"running", m.running},
      {"kv_blocks_total", m.kv_blocks_total},
      {"kv_blocks_used", m.kv_blocks_used},
      {"kv_blocks_cached", m.kv_blocks_cached},
      {"kv_block_tokens", m.kv_block_tokens},
      {"kv_slots_allocated", m.kv_slots_allocated},
      {"kv_slots_unfilled", m.kv_slots_unfilled},
      {"prefix_cache_queries", m.prefix_cache_queries},
      {"prefix_cache_hit_tokens", m.prefix_cache_hit_tokens},
      {"prefix_cache_query_tokens", m.prefix_cache_query_tokens},
      {"requests_finished", m.requests_finished},
      {"prompt_tokens_total", m.prompt_tokens_total},
      {"generated_tokens_total", m.generated_tokens_total},
      {"preemptions", m.preemptions},
      {"spec_drafted_tokens", m.spec_drafted_tokens},
      {"spec_accepted_tokens", m.spec_accepted_tokens},
      {"gen_tok_s", m.gen_tok_s},
      {"ttft_ms", {{"buckets", m.ttft_ms_buckets}, {"counts", m.ttft_ms_counts},
                   {"sum", m.ttft_ms_sum}}},
      {"itl_ms", {{"buckets", m.itl_ms_buckets}, {"counts", m.itl_ms_counts},
                  {"sum", m.itl_ms_sum}}}};
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// A malloc'ed NUL-terminated copy (kiln_free releases it).
char* CopyString(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p == nullptr) throw std::bad_alloc();
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

kiln_status Tokenize(kiln_engine* e, const char* text, size_t len, uint32_t flags,
                     int32_t** ids_out, size_t* n_out) {
  if (ids_out == nullptr || n_out == nullptr) return Invalid("ids_out and n_ids_out must not be NULL");
  *ids_out = nullptr;
  *n_out = 0;
  if (e == nullptr || !e->engine) return Invalid("engine must not be NULL");
  if (text == nullptr && len > 0) return Invalid("text is NULL but text_len is not 0");
  if ((flags & ~(KILN_TOKENIZE_ADD_SPECIAL | KILN_TOKENIZE_PARSE_SPECIAL)) != 0) {
    return Invalid(StrFormat("unknown tokenize flags 0x%x", flags), "flags");
  }
  StatusOr<std::vector<int32_t>> ids =
      e->engine->Tokenize(std::string_view(text == nullptr ? "" : text, len),
                          (flags & KILN_TOKENIZE_ADD_SPECIAL) != 0,
                          (flags & KILN_TOKENIZE_PARSE_SPECIAL) != 0);
  if (!ids.ok()) return Fail(ids.status(), "text");
  if (!ids->empty()) {
    *ids_out = static_cast<int32_t*>(std::malloc(ids->size() * sizeof(int32_t)));
    if (*ids_out == nullptr) throw std::bad_alloc();
    std::memcpy(*ids_out, ids->data(), ids->size() * sizeof(int32_t));
  }
  *n_out = ids->size();
  return Ok();
}

kiln_status Detokenize(kiln_engine* e, const int32_t* ids, size_t n, char** text_out,
                       size_t* len_out) {
  if (text_out == nullptr) return Invalid("text_out must not be NULL");
  *text_out = nullptr;
  if (len_out != nullptr) *len_out = 0;
  if (e == nullptr || !e->engine) return Invalid("engine must not be NULL");
  if (ids == nullptr && n > 0) return Invalid("ids is NULL but n_ids is not 0");
  const int64_t n_vocab = e->engine->Info().n_vocab;
  std::vector<int32_t> v(ids, ids + n);
  for (size_t i = 0; i < n; ++i) {
    if (v[i] < 0 || v[i] >= n_vocab) {
      return Invalid(StrFormat("ids[%zu] = %d is not a token id in [0, %lld)", i, v[i],
                               static_cast<long long>(n_vocab)),
                     "ids");
    }
  }
  std::string text = e->engine->Detokenize(v);
  *text_out = CopyString(text);
  if (len_out != nullptr) *len_out = text.size();
  return Ok();
}

kiln_status Run(kiln_engine* e, int endpoint, const char* body,
                kiln_chunk_callback callback, void* user_data) {
  if (callback == nullptr) return Invalid("callback must not be NULL");
  kiln_request* r = nullptr;
  kiln_status s = CreateRequest(e, endpoint, body, &r);
  if (s != KILN_OK) return s;
  std::unique_ptr<kiln_request> owned(r);
  const char* item = nullptr;
  while ((s = Next(r, -1, &item)) == KILN_OK) {
    if (callback(item, user_data) != 0) {
      r->cancelled.store(true);
      r->stream->Cancel();
      return Stopped(r).value_or(KILN_ERROR_CANCELLED);
    }
  }
  return s == KILN_DONE ? Ok() : s;
}

}  // namespace
}  // namespace kiln::capi

// ── The exported functions ───────────────────────────────────────────────────────────────

using kiln::capi::Guard;

extern "C" {

const char* kiln_status_name(kiln_status status) {
  switch (kiln::capi::RawEnum(status)) {
    case KILN_OK: return "OK";
    case KILN_DONE: return "DONE";
    case KILN_TIMEOUT: return "TIMEOUT";
    case KILN_ERROR_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case KILN_ERROR_NOT_FOUND: return "NOT_FOUND";
    case KILN_ERROR_OUT_OF_RANGE: return "OUT_OF_RANGE";
    case KILN_ERROR_RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case KILN_ERROR_UNIMPLEMENTED: return "UNIMPLEMENTED";
    case KILN_ERROR_FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case KILN_ERROR_CANCELLED: return "CANCELLED";
    case KILN_ERROR_UNAVAILABLE: return "UNAVAILABLE";
    case KILN_ERROR_DATA_LOSS: return "DATA_LOSS";
    case KILN_ERROR_INTERNAL: return "INTERNAL";
  }
  return "UNKNOWN";
}

const char* kiln_last_error(void) { return kiln::capi::t_error.message.c_str(); }

const char* kiln_last_error_json(void) { return kiln::capi::t_error.json.c_str(); }

const char* kiln_version(void) { return KILN_VERSION_STRING; }

int kiln_abi_version(void) { return KILN_ABI_VERSION; }

void kiln_free(void* ptr) { std::free(ptr); }

kiln_status kiln_engine_create(const char* model, const char* options, kiln_engine** out) {
  return Guard([&] { return kiln::capi::CreateEngine(model, options, out); });
}

void kiln_engine_destroy(kiln_engine* engine) {
  if (engine == nullptr) return;
  engine->alive->store(false);  // before the engine's last (abort) events
  delete engine;                // joins the engine thread
}

kiln_status kiln_engine_info(kiln_engine* engine, char** json_out) {
  return Guard([&] {
    if (json_out == nullptr) return kiln::capi::Invalid("json_out must not be NULL");
    *json_out = nullptr;
    if (engine == nullptr || !engine->engine) return kiln::capi::Invalid("engine must not be NULL");
    *json_out = kiln::capi::CopyString(kiln::capi::InfoJson(*engine));
    return kiln::capi::Ok();
  });
}

kiln_status kiln_engine_metrics(kiln_engine* engine, char** json_out) {
  return Guard([&] {
    if (json_out == nullptr) return kiln::capi::Invalid("json_out must not be NULL");
    *json_out = nullptr;
    if (engine == nullptr || !engine->engine) return kiln::capi::Invalid("engine must not be NULL");
    *json_out = kiln::capi::CopyString(kiln::capi::MetricsJson(engine->engine->Metrics()));
    return kiln::capi::Ok();
  });
}

kiln_status kiln_tokenize(kiln_engine* engine, const char* text, size_t text_len, uint32_t flags,
                          int32_t** ids_out, size_t* n_ids_out) {
  return Guard([&] {
    return kiln::capi::Tokenize(engine, text, text_len, flags, ids_out, n_ids_out);
  });
}

kiln_status kiln_detokenize(kiln_engine* engine, const int32_t* ids, size_t n_ids,
                            char** text_out, size_t* text_len_out) {
  return Guard([&] { return kiln::capi::Detokenize(engine, ids, n_ids, text_out, text_len_out); });
}

kiln_status kiln_request_create(kiln_engine* engine, kiln_endpoint endpoint,
                                const char* body_json, kiln_request** out) {
  return Guard([&] {
    return kiln::capi::CreateRequest(engine, kiln::capi::RawEnum(endpoint), body_json, out);
  });
}

kiln_status kiln_request_next(kiln_request* request, int32_t timeout_ms, const char** json_out) {
  return Guard([&] {
    if (json_out == nullptr) return kiln::capi::Invalid("json_out must not be NULL");
    *json_out = nullptr;
    if (request == nullptr) return kiln::capi::Invalid("request must not be NULL");
    return kiln::capi::Next(request, timeout_ms, json_out);
  });
}

kiln_status kiln_request_cancel(kiln_request* request) {
  return Guard([&] {
    if (request == nullptr) return kiln::capi::Invalid("request must not be NULL");
    if (!request->engine_done.load()) {
      request->cancelled.store(true);  // before the abort event it causes
      request->stream->Cancel();
    }
    return kiln::capi::Ok();
  });
}

const char* kiln_request_id(const kiln_request* request) {
  return request == nullptr ? nullptr : request->id.c_str();
}

void kiln_request_destroy(kiln_request* request) {
  delete request;  // RequestStream's destructor cancels an unfinished request
}

kiln_status kiln_engine_run(kiln_engine* engine, kiln_endpoint endpoint, const char* body_json,
                            kiln_chunk_callback callback, void* user_data) {
  return Guard([&] {
    return kiln::capi::Run(engine, kiln::capi::RawEnum(endpoint), body_json, callback, user_data);
  });
}

}  // extern "C"
