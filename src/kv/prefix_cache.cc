#include "kv/prefix_cache.h"

#include <algorithm>

#include "base/check.h"

namespace kiln::kv {

PrefixCache::PrefixCache(BlockPool* pool)
    : pool_(pool), node_of_block_(pool->NumBlocks(), -1) {
  nodes_.push_back(Node{});
  pool_->SetObserver(this);
}

PrefixCache::~PrefixCache() {
  pool_->SetObserver(nullptr);
  for (const Node& n : nodes_) {
    if (n.dead || n.block < 0) continue;
    pool_->Watch(n.block, false);
    pool_->Unref(n.block);
  }
}

void PrefixCache::UpdateLru(int32_t idx) {
  Node& n = nodes_[idx];
  const bool want = idx > 0 && !n.dead && n.children.empty() && n.blockers == 0;
  if (want == n.in_lru) return;
  if (want) {
    lru_.insert({n.last_used, idx});
  } else {
    lru_.erase({n.last_used, idx});
  }
  n.in_lru = want;
}

void PrefixCache::Touch(int32_t idx) {
  Node& n = nodes_[idx];
  if (n.in_lru) {
    lru_.erase({n.last_used, idx});
    lru_.insert({tick_, idx});
  }
  n.last_used = tick_;
}

void PrefixCache::AdjustBlockers(int32_t idx, int32_t delta) {
  while (idx > 0) {
    Node& n = nodes_[idx];
    const bool was = n.blockers > 0;
    n.blockers += delta;
    KILN_CHECK(n.blockers >= 0) << "node " << idx << " blockers " << n.blockers;
    const bool is = n.blockers > 0;
    if (was == is) return;
    n_evictable_ += is ? -1 : 1;
    UpdateLru(idx);
    idx = n.parent;
    delta = is ? 1 : -1;
  }
}

void PrefixCache::OnRefCountChanged(int32_t block, int32_t refs) {
  const int32_t idx = node_of_block_[block];
  if (idx < 0) return;
  Node& n = nodes_[idx];
  const bool pinned = refs > 1;
  if (pinned == n.pinned) return;
  n.pinned = pinned;
  AdjustBlockers(idx, pinned ? 1 : -1);
}

void PrefixCache::MakeKey(const std::vector<int32_t>& tokens, const std::vector<uint8_t>& numerics,
                          int32_t begin, int32_t n, Key* key) {
  key->resize(n);
  for (int32_t i = 0; i < n; ++i) {
    const int64_t cls = numerics.empty() ? 0 : numerics[begin + i];
    (*key)[i] = static_cast<int64_t>(tokens[begin + i]) << 8 | cls;
  }
}

int32_t PrefixCache::Match(const std::vector<int32_t>& tokens, const std::vector<uint8_t>& numerics,
                           int32_t max_tokens, std::vector<int32_t>* blocks) {
  const int32_t bt = pool_->block_tokens();
  const int32_t limit = std::min<int32_t>(max_tokens, static_cast<int32_t>(tokens.size()));
  KILN_CHECK(numerics.empty() || numerics.size() >= tokens.size())
      << numerics.size() << " classes for " << tokens.size() << " tokens";
  ++tick_;
  int32_t node = 0, matched = 0;
  Key key;
  while (matched + bt <= limit) {
    MakeKey(tokens, numerics, matched, bt, &key);
    auto it = nodes_[node].children.find(key);
    if (it == nodes_[node].children.end()) break;
    node = it->second;
    Touch(node);
    pool_->Ref(nodes_[node].block);
    blocks->push_back(nodes_[node].block);
    matched += bt;
  }
  return matched;
}

void PrefixCache::Insert(const std::vector<int32_t>& tokens, const std::vector<uint8_t>& numerics,
                         const std::vector<int32_t>& blocks, int32_t n_full_blocks) {
  const int32_t bt = pool_->block_tokens();
  KILN_CHECK(n_full_blocks <= static_cast<int32_t>(blocks.size()) &&
             static_cast<size_t>(n_full_blocks) * bt <= tokens.size())
      << n_full_blocks << " blocks of " << blocks.size() << ", tokens " << tokens.size();
  KILN_CHECK(numerics.empty() || numerics.size() >= tokens.size())
      << numerics.size() << " classes for " << tokens.size() << " tokens";
  ++tick_;
  int32_t node = 0;
  Key key;
  for (int32_t i = 0; i < n_full_blocks; ++i) {
    MakeKey(tokens, numerics, i * bt, bt, &key);
    auto it = nodes_[node].children.find(key);
    if (it != nodes_[node].children.end()) {
      node = it->second;
      Touch(node);
      continue;
    }
    const int32_t block = blocks[i];
    KILN_CHECK(node_of_block_[block] < 0)
        << "block " << block << " is already cached at node " << node_of_block_[block];
    int32_t idx;
    if (!free_nodes_.empty()) {
      idx = free_nodes_.back();
      free_nodes_.pop_back();
      --n_dead_;
    } else {
      idx = static_cast<int32_t>(nodes_.size());
      nodes_.emplace_back();
    }
    Node& n = nodes_[idx];
    n = Node{};
    n.parent = node;
    n.block = block;
    n.last_used = tick_;
    n.key = key;
    ++n_evictable_;  // no blockers yet; the reference below may pin it
    nodes_[node].children.emplace(std::move(key), idx);
    UpdateLru(node);  // the parent is no longer a leaf
    node_of_block_[block] = idx;
    pool_->Ref(block);
    pool_->Watch(block, true);
    OnRefCountChanged(block, pool_->RefCount(block));
    UpdateLru(idx);
    node = idx;
  }
}

void PrefixCache::RemoveLeaf(int32_t idx) {
  Node& n = nodes_[idx];
  KILN_CHECK(idx > 0 && !n.dead && n.children.empty() && n.blockers == 0) << "node " << idx;
  if (n.in_lru) lru_.erase({n.last_used, idx});
  const int32_t parent = n.parent;
  nodes_[parent].children.erase(n.key);
  node_of_block_[n.block] = -1;
  pool_->Watch(n.block, false);
  pool_->Unref(n.block);
  n = Node{};
  n.dead = true;
  free_nodes_.push_back(idx);
  ++n_dead_;
  --n_evictable_;
  UpdateLru(parent);  // may have become an evictable leaf
}

int32_t PrefixCache::Evict(int32_t n_blocks) {
  int32_t freed = 0;
  while (freed < n_blocks && !lru_.empty()) {
    RemoveLeaf(lru_.begin()->second);
    ++freed;
  }
  return freed;
}

void PrefixCache::Clear() { Evict(static_cast<int32_t>(nodes_.size())); }

bool PrefixCache::CheckInvariants() const {
  // Post-order over the live tree: a node is evictable when it and its subtree are unpinned.
  std::vector<int8_t> ok(nodes_.size(), 0);
  std::vector<std::pair<int32_t, bool>> stack = {{0, false}};
  int32_t evictable = 0, leaves = 0;
  bool good = true;
  while (!stack.empty()) {
    auto [idx, expanded] = stack.back();
    stack.pop_back();
    const Node& n = nodes_[idx];
    if (!expanded) {
      stack.push_back({idx, true});
      for (const auto& [key, child] : n.children) stack.push_back({child, false});
      continue;
    }
    if (idx == 0) continue;
    bool all = pool_->RefCount(n.block) == 1;
    good = good && n.pinned == !all && node_of_block_[n.block] == idx;
    for (const auto& [key, child] : n.children) all = all && ok[child];
    ok[idx] = all;
    evictable += all;
    good = good && (n.blockers == 0) == all;
    const bool leaf = all && n.children.empty();
    leaves += leaf;
    good = good && n.in_lru == leaf;
  }
  return good && evictable == n_evictable_ && leaves == static_cast<int32_t>(lru_.size());
}

}  // namespace kiln::kv
