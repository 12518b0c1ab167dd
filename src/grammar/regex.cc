#include "grammar/regex.h"

#include <memory>

namespace kiln::grammar {
namespace {

std::vector<CodeRange> Digits() { return {{'0', '9'}}; }
std::vector<CodeRange> WordChars() { return {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}}; }
std::vector<CodeRange> Spaces() {
  return {{0x09, 0x0D}, {0x20, 0x20}, {0xA0, 0xA0}, {0x1680, 0x1680}, {0x2000, 0x200A},
          {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
          {0xFEFF, 0xFEFF}};
}

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class RegexParser {
 public:
  RegexParser(std::string_view re, const CharSetEmitter& emit, const std::string& any_char)
      : re_(re), emit_(emit), any_(any_char) {}

  StatusOr<std::string> Parse() {
    std::string out = "(";
    bool first = true;
    while (true) {
      bool anchored_start = false, anchored_end = false;
      if (Peek() == '^') {
        anchored_start = true;
        ++pos_;
      }
      KILN_ASSIGN_OR_RETURN(std::string seq, ParseSeq(/*top=*/true, &anchored_end));
      if (!first) out += " | ";
      first = false;
      out += "(";
      if (!anchored_start) out += any_ + "* ";
      out += seq;
      if (!anchored_end) out += " " + any_ + "*";
      out += ")";
      if (pos_ >= re_.size()) break;
      if (Peek() != '|') return Error("unexpected ')'");
      ++pos_;
    }
    return out + ")";
  }

 private:
  Status Error(const char* what) {
    return InvalidArgument("pattern: %s at offset %zu in /%.*s/", what, pos_,
                           static_cast<int>(re_.size()), re_.data());
  }
  char Peek(size_t k = 0) const { return pos_ + k < re_.size() ? re_[pos_ + k] : '\0'; }
  bool AtEnd() const { return pos_ >= re_.size(); }

  StatusOr<std::string> ParseAlt() {
    std::string out = "(";
    while (true) {
      bool unused = false;
      KILN_ASSIGN_OR_RETURN(std::string seq, ParseSeq(/*top=*/false, &unused));
      out += seq.empty() ? "\"\"" : seq;
      if (Peek() != '|') break;
      ++pos_;
      out += " | ";
    }
    return out + ")";
  }

  StatusOr<std::string> ParseSeq(bool top, bool* anchored_end) {
    std::string out;
    if (++depth_ > 100) return Error("nesting too deep");
    while (!AtEnd() && Peek() != '|' && Peek() != ')') {
      if (Peek() == '$') {
        ++pos_;
        if (!top || !(AtEnd() || Peek() == '|')) return Error("'$' not at the end");
        *anchored_end = true;
        break;
      }
      if (Peek() == '^') return Error("'^' not at the start");
      KILN_ASSIGN_OR_RETURN(std::string atom, ParseAtom());
      KILN_ASSIGN_OR_RETURN(std::string quant, ParseQuantifier());
      if (!out.empty()) out += " ";
      out += quant.empty() ? atom : "(" + atom + ")" + quant;
    }
    if (top && !AtEnd() && Peek() == ')') return Error("unbalanced ')'");
    --depth_;
    return out.empty() ? std::string("\"\"") : out;
  }

  StatusOr<std::string> ParseQuantifier() {
    char c = Peek();
    std::string q;
    if (c == '*' || c == '+' || c == '?') {
      ++pos_;
      q = c;
    } else if (c == '{' && (Peek(1) >= '0' && Peek(1) <= '9')) {
      size_t start = pos_;
      ++pos_;
      while (!AtEnd() && Peek() != '}') ++pos_;
      if (AtEnd()) return Error("unterminated {}");
      std::string body(re_.substr(start + 1, pos_ - start - 1));
      ++pos_;
      for (char b : body) {
        if (!((b >= '0' && b <= '9') || b == ',')) return Error("bad {} quantifier");
      }
      q = "{" + body + "}";
    } else {
      return q;
    }
    if (Peek() == '?') ++pos_;  // lazy: same language
    if (Peek() == '*' || Peek() == '+' || Peek() == '?' || Peek() == '{') {
      if (Peek() != '{' || (Peek(1) >= '0' && Peek(1) <= '9')) return Error("nested quantifier");
    }
    return q;
  }

  StatusOr<std::string> ParseAtom() {
    char c = Peek();
    if (c == '(') {
      ++pos_;
      if (Peek() == '?') {
        if (Peek(1) == ':') {
          pos_ += 2;
        } else if (Peek(1) == '<' && Peek(2) != '=' && Peek(2) != '!') {
          while (!AtEnd() && Peek() != '>') ++pos_;
          ++pos_;
        } else {
          return Error("lookaround is not supported");
        }
      }
      KILN_ASSIGN_OR_RETURN(std::string alt, ParseAlt());
      if (Peek() != ')') return Error("missing ')'");
      ++pos_;
      return alt;
    }
    if (c == '[') return ParseClass();
    if (c == '.') {
      ++pos_;
      return emit_(Complement({{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}}));
    }
    if (c == '*' || c == '+' || c == '?' || (c == '{' && Peek(1) >= '0' && Peek(1) <= '9')) {
      return Error("nothing to repeat");
    }
    std::vector<CodeRange> set;
    if (c == '\\') {
      KILN_RETURN_IF_ERROR(ParseEscape(/*in_class=*/false, &set));
    } else {
      uint32_t cp;
      int len = Utf8Decode(re_.substr(pos_), &cp);
      if (len <= 0) return Error("invalid UTF-8");
      pos_ += len;
      set = {{cp, cp}};
    }
    return emit_(set);
  }

  // At a backslash: appends the escape's code points to set.
  Status ParseEscape(bool in_class, std::vector<CodeRange>* set) {
    ++pos_;
    if (AtEnd()) return Error("trailing backslash");
    char e = re_[pos_++];
    auto add = [&](const std::vector<CodeRange>& r) { set->insert(set->end(), r.begin(), r.end()); };
    auto one = [&](uint32_t cp) { set->push_back({cp, cp}); };
    switch (e) {
      case 'd': add(Digits()); return Status::Ok();
      case 'D': add(Complement(Digits())); return Status::Ok();
      case 'w': add(WordChars()); return Status::Ok();
      case 'W': add(Complement(WordChars())); return Status::Ok();
      case 's': add(Spaces()); return Status::Ok();
      case 'S': add(Complement(Spaces())); return Status::Ok();
      case 'n': one('\n'); return Status::Ok();
      case 'r': one('\r'); return Status::Ok();
      case 't': one('\t'); return Status::Ok();
      case 'f': one('\f'); return Status::Ok();
      case 'v': one('\v'); return Status::Ok();
      case '0':
        if (Peek() >= '0' && Peek() <= '9') return Error("octal escapes are not supported");
        one(0);
        return Status::Ok();
      case 'b':
        if (in_class) {
          one('\b');
          return Status::Ok();
        }
        return Error("word boundary \\b is not supported");
      case 'x': case 'u': {
        int n = e == 'x' ? 2 : 4;
        uint32_t v = 0;
        for (int i = 0; i < n; ++i) {
          int h = Hex(Peek());
          if (h < 0) return Error("bad hex escape");
          v = v * 16 + h;
          ++pos_;
        }
        if (v >= 0xD800 && v <= 0xDFFF) return Error("surrogate escapes are not supported");
        one(v);
        return Status::Ok();
      }
      default:
        if ((e >= '0' && e <= '9') || (e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z')) {
          return Error("unsupported escape");
        }
        if (static_cast<unsigned char>(e) >= 0x80) return Error("unsupported escape");
        one(static_cast<unsigned char>(e));
        return Status::Ok();
    }
  }

  StatusOr<std::string> ParseClass() {
    ++pos_;  // '['
    bool negate = false;
    if (Peek() == '^') {
      negate = true;
      ++pos_;
    }
    std::vector<CodeRange> set;
    bool first = true;
    while (true) {
      if (AtEnd()) return Error("unterminated class");
      if (Peek() == ']' && !first) {
        ++pos_;
        break;
      }
      if (Peek() == ']' && first) {  // ECMA: [] matches nothing, [^] anything
        ++pos_;
        break;
      }
      first = false;
      std::vector<CodeRange> lo_set;
      KILN_RETURN_IF_ERROR(ClassAtom(&lo_set));
      if (Peek() == '-' && Peek(1) != ']' && pos_ + 1 < re_.size()) {
        if (lo_set.size() != 1 || lo_set[0].lo != lo_set[0].hi) return Error("bad class range");
        ++pos_;
        std::vector<CodeRange> hi_set;
        KILN_RETURN_IF_ERROR(ClassAtom(&hi_set));
        if (hi_set.size() != 1 || hi_set[0].lo != hi_set[0].hi || hi_set[0].lo < lo_set[0].lo) {
          return Error("bad class range");
        }
        set.push_back({lo_set[0].lo, hi_set[0].lo});
      } else {
        set.insert(set.end(), lo_set.begin(), lo_set.end());
      }
    }
    if (negate) set = Complement(set);
    return emit_(Normalize(set));
  }

  Status ClassAtom(std::vector<CodeRange>* set) {
    if (Peek() == '\\') return ParseEscape(/*in_class=*/true, set);
    uint32_t cp;
    int len = Utf8Decode(re_.substr(pos_), &cp);
    if (len <= 0) return Error("invalid UTF-8");
    pos_ += len;
    set->push_back({cp, cp});
    return Status::Ok();
  }

  std::string_view re_;
  const CharSetEmitter& emit_;
  std::string any_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

StatusOr<std::string> RegexToGbnf(std::string_view regex, const CharSetEmitter& emit,
                                  const std::string& any_char) {
  return RegexParser(regex, emit, any_char).Parse();
}

std::string GbnfClass(const std::vector<CodeRange>& ranges) {
  std::vector<CodeRange> norm = Normalize(ranges);
  if (norm.empty()) return "[^\\x00-\\U0010FFFF]";
  std::string out = "[";
  for (CodeRange r : norm) {
    out += StrFormat("\\U%08X", r.lo);
    if (r.hi != r.lo) out += StrFormat("-\\U%08X", r.hi);
  }
  return out + "]";
}

}  // namespace kiln::grammar
