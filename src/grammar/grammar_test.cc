#include "grammar/grammar.h"

#include <gtest/gtest.h>

#include <regex>

#include "grammar/test_util.h"

namespace kiln::grammar {
namespace {

using testing::ByteVocab;
using testing::Matches;

std::shared_ptr<const CompiledGrammar> Compile(const std::string& gbnf) {
  auto g = Grammar::FromGbnf(gbnf);
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  return CompiledGrammar::Compile(std::move(*g), ByteVocab());
}

TEST(GbnfTest, LanguageOfSmallGrammars) {
  struct Case {
    const char* gbnf;
    std::vector<std::string> yes, no;
  };
  const Case cases[] = {
      {R"(root ::= "a" | "bc")", {"a", "bc"}, {"", "b", "abc", "ab"}},
      {R"(root ::= "a"* "b")", {"b", "ab", "aaab"}, {"", "a", "ba"}},
      {R"(root ::= "a"+)", {"a", "aaaa"}, {"", "b"}},
      {R"(root ::= "x" "y"? "z")", {"xz", "xyz"}, {"xyyz", "x"}},
      {R"(root ::= [a-c]{2,3})", {"ab", "abc", "ccc"}, {"a", "abca", "ad"}},
      {R"(root ::= [0-9]{3})", {"123"}, {"12", "1234"}},
      {R"(root ::= "a"{2,})", {"aa", "aaaaa"}, {"a"}},
      {R"(root ::= [^a-z]+)", {"ABC", "é!", "日本"}, {"a", "Ab"}},
      {R"(root ::= . .)", {"ab", "éé", "\xF0\x9F\x98\x80x"}, {"a", "\xC3", "\xED\xA0\x80\x61"}},
      {R"(root ::= [\u00e9\U0001F600])", {"é", "\xF0\x9F\x98\x80"}, {"e", "\xC3\xA8"}},
      {R"(root ::= "\x41\u00e9\n\t\\\"")", {"A\xC3\xA9\n\t\\\""}, {"A"}},
      {"# comment\nroot ::= item ( \",\" item )* # trailing\nitem ::= [0-9]+\n",
       {"1", "1,22,333"}, {"1,", ",1"}},
      {R"(root ::= ( "a" | "b" ) ( "c" | ) "d")", {"ad", "bcd"}, {"cd", "abd"}},
      {R"g(root ::= expr
expr ::= term ( [+-] term )*
term ::= [0-9]+ | "(" expr ")")g", {"1+2", "(1+2)-3", "((4))"}, {"(1", "1+", "()"}},
  };
  for (const Case& c : cases) {
    auto cg = Compile(c.gbnf);
    for (const auto& s : c.yes) EXPECT_TRUE(Matches(cg, s)) << c.gbnf << " should accept " << s;
    for (const auto& s : c.no) EXPECT_FALSE(Matches(cg, s)) << c.gbnf << " should reject " << s;
  }
}

TEST(GbnfTest, ErrorsNameLineAndColumn) {
  struct Case {
    const char* gbnf;
    const char* want;
  };
  const Case cases[] = {
      {"root ::= \"abc", "line 1, column 10: unterminated string literal"},
      {"root ::= a\n", "line 1, column 10: undefined rule 'a'"},
      {"root ::= \"a\"\nroot ::= \"b\"", "line 2, column 1: rule 'root' defined twice"},
      {"root ::= [a-", "unterminated character class"},
      {"root ::= [z-a]", "character range out of order"},
      {"root ::= ( \"a\"", "unclosed '('"},
      {"root ::= \"a\"{3,1}", "max below min"},
      {"root ::= \"\\q\"", "unknown escape"},
      {"root ::= \"\\u12\"", "hex digits"},
      {"root ::= *", "unexpected character '*'"},
      {"foo ::= \"a\"", "no 'root' rule"},
      {"root ::= root \"a\"", "left-recursive"},
      {"root ::= a\na ::= b? root\nb ::= \"x\"", "left-recursive"},
      {"root ::= (\"\")*", "left-recursive"},
      {"", "empty grammar"},
      {"root ::= \"a\"{99999}", "repetition count above"},
      {"root = \"a\"", "expected '::='"},
  };
  for (const Case& c : cases) {
    auto g = Grammar::FromGbnf(c.gbnf);
    ASSERT_FALSE(g.ok()) << c.gbnf;
    EXPECT_NE(g.status().message().find(c.want), std::string::npos)
        << c.gbnf << " → " << g.status().message();
  }
}

// Every string over {a, b} up to length 8.
std::vector<std::string> SmallStrings() {
  std::vector<std::string> out = {""};
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].size() < 8) {
      out.push_back(out[i] + "a");
      out.push_back(out[i] + "b");
    }
  }
  return out;
}

