// Request parsing: every field's type and range, fail-closed fields, the error's `param`.
#include "protocol/request.h"

#include <gtest/gtest.h>

namespace kiln::server {
namespace {

RequestLimits Limits() { return RequestLimits{.n_vocab = 1000}; }

std::optional<ApiError> Chat(const std::string& extra, ParsedRequest* p = nullptr) {
  ParsedRequest local;
  std::string body = R"({"model":"m","messages":[{"role":"user","content":"hi"}])" +
                     (extra.empty() ? "" : "," + extra) + "}";
  return ParseRequest(body, Endpoint::kChat, Limits(), p ? p : &local);
}

TEST(RequestTest, MinimalChat) {
  ParsedRequest p;
  ASSERT_FALSE(Chat("", &p));
  EXPECT_EQ(p.model, "m");
  EXPECT_FALSE(p.stream);
  EXPECT_EQ(p.messages.dump(), R"([{"content":"hi","role":"user"}])");
  EXPECT_EQ(p.sampling.max_tokens, -1);
  EXPECT_EQ(p.sampling.n, 1);
}

TEST(RequestTest, AllSamplingFields) {
  ParsedRequest p;
  ASSERT_FALSE(Chat(R"("temperature":0.5,"top_p":0.9,"presence_penalty":-1,"frequency_penalty":2,
    "max_completion_tokens":7,"n":3,"stop":["a","b"],"seed":-5,"logit_bias":{"12":-100,"7":3.5},
    "logprobs":true,"top_logprobs":4,"user":"u","top_k":20,"min_p":0.1,"repetition_penalty":1.1,
    "min_tokens":2,"ignore_eos":true,"stream":true,"stream_options":{"include_usage":true})", &p));
  const SamplingOptions& s = p.sampling;
  EXPECT_FLOAT_EQ(s.temperature, 0.5f);
  EXPECT_FLOAT_EQ(s.top_p, 0.9f);
  EXPECT_FLOAT_EQ(s.presence_penalty, -1);
  EXPECT_FLOAT_EQ(s.frequency_penalty, 2);
  EXPECT_EQ(s.max_tokens, 7);
  EXPECT_EQ(s.n, 3);
  EXPECT_EQ(s.stop, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(*s.seed, static_cast<uint64_t>(-5));
  EXPECT_FLOAT_EQ(s.logit_bias.at(12), -100);
  EXPECT_FLOAT_EQ(s.logit_bias.at(7), 3.5f);
  EXPECT_TRUE(s.logprobs);
  EXPECT_EQ(s.top_logprobs, 4);
  EXPECT_EQ(s.top_k, 20);
  EXPECT_FLOAT_EQ(s.min_p, 0.1f);
  EXPECT_FLOAT_EQ(s.repetition_penalty, 1.1f);
  EXPECT_EQ(s.min_tokens, 2);
  EXPECT_TRUE(s.ignore_eos);
  EXPECT_TRUE(p.stream);
  EXPECT_TRUE(p.include_usage);
}

TEST(RequestTest, NullMeansAbsent) {
  ParsedRequest p;
  ASSERT_FALSE(Chat(R"("temperature":null,"stop":null,"max_tokens":null,"tools":null)", &p));
  EXPECT_FLOAT_EQ(p.sampling.temperature, 1.0f);
}

TEST(RequestTest, ContentPartsAndRoles) {
  ParsedRequest p;
  std::string body = R"({"model":"m","messages":[
    {"role":"developer","content":"sys"},
    {"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}],"name":"x"},
    {"role":"assistant","content":null,"tool_calls":[]},
    {"role":"tool","content":"r","tool_call_id":"t1"}]})";
  ASSERT_FALSE(ParseRequest(body, Endpoint::kChat, Limits(), &p));
  EXPECT_EQ(p.messages[0]["role"], "system");
  EXPECT_EQ(p.messages[1]["content"], "a\nb");
  EXPECT_EQ(p.messages[1]["name"], "x");
  EXPECT_TRUE(p.messages[2]["content"].is_null());
  EXPECT_EQ(p.messages[3]["tool_call_id"], "t1");
}

struct BadCase {
  std::string extra;
  std::string param;
};

TEST(RequestTest, RejectsWithParam) {
  const BadCase cases[] = {
      {R"("temperature":2.5)", "temperature"},
      {R"("temperature":"hot")", "temperature"},
      {R"("top_p":-0.1)", "top_p"},
      {R"("presence_penalty":3)", "presence_penalty"},
      {R"("frequency_penalty":-2.01)", "frequency_penalty"},
      {R"("max_tokens":0)", "max_tokens"},
      {R"("max_tokens":-1)", "max_tokens"},
      {R"("max_tokens":1.5)", "max_tokens"},
      {R"("max_tokens":99999999999999999999)", "max_tokens"},
      {R"("max_completion_tokens":true)", "max_completion_tokens"},
      {R"("n":0)", "n"},
      {R"("n":17)", "n"},
      {R"("stop":["a","b","c","d","e"])", "stop"},
      {R"("stop":[1])", "stop"},
      {R"("stop":"")", "stop"},
      {R"("stop":[])", "stop"},  // the spec's minItems 1
      {R"("seed":1.5)", "seed"},
      {R"("logit_bias":{"abc":1})", "logit_bias"},
      {R"("logit_bias":{"5":101})", "logit_bias"},
      {R"("logit_bias":{"1000":1})", "logit_bias"},
      {R"("logit_bias":{"-1":1})", "logit_bias"},
      {R"("logit_bias":[1])", "logit_bias"},
      {R"("logprobs":1)", "logprobs"},
      {R"("top_logprobs":3)", "top_logprobs"},
      {R"("logprobs":true,"top_logprobs":21)", "top_logprobs"},
      {R"("stream_options":{"include_usage":true})", "stream_options"},
      {R"("stream":true,"stream_options":{"include_usage":1})", "stream_options.include_usage"},
      {R"("stream":"yes")", "stream"},
      {R"("response_format":{"type":"yaml"})", "response_format.type"},
      {R"("tools":[{"type":"function","function":{"name":"f g"}}])", "tools[0].function.name"},
      {R"("tool_choice":"auto")", "tool_choice"},  // without tools
      {R"("functions":[{"name":"f"}])", "functions"},
      {R"("modalities":["audio"])", "modalities"},
      {R"("user":5)", "user"},
      {R"("top_k":-2)", "top_k"},
      {R"("min_p":1.5)", "min_p"},
      {R"("repetition_penalty":0)", "repetition_penalty"},
      {R"("min_tokens":5,"max_tokens":2)", "min_tokens"},
      {R"("ignore_eos":"true")", "ignore_eos"},
      {R"("best_of":3)", "best_of"},
  };
  for (const BadCase& c : cases) {
    auto err = Chat(c.extra);
    ASSERT_TRUE(err) << c.extra;
    EXPECT_EQ(err->http_status, 400) << c.extra;
    EXPECT_EQ(err->param, c.param) << c.extra << ": " << err->message;
  }
}

TEST(RequestTest, RejectsBadMessages) {
  const BadCase cases[] = {
      {R"({"model":"m"})", "messages"},
      {R"({"model":"m","messages":[]})", "messages"},
      {R"({"model":"m","messages":{}})", "messages"},
      {R"({"model":"m","messages":[1]})", "messages[0]"},
      {R"({"model":"m","messages":[{"content":"x"}]})", "messages[0].role"},
      {R"({"model":"m","messages":[{"role":"wizard","content":"x"}]})", "messages[0].role"},
      {R"({"model":"m","messages":[{"role":"user"}]})", "messages[0].content"},
      {R"({"model":"m","messages":[{"role":"user","content":5}]})", "messages[0].content"},
      {R"({"model":"m","messages":[{"role":"user","content":[]}]})", "messages[0].content"},
      {R"({"model":"m","messages":[{"role":"system","content":"s"},{"role":"assistant",
        "content":[],"tool_calls":[]}]})", "messages[1].content"},
      {R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]})",
       "messages[0].content[0]"},
      {R"({"model":"m","messages":[{"role":"user","content":[{"type":"text"}]}]})",
       "messages[0].content[0].text"},
      {R"({"model":"m","messages":[{"role":"tool","content":"x"}]})", "messages[0].tool_call_id"},
      {R"({"messages":[{"role":"user","content":"x"}]})", "model"},
      {R"({"model":7,"messages":[{"role":"user","content":"x"}]})", "model"},
      {R"([1,2])", ""},
      {R"({"model":"m",)", ""},
      {"", ""},
  };
  for (const BadCase& c : cases) {
    ParsedRequest p;
    auto err = ParseRequest(c.extra, Endpoint::kChat, Limits(), &p);
    ASSERT_TRUE(err) << c.extra;
    EXPECT_EQ(err->http_status, 400);
    EXPECT_EQ(err->param, c.param) << c.extra << ": " << err->message;
  }
}

