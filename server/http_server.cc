// Routes of the OpenAI-compatible server (see http_server.h and docs/server.md).
#include "http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <nlohmann/json.hpp>

#include "connection.h"
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
constexpr int kRejectThreads = 2;           // answer connections over the limit with 503
// Accept-queue length. Debian's cpp-httplib 0.11 listens with a backlog of 5 (compiled into its
// shared library); a burst of connections beyond it overflowed the queue and clients saw
// "connection reset by peer" (test_server_load: 64 clients at once). Bind() listens again
// with this backlog (Linux caps it at net.core.somaxconn).
constexpr int kListenBacklog = 1024;

// Set on the HTTP threads that serve connections over max_connections: every request on them
// is answered 503 and the connection closed.
thread_local bool t_over_capacity = false;

// The socket of the request this HTTP thread serves (a thread serves one connection at a time,
// from reading a request to logging its response). Found once per connection and checked on
// each use: the cached socket is this request's only while it is open with the same peer port
// (a new connection from a reused port is a new socket; the old one is closed by then).
struct CurrentConnection {
  std::string addr;
  int port = -1;
  ConnectionId id;
};
thread_local CurrentConnection t_connection;

ConnectionId RequestConnection(const httplib::Request& req) {
  CurrentConnection& c = t_connection;
  if (c.port != req.remote_port || c.addr != req.remote_addr || !SameConnection(c.id)) {
    c = {req.remote_addr, req.remote_port,
         FindConnection(req.remote_addr, req.remote_port, req.local_port)};
  }
  return c.id;
}

// cpp-httplib's task queue: one worker thread per connection up to max_connections (so an
// accepted connection never waits in a queue), the rest go to a small pool that answers 503.
class ConnectionQueue final : public httplib::TaskQueue {
 public:
  ConnectionQueue(int max_connections, std::atomic<int64_t>* rejected)
      : max_(max_connections), rejected_(rejected), workers_(max_connections),
        rejects_(kRejectThreads) {}
  void enqueue(std::function<void()> fn) override {
    if (active_.load() >= max_) {
      ++*rejected_;
      rejects_.enqueue([fn = std::move(fn)] {
        t_over_capacity = true;
        fn();
        t_over_capacity = false;
      });
      return;
    }
    ++active_;
    workers_.enqueue([this, fn = std::move(fn)] {
      fn();
      --active_;
    });
  }
  void shutdown() override {
    workers_.shutdown();
    rejects_.shutdown();
  }

 private:
  const int64_t max_;
  std::atomic<int64_t>* rejected_;
  std::atomic<int64_t> active_{0};
  httplib::ThreadPool workers_, rejects_;
};

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string ModelIdFromPath(const std::string& path) {
  std::string name = path.substr(path.find_last_of('/') + 1);
  if (name.size() > 5 && name.ends_with(".gguf")) name.resize(name.size() - 5);
  return name.empty() ? "kiln" : name;
}

void SendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(Dump(body), "application/json");
}

