#include "base/utf8.h"

namespace kiln {
namespace {

// Bounds of the first continuation byte after lead `c`; 0 continuation bytes if `c` is no lead.
int LeadInfo(uint8_t c, uint8_t* lo, uint8_t* hi) {
  *lo = 0x80;
  *hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) {
    if (c == 0xE0) *lo = 0xA0;
    if (c == 0xED) *hi = 0x9F;
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (c == 0xF0) *lo = 0x90;
    if (c == 0xF4) *hi = 0x8F;
    return 4;
  }
  return 0;
}

// Length of the valid sequence at s[i], or 0 if invalid; *truncated is set when the bytes so
// far are a valid beginning cut off by the end of `s`. *run: the maximal invalid subpart.
size_t ScanSeq(std::string_view s, size_t i, bool* truncated, size_t* run) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  *truncated = false;
  *run = 1;
  if (p[i] < 0x80) return 1;
  uint8_t lo, hi;
  const int n = LeadInfo(p[i], &lo, &hi);
  if (n == 0) return 0;
  for (int k = 1; k < n; ++k) {
    if (i + k >= s.size()) {
      *truncated = true;
      *run = k;
      return 0;
    }
    const uint8_t b = p[i + k];
    if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) {
      *run = k;
      return 0;
    }
  }
  return n;
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  bool truncated;
  size_t run;
  for (size_t i = 0; i < s.size();) {
    const size_t n = ScanSeq(s, i, &truncated, &run);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

size_t CompleteUtf8Prefix(std::string_view s) {
  // Only the last 3 bytes can hold an incomplete sequence.
  bool truncated;
  size_t run;
  for (size_t i = s.size() > 3 ? s.size() - 3 : 0; i < s.size(); ++i) {
    if ((static_cast<uint8_t>(s[i]) & 0xC0) == 0x80) continue;
    ScanSeq(s, i, &truncated, &run);
    if (truncated) return i;
  }
  return s.size();
}

uint32_t NextCodepoint(std::string_view s, size_t* pos) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data()) + *pos;
  bool truncated;
  size_t run;
  const size_t n = ScanSeq(s, *pos, &truncated, &run);
  if (n == 0) {
    *pos += 1;
    return 0xFFFD;
  }
  uint32_t cp = n == 1 ? p[0] : n == 2 ? (p[0] & 0x1F) : n == 3 ? (p[0] & 0x0F) : (p[0] & 0x07);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (p[k] & 0x3F);
  *pos += n;
  return cp;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string Utf8Lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  bool truncated;
  size_t run;
  for (size_t i = 0; i < bytes.size();) {
    const size_t n = ScanSeq(bytes, i, &truncated, &run);
    if (n > 0) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      i += run;
    }
  }
  return out;
}

std::u32string DecodeUtf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  bool truncated;
  size_t run;
  for (size_t i = 0; i < s.size();) {
    if (ScanSeq(s, i, &truncated, &run) > 0) {
      out.push_back(NextCodepoint(s, &i));
    } else {
      out.push_back(0xFFFD);
      i += run;
    }
  }
  return out;
}

std::string EncodeUtf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t cp : s) AppendUtf8(cp, &out);
  return out;
}

size_t Utf8Length(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
  return n;
}

}  // namespace kiln
