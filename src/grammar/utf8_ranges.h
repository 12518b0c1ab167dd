// UTF-8 helpers for the grammar front ends: decoding/encoding code points and lowering a set of
// code-point ranges to byte-range sequences (the classic utf8-ranges split), so character classes
// become byte-level alternatives. Surrogates (U+D800..U+DFFF) are never produced.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::grammar {

struct CodeRange {
  uint32_t lo, hi;  // inclusive
};
struct ByteRange {
  uint8_t lo, hi;  // inclusive
};

// Decodes one code point from the front of s; returns its length in bytes or -1 if invalid.
int Utf8Decode(std::string_view s, uint32_t* cp);
std::string Utf8Encode(uint32_t cp);

// Sorted, merged ranges.
std::vector<CodeRange> Normalize(std::vector<CodeRange> ranges);
// [0, 0x10FFFF] minus ranges (and minus surrogates).
std::vector<CodeRange> Complement(const std::vector<CodeRange>& ranges);
// Byte-range sequences whose union encodes exactly the scalar values in ranges.
std::vector<std::vector<ByteRange>> Utf8Sequences(const std::vector<CodeRange>& ranges);

}  // namespace kiln::grammar
