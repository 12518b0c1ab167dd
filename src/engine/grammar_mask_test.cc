// GrammarTokenMask: the Matcher behind the engine's TokenMask hook. Oracles: brute-force
// AcceptToken on every id (the mask), the tokenizer's own encoding (jump-forward tokens).
#include "engine/grammar_mask.h"

#include <gtest/gtest.h>

#include "engine/loaded_model.h"
#include "grammar/test_util.h"

namespace kiln::engine {
namespace {

using grammar::CompiledGrammar;
using grammar::Grammar;
using grammar::TokenVocab;

std::shared_ptr<const CompiledGrammar> Compile(const std::string& gbnf,
                                               std::shared_ptr<const TokenVocab> vocab) {
  auto g = Grammar::FromGbnf(gbnf);
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  return CompiledGrammar::Compile(std::move(*g), std::move(vocab));
}

bool Bit(const std::vector<uint32_t>& m, int32_t id) { return (m[id >> 5] >> (id & 31)) & 1u; }

TEST(GrammarMaskTest, FillMatchesBruteForceAndEogOnlyWhereTheGrammarEnds) {
  auto vocab = grammar::testing::ByteVocab({"ab", "b1", "12"});
  const int32_t eog = vocab->n_vocab() - 1;
  GrammarTokenMask mask(Compile(R"(root ::= "ab" [0-9]+)", vocab), nullptr);
  std::vector<uint32_t> bits;
  // Oracle: a second matcher fed the same tokens, every id tried with AcceptToken + Rollback.
  grammar::Matcher ref(Compile(R"(root ::= "ab" [0-9]+)", vocab));
  for (const std::string step : {"a", "b", "1", "2"}) {
    ASSERT_TRUE(mask.Fill(&bits));
    ASSERT_EQ(bits.size(), static_cast<size_t>((vocab->n_vocab() + 31) / 32));
    for (int32_t id = 0; id < vocab->n_vocab(); ++id) {
      const bool ok = ref.AcceptToken(id);
      if (ok) ref.Rollback(1);
      EXPECT_EQ(Bit(bits, id), ok) << "id " << id << " before '" << step << "'";
    }
    ASSERT_TRUE(ref.AcceptToken(static_cast<uint8_t>(step[0])));
    EXPECT_EQ(Bit(bits, eog), step == "2") << "EOG allowed exactly after a digit";
    mask.Accept(static_cast<uint8_t>(step[0]));
    EXPECT_EQ(mask.Error(), "");
    EXPECT_FALSE(mask.Done());
  }
  mask.Accept(eog);
  EXPECT_EQ(mask.Error(), "");
  EXPECT_TRUE(mask.Done());
  mask.Fill(&bits);
  EXPECT_FALSE(AnyAllowed(bits, vocab->n_vocab()));
}

// Speculation's check of a guess: the allowed prefix, and the state left as it was.
TEST(GrammarMaskTest, AllowedPrefixOfAGuessLeavesTheStateUnchanged) {
  auto vocab = grammar::testing::ByteVocab({"ab", "b1", "12"});
  const int32_t eog = vocab->n_vocab() - 1;
  GrammarTokenMask mask(Compile(R"(root ::= "ab" [0-9]+)", vocab), nullptr);
  auto id = [](char c) { return static_cast<int32_t>(static_cast<uint8_t>(c)); };
  std::vector<uint32_t> before, after;
  mask.Fill(&before);
  EXPECT_EQ(mask.AllowedPrefix(std::vector<int32_t>{id('a'), id('b'), id('1'), id('x')}), 3);
  EXPECT_EQ(mask.AllowedPrefix(std::vector<int32_t>{id('b')}), 0);
  mask.Fill(&after);
  EXPECT_EQ(before, after);
  mask.Accept(id('a'));
  mask.Accept(id('b'));
  mask.Accept(id('7'));
  // An end-of-generation token ends the check (a guess never runs past the end); a guess
  // longer than the matcher's rollback depth is checked as far as it reaches.
  EXPECT_EQ(mask.AllowedPrefix(std::vector<int32_t>{id('1'), eog, id('2')}), 1);
  EXPECT_EQ(mask.AllowedPrefix(std::vector<int32_t>(40, id('5'))), 16);
  mask.Accept(eog);
  EXPECT_EQ(mask.Error(), "");
  EXPECT_TRUE(mask.Done());
}

// A grammar past the matcher's work bounds (compiled without GrammarCompiler's check): the
// mask goes all clear and Error() says why, so the choice ends "error" instead of hanging.
TEST(GrammarMaskTest, TooAmbiguousGrammarFailsWithItsError) {
  std::string gbnf = "root ::= r0\n";
  for (int i = 0; i < 40; ++i) {
    gbnf += "r" + std::to_string(i) + " ::= r" + std::to_string(i + 1) + "+\n";
  }
  gbnf += "r40 ::= \"x\"\n";
  GrammarTokenMask mask(Compile(gbnf, grammar::testing::ByteVocab()), nullptr);
  std::vector<uint32_t> bits;
  for (int step = 0; step < 50 && mask.Error().empty(); ++step) {
    mask.Fill(&bits);
    if (mask.Error().empty()) mask.Accept('x');
  }
  EXPECT_NE(mask.Error().find("constraint: grammar too ambiguous"), std::string::npos)
      << mask.Error();
  mask.Fill(&bits);
  EXPECT_FALSE(AnyAllowed(bits, 257));
}

TEST(GrammarMaskTest, DisallowedTokenIsAnErrorAndCompletionIsDone) {
  auto vocab = grammar::testing::ByteVocab();
  GrammarTokenMask mask(Compile(R"(root ::= "x" ("y" | "z"))", vocab), nullptr);
  mask.Accept('x');
  EXPECT_FALSE(mask.Done());
  mask.Accept('q');
  EXPECT_NE(mask.Error().find("not allowed"), std::string::npos);
  GrammarTokenMask ok(Compile(R"(root ::= "x" ("y" | "z"))", vocab), nullptr);
  ok.Accept('x');
  ok.Accept('z');
  EXPECT_EQ(ok.Error(), "");
  EXPECT_TRUE(ok.Done()) << "nothing may follow: the choice ends without sampling EOG";
  std::vector<uint32_t> bits;
  ok.Fill(&bits);
  EXPECT_TRUE(AnyAllowedOf(bits, vocab->eog_ids()));
  EXPECT_FALSE(AnyAllowed(bits, 256)) << "no byte may follow";
}

TEST(GrammarMaskTest, AnyAllowedIgnoresBitsPastTheVocabulary) {
  std::vector<uint32_t> bits = {0, 0x80000000u};
  EXPECT_FALSE(AnyAllowed(bits, 40));
  EXPECT_TRUE(AnyAllowed(bits, 64));
  EXPECT_TRUE(AnyAllowedOf(bits, {63}));
  EXPECT_FALSE(AnyAllowedOf(bits, {62, 7, 1000}));
}

TEST(GrammarMaskTest, NoTokenizerNeverJumps) {
  auto vocab = grammar::testing::ByteVocab();
  GrammarTokenMask mask(Compile(R"(root ::= "hello world" [a-z])", vocab), nullptr);
  EXPECT_TRUE(mask.Forced(100).empty());
}

// Jump-forward with a real tokenizer (the tiny Llama 3 fixture): the forced tokens are the
// tokenizer's own encoding of the forced bytes minus its last token, the matcher has advanced
// over exactly those bytes, and max_tokens caps them.
TEST(GrammarMaskTest, ForcedTokensAreTheTokenizersSplitOfTheForcedBytes) {
  auto lt = LoadTokenizer("tests/testdata/tiny/llama3_tied.gguf");
  ASSERT_TRUE(lt.ok()) << lt.status().ToString();
  auto tok = lt->tokenizer;
  auto vocab = TokenVocab::FromTokenizer(*tok);
  // (This fixture spells a space as the bytes of U+2581, so the grammar has no spaces.)
  auto cg = Compile(R"(root ::= "{\"name\":\"" [a-z]+ "\",\"age\":" [0-9]+ "}")", vocab);

  GrammarTokenMask mask(cg, tok);
  const std::string forced = grammar::Matcher(cg).FindJumpForwardString();
  ASSERT_EQ(forced, "{\"name\":\"");
  std::vector<int32_t> ids = mask.Forced(1000);
  ASSERT_GE(ids.size(), 2u);
  // The encoder prepends a dummy-prefix space (its own tokens): Encode(forced) ends with the
  // forced ids and one last token left to the model.
  auto enc = tok->Encode(forced, {});
  ASSERT_TRUE(enc.ok());
  ASSERT_GE(enc->size(), ids.size() + 1);
  EXPECT_EQ(ids, std::vector<int32_t>(enc->end() - 1 - ids.size(), enc->end() - 1));
  std::string bytes;
  for (int32_t id : ids) bytes += vocab->token_bytes(id);
  EXPECT_EQ(forced.compare(0, bytes.size(), bytes), 0);
  EXPECT_EQ(bytes.size() + vocab->token_bytes(enc->back()).size(), forced.size());
  // The matcher advanced over exactly those bytes: the rest of the forced string remains.
  grammar::Matcher replay(cg);
  ASSERT_TRUE(replay.AcceptString(bytes));
  EXPECT_EQ(replay.FindJumpForwardString(), forced.substr(bytes.size()));
  std::vector<uint32_t> a, b;
  mask.Fill(&a);
  b.resize(replay.BitmaskWords());
  replay.FillNextTokenBitmask(b.data());
  EXPECT_EQ(a, b) << "the mask's matcher is where the forced bytes lead";

  // A forced space cannot be spelled by this encoder's tokens: nothing is forced.
  GrammarTokenMask space(Compile(R"(root ::= "{\"a\": " [0-9])", vocab), tok);
  EXPECT_TRUE(space.Forced(100).empty());

  GrammarTokenMask capped(cg, tok);
  EXPECT_EQ(capped.Forced(1), std::vector<int32_t>(ids.begin(), ids.begin() + 1));
  EXPECT_TRUE(GrammarTokenMask(cg, tok).Forced(0).empty());
}

// A free choice forces nothing; a forced multi-byte character cut mid-way is not split.
TEST(GrammarMaskTest, NothingForcedAtAChoiceAndUtf8IsNotCut) {
  auto lt = LoadTokenizer("tests/testdata/tiny/llama3_tied.gguf");
  ASSERT_TRUE(lt.ok()) << lt.status().ToString();
  auto vocab = TokenVocab::FromTokenizer(*lt->tokenizer);
  GrammarTokenMask choice(Compile(R"(root ::= "a" | "b")", vocab), lt->tokenizer);
  EXPECT_TRUE(choice.Forced(10).empty());
  // "é" is C3 A9 then a choice between two bytes that continue another character.
  GrammarTokenMask cut(Compile("root ::= \"x\\u00e9\\u00e9\" (\"\\u00e0\" | \"\\u00e1\")", vocab),
                       lt->tokenizer);
  std::vector<int32_t> ids = cut.Forced(10);
  std::string bytes;
  for (int32_t id : ids) bytes += vocab->token_bytes(id);
  EXPECT_EQ(std::string("x\xC3\xA9\xC3\xA9").compare(0, bytes.size(), bytes), 0) << bytes;
  // Whatever was forced, the mask still accepts the rest of the sentence token by token.
  const std::string rest = std::string("x\xC3\xA9\xC3\xA9\xC3\xA1").substr(bytes.size());
  // (The split may end inside a character: feed the rest as byte-fallback tokens.)
  for (char c : rest) {
    int32_t byte_token = -1;
    for (int32_t id = 0; id < vocab->n_vocab() && byte_token < 0; ++id) {
      if (vocab->token_bytes(id) == std::string(1, c)) byte_token = id;
    }
    ASSERT_GE(byte_token, 0);
    cut.Accept(byte_token);
  }
  EXPECT_EQ(cut.Error(), "");
  EXPECT_TRUE(cut.Done());
}

}  // namespace
}  // namespace kiln::engine
