#include "kv/block_pool.h"

#include <gtest/gtest.h>

#include <set>

namespace kiln::kv {
namespace {

TEST(BlockPoolTest, AllocatesEveryBlockOnceThenRunsOut) {
  BlockPool pool(4, 16);
  std::set<int32_t> ids;
  for (int i = 0; i < 4; ++i) ids.insert(pool.Allocate());
  EXPECT_EQ(ids, (std::set<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(pool.NumFree(), 0);
  EXPECT_EQ(pool.Allocate(), -1);
  pool.Unref(2);
  EXPECT_EQ(pool.NumFree(), 1);
  EXPECT_EQ(pool.Allocate(), 2);
}

TEST(BlockPoolTest, RefCountsKeepSharedBlocksAlive) {
  BlockPool pool(2, 16);
  const int32_t b = pool.Allocate();
  pool.Ref(b);
  EXPECT_EQ(pool.RefCount(b), 2);
  pool.Unref(b);
  EXPECT_EQ(pool.NumFree(), 1);
  pool.Unref(b);
  EXPECT_EQ(pool.NumFree(), 2);
}

TEST(BlockPoolTest, UnrefOfFreeBlockIsABug) {
  BlockPool pool(1, 16);
  EXPECT_DEATH(pool.Unref(0), "free block");
}

TEST(BlockTableTest, ForkSharesBlocksAndReleaseReturnsThem) {
  BlockPool pool(8, 4);
  BlockTable t;
  for (int i = 0; i < 3; ++i) t.AppendBlock(pool.Allocate());
  t.SetNumTokens(10);
  EXPECT_EQ(BlockTable::BlocksFor(10, 4), 3);
  EXPECT_EQ(BlockTable::BlocksFor(12, 4), 3);
  EXPECT_EQ(BlockTable::BlocksFor(13, 4), 4);
  BlockTable f = t.Fork(pool);
  EXPECT_EQ(f.blocks(), t.blocks());
  EXPECT_EQ(f.n_tokens(), 10);
  for (int32_t b : t.blocks()) EXPECT_EQ(pool.RefCount(b), 2);
  // Copy-on-write of the shared last block: the fork takes a fresh one.
  const int32_t fresh = pool.Allocate();
  pool.Unref(f.blocks()[2]);
  f.ReplaceBlock(2, fresh);
  EXPECT_EQ(pool.RefCount(t.blocks()[2]), 1);
  t.Release(pool);
  EXPECT_EQ(pool.NumFree(), 5);
  f.Release(pool);
  EXPECT_EQ(pool.NumFree(), 8);
}

}  // namespace
}  // namespace kiln::kv
