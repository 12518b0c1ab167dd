#include "kv/prefix_cache.h"

#include <gtest/gtest.h>

#include <random>

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

// Random sequences over a small alphabet (many shared prefixes) match, insert, fork, release
// and evict; after every operation the incremental evictable bookkeeping equals a from-scratch
// recomputation, and at the end everything returns to the free list.
TEST(PrefixCacheTest, IncrementalEvictableStateMatchesRecomputation) {
  constexpr int32_t kBlocks = 64, kBt = 2;
  BlockPool pool(kBlocks, kBt);
  std::mt19937 gen(7);
  std::vector<std::vector<int32_t>> held;  // blocks each live "sequence" references
  {
    PrefixCache cache(&pool);
    for (int op = 0; op < 3000; ++op) {
      const int kind = gen() % 4;
      if (kind <= 1) {  // a new sequence: match, then compute and cache the rest
        std::vector<int32_t> tokens(2 + gen() % 10);
        for (int32_t& t : tokens) t = gen() % 3;
        std::vector<int32_t> blocks;
        const int32_t matched =
            cache.Match(tokens, static_cast<int32_t>(tokens.size()), &blocks);
        bool ok = true;
        while (static_cast<int32_t>(blocks.size()) <
               BlockTable::BlocksFor(static_cast<int32_t>(tokens.size()), kBt)) {
          int32_t id = pool.Allocate();
          if (id < 0 && cache.Evict(1) == 1) id = pool.Allocate();
          if (id < 0) {
            ok = false;
            break;
          }
          blocks.push_back(id);
        }
        if (ok) {
          cache.Insert(tokens, blocks, static_cast<int32_t>(tokens.size()) / kBt);
          EXPECT_GE(matched, 0);
          held.push_back(blocks);
        } else {
          for (int32_t id : blocks) pool.Unref(id);
        }
      } else if (kind == 2 && !held.empty()) {  // a sequence finishes
        const size_t i = gen() % held.size();
        for (int32_t id : held[i]) pool.Unref(id);
        held.erase(held.begin() + i);
      } else if (kind == 3 && !held.empty()) {  // fork (n > 1) or eviction pressure
        if (gen() % 2) {
          held.push_back(held[gen() % held.size()]);
          for (int32_t id : held.back()) pool.Ref(id);
        } else {
          const int32_t before = pool.NumFree(), can = cache.NumEvictable();
          const int32_t freed = cache.Evict(1 + gen() % 3);
          EXPECT_EQ(pool.NumFree(), before + freed);
          EXPECT_LE(freed, can);
        }
      }
      ASSERT_TRUE(cache.CheckInvariants()) << "after op " << op;
    }
    for (auto& blocks : held) {
      for (int32_t id : blocks) pool.Unref(id);
    }
    ASSERT_TRUE(cache.CheckInvariants());
    EXPECT_EQ(cache.NumEvictable(), cache.NumCached());
    const int32_t n_cached = cache.NumCached();
    EXPECT_GT(n_cached, 0);
    EXPECT_EQ(cache.Evict(kBlocks), n_cached);
    EXPECT_EQ(cache.NumCached(), 0);
  }
  EXPECT_EQ(pool.NumFree(), kBlocks);
}

