#include "grammar/matcher.h"

#include <algorithm>
#include <cstring>

namespace kiln::grammar {

using internal::Frontier;
using internal::TopParent;
using internal::TopPos;

Matcher::Matcher(std::shared_ptr<const CompiledGrammar> grammar, int max_rollback_tokens)
    : grammar_(std::move(grammar)),
      vocab_(&grammar_->vocab()),
      max_rollback_(std::max(0, max_rollback_tokens)),
      engine_(grammar_->grammar(), &pool_),
      states_(&engine_) {
  Reset();
}

void Matcher::Reset() {
  engine_.Start(grammar_->grammar().root_rule(), internal::kRootParent, &state_);
  terminated_ = false;
  error_.clear();
  if (state_.exhausted) SetExhausted("at the start,");
  history_.clear();
  PushHistory();
}

void Matcher::SetExhausted(const char* where) {
  if (error_.empty()) error_ = internal::TooAmbiguousMessage(where);
}

void Matcher::PushHistory() {
  history_.push_back({state_, terminated_});
  if (history_.size() > static_cast<size_t>(max_rollback_) + 1) history_.erase(history_.begin());
}

bool Matcher::AcceptToken(int32_t token_id) {
  if (terminated_ || !error_.empty() || token_id < 0 || token_id >= vocab_->n_vocab()) {
    return false;
  }
  if (vocab_->IsEog(token_id)) {
    if (!state_.ended) return false;
    terminated_ = true;
    PushHistory();
    return true;
  }
  const std::string& bytes = vocab_->token_bytes(token_id);
  if (bytes.empty()) return false;
  return AcceptString(bytes);
}

bool Matcher::AcceptString(std::string_view bytes) {
  if (terminated_ || !error_.empty()) return false;
  scratch_ = state_;
  if (!engine_.AdvanceBytes(&scratch_, reinterpret_cast<const uint8_t*>(bytes.data()),
                            bytes.size())) {
    if (scratch_.exhausted) SetExhausted("while accepting output,");
    return false;
  }
  std::swap(state_, scratch_);
  PushHistory();
  return true;
}

void Matcher::Rollback(int n) {
  KILN_CHECK(n >= 0 && n <= NumRollbackable())
      << "rollback of " << n << " tokens, only " << NumRollbackable() << " kept";
  history_.resize(history_.size() - n);
  state_ = history_.back().state;
  terminated_ = history_.back().terminated;
}

void Matcher::FillNextTokenBitmask(uint32_t* bitmask) {
  int32_t n_words = BitmaskWords();
  std::memset(bitmask, 0, sizeof(uint32_t) * n_words);
  if (terminated_ || !error_.empty()) return;
  fill_work_start_ = engine_.work();
  context_work_ = 0;
  if (state_.ended) {
    for (int32_t id : vocab_->eog_ids()) bitmask[id >> 5] |= 1u << (id & 31);
  }
  for (uint64_t top : state_.tops) {
    const CompiledGrammar::ContextMask* mask =
        &grammar_->GetContextMask(top, &pool_, &context_work_);
    if (mask->exhausted || context_work_ > internal::kMaxMaskWork) {
      SetExhausted("for the next token's mask,");
      break;
    }
    if (!mask->accepted_bits.empty()) {
      const uint32_t* src = mask->accepted_bits.data();
      for (int32_t w = 0; w < n_words; ++w) bitmask[w] |= src[w];
    } else {
      for (int32_t id : mask->accepted) bitmask[id >> 5] |= 1u << (id & 31);
    }
    if (mask->uncertain.empty()) continue;
    auto it = uncertain_ok_.find(top);
    if (it == uncertain_ok_.end()) {
      if (uncertain_ok_.size() > 4096) uncertain_ok_.clear();
      std::vector<int32_t> ok;
      if (!CheckUncertain(top, mask->uncertain, bitmask, &ok)) break;
      uncertain_ok_.emplace(top, std::move(ok));
    } else {
      for (int32_t id : it->second) bitmask[id >> 5] |= 1u << (id & 31);
    }
  }
  // Fail closed: a partial mask would silently exclude valid tokens.
  if (!error_.empty()) std::memset(bitmask, 0, sizeof(uint32_t) * n_words);
}

// Walks the uncertain tokens (in byte order) from the single stack `top`, reusing the states
// of the prefix shared with the previous token and skipping tokens under a dead prefix.
bool Matcher::CheckUncertain(uint64_t top, const std::vector<int32_t>& tokens,
                             uint32_t* bitmask, std::vector<int32_t>* ok) {
  constexpr size_t kMaxStates = 1 << 12;  // bounds the memo (~4 MiB of transitions)
  if (states_.size() > kMaxStates) states_.Clear();
  Frontier start;
  start.tops.push_back(top);
  if (levels_.empty()) levels_.resize(1);
  levels_[0] = states_.Intern(start);
  const std::string* prev = nullptr;
  size_t dead_depth = SIZE_MAX;
  for (int32_t id : tokens) {
    const std::string& s = vocab_->token_bytes(id);
    size_t lcp = 0;
    if (prev) {
      size_t n = std::min(s.size(), prev->size());
      while (lcp < n && s[lcp] == (*prev)[lcp]) ++lcp;
    }
    if (lcp >= dead_depth) continue;
    dead_depth = SIZE_MAX;
    prev = &s;
    if (levels_.size() < s.size() + 1) levels_.resize(s.size() + 1);
    bool dead = false;
    for (size_t d = lcp + 1; d <= s.size(); ++d) {
      levels_[d] = states_.Next(levels_[d - 1], static_cast<uint8_t>(s[d - 1]));
      const Frontier& f = states_.state(levels_[d]);
      if (f.exhausted || engine_.work() - fill_work_start_ > internal::kMaxMaskWork) {
        SetExhausted("for the next token's mask,");
        return false;
      }
      if (f.tops.empty() && (d < s.size() || !f.ended)) {
        dead_depth = d;
        dead = true;
        break;
      }
    }
    if (!dead) {
      bitmask[id >> 5] |= 1u << (id & 31);
      ok->push_back(id);
    }
  }
  return true;
}

std::string Matcher::FindJumpForwardString() {
  std::string out;
  if (terminated_ || !error_.empty()) return out;
  Frontier cur = state_, next;
  const Grammar& g = grammar_->grammar();
  // Bounded in bytes and in work (an optimization: stopping early only forgoes the rest; a
  // forced run whose frontier keeps growing, like root ::= "a"{1,4} root "!", would otherwise
  // cost quadratic time).
  constexpr size_t kMaxJump = 4096;
  constexpr uint64_t kMaxJumpWork = uint64_t{1} << 16;
  const uint64_t work_end = engine_.work() + kMaxJumpWork;
  while (!cur.ended && !cur.tops.empty() && out.size() < kMaxJump && engine_.work() < work_end) {
    ByteSet allowed;
    for (uint64_t top : cur.tops) allowed |= g.byte_set(g.element(TopPos(top)).index);
    if (allowed.count() != 1) break;
    int b = 0;
    while (!allowed.test(b)) ++b;
    out += static_cast<char>(b);
    engine_.Advance(cur, static_cast<uint8_t>(b), &next);
    std::swap(cur, next);
  }
  return out;
}

}  // namespace kiln::grammar
