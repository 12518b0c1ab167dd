// Detokenizer on a tiny byte-level vocabulary: characters split across tokens, stop strings
// spanning tokens. The oracle is the plain Decode of the whole sequence.
#include "tokenizer/detokenizer.h"

#include <gtest/gtest.h>

#include "tokenizer/unicode.h"

namespace kiln::tokenizer {
namespace {

io::MetaValue S(std::string s) {
  io::MetaValue v;
  v.type = io::MetaValue::Type::kString;
  v.s = std::move(s);
  return v;
}

std::shared_ptr<const Tokenizer> ByteVocab() {
  io::Metadata m;
  std::vector<io::MetaValue> toks, merges;
  for (int b = 0; b < 256; ++b) toks.push_back(S(ByteToUnicode()[b]));
  io::MetaValue arr;
  arr.type = io::MetaValue::Type::kArray;
  arr.elem_type = io::MetaValue::Type::kString;
  arr.array = toks;
  m["tokenizer.ggml.tokens"] = arr;
  arr.array = {S("a b")};
  m["tokenizer.ggml.merges"] = arr;
  m["tokenizer.ggml.model"] = S("gpt2");
  return *Tokenizer::FromMetadata(m);
}

std::vector<int32_t> Bytes(std::string_view s) {
  std::vector<int32_t> ids;
  for (char c : s) ids.push_back(static_cast<uint8_t>(c));
  return ids;
}

TEST(Detokenizer, HoldsBackPartialCharacters) {
  auto tok = ByteVocab();
  Detokenizer d(tok);
  std::string text = "x\xF0\x9F\xA6\x99y";  // x 🦙 y, the emoji split over four tokens
  std::vector<std::string> deltas;
  for (int32_t id : Bytes(text)) deltas.push_back(d.Push(id));
  deltas.push_back(d.Finish());
  EXPECT_EQ(deltas, (std::vector<std::string>{"x", "", "", "", "\xF0\x9F\xA6\x99", "y", ""}));
  for (const auto& s : deltas) EXPECT_TRUE(IsValidUtf8(s));
  EXPECT_EQ(d.text(), tok->Decode(Bytes(text)));
}

TEST(Detokenizer, StopStringAcrossTokens) {
  auto tok = ByteVocab();
  Detokenizer d(tok, {"STOP"});
  std::string out;
  for (int32_t id : Bytes("abcSTxSTOPzz")) out += d.Push(id);
  out += d.Finish();
  EXPECT_EQ(out, "abcSTx");
  EXPECT_TRUE(d.stopped());
  EXPECT_EQ(d.Push('q'), "");
}

TEST(Detokenizer, HeldPrefixReleasedAtFinish) {
  auto tok = ByteVocab();
  Detokenizer d(tok, {"</end>"});
  std::string out;
  for (int32_t id : Bytes("ok </e")) out += d.Push(id);
  EXPECT_EQ(out, "ok ");
  out += d.Finish();
  EXPECT_EQ(out, "ok </e");
  EXPECT_FALSE(d.stopped());
}

TEST(Detokenizer, InvalidBytesBecomeReplacement) {
  auto tok = ByteVocab();
  Detokenizer d(tok);
  std::string out = d.Push(0xE2);
  out += d.Push('a');
  out += d.Finish();
  EXPECT_EQ(out, "\xEF\xBF\xBD" "a");
  EXPECT_EQ(out, tok->Decode(std::vector<int32_t>{0xE2, 'a'}));
}

}  // namespace
}  // namespace kiln::tokenizer
