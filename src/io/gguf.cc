#include "io/gguf.h"

#include <algorithm>
#include <cstring>
#include <iterator>
#include <limits>
#include <optional>
#include <type_traits>
#include <unordered_set>
#include <utility>

namespace kiln::io {
namespace {

using Type = MetaValue::Type;

// Bounds-checked little-endian cursor over the mapped file.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  Status Need(size_t n, const char* what) const {
    if (n > remaining()) {
      return InvalidArgument("gguf: truncated file: %s needs %zu bytes at offset %zu, file size %zu",
                             what, n, pos_, size_);
    }
    return Status::Ok();
  }

  template <typename T>
  Status Read(T* out, const char* what) {
    KILN_RETURN_IF_ERROR(Need(sizeof(T), what));
    std::memcpy(out, data_ + pos_, sizeof(T));  // GGUF v2/v3 here are little-endian, like the host
    pos_ += sizeof(T);
    return Status::Ok();
  }

  Status ReadString(std::string* out, const char* what) {
    uint64_t len = 0;
    KILN_RETURN_IF_ERROR(Read(&len, what));
    if (len > remaining()) {
      return InvalidArgument("gguf: %s at offset %zu has length %llu, only %zu bytes left in file",
                             what, pos_ - 8, static_cast<unsigned long long>(len), remaining());
    }
    out->assign(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return Status::Ok();
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

const char* TypeName(Type t) {
  static const char* const kNames[] = {"uint8",  "int8",   "uint16", "int16", "uint32",
                                       "int32",  "float32", "bool",  "string", "array",
                                       "uint64", "int64",  "float64", "null"};
  uint32_t i = static_cast<uint32_t>(t);
  return i < std::size(kNames) ? kNames[i] : "?";
}

// Smallest encoding of one value of a type: bounds array counts before anything is reserved.
size_t MinValueBytes(Type t) {
  switch (t) {
    case Type::kUint8: case Type::kInt8: case Type::kBool: return 1;
    case Type::kUint16: case Type::kInt16: return 2;
    case Type::kUint32: case Type::kInt32: case Type::kFloat32: return 4;
    case Type::kUint64: case Type::kInt64: case Type::kFloat64: return 8;
    case Type::kString: return 8;
    case Type::kArray: return 12;
    case Type::kNull: return 0;
  }
  return 0;
}

bool IsGgufValueType(uint32_t id) { return id <= static_cast<uint32_t>(Type::kFloat64); }

struct ValueParser {
  Reader& r;
  const std::string& key;
  uint64_t n_elements = 0;  // across the whole file, against kGgufMaxMetaElements

  template <typename T>
  Status ReadInt(MetaValue* out) {
    T v;
    KILN_RETURN_IF_ERROR(r.Read(&v, "metadata value"));
    if constexpr (std::is_signed_v<T>) {
      out->i = v;
    } else {
      out->u = v;
      if (static_cast<uint64_t>(v) <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        out->i = static_cast<int64_t>(v);
      }
    }
    return Status::Ok();
  }

  Status Parse(Type type, int depth, MetaValue* out) {
    out->type = type;
    switch (type) {
      case Type::kUint8: return ReadInt<uint8_t>(out);
      case Type::kInt8: return ReadInt<int8_t>(out);
      case Type::kUint16: return ReadInt<uint16_t>(out);
      case Type::kInt16: return ReadInt<int16_t>(out);
      case Type::kUint32: return ReadInt<uint32_t>(out);
      case Type::kInt32: return ReadInt<int32_t>(out);
      case Type::kUint64: return ReadInt<uint64_t>(out);
      case Type::kInt64: return ReadInt<int64_t>(out);
      case Type::kFloat32: {
        float v;
        KILN_RETURN_IF_ERROR(r.Read(&v, "metadata value"));
        out->f = v;
        return Status::Ok();
      }
      case Type::kFloat64: return r.Read(&out->f, "metadata value");
      case Type::kBool: {
        uint8_t v;
        KILN_RETURN_IF_ERROR(r.Read(&v, "metadata value"));
        if (v > 1) {
          return InvalidArgument("gguf: key '%s': bool value %u is not 0 or 1", key.c_str(), v);
        }
        out->b = v != 0;
        return Status::Ok();
      }
      case Type::kString: return r.ReadString(&out->s, "metadata string");
      case Type::kArray: return ParseArray(depth, out);
      case Type::kNull: break;
    }
    return InvalidArgument("gguf: key '%s': bad value type", key.c_str());
  }

  Status ParseArray(int depth, MetaValue* out) {
    if (depth >= kGgufMaxArrayDepth) {
      return InvalidArgument("gguf: key '%s': arrays nested deeper than %d", key.c_str(),
                             kGgufMaxArrayDepth);
    }
    uint32_t elem_id = 0;
    uint64_t count = 0;
    KILN_RETURN_IF_ERROR(r.Read(&elem_id, "array element type"));
    KILN_RETURN_IF_ERROR(r.Read(&count, "array count"));
    if (!IsGgufValueType(elem_id)) {
      return InvalidArgument("gguf: key '%s': unknown array element type %u", key.c_str(), elem_id);
    }
    Type elem = static_cast<Type>(elem_id);
    if (count > r.remaining() / MinValueBytes(elem)) {
      return InvalidArgument(
          "gguf: key '%s': array of %llu %s needs at least %llu bytes, only %zu left in file",
          key.c_str(), static_cast<unsigned long long>(count), TypeName(elem),
          static_cast<unsigned long long>(count) * MinValueBytes(elem), r.remaining());
    }
    n_elements += count;
    if (n_elements > kGgufMaxMetaElements) {
      return InvalidArgument("gguf: key '%s': metadata arrays exceed %llu elements in total",
                             key.c_str(), static_cast<unsigned long long>(kGgufMaxMetaElements));
    }
    out->elem_type = elem;
    out->array.resize(static_cast<size_t>(count));
    for (MetaValue& v : out->array) KILN_RETURN_IF_ERROR(Parse(elem, depth + 1, &v));
    return Status::Ok();
  }
};

Status ParseHeader(Reader& r, uint32_t* version, uint64_t* n_tensors, uint64_t* n_kv) {
  uint32_t magic = 0;
  KILN_RETURN_IF_ERROR(r.Read(&magic, "magic"));
  if (magic != kGgufMagic) {
    return InvalidArgument("gguf: bad magic 0x%08x (expected \"GGUF\")", magic);
  }
  KILN_RETURN_IF_ERROR(r.Read(version, "version"));
  if (*version == 1) {
    return Unimplemented("gguf: version 1 files are not supported (convert to version 3)");
  }
  if (*version == 0x02000000u || *version == 0x03000000u) {
    return Unimplemented("gguf: big-endian files are not supported");
  }
  if (*version != 2 && *version != 3) {
    return Unimplemented("gguf: unsupported version %u (supported: 2, 3)", *version);
  }
  KILN_RETURN_IF_ERROR(r.Read(n_tensors, "tensor count"));
  KILN_RETURN_IF_ERROR(r.Read(n_kv, "metadata count"));
  return Status::Ok();
}

Status CheckAlignment(const Metadata& meta, size_t* alignment) {
  auto it = meta.find("general.alignment");
  if (it == meta.end()) return Status::Ok();
  const MetaValue& v = it->second;
  if (v.type != Type::kUint32) {
    return InvalidArgument("gguf: general.alignment has type %s, expected uint32",
                           TypeName(v.type));
  }
  if (v.u == 0 || (v.u & (v.u - 1)) != 0) {
    return InvalidArgument("gguf: general.alignment %llu is not a power of two",
                           static_cast<unsigned long long>(v.u));
  }
  *alignment = static_cast<size_t>(v.u);
  return Status::Ok();
}

// One tensor info record as stored, before the data section is known.
struct RawTensor {
  TensorInfo info;
  uint64_t offset = 0;
};

Status ParseTensorInfo(Reader& r, RawTensor* out) {
  TensorInfo& t = out->info;
  KILN_RETURN_IF_ERROR(r.ReadString(&t.name, "tensor name"));
  const char* name = t.name.c_str();
  uint32_t n_dims = 0;
  KILN_RETURN_IF_ERROR(r.Read(&n_dims, "tensor n_dims"));
  if (n_dims > kGgufMaxDims) {
    return InvalidArgument("gguf: tensor '%s' has %u dims, max %d", name, n_dims, kGgufMaxDims);
  }
  uint64_t ne[kGgufMaxDims] = {1, 1, 1, 1};
  for (uint32_t d = 0; d < n_dims; ++d) {
    KILN_RETURN_IF_ERROR(r.Read(&ne[d], "tensor dims"));
    if (ne[d] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return InvalidArgument("gguf: tensor '%s' has negative dim ne[%u] = %lld", name, d,
                             static_cast<long long>(static_cast<int64_t>(ne[d])));
    }
  }
  uint32_t type_id = 0;
  KILN_RETURN_IF_ERROR(r.Read(&type_id, "tensor type"));
  const DTypeInfo* dinfo = FindDTypeInfo(type_id);
  if (dinfo == nullptr) {
    return InvalidArgument("gguf: tensor '%s' has unknown type id %u", name, type_id);
  }
  t.dtype = dinfo->dtype;
  KILN_RETURN_IF_ERROR(r.Read(&out->offset, "tensor offset"));

  // rows = ne[1] * ne[2] * ne[3], each factor < 2^63: check overflow of the product.
  uint64_t rows = 1;
  for (uint32_t d = 1; d < kGgufMaxDims; ++d) {
    if (ne[d] != 0 && rows > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / ne[d]) {
      return InvalidArgument("gguf: tensor '%s': element count overflows", name);
    }
    rows *= ne[d];
  }
  if (rows != 0 && ne[0] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / rows) {
    return InvalidArgument("gguf: tensor '%s': element count overflows", name);
  }
  std::optional<size_t> row_bytes = RowBytes(t.dtype, static_cast<int64_t>(ne[0]));
  if (!row_bytes) {
    return InvalidArgument("gguf: tensor '%s': row of %llu elements is not a whole number of %s "
                           "blocks (%lld elements each)",
                           name, static_cast<unsigned long long>(ne[0]), dinfo->name,
                           static_cast<long long>(dinfo->block_elems));
  }
  if (rows != 0 && *row_bytes > std::numeric_limits<size_t>::max() / rows) {
    return InvalidArgument("gguf: tensor '%s': byte size overflows", name);
  }
  t.n_bytes = *row_bytes * rows;
  t.shape.assign(n_dims, 0);
  for (uint32_t d = 0; d < n_dims; ++d) t.shape[n_dims - 1 - d] = static_cast<int64_t>(ne[d]);
  return Status::Ok();
}

// Places each tensor in the data section: aligned, inside the file, no overlaps.
Status PlaceTensors(const uint8_t* base, size_t file_size, size_t data_offset, size_t alignment,
                    std::vector<RawTensor>& raw) {
  size_t data_size = file_size > data_offset ? file_size - data_offset : 0;
  for (RawTensor& rt : raw) {
    TensorInfo& t = rt.info;
    if (rt.offset % alignment != 0) {
      return InvalidArgument("gguf: tensor '%s' offset %llu is not a multiple of the alignment %zu",
                             t.name.c_str(), static_cast<unsigned long long>(rt.offset), alignment);
    }
    if (rt.offset > data_size || t.n_bytes > data_size - rt.offset) {
      // Saturating only for the message; the check above is exact.
      unsigned long long begin = data_offset + std::min<uint64_t>(rt.offset, UINT64_MAX - data_offset);
      unsigned long long end = begin + std::min<uint64_t>(t.n_bytes, UINT64_MAX - begin);
      return InvalidArgument("gguf: tensor '%s' data [%llu, %llu) extends past end of file (size %zu)",
                             t.name.c_str(), begin, end, file_size);
    }
    // Empty tensors may sit at the very end; keep their pointer inside [base, base + size].
    t.data = base + std::min<uint64_t>(data_offset + rt.offset, file_size);
  }
  std::vector<const RawTensor*> order;
  for (const RawTensor& rt : raw) {
    if (rt.info.n_bytes > 0) order.push_back(&rt);
  }
  std::sort(order.begin(), order.end(),
            [](const RawTensor* a, const RawTensor* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < order.size(); ++i) {
    const RawTensor& a = *order[i - 1];
    const RawTensor& b = *order[i];
    if (a.offset + a.info.n_bytes > b.offset) {
      return InvalidArgument("gguf: tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap",
                             a.info.name.c_str(), static_cast<unsigned long long>(a.offset),
                             static_cast<unsigned long long>(a.offset + a.info.n_bytes),
                             b.info.name.c_str(), static_cast<unsigned long long>(b.offset),
                             static_cast<unsigned long long>(b.offset + b.info.n_bytes));
    }
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(File file, File::Open(path));
  return FromFile(std::move(file));
}

StatusOr<std::unique_ptr<GgufFile>> GgufFile::FromFile(File file) {
  std::unique_ptr<GgufFile> g(new GgufFile());
  g->file_ = std::move(file);
  Status st = g->Parse();
  if (!st.ok()) return st.WithContext(g->file_.path());
  return g;
}

uint64_t GgufFile::RelativeOffset(size_t tensor_idx) const {
  KILN_CHECK(tensor_idx < offsets_.size()) << tensor_idx << " >= " << offsets_.size();
  return offsets_[tensor_idx];
}

Status GgufFile::Parse() {
  Reader r(file_.data(), file_.size());
  uint64_t n_tensors = 0, n_kv = 0;
  KILN_RETURN_IF_ERROR(ParseHeader(r, &version_, &n_tensors, &n_kv));
  // Smallest key/value: 8-byte key length + 4-byte type + 1-byte value.
  if (n_kv > r.remaining() / 13) {
    return InvalidArgument("gguf: %llu metadata entries cannot fit in the %zu bytes left",
                           static_cast<unsigned long long>(n_kv), r.remaining());
  }
  uint64_t n_meta_elements = 0;
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key;
    KILN_RETURN_IF_ERROR(r.ReadString(&key, "metadata key"));
    uint32_t type_id = 0;
    KILN_RETURN_IF_ERROR(r.Read(&type_id, "metadata value type"));
    if (!IsGgufValueType(type_id)) {
      return InvalidArgument("gguf: key '%s' has unknown value type %u", key.c_str(), type_id);
    }
    if (metadata_.count(key) != 0) {
      return InvalidArgument("gguf: duplicate metadata key '%s'", key.c_str());
    }
    MetaValue value;
    ValueParser parser{r, key, n_meta_elements};
    KILN_RETURN_IF_ERROR(parser.Parse(static_cast<Type>(type_id), 0, &value));
    n_meta_elements = parser.n_elements;
    key_order_.push_back(key);
    metadata_.emplace(std::move(key), std::move(value));
  }
  KILN_RETURN_IF_ERROR(CheckAlignment(metadata_, &alignment_));

  // Smallest tensor info: 8-byte name length + 4 n_dims + 4 type + 8 offset.
  if (n_tensors > r.remaining() / 24) {
    return InvalidArgument("gguf: %llu tensor infos cannot fit in the %zu bytes left",
                           static_cast<unsigned long long>(n_tensors), r.remaining());
  }
  std::vector<RawTensor> raw(static_cast<size_t>(n_tensors));
  std::unordered_set<std::string_view> names;
  for (RawTensor& rt : raw) {
    KILN_RETURN_IF_ERROR(ParseTensorInfo(r, &rt));
    if (!names.insert(rt.info.name).second) {
      return InvalidArgument("gguf: duplicate tensor name '%s'", rt.info.name.c_str());
    }
  }
  size_t pos = r.pos();
  data_offset_ = pos + (alignment_ - pos % alignment_) % alignment_;
  KILN_RETURN_IF_ERROR(PlaceTensors(file_.data(), file_.size(), data_offset_, alignment_, raw));
  tensors_.reserve(raw.size());
  offsets_.reserve(raw.size());
  for (RawTensor& rt : raw) {
    tensors_.push_back(std::move(rt.info));
    offsets_.push_back(rt.offset);
  }
  return Status::Ok();
}

}  // namespace kiln::io
