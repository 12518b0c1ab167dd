#include "kv/prefix_cache.h"

#include <algorithm>

#include "base/check.h"

namespace kiln::kv {

PrefixCache::~PrefixCache() {
  for (const Node& n : nodes_) {
    if (!n.dead && n.block >= 0) pool_->Unref(n.block);
  }
}

int32_t PrefixCache::Match(const std::vector<int32_t>& tokens, int32_t max_tokens,
                           std::vector<int32_t>* blocks) {
  const int32_t bt = pool_->block_tokens();
  const int32_t limit = std::min<int32_t>(max_tokens, static_cast<int32_t>(tokens.size()));
  ++tick_;
  int32_t node = 0, matched = 0;
  std::vector<int32_t> key(bt);
  while (matched + bt <= limit) {
    std::copy_n(tokens.begin() + matched, bt, key.begin());
    auto it = nodes_[node].children.find(key);
    if (it == nodes_[node].children.end()) break;
    node = it->second;
    nodes_[node].last_used = tick_;
    pool_->Ref(nodes_[node].block);
    blocks->push_back(nodes_[node].block);
    matched += bt;
  }
  return matched;
}

void PrefixCache::Insert(const std::vector<int32_t>& tokens, const std::vector<int32_t>& blocks,
                         int32_t n_full_blocks) {
  const int32_t bt = pool_->block_tokens();
  KILN_CHECK(n_full_blocks <= static_cast<int32_t>(blocks.size()) &&
             static_cast<size_t>(n_full_blocks) * bt <= tokens.size())
      << n_full_blocks << " blocks of " << blocks.size() << ", tokens " << tokens.size();
  ++tick_;
  int32_t node = 0;
  for (int32_t i = 0; i < n_full_blocks; ++i) {
    std::vector<int32_t> key(tokens.begin() + i * bt, tokens.begin() + (i + 1) * bt);
    auto it = nodes_[node].children.find(key);
    if (it != nodes_[node].children.end()) {
      node = it->second;
      nodes_[node].last_used = tick_;
      continue;
    }
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
    n.block = blocks[i];
    n.last_used = tick_;
    n.key = key;
    pool_->Ref(n.block);
    nodes_[node].children.emplace(std::move(key), idx);
    node = idx;
  }
}

void PrefixCache::RemoveLeaf(int32_t idx) {
  Node& n = nodes_[idx];
  KILN_CHECK(idx > 0 && !n.dead && n.children.empty()) << "node " << idx;
  nodes_[n.parent].children.erase(n.key);
  pool_->Unref(n.block);
  n = Node{};
  n.dead = true;
  free_nodes_.push_back(idx);
  ++n_dead_;
}

int32_t PrefixCache::Evict(int32_t n_blocks) {
  int32_t freed = 0;
  while (freed < n_blocks) {
    // Least recently used leaf that only the cache references. Evicting a leaf may expose
    // its parent, so search again (the tree is small: one node per cached block).
    int32_t best = -1;
    for (int32_t i = 1; i < static_cast<int32_t>(nodes_.size()); ++i) {
      const Node& n = nodes_[i];
      if (n.dead || !n.children.empty() || pool_->RefCount(n.block) != 1) continue;
      if (best < 0 || n.last_used < nodes_[best].last_used) best = i;
    }
    if (best < 0) break;
    RemoveLeaf(best);
    ++freed;
  }
  return freed;
}

int32_t PrefixCache::NumEvictable() const {
  // A node is evictable once its subtree is: every node in it is referenced by the cache only.
  int32_t count = 0;
  std::vector<int8_t> ok(nodes_.size(), 0);
  std::vector<int32_t> order;  // post-order via explicit stack
  std::vector<std::pair<int32_t, bool>> stack = {{0, false}};
  while (!stack.empty()) {
    auto [idx, expanded] = stack.back();
    stack.pop_back();
    if (expanded) { order.push_back(idx); continue; }
    stack.push_back({idx, true});
    for (const auto& [key, child] : nodes_[idx].children) stack.push_back({child, false});
  }
  for (int32_t idx : order) {
    if (idx == 0) continue;
    const Node& n = nodes_[idx];
    bool all = pool_->RefCount(n.block) == 1;
    for (const auto& [key, child] : n.children) all = all && ok[child];
    ok[idx] = all;
    count += all;
  }
  return count;
}

void PrefixCache::Clear() { Evict(static_cast<int32_t>(nodes_.size())); }

}  // namespace kiln::kv
