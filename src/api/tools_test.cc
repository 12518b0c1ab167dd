// Tool calling: the envelope grammar accepts exactly well-formed calls of the offered tools,
// the parser splits streamed text into OpenAI tool-call deltas, the template fallback.
#include "kiln/tools.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "grammar/test_util.h"

namespace kiln {
namespace {

using grammar::testing::ByteVocab;
using grammar::testing::Matches;

ToolSet Weather(ToolChoice choice, bool parallel = true) {
  ToolSet s;
  s.tools.push_back({.name = "get_weather",
                     .parameters_json = R"({"type":"object","properties":{"city":{"type":"string"},
                       "unit":{"enum":["c","f"]}},"required":["city"],"additionalProperties":false})"});
  s.tools.push_back({.name = "get_time",
                     .parameters_json = R"({"$defs":{"tz":{"type":"string","maxLength":8}},
                       "type":"object","properties":{"tz":{"$ref":"#/$defs/tz"}},
                       "required":["tz"],"additionalProperties":false})"});
  s.tools_json = "[]";
  s.choice = choice;
  s.parallel = parallel;
  if (choice == ToolChoice::kNamed) s.named = "get_time";
  return s;
}

std::shared_ptr<const grammar::CompiledGrammar> Compile(const Constraint& c) {
  auto g = grammar::Grammar::FromGbnf(c.text);
  EXPECT_TRUE(g.ok()) << g.status().message() << "\n" << c.text;
  return grammar::CompiledGrammar::Compile(std::move(*g), ByteVocab());
}

const char* kOneCall = R"({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]})";
const char* kTwoCalls =
    R"({"tool_calls":[{"name":"get_weather","arguments":{"city":"Oslo","unit":"c"}},)"
    R"({"name":"get_time","arguments":{"tz":"UTC"}}]})";

TEST(ToolConstraintTest, RequiredAcceptsOnlyCalls) {
  auto c = BuildToolConstraint(Weather(ToolChoice::kRequired));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->kind, Constraint::Kind::kGbnf);
  auto cg = Compile(*c);
  EXPECT_TRUE(Matches(cg, kOneCall));
  EXPECT_TRUE(Matches(cg, kTwoCalls));
  EXPECT_FALSE(Matches(cg, "Hello"));
  EXPECT_FALSE(Matches(cg, R"({"tool_calls":[]})"));
  EXPECT_FALSE(Matches(cg, R"({"tool_calls":[{"name":"nope","arguments":{}}]})"));
  EXPECT_FALSE(Matches(cg, R"({"tool_calls":[{"name":"get_weather","arguments":{}}]})"));
  EXPECT_FALSE(Matches(cg, R"({"tool_calls":[{"name":"get_time","arguments":{"tz":"123456789"}}]})"));
  EXPECT_FALSE(Matches(cg, R"({"tool_calls":[{"name":"get_weather","arguments":{"city":"P","unit":"k"}}]})"));
}

TEST(ToolConstraintTest, NamedAndSequential) {
  auto named = BuildToolConstraint(Weather(ToolChoice::kNamed));
  ASSERT_TRUE(named.ok());
  auto cg = Compile(*named);
  EXPECT_FALSE(Matches(cg, kOneCall));
  EXPECT_TRUE(Matches(cg, R"({"tool_calls":[{"name":"get_time","arguments":{"tz":"CET"}}]})"));
  auto single = BuildToolConstraint(Weather(ToolChoice::kRequired, /*parallel=*/false));
  ASSERT_TRUE(single.ok());
  auto cg1 = Compile(*single);
  EXPECT_TRUE(Matches(cg1, kOneCall));
  EXPECT_FALSE(Matches(cg1, kTwoCalls));
  // Parallel: at most kMaxParallelToolCalls calls.
  auto many = BuildToolConstraint(Weather(ToolChoice::kRequired));
  ASSERT_TRUE(many.ok());
  auto cgm = Compile(*many);
  auto calls = [](int n) {
    std::string s = R"({"tool_calls":[)";
    for (int i = 0; i < n; ++i) s += std::string(i ? "," : "") + R"({"name":"get_time","arguments":{"tz":"UTC"}})";
    return s + "]}";
  };
  EXPECT_TRUE(Matches(cgm, calls(kMaxParallelToolCalls)));
  EXPECT_FALSE(Matches(cgm, calls(kMaxParallelToolCalls + 1)));
}

TEST(ToolConstraintTest, AutoAllowsTextNotStartingWithBrace) {
  auto c = BuildToolConstraint(Weather(ToolChoice::kAuto));
  ASSERT_TRUE(c.ok());
  auto cg = Compile(*c);
  EXPECT_TRUE(Matches(cg, kOneCall));
  EXPECT_TRUE(Matches(cg, "It is sunny in Paris {maybe}."));
  EXPECT_TRUE(Matches(cg, "\xC3\xA9t\xC3\xA9"));
  EXPECT_FALSE(Matches(cg, "{not a call}"));
  EXPECT_FALSE(Matches(cg, ""));
}

TEST(ToolConstraintTest, BadSchemaNamesToolAndKeyword) {
  ToolSet s = Weather(ToolChoice::kAuto);
  s.tools[1].parameters_json = R"({"type":"object","properties":{"a":{"not":{"type":"string"}}}})";
  auto c = BuildToolConstraint(s);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("tools[1].function.parameters: "), std::string::npos)
      << c.status().message();
  EXPECT_NE(c.status().message().find("'not'"), std::string::npos) << c.status().message();
}

