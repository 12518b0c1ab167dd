// Response shapes: the fields OpenAI's schema requires, logprob objects; the stream renderer
// and the whole-response collector over a scripted event sequence.
#include "kiln/openai_response.h"

#include <gtest/gtest.h>

namespace kiln::openai {
namespace {

using nlohmann::json;

ResponseMeta Meta(Endpoint e) {
  return ResponseMeta{.endpoint = e, .id = "id-1", .created = 42, .model = "m",
                      .system_fingerprint = "fp"};
}

TEST(ResponseTest, Ids) {
  std::string a = NewResponseId(Endpoint::kChat), b = NewResponseId(Endpoint::kChat);
  EXPECT_EQ(a.rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(a.size(), 9u + 24u);
  EXPECT_NE(a, b);
  EXPECT_EQ(NewResponseId(Endpoint::kCompletion).rfind("cmpl-", 0), 0u);
}

TEST(ResponseTest, ChatBody) {
  LogprobEntry e;
  e.token = TokenLogprob{.id = 5, .text = "hi", .logprob = -0.5f};
  e.top.push_back(TokenLogprob{.id = 5, .text = "hi", .logprob = -0.5f});
  e.top.push_back(TokenLogprob{.id = 6, .text = "ho", .logprob = -1.5f});
  std::vector<ChoiceResult> choices = {{.text = "hi", .logprobs = {e}, .finish_reason = "length"},
                                       {.text = "", .finish_reason = "stop"}};
  json body = CompletionBody(Meta(Endpoint::kChat), choices,
                             Usage{.prompt_tokens = 3, .completion_tokens = 1, .cached_tokens = 2},
                             true);
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["choices"][0]["message"]["content"], "hi");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(body["choices"][1]["index"], 1);
  json lp = body["choices"][0]["logprobs"]["content"][0];
  EXPECT_EQ(lp["token"], "hi");
  EXPECT_EQ(lp["bytes"], json::array({104, 105}));
  EXPECT_EQ(lp["top_logprobs"].size(), 2u);
  EXPECT_EQ(body["usage"]["total_tokens"], 4);
  EXPECT_EQ(body["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
}

TEST(ResponseTest, LegacyLogprobsOffsets) {
  std::vector<LogprobEntry> es = {{.token = {.id = 1, .text = "ab", .logprob = -1}},
                                  {.token = {.id = 2, .text = "c", .logprob = -2}}};
  json lp = LegacyLogprobs(es, 10);
  EXPECT_EQ(lp["tokens"], json::array({"ab", "c"}));
  EXPECT_EQ(lp["text_offset"], json::array({10, 12}));
  EXPECT_EQ(lp["top_logprobs"].size(), 2u);
}

TEST(ResponseTest, Chunks) {
  ResponseMeta meta = Meta(Endpoint::kChat);
  json role = RoleChunk(meta, 1, true);
  EXPECT_EQ(role["object"], "chat.completion.chunk");
  EXPECT_EQ(role["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(role["usage"].is_null());
  StreamEvent ev{.choice = 1, .text = "x", .finish_reason = "stop"};
  json c = EventChunk(meta, ev, false, false, 0);
  EXPECT_EQ(c["choices"][0]["delta"]["content"], "x");
  EXPECT_EQ(c["choices"][0]["finish_reason"], "stop");
  EXPECT_FALSE(c.contains("usage"));
  json u = UsageChunk(meta, Usage{.prompt_tokens = 1});
  EXPECT_TRUE(u["choices"].empty());
  EXPECT_EQ(u["usage"]["prompt_tokens"], 1);
  json t = EventChunk(Meta(Endpoint::kCompletion), ev, false, false, 0);
  EXPECT_EQ(t["object"], "text_completion");
  EXPECT_EQ(t["choices"][0]["text"], "x");
}

Request ChatRequest(int32_t n, bool include_usage) {
  Request r;
  r.endpoint = Endpoint::kChat;
  r.include_usage = include_usage;
  r.sampling.n = n;
  return r;
}

std::vector<json> Parse(const std::vector<std::string>& texts) {
  std::vector<json> out;
  for (const std::string& t : texts) out.push_back(json::parse(t));
  return out;
}

TEST(ChunkRendererTest, RoleChunksThenDeltasThenUsage) {
  ChunkRenderer r(Meta(Endpoint::kChat), ChatRequest(2, /*include_usage=*/true));
  std::vector<std::string> out;
  r.Start(&out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(json::parse(out[1])["choices"][0]["index"], 1);
  out.clear();
  EXPECT_FALSE(r.Render(StreamEvent{.choice = 0, .text = "a"}, &out));
  EXPECT_FALSE(r.Render(StreamEvent{.choice = 1, .text = ""}, &out));  // nothing to send
  EXPECT_FALSE(r.Render(StreamEvent{.choice = 7, .text = "x"}, &out));  // no such choice
  EXPECT_FALSE(r.finished());
  EXPECT_FALSE(r.Render(StreamEvent{.choice = 1, .text = "b", .finish_reason = "length"}, &out));
  EXPECT_FALSE(r.Render(StreamEvent{.choice = 0, .finish_reason = "abort", .done = true,
                                    .usage = {.prompt_tokens = 3, .completion_tokens = 2}},
                        &out));
  EXPECT_TRUE(r.finished());
  std::vector<json> chunks = Parse(out);
  ASSERT_EQ(chunks.size(), 4u);
  EXPECT_EQ(chunks[0]["choices"][0]["delta"]["content"], "a");
  EXPECT_TRUE(chunks[0]["usage"].is_null());
  EXPECT_EQ(chunks[1]["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(chunks[2]["choices"][0]["finish_reason"], "stop");  // abort is reported as stop
  EXPECT_TRUE(chunks[3]["choices"].empty());
  EXPECT_EQ(chunks[3]["usage"]["total_tokens"], 5);
}

TEST(ChunkRendererTest, EngineErrorIsReturnedNotRendered) {
  ChunkRenderer r(Meta(Endpoint::kCompletion), ChatRequest(1, false));
  std::vector<std::string> out;
  r.Start(&out);
  EXPECT_TRUE(out.empty());  // completions have no role chunk
  std::optional<RequestError> err =
      r.Render(StreamEvent{.finish_reason = "error", .error = "boom", .done = true}, &out);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->http_status, 500);
  EXPECT_EQ(err->message, "boom");
  EXPECT_EQ(ErrorBody(*err)["error"]["type"], "server_error");
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(r.finished());
}

TEST(ChunkRendererTest, StreamAndWholeResponseAgreeOnToolCalls) {
  Request req = ChatRequest(1, false);
  req.tools.tools.push_back(ToolDefinition{.name = "get_weather"});
  req.tools.choice = ToolChoice::kAuto;
  ASSERT_TRUE(req.tools.Active());
  const std::vector<std::string> deltas = {"{\"tool_calls\": [{\"name\": \"get_weather\", ",
                                           "\"arguments\": {\"city\": \"Paris\"}}]}"};
  ChunkRenderer r(Meta(Endpoint::kChat), req);
  ResponseCollector c(Meta(Endpoint::kChat), req);
  std::vector<std::string> out;
  for (size_t i = 0; i < deltas.size(); ++i) {
    StreamEvent ev{.text = deltas[i]};
    if (i + 1 == deltas.size()) {
      ev.finish_reason = "stop";
      ev.done = true;
    }
    EXPECT_FALSE(r.Render(ev, &out));
    c.Add(ev);
  }
  ASSERT_TRUE(c.done());
  ASSERT_FALSE(c.error());
  json body = c.Body();
  EXPECT_TRUE(body["choices"][0]["message"]["content"].is_null());
  EXPECT_EQ(body["choices"][0]["finish_reason"], "tool_calls");
  json call = body["choices"][0]["message"]["tool_calls"][0];
  EXPECT_EQ(call["function"]["name"], "get_weather");
  std::string streamed_args, streamed_id, finish;
  for (const json& chunk : Parse(out)) {
    const json& choice = chunk["choices"][0];
    if (!choice["finish_reason"].is_null()) finish = choice["finish_reason"];
    if (!choice["delta"].contains("tool_calls")) continue;
    const json& d = choice["delta"]["tool_calls"][0];
    if (d.contains("id")) streamed_id = d["id"];
    streamed_args += d["function"]["arguments"].get<std::string>();
  }
  EXPECT_EQ(finish, "tool_calls");
  EXPECT_EQ(json::parse(streamed_args), json::parse(call["function"]["arguments"].get<std::string>()));
  EXPECT_FALSE(streamed_id.empty());
}

TEST(ResponseCollectorTest, AccumulatesChoicesAndReportsErrors) {
  ResponseCollector c(Meta(Endpoint::kCompletion), ChatRequest(2, false));
  c.Add(StreamEvent{.choice = 1, .text = "he"});
  c.Add(StreamEvent{.choice = 0, .text = "x", .finish_reason = "stop"});
  c.Add(StreamEvent{.choice = 1, .text = "llo", .finish_reason = "length", .done = true,
                    .usage = {.prompt_tokens = 1, .completion_tokens = 3}});
  ASSERT_TRUE(c.done());
  json body = c.Body();
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["choices"][1]["text"], "hello");
  EXPECT_EQ(body["choices"][1]["finish_reason"], "length");
  EXPECT_EQ(body["usage"]["completion_tokens"], 3);
  ResponseCollector e(Meta(Endpoint::kChat), ChatRequest(1, false));
  e.Add(StreamEvent{.finish_reason = "error", .done = true});
  ASSERT_TRUE(e.error());
  EXPECT_EQ(e.error()->message, "generation failed");
}

TEST(ResponseTest, ModelIdAndFingerprint) {
  EXPECT_EQ(ModelIdFromPath("/m/SmolLM2.Q4_1.gguf"), "SmolLM2.Q4_1");
  EXPECT_EQ(ModelIdFromPath("/m/folder"), "folder");
  EXPECT_EQ(ModelIdFromPath("/m/"), "kiln");
  EXPECT_EQ(SystemFingerprint("llama"), "kiln-0.1.0-llama");
}

}  // namespace
}  // namespace kiln::openai