TEST(RequestTest, DeepNestingAndBadUtf8) {
  ParsedRequest p;
  std::string deep = R"({"model":"m","x":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  auto err = ParseRequest(deep, Endpoint::kChat, Limits(), &p);
  ASSERT_TRUE(err);
  EXPECT_NE(err->message.find("nesting"), std::string::npos);
  std::string bad_utf8 = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}";
  err = ParseRequest(bad_utf8, Endpoint::kChat, Limits(), &p);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->http_status, 400);
  // Brackets inside strings do not count as nesting.
  std::string in_string = R"({"model":"m","messages":[{"role":"user","content":")" +
                          std::string(1000, '[') + R"("}]})";
  EXPECT_FALSE(ParseRequest(in_string, Endpoint::kChat, Limits(), &p));
}

TEST(RequestTest, CompletionPrompts) {
  ParsedRequest p;
  ASSERT_FALSE(ParseRequest(R"({"model":"m","prompt":"hello"})", Endpoint::kCompletion, Limits(), &p));
  EXPECT_EQ(*p.prompt_text, "hello");
  EXPECT_EQ(p.sampling.max_tokens, 16);
  p = {};
  ASSERT_FALSE(ParseRequest(R"({"model":"m","prompt":[1,2,3],"logprobs":2})",
                            Endpoint::kCompletion, Limits(), &p));
  EXPECT_EQ(p.prompt_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_TRUE(p.sampling.logprobs);
  EXPECT_EQ(p.sampling.top_logprobs, 2);
  p = {};
  ASSERT_FALSE(ParseRequest(R"({"model":"m","prompt":[[4,5]]})", Endpoint::kCompletion, Limits(), &p));
  EXPECT_EQ(p.prompt_ids, (std::vector<int32_t>{4, 5}));
  for (const char* bad : {R"({"model":"m"})", R"({"model":"m","prompt":["a","b"]})",
                          R"({"model":"m","prompt":[1,"a"]})", R"({"model":"m","prompt":[5000]})",
                          R"({"model":"m","prompt":[]})", R"({"model":"m","prompt":"a","echo":true})",
                          R"({"model":"m","prompt":"a","suffix":"b"})",
                          R"({"model":"m","prompt":"a","logprobs":true})"}) {
    ParsedRequest q;
    auto err = ParseRequest(bad, Endpoint::kCompletion, Limits(), &q);
    ASSERT_TRUE(err) << bad;
    EXPECT_EQ(err->http_status, 400) << bad;
  }
}

TEST(RequestTest, UnknownFieldsIgnored) {
  EXPECT_FALSE(Chat(R"("store":false,"metadata":{"a":"b"},"service_tier":"auto","x_custom":[1])"));
}

TEST(RequestTest, ErrorFromStatusMapping) {
  EXPECT_EQ(ErrorFromStatus(InvalidArgument("x")).http_status, 400);
  EXPECT_EQ(ErrorFromStatus(NotFound("x")).http_status, 404);
  EXPECT_EQ(ErrorFromStatus(ResourceExhausted("x")).http_status, 429);
  EXPECT_EQ(ErrorFromStatus(Unavailable("x")).http_status, 503);
  EXPECT_EQ(ErrorFromStatus(Internal("x")).http_status, 500);
  nlohmann::json body = ErrorBody(ApiError{.message = "m", .param = "p"});
  EXPECT_EQ(body.dump(),
            R"({"error":{"code":null,"message":"m","param":"p","type":"invalid_request_error"}})");
}

}  // namespace
}  // namespace kiln::server
