// GBNF parser and the lowering of Unicode classes to UTF-8 byte sequences.
#include "grammar/grammar.h"

#include <algorithm>
#include <map>
#include <optional>
#include <unordered_map>
#include <utility>

#include "grammar/utf8_ranges.h"

namespace kiln::grammar {
namespace {

using Elem = GrammarElement;
using Kind = GrammarElement::Kind;

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A term known to be exactly `base{min,max}` (max -1: unbounded): stacked quantifiers on it
// are merged instead of nesting repetition rules (see ComposeRepetitions).
struct Quantified {
  bool valid = false;
  Elem base;
  int min = 0, max = 0;
};

// (x{a,b}){c,d} as one x{lo,hi} when that is the same language: a concatenation of copies of
// one item depends only on the count, and the possible counts are the union over k in [c,d]
// of [k*a, k*b], an interval exactly when consecutive k's touch. x++ = x+, (x+)* = (x*)+ =
// (x?)+ = (x+)? = x*, x?? = x?, x{2}{3} = x{6}; not x{2}* (even counts only). Nesting
// instead would make every level a choice between repeating and returning, i.e. exponentially
// many parse stacks for the matcher. -1 means unbounded; nothing when not provably equal.
std::optional<std::pair<int, int>> ComposeRepetitions(int a, int b, int c, int d) {
  if (b == 0 || d == 0) return std::nullopt;  // x{0}: keeps its "nothing to repeat" rules
  const int64_t lo = int64_t{a} * c;
  const int64_t hi = (b < 0 || d < 0) ? -1 : int64_t{b} * d;
  if (lo > kMaxRepetition || hi > kMaxRepetition) return std::nullopt;
  if (c == 0 && a > 1) return std::nullopt;  // counts 0 and a.. leave a gap
  const int64_t k = std::max(c, 1);
  if (b >= 0 && (d < 0 || k < d) && (k + 1) * a > k * b + 1) return std::nullopt;
  return std::make_pair(static_cast<int>(lo), static_cast<int>(hi));
}

class GbnfParser {
 public:
  explicit GbnfParser(std::string_view src) : src_(src) {}

  StatusOr<Grammar> Parse(std::string_view root_name) {
    SkipSpace();
    if (pos_ >= src_.size()) return Error(pos_, "empty grammar");
    while (pos_ < src_.size()) {
      KILN_RETURN_IF_ERROR(ParseRule());
      SkipSpace();
    }
    for (size_t r = 0; r < rules_.size(); ++r) {
      if (!defined_[r]) {
        return Error(first_use_[r], "undefined rule '%s'", rules_[r].name.c_str());
      }
    }
    auto it = rule_ids_.find(std::string(root_name));
    if (it == rule_ids_.end()) {
      return InvalidArgument("grammar has no '%.*s' rule", static_cast<int>(root_name.size()),
                             root_name.data());
    }
    return Grammar::Finalize(std::move(rules_), std::move(sets_), it->second);
  }

