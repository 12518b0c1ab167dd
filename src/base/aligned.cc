#include "base/aligned.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <cstring>

#include "base/check.h"

namespace kiln {

void* AlignedAlloc(size_t n_bytes, size_t alignment) {
  if (n_bytes == 0) n_bytes = alignment;
  size_t rounded = (n_bytes + alignment - 1) / alignment * alignment;
  return std::aligned_alloc(alignment, rounded);
}

void AlignedFree(void* p) { std::free(p); }

void* LargeAlloc(size_t n_bytes) {
  constexpr size_t kHugePage = kLargeAllocBytes;
  if (n_bytes < kHugePage) return AlignedAlloc(n_bytes);
  void* p = AlignedAlloc(n_bytes, kHugePage);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (p != nullptr) {
    madvise(p, (n_bytes + kHugePage - 1) / kHugePage * kHugePage, MADV_HUGEPAGE);  // a hint
  }
#endif
  return p;
}

AlignedBuffer::AlignedBuffer(size_t n_bytes, size_t alignment)
    : data_(n_bytes >= kLargeAllocBytes && alignment <= kLargeAllocBytes ? LargeAlloc(n_bytes)
                                                                          : AlignedAlloc(n_bytes, alignment)),
      size_(n_bytes) {
  KILN_CHECK(data_ != nullptr) << "out of memory allocating " << n_bytes << " bytes";
  std::memset(data_, 0, n_bytes);
}

}  // namespace kiln
