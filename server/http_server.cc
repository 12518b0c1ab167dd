// Routes of the OpenAI-compatible server (see http_server.h and docs/server.md). The
// connections (accepting, parsing, deadlines, writing) are connection.h's.
#include "http_server.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <nlohmann/json.hpp>

#include "connection.h"
#include "http_message.h"
#include "metrics_text.h"
#include "protocol/request.h"
#include "protocol/response.h"
#include "web_assets.h"

namespace kiln::server {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto kPollInterval = 100ms;
constexpr auto kKeepAliveInterval = 2s;   // SSE comment when idle, also detects gone clients
constexpr int kMaxJsonDepth = 64;
constexpr int kMaxTokenizeIds = 1 << 20;

void SendJson(HttpResponse& res, int status, const json& body) {
  res.status = status;
  res.body = Dump(body);
  res.content_type = "application/json";
}

void SendError(HttpResponse& res, const ApiError& error) {
  SendJson(res, error.http_status, ErrorBody(error));
}

ApiError ShutdownError() {
  return ApiError{.http_status = 503, .message = "the server is shutting down; retry elsewhere",
                  .type = "server_error", .code = "server_shutdown"};
}

// Decrements the in-flight count when the request's last owner lets go.
class InFlight {
 public:
  explicit InFlight(std::atomic<int64_t>* counter) : counter_(counter) { ++*counter_; }
  ~InFlight() { --*counter_; }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  std::atomic<int64_t>* counter_;
};

// One streaming response: turns engine events into SSE text (the chunks are the shared
// builder's, include/kiln/openai_response.h).
struct StreamState {
  std::unique_ptr<RequestStream> stream;
  std::unique_ptr<InFlight> in_flight;
  ChunkRenderer renderer;
  bool started = false, finished = false;
  Clock::time_point deadline, last_write;
  Clock::time_point last_event;  // the engine's last event; unset until the first one

  StreamState(ResponseMeta meta, const ParsedRequest& p) : renderer(std::move(meta), p) {}

  std::string Start() {
    started = true;
    std::vector<std::string> chunks;
    renderer.Start(&chunks);
    return Frame(chunks);
  }

  std::string Render(const StreamEvent& ev) {
    std::vector<std::string> chunks;
    std::string out;
    if (std::optional<ApiError> err = renderer.Render(ev, &chunks)) out += SseData(ErrorBody(*err));
    out += Frame(chunks);
    if (renderer.finished()) {
      finished = true;
      out += "data: [DONE]\n\n";
    }
    return out;
  }

  // Ends the stream early where the client sees it: the request is cancelled, then an error
  // event and [DONE] (never a second HTTP response).
  std::string EndWith(const ApiError& error) {
    stream->Cancel();
    finished = true;
    return SseData(ErrorBody(error)) + "data: [DONE]\n\n";
  }

  static std::string Frame(const std::vector<std::string>& chunks) {
    std::string out;
    for (const std::string& c : chunks) out += SseData(c);
    return out;
  }
};

// "%2F" → "/" in a path segment (a model id may be a file path); a bad escape stays as sent.
std::string PercentDecode(std::string_view s) {
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

bool ApiKeyMatches(const std::string& presented, const std::string& expected) {
  size_t n = std::max(presented.size(), expected.size());
  unsigned char diff = presented.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    unsigned char a = i < presented.size() ? presented[i] : 0;
    unsigned char b = i < expected.size() ? expected[i] : 0;
    diff |= a ^ b;
  }
  return diff == 0;
}

// The routes, and the bodies of the requests the connections refuse. Thread-safe: every
// connection thread calls Handle / Refuse.
struct HttpServer::Impl final : HttpHandler {
  ServingEngine& engine;
  ServerOptions opt;
  std::string model_id;
  std::vector<std::string> accepted_models;
  std::string fingerprint;
  RequestLimits limits;
  std::atomic<int64_t> in_flight{0};
  std::atomic<int64_t> disconnects{0};
  std::atomic<int64_t> stream_stalls{0};
  std::mutex counters_mu;
  std::map<int, int64_t> responses_by_status;
  // Shutdown (Stop): draining from the first call; in-flight requests are cancelled after
  // grace_deadline.
  std::atomic<bool> stop_started{false};
  std::atomic<bool> draining{false};
  std::atomic<Clock::rep> grace_deadline{0};
  Listener listener;  // last: its connection threads call into the members above

