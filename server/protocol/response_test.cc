// Response shapes: the fields OpenAI's schema requires, logprob objects, SSE framing.
#include "protocol/response.h"

#include <gtest/gtest.h>

namespace kiln::server {
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

TEST(ResponseTest, SseReplacesInvalidUtf8) {
  std::string s = SseData(json{{"t", std::string("a\xe2\x82")}});
  EXPECT_EQ(s, "data: {\"t\":\"a\xef\xbf\xbd\"}\n\n");
}

}  // namespace
}  // namespace kiln::server
