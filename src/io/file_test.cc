#include "io/file.h"

#include <gtest/gtest.h>

#include <utility>

#include "io/io_test_util.h"

namespace kiln::io {
namespace {

using kiln::io::testing::TempDir;

TEST(FileTest, MapsContentsAndMoves) {
  TempDir dir;
  std::string path = dir.Write("a.bin", "hello");
  auto f = File::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->size(), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->data()), 5), "hello");
  File moved = std::move(f).value();
  EXPECT_EQ(moved.size(), 5u);
  EXPECT_EQ(moved.path(), path);
  File assigned;
  assigned = std::move(moved);
  EXPECT_EQ(assigned.data()[4], 'o');
  EXPECT_EQ(moved.data(), nullptr);  // NOLINT: moved-from state is specified
}

TEST(FileTest, EmptyMissingAndDirectory) {
  TempDir dir;
  auto empty = File::Open(dir.Write("e.bin", ""));
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->size(), 0u);
  EXPECT_EQ(File::Open(dir.path() + "/missing").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(File::Open(dir.path()).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln::io
