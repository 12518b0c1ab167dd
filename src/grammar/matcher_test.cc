#include "grammar/matcher.h"

#include <gtest/gtest.h>

#include <random>

#include "grammar/json_schema.h"
#include "grammar/test_util.h"

namespace kiln::grammar {
namespace {

using testing::ByteVocab;
using testing::MaskMismatches;

// Tokens spanning several grammar elements, partial and whole multi-byte UTF-8 characters.
const std::vector<std::string> kExtra = {
    "{\"", "\":", "\",\"", "\"}", "}", "\"name\"", "name", "na", "me\":\"", "true", "tr", "ue}",
    "é", "\xC3", "\xA9", "日本", "\xE6\x97", "\xA5", "12", "3.", "0,", "  ", " \"", "\n  ",
    "null", "]}", "[1", ",\"", "\"a", "a\"", "\\u00", "\\\"", "x\"}", "false,"};

std::shared_ptr<const CompiledGrammar> CompileSchema(const std::string& schema,
                                                     std::shared_ptr<const TokenVocab> vocab) {
  auto gbnf = JsonSchemaToGbnf(schema);
  EXPECT_TRUE(gbnf.ok()) << gbnf.status().ToString();
  auto g = Grammar::FromGbnf(*gbnf);
  EXPECT_TRUE(g.ok()) << g.status().ToString() << "\n" << *gbnf;
  return CompiledGrammar::Compile(std::move(*g), std::move(vocab));
}

// At every step of random walks, the mask equals brute-force AcceptToken on every token.
TEST(MatcherTest, MaskEqualsBruteForceAlongRandomWalks) {
  auto vocab = ByteVocab(kExtra);
  const char* schemas[] = {
      R"({"type":"object","properties":{"name":{"type":"string"},"ok":{"type":"boolean"},
          "n":{"type":"integer","minimum":-5,"maximum":120}},"required":["name"]})",
      R"({"type":"array","items":{"anyOf":[{"type":"number"},{"type":"null"},
          {"type":"string","pattern":"^[a-zé日本]{1,3}$"}]},"maxItems":4})",
      R"({"$defs":{"t":{"type":"object","properties":{"k":{"$ref":"#/$defs/t"}},
          "additionalProperties":false}},"$ref":"#/$defs/t"})",
  };
  std::mt19937 rng(7);
  for (const char* schema : schemas) {
    auto cg = CompileSchema(schema, vocab);
    for (int walk = 0; walk < 6; ++walk) {
      Matcher m(cg, 64);
      for (int step = 0; step < 40 && !m.IsTerminated(); ++step) {
        std::vector<uint32_t> mask;
        ASSERT_EQ(MaskMismatches(m, &mask), 0) << schema << " step " << step;
        std::vector<int32_t> allowed;
        for (int32_t id = 0; id < vocab->n_vocab(); ++id) {
          if (mask[id >> 5] >> (id & 31) & 1) allowed.push_back(id);
        }
        ASSERT_FALSE(allowed.empty()) << "dead end at step " << step;
        ASSERT_TRUE(m.AcceptToken(allowed[rng() % allowed.size()]));
      }
    }
  }
}

TEST(MatcherTest, EogOnlyWhenComplete) {
  auto vocab = ByteVocab();
  auto g = Grammar::FromGbnf(R"(root ::= "ab" "c"?)");
  ASSERT_TRUE(g.ok());
  auto cg = CompiledGrammar::Compile(std::move(*g), vocab);
  Matcher m(cg);
  int32_t eog = vocab->eog_ids()[0];
  EXPECT_FALSE(m.AcceptToken(eog));
  EXPECT_TRUE(m.AcceptToken('a'));
  EXPECT_FALSE(m.CanTerminate());
  EXPECT_TRUE(m.AcceptToken('b'));
  EXPECT_TRUE(m.CanTerminate());
  std::vector<uint32_t> mask(m.BitmaskWords());
  m.FillNextTokenBitmask(mask.data());
  EXPECT_TRUE(mask[eog >> 5] >> (eog & 31) & 1);
  EXPECT_TRUE(mask['c' >> 5] >> ('c' & 31) & 1);
  EXPECT_FALSE(m.AcceptToken('x'));  // rejected: state unchanged
  EXPECT_TRUE(m.AcceptToken(eog));
  EXPECT_TRUE(m.IsTerminated());
  EXPECT_FALSE(m.AcceptToken('c'));
  m.FillNextTokenBitmask(mask.data());
  for (uint32_t w : mask) EXPECT_EQ(w, 0u);
}

