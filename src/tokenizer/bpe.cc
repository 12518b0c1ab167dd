#include "tokenizer/bpe.h"

#include <algorithm>

namespace kiln::tokenizer {

void MergeTable::Reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  if (cap <= slots_.size()) return;
  std::vector<Slot> old;
  old.swap(slots_);
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  size_ = 0;
  for (const Slot& s : old) {
    if (s.key != kEmpty) {
      Insert(static_cast<int32_t>(s.key >> 32), static_cast<int32_t>(s.key & 0xffffffffu),
             s.merge.rank, s.merge.merged);
    }
  }
}

void MergeTable::Insert(int32_t left, int32_t right, int32_t rank, int32_t merged) {
  if ((size_ + 1) * 2 > slots_.size()) Reserve(size_ + 1 > 8 ? (size_ + 1) * 2 : 16);
  uint64_t key = Key(left, right);
  for (size_t i = Hash(key) & mask_;; i = (i + 1) & mask_) {
    Slot& s = slots_[i];
    if (s.key == key) return;
    if (s.key == kEmpty) {
      s.key = key;
      s.merge = {rank, merged};
      ++size_;
      return;
    }
  }
}

void PieceIndex::Build(const std::vector<std::string>& pieces, const std::vector<uint8_t>& skip) {
  size_t cap = 16;
  while (cap < pieces.size() * 2) cap <<= 1;
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  for (size_t id = 0; id < pieces.size(); ++id) {
    if (!skip.empty() && skip[id]) continue;
    uint64_t h = HashText(pieces[id]);
    uint32_t tag = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.id < 0) {
        s = {tag, static_cast<int32_t>(id)};
        break;
      }
      if (s.tag == tag && pieces[s.id] == pieces[id]) break;  // duplicate text: keep the first
    }
  }
}

namespace bpe_internal {
namespace {

// Max-heap comparator: "a below b" when a merges later.
bool Later(const BpeScratch::Candidate& a, const BpeScratch::Candidate& b) {
  return a.priority > b.priority || (a.priority == b.priority && a.left > b.left);
}

}  // namespace

void Link(BpeScratch* s) {
  const int32_t n = static_cast<int32_t>(s->syms.size());
  for (int32_t i = 0; i < n; ++i) {
    s->syms[i].prev = i - 1;
    s->syms[i].next = i + 1 < n ? i + 1 : -1;
  }
  s->heap.clear();
}

void Push(BpeScratch* s, const BpeScratch::Candidate& c) {
  s->heap.push_back(c);
  std::push_heap(s->heap.begin(), s->heap.end(), Later);
}

bool Pop(BpeScratch* s, BpeScratch::Candidate* c) {
  if (s->heap.empty()) return false;
  std::pop_heap(s->heap.begin(), s->heap.end(), Later);
  *c = s->heap.back();
  s->heap.pop_back();
  return true;
}

bool Apply(BpeScratch* s, const BpeScratch::Candidate& c) {
  BpeSymbol& a = s->syms[c.left];
  BpeSymbol& b = s->syms[c.right];
  if (a.len == 0 || b.len == 0 || a.next != c.right || a.len + b.len != c.len) return false;
  a.len += b.len;
  a.id = c.merged;
  b.len = 0;
  a.next = b.next;
  if (b.next >= 0) s->syms[b.next].prev = c.left;
  return true;
}

}  // namespace bpe_internal

void MergeByRank(const MergeTable& merges, BpeScratch* s) {
  using namespace bpe_internal;
  Link(s);
  auto try_pair = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const BpeSymbol& a = s->syms[l];
    const BpeSymbol& b = s->syms[r];
    if (a.id < 0 || b.id < 0) return;
    const MergeTable::Merge* m = merges.Find(a.id, b.id);
    if (m != nullptr) Push(s, {static_cast<float>(m->rank), l, r, a.len + b.len, m->merged});
  };
  const int32_t n = static_cast<int32_t>(s->syms.size());
  for (int32_t i = 1; i < n; ++i) try_pair(i - 1, i);
  BpeScratch::Candidate c;
  while (Pop(s, &c)) {
    if (!Apply(s, c)) continue;
    const BpeSymbol& m = s->syms[c.left];
    try_pair(m.prev, c.left);
    try_pair(c.left, m.next);
  }
}

}  // namespace kiln::tokenizer
