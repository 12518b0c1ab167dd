// The shared OpenAI request parser: response_format and tools → Constraint / ToolSet, and the
// error's `param` for each bad input (the rest of the fields: server/protocol/request_test.cc).
#include "kiln/openai.h"

#include <gtest/gtest.h>

namespace kiln::openai {
namespace {

std::optional<RequestError> Chat(const std::string& extra, Request* p = nullptr) {
  Request local;
  std::string body = R"({"model":"m","messages":[{"role":"user","content":"hi"}])" +
                     (extra.empty() ? "" : "," + extra) + "}";
  return ParseRequest(body, Endpoint::kChat, RequestLimits{.n_vocab = 1000}, p ? p : &local);
}

const char* kTool = R"({"type":"function","function":{"name":"get_weather","description":"d",
  "parameters":{"type":"object","properties":{"z":{"type":"string"},"a":{"type":"integer"}}},
  "strict":true}})";

TEST(OpenAiRequestTest, ResponseFormats) {
  Request p;
  ASSERT_FALSE(Chat(R"("response_format":{"type":"text"})", &p));
  EXPECT_EQ(p.response_format.kind, Constraint::Kind::kNone);
  ASSERT_FALSE(Chat(R"("response_format":{"type":"json_object"})", &p));
  EXPECT_EQ(p.response_format.kind, Constraint::Kind::kJsonObject);
  EXPECT_EQ(p.response_format.field, "response_format");
  Request s;
  ASSERT_FALSE(Chat(R"("response_format":{"type":"json_schema","json_schema":{"name":"x",
    "strict":true,"schema":{"type":"object","properties":{"z":{},"a":{}}}}})", &s));
  EXPECT_EQ(s.response_format.kind, Constraint::Kind::kJsonSchema);
  EXPECT_EQ(s.response_format.field, "response_format.json_schema.schema");
  // The schema's property order survives (it is the order of the generated object).
  EXPECT_EQ(s.response_format.text, R"({"type":"object","properties":{"z":{},"a":{}}})");
  // The legacy endpoint accepts it too (as vLLM does).
  Request c;
  ASSERT_FALSE(ParseRequest(R"({"model":"m","prompt":"x","response_format":{"type":"json_object"}})",
                            Endpoint::kCompletion, RequestLimits{}, &c));
  EXPECT_EQ(c.response_format.kind, Constraint::Kind::kJsonObject);
}

TEST(OpenAiRequestTest, Tools) {
  Request p;
  ASSERT_FALSE(Chat(std::string(R"("tools":[)") + kTool + "]", &p));
  ASSERT_EQ(p.tools.tools.size(), 1u);
  EXPECT_EQ(p.tools.choice, ToolChoice::kAuto);  // OpenAI's default with tools
  EXPECT_TRUE(p.tools.parallel);
  EXPECT_EQ(p.tools.tools[0].name, "get_weather");
  EXPECT_TRUE(p.tools.tools[0].strict);
  EXPECT_EQ(p.tools.tools[0].parameters_json,
            R"({"type":"object","properties":{"z":{"type":"string"},"a":{"type":"integer"}}})");
  ASSERT_FALSE(Chat(std::string(R"("tools":[)") + kTool +
                        R"(],"tool_choice":{"type":"function","function":{"name":"get_weather"}},
                        "parallel_tool_calls":false)", &p));
  EXPECT_EQ(p.tools.choice, ToolChoice::kNamed);
  EXPECT_EQ(p.tools.named, "get_weather");
  EXPECT_FALSE(p.tools.parallel);
  Request none;
  ASSERT_FALSE(Chat(std::string(R"("tools":[)") + kTool + R"(],"tool_choice":"none")", &none));
  EXPECT_FALSE(none.tools.Active());
  ASSERT_FALSE(Chat(R"("tool_choice":"none")", &none));
}

TEST(OpenAiRequestTest, ToolMessages) {
  Request p;
  std::string body = R"({"model":"m","messages":[{"role":"user","content":"w?"},
    {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
      "function":{"name":"f","arguments":"{\"a\":1}"}}]},
    {"role":"tool","tool_call_id":"call_1","content":[{"type":"text","text":"ok"}]}]})";
  ASSERT_FALSE(ParseRequest(body, Endpoint::kChat, RequestLimits{}, &p));
  EXPECT_EQ(p.messages_json,
            R"([{"role":"user","content":"w?"},{"role":"assistant","content":null,"tool_calls":)"
            R"([{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},)"
            R"({"role":"tool","content":"ok","tool_call_id":"call_1"}])");
}

