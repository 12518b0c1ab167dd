// Helpers shared by the reference quantizers (kernels/ref/quant_*.cc), internal to ref/.
// They pin down the exact float → int behaviour of ggml's reference code so our blocks are
// byte-identical to it, including at the edges (NaN, out-of-range values), without relying
// on C++ undefined behaviour.
#pragma once

#include <cstdint>
#include <cstring>

#include "base/check.h"
#include "tensor/fp16.h"

namespace kiln::kernels::ref::internal {

// ggml's nearest_int: round to nearest even through the 1.5 * 2^23 magic constant. Exact for
// |x| <= 2^22; out of that range (and for NaN) it returns what the bit trick gives, as ggml.
inline int NearestInt(float x) {
  const float v = x + 12582912.f;
  const uint32_t bits = FloatBits(v);
  return static_cast<int>(bits & 0x007FFFFFu) - 0x00400000;
}

// C's float → integer conversion as x86 (cvttss2si) performs it: truncation toward zero, and
// INT32_MIN for NaN or out-of-range values. ggml's `(int8_t)f` / `(uint8_t)f` compile to this
// followed by taking the low byte.
inline int32_t TruncToInt32(float x) {
  if (!(x > -2147483904.f && x < 2147483648.f)) return INT32_MIN;
  return static_cast<int32_t>(x);
}
inline int8_t TruncToInt8(float x) { return static_cast<int8_t>(TruncToInt32(x)); }
inline uint8_t TruncToUint8(float x) { return static_cast<uint8_t>(TruncToInt32(x)); }

// Blocks inside a row are packed and may be misaligned: copy them in and out.
template <typename Block>
inline Block LoadBlock(const void* base, int64_t i) {
  Block b;
  std::memcpy(&b, static_cast<const uint8_t*>(base) + i * static_cast<int64_t>(sizeof(Block)),
              sizeof(Block));
  return b;
}

template <typename Block>
inline void StoreBlock(void* base, int64_t i, const Block& b) {
  std::memcpy(static_cast<uint8_t*>(base) + i * static_cast<int64_t>(sizeof(Block)), &b,
              sizeof(Block));
}

// Number of blocks in n elements; n must be a non-negative multiple of the block size.
inline int64_t NumBlocks(int64_t n, int64_t block_elems) {
  KILN_CHECK(n >= 0 && n % block_elems == 0)
      << "row of " << n << " elements is not a multiple of the block size " << block_elems;
  return n / block_elems;
}

inline float MaxOrNan(float a, float b) { return a > b ? a : b; }  // ggml's MAX(a, b)

}  // namespace kiln::kernels::ref::internal
