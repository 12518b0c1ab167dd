// Hugging Face model folders: config.json plus model.safetensors or a sharded
// model.safetensors.index.json. Shards are mmapped; every header is validated (length, JSON,
// dtypes, shapes, offsets, overlaps) before a tensor is exposed.
// Non-goals: writing safetensors; dtypes other than F32/F16/BF16 for compute (F64 and I8..I64
// are listed with their DType so CheckSupported() reports them; U8/BOOL/F8_* are rejected).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "io/file.h"
#include "io/tensor_source.h"

namespace kiln::io {

inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100ull << 20;
inline constexpr int kSafetensorsMaxDims = 8;
inline constexpr int kMaxJsonDepth = 64;

// Parses one .safetensors file's header and appends its tensors (data pointing into `file`,
// ordered by offset) to `out`. `__metadata__` is ignored.
Status ParseSafetensors(const File& file, std::vector<TensorInfo>* out);

// config.json → Metadata: nested objects joined with '.', arrays as kArray (objects inside
// arrays become their JSON text as kString), null as kNull, integers kInt64 (kUint64 above
// INT64_MAX), other numbers kFloat64.
StatusOr<Metadata> ParseHfConfig(std::string_view json_text);

// Shard file names listed in a model.safetensors.index.json's weight_map (sorted, unique;
// each a plain file name). `weight_map` (optional) receives the (tensor, shard) pairs.
StatusOr<std::vector<std::string>> ParseSafetensorsIndex(
    std::string_view json_text,
    std::vector<std::pair<std::string, std::string>>* weight_map = nullptr);

// A Hugging Face model folder. Immutable after Open; safe to read from many threads.
class SafetensorsFolder final : public TensorSource {
 public:
  static StatusOr<std::unique_ptr<SafetensorsFolder>> Open(const std::string& dir);

  SourceFormat format() const override { return SourceFormat::kSafetensors; }
  const Metadata& metadata() const override { return metadata_; }
  const std::vector<TensorInfo>& tensors() const override { return tensors_; }
  const std::string& path() const override { return dir_; }

 private:
  SafetensorsFolder() = default;
  Status OpenShards(const std::vector<std::string>& shard_names);

  std::string dir_;
  std::vector<File> shards_;
  Metadata metadata_;
  std::vector<TensorInfo> tensors_;
};

}  // namespace kiln::io