void SendError(httplib::Response& res, const ApiError& error) {
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

// One streaming response: turns engine events into SSE text.
struct StreamState {
  std::unique_ptr<RequestStream> stream;
  std::unique_ptr<InFlight> in_flight;
  ResponseMeta meta;
  bool include_usage = false;
  bool want_logprobs = false;
  int32_t n = 1;
  std::vector<size_t> text_offsets;
  bool tools = false;                   // tool calls possible: split text into calls (#7)
  std::vector<ToolCallParser> parsers;  // one per choice when `tools`
  bool started = false, finished = false;
  Clock::time_point deadline, last_write;
  Clock::time_point last_event;  // the engine's last event; unset until the first one

  std::string Start() {
    started = true;
    std::string out;
    if (meta.endpoint == Endpoint::kChat) {
      for (int32_t i = 0; i < n; ++i) out += SseData(RoleChunk(meta, i, include_usage));
    }
    return out;
  }

  std::string Render(const StreamEvent& ev) {
    std::string out;
    bool valid_choice = ev.choice >= 0 && ev.choice < n;
    if (valid_choice && ev.finish_reason == "error") {
      ApiError err{.http_status = 500, .message = ev.error.empty() ? "generation failed" : ev.error,
                   .type = "server_error"};
      out += SseData(ErrorBody(err));
    } else if (valid_choice && tools) {
      ToolCallParser::Output o = parsers[ev.choice].Feed(ev.text);
      std::optional<std::string> reason;
      if (ev.finish_reason) {
        reason = openai::FinishReason(*ev.finish_reason, parsers[ev.choice].IsToolCall());
      }
      if (!o.content.empty() || !o.calls.empty() || reason || !ev.logprobs.empty()) {
        out += SseData(ToolCallChunk(meta, ev.choice, o.content, o.calls, reason, ev.logprobs,
                                     want_logprobs, include_usage));
      }
    } else if (valid_choice && (!ev.text.empty() || ev.finish_reason || !ev.logprobs.empty())) {
      out += SseData(EventChunk(meta, ev, want_logprobs, include_usage, text_offsets[ev.choice]));
      text_offsets[ev.choice] += ev.text.size();
    }
    if (ev.done) out += Finish(ev.usage);
    return out;
  }

  // Ends the stream early where the client sees it: the request is cancelled, then an error
  // event and [DONE] (never a second HTTP response).
  std::string EndWith(const ApiError& error) {
    stream->Cancel();
    finished = true;
    return SseData(ErrorBody(error)) + "data: [DONE]\n\n";
  }

  std::string Finish(const Usage& usage) {
    finished = true;
    std::string out;
    if (include_usage) out += SseData(UsageChunk(meta, usage));
    return out + "data: [DONE]\n\n";
  }
};

// Header fields a request may carry; more are answered 431 (cpp-httplib 0.11 has no limit).
constexpr size_t kMaxHeaderFields = 128;

// RFC 9110 field syntax, which cpp-httplib 0.11 does not check: a name is a token, a value has
// no control characters but HTAB (a NUL or a bare CR smuggled into a value is a 400).
std::optional<ApiError> HeaderError(const httplib::Headers& headers) {
  if (headers.size() > kMaxHeaderFields) {
    return ApiError{.http_status = 431,
                    .message = StrFormat("too many header fields (%zu, at most %zu)",
                                         headers.size(), kMaxHeaderFields),
                    .code = "request_header_fields_too_large"};
  }
  auto tchar = [](unsigned char c) {
    return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                                  std::string_view::npos;
  };
  for (const auto& [name, value] : headers) {
    bool ok = !name.empty() && std::all_of(name.begin(), name.end(), tchar);
    for (unsigned char c : value) ok = ok && (c == '\t' || (c >= 0x20 && c != 0x7f));
    if (!ok) {
      return ApiError{.message = "malformed HTTP header field (RFC 9110: a token name, a value "
                                 "without control characters)",
                      .code = "malformed_header"};
    }
  }
  return std::nullopt;
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

struct HttpServer::Impl {
  ServingEngine& engine;
  ServerOptions opt;
  std::string model_id;
  std::vector<std::string> accepted_models;
  std::string fingerprint;
  RequestLimits limits;
  httplib::Server svr;
  std::atomic<int64_t> in_flight{0};
  std::atomic<int64_t> disconnects{0};
  std::atomic<int64_t> stream_stalls{0};
  std::atomic<int64_t> rejected_connections{0};
  std::mutex counters_mu;
  std::map<int, int64_t> responses_by_status;
  ConnectionWatchdog watchdog;
  // Shutdown (Stop): draining from the first call; in-flight requests are cancelled after
  // grace_deadline.
  std::atomic<bool> stop_started{false};
  std::atomic<bool> draining{false};        // set after grace_deadline
  std::atomic<Clock::rep> grace_deadline{0};
  std::atomic<int> run_state{0};  // 0 Run() not entered, 1 running, 2 returned
  std::atomic<bool> listen_stopped{false};
  int listen_fd = -1;  // cpp-httplib's listening socket (found after Bind)
  ino_t listen_ino = 0;

  Impl(ServingEngine& e, ServerOptions o)
      : engine(e), opt(std::move(o)),
        watchdog({.read_timeout_s = opt.read_timeout_s, .idle_timeout_s = opt.idle_timeout_s}) {}

  // Draining and past the grace period: in-flight requests must end now.
  bool PastGrace() const {
    return draining.load() && Clock::now().time_since_epoch().count() >= grace_deadline.load();
  }

  void Setup();      // options, limits, error shapes, auth, connection handling
  void AddRoutes();  // the endpoints
  bool Authorized(const httplib::Request& req) const;
  std::optional<ApiError> CheckModel(const std::string& model) const;
  std::optional<ApiError> CheckContext(const CompletionRequest& r) const;
  void HandleGenerate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint);
  void RespondOnce(const httplib::Request& req, httplib::Response& res,
                   std::unique_ptr<RequestStream> stream, std::unique_ptr<InFlight> guard,
                   const ParsedRequest& p, ResponseMeta meta);
  void RespondStream(httplib::Response& res, std::unique_ptr<RequestStream> stream,
                     std::unique_ptr<InFlight> guard, const ParsedRequest& p, ResponseMeta meta);
  void HandleTokenize(const httplib::Request& req, httplib::Response& res);
  void HandleDetokenize(const httplib::Request& req, httplib::Response& res);
  json ModelJson() const {
    return json{{"id", model_id}, {"object", "model"}, {"created", 0}, {"owned_by", "kiln"}};
  }
};

bool HttpServer::Impl::Authorized(const httplib::Request& req) const {
  if (opt.api_key.empty()) return true;
  std::string auth = req.get_header_value("Authorization");
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

// OpenAI rejects prompt + max_tokens beyond the context instead of silently clamping.
std::optional<ApiError> HttpServer::Impl::CheckContext(const CompletionRequest& r) const {
  int64_t n_prompt = static_cast<int64_t>(r.prompt_ids.size());
  int64_t want = n_prompt + std::max<int64_t>(r.sampling.max_tokens, 0);
  if (opt.max_context <= 0 || want <= opt.max_context) return std::nullopt;
  bool prompt_too_long = n_prompt >= opt.max_context;
  return ApiError{
      .message = StrFormat("This model's maximum context length is %d tokens. However, you "
                           "requested %lld tokens (%lld in the prompt, %d for the completion). "
                           "Please reduce the prompt or max_tokens.",
                           opt.max_context, static_cast<long long>(want),
                           static_cast<long long>(n_prompt), std::max(r.sampling.max_tokens, 0)),
      .param = prompt_too_long ? "messages" : "max_tokens",
      .code = "context_length_exceeded"};
}

void HttpServer::Impl::HandleGenerate(const httplib::Request& req, httplib::Response& res,
                                      Endpoint endpoint) {
  watchdog.Busy(RequestConnection(req));  // the request is read; no read deadline
  auto guard = std::make_unique<InFlight>(&in_flight);
  if (in_flight.load() > opt.max_concurrent) {
    res.set_header("Retry-After", "1");
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
  if (auto err = CheckContext(creq)) return SendError(res, *err);
  auto stream = engine.Submit(std::move(creq));
  if (!stream.ok()) return SendError(res, ErrorFromStatus(stream.status()));
  ResponseMeta meta{.endpoint = endpoint,
                    .id = NewResponseId(endpoint),
                    .created = UnixNow(),
                    .model = p.model,
                    .system_fingerprint = fingerprint};
  if (p.stream) {
    RespondStream(res, std::move(*stream), std::move(guard), p, std::move(meta));
  } else {
    RespondOnce(req, res, std::move(*stream), std::move(guard), p, std::move(meta));
  }
}

void HttpServer::Impl::RespondOnce(const httplib::Request& req, httplib::Response& res,
                                   std::unique_ptr<RequestStream> stream,
                                   std::unique_ptr<InFlight> guard, const ParsedRequest& p,
                                   ResponseMeta meta) {
  int32_t n = p.sampling.n;
  std::vector<ChoiceResult> choices(n);
  Usage usage;
  std::string error;
  Clock::time_point deadline = Clock::now() + std::chrono::seconds(opt.request_timeout_s);
  // Nothing is written until the answer is complete, so a client that hangs up is noticed by
  // watching its socket for FIN/RST.
  const int fd = RequestConnection(req).fd;
  Clock::time_point next_check = Clock::now() + kPollInterval;
  for (bool done = false; !done;) {
    std::optional<StreamEvent> ev = stream->Next(kPollInterval);
    if (Clock::now() >= next_check) {
      next_check = Clock::now() + kPollInterval;
      if (PeerHungUp(fd)) {
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
      res.set_header("Connection", "close");
      return SendError(res, ShutdownError());
    }
    if (!ev) continue;
    if (ev->choice >= 0 && ev->choice < n) {
      ChoiceResult& c = choices[ev->choice];
      c.text += ev->text;
      c.logprobs.insert(c.logprobs.end(), ev->logprobs.begin(), ev->logprobs.end());
      if (ev->finish_reason) c.finish_reason = *ev->finish_reason;
      if (ev->finish_reason == "error") error = ev->error.empty() ? "generation failed" : ev->error;
    }
    if (ev->done) {
      usage = ev->usage;
      done = true;
    }
  }
  if (!error.empty()) {
    return SendError(res, ApiError{.http_status = 500, .message = error, .type = "server_error"});
  }
  if (p.tools.Active()) {
    for (ChoiceResult& c : choices) {
      ToolCallParser parser(/*tools_active=*/true);
      parser.Feed(c.text);
      if (parser.in_envelope()) {  // as the stream would have sent it (tools.h)
        c.tool_answer = true;
        c.tool_calls = parser.calls();
        c.tool_calls_complete = parser.IsToolCall();
      }
    }
  }
  SendJson(res, 200, CompletionBody(meta, choices, usage, p.sampling.logprobs));
}

void HttpServer::Impl::RespondStream(httplib::Response& res,
                                     std::unique_ptr<RequestStream> stream,
                                     std::unique_ptr<InFlight> guard, const ParsedRequest& p,
                                     ResponseMeta meta) {
  auto st = std::make_shared<StreamState>();
  st->stream = std::move(stream);
  st->in_flight = std::move(guard);
  st->meta = std::move(meta);
  st->include_usage = p.include_usage;
  st->want_logprobs = p.sampling.logprobs;
  st->n = p.sampling.n;
  st->tools = p.tools.Active();
  if (st->tools) st->parsers.assign(st->n, ToolCallParser(/*tools_active=*/true));
  st->text_offsets.assign(st->n, 0);
  st->deadline = Clock::now() + std::chrono::seconds(opt.request_timeout_s);
  st->last_write = Clock::now();
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  auto provider = [this, st](size_t /*offset*/, httplib::DataSink& sink) -> bool {
    std::string out;
    if (!st->started) {
      out = st->Start();
    } else if (PastGrace()) {  // shutdown: the stream's final event
      out = st->EndWith(ShutdownError());
    } else if (Clock::now() > st->deadline) {
      out = st->EndWith({.http_status = 503, .message = "the request timed out",
                         .type = "server_error", .code = "timeout"});
    } else if (st->last_event != Clock::time_point{} &&
               Clock::now() - st->last_event > std::chrono::seconds(opt.stall_timeout_s)) {
      // Started, then nothing from the engine for longer than any step may take: end the
      // stream where the client can see it instead of leaving it waiting.
      ++stream_stalls;
      out = st->EndWith({.http_status = 503,
                         .message = StrFormat("the stream made no progress for %d s and was "
                                              "cancelled", opt.stall_timeout_s),
                         .type = "server_error", .code = "stream_stalled"});
    } else if (std::optional<StreamEvent> ev = st->stream->Next(kPollInterval)) {
      st->last_event = Clock::now();
      out = st->Render(*ev);
      // Drain what is already queued so one write carries several events.
      for (int i = 0; i < 64 && !st->finished; ++i) {
        std::optional<StreamEvent> more = st->stream->Next(0ms);
        if (!more) break;
        out += st->Render(*more);
      }
    } else if (Clock::now() - st->last_write > kKeepAliveInterval) {
      out = ": keep-alive\n\n";
    }
    if (!out.empty()) {
      if (!sink.write(out.data(), out.size())) return false;
      st->last_write = Clock::now();
    }
    if (st->finished) sink.done();
    return true;
  };
  auto releaser = [this, st](bool success) {
    if (!st->finished) {
      st->stream->Cancel();  // the client went away: free its KV blocks
      ++disconnects;
    }
    st->in_flight.reset();
  };
  res.set_chunked_content_provider("text/event-stream", provider, releaser);
}

void HttpServer::Impl::HandleTokenize(const httplib::Request& req, httplib::Response& res) {
  watchdog.Busy(RequestConnection(req));
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

void HttpServer::Impl::HandleDetokenize(const httplib::Request& req, httplib::Response& res) {
  watchdog.Busy(RequestConnection(req));
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

void HttpServer::Impl::Setup() {
  limits.n_vocab = engine.Info().n_vocab;
  limits.max_n = opt.max_n;
  svr.set_payload_max_length(opt.max_body_bytes);
  // Per read; the watchdog's deadline on the whole request comes first (a clean 408).
  svr.set_read_timeout(opt.read_timeout_s + 1, 0);
  svr.set_write_timeout(opt.write_timeout_s, 0);
  svr.set_keep_alive_timeout(opt.idle_timeout_s);
  svr.set_keep_alive_max_count(100);
  const int max_connections =
      opt.max_connections > 0 ? opt.max_connections : opt.max_concurrent + 16;
  svr.new_task_queue = [this, max_connections] {
    return new ConnectionQueue(max_connections, &rejected_connections);
  };
  // After each response is written (streams included): the connection is idle again.
  svr.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    watchdog.Done(RequestConnection(req));
    if (res.get_header_value("Connection") == "close") EndConnection(RequestConnection(req));
  });
  if (opt.cors) {
    svr.set_default_headers({{"Access-Control-Allow-Origin", "*"}});
    svr.Options(R"(.*)", [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
      res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
      res.set_header("Access-Control-Max-Age", "86400");
      res.status = 204;
    });
  }
  svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (t_over_capacity || draining.load()) {
      res.set_header("Connection", "close");
      if (draining.load()) {
        SendError(res, ShutdownError());
      } else {
        res.set_header("Retry-After", "1");
        SendError(res, ApiError{.http_status = 503,
                                .message = "the server is at its limit of open connections; "
                                           "retry shortly",
                                .type = "server_error", .code = "too_many_connections"});
      }
      return httplib::Server::HandlerResponse::Handled;
    }
    if (auto err = HeaderError(req.headers)) {
      res.set_header("Connection", "close");
      SendError(res, *err);
      return httplib::Server::HandlerResponse::Handled;
    }
    bool protected_path = req.path.starts_with("/v1/") || req.path == "/tokenize" ||
                          req.path == "/detokenize";
    if (req.method != "OPTIONS" && protected_path && !Authorized(req)) {
      SendError(res, ApiError{.http_status = 401,
                              .message = "invalid or missing API key (Authorization: Bearer KEY)",
                              .type = "invalid_request_error", .code = "invalid_api_key"});
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  svr.set_post_routing_handler([this](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(counters_mu);
    ++responses_by_status[res.status];
  });
  // Every 4xx/5xx httplib produces itself (404 route, 413 body, 400 request line) gets
  // OpenAI's error shape too.
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    ApiError err{.http_status = res.status, .message = StrFormat("HTTP error %d", res.status)};
    if (res.status == 400) err.message = "malformed HTTP request";
    if (res.status == 404) err.message = "no route for " + req.method + " " + req.path;
    if (res.status == 413) err.message = "request body too large";
    if (res.status >= 500) err.type = "server_error";
    res.set_content(Dump(ErrorBody(err)), "application/json");
  });
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res,
                               std::exception_ptr) {
    SendError(res, ApiError{.http_status = 500, .message = "internal error",
                            .type = "server_error"});
  });
  AddRoutes();
}

void HttpServer::Impl::AddRoutes() {
  svr.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    HandleGenerate(req, res, Endpoint::kChat);
  });
  svr.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    HandleGenerate(req, res, Endpoint::kCompletion);
  });
  svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, json{{"object", "list"}, {"data", json::array({ModelJson()})}});
  });
  svr.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    if (auto err = CheckModel(req.matches[1].str())) return SendError(res, *err);
    SendJson(res, 200, ModelJson());
  });
  svr.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, json{{"status", "ok"}});
  });
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    HttpCounters http;
    {
      std::lock_guard<std::mutex> lock(counters_mu);
      http.responses_by_status = responses_by_status;
    }
    http.in_flight = in_flight.load();
    http.client_disconnects = disconnects.load();
    http.connections_open = watchdog.open_connections();
    http.connections_rejected = rejected_connections.load();
    http.read_timeouts = watchdog.read_timeouts();
    http.stream_stalls = stream_stalls.load();
    res.set_content(PrometheusText(engine.Metrics(), http), "text/plain; version=0.0.4");
  });
  svr.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    HandleTokenize(req, res);
  });
  svr.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    HandleDetokenize(req, res);
  });
  auto page = [](const httplib::Request&, httplib::Response& res) {
    res.set_content(reinterpret_cast<const char*>(kIndexHtml), kIndexHtmlSize,
                    "text/html; charset=utf-8");
  };
  svr.Get("/", page);
  svr.Get("/index.html", page);
}

