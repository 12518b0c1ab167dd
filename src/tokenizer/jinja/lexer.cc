#include "tokenizer/jinja/lexer.h"

#include <cctype>
#include <cstring>

#include "tokenizer/jinja/utf8.h"

namespace kiln::jinja {
namespace {

// Length of the UTF-8 sequence starting with byte c (1 for invalid lead bytes).
size_t SeqLen(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) return 2;
  if ((c & 0xF0) == 0xE0) return 3;
  if ((c & 0xF8) == 0xF0) return 4;
  return 1;
}

// Python whitespace code point starting at s[i], or 0 bytes if none.
size_t SpaceAt(const std::string& s, size_t i) {
  size_t n = SeqLen(static_cast<unsigned char>(s[i]));
  if (i + n > s.size()) return 0;
  std::u32string cps = DecodeUtf8(std::string_view(s).substr(i, n));
  return (cps.size() == 1 && IsPySpace(cps[0])) ? n : 0;
}

size_t SkipSpaces(const std::string& s, size_t i) {
  while (i < s.size()) {
    size_t n = SpaceAt(s, i);
    if (n == 0) break;
    i += n;
  }
  return i;
}

// str.rstrip() on UTF-8.
std::string RStripPy(const std::string& s) {
  size_t end = s.size();
  while (end > 0) {
    size_t start = end - 1;
    while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80 && end - start < 4) {
      --start;
    }
    std::u32string cps = DecodeUtf8(std::string_view(s).substr(start, end - start));
    if (cps.size() != 1 || !IsPySpace(cps[0])) break;
    end = start;
  }
  return s.substr(0, end);
}

bool AllPySpace(const std::string& s, size_t from) {
  if (from >= s.size()) return false;  // \s+ needs one character
  return SkipSpaces(s, from) == s.size();
}

class Lexer {
 public:
  explicit Lexer(const std::string& src) : src_(src) {}

  StatusOr<std::vector<Token>> Run() {
    while (pos_ < src_.size()) {
      size_t p = src_.find('{', pos_);
      while (p != std::string::npos && p + 1 < src_.size() && !IsTagStart(src_[p + 1])) {
        p = src_.find('{', p + 1);
      }
      if (p == std::string::npos || p + 1 >= src_.size()) {
        Emit(TokKind::kData, src_.substr(pos_), pos_);
        break;
      }
      KILN_RETURN_IF_ERROR(LexTag(p));
    }
    tokens_.push_back(Token{TokKind::kEof, "", Line(src_.size()), Col(src_.size())});
    return std::move(tokens_);
  }

 private:
  static bool IsTagStart(char c) { return c == '{' || c == '%' || c == '#'; }

  int Line(size_t offset) const {
    int line = 1;
    for (size_t i = 0; i < offset && i < src_.size(); ++i) line += src_[i] == '\n';
    return line;
  }
  int Col(size_t offset) const {
    size_t nl = offset == 0 ? std::string::npos : src_.rfind('\n', offset - 1);
    return static_cast<int>(offset - (nl == std::string::npos ? 0 : nl + 1)) + 1;
  }
  Status ErrorAt(size_t offset, const std::string& msg) const {
    return InvalidArgument("template syntax error at line %d, column %d: %s", Line(offset),
                           Col(offset), msg.c_str());
  }

  void Emit(TokKind kind, std::string text, size_t offset) {
    if (kind == TokKind::kData && text.empty()) return;
    // Line numbers are computed lazily only for tags to keep lexing linear on big data.
    tokens_.push_back(Token{kind, std::move(text), 0, 0});
    FixPosition(tokens_.back(), offset);
  }
  void FixPosition(Token& t, size_t offset) {
    // Incremental line tracking: offsets are non-decreasing.
    while (line_scan_ < offset && line_scan_ < src_.size()) {
      if (src_[line_scan_] == '\n') {
        ++cur_line_;
        line_start_ = line_scan_ + 1;
      }
      ++line_scan_;
    }
    t.line = cur_line_;
    t.col = static_cast<int>(offset - line_start_) + 1;
  }

  // Applies `-` / lstrip_blocks to the data before a tag, as jinja2's OptionalLStrip.
  std::string StripBefore(std::string text, char sign, bool is_variable) const {
    if (sign == '-') return RStripPy(text);
    if (sign != '+' && !is_variable) {
      size_t nl = text.rfind('\n');
      size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
      if ((l_pos > 0 || line_starting_) && AllPySpace(text, l_pos)) text.resize(l_pos);
    }
    return text;
  }

