#include "tokenizer/unicode.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <vector>

namespace kiln::tokenizer {
namespace {

// Bytes that GPT-2 keeps as their own code point; the rest map to 256, 257, … in byte order.
bool KeepsOwnCodepoint(int b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct ByteMaps {
  std::array<std::string, 256> to_unicode;
  std::array<int16_t, 512> to_byte;  // code points < 512 only
  ByteMaps() {
    to_byte.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      uint32_t cp = KeepsOwnCodepoint(b) ? b : next++;
      AppendUtf8(cp, &to_unicode[b]);
      to_byte[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteMaps& Maps() {
  static const ByteMaps maps;  // immutable after first use
  return maps;
}

std::u16string ToUtf16(std::string_view s) {
  std::u16string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) {
    uint32_t cp = NextCodepoint(s, &pos);
    if (cp < 0x10000) {
      out.push_back(static_cast<char16_t>(cp));
    } else {
      cp -= 0x10000;
      out.push_back(static_cast<char16_t>(0xD800 + (cp >> 10)));
      out.push_back(static_cast<char16_t>(0xDC00 + (cp & 0x3FF)));
    }
  }
  return out;
}

std::string FromUtf16(const char16_t* s, size_t n) {
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    uint32_t cp = s[i];
    if (cp >= 0xD800 && cp < 0xDC00 && i + 1 < n) {
      cp = 0x10000 + ((cp - 0xD800) << 10) + (s[i + 1] - 0xDC00);
      ++i;
    }
    AppendUtf8(cp, &out);
  }
  return out;
}

bool IsAscii(std::string_view s) {
  for (char c : s) {
    if (static_cast<uint8_t>(c) >= 0x80) return false;
  }
  return true;
}

}  // namespace

const std::array<std::string, 256>& ByteToUnicode() { return Maps().to_unicode; }

int UnicodeToByte(uint32_t cp) { return cp < 512 ? Maps().to_byte[cp] : -1; }

StatusOr<std::string> Normalize(std::string_view text, NormalForm form) {
  if (form == NormalForm::kNone || IsAscii(text)) return std::string(text);
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* norm = nullptr;
  switch (form) {
    case NormalForm::kNfc: norm = unorm2_getNFCInstance(&err); break;
    case NormalForm::kNfd: norm = unorm2_getNFDInstance(&err); break;
    case NormalForm::kNfkc: norm = unorm2_getNFKCInstance(&err); break;
    case NormalForm::kNfkd: norm = unorm2_getNFKDInstance(&err); break;
    case NormalForm::kNone: break;
  }
  if (U_FAILURE(err) || norm == nullptr) return Internal("ICU normalizer: %s", u_errorName(err));
  std::u16string src = ToUtf16(text);
  std::vector<UChar> dst(src.size() * 3 + 16);
  int32_t n = unorm2_normalize(norm, reinterpret_cast<const UChar*>(src.data()),
                               static_cast<int32_t>(src.size()), dst.data(),
                               static_cast<int32_t>(dst.size()), &err);
  if (err == U_BUFFER_OVERFLOW_ERROR) {
    err = U_ZERO_ERROR;
    dst.resize(n);
    n = unorm2_normalize(norm, reinterpret_cast<const UChar*>(src.data()),
                         static_cast<int32_t>(src.size()), dst.data(),
                         static_cast<int32_t>(dst.size()), &err);
  }
  if (U_FAILURE(err)) return InvalidArgument("ICU normalize: %s", u_errorName(err));
  return FromUtf16(reinterpret_cast<const char16_t*>(dst.data()), n);
}

std::string ToLower(std::string_view text) {
  if (IsAscii(text)) {
    std::string out(text);
    for (char& c : out) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    }
    return out;
  }
  std::u16string src = ToUtf16(text);
  std::vector<UChar> dst(src.size() * 3 + 16);
  UErrorCode err = U_ZERO_ERROR;
  int32_t n = u_strToLower(dst.data(), static_cast<int32_t>(dst.size()),
                           reinterpret_cast<const UChar*>(src.data()),
                           static_cast<int32_t>(src.size()), "", &err);
  if (err == U_BUFFER_OVERFLOW_ERROR) {
    err = U_ZERO_ERROR;
    dst.resize(n);
    n = u_strToLower(dst.data(), static_cast<int32_t>(dst.size()),
                     reinterpret_cast<const UChar*>(src.data()),
                     static_cast<int32_t>(src.size()), "", &err);
  }
  if (U_FAILURE(err)) return std::string(text);
  return FromUtf16(reinterpret_cast<const char16_t*>(dst.data()), n);
}

bool IsWhitespaceCp(uint32_t cp) { return u_hasBinaryProperty(cp, UCHAR_WHITE_SPACE); }

bool IsControlCp(uint32_t cp) {
  if (cp == '\t' || cp == '\n' || cp == '\r') return false;
  switch (u_charType(cp)) {
    // Unassigned code points are kept, as Hugging Face's BertNormalizer keeps them.
    case U_CONTROL_CHAR: case U_FORMAT_CHAR: case U_PRIVATE_USE_CHAR: case U_SURROGATE:
      return true;
    default:
      return false;
  }
}

bool IsPunctuationCp(uint32_t cp) {
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) ||
      (cp >= 123 && cp <= 126)) {
    return true;
  }
  switch (u_charType(cp)) {
    case U_CONNECTOR_PUNCTUATION: case U_DASH_PUNCTUATION: case U_START_PUNCTUATION:
    case U_END_PUNCTUATION: case U_INITIAL_PUNCTUATION: case U_FINAL_PUNCTUATION:
    case U_OTHER_PUNCTUATION:
      return true;
    default:
      return false;
  }
}

bool IsMarkNonspacing(uint32_t cp) { return u_charType(cp) == U_NON_SPACING_MARK; }

bool IsCjkCp(uint32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

}  // namespace kiln::tokenizer
