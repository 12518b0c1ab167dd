// GrammarTokenMask: the engine's TokenMask (request.h) backed by a grammar::Matcher, one per
// choice. Fill gives the grammar's allowed tokens (end-of-generation ids exactly where the grammar
// may end), Accept advances the matcher, Done says the grammar is complete, and Forced tokenizes
// the bytes the grammar forces next (jump-forward) so the caller appends them without sampling.
// Not thread-safe: used by the engine thread (or the single-sequence loop) only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/request.h"
#include "grammar/compiled_grammar.h"
#include "grammar/matcher.h"
#include "tokenizer/tokenizer.h"

namespace kiln::engine {

class GrammarTokenMask final : public TokenMask {
 public:
  // tokenizer may be null: then Forced() never jumps (it needs to tokenize forced bytes).
  GrammarTokenMask(std::shared_ptr<const grammar::CompiledGrammar> grammar,
                   std::shared_ptr<const tokenizer::Tokenizer> tokenizer);

  // Always restricts: resizes *allowed to the vocabulary's bitmask words and fills it.
  bool Fill(std::vector<uint32_t>* allowed) override;
  void Accept(int32_t token) override;
  std::string Error() const override { return error_; }
  bool Done() const override { return matcher_.IsTerminated() || matcher_.IsCompleted(); }
  // The forced bytes are cut to whole UTF-8 characters, encoded without special tokens, and
  // the last token is left to the model (it may merge with what follows). Used only when the
  // tokens' bytes concatenate to exactly a prefix of the forced bytes and the matcher accepts
  // them; otherwise nothing is forced.
  std::vector<int32_t> Forced(int32_t max_tokens) override;
  // Accepts the tokens one by one (stopping before an end-of-generation token or the matcher's
  // rollback depth), then rolls them all back.
  int32_t AllowedPrefix(std::span<const int32_t> tokens) override;

  const grammar::Matcher& matcher() const { return matcher_; }

 private:
  static constexpr int kRollbackTokens = 16;
  grammar::Matcher matcher_;
  std::shared_ptr<const tokenizer::Tokenizer> tok_;
  std::string error_;
};

// True if any bit of `allowed` is set for an id in [0, n_ids).
bool AnyAllowed(const std::vector<uint32_t>& allowed, int32_t n_ids);
// True if any of `ids` is allowed.
bool AnyAllowedOf(const std::vector<uint32_t>& allowed, const std::vector<int32_t>& ids);

}  // namespace kiln::engine
