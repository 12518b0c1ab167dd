// Matcher: the per-request state of constrained decoding — a pushdown recognizer over bytes
// that advances token by token, produces the allowed-token bitmask, rolls back for speculative
// decoding and finds jump-forward strings. Holds a shared CompiledGrammar.
// Not thread-safe: one Matcher per sequence, used by the engine thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "grammar/compiled_grammar.h"
#include "grammar/stack_engine.h"

namespace kiln::grammar {

class Matcher {
 public:
  // max_rollback_tokens: how many accepted tokens Rollback() can undo.
  explicit Matcher(std::shared_ptr<const CompiledGrammar> grammar, int max_rollback_tokens = 16);
  // Not copyable: the stack engine points into this matcher's node pool.
  Matcher(const Matcher&) = delete;
  Matcher& operator=(const Matcher&) = delete;

  // Number of uint32 words in a bitmask for this vocabulary: (n_vocab + 31) / 32.
  int32_t BitmaskWords() const { return (vocab_->n_vocab() + 31) / 32; }

  // Sets bit (id & 31) of bitmask[id >> 5] iff token id keeps the output a valid prefix of the
  // grammar; end-of-generation ids iff the grammar can end here; all other bits cleared
  // (BitmaskWords() words are written). After termination every bit is clear.
  void FillNextTokenBitmask(uint32_t* bitmask);

  // Advances over a token if the grammar allows it; on false the state is unchanged.
  // An end-of-generation id is accepted iff CanTerminate(), and terminates the matcher.
  bool AcceptToken(int32_t token_id);
  // Advances over raw bytes (e.g. a jump-forward string); all-or-nothing. Counts as one
  // rollback unit, like a token.
  bool AcceptString(std::string_view bytes);

  // Undoes the last n AcceptToken/AcceptString calls (n <= NumRollbackable()).
  void Rollback(int n);
  int NumRollbackable() const { return static_cast<int>(history_.size()) - 1; }

  // The bytes the grammar forces next (empty if there is a choice or the grammar can end).
  std::string FindJumpForwardString();

  bool CanTerminate() const { return !terminated_ && error_.empty() && state_.ended; }
  bool IsTerminated() const { return terminated_; }
  // The grammar has ended and nothing more may follow: only an end-of-generation token is
  // allowed next (a caller may stop without sampling it).
  bool IsCompleted() const {
    return !terminated_ && error_.empty() && state_.ended && state_.tops.empty();
  }
  void Reset();

  // Non-empty once a step exceeded the work bounds of stack_engine.h ("grammar too ambiguous:
  // ..."): from then on the mask is all clear and nothing is accepted (the caller ends the
  // sequence with this error). Only Reset() clears it.
  const std::string& Error() const { return error_; }

  const CompiledGrammar& compiled() const { return *grammar_; }

 private:
  struct Snapshot {
    internal::Frontier state;
    bool terminated;
  };
  void PushHistory();
  void SetExhausted(const char* where);
  // False when the work bounds were exceeded (then Error() is set).
  bool CheckUncertain(uint64_t top, const std::vector<int32_t>& tokens, uint32_t* bitmask,
                      std::vector<int32_t>* ok);

  std::shared_ptr<const CompiledGrammar> grammar_;
  const TokenVocab* vocab_;
  int max_rollback_;
  internal::NodePool pool_;
  internal::StackEngine engine_;
  internal::Frontier state_;
  bool terminated_ = false;
  std::string error_;
  uint64_t fill_work_start_ = 0;  // engine work at the start of the current mask computation
  uint64_t context_work_ = 0;     // work of the context masks computed for it
  std::vector<Snapshot> history_;  // history_.back() == current state
  internal::StateTable states_;  // memoized transitions for CheckUncertain
  // Uncertain tokens found valid, per stack top: a top (position + interned parent) names the
  // whole stack, so the result is exact to reuse (steps inside one string share their top).
  std::unordered_map<uint64_t, std::vector<int32_t>> uncertain_ok_;
  std::vector<int32_t> levels_;  // state id per depth (CheckUncertain scratch)
  internal::Frontier scratch_;
};

}  // namespace kiln::grammar
