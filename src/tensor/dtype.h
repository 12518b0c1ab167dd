// Element types kiln stores tensors in. Values equal ggml's `ggml_type` ids so GGUF tensor
// types map one to one; quantized types are stored in blocks (layouts in quant_blocks.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace kiln {

enum class DType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,
  // kiln's own layouts, never in a file (ids ggml retired): weight rows interleaved in
  // groups of 16 at load time for the CPU kernels (kernels/pack.h).
  kQ4_0_R16 = 36,
  kQ8_0_R16 = 37,
  kQ5_0_R16 = 38,
  kQ4_K_R16 = 31,
  kQ6_K_R16 = 32,
};

struct DTypeInfo {
  DType dtype;
  const char* name;       // "f32", "q4_K", … (ggml's spelling)
  int64_t block_elems;    // elements per block (1 for plain types)
  size_t block_bytes;     // bytes per block
  bool quantized;
  bool supported;         // kiln can dequantize / compute with it
  bool internal = false;  // a kiln-only layout (no file may use it)
};

// Info for a known type; nullptr for an id kiln does not know (untrusted GGUF input).
// The type of a file's ggml type id (null if unknown or kiln-internal).
const DTypeInfo* FindDTypeInfo(uint32_t ggml_type_id);
const DTypeInfo& Info(DType dtype);  // dtype must be known (KILN_CHECK)
inline const char* DTypeName(DType d) { return Info(d).name; }
std::optional<DType> DTypeFromName(std::string_view name);

// Bytes of a row of n_elems elements; nullopt if n_elems is not a multiple of the block size
// or the size overflows.
std::optional<size_t> RowBytes(DType dtype, int64_t n_elems);

}  // namespace kiln
