// UTF-8 helpers: Python strings index by code point, and str methods see Unicode whitespace.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/utf8.h"  // DecodeUtf8, EncodeUtf8, AppendUtf8, Utf8Length

namespace kiln::jinja {

// Python str.isspace() for one code point.
bool IsPySpace(uint32_t cp);
// Python str.isalnum()-ish for \w: letters, digits, underscore (ASCII exact, non-ASCII ≥ 0x80
// letters approximated as word characters except spaces/punctuation ranges).
bool IsPyWordChar(uint32_t cp);
// Simple case mapping for Latin, Greek, Cyrillic (other scripts unchanged).
uint32_t ToUpperCp(uint32_t cp);
uint32_t ToLowerCp(uint32_t cp);
// Has a case (a letter that upper()/lower() changes).
bool IsCasedCp(uint32_t cp);

}  // namespace kiln::jinja