HttpServer::HttpServer(ServingEngine& engine, ServerOptions options)
    : impl_(std::make_unique<Impl>(engine, std::move(options))) {
  model_id_ = impl_->opt.model_id.empty() ? ModelIdFromPath(engine.Info().path)
                                          : impl_->opt.model_id;
  impl_->model_id = model_id_;
  if (impl_->opt.max_context <= 0) impl_->opt.max_context = engine.MaxContext();
  impl_->accepted_models = impl_->opt.model_aliases;
  impl_->accepted_models.push_back(model_id_);
  impl_->accepted_models.push_back(engine.Info().path);
  impl_->fingerprint = "kiln-0.1.0-" + engine.Info().architecture;
  impl_->Setup();
}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Bind() {
  if (impl_->opt.port == 0) {
    port_ = impl_->svr.bind_to_any_port(impl_->opt.host);
    if (port_ <= 0) return Unavailable("cannot bind %s", impl_->opt.host.c_str());
  } else {
    if (!impl_->svr.bind_to_port(impl_->opt.host, impl_->opt.port)) {
      return Unavailable("cannot listen on %s:%d (address in use or not local?)",
                         impl_->opt.host.c_str(), impl_->opt.port);
    }
    port_ = impl_->opt.port;
  }
  impl_->watchdog.Start(port_);
  impl_->listen_fd = FindListeningSocket(port_, &impl_->listen_ino);
  if (impl_->listen_fd >= 0 && ::listen(impl_->listen_fd, kListenBacklog) != 0) {
    return Unavailable("cannot set the listen backlog on %s:%d", impl_->opt.host.c_str(), port_);
  }
  return Status::Ok();
}

