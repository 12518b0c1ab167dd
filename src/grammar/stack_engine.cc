#include "grammar/stack_engine.h"

#include <algorithm>

namespace kiln::grammar::internal {

using Kind = GrammarElement::Kind;

int32_t NodePool::Intern(uint32_t pos, int32_t parent) {
  auto [it, inserted] = ids_.emplace(PackTop(pos, parent), static_cast<int32_t>(nodes_.size()));
  if (inserted) nodes_.push_back({pos, parent});
  return it->second;
}

void StackEngine::Expand(uint32_t pos, int32_t parent, Frontier* out) {
  const std::vector<GrammarElement>& elems = g_.elements();
  while (true) {
    const GrammarElement& e = elems[pos];
    if (e.kind == Kind::kByteSet) {
      out->tops.push_back(PackTop(pos, parent));
      return;
    }
    uint64_t key = PackTop(pos, parent);
    if (std::find(seen_.begin(), seen_.end(), key) != seen_.end()) return;
    seen_.push_back(key);
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
    for (uint32_t alt : g_.rule_alts(e.index)) Expand(alt, ret, out);
    return;
  }
}

void StackEngine::Finish(Frontier* out) {
  std::sort(out->tops.begin(), out->tops.end());
  out->tops.erase(std::unique(out->tops.begin(), out->tops.end()), out->tops.end());
  seen_.clear();
}

void StackEngine::Start(uint32_t rule, int32_t parent, Frontier* out) {
  out->Clear();
  seen_.clear();
  for (uint32_t alt : g_.rule_alts(rule)) Expand(alt, parent, out);
  Finish(out);
}

void StackEngine::Advance(const Frontier& in, uint8_t byte, Frontier* out) {
  out->Clear();
  seen_.clear();
  const std::vector<GrammarElement>& elems = g_.elements();
  for (uint64_t top : in.tops) {
    uint32_t pos = TopPos(top);
    if (g_.byte_set(elems[pos].index).test(byte)) Expand(pos + 1, TopParent(top), out);
  }
  Finish(out);
}

bool StackEngine::AdvanceBytes(Frontier* state, const uint8_t* bytes, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    Advance(*state, bytes[i], &tmp_);
    std::swap(*state, tmp_);
    if (state->tops.empty()) return i + 1 == n && state->ended;
  }
  return true;
}

int32_t StateTable::Intern(const Frontier& f) {
  std::string key(reinterpret_cast<const char*>(f.tops.data()), f.tops.size() * sizeof(uint64_t));
  key += static_cast<char>(f.ended | (f.escaped << 1));
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
