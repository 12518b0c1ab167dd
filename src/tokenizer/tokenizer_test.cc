// Unit tests on vocabularies built in code (oracle values are worked out by hand from the
// published algorithms: GPT-2 byte map, BPE merge order, SentencePiece byte fallback).
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/unicode.h"

namespace kiln::tokenizer {
namespace {

io::MetaValue Str(std::string s) {
  io::MetaValue v;
  v.type = io::MetaValue::Type::kString;
  v.s = std::move(s);
  return v;
}
io::MetaValue Int(int64_t i) {
  io::MetaValue v;
  v.type = io::MetaValue::Type::kInt32;
  v.i = i;
  return v;
}
io::MetaValue Float(double f) {
  io::MetaValue v;
  v.type = io::MetaValue::Type::kFloat32;
  v.f = f;
  return v;
}
io::MetaValue Arr(std::vector<io::MetaValue> items, io::MetaValue::Type t) {
  io::MetaValue v;
  v.type = io::MetaValue::Type::kArray;
  v.elem_type = t;
  v.array = std::move(items);
  return v;
}

// A tiny byte-level BPE: all 256 byte symbols, then merges h+e, he+l, l+o, Ġ+w.
io::Metadata TinyGpt2() {
  std::vector<io::MetaValue> toks, types;
  for (int b = 0; b < 256; ++b) toks.push_back(Str(ByteToUnicode()[b]));
  for (const char* t : {"he", "hel", "lo", "\xC4\xA0w", "<|end|>"}) toks.push_back(Str(t));
  for (size_t i = 0; i < toks.size(); ++i) types.push_back(Int(i + 1 == toks.size() ? 3 : 1));
  std::vector<io::MetaValue> merges = {Str("h e"), Str("he l"), Str("l o"), Str("\xC4\xA0 w")};
  io::Metadata m;
  m["tokenizer.ggml.model"] = Str("gpt2");
  m["tokenizer.ggml.pre"] = Str("gpt-2");
  m["tokenizer.ggml.tokens"] = Arr(toks, io::MetaValue::Type::kString);
  m["tokenizer.ggml.token_type"] = Arr(types, io::MetaValue::Type::kInt32);
  m["tokenizer.ggml.merges"] = Arr(merges, io::MetaValue::Type::kString);
  m["tokenizer.ggml.eos_token_id"] = Int(260);
  return m;
}

TEST(ByteMap, MatchesGpt2) {
  // GPT-2's bytes_to_unicode: printable bytes map to themselves, space to U+0120 'Ġ'.
  EXPECT_EQ(ByteToUnicode()['a'], "a");
  EXPECT_EQ(ByteToUnicode()[' '], "\xC4\xA0");
  EXPECT_EQ(ByteToUnicode()['\n'], "\xC4\x8A");  // U+010A
  EXPECT_EQ(UnicodeToByte(0x120), ' ');
  EXPECT_EQ(UnicodeToByte(0x10A), '\n');
}

TEST(Utf8, LossyAndPrefix) {
  EXPECT_EQ(Utf8Lossy("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(Utf8Lossy("\xE2\x96"), "\xEF\xBF\xBD");  // truncated sequence: one U+FFFD
  EXPECT_EQ(CompleteUtf8Prefix("ab\xE2\x96"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xE2\x96\x81"), 5u);
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));  // surrogate
  EXPECT_TRUE(IsValidUtf8("\xF0\x9F\xA6\x99"));
}

TEST(PreTokenizer, RewritesWhitespace) {
  EXPECT_EQ(RewriteWhitespaceClasses("a\\sb"), "a[\\t-\\r\\x{20}\\x{85}\\p{Z}]b");
  EXPECT_EQ(RewriteWhitespaceClasses("[^\\s\\p{L}]"), "[^\\t-\\r\\x{20}\\x{85}\\p{Z}\\p{L}]");
}

TEST(PreTokenizer, EveryTableRowCompiles) {
  for (int p = 0; p <= static_cast<int>(PreTokenizer::kNone); ++p) {
    const PreTokenizerSpec& spec = SpecFor(static_cast<PreTokenizer>(p));
    std::vector<std::string> res(spec.regexes.begin(), spec.regexes.end());
    auto sp = RegexSplitter::Create(res);
    EXPECT_TRUE(sp.ok()) << p << ": " << sp.status().ToString();
    for (std::string_view name : spec.gguf_names) {
      auto found = PreTokenizerFromGgufName(name);
      ASSERT_TRUE(found.ok()) << name;
      EXPECT_EQ(*found, spec.id) << name;  // a name selects exactly one row
    }
  }
  EXPECT_FALSE(PreTokenizerFromGgufName("no-such-pre").ok());
}

TEST(PreTokenizer, Gpt2Split) {
  auto sp = RegexSplitter::Create({std::string(SpecFor(PreTokenizer::kGpt2).regexes[0])});
  ASSERT_TRUE(sp.ok());
  std::string text = "Hello world's  42!";
  std::vector<Span> words;
  (*sp)->Split(text, {0, text.size()}, &words);
  std::vector<std::string> got;
  for (auto w : words) got.push_back(text.substr(w.begin, w.end - w.begin));
  EXPECT_EQ(got, (std::vector<std::string>{"Hello", " world", "'s", " ", " 42", "!"}));
}

TEST(Tokenizer, TinyByteLevelBpe) {
  auto tok = Tokenizer::FromMetadata(TinyGpt2());
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  auto ids = (*tok)->Encode("hello world", {});
  ASSERT_TRUE(ids.ok());
  // "hello" -> he, l, lo? No: ranks h+e (0) then he+l (1) then l+o (2): "hel" "lo".
  // " world" -> Ġw (3) o r l d.
  std::vector<int32_t> want = {257, 258, 259, 'o', 'r', 'l', 'd'};
  EXPECT_EQ(*ids, want);
  EXPECT_EQ((*tok)->Decode(*ids), "hello world");
}

TEST(Tokenizer, SpecialOnlyWhenAsked) {
  auto tok = *Tokenizer::FromMetadata(TinyGpt2());
  auto plain = *tok->Encode("a<|end|>", {});
  auto parsed = *tok->Encode("a<|end|>", {.parse_special = true});
  EXPECT_EQ(parsed, (std::vector<int32_t>{'a', 260}));
  EXPECT_GT(plain.size(), 2u);
  EXPECT_TRUE(tok->IsEndOfGeneration(260));
  EXPECT_EQ(tok->Decode(parsed, /*skip_special=*/true), "a");
  EXPECT_FALSE(tok->Encode("\xFF", {}).ok());  // invalid UTF-8 is an error, not a crash
}

TEST(Tokenizer, SentencePieceByteFallbackAndSpace) {
  // Pieces: <unk> <s> </s> <0x00>..<0xFF> ▁ a b ▁a ab ▁ab
  std::vector<io::MetaValue> toks = {Str("<unk>"), Str("<s>"), Str("</s>")}, scores, types;
  for (int b = 0; b < 256; ++b) toks.push_back(Str(StrFormat("<0x%02X>", b)));
  for (const char* t : {"\xE2\x96\x81", "a", "b", "\xE2\x96\x81" "a", "ab", "\xE2\x96\x81" "ab"}) {
    toks.push_back(Str(t));
  }
  for (size_t i = 0; i < toks.size(); ++i) {
    scores.push_back(Float(i >= 259 ? -static_cast<double>(i) : 0.0));
    types.push_back(Int(i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1));
  }
  // Make "▁ab" win over "▁a"+"b": give "ab" the best score.
  scores[263] = Float(-1.0);
  io::Metadata m;
  m["tokenizer.ggml.model"] = Str("llama");
  m["tokenizer.ggml.tokens"] = Arr(toks, io::MetaValue::Type::kString);
  m["tokenizer.ggml.scores"] = Arr(scores, io::MetaValue::Type::kFloat32);
  m["tokenizer.ggml.token_type"] = Arr(types, io::MetaValue::Type::kInt32);
  m["tokenizer.ggml.bos_token_id"] = Int(1);
  m["tokenizer.ggml.eos_token_id"] = Int(2);
  auto tok = Tokenizer::FromMetadata(m);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  // "ab é": ▁ab (a+b first, then ▁+ab), ▁, é as bytes C3 A9.
  auto ids = *(*tok)->Encode("ab \xC3\xA9", {.add_special = true});
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 264, 259, 3 + 0xC3, 3 + 0xA9}));
  EXPECT_EQ((*tok)->Decode(ids, true), "ab \xC3\xA9");
  // A lone continuation byte decodes to U+FFFD per byte token.
  std::vector<int32_t> bad = {3 + 0xA9};
  EXPECT_EQ((*tok)->Decode(bad), "\xEF\xBF\xBD");
}

TEST(Tokenizer, RejectsBadMetadata) {
  io::Metadata m = TinyGpt2();
  m["tokenizer.ggml.model"] = Str("t5x");
  EXPECT_FALSE(Tokenizer::FromMetadata(m).ok());
  m = TinyGpt2();
  m["tokenizer.ggml.pre"] = Str("no-such-pre");
  EXPECT_FALSE(Tokenizer::FromMetadata(m).ok());
  m = TinyGpt2();
  m["tokenizer.ggml.tokens"] = Str("x");
  EXPECT_FALSE(Tokenizer::FromMetadata(m).ok());
}

}  // namespace
}  // namespace kiln::tokenizer

