// Lexer: template source → tokens, with jinja2's exact whitespace control for
// trim_blocks=True, lstrip_blocks=True and `-`/`+` markers, and raw blocks.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

namespace kiln::jinja {

enum class TokKind {
  kData,
  kVarBegin, kVarEnd,
  kBlockBegin, kBlockEnd,
  kName, kString, kInt, kFloat, kOp,
  kEof,
};

struct Token {
  TokKind kind;
  std::string text;  // data, name, operator, decoded string literal, or number text
  int line = 1, col = 1;
};

// Normalizes newlines (\r\n, \r → \n) and drops one trailing newline, as jinja2 does.
std::string NormalizeSource(const std::string& source);

StatusOr<std::vector<Token>> Tokenize(const std::string& normalized_source);

}  // namespace kiln::jinja