TEST(OpenAiRequestTest, BadInputNamesTheField) {
  const std::string tool = std::string(R"("tools":[)") + kTool + "]";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"("response_format":"json")", "response_format"},
      {R"("response_format":{"type":"yaml"})", "response_format.type"},
      {R"("response_format":{"type":"json_schema"})", "response_format.json_schema"},
      {R"("response_format":{"type":"json_schema","json_schema":{"schema":{}}})",
       "response_format.json_schema.name"},
      {R"("response_format":{"type":"json_schema","json_schema":{"name":"a b"}})",
       "response_format.json_schema.name"},
      {R"("response_format":{"type":"json_schema","json_schema":{"name":"a","schema":[]}})",
       "response_format.json_schema.schema"},
      {R"("response_format":{"type":"json_schema","json_schema":{"name":"a","strict":1}})",
       "response_format.json_schema.strict"},
      {R"("tools":{})", "tools"},
      {R"("tools":[1])", "tools[0]"},
      {R"("tools":[{"type":"code_interpreter"}])", "tools[0].type"},
      {R"("tools":[{"type":"function"}])", "tools[0].function"},
      {R"("tools":[{"type":"function","function":{"name":"a.b"}}])", "tools[0].function.name"},
      {R"("tools":[{"type":"function","function":{"name":"f","parameters":"x"}}])",
       "tools[0].function.parameters"},
      {std::string(R"("tools":[)") + kTool + "," + kTool + "]", "tools[1].function.name"},
      {tool + R"(,"tool_choice":"sometimes")", "tool_choice"},
      {tool + R"(,"tool_choice":{"type":"function","function":{"name":"nope"}})", "tool_choice"},
      {R"("tool_choice":"required")", "tool_choice"},
      {tool + R"(,"parallel_tool_calls":"yes")", "parallel_tool_calls"},
      {tool + R"(,"response_format":{"type":"json_object"})", "response_format"},
      {R"("functions":[{"name":"f"}])", "functions"},
  };
  for (const auto& [extra, param] : cases) {
    auto err = Chat(extra);
    ASSERT_TRUE(err) << extra;
    EXPECT_EQ(err->http_status, 400) << extra;
    EXPECT_EQ(err->param, param) << extra << ": " << err->message;
  }
  auto msg = [](const std::string& calls) {
    return R"({"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":)" + calls +
           "}]}";
  };
  const std::vector<std::pair<std::string, std::string>> messages = {
      {R"([{"type":"function","function":{"name":"f","arguments":"{}"}}])",
       "messages[0].tool_calls[0].id"},
      {R"([{"id":"c","function":{"name":"f","arguments":"{bad"}}])",
       "messages[0].tool_calls[0].function.arguments"},
      {R"([{"id":"c","function":{"name":"f","arguments":{}}}])",
       "messages[0].tool_calls[0].function.arguments"},
      {R"([{"id":"c"}])", "messages[0].tool_calls[0].function"},
  };
  for (const auto& [calls, param] : messages) {
    Request p;
    auto err = ParseRequest(msg(calls), Endpoint::kChat, RequestLimits{}, &p);
    ASSERT_TRUE(err) << calls;
    EXPECT_EQ(err->param, param) << calls;
  }
  Request c;
  auto err = ParseRequest(std::string(R"({"model":"m","prompt":"x",)") + tool + "}",
                          Endpoint::kCompletion, RequestLimits{}, &c);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "tools");
}

// Constraints of OpenAI's spec beyond the type (minItems here; every one is swept against the
// spec by tests/py/test_server_spec_constraints.py), and spec-valid inputs kiln cannot honour.
TEST(OpenAiRequestTest, SpecConstraints) {
  auto err = Chat(R"("stop":[])");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "stop");
  EXPECT_EQ(err->message, "'stop' must have at least 1 item");
  Request p;
  err = ParseRequest(R"({"model":"m","messages":[{"role":"user","content":[]}]})", Endpoint::kChat,
                     RequestLimits{}, &p);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "messages[0].content");
  EXPECT_EQ(err->message, "'messages[0].content' must have at least 1 item");
  err = ParseRequest(R"({"model":"m","prompt":"x","stop":[]})", Endpoint::kCompletion,
                     RequestLimits{}, &p);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "stop");
  const std::vector<std::pair<std::string, std::string>> unsupported = {
      {R"([{"role":"function","name":"f","content":"x"}])", "messages[0].role"},
      {R"([{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"custom",
        "custom":{"name":"f","input":"x"}}]}])", "messages[0].tool_calls[0].type"},
  };
  for (const auto& [messages, param] : unsupported) {
    err = ParseRequest(R"({"model":"m","messages":)" + messages + "}", Endpoint::kChat,
                       RequestLimits{}, &p);
    ASSERT_TRUE(err) << messages;
    EXPECT_EQ(err->code, "unsupported_parameter") << messages;
    EXPECT_EQ(err->param, param) << messages;
  }
}

TEST(OpenAiRequestTest, FinishReasons) {
  EXPECT_EQ(FinishReason("stop", true), "tool_calls");
  EXPECT_EQ(FinishReason("length", false), "length");
  EXPECT_EQ(FinishReason("abort", false), "stop");
}

}  // namespace
}  // namespace kiln::openai
