// The HTTP layer against a fake ServingEngine: routes, auth, limits, SSE framing, cancellation.
#include "http_server.h"

#include <httplib.h>
#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace kiln::server {
namespace {

using nlohmann::json;

// Emits max_tokens tokens "ab" per choice (id 7), one event each, then finish and done.
class FakeStream : public RequestStream {
 public:
  FakeStream(CompletionRequest req, std::atomic<int>* cancels) : cancels_(cancels) {
    int n_tok = req.sampling.max_tokens > 0 ? req.sampling.max_tokens : 3;
    for (int t = 0; t < n_tok; ++t) {
      for (int c = 0; c < req.sampling.n; ++c) {
        StreamEvent ev{.choice = c, .text = "ab", .token_ids = {7}};
        if (req.sampling.logprobs) {
          ev.logprobs = {{.token = {.id = 7, .text = "ab", .logprob = -0.25f}}};
        }
        if (t + 1 == n_tok) ev.finish_reason = "length";
        events_.push_back(ev);
      }
    }
    StreamEvent done{.done = true};
    done.usage = {.prompt_tokens = static_cast<int32_t>(req.prompt_ids.size()),
                  .completion_tokens = n_tok * req.sampling.n};
    events_.push_back(done);
    slow_ = req.sampling.max_tokens > 1000;
    if (req.sampling.max_tokens == kStallingMaxTokens) events_.resize(3);  // then nothing, ever
  }
  static constexpr int kStallingMaxTokens = 777;
  std::optional<StreamEvent> Next(std::chrono::milliseconds timeout) override {
    if (slow_) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (cancelled_ || events_.empty()) return std::nullopt;
    StreamEvent ev = events_.front();
    events_.pop_front();
    return ev;
  }
  void Cancel() override {
    if (!cancelled_.exchange(true)) ++*cancels_;
  }
  const std::string& id() const override { return id_; }

 private:
  std::deque<StreamEvent> events_;
  std::atomic<bool> cancelled_{false};
  std::atomic<int>* cancels_;
  bool slow_ = false;
  std::string id_ = "r";
};

class FakeEngine : public ServingEngine {
 public:
  FakeEngine() {
    info_.path = "/models/fake.gguf";
    info_.architecture = "llama";
    info_.n_vocab = 256;
  }
  const ModelInfo& Info() const override { return info_; }
  std::string DescribeConfig() const override { return "fake"; }
  int32_t MaxContext() const override { return 1 << 20; }
  Status CheckConstraint(const Constraint& c) const override {
    return c.kind == Constraint::Kind::kNone ? Status::Ok() : InvalidArgument("%s", c.field.c_str());
  }
  StatusOr<std::unique_ptr<RequestStream>> Submit(CompletionRequest request) override {
    if (request.prompt_ids.size() > 100) return InvalidArgument("prompt longer than the context");
    return std::unique_ptr<RequestStream>(std::make_unique<FakeStream>(request, &cancels));
  }
  EngineMetrics Metrics() const override {
    EngineMetrics m;
    m.ttft_ms_buckets = {10, 100};
    m.ttft_ms_counts = {1, 2, 3};
    m.ttft_ms_sum = 1234.5;
    return m;
  }
  StatusOr<std::vector<int32_t>> Tokenize(std::string_view text, bool, bool) const override {
    return std::vector<int32_t>(text.begin(), text.end());
  }
  std::string Detokenize(const std::vector<int32_t>& ids) const override {
    return std::string(ids.begin(), ids.end());
  }
  StatusOr<std::string> ApplyChatTemplate(const std::string& messages_json, const std::string&,
                                          bool) const override {
    std::string out;
    for (const json& m : json::parse(messages_json)) out += m["content"].get<std::string>();
    return out;
  }
  std::atomic<int> cancels{0};

