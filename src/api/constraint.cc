#include "api/constraint.h"

#include "engine/grammar_mask.h"

namespace kiln::api {

ConstraintCompiler::ConstraintCompiler(std::shared_ptr<const tokenizer::Tokenizer> tokenizer)
    : tok_(std::move(tokenizer)) {}

grammar::GrammarCompiler& ConstraintCompiler::Compiler() const {
  std::call_once(once_, [&] {
    compiler_ = std::make_unique<grammar::GrammarCompiler>(grammar::TokenVocab::FromTokenizer(*tok_));
  });
  return *compiler_;
}

StatusOr<std::shared_ptr<const grammar::CompiledGrammar>> ConstraintCompiler::Compile(
    const Constraint& c) const {
  const std::string field = c.field.empty() ? "constraint" : c.field;
  StatusOr<std::shared_ptr<const grammar::CompiledGrammar>> r =
      std::shared_ptr<const grammar::CompiledGrammar>();
  switch (c.kind) {
    case Constraint::Kind::kNone:
      return std::shared_ptr<const grammar::CompiledGrammar>();
    case Constraint::Kind::kJsonObject:
      if (!c.text.empty()) return InvalidArgument("%s: JSON object mode takes no text", field.c_str());
      return Compiler().CompileBuiltinJson();
    case Constraint::Kind::kJsonSchema:
      if (c.text.empty()) return InvalidArgument("%s: the JSON Schema is empty", field.c_str());
      r = Compiler().CompileJsonSchema(c.text);
      break;
    case Constraint::Kind::kGbnf:
      if (c.text.empty()) return InvalidArgument("%s: the grammar is empty", field.c_str());
      r = Compiler().CompileGbnf(c.text);
      break;
    default:
      return InvalidArgument("%s: unknown constraint kind %d", field.c_str(),
                             static_cast<int>(c.kind));
  }
  if (!r.ok()) {
    // Every cause is the request's fault, also the grammar limits (ResourceExhausted: too
    // large, "grammar too ambiguous"): retrying cannot help, so a 400 naming the field, not
    // the 429 a server-side resource limit would get.
    return InvalidArgument("%s: %s", field.c_str(), r.status().message().c_str());
  }
  return r;
}

std::function<std::unique_ptr<engine::TokenMask>()> ConstraintCompiler::MaskFactory(
    std::shared_ptr<const grammar::CompiledGrammar> grammar) const {
  if (!grammar) return nullptr;
  return [grammar = std::move(grammar), tok = tok_]() -> std::unique_ptr<engine::TokenMask> {
    return std::make_unique<engine::GrammarTokenMask>(grammar, tok);
  };
}

}  // namespace kiln::api
