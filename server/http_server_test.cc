// The HTTP layer against a fake ServingEngine: routes, auth, limits, SSE framing, cancellation.
#include "http_server.h"

#include <httplib.h>
#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

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
  }
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
  StatusOr<std::unique_ptr<RequestStream>> Submit(CompletionRequest request) override {
    if (request.prompt_ids.size() > 100) return InvalidArgument("prompt longer than the context");
    return std::unique_ptr<RequestStream>(std::make_unique<FakeStream>(request, &cancels));
  }
  Status CheckConstraint(const Constraint&) const override { return Status::Ok(); }
  EngineMetrics Metrics() const override {
    EngineMetrics m;
    m.ttft_ms_buckets = {10, 100};
    m.ttft_ms_counts = {1, 2, 3};
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

}  // namespace
}  // namespace kiln::server
