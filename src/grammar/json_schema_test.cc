#include "grammar/json_schema.h"

#include <gtest/gtest.h>

#include "grammar/test_util.h"

namespace kiln::grammar {
namespace {

using testing::ByteVocab;
using testing::Matches;

StatusOr<std::shared_ptr<const CompiledGrammar>> FromSchema(const std::string& schema) {
  KILN_ASSIGN_OR_RETURN(std::string gbnf, JsonSchemaToGbnf(schema));
  auto g = Grammar::FromGbnf(gbnf);
  if (!g.ok()) return Internal("%s\n%s", g.status().ToString().c_str(), gbnf.c_str());
  return CompiledGrammar::Compile(std::move(*g), ByteVocab());
}

TEST(JsonSchemaTest, Languages) {
  struct Case {
    const char* schema;
    std::vector<std::string> yes, no;
  };
  const Case cases[] = {
      {R"({"type":"integer","minimum":-12,"exclusiveMaximum":305})",
       {"-12", "0", "9", "10", "99", "100", "304", "-1", "7.0"},
       {"-13", "305", "1000", "01", "-0x", "1.5", "-"}},
      {R"({"type":"number","minimum":-1,"exclusiveMaximum":2})",
       {"-1", "-0.5", "0", "0.25", "1", "1.999", "-1.0", "-0.0001"},
       {"-1.5", "-1.01", "2", "2.0", "2.5", "-2", "1e0"}},
      {R"({"type":"number","exclusiveMinimum":0,"maximum":10})",
       {"0.1", "10", "10.00", "5.5"}, {"0", "0.0", "-1", "10.01", "11"}},
      {R"({"type":"integer","minimum":1000})", {"1000", "99999", "123456789"}, {"999", "0"}},
      {R"({"type":"string","format":"date"})",
       {"\"2024-02-29\"", "\"2023-12-31\"", "\"2000-02-29\""},
       {"\"2023-02-29\"", "\"1900-02-29\"", "\"2023-04-31\"", "\"2023-13-01\""}},
      {R"({"type":"string","format":"uuid"})", {"\"123e4567-e89b-12d3-a456-426614174000\""},
       {"\"123e4567e89b12d3a456426614174000\""}},
      {R"({"type":"string","pattern":"^a[0-9]+$"})", {"\"a1\"", "\"a123\""}, {"\"a\"", "\"ba1\""}},
      {R"({"type":"string","pattern":"b"})", {"\"b\"", "\"abc\""}, {"\"ac\""}},
      {R"({"type":"string","pattern":"^[^a]$"})", {"\"\\\"\"", "\"\\\\\"", "\"\\n\"", "\"é\""},
       {"\"a\"", "\"\n\""}},
      {R"({"type":"string","minLength":2,"maxLength":3})", {"\"ab\"", "\"a\\nb\"", "\"日本\""},
       {"\"a\"", "\"abcd\""}},
      {R"({"enum":["a",1,null,[1,{"b":true}]]})",
       {"\"a\"", "1", "1.0", "null", "[1,{\"b\":true}]", "[ 1 , {\"b\" : true} ]"},
       {"\"b\"", "2", "[1]"}},
      {R"({"type":"array","prefixItems":[{"type":"string"}],"items":{"type":"integer"},
          "minItems":2,"maxItems":3})",
       {"[\"a\",1]", "[\"a\",1,2]", "[ \"a\" , 1 ]"}, {"[\"a\"]", "[1,1]", "[\"a\",1,2,3]"}},
      {R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}},
          "required":["b"],"additionalProperties":false})",
       {"{\"b\":\"x\"}", "{\"a\":1,\"b\":\"x\"}", "{ \"a\" : 1 ,\n  \"b\" : \"x\" }"},
       {"{}", "{\"a\":1}", "{\"b\":\"x\",\"c\":1}", "{\"b\":1}"}},
      {R"({"type":"object","additionalProperties":{"type":"integer"}})",
       {"{}", "{\"x\":1,\"y\":2}"}, {"{\"x\":\"s\"}"}},
      {R"({"oneOf":[{"type":"string"},{"type":"integer"}]})", {"\"s\"", "3"}, {"null"}},
      {R"({"allOf":[{"type":"object","properties":{"a":{"type":"integer"}}},
          {"required":["a"]}]})", {"{\"a\":1}"}, {"{}"}},
      {R"({"$defs":{"l":{"type":["null","object"],"properties":{"n":{"$ref":"#/$defs/l"}},
          "additionalProperties":false}},"$ref":"#/$defs/l"})",
       {"null", "{\"n\":{\"n\":null}}"}, {"{\"n\":{\"m\":1}}"}},
      {R"({"type":"string","nullable":true})", {"null", "\"x\""}, {"1"}},
      {"true", {"1", "{\"a\":[null]}"}, {"{"}},
      {"false", {}, {"1", "null"}},
  };
  for (const Case& c : cases) {
    auto cg = FromSchema(c.schema);
    ASSERT_TRUE(cg.ok()) << c.schema << "\n" << cg.status().ToString();
    for (const auto& s : c.yes) EXPECT_TRUE(Matches(*cg, s)) << c.schema << " should accept " << s;
    for (const auto& s : c.no) EXPECT_FALSE(Matches(*cg, s)) << c.schema << " should reject " << s;
  }
}

