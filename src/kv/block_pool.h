// Paged KV bookkeeping: a pool of fixed-size blocks (free list + reference counts) and the
// per-sequence BlockTable mapping positions to blocks. The K/V bytes live in a KvCache whose
// "positions" are the pool's slots (block * block_tokens + offset); attention reads them
// through KvView::block_ids. Engine-thread only; not thread-safe.
#pragma once

#include <cstdint>
#include <vector>

namespace kiln::kv {

constexpr int32_t kDefaultBlockTokens = 16;

// Told after every reference-count change of a watched block (the prefix cache watches the
// blocks it holds, to know in O(1) which become evictable).
class BlockRefObserver {
 public:
  virtual void OnRefCountChanged(int32_t id, int32_t refs) = 0;

 protected:
  ~BlockRefObserver() = default;
};

class BlockPool {
 public:
  BlockPool(int32_t n_blocks, int32_t block_tokens);

  int32_t NumBlocks() const { return static_cast<int32_t>(refs_.size()); }
  int32_t NumFree() const { return static_cast<int32_t>(free_ids_.size()); }
  int32_t NumUsed() const { return NumBlocks() - NumFree(); }
  int32_t block_tokens() const { return block_tokens_; }

  // A free block with refcount 1, or -1 if none is free.
  int32_t Allocate();
  void Ref(int32_t id);
  // Drops one reference; the block returns to the free list at zero.
  void Unref(int32_t id);
  int32_t RefCount(int32_t id) const;

  // One observer at most (nullptr to remove); Watch marks a referenced block as observed.
  void SetObserver(BlockRefObserver* observer) { observer_ = observer; }
  void Watch(int32_t id, bool on);

 private:
  int32_t block_tokens_;
  BlockRefObserver* observer_ = nullptr;
  std::vector<uint8_t> watched_;
  std::vector<int32_t> refs_;
  std::vector<int32_t> free_ids_;  // LIFO: recently freed blocks are reused first (warm cache)
};

// The blocks of one sequence, in position order, and how many positions they hold.
// Owns one reference on each of its blocks (released by Release()).
class BlockTable {
 public:
  const std::vector<int32_t>& blocks() const { return blocks_; }
  int32_t n_tokens() const { return n_tokens_; }
  int32_t NumBlocks() const { return static_cast<int32_t>(blocks_.size()); }
  // Blocks needed to hold n_tokens positions in total.
  static int32_t BlocksFor(int32_t n_tokens, int32_t block_tokens) {
    return (n_tokens + block_tokens - 1) / block_tokens;
  }

  // Appends an already referenced block (prefix-cache hit or a fresh allocation).
  void AppendBlock(int32_t id) { blocks_.push_back(id); }
  void SetNumTokens(int32_t n) { n_tokens_ = n; }
  void ReplaceBlock(int32_t idx, int32_t id) { blocks_[idx] = id; }

  // A second table sharing every block (each gets one more reference): n > 1 choices.
  BlockTable Fork(BlockPool& pool) const;
  // Unrefs every block and empties the table.
  void Release(BlockPool& pool);
  // Keeps the first n_blocks blocks and n_tokens positions (n_tokens fits in them), unrefs the
  // rest: a rejected speculative draft's positions go back block-exactly.
  void Truncate(int32_t n_blocks, int32_t n_tokens, BlockPool& pool);

 private:
  std::vector<int32_t> blocks_;
  int32_t n_tokens_ = 0;
};

}  // namespace kiln::kv
