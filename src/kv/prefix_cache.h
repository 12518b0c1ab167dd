// PrefixCache: a radix tree over full KV blocks. Each node is one block of block_tokens
// tokens whose K/V were computed after exactly the tokens on the path from the root, so a new
// sequence whose prompt starts with that path can reuse the blocks instead of recomputing
// them. The cache holds one reference on each node's block; a block only the cache references
// is "evictable" and is freed least-recently-used first when the pool runs short.
//
// Cost: the cache watches its blocks' reference counts (BlockRefObserver), so it always knows
// which nodes are evictable: NumEvictable is O(1) and Evict is O(log n) per block (an ordered
// set of evictable leaves by last use); nothing scans the tree. A node is evictable when no
// sequence references its block and none of its descendants is referenced; each node counts
// its "blockers" (its own reference plus blocked children) and a change walks up only while
// an ancestor's state flips.
//
// Identity: a block is keyed by its tokens AND the numerics class of each (a small integer per
// token, 0 by default). Where the model computes a token's K/V differently depending on the
// row's role (llama.cpp's numerics: a prompt row in a batch of rows vs a generated token
// alone, backend::RowOrder), the class records it, so a block is only reused by a sequence
// that would compute the very same bits cold. Models whose numbers do not depend on the role
// use class 0 everywhere and share blocks whatever the role.
// Engine-thread only; not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "kv/block_pool.h"

namespace kiln::kv {

class PrefixCache final : private BlockRefObserver {
 public:
  explicit PrefixCache(BlockPool* pool);
  ~PrefixCache();  // drops its references
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  // Longest cached prefix of tokens[0, max_tokens) in whole blocks: appends the blocks to
  // *blocks (each with a new reference for the caller) and returns the tokens they cover.
  // numerics[i] is token i's numerics class (empty: all 0; else at least as long as tokens).
  int32_t Match(const std::vector<int32_t>& tokens, const std::vector<uint8_t>& numerics,
                int32_t max_tokens, std::vector<int32_t>* blocks);
  int32_t Match(const std::vector<int32_t>& tokens, int32_t max_tokens,
                std::vector<int32_t>* blocks) {
    return Match(tokens, {}, max_tokens, blocks);
  }
  // Records the first n_full_blocks blocks of a sequence (tokens[i*bt, (i+1)*bt) in blocks[i]).
  // A block already cached for the same path is kept (the new one is not referenced).
  void Insert(const std::vector<int32_t>& tokens, const std::vector<uint8_t>& numerics,
              const std::vector<int32_t>& blocks, int32_t n_full_blocks);
  void Insert(const std::vector<int32_t>& tokens, const std::vector<int32_t>& blocks,
              int32_t n_full_blocks) {
    Insert(tokens, {}, blocks, n_full_blocks);
  }
  // Frees up to n_blocks evictable blocks, least recently used leaves first (ties: the
  // older node); returns how many.
  int32_t Evict(int32_t n_blocks);
  // Blocks that Evict could free now (referenced by the cache only, subtree included).
  int32_t NumEvictable() const { return n_evictable_; }
  int32_t NumCached() const { return static_cast<int32_t>(nodes_.size()) - 1 - n_dead_; }
  // Drops every unreferenced node (tests: accounting returns to all-free).
  void Clear();
  // Recomputes the evictable state of every node from scratch and checks it against the
  // incremental bookkeeping (tests; O(n)).
  bool CheckInvariants() const;

 private:
  // A block's key: token << 8 | numerics class, per token.
  using Key = std::vector<int64_t>;
  static void MakeKey(const std::vector<int32_t>& tokens, const std::vector<uint8_t>& numerics,
                      int32_t begin, int32_t n, Key* key);
  struct Node {
    int32_t parent = -1;
    int32_t block = -1;
    uint64_t last_used = 0;
    bool dead = false;
    bool pinned = false;   // someone besides the cache references the block
    bool in_lru = false;   // in lru_: an evictable leaf
    int32_t blockers = 0;  // pinned + children with blockers > 0
    Key key;                          // this block's tokens and classes
    std::map<Key, int32_t> children;  // key → node index
  };
  void OnRefCountChanged(int32_t block, int32_t refs) override;
  void AdjustBlockers(int32_t idx, int32_t delta);
  void UpdateLru(int32_t idx);
  void Touch(int32_t idx);
  void RemoveLeaf(int32_t idx);

  BlockPool* pool_;
  std::vector<Node> nodes_;  // [0] is the root (no block)
  std::vector<int32_t> free_nodes_;
  std::vector<int32_t> node_of_block_;  // block id → node index, -1 if not cached
  std::set<std::pair<uint64_t, int32_t>> lru_;  // (last_used, node) of evictable leaves
  int32_t n_dead_ = 0;
  int32_t n_evictable_ = 0;
  uint64_t tick_ = 0;
};

}  // namespace kiln::kv
