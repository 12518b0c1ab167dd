#include "kv/prefix_cache.h"

#include <gtest/gtest.h>

namespace kiln::kv {
namespace {

std::vector<int32_t> Iota(int n, int start = 0) {
  std::vector<int32_t> v(n);
  for (int i = 0; i < n; ++i) v[i] = start + i;
  return v;
}

// A sequence that computed `tokens` into fresh blocks, then was cached and released.
std::vector<int32_t> Fill(BlockPool& pool, PrefixCache& cache, const std::vector<int32_t>& tokens) {
  std::vector<int32_t> blocks;
  for (int32_t i = 0; i < BlockTable::BlocksFor(tokens.size(), pool.block_tokens()); ++i) {
    blocks.push_back(pool.Allocate());
  }
  cache.Insert(tokens, blocks, static_cast<int32_t>(tokens.size()) / pool.block_tokens());
  return blocks;
}

TEST(PrefixCacheTest, LongestPrefixInWholeBlocks) {
  BlockPool pool(16, 4);
  PrefixCache cache(&pool);
  std::vector<int32_t> a = Iota(10);  // 2 full blocks + 2 tokens
  std::vector<int32_t> blocks = Fill(pool, cache, a);
  for (int32_t b : blocks) pool.Unref(b);  // sequence finished
  EXPECT_EQ(pool.NumUsed(), 2);           // the cache keeps the 2 full blocks
  EXPECT_EQ(cache.NumCached(), 2);

  std::vector<int32_t> got;
  std::vector<int32_t> b = Iota(6);  // 0..5: shares block 0 only
  b.push_back(99);
  EXPECT_EQ(cache.Match(b, static_cast<int32_t>(b.size()) - 1, &got), 4);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], blocks[0]);
  EXPECT_EQ(pool.RefCount(blocks[0]), 2);
  pool.Unref(got[0]);

  got.clear();
  EXPECT_EQ(cache.Match(a, 8, &got), 8);  // limited by max_tokens
  EXPECT_EQ(got, (std::vector<int32_t>{blocks[0], blocks[1]}));
  for (int32_t id : got) pool.Unref(id);
  got.clear();
  EXPECT_EQ(cache.Match(a, 7, &got), 4);
  for (int32_t id : got) pool.Unref(id);

  got.clear();
  std::vector<int32_t> c = Iota(8, 1);  // different first token: no hit
  EXPECT_EQ(cache.Match(c, 8, &got), 0);
  EXPECT_TRUE(got.empty());
}

TEST(PrefixCacheTest, EvictsLeastRecentlyUsedUnreferencedLeavesFirst) {
  BlockPool pool(8, 2);
  PrefixCache cache(&pool);
  std::vector<int32_t> x = {1, 2, 3, 4}, y = {1, 2, 5, 6};
  for (int32_t b : Fill(pool, cache, x)) pool.Unref(b);
  std::vector<int32_t> yb = Fill(pool, cache, y);  // shares node {1,2}; its own block 0 unused
  pool.Unref(yb[0]);
  // y's second block is still referenced by a running sequence: not evictable.
  EXPECT_EQ(cache.NumCached(), 3);
  EXPECT_EQ(cache.NumEvictable(), 1);  // only {3,4}; {1,2} has a referenced child
  EXPECT_EQ(cache.Evict(5), 1);
  pool.Unref(yb[1]);
  EXPECT_EQ(cache.NumEvictable(), 2);
  // Touch y again so that... only y's chain remains: leaf first, then its parent.
  EXPECT_EQ(cache.Evict(1), 1);
  EXPECT_EQ(cache.NumCached(), 1);
  cache.Clear();
  EXPECT_EQ(pool.NumFree(), 8);
}

TEST(PrefixCacheTest, LruOrderAcrossBranches) {
  BlockPool pool(8, 2);
  PrefixCache cache(&pool);
  std::vector<int32_t> x = {1, 2}, y = {3, 4};
  std::vector<int32_t> xb = Fill(pool, cache, x), yb = Fill(pool, cache, y);
  pool.Unref(xb[0]);
  pool.Unref(yb[0]);
  std::vector<int32_t> got;
  std::vector<int32_t> q = {1, 2, 7};
  ASSERT_EQ(cache.Match(q, 2, &got), 2);  // x used more recently than y
  pool.Unref(got[0]);
  EXPECT_EQ(cache.Evict(1), 1);
  got.clear();
  EXPECT_EQ(cache.Match(q, 2, &got), 2);  // x survived, y was evicted
  pool.Unref(got[0]);
  got.clear();
  std::vector<int32_t> r = {3, 4, 7};
  EXPECT_EQ(cache.Match(r, 2, &got), 0);
}

}  // namespace
}  // namespace kiln::kv
