// ECMAScript regular expression (the subset JSON Schema `pattern` uses) → GBNF expression.
// Supported: literals and escapes (\n \t \r \f \v \0 \xHH \uHHHH, identity escapes), classes
// with ranges and negation, \d \w \s \D \W \S, `.`, groups (capturing, (?:...), (?<name>...)),
// alternation, quantifiers * + ? {n} {n,} {n,m} (lazy forms: same language), ^ and $ at the ends
// of top-level alternatives. Anything else (backreferences, lookaround, \b, \p{..}, anchors in
// the middle) is InvalidArgument. Non-goals: flags, Unicode property classes.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "grammar/utf8_ranges.h"

namespace kiln::grammar {

// How a set of code points is written in the target grammar (raw for plain regexes, JSON-escaped
// inside JSON strings). Returns a GBNF expression matching one character of the set.
using CharSetEmitter = std::function<std::string(const std::vector<CodeRange>&)>;

// GBNF for the strings the regex matches, ECMA `search` semantics: unanchored ends allow any
// characters (`any_char` is the expression for one arbitrary character) before/after.
StatusOr<std::string> RegexToGbnf(std::string_view regex, const CharSetEmitter& emit,
                                  const std::string& any_char);

// A GBNF class expression for the ranges (e.g. "[a-z\u00E9]"); "[^\x00-\U0010FFFF]" if empty.
std::string GbnfClass(const std::vector<CodeRange>& ranges);

}  // namespace kiln::grammar
