// UTF-8 helpers, the GPT-2 byte<->unicode map, and Unicode normalization / categories (ICU).
// Everything here works on UTF-8 std::string / std::string_view.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace kiln::tokenizer {

// Length of the UTF-8 sequence a lead byte starts (1 for ASCII and for invalid lead bytes).
inline int Utf8SeqLen(uint8_t lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

// True if `s` is well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF).
bool IsValidUtf8(std::string_view s);

// Length of the longest prefix of `s` that ends on a character boundary, where a trailing
// sequence that could still become a valid character with more bytes is left out.
size_t CompleteUtf8Prefix(std::string_view s);

// Decodes the code point at s[*pos] (which must be valid UTF-8) and advances *pos.
uint32_t NextCodepoint(std::string_view s, size_t* pos);
void AppendUtf8(uint32_t cp, std::string* out);

// Converts arbitrary bytes to valid UTF-8 the way Rust's String::from_utf8_lossy does: each
// maximal invalid subsequence becomes one U+FFFD.
std::string Utf8Lossy(std::string_view bytes);

// GPT-2 byte-level map: byte -> the UTF-8 text of the code point that stands for it.
const std::array<std::string, 256>& ByteToUnicode();
// Inverse: code point -> byte, or -1 if the code point is not one of the 256.
int UnicodeToByte(uint32_t cp);

enum class NormalForm { kNone, kNfc, kNfd, kNfkc, kNfkd };
// Normalizes valid UTF-8 text (ASCII passes through untouched).
StatusOr<std::string> Normalize(std::string_view text, NormalForm form);
// Full Unicode lowercasing (root locale), as Rust's str::to_lowercase.
std::string ToLower(std::string_view text);

// Categories (ICU, General_Category) used by the BERT pre-tokenizer.
bool IsWhitespaceCp(uint32_t cp);   // Unicode White_Space
bool IsControlCp(uint32_t cp);      // BERT: Cc/Cf/Co/Cs except \t \n \r
bool IsPunctuationCp(uint32_t cp);  // BERT: ASCII symbols or General_Category P*
bool IsMarkNonspacing(uint32_t cp); // Mn (accents after NFD)
bool IsCjkCp(uint32_t cp);          // BERT's CJK ideograph ranges

}  // namespace kiln::tokenizer