void HttpServer::Run() {
  impl_->run_state.store(1);
  if (!impl_->draining.load()) impl_->svr.listen_after_bind();
  impl_->run_state.store(2);
}

void HttpServer::Stop() {
  Impl& m = *impl_;
  if (!m.stop_started.exchange(true)) {
    const Clock::time_point grace = Clock::now() + std::chrono::seconds(m.opt.shutdown_grace_s);
    m.grace_deadline.store(grace.time_since_epoch().count());
    m.draining.store(true);
    m.watchdog.Drain(grace + 1s);  // then every connection is closed, blocked writes included
  }
  if (m.listen_stopped.exchange(true)) return;
  // Refuse new connections now; the listen loop then ends and waits for the HTTP threads,
  // which end as the in-flight requests do (see PastGrace) or the watchdog closes them.
  if (m.listen_fd >= 0 && ShutDownListeningSocket(m.listen_fd, m.listen_ino)) return;
  // Fallback (socket not found): cpp-httplib's stop, which also cuts streams short. Run() may
  // be between its check of `draining` and the listen loop: wait for it.
  for (int i = 0; i < 1000 && m.run_state.load() == 1 && !m.svr.is_running(); ++i) {
    std::this_thread::sleep_for(1ms);
  }
  if (m.svr.is_running()) m.svr.stop();
}

}  // namespace kiln::server