TEST(MatcherTest, RollbackRestoresEarlierStates) {
  auto vocab = ByteVocab(kExtra);
  auto cg = CompileSchema(R"({"type":"object","properties":{"name":{"type":"string"}}})", vocab);
  Matcher m(cg, 8);
  std::vector<std::vector<uint32_t>> masks;
  std::vector<std::string> toks = {"{\"", "name", "\":", "\"a", "\"}"};
  for (const auto& t : toks) {
    std::vector<uint32_t> mask(m.BitmaskWords());
    m.FillNextTokenBitmask(mask.data());
    masks.push_back(mask);
    int32_t id = -1;
    for (int32_t i = 0; i < vocab->n_vocab(); ++i) {
      if (vocab->token_bytes(i) == t) id = i;
    }
    ASSERT_TRUE(m.AcceptToken(id)) << t;
  }
  EXPECT_TRUE(m.CanTerminate());
  m.Rollback(3);
  EXPECT_FALSE(m.CanTerminate());
  std::vector<uint32_t> mask(m.BitmaskWords());
  m.FillNextTokenBitmask(mask.data());
  EXPECT_EQ(mask, masks[2]);
  m.Rollback(2);
  m.FillNextTokenBitmask(mask.data());
  EXPECT_EQ(mask, masks[0]);
  EXPECT_EQ(m.NumRollbackable(), 0);
}

TEST(MatcherTest, JumpForwardFollowsForcedBytes) {
  auto vocab = ByteVocab();
  auto cg = CompileSchema(
      R"({"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},
          "required":["name","age"],"additionalProperties":false})", vocab);
  Matcher m(cg);
  // No whitespace before the value: '{' is forced; after it whitespace or '"' may follow.
  EXPECT_EQ(m.FindJumpForwardString(), "{");
  ASSERT_TRUE(m.AcceptString("{"));
  EXPECT_EQ(m.FindJumpForwardString(), "");  // ws or '"'
  ASSERT_TRUE(m.AcceptString("\""));
  EXPECT_EQ(m.FindJumpForwardString(), "name\"");
  ASSERT_TRUE(m.AcceptString("name\":\"Bob\","));
  ASSERT_TRUE(m.AcceptString("\""));
  EXPECT_EQ(m.FindJumpForwardString(), "age\"");
  // Forced bytes are exactly what the grammar requires.
  ASSERT_TRUE(m.AcceptString(m.FindJumpForwardString()));
  ASSERT_TRUE(m.AcceptString(":1}"));
  EXPECT_TRUE(m.CanTerminate());
  EXPECT_EQ(m.FindJumpForwardString(), "");
}

TEST(MatcherTest, UnicodeTokensSplitAcrossCodePoints) {
  auto vocab = ByteVocab(kExtra);
  auto g = Grammar::FromGbnf(R"(root ::= "\"" [é日本]+ "\"")");
  ASSERT_TRUE(g.ok());
  auto cg = CompiledGrammar::Compile(std::move(*g), vocab);
  Matcher m(cg);
  ASSERT_TRUE(m.AcceptString("\""));
  EXPECT_EQ(MaskMismatches(m), 0);
  int32_t c3 = -1, a9 = -1;
  for (int32_t i = 256; i < vocab->n_vocab(); ++i) {
    if (vocab->token_bytes(i) == "\xC3") c3 = i;
    if (vocab->token_bytes(i) == "\xA9") a9 = i;
  }
  ASSERT_TRUE(m.AcceptToken(c3));  // first half of é
  EXPECT_EQ(MaskMismatches(m), 0);
  EXPECT_FALSE(m.AcceptToken('"'));
  ASSERT_TRUE(m.AcceptToken(a9));
  EXPECT_TRUE(m.AcceptString("日本\""));
  EXPECT_TRUE(m.CanTerminate());
}

}  // namespace
}  // namespace kiln::grammar

namespace kiln::grammar {
namespace {

TEST(GrammarCompilerTest, CachesByTextAndReportsErrors) {
  GrammarCompiler compiler(testing::ByteVocab(), /*capacity=*/2);
  auto a = compiler.CompileJsonSchema(R"({"type":"integer"})");
  auto b = compiler.CompileJsonSchema(R"({"type":"integer"})");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->get(), b->get());
  auto bad = compiler.CompileJsonSchema(R"({"type":"array","uniqueItems":true})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("uniqueItems"), std::string::npos);
  auto g = compiler.CompileGbnf("root ::= [0-9]+");
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(testing::Matches(*g, "123"));
  auto json_mode = compiler.CompileBuiltinJson();
  EXPECT_TRUE(testing::Matches(json_mode, R"({"a":[1,{"b":null}],"c":"d"})"));
  EXPECT_FALSE(testing::Matches(json_mode, "[1]"));
}

}  // namespace
}  // namespace kiln::grammar
