// ConstraintCompiler: turns the public kiln::Constraint (JSON object mode, JSON Schema, GBNF)
// into a cached grammar::CompiledGrammar for one model's vocabulary, and makes the engine's
// per-choice TokenMask from it. Shared by the single-sequence Engine and the ServingEngine.
// Thread-safe: the vocabulary is built once, on first use; compiled grammars are cached (LRU).
#pragma once

#include <functional>
#include <memory>
#include <mutex>

#include "engine/request.h"
#include "grammar/compiled_grammar.h"
#include "kiln/engine.h"
#include "tokenizer/tokenizer.h"

namespace kiln::api {

class ConstraintCompiler {
 public:
  explicit ConstraintCompiler(std::shared_ptr<const tokenizer::Tokenizer> tokenizer);

  // Null for kNone. Errors: InvalidArgument "<field>: <cause>" (field defaults to
  // "constraint"); JSON Schema causes name the keyword, GBNF causes give line:column.
  StatusOr<std::shared_ptr<const grammar::CompiledGrammar>> Compile(const Constraint& c) const;

  // A factory for engine::RequestOptions::token_mask_factory: one Matcher-backed mask per call.
  std::function<std::unique_ptr<engine::TokenMask>()> MaskFactory(
      std::shared_ptr<const grammar::CompiledGrammar> grammar) const;

 private:
  grammar::GrammarCompiler& Compiler() const;

  std::shared_ptr<const tokenizer::Tokenizer> tok_;
  mutable std::once_flag once_;
  mutable std::unique_ptr<grammar::GrammarCompiler> compiler_;
};

}  // namespace kiln::api