 private:
  template <typename... Args>
  Status Error(size_t at, const char* fmt, Args... args) {
    int line = 1, col = 1;
    for (size_t i = 0; i < at && i < src_.size(); ++i) {
      if (src_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    std::string msg = StrFormat(fmt, args...);
    return InvalidArgument("grammar error at line %d, column %d: %s", line, col, msg.c_str());
  }
  Status Error(size_t at, const char* msg) { return Error(at, "%s", msg); }

  bool AtEnd() const { return pos_ >= src_.size(); }
  char Peek(size_t ahead = 0) const {
    return pos_ + ahead < src_.size() ? src_[pos_ + ahead] : '\0';
  }

  void SkipSpace() {
    while (pos_ < src_.size()) {
      char c = src_[pos_];
      if (c == '#') {
        while (pos_ < src_.size() && src_[pos_] != '\n') ++pos_;
      } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else {
        break;
      }
    }
  }

  std::string_view ParseName() {
    size_t start = pos_;
    while (pos_ < src_.size() && IsNameChar(src_[pos_])) ++pos_;
    return src_.substr(start, pos_ - start);
  }

  // True if a rule definition `name ::=` starts at pos_.
  bool AtRuleDefinition() {
    size_t save = pos_;
    std::string_view name = ParseName();
    SkipSpace();
    bool is_def = !name.empty() && src_.substr(pos_, 3) == "::=";
    pos_ = save;
    return is_def;
  }

  uint32_t RuleId(std::string_view name, size_t use_at) {
    auto [it, inserted] = rule_ids_.emplace(std::string(name), rules_.size());
    if (inserted) {
      rules_.push_back({std::string(name), {}});
      defined_.push_back(false);
      first_use_.push_back(use_at);
    }
    return it->second;
  }

  // Helper rules (groups, repetitions, classes) are named base_N for display, but registered
  // under a key no rule name can spell, so a user rule of the same name stays a different rule.
  uint32_t NewHelperRule(const std::string& base) {
    std::string name;
    do {
      name = base + "_" + std::to_string(++n_helpers_);
    } while (rule_ids_.count(name));
    uint32_t id = RuleId("\x01" + name, pos_);
    rules_[id].name = name;
    defined_[id] = true;
    return id;
  }

  uint32_t SetIndex(const ByteSet& set) {
    std::string key = set.to_string();
    auto [it, inserted] = set_ids_.emplace(key, sets_.size());
    if (inserted) sets_.push_back(set);
    return it->second;
  }

  Elem ByteElem(uint8_t b) {
    ByteSet s;
    s.set(b);
    return {Kind::kByteSet, SetIndex(s)};
  }

  Status CheckSize() {
    if (++n_elements_ > kMaxGrammarElements) {
      return ResourceExhausted("grammar too large (more than %zu elements)", kMaxGrammarElements);
    }
    return Status::Ok();
  }

  Status ParseRule() {
    size_t name_at = pos_;
    std::string_view name = ParseName();
    if (name.empty()) return Error(pos_, "expected a rule name");
    SkipSpace();
    if (src_.substr(pos_, 3) != "::=") return Error(pos_, "expected '::=' after rule name");
    pos_ += 3;
    uint32_t id = RuleId(name, name_at);
    if (defined_[id]) return Error(name_at, "rule '%s' defined twice", rules_[id].name.c_str());
    defined_[id] = true;
    current_rule_ = std::string(name);
    std::vector<std::vector<Elem>> alts;
    Quantified single;
    KILN_RETURN_IF_ERROR(ParseAlternatives(alts, /*nested=*/false, &single));
    rules_[id].alts = std::move(alts);
    return Status::Ok();
  }

  // *single: set when there is one alternative made of one quantified term.
  Status ParseAlternatives(std::vector<std::vector<Elem>>& alts, bool nested,
                           Quantified* single) {
    if (++depth_ > kMaxDepth) return Error(pos_, "nesting too deep");
    *single = Quantified();
    while (true) {
      std::vector<Elem> seq;
      KILN_RETURN_IF_ERROR(ParseSequence(seq, nested, alts.empty() ? single : nullptr));
      alts.push_back(std::move(seq));
      SkipSpace();
      if (Peek() != '|') break;
      ++pos_;
      *single = Quantified();
    }
    --depth_;
    return Status::Ok();
  }

  // *single (if given): set when the sequence is one quantified term.
  Status ParseSequence(std::vector<Elem>& seq, bool nested, Quantified* single) {
    for (int n_terms = 0;; ++n_terms) {
      SkipSpace();
      if (AtEnd() || Peek() == '|' || Peek() == ')' || (!nested && AtRuleDefinition())) {
        if (single && n_terms != 1) *single = Quantified();
        return Status::Ok();
      }
      std::vector<Elem> term;
      Quantified q;
      KILN_RETURN_IF_ERROR(ParseTerm(term, &q));
      KILN_RETURN_IF_ERROR(ParseRepetitions(term, &q));
      if (single) *single = q;
      seq.insert(seq.end(), term.begin(), term.end());
    }
  }

  // *q: set when the term is a group holding one quantified item.
  Status ParseTerm(std::vector<Elem>& term, Quantified* q) {
    size_t at = pos_;
    char c = Peek();
    if (c == '"') return ParseLiteral(term);
    if (c == '[') return ParseClass(term);
    if (c == '.') {
      ++pos_;
      return AppendClass({{0, 0x10FFFF}}, term);
    }
    if (c == '(') {
      ++pos_;
      std::vector<std::vector<Elem>> alts;
      KILN_RETURN_IF_ERROR(ParseAlternatives(alts, /*nested=*/true, q));
      SkipSpace();
      if (Peek() != ')') return Error(at, "unclosed '('");
      ++pos_;
      uint32_t id = NewHelperRule(current_rule_);
      rules_[id].alts = std::move(alts);
      term.push_back({Kind::kRuleRef, id});
      return CheckSize();
    }
    if (IsNameChar(c)) {
      std::string_view name = ParseName();
      term.push_back({Kind::kRuleRef, RuleId(name, at)});
      return CheckSize();
    }
    return Error(at, "unexpected character '%c'", c);
  }

  // Reads one (possibly escaped) code point inside a literal or class.
  StatusOr<uint32_t> ParseChar() {
    size_t at = pos_;
    if (AtEnd()) return Error(at, "unexpected end of grammar");
    unsigned char c = static_cast<unsigned char>(src_[pos_]);
    if (c == '\\') {
      ++pos_;
      if (AtEnd()) return Error(at, "unfinished escape");
      char e = src_[pos_++];
      switch (e) {
        case 'n': return uint32_t{'\n'};
        case 'r': return uint32_t{'\r'};
        case 't': return uint32_t{'\t'};
        case '0': return uint32_t{0};
        case '\\': case '"': case '[': case ']': case '-': case '^': case '\'':
          return static_cast<uint32_t>(e);
        case 'x': case 'u': case 'U': {
          int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t v = 0;
          for (int i = 0; i < n; ++i) {
            int h = HexValue(Peek());
            if (h < 0) return Error(pos_, "expected %d hex digits after \\%c", n, e);
            v = v * 16 + h;
            ++pos_;
          }
          if (v > 0x10FFFF) return Error(at, "code point out of range");
          return v;
        }
        default:
          return Error(at, "unknown escape '\\%c'", e);
      }
    }
    uint32_t cp = 0;
    int len = Utf8Decode(src_.substr(pos_), &cp);
    if (len <= 0) return Error(at, "invalid UTF-8 in grammar");
    pos_ += len;
    return cp;
  }

  Status ParseLiteral(std::vector<Elem>& term) {
    size_t at = pos_;
    ++pos_;  // opening quote
    while (true) {
      if (AtEnd()) return Error(at, "unterminated string literal");
      if (Peek() == '"') {
        ++pos_;
        return Status::Ok();
      }
      KILN_ASSIGN_OR_RETURN(uint32_t cp, ParseChar());
      std::string bytes = Utf8Encode(cp);
      for (char b : bytes) {
        term.push_back(ByteElem(static_cast<uint8_t>(b)));
        KILN_RETURN_IF_ERROR(CheckSize());
      }
    }
  }

  Status ParseClass(std::vector<Elem>& term) {
    size_t at = pos_;
    ++pos_;  // '['
    bool negate = false;
    if (Peek() == '^') {
      negate = true;
      ++pos_;
    }
    std::vector<CodeRange> ranges;
    while (true) {
      if (AtEnd()) return Error(at, "unterminated character class");
      if (Peek() == ']') {
        ++pos_;
        break;
      }
      KILN_ASSIGN_OR_RETURN(uint32_t lo, ParseChar());
      uint32_t hi = lo;
      if (Peek() == '-' && Peek(1) != ']' && pos_ + 1 < src_.size()) {
        ++pos_;
        KILN_ASSIGN_OR_RETURN(hi, ParseChar());
        if (hi < lo) return Error(at, "character range out of order");
      }
      ranges.push_back({lo, hi});
    }
    if (negate) ranges = Complement(ranges);
    return AppendClass(ranges, term);
  }

  // Lowers a code-point class to one byte-set element (ASCII-only) or a helper rule whose
  // alternatives are UTF-8 byte-range sequences. Identical classes share one rule.
  Status AppendClass(const std::vector<CodeRange>& ranges, std::vector<Elem>& term) {
    std::vector<std::vector<ByteRange>> seqs = Utf8Sequences(ranges);
    std::string key;
    for (const auto& s : seqs) {
      for (auto r : s) key += StrFormat("%02x%02x", r.lo, r.hi);
      key += '|';
    }
    bool single = !seqs.empty() && std::all_of(seqs.begin(), seqs.end(), [](const auto& s) {
      return s.size() == 1;
    });
    if (single) {
      ByteSet set;
      for (const auto& s : seqs) {
        for (int b = s[0].lo; b <= s[0].hi; ++b) set.set(b);
      }
      term.push_back({Kind::kByteSet, SetIndex(set)});
      return CheckSize();
    }
    auto it = class_rules_.find(key);
    if (it == class_rules_.end()) {
      uint32_t id = NewHelperRule("char");
      ByteSet ascii;
      for (const auto& s : seqs) {
        if (s.size() == 1) {
          for (int b = s[0].lo; b <= s[0].hi; ++b) ascii.set(b);
          continue;
        }
        std::vector<Elem> alt;
        for (auto r : s) {
          ByteSet set;
          for (int b = r.lo; b <= r.hi; ++b) set.set(b);
          alt.push_back({Kind::kByteSet, SetIndex(set)});
          KILN_RETURN_IF_ERROR(CheckSize());
        }
        rules_[id].alts.push_back(std::move(alt));
      }
      if (ascii.any()) rules_[id].alts.push_back({{Kind::kByteSet, SetIndex(ascii)}});
      it = class_rules_.emplace(key, id).first;
    }
    term.push_back({Kind::kRuleRef, it->second});
    return CheckSize();
  }

  StatusOr<int> ParseInt() {
    SkipSpace();
    size_t at = pos_;
    long v = 0;
    while (Peek() >= '0' && Peek() <= '9') {
      v = v * 10 + (Peek() - '0');
      if (v > kMaxRepetition) return Error(at, "repetition count above %d", kMaxRepetition);
      ++pos_;
    }
    if (pos_ == at) return Error(at, "expected a number");
    SkipSpace();
    return static_cast<int>(v);
  }

  // Wraps a multi-element term in a rule so it can be repeated as one element.
  Elem AsOneElement(const std::vector<Elem>& term) {
    if (term.size() == 1) return term[0];
    uint32_t id = NewHelperRule(current_rule_);
    rules_[id].alts.push_back(term);
    return {Kind::kRuleRef, id};
  }

  // Reads one quantifier (* + ? {m} {m,} {m,n}) if present.
  StatusOr<bool> ParseQuantifier(int* min, int* max) {
    char c = Peek();
    size_t at = pos_;
    *min = 0;
    *max = -1;  // unbounded
    if (c == '*') {
      ++pos_;
    } else if (c == '+') {
      ++pos_;
      *min = 1;
    } else if (c == '?') {
      ++pos_;
      *max = 1;
    } else if (c == '{') {
      ++pos_;
      KILN_ASSIGN_OR_RETURN(*min, ParseInt());
      *max = *min;
      if (Peek() == ',') {
        ++pos_;
        SkipSpace();
        *max = -1;
        if (Peek() != '}') {
          KILN_ASSIGN_OR_RETURN(*max, ParseInt());
        }
      }
      if (Peek() != '}') return Error(pos_, "expected '}' in repetition");
      ++pos_;
      if (*max >= 0 && *max < *min) {
        return Error(at, "repetition {%d,%d}: max below min", *min, *max);
      }
    } else {
      return false;
    }
    return true;
  }

  // Applies the quantifiers after a term. *q describes the term when it is exactly
  // base{min,max} (a group holding one quantified item); stacked quantifiers are merged into
  // it where the language stays the same (ComposeRepetitions) and built once at the end.
  Status ParseRepetitions(std::vector<Elem>& term, Quantified* q) {
    bool pending = false;  // *q not built into `term` yet
    while (true) {
      size_t at = pos_;
      int min = 0, max = -1;
      KILN_ASSIGN_OR_RETURN(bool found, ParseQuantifier(&min, &max));
      if (!found) break;
      if (term.empty() && !pending) return Error(at, "nothing to repeat");
      if (q->valid) {
        if (auto c = ComposeRepetitions(q->min, q->max, min, max)) {
          std::tie(q->min, q->max) = *c;
          pending = true;
          continue;
        }
        if (pending) KILN_RETURN_IF_ERROR(Repeat(q->base, q->min, q->max, term));
        if (term.empty()) return Error(at, "nothing to repeat");
      }
      *q = {true, AsOneElement(term), min, max};
      pending = true;
    }
    if (pending) KILN_RETURN_IF_ERROR(Repeat(q->base, q->min, q->max, term));
    return Status::Ok();
  }

  // term = x{min,max} (max -1: unbounded).
  Status Repeat(Elem x, int min, int max, std::vector<Elem>& term) {
    std::vector<Elem> out(min, x);
    if (max < 0) {  // x* as a right-recursive (tail-call) rule
      uint32_t star = NewHelperRule(current_rule_);
      rules_[star].alts = {{x, {Kind::kRuleRef, star}}, {}};
      out.push_back({Kind::kRuleRef, star});
    } else if (max > min) {  // (x (x (x)?)?)? nested from the inside out
      uint32_t inner = NewHelperRule(current_rule_);
      rules_[inner].alts = {{x}, {}};
      for (int i = min + 1; i < max; ++i) {
        uint32_t outer = NewHelperRule(current_rule_);
        rules_[outer].alts = {{x, {Kind::kRuleRef, inner}}, {}};
        inner = outer;
        KILN_RETURN_IF_ERROR(CheckSize());
      }
      out.push_back({Kind::kRuleRef, inner});
    }
    n_elements_ += out.size();
    KILN_RETURN_IF_ERROR(CheckSize());
    term = std::move(out);
    return Status::Ok();
  }

  static constexpr int kMaxDepth = 200;
  std::string_view src_;
  size_t pos_ = 0;
  int depth_ = 0;
  size_t n_elements_ = 0;
  int n_helpers_ = 0;
  std::string current_rule_;
  std::vector<Grammar::RawRule> rules_;
  std::unordered_map<std::string, uint32_t> rule_ids_;
  std::vector<bool> defined_;
  std::vector<size_t> first_use_;
  std::vector<ByteSet> sets_;
  std::unordered_map<std::string, uint32_t> set_ids_;
  std::unordered_map<std::string, uint32_t> class_rules_;
};

// Left recursion (a rule reaching itself without consuming a byte) would make the matcher's
// expansion loop forever, so it is an error; nullable rules are computed first.
Status CheckLeftRecursion(const std::vector<Grammar::RawRule>& rules) {
  size_t n = rules.size();
  std::vector<bool> nullable(n, false);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < n; ++r) {
      if (nullable[r]) continue;
      for (const auto& alt : rules[r].alts) {
        bool all = std::all_of(alt.begin(), alt.end(), [&](const Elem& e) {
          return e.kind == Kind::kRuleRef && nullable[e.index];
        });
        if (all) {
          nullable[r] = changed = true;
          break;
        }
      }
    }
  }
  std::vector<std::vector<uint32_t>> left(n);
  for (size_t r = 0; r < n; ++r) {
    for (const auto& alt : rules[r].alts) {
      for (const Elem& e : alt) {
        if (e.kind != Kind::kRuleRef) break;
        left[r].push_back(e.index);
        if (!nullable[e.index]) break;
      }
    }
  }
  std::vector<uint8_t> color(n, 0);  // 0 new, 1 on stack, 2 done
  for (size_t start = 0; start < n; ++start) {
    if (color[start]) continue;
    std::vector<std::pair<uint32_t, size_t>> stack = {{static_cast<uint32_t>(start), 0}};
    color[start] = 1;
    while (!stack.empty()) {
      auto& [r, i] = stack.back();
      if (i == left[r].size()) {
        color[r] = 2;
        stack.pop_back();
        continue;
      }
      uint32_t next = left[r][i++];
      if (color[next] == 1) {
        return InvalidArgument(
            "grammar is left-recursive (rule '%s' can reach itself without consuming input; "
            "rewrite it right-recursively, or avoid repeating something that can match empty)",
            rules[next].name.c_str());
      }
      if (color[next] == 0) {
        color[next] = 1;
        stack.push_back({next, 0});
      }
    }
  }
  return Status::Ok();
}

std::string ByteSetToString(const ByteSet& s) {
  std::string out = "[";
  for (int b = 0; b < 256;) {
    if (!s.test(b)) {
      ++b;
      continue;
    }
    int e = b;
    while (e + 1 < 256 && s.test(e + 1)) ++e;
    out += StrFormat("\\x%02X", b);
    if (e > b) out += StrFormat("-\\x%02X", e);
    b = e + 1;
  }
  return out + "]";
}

}  // namespace

StatusOr<Grammar> Grammar::FromGbnf(std::string_view text, std::string_view root_rule) {
  return GbnfParser(text).Parse(root_rule);
}

StatusOr<Grammar> Grammar::Finalize(std::vector<RawRule> rules, std::vector<ByteSet> byte_sets,
                                    uint32_t root) {
  KILN_RETURN_IF_ERROR(CheckLeftRecursion(rules));
  Grammar g;
  g.root_ = root;
  g.byte_sets_ = std::move(byte_sets);
  for (uint32_t r = 0; r < rules.size(); ++r) {
    g.rule_names_.push_back(std::move(rules[r].name));
    std::vector<uint32_t> starts;
    for (const auto& alt : rules[r].alts) {
      starts.push_back(static_cast<uint32_t>(g.elements_.size()));
      g.elements_.insert(g.elements_.end(), alt.begin(), alt.end());
      g.elements_.push_back({Kind::kEnd, r});
    }
    g.rule_alts_.push_back(std::move(starts));
  }
  if (g.elements_.size() > kMaxGrammarElements) {
    return ResourceExhausted("grammar too large (%zu elements)", g.elements_.size());
  }
  return g;
}

std::string Grammar::ToString() const {
  std::string out;
  for (uint32_t r = 0; r < rule_names_.size(); ++r) {
    out += rule_names_[r] + " ::=";
    for (size_t a = 0; a < rule_alts_[r].size(); ++a) {
      if (a) out += " |";
      for (uint32_t p = rule_alts_[r][a]; elements_[p].kind != Kind::kEnd; ++p) {
        const Elem& e = elements_[p];
        out += " ";
        out += e.kind == Kind::kRuleRef ? rule_names_[e.index] : ByteSetToString(byte_sets_[e.index]);
      }
    }
    out += "\n";
  }
  return out;
}

std::string GbnfQuote(std::string_view bytes) {
  std::string out = "\"";
  for (unsigned char c : bytes) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7F) {
      // Raw bytes >= 0x80 must not be re-decoded as UTF-8 by the parser: escape them as bytes
      // is impossible in GBNF (\x is a code point), so pass valid UTF-8 through unchanged.
      if (c >= 0x80) {
        out += static_cast<char>(c);
      } else {
        out += StrFormat("\\x%02X", c);
      }
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

}  // namespace kiln::grammar