  Status LexTag(size_t p) {
    char type = src_[p + 1];
    char sign = (p + 2 < src_.size() && (src_[p + 2] == '-' || src_[p + 2] == '+')) ? src_[p + 2] : 0;
    size_t body = p + 2 + (sign ? 1 : 0);
    std::string text = src_.substr(pos_, p - pos_);
    if (type == '%') {
      size_t raw_end = 0;
      if (MatchRawBegin(body, &raw_end)) {
        Emit(TokKind::kData, StripBefore(std::move(text), sign, false), pos_);
        line_starting_ = src_[raw_end - 1] == '\n';
        return LexRaw(p, raw_end);
      }
    }
    Emit(TokKind::kData, StripBefore(std::move(text), sign, type == '{'), pos_);
    if (type == '#') return LexComment(p, body);
    Emit(type == '{' ? TokKind::kVarBegin : TokKind::kBlockBegin, "", p);
    return LexInside(type == '{', p, body);
  }

  // `{%[-+]? raw (-%}\s*|%})`; body is just past the sign.
  bool MatchRawBegin(size_t body, size_t* end) const {
    size_t i = SkipSpaces(src_, body);
    if (src_.compare(i, 3, "raw") != 0) return false;
    i = SkipSpaces(src_, i + 3);
    if (src_.compare(i, 3, "-%}") == 0) {
      *end = SkipSpaces(src_, i + 3);
      return true;
    }
    if (src_.compare(i, 2, "%}") == 0) {
      *end = i + 2;
      return true;
    }
    return false;
  }

  // Block end at i: `+%}`, `-%}\s*`, or `%}\n?` (trim_blocks). Returns the end offset or 0.
  size_t MatchBlockEnd(size_t i) const {
    if (src_.compare(i, 3, "+%}") == 0) return i + 3;
    if (src_.compare(i, 3, "-%}") == 0) return SkipSpaces(src_, i + 3);
    if (src_.compare(i, 2, "%}") == 0) return i + 2 + (i + 2 < src_.size() && src_[i + 2] == '\n');
    return 0;
  }

  Status LexRaw(size_t tag_pos, size_t from) {
    size_t i = from;
    while (true) {
      size_t p = src_.find("{%", i);
      if (p == std::string::npos) return ErrorAt(tag_pos, "missing end of raw directive");
      size_t j = p + 2;
      char sign = (j < src_.size() && (src_[j] == '-' || src_[j] == '+')) ? src_[j] : 0;
      if (sign) ++j;
      j = SkipSpaces(src_, j);
      if (src_.compare(j, 6, "endraw") == 0) {
        size_t end = MatchBlockEnd(SkipSpaces(src_, j + 6));
        if (end) {
          Emit(TokKind::kData, StripBefore(src_.substr(from, p - from), sign, false), from);
          pos_ = end;
          line_starting_ = src_[end - 1] == '\n';
          return Status::Ok();
        }
      }
      i = p + 2;
    }
  }

  Status LexComment(size_t tag_pos, size_t body) {
    size_t q = src_.find("#}", body);
    if (q == std::string::npos) return ErrorAt(tag_pos, "missing end of comment tag");
    size_t end;
    if (q > body && src_[q - 1] == '-') end = SkipSpaces(src_, q + 2);
    else if (q > body && src_[q - 1] == '+') end = q + 2;  // `+#}` keeps the newline
    else end = q + 2 + (q + 2 < src_.size() && src_[q + 2] == '\n');
    pos_ = end;
    line_starting_ = src_[end - 1] == '\n';
    return Status::Ok();
  }

