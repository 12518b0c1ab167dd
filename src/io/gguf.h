// GGUF reader (versions 2 and 3, little-endian): metadata key/values and tensor infos, with the
// tensor data left in the mmap. Every count, length, shape and offset is validated against the
// file before it is trusted; a hostile or truncated file yields InvalidArgument, never a crash.
// Non-goals: writing GGUF, GGUF v1, big-endian files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "io/file.h"
#include "io/tensor_source.h"

namespace kiln::io {

inline constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as little-endian uint32
inline constexpr size_t kGgufDefaultAlignment = 32;
inline constexpr int kGgufMaxDims = 4;
// Limits against hostile files: MetaValue is ~100 bytes, so a 1-byte-per-element array could
// otherwise ask for 100x the file size. Real vocabularies use < 1M elements per array.
inline constexpr uint64_t kGgufMaxMetaElements = uint64_t{1} << 23;
inline constexpr int kGgufMaxArrayDepth = 8;

// An opened GGUF file. Immutable after Open; safe to read from many threads.
class GgufFile final : public TensorSource {
 public:
  static StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Parses an already mapped file (tests, fuzzers).
  static StatusOr<std::unique_ptr<GgufFile>> FromFile(File file);

  SourceFormat format() const override { return SourceFormat::kGguf; }
  const Metadata& metadata() const override { return metadata_; }
  const std::vector<TensorInfo>& tensors() const override { return tensors_; }
  const std::string& path() const override { return file_.path(); }
  void ReleasePages(const uint8_t* p, size_t n) const override { file_.ReleasePages(p, n); }

  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }
  // Absolute file offset where the tensor data section starts.
  size_t data_offset() const { return data_offset_; }
  // tensors()[tensor_idx]'s offset as stored in the file (relative to data_offset()).
  uint64_t RelativeOffset(size_t tensor_idx) const;
  // Metadata keys in file order (metadata() is sorted).
  const std::vector<std::string>& key_order() const { return key_order_; }

 private:
  GgufFile() = default;
  Status Parse();

  File file_;
  uint32_t version_ = 0;
  size_t alignment_ = kGgufDefaultAlignment;
  size_t data_offset_ = 0;
  Metadata metadata_;
  std::vector<std::string> key_order_;
  std::vector<TensorInfo> tensors_;
  std::vector<uint64_t> offsets_;  // parallel to tensors_
};

}  // namespace kiln::io
