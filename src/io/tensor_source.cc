#include "io/tensor_source.h"

#include <sys/stat.h>

#include <cmath>
#include <limits>

#include "io/gguf.h"
#include "io/safetensors.h"

namespace kiln::io {

using Type = MetaValue::Type;

bool MetaValue::IsInteger() const {
  switch (type) {
    case Type::kUint8: case Type::kInt8: case Type::kUint16: case Type::kInt16:
    case Type::kUint32: case Type::kInt32: case Type::kUint64: case Type::kInt64:
      return true;
    default:
      return false;
  }
}

bool MetaValue::IsNumber() const {
  return IsInteger() || type == Type::kFloat32 || type == Type::kFloat64;
}

StatusOr<int64_t> MetaValue::AsInt(std::string_view key) const {
  int k = static_cast<int>(key.size());
  if (type == Type::kUint64 && u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return InvalidArgument("metadata '%.*s': %llu does not fit in int64", k, key.data(),
                           static_cast<unsigned long long>(u));
  }
  if (IsInteger()) return i;
  if (type == Type::kFloat32 || type == Type::kFloat64) {
    // Integral floats are accepted (JSON writers sometimes emit 2.0 for 2).
    if (std::isfinite(f) && f == std::floor(f) && std::fabs(f) < 9.2e18) {
      return static_cast<int64_t>(f);
    }
    return InvalidArgument("metadata '%.*s': %g is not an integer", k, key.data(), f);
  }
  return InvalidArgument("metadata '%.*s' is not a number", k, key.data());
}

StatusOr<double> MetaValue::AsDouble(std::string_view key) const {
  if (type == Type::kFloat32 || type == Type::kFloat64) return f;
  if (type == Type::kUint64 && u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return static_cast<double>(u);
  }
  if (IsInteger()) return static_cast<double>(i);
  return InvalidArgument("metadata '%.*s' is not a number", static_cast<int>(key.size()),
                         key.data());
}

std::string MetaValue::ToString(size_t max_array_items) const {
  switch (type) {
    case Type::kBool: return b ? "true" : "false";
    case Type::kString: return "\"" + s + "\"";
    case Type::kNull: return "null";
    case Type::kFloat32: case Type::kFloat64: return StrFormat("%g", f);
    case Type::kUint64:
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return StrFormat("%llu", static_cast<unsigned long long>(u));
      }
      return StrFormat("%lld", static_cast<long long>(i));
    case Type::kArray: {
      std::string out = "[";
      for (size_t k = 0; k < array.size() && k < max_array_items; ++k) {
        if (k > 0) out += ", ";
        out += array[k].ToString(max_array_items);
      }
      if (array.size() > max_array_items) {
        out += StrFormat(", ... (%zu items)", array.size());
      }
      return out + "]";
    }
    default: return StrFormat("%lld", static_cast<long long>(i));
  }
}

int64_t TensorInfo::NumElements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated on load: no overflow
  return n;
}

const TensorInfo* TensorSource::FindTensor(std::string_view name) const {
  for (const TensorInfo& t : tensors()) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const MetaValue* TensorSource::FindMeta(std::string_view key) const {
  auto it = metadata().find(key);
  return it == metadata().end() ? nullptr : &it->second;
}

Status CheckSupported(const TensorInfo& t) {
  if (!Info(t.dtype).supported) {
    return Unimplemented("tensor '%s' has type %s, which kiln cannot compute with yet",
                         t.name.c_str(), DTypeName(t.dtype));
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<TensorSource>> OpenTensorSource(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return NotFound("model path '%s' does not exist", path.c_str());
  }
  if (S_ISDIR(st.st_mode)) {
    KILN_ASSIGN_OR_RETURN(auto src, SafetensorsFolder::Open(path));
    return std::unique_ptr<TensorSource>(std::move(src));
  }
  if (path.size() >= 5 && path.compare(path.size() - 5, 5, ".gguf") == 0) {
    KILN_ASSIGN_OR_RETURN(auto src, GgufFile::Open(path));
    return std::unique_ptr<TensorSource>(std::move(src));
  }
  return InvalidArgument(
      "'%s' is neither a .gguf file nor a Hugging Face model folder (config.json + safetensors)",
      path.c_str());
}

}  // namespace kiln::io