// Stacked quantifiers are merged at parse time (no nested repetition rules) only where the
// language stays the same: each grammar is checked against std::regex (ECMAScript, which keeps
// nested quantifiers as written) on every string over {a, b} up to length 8.
TEST(GbnfTest, StackedQuantifiersKeepTheLanguage) {
  struct Case {
    const char* gbnf;
    const char* regex;
  };
  const Case cases[] = {
      {R"(root ::= "a"++)", "(a+)+"},
      {R"(root ::= ("a"+)*)", "(a+)*"},
      {R"(root ::= ("a"*)+ "b")", "(a*)+b"},
      {R"(root ::= ("a"?)+ "b")", "(a?)+b"},
      {R"(root ::= ("a"+)? "b")", "(a+)?b"},
      {R"(root ::= "a"?? "b")", "(a?)?b"},
      {R"(root ::= "a"{2}{3})", "(a{2}){3}"},
      {R"(root ::= ("a"{2,3})+)", "(a{2,3})+"},
      {R"(root ::= ("a"{2,3}){2})", "(a{2,3}){2}"},
      {R"(root ::= ("a"?){2,3} "b")", "(a?){2,3}b"},
      {R"(root ::= "a"{2}*)", "(a{2})*"},          // not mergeable: even counts only
      {R"(root ::= ("a"{3}){1,2})", "(a{3}){1,2}"},  // not mergeable: 3 or 6
      {R"(root ::= ("a"{2,3})*)", "(a{2,3})*"},      // not mergeable: no 1
      {R"(root ::= (("ab"+))+ "a"?)", "((ab)+)+a?"},
      {R"(root ::= ("a" | "b")++ "a")", "(a|b)+a"},
      {R"(root ::= ("a"+ "b")+)", "(a+b)+"},          // a sequence: not one quantified item
      {R"(root ::= ("a"+ | "b")*)", "(a+|b)*"},       // alternatives: not one quantified item
      {R"(root ::= "a"+++++++++++++++++++++++++++++++++++++++++++++++++* "b"?+?*)",
       "a*b*"},
  };
  const std::vector<std::string> strings = SmallStrings();
  for (const Case& c : cases) {
    auto cg = Compile(c.gbnf);
    std::regex re(c.regex, std::regex::ECMAScript);
    for (const auto& s : strings) {
      EXPECT_EQ(Matches(cg, s), std::regex_match(s, re)) << c.gbnf << " on \"" << s << "\"";
    }
  }
  // Merged: the same grammar as one quantifier, not 40 nested repetition rules; through
  // groups, the matcher stays cheap (CheckGrammarWork would reject 40 nested levels).
  auto one = Grammar::FromGbnf(R"(root ::= "a"+)");
  auto many = Grammar::FromGbnf("root ::= \"a\"" + std::string(40, '+'));
  ASSERT_TRUE(one.ok() && many.ok());
  EXPECT_EQ(one->ToString(), many->ToString());
  std::string nested = "\"a\"";
  for (int i = 0; i < 40; ++i) nested = "(" + nested + (i % 3 ? "+)" : "*)");
  auto deep = Grammar::FromGbnf("root ::= " + nested + " \"b\"");
  ASSERT_TRUE(deep.ok()) << deep.status().ToString();
  EXPECT_TRUE(CheckGrammarWork(*deep).ok());
  auto deep_cg = CompiledGrammar::Compile(std::move(*deep), ByteVocab());
  EXPECT_TRUE(Matches(deep_cg, std::string(300, 'a') + "b"));
  EXPECT_TRUE(Matches(deep_cg, "b"));
  EXPECT_FALSE(Matches(deep_cg, "aba"));
  auto zero = Grammar::FromGbnf(R"(root ::= "a"{0}+)");
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.status().message().find("nothing to repeat"), std::string::npos);
}

// Helper rules are named like user rules (root_1) for display only: a user rule of that name
// is its own rule, and referring to an undefined one is an error.
TEST(GbnfTest, HelperRuleNamesDoNotCaptureUserRules) {
  auto cg = Compile("root ::= \"a\"* root_1\nroot_1 ::= \"b\"");
  EXPECT_TRUE(Matches(cg, "aab"));
  EXPECT_FALSE(Matches(cg, "aa"));
  auto undefined = Grammar::FromGbnf(R"(root ::= "a"+ root_1)");
  ASSERT_FALSE(undefined.ok());
  EXPECT_NE(undefined.status().message().find("undefined rule 'root_1'"), std::string::npos);
}

TEST(GbnfTest, RightRecursionIsFine) {
  auto cg = Compile("root ::= \"(\" root \")\" | \"x\"");
  EXPECT_TRUE(Matches(cg, "((x))"));
  EXPECT_FALSE(Matches(cg, "((x)"));
}

TEST(GbnfTest, EmptyClassMatchesNothing) {
  auto cg = Compile(R"(root ::= "a" | "b" [^\x00-\U0010FFFF])");
  EXPECT_TRUE(Matches(cg, "a"));
  EXPECT_FALSE(Matches(cg, "b"));
}

// Random and truncated grammar texts must never crash (libFuzzer-style robustness).
TEST(GbnfTest, RandomInputNeverCrashes) {
  const std::string pieces[] = {"root", " ::= ", "\"a\"", "[", "]", "^", "-", "(", ")", "|",
                                "*", "+", "?", "{", "}", "2", ",", "\\", "u", "x", "\n", "#",
                                ".", "b ::= ", "b", "\"", "\\u00e9", "\xC3", "\xFF"};
  uint64_t seed = 12345;
  auto rnd = [&]() {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(seed >> 33);
  };
  int n_ok = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string text = "root ::= ";
    int n = rnd() % 12;
    for (int i = 0; i < n; ++i) text += pieces[rnd() % std::size(pieces)];
    auto g = Grammar::FromGbnf(text);
    if (g.ok()) {
      ++n_ok;
      auto cg = CompiledGrammar::Compile(std::move(*g), ByteVocab());
      Matcher m(cg);
      std::vector<uint32_t> mask(m.BitmaskWords());
      m.FillNextTokenBitmask(mask.data());
      m.AcceptString("a");
    } else {
      EXPECT_FALSE(g.status().message().empty());
    }
  }
  EXPECT_GT(n_ok, 100);
}

}  // namespace
}  // namespace kiln::grammar
