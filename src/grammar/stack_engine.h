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

// Work bounds of one step (Start/Advance). An ambiguous grammar can have exponentially many
// parse stacks for one input (each level of nested repetitions of the same items, `(x+)+` or
// `a ::= b+` with `b ::= c+`, may either repeat or return), so a step that needs more than this
// gives up: its result is `exhausted`, which every caller turns into an error (fail closed).
// Ordinary grammars stay orders of magnitude below (a JSON Schema step: tens of stacks).
constexpr size_t kMaxStepExpansions = size_t{1} << 18;  // Expand visits in one step
constexpr size_t kMaxFrontierStacks = size_t{1} << 16;  // distinct stacks after one step
constexpr int kMaxExpandDepth = 2000;                    // nested calls before one byte
// Work bound of one token mask (the vocabulary-trie walks of the contexts it needs first, and
// separately the matcher's re-check of uncertain tokens): beyond it the sequence fails.
// JSON Schema grammars with a 49k-token vocabulary need at most ~16k per context.
constexpr uint64_t kMaxMaskWork = uint64_t{1} << 22;

// The error text for exhausted work bounds ("grammar too ambiguous: ...").
std::string TooAmbiguousMessage(const std::string& where);

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
  bool exhausted = false;      // a step exceeded the work bounds: state unknown (no tops)
  bool Dead() const { return tops.empty() && !ended && !escaped && !exhausted; }
  void Clear() {
    tops.clear();
    ended = escaped = exhausted = false;
  }
};

// A set of 64-bit keys (never ~0) with O(1) insert and O(size) clear: open addressing.
class KeySet {
 public:
  bool Insert(uint64_t key);  // false if already present
  void Clear();

 private:
  void Grow();
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  std::vector<uint64_t> slots_;
  std::vector<uint32_t> used_;  // occupied slot indices
};

class StackEngine {
 public:
  StackEngine(const Grammar& g, NodePool* pool) : g_(g), pool_(pool) {}

  // The state before any byte: every way to start `rule` with the given parent frame.
  void Start(uint32_t rule, int32_t parent, Frontier* out);
  // out = the states after consuming `byte` from `in` (out != &in).
  void Advance(const Frontier& in, uint8_t byte, Frontier* out);
  // Advances over all bytes; false as soon as the state dies or is exhausted.
  bool AdvanceBytes(Frontier* state, const uint8_t* bytes, size_t n);

  // Expand visits since construction (callers bound whole walks with it).
  uint64_t work() const { return total_work_; }

 private:
  void Expand(uint32_t pos, int32_t parent, int depth, Frontier* out);
  void Begin(Frontier* out);
  void Finish(Frontier* out);

  const Grammar& g_;
  NodePool* pool_;
  KeySet seen_;  // (pos, parent) already expanded in this step
  size_t step_work_ = 0;
  bool step_exhausted_ = false;
  uint64_t total_work_ = 0;
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