  Impl(ServingEngine& e, ServerOptions o)
      : engine(e), opt(std::move(o)),
        listener({.max_body_bytes = opt.max_body_bytes,
                  .read_timeout_s = opt.read_timeout_s,
                  .idle_timeout_s = opt.idle_timeout_s,
                  .write_timeout_s = opt.write_timeout_s,
                  .max_connections = opt.max_connections > 0 ? opt.max_connections
                                                             : opt.max_concurrent + 16},
                 *this) {}

  // Draining and past the grace period: in-flight requests must end now.
  bool PastGrace() const {
    return draining.load() && Clock::now().time_since_epoch().count() >= grace_deadline.load();
  }

  void Handle(const HttpRequest& req, HttpResponse& res) override;
  void Refuse(Refusal why, const std::string& detail, HttpResponse& res) override;
  void Route(const HttpRequest& req, HttpResponse& res);
  void Count(int status) {
    std::lock_guard<std::mutex> lock(counters_mu);
    ++responses_by_status[status];
  }
  bool Authorized(const HttpRequest& req) const;
  std::optional<ApiError> CheckModel(const std::string& model) const;
  void HandleGenerate(const HttpRequest& req, HttpResponse& res, Endpoint endpoint);
  void RespondOnce(const HttpRequest& req, HttpResponse& res,
                   std::unique_ptr<RequestStream> stream, std::unique_ptr<InFlight> guard,
                   const ParsedRequest& p, ResponseMeta meta);
  void RespondStream(HttpResponse& res, std::unique_ptr<RequestStream> stream,
                     std::unique_ptr<InFlight> guard, const ParsedRequest& p, ResponseMeta meta);
  std::string NextStreamText(StreamState& st);
  bool WriteStream(StreamState& st, BodyWriter& out);
  void HandleTokenize(const HttpRequest& req, HttpResponse& res);
  void HandleDetokenize(const HttpRequest& req, HttpResponse& res);
  void HandleMetrics(HttpResponse& res);
  json ModelJson() const {
    return json{{"id", model_id}, {"object", "model"}, {"created", 0}, {"owned_by", "kiln"}};
  }
};

bool HttpServer::Impl::Authorized(const HttpRequest& req) const {
  if (opt.api_key.empty()) return true;
  std::string auth = req.Header("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (auth.size() < kBearer.size() || auth.compare(0, kBearer.size(), kBearer) != 0) return false;
  return ApiKeyMatches(auth.substr(kBearer.size()), opt.api_key);
}

std::optional<ApiError> HttpServer::Impl::CheckModel(const std::string& model) const {
  for (const std::string& m : accepted_models) {
    if (m == model) return std::nullopt;
  }
  return ApiError{.http_status = 404,
                  .message = "The model '" + model + "' does not exist; this server serves '" +
                             model_id + "'",
                  .param = "model",
                  .code = "model_not_found"};
}

void HttpServer::Impl::HandleGenerate(const HttpRequest& req, HttpResponse& res,
                                      Endpoint endpoint) {
  auto guard = std::make_unique<InFlight>(&in_flight);
  if (in_flight.load() > opt.max_concurrent) {
    res.headers.emplace_back("Retry-After", "1");
    return SendError(res, ApiError{.http_status = 429,
                                   .message = "the server is at its limit of concurrent requests; "
                                              "retry shortly",
                                   .type = "rate_limit_exceeded"});
  }
  ParsedRequest p;
  if (auto err = ParseRequest(req.body, endpoint, limits, &p)) return SendError(res, *err);
  if (auto err = CheckModel(p.model)) return SendError(res, *err);
  CompletionRequest creq;
  // Template (+ tools), tokens and the response_format / tools constraint (checked here).
  if (auto err = openai::BuildCompletionRequest(engine, p, &creq)) return SendError(res, *err);
  if (auto err = openai::CheckContextLength(creq, opt.max_context)) return SendError(res, *err);
  auto stream = engine.Submit(std::move(creq));
  if (!stream.ok()) return SendError(res, ErrorFromStatus(stream.status()));
  ResponseMeta meta{.endpoint = endpoint,
                    .id = NewResponseId(endpoint),
                    .created = openai::UnixNow(),
                    .model = p.model,
                    .system_fingerprint = fingerprint};
  if (p.stream) {
    RespondStream(res, std::move(*stream), std::move(guard), p, std::move(meta));
  } else {
    RespondOnce(req, res, std::move(*stream), std::move(guard), p, std::move(meta));
  }
}

void HttpServer::Impl::RespondOnce(const HttpRequest& req, HttpResponse& res,
                                   std::unique_ptr<RequestStream> stream,
                                   std::unique_ptr<InFlight> guard, const ParsedRequest& p,
                                   ResponseMeta meta) {
  ResponseCollector collector(std::move(meta), p);
  Clock::time_point deadline = Clock::now() + std::chrono::seconds(opt.request_timeout_s);
  // Nothing is written until the answer is complete, so a client that hangs up is noticed by
  // watching its socket for FIN/RST.
  Clock::time_point next_check = Clock::now() + kPollInterval;
  while (!collector.done()) {
    std::optional<StreamEvent> ev = stream->Next(kPollInterval);
    if (Clock::now() >= next_check) {
      next_check = Clock::now() + kPollInterval;
      if (req.client_gone()) {
        stream->Cancel();  // frees its KV blocks at the engine's next step
        ++disconnects;
        return SendError(res, ApiError{.http_status = 499, .message = "client closed request",
                                       .code = "client_disconnected"});
      }
    }
    if (Clock::now() > deadline) {
      stream->Cancel();
      return SendError(res, ApiError{.http_status = 503,
                                     .message = "the request timed out and was cancelled",
                                     .type = "server_error", .code = "timeout"});
    }
    if (PastGrace()) {
      stream->Cancel();
      res.close = true;
      return SendError(res, ShutdownError());
    }
    if (ev) collector.Add(*ev);
  }
  if (collector.error()) return SendError(res, *collector.error());
  SendJson(res, 200, collector.Body());
}

void HttpServer::Impl::RespondStream(HttpResponse& res,
                                     std::unique_ptr<RequestStream> stream,
                                     std::unique_ptr<InFlight> guard, const ParsedRequest& p,
                                     ResponseMeta meta) {
  auto st = std::make_shared<StreamState>(std::move(meta), p);
  st->stream = std::move(stream);
  st->in_flight = std::move(guard);
  st->deadline = Clock::now() + std::chrono::seconds(opt.request_timeout_s);
  st->last_write = Clock::now();
  res.content_type = "text/event-stream";
  res.headers.emplace_back("Cache-Control", "no-cache");
  res.headers.emplace_back("X-Accel-Buffering", "no");
  res.stream = [this, st](BodyWriter& out) {
    const bool complete = WriteStream(*st, out);
    if (!st->finished) {
      st->stream->Cancel();  // the client went away: free its KV blocks
      ++disconnects;
    }
    st->in_flight.reset();
    return complete;
  };
}

// The stream's next piece of SSE text, waiting at most kPollInterval for the engine; "" when
// there is nothing to send yet.
std::string HttpServer::Impl::NextStreamText(StreamState& st) {
  if (!st.started) return st.Start();
  if (PastGrace()) return st.EndWith(ShutdownError());  // shutdown: the stream's final event
  if (Clock::now() > st.deadline) {
    return st.EndWith({.http_status = 503, .message = "the request timed out",
                       .type = "server_error", .code = "timeout"});
  }
  if (st.last_event != Clock::time_point{} &&
      Clock::now() - st.last_event > std::chrono::seconds(opt.stall_timeout_s)) {
    // Started, then nothing from the engine for longer than any step may take: end the
    // stream where the client can see it instead of leaving it waiting.
    ++stream_stalls;
    return st.EndWith({.http_status = 503,
                       .message = StrFormat("the stream made no progress for %d s and was "
                                            "cancelled", opt.stall_timeout_s),
                       .type = "server_error", .code = "stream_stalled"});
  }
  if (std::optional<StreamEvent> ev = st.stream->Next(kPollInterval)) {
    st.last_event = Clock::now();
    std::string out = st.Render(*ev);
    // Drain what is already queued so one write carries several events.
    for (int i = 0; i < 64 && !st.finished; ++i) {
      std::optional<StreamEvent> more = st.stream->Next(0ms);
      if (!more) break;
      out += st.Render(*more);
    }
    return out;
  }
  if (Clock::now() - st.last_write > kKeepAliveInterval) return ": keep-alive\n\n";
  return "";
}

// Writes the stream until [DONE]; false when the client went away first (a failed write, or
// its socket closed or reset, checked between events).
bool HttpServer::Impl::WriteStream(StreamState& st, BodyWriter& out) {
  while (!st.finished) {
    const std::string text = NextStreamText(st);
    if (!text.empty()) {
      if (!out.Write(text)) return false;
      st.last_write = Clock::now();
    }
    if (!st.finished && out.ClientGone()) return false;
  }
  return true;
}

void HttpServer::Impl::HandleTokenize(const HttpRequest& req, HttpResponse& res) {
  json j;
  if (auto err = ParseJsonBody(req.body, kMaxJsonDepth, &j)) return SendError(res, *err);
  if (!j.is_object()) return SendError(res, {.message = "request body must be a JSON object"});
  if (j.contains("model") && !j["model"].is_null()) {
    if (!j["model"].is_string()) return SendError(res, {.message = "'model' must be a string",
                                                        .param = "model"});
    if (auto err = CheckModel(j["model"].get<std::string>())) return SendError(res, *err);
  }
  std::vector<int32_t> ids;
  if (j.contains("messages")) {
    // Same path as chat requests: validate the messages through the chat parser.
    json chat = {{"model", model_id}, {"messages", j["messages"]}};
    ParsedRequest p;
    if (auto err = ParseRequest(Dump(chat), Endpoint::kChat, limits, &p)) {
      return SendError(res, *err);
    }
    bool add_gen = !j.contains("add_generation_prompt") || j["add_generation_prompt"] == true;
    auto text = engine.ApplyChatTemplate(Dump(p.messages), "", add_gen);
    if (!text.ok()) return SendError(res, ErrorFromStatus(text.status(), "messages"));
    auto toks = engine.Tokenize(*text, false, true);
    if (!toks.ok()) return SendError(res, ErrorFromStatus(toks.status(), "messages"));
    ids = std::move(*toks);
  } else {
    if (!j.contains("prompt") || !j["prompt"].is_string()) {
      return SendError(res, {.message = "'prompt' (a string) or 'messages' is required",
                             .param = "prompt"});
    }
    bool add_special = true;
    if (j.contains("add_special_tokens")) {
      if (!j["add_special_tokens"].is_boolean()) {
        return SendError(res, {.message = "'add_special_tokens' must be a boolean",
                               .param = "add_special_tokens"});
      }
      add_special = j["add_special_tokens"].get<bool>();
    }
    auto toks = engine.Tokenize(j["prompt"].get<std::string>(), add_special, false);
    if (!toks.ok()) return SendError(res, ErrorFromStatus(toks.status(), "prompt"));
    ids = std::move(*toks);
  }
  SendJson(res, 200, json{{"count", ids.size()}, {"tokens", ids}});
}

void HttpServer::Impl::HandleDetokenize(const HttpRequest& req, HttpResponse& res) {
  json j;
  if (auto err = ParseJsonBody(req.body, kMaxJsonDepth, &j)) return SendError(res, *err);
  if (!j.is_object() || !j.contains("tokens") || !j["tokens"].is_array()) {
    return SendError(res, {.message = "'tokens' (an array of token ids) is required",
                           .param = "tokens"});
  }
  if (j["tokens"].size() > kMaxTokenizeIds) {
    return SendError(res, {.message = "too many tokens", .param = "tokens"});
  }
  std::vector<int32_t> ids;
  for (const json& t : j["tokens"]) {
    if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
        t.get<int64_t>() >= engine.Info().n_vocab) {
      return SendError(res, {.message = StrFormat("'tokens' must be token ids in [0, %lld)",
                                                  static_cast<long long>(engine.Info().n_vocab)),
                             .param = "tokens"});
    }
    ids.push_back(t.get<int32_t>());
  }
  SendJson(res, 200, json{{"prompt", engine.Detokenize(ids)}});
}

void HttpServer::Impl::Handle(const HttpRequest& req, HttpResponse& res) {
  if (opt.cors) res.headers.emplace_back("Access-Control-Allow-Origin", "*");
  try {
    Route(req, res);
  } catch (const std::exception&) {  // third-party code (JSON) that threw past its call site
    res = HttpResponse{};
    if (opt.cors) res.headers.emplace_back("Access-Control-Allow-Origin", "*");
    SendError(res, ApiError{.http_status = 500, .message = "internal error",
                            .type = "server_error"});
  }
  Count(res.status);
}

void HttpServer::Impl::Refuse(Refusal why, const std::string& detail, HttpResponse& res) {
  if (opt.cors) res.headers.emplace_back("Access-Control-Allow-Origin", "*");
  ApiError err;
  switch (why) {
    case Refusal::kMalformedRequest:
      err = {.message = "malformed HTTP request: " + detail, .code = "malformed_request"};
      break;
    case Refusal::kMalformedHeader:
      err = {.message = "malformed HTTP header field (RFC 9110/9112: a token name, a colon, a "
                        "value without control characters, no line folding): " + detail,
             .code = "malformed_header"};
      break;
    case Refusal::kHeaderTooLarge:
      err = {.http_status = 431,
             .message = StrFormat("request header fields too large (at most %zu fields, %zu "
                                  "bytes): %s", kMaxHeaderFields, kMaxHeaderBytes, detail.c_str()),
             .code = "request_header_fields_too_large"};
      break;
    case Refusal::kBodyTooLarge:
      err = {.http_status = 413,
             .message = StrFormat("request body too large (at most %zu bytes)", opt.max_body_bytes),
             .code = "request_too_large"};
      break;
    case Refusal::kReadTimeout:
      err = {.http_status = 408,
             .message = "the request was not received in time (request read timeout)",
             .code = "request_timeout"};
      break;
    case Refusal::kOverCapacity:
      res.headers.emplace_back("Retry-After", "1");
      err = {.http_status = 503,
             .message = "the server is at its limit of open connections; retry shortly",
             .type = "server_error", .code = "too_many_connections"};
      break;
    case Refusal::kShuttingDown:
      err = ShutdownError();
      break;
  }
  SendError(res, err);
  Count(res.status);
}

void HttpServer::Impl::Route(const HttpRequest& req, HttpResponse& res) {
  const std::string& method = req.method;
  const std::string& path = req.path;
  if (opt.cors && method == "OPTIONS") {
    res.headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    res.headers.emplace_back("Access-Control-Allow-Headers", "Authorization, Content-Type");
    res.headers.emplace_back("Access-Control-Max-Age", "86400");
    res.status = 204;
    return;
  }
  const bool protected_path =
      path.starts_with("/v1/") || path == "/tokenize" || path == "/detokenize";
  if (method != "OPTIONS" && protected_path && !Authorized(req)) {
    return SendError(res, ApiError{
        .http_status = 401, .message = "invalid or missing API key (Authorization: Bearer KEY)",
        .type = "invalid_request_error", .code = "invalid_api_key"});
  }
  constexpr std::string_view kModelPrefix = "/v1/models/";
  if (method == "POST") {
    if (path == "/v1/chat/completions") return HandleGenerate(req, res, Endpoint::kChat);
    if (path == "/v1/completions") return HandleGenerate(req, res, Endpoint::kCompletion);
    if (path == "/tokenize") return HandleTokenize(req, res);
    if (path == "/detokenize") return HandleDetokenize(req, res);
  } else if (method == "GET") {
    if (path == "/v1/models") {
      return SendJson(res, 200, json{{"object", "list"}, {"data", json::array({ModelJson()})}});
    }
    if (path.starts_with(kModelPrefix) && path.size() > kModelPrefix.size()) {
      if (auto err = CheckModel(PercentDecode(path.substr(kModelPrefix.size())))) {
        return SendError(res, *err);
      }
      return SendJson(res, 200, ModelJson());
    }
    if (path == "/health") return SendJson(res, 200, json{{"status", "ok"}});
    if (path == "/metrics") return HandleMetrics(res);
    if (path == "/" || path == "/index.html") {
      res.body.assign(reinterpret_cast<const char*>(kIndexHtml), kIndexHtmlSize);
      res.content_type = "text/html; charset=utf-8";
      return;
    }
  }
  SendError(res, ApiError{.http_status = 404, .message = "no route for " + method + " " + path});
}

void HttpServer::Impl::HandleMetrics(HttpResponse& res) {
  HttpCounters http;
  {
    std::lock_guard<std::mutex> lock(counters_mu);
    http.responses_by_status = responses_by_status;
  }
  const ConnectionShared& conns = listener.shared();
  http.in_flight = in_flight.load();
  http.client_disconnects = disconnects.load();
  http.connections_open = conns.open.load();
  http.connections_rejected = conns.rejected.load();
  http.read_timeouts = conns.read_timeouts.load();
  http.stream_stalls = stream_stalls.load();
  res.body = PrometheusText(engine.Metrics(), http);
  res.content_type = "text/plain; version=0.0.4";
}

HttpServer::HttpServer(ServingEngine& engine, ServerOptions options)
    : impl_(std::make_unique<Impl>(engine, std::move(options))) {
  model_id_ = impl_->opt.model_id.empty() ? openai::ModelIdFromPath(engine.Info().path)
                                          : impl_->opt.model_id;
  impl_->model_id = model_id_;
  if (impl_->opt.max_context <= 0) impl_->opt.max_context = engine.MaxContext();
  impl_->accepted_models = impl_->opt.model_aliases;
  impl_->accepted_models.push_back(model_id_);
  impl_->accepted_models.push_back(engine.Info().path);
  impl_->fingerprint = openai::SystemFingerprint(engine.Info().architecture);
  impl_->limits.n_vocab = engine.Info().n_vocab;
  impl_->limits.max_n = impl_->opt.max_n;
}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Bind() {
  Status bound = impl_->listener.Bind(impl_->opt.host, impl_->opt.port);
  if (bound.ok()) port_ = impl_->listener.port();
  return bound;
}

void HttpServer::Run() {
  if (!impl_->draining.load()) impl_->listener.Run();
}

void HttpServer::Stop() {
  Impl& m = *impl_;
  if (m.stop_started.exchange(true)) return;
  const Clock::time_point grace = Clock::now() + std::chrono::seconds(m.opt.shutdown_grace_s);
  m.grace_deadline.store(grace.time_since_epoch().count());
  m.draining.store(true);
  // New connections are refused from now; then every connection is closed, blocked writes
  // included, a second after the grace period.
  m.listener.Drain(grace + 1s);
}

}  // namespace kiln::server
