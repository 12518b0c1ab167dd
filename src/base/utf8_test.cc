#include "base/utf8.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

TEST(Utf8, ValidityFollowsUnicode) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));  // a é € 😀
  EXPECT_FALSE(IsValidUtf8("\xC0\x80"));          // overlong NUL
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));          // truncated
  EXPECT_FALSE(IsValidUtf8("\x80"));              // lone continuation
}

TEST(Utf8, CompletePrefixHoldsBackOnlyAPossibleCharacter) {
  EXPECT_EQ(CompleteUtf8Prefix("ab\xE2\x82"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xF0\x9F\x98"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xE2\x82\xAC"), 5u);
  EXPECT_EQ(CompleteUtf8Prefix("ab\xFF"), 3u);      // can never complete: emitted
  EXPECT_EQ(CompleteUtf8Prefix("ab\xE2\x28"), 4u);  // already invalid: emitted
}

TEST(Utf8, LossyReplacesMaximalSubparts) {
  // Unicode 15 §3.9 table 3-8 example: 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64.
  const std::string in = "a\xF1\x80\x80\xE1\x80\xC2" "b\x80" "c\x80\xBF" "d";
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(Utf8Lossy(in), "a" + r + r + r + "b" + r + "c" + r + r + "d");
  const std::u32string cps = DecodeUtf8(in);
  EXPECT_EQ(cps, U"a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd");
}

TEST(Utf8, RoundTripsEveryScalarValue) {
  for (uint32_t cp = 0; cp <= 0x10FFFF; cp += (cp < 0x3000 ? 1 : 97)) {
    if (cp >= 0xD800 && cp < 0xE000) continue;
    std::string s;
    AppendUtf8(cp, &s);
    ASSERT_TRUE(IsValidUtf8(s)) << cp;
    size_t pos = 0;
    ASSERT_EQ(NextCodepoint(s, &pos), cp);
    ASSERT_EQ(pos, s.size());
    ASSERT_EQ(Utf8Length(s), 1u);
    ASSERT_EQ(EncodeUtf8(DecodeUtf8(s)), s);
  }
}

TEST(Utf8, NextCodepointNeverReadsPastTheEnd) {
  const std::string s = "\xF0\x9F";
  size_t pos = 0;
  EXPECT_EQ(NextCodepoint(std::string_view(s.data(), 1), &pos), 0xFFFDu);
  EXPECT_EQ(pos, 1u);
}

}  // namespace
}  // namespace kiln
