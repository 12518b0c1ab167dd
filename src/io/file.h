// File: a read-only memory map of a whole file. Model weights are mmapped, never copied; tensor
// views point into the map and stay valid while the File lives. Move-only (one owner).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/status.h"

namespace kiln::io {

class File {
 public:
  // NotFound if the path does not exist, InvalidArgument if it is not a regular file.
  // An empty file opens with data() == nullptr and size() == 0.
  static StatusOr<File> Open(const std::string& path);

  // A File over memory the caller owns and keeps alive (fuzzers, tests): nothing is unmapped.
  static File Borrow(const uint8_t* data, size_t size, std::string name);

  File() = default;
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops this process's pages of [p, p + n) (whole pages inside it) when they belong to a map
  // this File owns: a later read faults them in again from the file, so the bytes never change;
  // the resident size shrinks (weights copied into another layout). Ignored otherwise.
  void ReleasePages(const uint8_t* p, size_t n) const;

 private:
  void Reset();

  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool owned_ = true;  // data_ is our mmap
};

}  // namespace kiln::io
