// UTF-8 primitives shared by the tokenizer, the chat-template interpreter and the front ends.
// Well-formedness follows Unicode (no overlongs, surrogates or values past U+10FFFF); lossy
// conversions substitute U+FFFD per maximal invalid subpart, as Python and Rust do.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kiln {

// Length of the UTF-8 sequence a lead byte starts (1 for ASCII and for invalid lead bytes).
inline int Utf8SeqLen(uint8_t lead) {
  if (lead < 0x80) return 1;
  if ((lead >> 5) == 0x6) return 2;
  if ((lead >> 4) == 0xE) return 3;
  if ((lead >> 3) == 0x1E) return 4;
  return 1;
}

// True if `s` is well-formed UTF-8.
bool IsValidUtf8(std::string_view s);

// Length of the longest prefix of `s` that ends on a character boundary, where a trailing
// sequence that could still become a valid character with more bytes is left out.
size_t CompleteUtf8Prefix(std::string_view s);

// Decodes the code point at s[*pos] and advances *pos; an invalid or truncated sequence
// yields U+FFFD and advances one byte (never reads past the end).
uint32_t NextCodepoint(std::string_view s, size_t* pos);
void AppendUtf8(uint32_t cp, std::string* out);

// Arbitrary bytes → valid UTF-8: each maximal invalid subsequence becomes one U+FFFD
// (Rust's String::from_utf8_lossy, Python's errors="replace").
std::string Utf8Lossy(std::string_view bytes);

// Code points of `s`, decoded the same lossy way.
std::u32string DecodeUtf8(std::string_view s);
std::string EncodeUtf8(std::u32string_view s);
// Number of code points (continuation bytes are not counted).
size_t Utf8Length(std::string_view s);

}  // namespace kiln
