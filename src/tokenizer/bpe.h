// The BPE merge loop shared by byte-level BPE (merge ranks) and SentencePiece BPE (merge ranks
// from tokenizer.json, or piece scores from GGUF). Symbols form a linked list over the word;
// candidate pairs sit in a binary heap ordered by (priority, position), so a word of n
// characters costs O(n log n). Stale heap entries are detected by the symbol lengths.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::tokenizer {

// Open-addressing hash map (left id, right id) -> (rank, merged id). Immutable after building.
class MergeTable {
 public:
  struct Merge {
    int32_t rank;
    int32_t merged;
  };
  void Reserve(size_t n);
  // Keeps the first (lowest-rank) entry for a pair that appears twice.
  void Insert(int32_t left, int32_t right, int32_t rank, int32_t merged);
  const Merge* Find(int32_t left, int32_t right) const {
    if (slots_.empty()) return nullptr;
    uint64_t key = Key(left, right);
    for (size_t i = Hash(key) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.merge;
      if (s.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  struct Slot {
    uint64_t key = kEmpty;
    Merge merge{};
  };
  static uint64_t Key(int32_t l, int32_t r) {
    return (uint64_t{static_cast<uint32_t>(l)} << 32) | static_cast<uint32_t>(r);
  }
  static size_t Hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }
  void Grow();
  std::vector<Slot> slots_;
  size_t mask_ = 0, size_ = 0;
};

// Flat open-addressing index: piece text -> id. A slot holds a 32-bit hash tag and the id;
// the text is compared only when the tag matches, so a lookup touches one cache line of slots
// plus the piece itself. Immutable after Build.
class PieceIndex {
 public:
  // Indexes pieces[i] for every i with !skip[i] (skip may be empty); the first id wins for a
  // text that appears twice.
  void Build(const std::vector<std::string>& pieces, const std::vector<uint8_t>& skip);
  int32_t Find(const std::vector<std::string>& pieces, std::string_view text) const {
    if (slots_.empty()) return -1;
    uint64_t h = HashText(text);
    uint32_t tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.id < 0) return -1;
      if (s.tag == tag && pieces[s.id] == text) return s.id;
    }
  }
  static uint64_t HashText(std::string_view text) {
    uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a, then a final mix for the low bits
    for (char c : text) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ULL;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 32);
  }

 private:
  struct Slot {
    uint32_t tag = 0;
    int32_t id = -1;
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

struct BpeSymbol {
  int32_t id;      // token id of this symbol's text, or -1 if it is not a token
  uint32_t begin;  // byte range in the word's text
  uint32_t len;    // 0 once merged into its left neighbour
  int32_t prev, next;
};

// Reused across words to avoid allocations.
struct BpeScratch {
  struct Candidate {
    float priority;  // lower merges first
    int32_t left, right;
    uint32_t len;  // left.len + right.len when queued
    int32_t merged;
  };
  std::vector<BpeSymbol> syms;
  std::vector<Candidate> heap;
};

// Links scratch->syms (filled by the caller, in order) and merges by rank.
void MergeByRank(const MergeTable& merges, BpeScratch* scratch);

// SentencePiece scores: a pair merges if its concatenated text is a token that `lookup`
// accepts; higher score first. `lookup(text, &score)` returns the id or -1.
template <typename Lookup>
void MergeByScore(std::string_view text, const Lookup& lookup, BpeScratch* scratch);

// ── implementation ──
namespace bpe_internal {
void Link(BpeScratch* s);
void Push(BpeScratch* s, const BpeScratch::Candidate& c);
bool Pop(BpeScratch* s, BpeScratch::Candidate* c);
// Merges c.right into c.left if the candidate is still current; returns false if stale.
bool Apply(BpeScratch* s, const BpeScratch::Candidate& c);
}  // namespace bpe_internal

template <typename Lookup>
void MergeByScore(std::string_view text, const Lookup& lookup, BpeScratch* s) {
  using namespace bpe_internal;
  Link(s);
  auto try_pair = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const BpeSymbol& a = s->syms[l];
    const BpeSymbol& b = s->syms[r];
    float score;
    int32_t id = lookup(text.substr(a.begin, a.len + b.len), &score);
    if (id >= 0) Push(s, {-score, l, r, a.len + b.len, id});
  };
  for (size_t i = 1; i < s->syms.size(); ++i) try_pair(static_cast<int32_t>(i - 1), i);
  BpeScratch::Candidate c;
  while (Pop(s, &c)) {
    if (!Apply(s, c)) continue;
    const BpeSymbol& m = s->syms[c.left];
    try_pair(m.prev, c.left);
    try_pair(c.left, m.next);
  }
}

}  // namespace kiln::tokenizer
