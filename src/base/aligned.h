// Aligned heap buffers (64-byte default, for SIMD and cache lines). AlignedBuffer owns;
// it is move-only.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <utility>

namespace kiln {

constexpr size_t kDefaultAlignment = 64;

void* AlignedAlloc(size_t n_bytes, size_t alignment = kDefaultAlignment);  // nullptr on failure
void AlignedFree(void* p);
// For large buffers read every step (packed weights, the KV cache, the bandwidth probe): from
// kLargeAllocBytes up, aligned to 2 MiB and marked for transparent huge pages (madvise
// MADV_HUGEPAGE on Linux, a hint the kernel may ignore), so streaming and strided reads take
// few TLB misses. Freed with AlignedFree. AlignedBuffers of that size use it too.
constexpr size_t kLargeAllocBytes = size_t{2} << 20;
void* LargeAlloc(size_t n_bytes);

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t n_bytes, size_t alignment = kDefaultAlignment);
  ~AlignedBuffer() { AlignedFree(data_); }
  AlignedBuffer(AlignedBuffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      AlignedFree(data_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  void* data() { return data_; }
  const void* data() const { return data_; }
  template <typename T> T* as() { return static_cast<T*>(data_); }
  template <typename T> const T* as() const { return static_cast<const T*>(data_); }
  size_t size() const { return size_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace kiln
