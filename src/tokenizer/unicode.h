// UTF-8 helpers, the GPT-2 byte<->unicode map, and Unicode normalization / categories (ICU).
// Everything here works on UTF-8 std::string / std::string_view.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"
#include "base/utf8.h"

namespace kiln::tokenizer {

// UTF-8 primitives (IsValidUtf8, NextCodepoint, AppendUtf8, Utf8Lossy, …) are in base/utf8.h.

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