  Status LexInside(bool is_var, size_t tag_pos, size_t i) {
    std::vector<char> balance;
    while (true) {
      if (i >= src_.size()) {
        return ErrorAt(tag_pos, is_var ? "unexpected end of template, expected '}}'"
                                       : "unexpected end of template, expected '%}'");
      }
      if (balance.empty()) {
        size_t end = 0;
        if (is_var) {
          if (src_.compare(i, 3, "-}}") == 0) end = SkipSpaces(src_, i + 3);
          else if (src_.compare(i, 2, "}}") == 0) end = i + 2;
        } else {
          end = MatchBlockEnd(i);
        }
        if (end) {
          Emit(is_var ? TokKind::kVarEnd : TokKind::kBlockEnd, "", i);
          pos_ = end;
          line_starting_ = src_[end - 1] == '\n';
          return Status::Ok();
        }
      }
      size_t sp = SpaceAt(src_, i);
      if (sp) { i += sp; continue; }
      char c = src_[i];
      if (std::isdigit(static_cast<unsigned char>(c))) {
        KILN_RETURN_IF_ERROR(LexNumber(&i));
        continue;
      }
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t j = i;
        while (j < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[j])) || src_[j] == '_')) ++j;
        Emit(TokKind::kName, src_.substr(i, j - i), i);
        i = j;
        continue;
      }
      if (c == '\'' || c == '"') {
        KILN_RETURN_IF_ERROR(LexString(&i));
        continue;
      }
      static const char* const kOps2[] = {"//", "**", "==", "!=", ">=", "<="};
      bool matched = false;
      for (const char* op : kOps2) {
        if (src_.compare(i, 2, op) == 0) {
          Emit(TokKind::kOp, op, i);
          i += 2;
          matched = true;
          break;
        }
      }
      if (matched) continue;
      if (std::strchr("+-/*%~[](){}><=.:|,;", c) == nullptr || c == 0) {
        return ErrorAt(i, std::string("unexpected char '") + c + "'");
      }
      if (c == '(' || c == '[' || c == '{') {
        balance.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
      } else if (c == ')' || c == ']' || c == '}') {
        if (balance.empty()) return ErrorAt(i, std::string("unexpected '") + c + "'");
        if (balance.back() != c) {
          return ErrorAt(i, std::string("unexpected '") + c + "', expected '" + balance.back() + "'");
        }
        balance.pop_back();
      }
      Emit(TokKind::kOp, std::string(1, c), i);
      ++i;
    }
  }

  Status LexNumber(size_t* pos) {
    size_t i = *pos;
    auto digits = [&](size_t j) {
      while (j < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[j])) ||
                                 (src_[j] == '_' && j + 1 < src_.size() &&
                                  std::isdigit(static_cast<unsigned char>(src_[j + 1]))))) {
        ++j;
      }
      return j;
    };
    size_t j = digits(i);
    bool is_float = false;
    if (j + 1 < src_.size() && src_[j] == '.' && std::isdigit(static_cast<unsigned char>(src_[j + 1])) &&
        !(i > 0 && src_[i - 1] == '.')) {
      j = digits(j + 1);
      is_float = true;
    }
    if (j < src_.size() && (src_[j] == 'e' || src_[j] == 'E') && !(i > 0 && src_[i - 1] == '.')) {
      size_t k = j + 1;
      if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
      if (k < src_.size() && std::isdigit(static_cast<unsigned char>(src_[k]))) {
        j = digits(k);
        is_float = true;
      }
    }
    std::string text;
    for (size_t k = i; k < j; ++k) {
      if (src_[k] != '_') text.push_back(src_[k]);
    }
    Emit(is_float ? TokKind::kFloat : TokKind::kInt, text, i);
    *pos = j;
    return Status::Ok();
  }

  Status LexString(size_t* pos) {
    size_t start = *pos;
    char quote = src_[start];
    std::string raw;
    size_t i = start + 1;
    while (true) {
      if (i >= src_.size()) return ErrorAt(start, "unterminated string literal");
      char c = src_[i];
      if (c == quote) break;
      if (c == '\\' && i + 1 < src_.size()) {
        raw.push_back(c);
        raw.push_back(src_[i + 1]);
        i += 2;
        continue;
      }
      raw.push_back(c);
      ++i;
    }
    std::string value;
    KILN_RETURN_IF_ERROR(Unescape(raw, start, &value));
    Emit(TokKind::kString, std::move(value), start);
    *pos = i + 1;
    return Status::Ok();
  }

  // Python's "unicode-escape" decoding, as jinja2 applies it to string literals.
  Status Unescape(const std::string& raw, size_t at, std::string* out) {
    for (size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '\\' || i + 1 >= raw.size()) {
        out->push_back(raw[i]);
        continue;
      }
      char e = raw[++i];
      switch (e) {
        case 'n': out->push_back('\n'); break;
        case 't': out->push_back('\t'); break;
        case 'r': out->push_back('\r'); break;
        case '\\': out->push_back('\\'); break;
        case '\'': out->push_back('\''); break;
        case '"': out->push_back('"'); break;
        case 'a': out->push_back('\a'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'v': out->push_back('\v'); break;
        case '\n': break;
        case 'x': case 'u': case 'U': {
          size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (i + n >= raw.size()) {
            return ErrorAt(at, "truncated \\" + std::string(1, e) + " escape in string literal");
          }
          uint32_t cp = 0;
          for (size_t k = 1; k <= n; ++k) {
            char h = raw[i + k];
            if (!std::isxdigit(static_cast<unsigned char>(h))) {
              return ErrorAt(at, "truncated \\" + std::string(1, e) + " escape in string literal");
            }
            cp = cp * 16 + (std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
          }
          if (cp > 0x10FFFF) return ErrorAt(at, "illegal Unicode character in string literal");
          AppendUtf8(cp, out);
          i += n;
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = e - '0';
            for (int k = 0; k < 2 && i + 1 < raw.size() && raw[i + 1] >= '0' && raw[i + 1] <= '7'; ++k) {
              cp = cp * 8 + (raw[++i] - '0');
            }
            AppendUtf8(cp, out);
          } else {
            out->push_back('\\');
            out->push_back(e);
          }
      }
    }
    return Status::Ok();
  }

  const std::string& src_;
  size_t pos_ = 0;
  bool line_starting_ = true;
  std::vector<Token> tokens_;
  size_t line_scan_ = 0, line_start_ = 0;
  int cur_line_ = 1;
};

}  // namespace

std::string NormalizeSource(const std::string& source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

StatusOr<std::vector<Token>> Tokenize(const std::string& normalized_source) {
  return Lexer(normalized_source).Run();
}

}  // namespace kiln::jinja
