#include "kv/block_pool.h"

#include "base/check.h"

namespace kiln::kv {

BlockPool::BlockPool(int32_t n_blocks, int32_t block_tokens)
    : block_tokens_(block_tokens), watched_(n_blocks, 0), refs_(n_blocks, 0) {
  KILN_CHECK(n_blocks >= 0 && block_tokens > 0) << n_blocks << " x " << block_tokens;
  free_ids_.reserve(n_blocks);
  for (int32_t i = n_blocks - 1; i >= 0; --i) free_ids_.push_back(i);  // block 0 first
}

int32_t BlockPool::Allocate() {
  if (free_ids_.empty()) return -1;
  const int32_t id = free_ids_.back();
  free_ids_.pop_back();
  KILN_CHECK(refs_[id] == 0) << "free block " << id << " has refs " << refs_[id];
  refs_[id] = 1;
  return id;
}

void BlockPool::Ref(int32_t id) {
  KILN_CHECK(id >= 0 && id < NumBlocks() && refs_[id] > 0) << "ref of free block " << id;
  ++refs_[id];
  if (watched_[id] && observer_ != nullptr) observer_->OnRefCountChanged(id, refs_[id]);
}

void BlockPool::Unref(int32_t id) {
  KILN_CHECK(id >= 0 && id < NumBlocks() && refs_[id] > 0) << "unref of free block " << id;
  if (--refs_[id] == 0) {
    KILN_CHECK(!watched_[id]) << "watched block " << id << " freed";
    free_ids_.push_back(id);
  } else if (watched_[id] && observer_ != nullptr) {
    observer_->OnRefCountChanged(id, refs_[id]);
  }
}

void BlockPool::Watch(int32_t id, bool on) {
  KILN_CHECK(id >= 0 && id < NumBlocks() && refs_[id] > 0) << "watch of free block " << id;
  watched_[id] = on ? 1 : 0;
}

int32_t BlockPool::RefCount(int32_t id) const {
  KILN_CHECK(id >= 0 && id < NumBlocks()) << "block " << id;
  return refs_[id];
}

BlockTable BlockTable::Fork(BlockPool& pool) const {
  for (int32_t id : blocks_) pool.Ref(id);
  BlockTable t;
  t.blocks_ = blocks_;
  t.n_tokens_ = n_tokens_;
  return t;
}

void BlockTable::Release(BlockPool& pool) {
  for (int32_t id : blocks_) pool.Unref(id);
  blocks_.clear();
  n_tokens_ = 0;
}

void BlockTable::Truncate(int32_t n_blocks, int32_t n_tokens, BlockPool& pool) {
  KILN_CHECK(n_blocks >= 0 && n_blocks <= NumBlocks() &&
             n_tokens <= n_blocks * pool.block_tokens())
      << "truncate to " << n_blocks << " blocks, " << n_tokens << " tokens";
  while (NumBlocks() > n_blocks) {
    pool.Unref(blocks_.back());
    blocks_.pop_back();
  }
  n_tokens_ = n_tokens;
}

}  // namespace kiln::kv
