// Grammar: a context-free grammar over BYTES, the IR every front end (GBNF text, JSON Schema,
// regex) lowers to and the matcher runs. Unicode character classes are lowered to alternatives
// of UTF-8 byte-range sequences at parse time, so the matcher never decodes UTF-8.
// Repetitions, groups and classes become helper rules; every rule is a list of alternatives,
// every alternative a sequence of elements stored contiguously in one flat array and ended by
// a kEnd element (so "position" = index into that array).
// Goals: exact languages, clear errors (line:column) for untrusted grammar text, no crash.
// Non-goals: left-recursive grammars (reported as errors), lookahead, semantic actions.
#pragma once

#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace kiln::grammar {

struct GrammarElement {
  enum class Kind : uint8_t { kByteSet, kRuleRef, kEnd };
  Kind kind = Kind::kEnd;
  uint32_t index = 0;  // kByteSet: byte_sets() index; kRuleRef: rule id; kEnd: rule id it ends
};

using ByteSet = std::bitset<256>;

// Immutable after construction (move-only by convention; copies are cheap enough for tests).
class Grammar {
 public:
  // GBNF (llama.cpp-style EBNF): `name ::= alternatives`, `|`, grouping `( )`, repetition
  // `* + ? {m} {m,} {m,n}`, "literals" with escapes (\n \r \t \\ \" \xXX \uXXXX \UXXXXXXXX),
  // [classes] with ranges and `^` negation, `.` (any Unicode scalar value), `# comments`.
  // The start rule is `root_rule`. Errors name line:column.
  static StatusOr<Grammar> FromGbnf(std::string_view text, std::string_view root_rule = "root");

  uint32_t root_rule() const { return root_; }
  size_t n_rules() const { return rule_names_.size(); }
  const std::string& rule_name(uint32_t rule) const { return rule_names_[rule]; }
  // Start positions of the rule's alternatives (into elements()).
  const std::vector<uint32_t>& rule_alts(uint32_t rule) const { return rule_alts_[rule]; }
  const std::vector<GrammarElement>& elements() const { return elements_; }
  const GrammarElement& element(uint32_t pos) const { return elements_[pos]; }
  const std::vector<ByteSet>& byte_sets() const { return byte_sets_; }
  const ByteSet& byte_set(uint32_t idx) const { return byte_sets_[idx]; }

  // Debug dump in a GBNF-like notation with byte sets as [\xHH-\xHH].
  std::string ToString() const;

  // Used by the builder (grammar.cc). Rules are vectors of alternatives of elements without
  // the trailing kEnd; Finalize() flattens them and checks for left recursion.
  struct RawRule {
    std::string name;
    std::vector<std::vector<GrammarElement>> alts;
  };
  static StatusOr<Grammar> Finalize(std::vector<RawRule> rules, std::vector<ByteSet> byte_sets,
                                    uint32_t root);

 private:
  std::vector<std::string> rule_names_;
  std::vector<std::vector<uint32_t>> rule_alts_;
  std::vector<GrammarElement> elements_;
  std::vector<ByteSet> byte_sets_;
  uint32_t root_ = 0;
};

// Escapes bytes for a GBNF "literal" (used by generators such as the JSON Schema converter).
std::string GbnfQuote(std::string_view bytes);

// Limits that keep hostile grammars from exhausting memory (ResourceExhausted beyond them).
constexpr size_t kMaxGrammarElements = 2'000'000;
constexpr int kMaxRepetition = 10'000;

}  // namespace kiln::grammar