 private:
  ModelInfo info_;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(ServerOptions opt) {
    opt.port = 0;
    server_ = std::make_unique<HttpServer>(engine_, opt);
    ASSERT_TRUE(server_->Bind().ok());
    thread_ = std::thread([this] { server_->Run(); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
  }
  void TearDown() override {
    if (server_) server_->Stop();
    if (thread_.joinable()) thread_.join();
  }
  httplib::Result Post(const std::string& path, const std::string& body,
                       httplib::Headers headers = {}) {
    return client_->Post(path.c_str(), headers, body, "application/json");
  }
  static void ExpectError(const httplib::Result& r, int status) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << r->body;
    json j = json::parse(r->body);
    ASSERT_TRUE(j["error"].is_object()) << r->body;
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_TRUE(j["error"]["type"].is_string());
    EXPECT_TRUE(j["error"].contains("param"));
    EXPECT_TRUE(j["error"].contains("code"));
  }

  FakeEngine engine_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  std::unique_ptr<httplib::Client> client_;
};

constexpr char kChat[] = R"({"model":"fake","messages":[{"role":"user","content":"hello"}],
                            "max_tokens":2,"n":2})";

TEST_F(HttpServerTest, ChatNonStreaming) {
  Start({});
  auto r = Post("/v1/chat/completions", kChat);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "fake");
  ASSERT_EQ(j["choices"].size(), 2u);
  EXPECT_EQ(j["choices"][1]["message"]["content"], "abab");
  EXPECT_EQ(j["choices"][1]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 5);  // "hello" through the fake template/tokenizer
  EXPECT_EQ(j["usage"]["completion_tokens"], 4);
}

TEST_F(HttpServerTest, ChatStreamingFraming) {
  Start({});
  std::string body = R"({"model":"fake","messages":[{"role":"user","content":"hi"}],"max_tokens":3,
                         "stream":true,"stream_options":{"include_usage":true}})";
  auto r = Post("/v1/chat/completions", body);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  std::vector<json> chunks;
  size_t pos = 0;
  bool saw_done = false;
  while (pos < r->body.size()) {
    size_t end = r->body.find("\n\n", pos);
    ASSERT_NE(end, std::string::npos);
    std::string ev = r->body.substr(pos, end - pos);
    pos = end + 2;
    ASSERT_EQ(ev.rfind("data: ", 0), 0u) << ev;
    if (ev == "data: [DONE]") {
      saw_done = true;
      continue;
    }
    chunks.push_back(json::parse(ev.substr(6)));
  }
  EXPECT_TRUE(saw_done);
  ASSERT_EQ(chunks.size(), 1u + 3u + 1u);  // role, 3 tokens, usage
  EXPECT_EQ(chunks[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(chunks[3]["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(chunks.back()["choices"].empty());
  EXPECT_EQ(chunks.back()["usage"]["completion_tokens"], 3);
  for (const json& c : chunks) EXPECT_EQ(c["id"], chunks[0]["id"]);
}

TEST_F(HttpServerTest, CompletionWithLogprobs) {
  Start({});
  auto r = Post("/v1/completions", R"({"model":"fake","prompt":"abc","max_tokens":2,"logprobs":1})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  json j = json::parse(r->body);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], "abab");
  EXPECT_EQ(j["choices"][0]["logprobs"]["text_offset"], json::array({0, 2}));
}

TEST_F(HttpServerTest, Errors) {
  Start({});
  ExpectError(Post("/v1/chat/completions", "{not json"), 400);
  ExpectError(Post("/v1/chat/completions", R"({"model":"other","messages":[{"role":"user","content":"x"}]})"), 404);
  ExpectError(Post("/v1/chat/completions", R"({"model":"fake","messages":[{"role":"user","content":")" +
                                              std::string(200, 'x') + R"("}]})"), 400);
  ExpectError(client_->Get("/nope"), 404);
  ExpectError(Post("/v1/chat/completions", std::string(9 << 20, ' ')), 413);
  auto health = client_->Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST_F(HttpServerTest, ApiKey) {
  Start({.api_key = "sekret"});
  ExpectError(Post("/v1/chat/completions", kChat), 401);
  ExpectError(Post("/v1/chat/completions", kChat, {{"Authorization", "Bearer sekreT"}}), 401);
  auto ok = Post("/v1/chat/completions", kChat, {{"Authorization", "Bearer sekret"}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  auto health = client_->Get("/health");  // not protected
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_TRUE(ApiKeyMatches("abc", "abc"));
  EXPECT_FALSE(ApiKeyMatches("abc", "abcd"));
  EXPECT_FALSE(ApiKeyMatches("", "a"));
}

TEST_F(HttpServerTest, CorsOffByDefault) {
  Start({});
  auto r = client_->Get("/v1/models");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->has_header("Access-Control-Allow-Origin"));
  json j = json::parse(r->body);
  EXPECT_EQ(j["data"][0]["id"], "fake");
}

TEST_F(HttpServerTest, CorsOn) {
  Start({.cors = true});
  auto r = client_->Get("/v1/models");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->get_header_value("Access-Control-Allow-Origin"), "*");
}

TEST_F(HttpServerTest, TokenizeDetokenizeMetricsPage) {
  Start({});
  auto t = Post("/tokenize", R"({"prompt":"AB"})");
  ASSERT_TRUE(t);
  EXPECT_EQ(json::parse(t->body)["tokens"], json::array({65, 66}));
  auto d = Post("/detokenize", R"({"tokens":[65,66]})");
  ASSERT_TRUE(d);
  EXPECT_EQ(json::parse(d->body)["prompt"], "AB");
  ExpectError(Post("/detokenize", R"({"tokens":[999]})"), 400);
  auto m = client_->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("kiln_time_to_first_token_ms_bucket{le=\"+Inf\"} 6"), std::string::npos)
      << m->body;
  EXPECT_NE(m->body.find("kiln_time_to_first_token_ms_sum 1234.5\n"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("kiln_time_to_first_token_ms_count 6\n"), std::string::npos) << m->body;
  EXPECT_NE(m->body.find("kiln_inter_token_latency_ms_sum 0\n"), std::string::npos) << m->body;
  auto page = client_->Get("/");
  ASSERT_TRUE(page);
  EXPECT_NE(page->body.find("<title>kiln chat</title>"), std::string::npos);
}

TEST_F(HttpServerTest, DisconnectCancels) {
  Start({});
  std::string body = R"({"model":"fake","messages":[{"role":"user","content":"hi"}],
                         "max_tokens":100000,"stream":true})";
  int received = 0;
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.body = body;
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++received < 5; };
  auto r = client_->send(req);
  for (int i = 0; i < 100 && engine_.cancels.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(engine_.cancels.load(), 1);
}