TEST(JsonSchemaTest, RefusalsNameTheKeyword) {
  struct Case {
    const char* schema;
    const char* keyword;
  };
  const Case cases[] = {
      {R"({"type":"array","uniqueItems":true})", "'uniqueItems'"},
      {R"({"not":{"type":"string"}})", "'not'"},
      {R"({"type":"number","minimum":0.5})", "'minimum'"},
      {R"({"type":"integer","multipleOf":2})", "'multipleOf'"},
      {R"({"type":"object","patternProperties":{"^a":{}}})", "'patternProperties'"},
      {R"({"oneOf":[{"type":"integer"},{"minimum":2}]})", "'oneOf'"},
      {R"({"type":"string","format":"hostname-ish"})", "'format'"},
      {R"({"type":"string","pattern":"(a)\\1"})", "'pattern'"},
      {R"({"type":"string","pattern":"a","minLength":2})", "'minLength'"},
      {R"({"$ref":"http://example.com/x"})", "'$ref'"},
      {R"({"if":{"type":"string"},"then":{"minLength":1}})", "'if'"},
      {R"({"type":"object","unevaluatedProperties":false})", "'unevaluatedProperties'"},
      {R"({"allOf":[{"pattern":"a"},{"pattern":"b"}]})", "'allOf'"},
      {R"({"madeUpKeyword":1})", "'madeUpKeyword'"},
      // References that only lead back to themselves (found by json_schema_fuzz).
      {R"({"$defs":{"c":{"$ref":"#/$defs/c"}},"$ref":"#/$defs/c"})", "refers to itself"},
      {R"({"$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a"}},"$ref":"#/$defs/a"})",
       "refers to itself"},
      // A non-boolean `nullable` (found by json_schema_fuzz: it threw out of the converter).
      {R"({"nullable":"[a-z]cole"})", "'nullable'"},
      {R"({"type":"string","nullable":1})", "'nullable'"},
      {R"({"enum":["a",null],"nullable":"yes"})", "'nullable'"},
  };
  for (const Case& c : cases) {
    auto g = JsonSchemaToGbnf(c.schema);
    ASSERT_FALSE(g.ok()) << c.schema;
    EXPECT_NE(g.status().message().find(c.keyword), std::string::npos) << g.status().message();
  }
  EXPECT_FALSE(JsonSchemaToGbnf("{not json").ok());
}

// Every supported keyword with a value of the wrong shape is the caller's error (kInvalidArgument
// naming the keyword) wherever it sits: at the root, in an allOf part merged with a sibling that
// has the same keyword, and in an anyOf branch merged with a sibling constraint. json_schema_fuzz
// found '"required":"format"' in an allOf part throwing out of the merge.
TEST(JsonSchemaTest, MalformedKeywordValuesAreInvalidArgumentsEverywhere) {
  struct Bad {
    const char* keyword;
    const char* good;  // a well-formed value, for the sibling part
    std::vector<const char*> bad;
  };
  const Bad cases[] = {
      {"type", R"("object")", {"1", "[]", "[1]", "{}", "null"}},
      {"enum", R"([1,2])", {"1", R"("a")", "{}"}},
      {"required", R"(["a"])", {R"("format")", "[1]", "{}", "true"}},
      {"properties", R"({"a":{}})", {"[]", R"("a")", R"({"a":1})", R"({"a":[1]})"}},
      {"additionalProperties", "false", {"1", R"("x")", "[]"}},
      {"items", R"({"type":"integer"})", {"1", "[]", R"("x")"}},
      {"prefixItems", R"([{}])", {"{}", "[]", "[1]", R"("x")"}},
      {"allOf", R"([{}])", {"{}", "[]", "[1]"}},
      {"anyOf", R"([{}])", {"{}", "[]", R"(["x"])"}},
      {"oneOf", R"([{}])", {"{}", "[]", "[null]"}},
      {"minItems", "1", {"-1", "1.5", R"("1")", "[]"}},
      {"maxLength", "3", {"-2", "0.5", "true"}},
      {"minimum", "1", {R"("1")", "[]", "null", "true"}},
      {"exclusiveMaximum", "4", {"true", R"("4")"}},
      {"pattern", R"("a")", {"1", "[]"}},
      {"format", R"("date")", {"1", "{}"}},
      {"$ref", R"("#/$defs/d")", {"1", "[]"}},
      {"uniqueItems", "false", {"0", R"("no")"}},
  };
  for (const Bad& c : cases) {
    for (const char* bad : c.bad) {
      std::string kv = StrFormat(R"("%s":%s)", c.keyword, bad);
      std::string good = StrFormat(R"("%s":%s)", c.keyword, c.good);
      const std::string defs = R"("$defs":{"d":{}},)";  // the target of the good $ref
      const std::string schemas[] = {
          "{" + defs + kv + "}",
          "{" + defs + R"("allOf":[{)" + good + "},{" + kv + "}]}",
          "{" + defs + R"("allOf":[{)" + kv + "},{" + good + "}]}",
          "{" + defs + R"("type":"object","properties":{"p":{)" + kv + "}}}",
          "{" + defs + good + R"(,"anyOf":[{)" + kv + R"(},{"type":"null"}]})",
      };
      for (const std::string& schema : schemas) {
        auto g = JsonSchemaToGbnf(schema);
        ASSERT_FALSE(g.ok()) << schema;
        EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument) << schema << "\n"
                                                                   << g.status().ToString();
        EXPECT_NE(g.status().message().find(std::string("'") + c.keyword + "'"), std::string::npos)
            << schema << "\n" << g.status().message();
      }
    }
  }
}

TEST(JsonSchemaTest, AnnotationsAreIgnored) {
  auto g = JsonSchemaToGbnf(R"({"title":"t","description":"d","$comment":"c","examples":[1],
      "default":2,"$schema":"https://json-schema.org/draft/2020-12/schema","deprecated":false,
      "type":"integer","readOnly":true})");
  EXPECT_TRUE(g.ok()) << g.status().ToString();
}

// Random / truncated schemas never crash the converter or the grammar parser.
TEST(JsonSchemaTest, RandomSchemasNeverCrash) {
  const std::string pieces[] = {
      "{", "}", "[", "]", ",", ":", "\"type\"", "\"string\"", "\"object\"", "\"array\"",
      "\"properties\"", "\"items\"", "\"a\"", "\"$ref\"", "\"#\"", "\"#/$defs/a\"", "\"$defs\"",
      "\"anyOf\"", "\"allOf\"", "\"oneOf\"", "\"enum\"", "1", "-3", "true", "false", "null",
      "\"pattern\"", "\"^(a|b)*$\"", "\"minItems\"", "\"maxLength\"", "\"required\"",
      "\"minimum\"", "\"format\"", "\"date\"", "\"prefixItems\"", "\"additionalProperties\""};
  uint64_t seed = 99;
  auto rnd = [&]() {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(seed >> 33);
  };
  int n_ok = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    std::string text;
    int n = 1 + rnd() % 16;
    for (int i = 0; i < n; ++i) text += pieces[rnd() % std::size(pieces)];
    auto gbnf = JsonSchemaToGbnf(text);
    if (!gbnf.ok()) continue;
    auto g = Grammar::FromGbnf(*gbnf);
    ASSERT_TRUE(g.ok()) << text << "\n" << g.status().ToString();
    ++n_ok;
  }
  EXPECT_GT(n_ok, 10);
}

}  // namespace
}  // namespace kiln::grammar
