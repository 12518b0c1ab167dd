// TensorSource: what a model file gives the rest of kiln, whatever its format. GGUF files and
// Hugging Face safetensors folders both open into one; the model layer reads metadata and
// tensors from it and never sees the format's details.
//
// Shapes are row-major, outermost first (numpy/PyTorch order): a Linear(in, out) weight is
// {out, in} from both formats (GGUF's ne[] is reversed on load). Tensor bytes point into a
// read-only mmap owned by the source; they stay valid while the source lives.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/status.h"
#include "tensor/dtype.h"

namespace kiln::io {

// A metadata value: a GGUF key's value, or a config.json entry.
struct MetaValue {
  // GGUF value type ids (gguf_type); config.json values map to kInt64/kFloat64/kBool/kString/kArray.
  enum class Type : uint32_t {
    kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6,
    kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12, kNull = 13,
  };
  Type type = Type::kNull;
  // Scalars: integers in i (or u for kUint64 values above INT64_MAX), floats in f, bools in b.
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  bool b = false;
  std::string s;
  Type elem_type = Type::kNull;  // for kArray
  std::vector<MetaValue> array;  // for kArray

  bool IsInteger() const;
  bool IsNumber() const;
  // Numeric value as the asked type; InvalidArgument naming `key` if not numeric / out of range.
  StatusOr<int64_t> AsInt(std::string_view key) const;
  StatusOr<double> AsDouble(std::string_view key) const;
  std::string ToString(size_t max_array_items = 8) const;  // for `kiln info`
};

// Ordered by key for stable printing.
using Metadata = std::map<std::string, MetaValue, std::less<>>;

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // row-major, outermost first
  const uint8_t* data = nullptr;  // into the source's mmap; n_bytes long, validated
  size_t n_bytes = 0;

  int64_t NumElements() const;
};

enum class SourceFormat { kGguf, kSafetensors };

class TensorSource {
 public:
  virtual ~TensorSource() = default;

  virtual SourceFormat format() const = 0;
  // GGUF: all key/values (general.architecture, llama.block_count, tokenizer.ggml.*, …).
  // Hugging Face: config.json flattened with '.' for nested objects ("rope_scaling.rope_type"),
  // plus "hf.dir" = the folder path.
  virtual const Metadata& metadata() const = 0;
  virtual const std::vector<TensorInfo>& tensors() const = 0;
  // The file or folder this was opened from.
  virtual const std::string& path() const = 0;

  const TensorInfo* FindTensor(std::string_view name) const;
  // A tensor's bytes were copied elsewhere and will not be read through this source again:
  // lets the source drop their resident pages (File::ReleasePages). Never changes the bytes.
  virtual void ReleasePages(const uint8_t* p, size_t n) const {
    (void)p;
    (void)n;
  }
  const MetaValue* FindMeta(std::string_view key) const;
};

// OK if kiln can compute with t's dtype; Unimplemented naming the tensor otherwise (e.g. an
// I64 or F64 tensor listed in a safetensors header, a q2_K tensor in a GGUF file).
Status CheckSupported(const TensorInfo& t);

// Opens a .gguf file, or a Hugging Face folder (config.json + model.safetensors or
// model.safetensors.index.json shards). Validates every size and offset before returning.
StatusOr<std::unique_ptr<TensorSource>> OpenTensorSource(const std::string& path);

}  // namespace kiln::io