// A raw connection that sends one request and can hang up before the answer.
int SendRaw(int port, const std::string& body) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return -1;
  std::string req = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                    "Content-Type: application/json\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body;
  if (send(fd, req.data(), req.size(), 0) != static_cast<ssize_t>(req.size())) return -1;
  return fd;
}

TEST_F(HttpServerTest, NonStreamingDisconnectCancels) {
  Start({});
  // 100000 tokens at 5 ms each: only a cancellation ends this request within the test.
  int fd = SendRaw(server_->port(), R"({"model":"fake","messages":[{"role":"user","content":"hi"}],
                                       "max_tokens":100000})");
  ASSERT_GE(fd, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(engine_.cancels.load(), 0);  // still generating while the client waits
  close(fd);
  for (int i = 0; i < 100 && engine_.cancels.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(engine_.cancels.load(), 1);
  std::string m;
  for (int i = 0; i < 100; ++i) {  // the handler returns just after the cancel
    auto r = client_->Get("/metrics");
    ASSERT_TRUE(r);
    m = r->body;
    if (m.find("kiln_http_requests_in_flight 0\n") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(m.find("kiln_http_client_disconnects_total 1\n"), std::string::npos) << m;
  EXPECT_NE(m.find("kiln_http_requests_in_flight 0\n"), std::string::npos) << m;
}

TEST_F(HttpServerTest, Limits) {
  Start({.max_body_bytes = 4096, .max_concurrent = 1, .max_n = 4});
  ExpectError(Post("/v1/chat/completions", std::string(5000, ' ')), 413);
  ExpectError(Post("/v1/chat/completions",
                   R"({"model":"fake","messages":[{"role":"user","content":"x"}],"n":5})"), 400);
  // One slow request in flight: the next generation request gets 429 with Retry-After.
  int fd = SendRaw(server_->port(), R"({"model":"fake","messages":[{"role":"user","content":"hi"}],
                                       "max_tokens":100000})");
  ASSERT_GE(fd, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto busy = Post("/v1/chat/completions", kChat);
  ExpectError(busy, 429);
  EXPECT_EQ(busy->get_header_value("Retry-After"), "1");
  close(fd);
  for (int i = 0; i < 100 && engine_.cancels.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (int i = 0; i < 100; ++i) {  // the cancelled handler returns soon after
    auto m = client_->Get("/metrics");
    ASSERT_TRUE(m);
    if (m->body.find("kiln_http_requests_in_flight 0\n") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto ok = Post("/v1/chat/completions", kChat);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
}

// A connection from a client port of one's choosing (0: any); *local_port gets the port.
int ConnectFrom(int server_port, int* local_port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_port = htons(static_cast<uint16_t>(*local_port));
  local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof local;
  if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
    close(fd);
    return -1;
  }
  *local_port = ntohs(local.sin_port);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(server_port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{.tv_sec = 20, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

int Connect(int port) {
  int local_port = 0;
  return ConnectFrom(port, &local_port);
}

// Everything the server sends until it closes the connection (or the 20 s receive timeout).
std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<size_t>(n));
  return out;
}

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST_F(HttpServerTest, SlowlorisGets408AfterTheReadTimeout) {
  Start({.read_timeout_s = 1});
  // Headers one byte every 50 ms: every read succeeds (cpp-httplib's per-read timeout never
  // fires), but the whole request is not there after 1 s.
  int fd = Connect(server_->port());
  ASSERT_GE(fd, 0);
  const std::string head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Padding: " +
                           std::string(200, 'a');
  auto t0 = std::chrono::steady_clock::now();
  size_t sent = 0;
  for (; sent < head.size() && SecondsSince(t0) < 5; ++sent) {
    if (send(fd, &head[sent], 1, MSG_NOSIGNAL) != 1) break;  // closed by the server
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::string reply = ReadAll(fd);
  double waited = SecondsSince(t0);
  close(fd);
  EXPECT_LT(sent, head.size());  // the server stopped it before the headers were complete
  EXPECT_GT(waited, 0.9);
  EXPECT_LT(waited, 3.0);
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 408 ")) << reply;
  EXPECT_NE(reply.find(R"("code":"request_timeout")"), std::string::npos) << reply;
  auto m = client_->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("kiln_http_request_read_timeouts_total 1\n"), std::string::npos);
}

TEST_F(HttpServerTest, SlowBodyGets408AndAPromptRequestDoesNot) {
  Start({.read_timeout_s = 1});
  // Complete headers, then the body a byte every 50 ms.
  int fd = Connect(server_->port());
  ASSERT_GE(fd, 0);
  std::string head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     "application/json\r\nContent-Length: 100\r\n\r\n";
  ASSERT_EQ(send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  auto t0 = std::chrono::steady_clock::now();
  int sent = 0;
  for (; sent < 100 && SecondsSince(t0) < 5; ++sent) {
    if (send(fd, " ", 1, MSG_NOSIGNAL) != 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::string reply = ReadAll(fd);
  close(fd);
  EXPECT_LT(sent, 100);
  EXPECT_LT(SecondsSince(t0), 3.0);
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 408 ")) << reply;
  // A keep-alive client whose requests come promptly is not affected, however long it stays.
  for (int i = 0; i < 4; ++i) {
    auto r = Post("/v1/chat/completions", kChat);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
  }
}

TEST_F(HttpServerTest, IdleConnectionIsClosed) {
  Start({.idle_timeout_s = 1});
  int fd = Connect(server_->port());
  ASSERT_GE(fd, 0);
  auto t0 = std::chrono::steady_clock::now();
  std::string reply = ReadAll(fd);  // nothing sent: closed without a response
  close(fd);
  EXPECT_EQ(reply, "");
  EXPECT_LT(SecondsSince(t0), 3.5);
}

TEST_F(HttpServerTest, ConnectionsOverTheLimitGet503) {
  Start({.max_connections = 2});
  int a = Connect(server_->port()), b = Connect(server_->port());
  ASSERT_GE(a, 0);
  ASSERT_GE(b, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // both hold a worker
  auto over = client_->Get("/health");
  ExpectError(over, 503);
  EXPECT_EQ(json::parse(over->body)["error"]["code"], "too_many_connections");
  close(a);
  close(b);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto ok = client_->Get("/health");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  auto m = client_->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("kiln_http_connections_rejected_total 1\n"), std::string::npos);
}

TEST_F(HttpServerTest, StopEndsStreamsAfterTheGracePeriod) {
  Start({.shutdown_grace_s = 1});
  // A stream that would run for minutes (100000 tokens at 5 ms).
  int fd = SendRaw(server_->port(), R"({"model":"fake","messages":[{"role":"user","content":"hi"}],
                                       "max_tokens":100000,"stream":true})");
  ASSERT_GE(fd, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  auto t0 = std::chrono::steady_clock::now();
  server_->Stop();
  EXPECT_LT(Connect(server_->port()), 0);  // not accepting any more
  std::string body = ReadAll(fd);
  close(fd);
  thread_.join();  // Run() returned
  const double took = SecondsSince(t0);
  EXPECT_GT(took, 0.9);  // the grace period
  EXPECT_LT(took, 3.0);
  EXPECT_NE(body.find(R"("code":"server_shutdown")"), std::string::npos) << body.substr(0, 300);
  EXPECT_NE(body.find("data: [DONE]"), std::string::npos);
  EXPECT_EQ(engine_.cancels.load(), 1);
}

std::string ChatRequest(const std::string& body) {
  return "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
         "Content-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// Issue #22: the watchdog knew connections by the peer's port. A client that closed one
// connection and opened the next from the same port before the next scan had its new stream
// taken for a request still being read: after the read timeout a 408 was written into the
// middle of the SSE stream and the connection cut. Connections are now known by their socket.
TEST_F(HttpServerTest, ClientPortReuseKeepsTheStream) {
  Start({.read_timeout_s = 1});
  int port = 0;
  int first = ConnectFrom(server_->port(), &port);
  ASSERT_GE(first, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));  // a scan sees this socket
  const std::string once = ChatRequest(R"({"model":"fake","messages":[{"role":"user","content":"x"}],
                                          "max_tokens":2})");
  ASSERT_EQ(send(first, once.data(), once.size(), MSG_NOSIGNAL), static_cast<ssize_t>(once.size()));
  std::string reply = ReadAll(first);
  close(first);
  ASSERT_TRUE(reply.starts_with("HTTP/1.1 200 ")) << reply;
  // At once, from the same port: a stream of ~6 s (the fake's slow mode), far past the 1 s
  // read timeout.
  int second = ConnectFrom(server_->port(), &port);
  ASSERT_GE(second, 0);
  const std::string stream = ChatRequest(R"({"model":"fake","messages":[{"role":"user","content":"x"}],
                                            "max_tokens":1200,"stream":true})");
  ASSERT_EQ(send(second, stream.data(), stream.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(stream.size()));
  reply = ReadAll(second);
  close(second);
  ASSERT_TRUE(reply.starts_with("HTTP/1.1 200 ")) << reply.substr(0, 200);
  EXPECT_EQ(reply.find("HTTP/1.1 408"), std::string::npos) << reply.substr(reply.size() - 400);
  EXPECT_NE(reply.find("data: [DONE]"), std::string::npos) << reply.substr(reply.size() - 400);
  auto m = client_->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("kiln_http_request_read_timeouts_total 0\n"), std::string::npos);
  EXPECT_EQ(engine_.cancels.load(), 0);
}

TEST_F(HttpServerTest, StalledStreamEndsWithAnErrorEvent) {
  Start({.stall_timeout_s = 1});
  auto t0 = std::chrono::steady_clock::now();
  auto s = Post("/v1/chat/completions", R"({"model":"fake","messages":[{"role":"user","content":"x"}],
                                          "max_tokens":777,"stream":true})");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, 200);
  EXPECT_LT(SecondsSince(t0), 4.0);
  EXPECT_NE(s->body.find(R"("code":"stream_stalled")"), std::string::npos) << s->body;
  EXPECT_TRUE(s->body.ends_with("data: [DONE]\n\n")) << s->body;
  EXPECT_EQ(engine_.cancels.load(), 1);
  auto m = client_->Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_NE(m->body.find("kiln_http_stream_stalls_total 1\n"), std::string::npos);
  // A stream that keeps making progress is never taken for a stalled one.
  auto ok = Post("/v1/chat/completions", R"({"model":"fake","messages":[{"role":"user","content":"x"}],
                                           "max_tokens":1100,"stream":true})");  // ~5.5 s
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->body.find("stream_stalled"), std::string::npos);
  EXPECT_EQ(engine_.cancels.load(), 1);
}

// Sends `request` on a new connection and reads until the server closes it, which must be
// within 2 s: a refused request's connection is closed at once even though keep-alive was
// asked for (not after the 5 s idle timeout).
std::string ExchangeUntilClosed(int port, const std::string& request) {
  int fd = Connect(port);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  auto t0 = std::chrono::steady_clock::now();
  std::string reply = ReadAll(fd);
  EXPECT_LT(SecondsSince(t0), 2.0) << reply.substr(0, 100);
  close(fd);
  return reply;
}

// Hostile header corpus (#22): what RFC 9110/9112 forbid is refused and the connection closed.
TEST_F(HttpServerTest, MalformedOrTooManyHeaderFieldsAreRefused) {
  Start({});
  auto send_raw = [&](const std::string& headers) {
    return ExchangeUntilClosed(server_->port(),
                               "GET /health HTTP/1.1\r\nHost: x\r\n" + headers + "\r\n");
  };
  auto expect_400 = [](const std::string& reply, const char* code) {
    EXPECT_TRUE(reply.starts_with("HTTP/1.1 400 ")) << reply;
    EXPECT_NE(reply.find(std::string("\"code\":\"") + code + "\""), std::string::npos) << reply;
    EXPECT_NE(reply.find("\r\nConnection: close\r\n"), std::string::npos) << reply;
  };
  EXPECT_TRUE(send_raw("X-Ok: fine\tvalue\r\nConnection: close\r\n").starts_with("HTTP/1.1 200 "));
  expect_400(send_raw(std::string("X-A: a\0b\r\n", 10)), "malformed_header");
  expect_400(send_raw("X-A: a\x01" "b\r\n"), "malformed_header");
  expect_400(send_raw("Bad Name: v\r\n"), "malformed_header");
  // A field line without a colon: cpp-httplib 0.11 dropped it and answered 200.
  expect_400(send_raw("X-A: a\r\nNoColonHere\r\n"), "malformed_header");
  expect_400(send_raw("No colon at all\r\n"), "malformed_header");
  // Obsolete line folding (a continuation line starting with a space or a tab).
  expect_400(send_raw("X-A: a\r\n folded\r\n"), "malformed_header");
  expect_400(send_raw("X-A: a\r\n\tfolded\r\n"), "malformed_header");
  std::string many;
  for (int i = 0; i < 3000; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  std::string too_many = send_raw(many);
  EXPECT_TRUE(too_many.starts_with("HTTP/1.1 431 ")) << too_many.substr(0, 200);
  EXPECT_NE(too_many.find("request_header_fields_too_large"), std::string::npos);
  std::string huge = send_raw("X-Big: " + std::string(100 << 10, 'a') + "\r\n");
  EXPECT_TRUE(huge.starts_with("HTTP/1.1 431 ")) << huge.substr(0, 200);
  // The server keeps serving.
  auto ok = client_->Get("/health");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST_F(HttpServerTest, MalformedRequestLinesAndFramingAreRefused) {
  Start({});
  for (const char* line : {"GET /health HTTP/1.x", "GET /health HTTP/11", "GET /health HTTX/1.1",
                           "GET /health HTTP/2.0", "GET /health", "G@T /health HTTP/1.1"}) {
    std::string reply =
        ExchangeUntilClosed(server_->port(), std::string(line) + "\r\nHost: x\r\n\r\n");
    EXPECT_TRUE(reply.starts_with("HTTP/1.1 400 ")) << line << ": " << reply;
    EXPECT_NE(reply.find("\"code\":\"malformed_request\""), std::string::npos) << reply;
  }
  // Both Content-Length and chunked (request smuggling), two lengths, a bad length.
  for (const char* framing : {"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
                              "Content-Length: 3\r\nContent-Length: 4\r\n",
                              "Content-Length: 3x\r\n"}) {
    std::string reply = ExchangeUntilClosed(
        server_->port(), std::string("POST /tokenize HTTP/1.1\r\nHost: x\r\n") + framing +
                             "\r\n3\r\nabc\r\n0\r\n\r\n");
    EXPECT_TRUE(reply.starts_with("HTTP/1.1 400 ")) << framing << ": " << reply;
  }
}

// Keep-alive: pipelined requests are answered in order on one connection; "Connection:
// close" ends it after its response. Chunked request bodies, HEAD, HTTP/1.0 and "Expect:
// 100-continue" work.
TEST_F(HttpServerTest, KeepAlivePipeliningChunkedBodies) {
  Start({});
  const std::string body = R"({"prompt":"AB"})";
  std::string reqs = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                     "POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\n{\"pro\r\na\r\n" + body.substr(5) +  // chunks of 5 and 0xa bytes
                     "\r\n0\r\n\r\n"
                     "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  std::string reply = ExchangeUntilClosed(server_->port(), reqs);
  std::vector<size_t> starts;
  for (size_t at = reply.find("HTTP/1.1 "); at != std::string::npos;
       at = reply.find("HTTP/1.1 ", at + 1)) {
    EXPECT_EQ(reply.compare(at, 13, "HTTP/1.1 200 "), 0) << reply;
    starts.push_back(at);
  }
  ASSERT_EQ(starts.size(), 3u) << reply;
  const size_t third = starts[2];
  EXPECT_NE(reply.find(R"({"status":"ok"})"), std::string::npos);
  EXPECT_NE(reply.find(R"("tokens":[65,66])"), std::string::npos) << reply;
  EXPECT_NE(reply.find(R"("object":"list")", third), std::string::npos);
  // At most kMaxRequestsPerConnection requests on one connection: the 100th response says
  // "Connection: close", and the 101st request is not answered.
  std::string hundred_and_one;
  for (int i = 0; i < 101; ++i) hundred_and_one += "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
  reply = ExchangeUntilClosed(server_->port(), hundred_and_one);
  size_t n_ok = 0, last = 0;
  for (size_t at = reply.find("HTTP/1.1 200 "); at != std::string::npos;
       at = reply.find("HTTP/1.1 200 ", at + 1)) {
    ++n_ok;
    last = at;
  }
  EXPECT_EQ(n_ok, 100u);
  EXPECT_NE(reply.find("Connection: close\r\n", last), std::string::npos);
  EXPECT_EQ(reply.find("Connection: close\r\n"), reply.find("Connection: close\r\n", last));
  // HEAD: GET's status and fields, no body. HTTP/1.0: no keep-alive unless asked for.
  reply = ExchangeUntilClosed(server_->port(),
                              "HEAD /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 200 ")) << reply;
  EXPECT_NE(reply.find("Content-Length: 15\r\n"), std::string::npos) << reply;
  EXPECT_TRUE(reply.ends_with("\r\n\r\n")) << reply;
  reply = ExchangeUntilClosed(server_->port(), "GET /health HTTP/1.0\r\n\r\n");
  EXPECT_TRUE(reply.starts_with("HTTP/1.0 200 ")) << reply;
  EXPECT_TRUE(reply.ends_with(R"({"status":"ok"})")) << reply;
  // A client that waits for 100 Continue before sending its body.
  int fd = Connect(server_->port());
  ASSERT_GE(fd, 0);
  std::string head = "POST /tokenize HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                     "Connection: close\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\n\r\n";
  ASSERT_EQ(send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  char buf[256];
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  ASSERT_GT(n, 0);
  EXPECT_TRUE(std::string(buf, n).starts_with("HTTP/1.1 100 Continue\r\n")) << std::string(buf, n);
  ASSERT_EQ(send(fd, body.data(), body.size(), MSG_NOSIGNAL), static_cast<ssize_t>(body.size()));
  reply = ReadAll(fd);
  close(fd);
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 200 ")) << reply;
  EXPECT_NE(reply.find(R"("tokens":[65,66])"), std::string::npos) << reply;
}

TEST_F(HttpServerTest, RequestTimeoutCancels) {
  Start({.request_timeout_s = 1});
  auto r = Post("/v1/chat/completions", R"({"model":"fake","messages":[{"role":"user","content":"x"}],
                                          "max_tokens":100000})");
  ExpectError(r, 503);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "timeout");
  EXPECT_EQ(engine_.cancels.load(), 1);
  // Streaming: an error event, then [DONE], while tokens keep flowing.
  auto s = Post("/v1/chat/completions", R"({"model":"fake","messages":[{"role":"user","content":"x"}],
                                          "max_tokens":100000,"stream":true})");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status, 200);
  EXPECT_NE(s->body.find(R"("code":"timeout")"), std::string::npos);
  EXPECT_TRUE(s->body.ends_with("data: [DONE]\n\n"));
  EXPECT_EQ(engine_.cancels.load(), 2);
}

}  // namespace
}  // namespace kiln::server