// Eviction takes the least recently used evictable leaf, and a parent only after its
// children: a chain is freed tail first.
TEST(PrefixCacheTest, ChainEvictsTailFirstAndLruAcrossChains) {
  BlockPool pool(16, 2);
  PrefixCache cache(&pool);
  std::vector<int32_t> a = {1, 1, 2, 2, 3, 3}, b = {4, 4, 5, 5};
  std::vector<int32_t> ab = Fill(pool, cache, a), bb = Fill(pool, cache, b);
  for (int32_t id : ab) pool.Unref(id);
  for (int32_t id : bb) pool.Unref(id);
  EXPECT_EQ(cache.NumEvictable(), 5);
  std::vector<int32_t> got;
  ASSERT_EQ(cache.Match(a, 6, &got), 6);  // a is now the most recent
  for (int32_t id : got) pool.Unref(id);
  EXPECT_EQ(cache.Evict(1), 1);  // b's tail {5,5}
  EXPECT_EQ(pool.RefCount(bb[1]), 0);
  EXPECT_EQ(cache.Evict(1), 1);  // then b's head {4,4}, now a leaf
  EXPECT_EQ(pool.RefCount(bb[0]), 0);
  EXPECT_EQ(cache.Evict(1), 1);  // then a, tail first
  EXPECT_EQ(pool.RefCount(ab[2]), 0);
  EXPECT_EQ(pool.RefCount(ab[1]), 1);
  EXPECT_TRUE(cache.CheckInvariants());
}

// A block's identity is its tokens and each token's numerics class: a sequence whose tokens
// would be computed with other numerics (a prompt continuing an earlier request's generated
// tokens, under llama.cpp's row orders) reuses only the blocks whose classes all agree.
TEST(PrefixCacheTest, NumericsClassIsPartOfTheBlockIdentity) {
  BlockPool pool(16, 4);
  PrefixCache cache(&pool);
  // An earlier request: prompt 0..5 (class 0), generated 6..9 (class 1).
  const std::vector<int32_t> tokens = Iota(10);
  const std::vector<uint8_t> ran = {0, 0, 0, 0, 0, 0, 1, 1, 1, 1};
  std::vector<int32_t> blocks = {pool.Allocate(), pool.Allocate(), pool.Allocate()};
  cache.Insert(tokens, ran, blocks, 2);
  for (int32_t id : blocks) pool.Unref(id);
  EXPECT_EQ(cache.NumCached(), 2);

  // A follow-up whose prompt holds the same tokens, all of class 0: only the first block
  // (classes 0 0 0 0) is its own; the second was computed with class 1 rows.
  std::vector<int32_t> got;
  const std::vector<uint8_t> prompt_only(10, 0);
  EXPECT_EQ(cache.Match(tokens, prompt_only, 9, &got), 4);
  EXPECT_EQ(got, (std::vector<int32_t>{blocks[0]}));
  for (int32_t id : got) pool.Unref(id);
  // No classes means class 0 everywhere: the same answer.
  got.clear();
  EXPECT_EQ(cache.Match(tokens, 9, &got), 4);
  for (int32_t id : got) pool.Unref(id);
  // The same request recomputed (preemption): both blocks.
  got.clear();
  EXPECT_EQ(cache.Match(tokens, ran, 9, &got), 8);
  EXPECT_EQ(got, (std::vector<int32_t>{blocks[0], blocks[1]}));
  for (int32_t id : got) pool.Unref(id);
  // A class differing in one token of a block is a miss from that block on.
  std::vector<uint8_t> one_off = ran;
  one_off[1] = 1;
  got.clear();
  EXPECT_EQ(cache.Match(tokens, one_off, 9, &got), 0);

  // The follow-up computes its own second block; both versions stay cached side by side.
  const int32_t own = pool.Allocate();
  cache.Insert(tokens, prompt_only, {blocks[0], own}, 2);
  pool.Unref(own);
  EXPECT_EQ(cache.NumCached(), 3);
  got.clear();
  EXPECT_EQ(cache.Match(tokens, prompt_only, 9, &got), 8);
  EXPECT_EQ(got, (std::vector<int32_t>{blocks[0], own}));
  for (int32_t id : got) pool.Unref(id);
  got.clear();
  EXPECT_EQ(cache.Match(tokens, ran, 9, &got), 8);
  EXPECT_EQ(got, (std::vector<int32_t>{blocks[0], blocks[1]}));
  for (int32_t id : got) pool.Unref(id);
  EXPECT_TRUE(cache.CheckInvariants());
  cache.Clear();
  EXPECT_EQ(pool.NumFree(), 16);
}

}  // namespace
}  // namespace kiln::kv