namespace kiln::tokenizer {
namespace {

std::string WriteTemp(const std::string& name, const std::string& body) {
  std::string dir = ::testing::TempDir() + "kiln_tok_" + name;
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/tokenizer.json") << body;
  return dir;
}

// A byte-level tokenizer.json with both merge spellings, an added special token, an added
// non-special token, and a tokenizer_config.json naming BOS and the chat template.
TEST(HfFiles, TinyByteLevel) {
  std::string vocab = "{";
  for (int b = 0; b < 256; ++b) {
    nlohmann::json key = ByteToUnicode()[b];
    vocab += key.dump() + ":" + std::to_string(b) + ",";
  }
  vocab += "\"he\":256,\"hel\":257}";
  std::string body = R"({"model":{"type":"BPE","vocab":)" + vocab +
      R"(,"merges":["h e",["he","l"]]},
      "pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":true},
      "decoder":{"type":"ByteLevel"},
      "added_tokens":[{"id":258,"content":"<|s|>","special":true},
                      {"id":259,"content":"<tool>","special":false}]})";
  std::string dir = WriteTemp("tiny", body);
  std::ofstream(dir + "/tokenizer_config.json")
      << R"({"bos_token":"<|s|>","add_bos_token":true,"chat_template":"{{ x }}"})";
  auto tok = Tokenizer::FromHfFiles(dir);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ((*tok)->n_vocab(), 260);
  EXPECT_EQ((*tok)->bos_id(), 258);
  EXPECT_EQ((*tok)->chat_template(), "{{ x }}");
  auto ids = *(*tok)->Encode("hel<tool><|s|>", {.add_special = true});
  // BOS; "hel" via both merges; <tool> always; <|s|> as text without parse_special.
  std::vector<int32_t> want = {258, 257, 259, '<', '|', 's', '|', '>'};
  EXPECT_EQ(ids, want);
  EXPECT_EQ((*tok)->Decode(ids, /*skip_special=*/true), "hel<tool><|s|>");
}

TEST(HfFiles, MalformedIsAnError) {
  EXPECT_FALSE(Tokenizer::FromHfFiles(WriteTemp("bad1", "{not json")).ok());
  EXPECT_FALSE(Tokenizer::FromHfFiles(WriteTemp("bad2", R"({"model":"x"})")).ok());
  EXPECT_FALSE(Tokenizer::FromHfFiles(WriteTemp("bad3", R"({"model":{"type":"BPE","vocab":[1]}})")).ok());
  EXPECT_FALSE(Tokenizer::FromHfFiles(WriteTemp("bad4", R"({"model":{"type":"Unigram","vocab":[]}})")).ok());
  EXPECT_FALSE(Tokenizer::FromHfFiles("/nonexistent/dir").ok());
}

}  // namespace
}  // namespace kiln::tokenizer
