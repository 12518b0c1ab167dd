#include "base/aligned.h"

#include <cstring>

#include "base/check.h"

namespace kiln {

void* AlignedAlloc(size_t n_bytes, size_t alignment) {
  if (n_bytes == 0) n_bytes = alignment;
  size_t rounded = (n_bytes + alignment - 1) / alignment * alignment;
  return std::aligned_alloc(alignment, rounded);
}

void AlignedFree(void* p) { std::free(p); }

AlignedBuffer::AlignedBuffer(size_t n_bytes, size_t alignment)
    : data_(AlignedAlloc(n_bytes, alignment)), size_(n_bytes) {
  KILN_CHECK(data_ != nullptr) << "out of memory allocating " << n_bytes << " bytes";
  std::memset(data_, 0, n_bytes);
}

}  // namespace kiln
