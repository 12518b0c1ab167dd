// The byte-level pushdown recognizer shared by the compiler (per-context token caches) and the
// Matcher (runtime). A parse state is a set of stacks; each stack is a top position (a kByteSet
// element waiting for a byte) plus a parent frame, an interned (return position, parent) node,
// so stacks share their tails and compare by id. Calls in tail position reuse the caller's frame,
// which keeps `x*` loops at constant stack depth.
// Internal to kiln_grammar. Not thread-safe (the NodePool mutates); one per thread/matcher.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "grammar/grammar.h"

namespace kiln::grammar::internal {

constexpr int32_t kRootParent = -1;      // popping it ends the whole grammar
constexpr int32_t kSentinelParent = -2;  // popping it leaves the context being precomputed

class NodePool {
 public:
  int32_t Intern(uint32_t pos, int32_t parent);
  uint32_t pos(int32_t node) const { return nodes_[node].pos; }
  int32_t parent(int32_t node) const { return nodes_[node].parent; }
  size_t size() const { return nodes_.size(); }

 private:
  struct Node {
    uint32_t pos;
    int32_t parent;
  };
  std::vector<Node> nodes_;
  std::unordered_map<uint64_t, int32_t> ids_;
};

inline uint64_t PackTop(uint32_t pos, int32_t parent) {
  return (static_cast<uint64_t>(pos) << 32) | static_cast<uint32_t>(parent);
}
inline uint32_t TopPos(uint64_t top) { return static_cast<uint32_t>(top >> 32); }
inline int32_t TopParent(uint64_t top) { return static_cast<int32_t>(static_cast<uint32_t>(top)); }

struct Frontier {
  std::vector<uint64_t> tops;  // sorted, unique
  bool ended = false;          // some path completed the root rule
  bool escaped = false;        // some path popped the sentinel (compiler only)
  bool Dead() const { return tops.empty() && !ended && !escaped; }
  void Clear() {
    tops.clear();
    ended = escaped = false;
  }
};

class StackEngine {
 public:
  StackEngine(const Grammar& g, NodePool* pool) : g_(g), pool_(pool) {}

  // The state before any byte: every way to start `rule` with the given parent frame.
  void Start(uint32_t rule, int32_t parent, Frontier* out);
  // out = the states after consuming `byte` from `in` (out != &in).
  void Advance(const Frontier& in, uint8_t byte, Frontier* out);
  // Advances over all bytes; false as soon as the state dies.
  bool AdvanceBytes(Frontier* state, const uint8_t* bytes, size_t n);

 private:
  void Expand(uint32_t pos, int32_t parent, Frontier* out);
  void Finish(Frontier* out);

  const Grammar& g_;
  NodePool* pool_;
  std::vector<uint64_t> seen_;  // (pos, parent) already expanded in this step
  Frontier tmp_;
};

// Parse states interned, with their byte transitions memoized: inside strings and other loops
// the same few states recur, so most steps cost one table lookup instead of a stack-engine step
// (a lazily built DFA). Used by trie walks (compiler) and uncertain-token checks (matcher).
class StateTable {
 public:
  explicit StateTable(StackEngine* engine) : engine_(engine) {}

  int32_t Intern(const Frontier& f);
  int32_t Next(int32_t state, uint8_t byte) {
    int32_t t = next_[state][byte];
    return t >= 0 ? t : Miss(state, byte);
  }
  const Frontier& state(int32_t id) const { return states_[id]; }
  size_t size() const { return states_.size(); }
  void Clear();

 private:
  int32_t Miss(int32_t state, uint8_t byte);

  StackEngine* engine_;
  std::vector<Frontier> states_;
  std::vector<std::array<int32_t, 256>> next_;
  std::unordered_map<std::string, int32_t> ids_;
  Frontier tmp_;
};

}  // namespace kiln::grammar::internal
