#include "io/file.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

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

// kB of the mapping that starts at `start` resident in this process (/proc/self/smaps), or -1.
long MappingRssKb(const void* start) {
  std::ifstream smaps("/proc/self/smaps");
  char prefix[32];
  std::snprintf(prefix, sizeof(prefix), "%lx-", static_cast<unsigned long>(reinterpret_cast<uintptr_t>(start)));
  std::string line;
  bool in = false;
  while (std::getline(smaps, line)) {
    if (line.rfind(prefix, 0) == 0) in = true;
    if (in && line.rfind("Rss:", 0) == 0) return std::stol(line.substr(4));
  }
  return -1;
}

TEST(FileTest, ReleasePagesDropsResidencyButNeverBytes) {
  TempDir dir;
  std::string bytes(256 * 1024 + 123, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 131 + 7);
  auto f = File::Open(dir.Write("w.bin", bytes));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  unsigned sum = 0;
  for (size_t i = 0; i < f->size(); ++i) sum += f->data()[i];  // fault every page in
  const long before = MappingRssKb(f->data());
  ASSERT_GE(before, 256) << "smaps has no Rss for the mapping";
  f->ReleasePages(f->data() + 100, f->size() - 200);  // whole pages inside the range only
  const long after = MappingRssKb(f->data());
  EXPECT_LE(after, 8) << "before " << before << " kB" << sum;
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f->data()), f->size()), bytes);
  f->ReleasePages(f->data() - 4096, 8192);              // outside the map: ignored
  f->ReleasePages(f->data() + 4096, f->size());         // runs past the end: ignored
  // Borrowed memory is the caller's (here the heap): never released, bytes kept.
  std::vector<uint8_t> heap(bytes.begin(), bytes.end());
  File borrowed = File::Borrow(heap.data(), heap.size(), "heap");
  borrowed.ReleasePages(heap.data(), heap.size());
  EXPECT_EQ(std::string(heap.begin(), heap.end()), bytes);
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
