#include "grammar/stack_engine.h"

#include <algorithm>

namespace kiln::grammar::internal {

using Kind = GrammarElement::Kind;

std::string TooAmbiguousMessage(const std::string& where) {
  return "grammar too ambiguous: " + where +
         " the matcher would track more than " + std::to_string(kMaxFrontierStacks) +
         " parse stacks or do more than " + std::to_string(kMaxStepExpansions) +
         " expansions for one byte (nested repetitions of the same items, like (x+)+ or "
         "a ::= b+ with b ::= c+, multiply the ways to parse); simplify the grammar";
}

int32_t NodePool::Intern(uint32_t pos, int32_t parent) {
  auto [it, inserted] = ids_.emplace(PackTop(pos, parent), static_cast<int32_t>(nodes_.size()));
  if (inserted) nodes_.push_back({pos, parent});
  return it->second;
}

bool KeySet::Insert(uint64_t key) {
  if ((used_.size() + 1) * 2 > slots_.size()) Grow();
  const size_t mask = slots_.size() - 1;
  size_t i = static_cast<size_t>((key * 0x9E3779B97F4A7C15ULL) >> 32) & mask;
  while (slots_[i] != kEmpty) {
    if (slots_[i] == key) return false;
    i = (i + 1) & mask;
  }
  slots_[i] = key;
  used_.push_back(static_cast<uint32_t>(i));
  return true;
}

void KeySet::Clear() {
  for (uint32_t i : used_) slots_[i] = kEmpty;
  used_.clear();
}

void KeySet::Grow() {
  std::vector<uint64_t> keys;
  keys.reserve(used_.size());
  for (uint32_t i : used_) keys.push_back(slots_[i]);
  slots_.assign(std::max<size_t>(64, slots_.size() * 2), kEmpty);
  used_.clear();
  for (uint64_t k : keys) Insert(k);
}

void StackEngine::Expand(uint32_t pos, int32_t parent, int depth, Frontier* out) {
  const std::vector<GrammarElement>& elems = g_.elements();
  while (true) {
    if (step_exhausted_) return;
    if (++step_work_ > kMaxStepExpansions || depth > kMaxExpandDepth) {
      step_exhausted_ = true;
      return;
    }
    const GrammarElement& e = elems[pos];
    if (e.kind == Kind::kByteSet) {
      out->tops.push_back(PackTop(pos, parent));
      return;
    }
    if (!seen_.Insert(PackTop(pos, parent))) return;
    if (e.kind == Kind::kEnd) {
      if (parent == kRootParent) {
        out->ended = true;
        return;
      }
      if (parent == kSentinelParent) {
        out->escaped = true;
        return;
      }
      pos = pool_->pos(parent);
      parent = pool_->parent(parent);
      continue;
    }
    // Rule reference: the return frame is skipped when the call is in tail position.
    int32_t ret = elems[pos + 1].kind == Kind::kEnd ? parent : pool_->Intern(pos + 1, parent);
    for (uint32_t alt : g_.rule_alts(e.index)) Expand(alt, ret, depth + 1, out);
    return;
  }
}

void StackEngine::Begin(Frontier* out) {
  out->Clear();
  seen_.Clear();
  step_work_ = 0;
  step_exhausted_ = false;
}

void StackEngine::Finish(Frontier* out) {
  total_work_ += step_work_;
  seen_.Clear();
  if (!step_exhausted_) {
    std::sort(out->tops.begin(), out->tops.end());
    out->tops.erase(std::unique(out->tops.begin(), out->tops.end()), out->tops.end());
    step_exhausted_ = out->tops.size() > kMaxFrontierStacks;
  }
  if (step_exhausted_) {
    out->Clear();
    out->exhausted = true;
  }
}

void StackEngine::Start(uint32_t rule, int32_t parent, Frontier* out) {
  Begin(out);
  for (uint32_t alt : g_.rule_alts(rule)) Expand(alt, parent, 0, out);
  Finish(out);
}

void StackEngine::Advance(const Frontier& in, uint8_t byte, Frontier* out) {
  Begin(out);
  step_exhausted_ = in.exhausted;
  const std::vector<GrammarElement>& elems = g_.elements();
  for (uint64_t top : in.tops) {
    uint32_t pos = TopPos(top);
    if (g_.byte_set(elems[pos].index).test(byte)) Expand(pos + 1, TopParent(top), 0, out);
  }
  Finish(out);
}

bool StackEngine::AdvanceBytes(Frontier* state, const uint8_t* bytes, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    Advance(*state, bytes[i], &tmp_);
    std::swap(*state, tmp_);
    if (state->exhausted) return false;
    if (state->tops.empty()) return i + 1 == n && state->ended;
  }
  return true;
}

int32_t StateTable::Intern(const Frontier& f) {
  std::string key(reinterpret_cast<const char*>(f.tops.data()), f.tops.size() * sizeof(uint64_t));
  key += static_cast<char>(f.ended | (f.escaped << 1) | (f.exhausted << 2));
  auto [it, inserted] = ids_.emplace(std::move(key), static_cast<int32_t>(states_.size()));
  if (inserted) {
    states_.push_back(f);
    next_.emplace_back();
    next_.back().fill(-1);
  }
  return it->second;
}

int32_t StateTable::Miss(int32_t state, uint8_t byte) {
  engine_->Advance(states_[state], byte, &tmp_);
  int32_t t = Intern(tmp_);
  next_[state][byte] = t;
  return t;
}

void StateTable::Clear() {
  states_.clear();
  next_.clear();
  ids_.clear();
}

}  // namespace kiln::grammar::internal