std::string Reassemble(ToolCallParser& p, const std::string& text, size_t step,
                       std::vector<ToolCallDelta>* all, std::string* content) {
  for (size_t i = 0; i < text.size(); i += step) {
    auto out = p.Feed(text.substr(i, step));
    *content += out.content;
    all->insert(all->end(), out.calls.begin(), out.calls.end());
  }
  return *content;
}

TEST(ToolCallParserTest, StreamsCallsAsOpenAiDeltas) {
  for (size_t step : {1, 3, 7, 1000}) {
    ToolCallParser p(true);
    std::vector<ToolCallDelta> deltas;
    std::string content;
    Reassemble(p, kTwoCalls, step, &deltas, &content);
    EXPECT_EQ(content, "");
    ASSERT_TRUE(p.IsToolCall());
    ASSERT_EQ(p.calls().size(), 2u);
    EXPECT_EQ(p.calls()[0].name, "get_weather");
    EXPECT_EQ(p.calls()[0].arguments, R"({"city":"Oslo","unit":"c"})");
    EXPECT_EQ(p.calls()[1].name, "get_time");
    EXPECT_EQ(p.calls()[1].arguments, R"({"tz":"UTC"})");
    EXPECT_EQ(p.calls()[0].id.rfind("call_", 0), 0u);
    EXPECT_EQ(p.calls()[0].id.size(), 29u);
    // The first delta of each call carries id and name; arguments fragments concatenate.
    std::vector<std::string> args(2);
    std::vector<int> opens(2, 0);
    for (const ToolCallDelta& d : deltas) {
      ASSERT_TRUE(d.index == 0 || d.index == 1);
      if (d.id) {
        ++opens[d.index];
        EXPECT_TRUE(args[d.index].empty());
        EXPECT_EQ(*d.id, p.calls()[d.index].id);
        EXPECT_EQ(*d.name, p.calls()[d.index].name);
      }
      args[d.index] += d.arguments;
    }
    EXPECT_EQ(opens, (std::vector<int>{1, 1}));
    EXPECT_EQ(args[0], p.calls()[0].arguments);
    EXPECT_EQ(args[1], p.calls()[1].arguments);
  }
}

TEST(ToolCallParserTest, TextAndTruncatedEnvelopes) {
  ToolCallParser text(true);
  EXPECT_EQ(text.Feed("Hello ").content, "Hello ");
  EXPECT_EQ(text.Feed("{x}").content, "{x}");
  EXPECT_FALSE(text.IsToolCall());
  ToolCallParser inactive(false);
  EXPECT_EQ(inactive.Feed("{\"a\":1}").content, "{\"a\":1}");
  EXPECT_FALSE(inactive.IsToolCall());
  ToolCallParser cut(true);
  cut.Feed(std::string(kOneCall).substr(0, 50));
  EXPECT_FALSE(cut.IsToolCall());
  EXPECT_TRUE(cut.in_envelope());
  EXPECT_EQ(cut.text(), std::string(kOneCall).substr(0, 50));
  ToolCallParser nested(true);
  nested.Feed(R"({"tool_calls":[{"name":"f","arguments":{"a":[1,{"b":"}]"}],"c":-1.5e3,"d":null}}]})");
  ASSERT_TRUE(nested.IsToolCall());
  EXPECT_EQ(nested.calls()[0].arguments, R"({"a":[1,{"b":"}]"}],"c":-1.5e3,"d":null})");
}

TEST(ToolMessagesTest, FallbackRendersCallsAndResults) {
  const std::string messages = R"([{"role":"user","content":"Weather?"},
    {"role":"assistant","content":null,"tool_calls":[
      {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},
      {"id":"call_2","type":"function","function":{"name":"get_time","arguments":"{\"tz\":\"CET\"}"}}]},
    {"role":"tool","tool_call_id":"call_1","content":"18C"},
    {"role":"tool","tool_call_id":"call_2","content":"12:00"}])";
  ToolSet set = Weather(ToolChoice::kAuto);
  set.tools_json = R"([{"type":"function","function":{"name":"get_weather"}}])";
  auto out = RenderToolMessages(messages, set, /*native_template=*/false);
  ASSERT_TRUE(out.ok()) << out.status().message();
  auto j = nlohmann::json::parse(*out);
  ASSERT_EQ(j.size(), 4u);
  EXPECT_EQ(j[0]["role"], "system");
  EXPECT_NE(j[0]["content"].get<std::string>().find("\"get_weather\""), std::string::npos);
  EXPECT_EQ(j[2]["role"], "assistant");
  EXPECT_FALSE(j[2].contains("tool_calls"));
  auto env = nlohmann::json::parse(j[2]["content"].get<std::string>());
  EXPECT_EQ(env["tool_calls"][0]["arguments"]["city"], "Paris");
  EXPECT_EQ(j[3]["role"], "user");
  EXPECT_EQ(j[3]["content"], "Tool result (get_weather, call_1): 18C\n"
                             "Tool result (get_time, call_2): 12:00");

  auto native = RenderToolMessages(messages, set, /*native_template=*/true);
  ASSERT_TRUE(native.ok());
  auto n = nlohmann::json::parse(*native);
  ASSERT_EQ(n.size(), 5u);
  EXPECT_TRUE(n[2]["tool_calls"][0]["function"]["arguments"].is_object());
  EXPECT_EQ(n[3]["role"], "tool");
  EXPECT_TRUE(TemplateSupportsTools("{% if tools %}{{ m.tool_calls }}{% endif %}"));
  EXPECT_FALSE(TemplateSupportsTools("{{ messages }}"));
}

}  // namespace
}  // namespace kiln
