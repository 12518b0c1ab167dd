#include "io/safetensors.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>
#include <unordered_set>
#include <utility>

#include <nlohmann/json.hpp>

namespace kiln::io {
namespace {

using nlohmann::json;
using Type = MetaValue::Type;

struct StDType {
  const char* name;
  DType dtype;
};
constexpr StDType kStDTypes[] = {
    {"F32", DType::kF32}, {"F16", DType::kF16}, {"BF16", DType::kBF16}, {"F64", DType::kF64},
    {"I64", DType::kI64}, {"I32", DType::kI32}, {"I16", DType::kI16},   {"I8", DType::kI8},
};

// Parses JSON without exceptions; InvalidArgument on syntax errors or duplicate top-level keys
// (nlohmann would keep the last one silently).
StatusOr<json> ParseJson(std::string_view text, const char* what, bool reject_duplicate_keys) {
  std::set<std::string> keys;
  bool duplicate = false;
  std::string dup_key;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (reject_duplicate_keys && depth == 1 && event == json::parse_event_t::key &&
        parsed.is_string()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!keys.insert(k).second && !duplicate) {
        duplicate = true;
        dup_key = k;
      }
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/false);
  } catch (const std::exception& e) {
    return InvalidArgument("%s: invalid JSON: %s", what, e.what());
  }
  if (j.is_discarded()) return InvalidArgument("%s: invalid JSON", what);
  if (duplicate) return InvalidArgument("%s: duplicate key '%s'", what, dup_key.c_str());
  return j;
}

StatusOr<int64_t> NonNegativeInt(const json& v) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return static_cast<int64_t>(u);
    }
  } else if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    return v.get<int64_t>();
  }
  return InvalidArgument("not a non-negative integer: %s", v.dump().c_str());
}

// One header entry, validated except for its placement among the others.
struct Entry {
  TensorInfo info;
  uint64_t begin = 0, end = 0;
};

Status ParseEntry(const std::string& name, const json& v, uint64_t data_size, Entry* e) {
  const char* n = name.c_str();
  if (!v.is_object()) return InvalidArgument("tensor '%s' is not a JSON object", n);
  auto dt = v.find("dtype");
  auto sh = v.find("shape");
  auto off = v.find("data_offsets");
  if (dt == v.end() || !dt->is_string()) return InvalidArgument("tensor '%s' has no dtype", n);
  if (sh == v.end() || !sh->is_array()) return InvalidArgument("tensor '%s' has no shape", n);
  if (off == v.end() || !off->is_array() || off->size() != 2) {
    return InvalidArgument("tensor '%s' needs data_offsets [begin, end]", n);
  }
  const std::string& dtype = dt->get_ref<const std::string&>();
  const StDType* found = nullptr;
  for (const StDType& d : kStDTypes) {
    if (dtype == d.name) found = &d;
  }
  if (found == nullptr) {
    return Unimplemented("tensor '%s' has dtype %s; kiln reads F32, F16, BF16 (and lists F64, "
                         "I8..I64)", n, dtype.c_str());
  }
  e->info.name = name;
  e->info.dtype = found->dtype;
  if (sh->size() > kSafetensorsMaxDims) {
    return InvalidArgument("tensor '%s' has %zu dims, max %d", n, sh->size(), kSafetensorsMaxDims);
  }
  uint64_t n_elems = 1;
  for (const json& d : *sh) {
    StatusOr<int64_t> dim = NonNegativeInt(d);
    if (!dim.ok()) return dim.status().WithContext(StrFormat("tensor '%s' shape", n));
    if (*dim != 0 && n_elems > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / *dim) {
      return InvalidArgument("tensor '%s': element count overflows", n);
    }
    n_elems *= static_cast<uint64_t>(*dim);
    e->info.shape.push_back(*dim);
  }
  StatusOr<int64_t> begin = NonNegativeInt((*off)[0]);
  StatusOr<int64_t> end = NonNegativeInt((*off)[1]);
  if (!begin.ok() || !end.ok()) return InvalidArgument("tensor '%s': bad data_offsets", n);
  e->begin = static_cast<uint64_t>(*begin);
  e->end = static_cast<uint64_t>(*end);
  if (e->begin > e->end || e->end > data_size) {
    return InvalidArgument("tensor '%s' data_offsets [%llu, %llu) outside the data section "
                           "(%llu bytes)", n, static_cast<unsigned long long>(e->begin),
                           static_cast<unsigned long long>(e->end),
                           static_cast<unsigned long long>(data_size));
  }
  std::optional<size_t> bytes = RowBytes(found->dtype, static_cast<int64_t>(n_elems));
  if (!bytes || *bytes != e->end - e->begin) {
    return InvalidArgument("tensor '%s': %llu bytes in data_offsets, but shape and dtype %s "
                           "need %llu", n, static_cast<unsigned long long>(e->end - e->begin),
                           dtype.c_str(),
                           static_cast<unsigned long long>(bytes ? *bytes : UINT64_MAX));
  }
  e->info.n_bytes = *bytes;
  return Status::Ok();
}

Status ParseHeader(const File& file, std::vector<TensorInfo>* out) {
  if (file.size() < 8) return InvalidArgument("file of %zu bytes has no header", file.size());
  uint64_t header_len = 0;
  std::memcpy(&header_len, file.data(), 8);
  if (header_len > kSafetensorsMaxHeaderBytes || header_len > file.size() - 8) {
    return InvalidArgument("header length %llu exceeds the limit (%llu) or the file size (%zu)",
                           static_cast<unsigned long long>(header_len),
                           static_cast<unsigned long long>(kSafetensorsMaxHeaderBytes),
                           file.size());
  }
  std::string_view text(reinterpret_cast<const char*>(file.data()) + 8, header_len);
  KILN_ASSIGN_OR_RETURN(json header, ParseJson(text, "header", true));
  if (!header.is_object()) return InvalidArgument("header is not a JSON object");
  const uint8_t* data = file.data() + 8 + header_len;
  uint64_t data_size = file.size() - 8 - header_len;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    Entry e;
    KILN_RETURN_IF_ERROR(ParseEntry(it.key(), it.value(), data_size, &e));
    entries.push_back(std::move(e));
  }
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const Entry* prev = nullptr;
  for (const Entry& e : entries) {
    if (e.end == e.begin) continue;
    if (prev != nullptr && prev->end > e.begin) {
      return InvalidArgument("tensors '%s' and '%s' overlap", prev->info.name.c_str(),
                             e.info.name.c_str());
    }
    prev = &e;
  }
  for (Entry& e : entries) {
    e.info.data = data + e.begin;
    out->push_back(std::move(e.info));
  }
  return Status::Ok();
}

StatusOr<MetaValue> ToMeta(const json& v, int depth) {
  if (depth > kMaxJsonDepth) return InvalidArgument("nested deeper than %d", kMaxJsonDepth);
  MetaValue m;
  if (v.is_null()) {
    m.type = Type::kNull;
  } else if (v.is_boolean()) {
    m.type = Type::kBool;
    m.b = v.get<bool>();
  } else if (v.is_number_unsigned()) {
    m.u = v.get<uint64_t>();
    bool fits = m.u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    m.type = fits ? Type::kInt64 : Type::kUint64;
    if (fits) m.i = static_cast<int64_t>(m.u);
  } else if (v.is_number_integer()) {
    m.type = Type::kInt64;
    m.i = v.get<int64_t>();
  } else if (v.is_number_float()) {
    m.type = Type::kFloat64;
    m.f = v.get<double>();
  } else if (v.is_string()) {
    m.type = Type::kString;
    m.s = v.get<std::string>();
  } else if (v.is_object()) {
    m.type = Type::kString;
    m.s = v.dump();
  } else {  // array
    m.type = Type::kArray;
    for (const json& e : v) {
      KILN_ASSIGN_OR_RETURN(MetaValue em, ToMeta(e, depth + 1));
      m.array.push_back(std::move(em));
    }
    // One element type when the array is homogeneous (ints with floats count as floats).
    bool all_numbers = !m.array.empty();
    bool any_float = false;
    for (const MetaValue& e : m.array) {
      all_numbers = all_numbers && e.IsNumber();
      any_float = any_float || e.type == Type::kFloat64;
    }
    if (all_numbers && any_float) {
      for (MetaValue& e : m.array) {
        if (e.type != Type::kFloat64) e.f = *e.AsDouble("");
        e.type = Type::kFloat64;
      }
    }
    m.elem_type = m.array.empty() ? Type::kNull : m.array[0].type;
    for (const MetaValue& e : m.array) {
      if (e.type != m.elem_type) m.elem_type = Type::kNull;  // mixed
    }
  }
  return m;
}

Status Flatten(const json& obj, const std::string& prefix, int depth, Metadata* out) {
  if (depth > kMaxJsonDepth) return InvalidArgument("nested deeper than %d", kMaxJsonDepth);
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (it.value().is_object()) {
      KILN_RETURN_IF_ERROR(Flatten(it.value(), key, depth + 1, out));
      continue;
    }
    KILN_ASSIGN_OR_RETURN(MetaValue m, ToMeta(it.value(), depth + 1));
    (*out)[key] = std::move(m);
  }
  return Status::Ok();
}

bool IsFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

StatusOr<std::string> ReadText(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(File f, File::Open(path));
  if (f.size() > kSafetensorsMaxHeaderBytes) {
    return InvalidArgument("%s is larger than %llu bytes", path.c_str(),
                           static_cast<unsigned long long>(kSafetensorsMaxHeaderBytes));
  }
  return std::string(reinterpret_cast<const char*>(f.data()), f.size());
}

// Shard names from model.safetensors.index.json's weight_map, in sorted order.
StatusOr<std::vector<std::string>> ParseIndex(std::string_view text,
                                              std::vector<std::pair<std::string, std::string>>* map) {
  std::vector<std::pair<std::string, std::string>> unused;
  if (map == nullptr) map = &unused;
  KILN_ASSIGN_OR_RETURN(json index, ParseJson(text, "model.safetensors.index.json", false));
  auto wm = index.is_object() ? index.find("weight_map") : index.end();
  if (wm == index.end() || !wm->is_object()) {
    return InvalidArgument("model.safetensors.index.json has no weight_map object");
  }
  std::set<std::string> shards;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string()) {
      return InvalidArgument("weight_map['%s'] is not a string", it.key().c_str());
    }
    const std::string& shard = it.value().get_ref<const std::string&>();
    if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos ||
        shard.find('\0') != std::string::npos) {
      return InvalidArgument("weight_map['%s'] = '%s' is not a file name in the folder",
                             it.key().c_str(), shard.c_str());
    }
    shards.insert(shard);
    map->emplace_back(it.key(), shard);
  }
  return std::vector<std::string>(shards.begin(), shards.end());
}

}  // namespace

StatusOr<std::vector<std::string>> ParseSafetensorsIndex(
    std::string_view json_text, std::vector<std::pair<std::string, std::string>>* weight_map) {
  return ParseIndex(json_text, weight_map);
}

Status ParseSafetensors(const File& file, std::vector<TensorInfo>* out) {
  Status st = ParseHeader(file, out);
  return st.ok() ? st : st.WithContext("safetensors " + file.path());
}

StatusOr<Metadata> ParseHfConfig(std::string_view json_text) {
  KILN_ASSIGN_OR_RETURN(json j, ParseJson(json_text, "config.json", true));
  if (!j.is_object()) return InvalidArgument("config.json is not a JSON object");
  Metadata meta;
  Status st = Flatten(j, "", 0, &meta);
  if (!st.ok()) return st.WithContext("config.json");
  return meta;
}

Status SafetensorsFolder::OpenShards(const std::vector<std::string>& shard_names) {
  for (const std::string& name : shard_names) {
    KILN_ASSIGN_OR_RETURN(File f, File::Open(dir_ + "/" + name));
    KILN_RETURN_IF_ERROR(ParseSafetensors(f, &tensors_));
    shards_.push_back(std::move(f));  // moving a File keeps its mapping: pointers stay valid
  }
  std::unordered_set<std::string_view> names;
  for (const TensorInfo& t : tensors_) {
    if (!names.insert(t.name).second) {
      return InvalidArgument("tensor '%s' appears in more than one shard", t.name.c_str());
    }
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<SafetensorsFolder>> SafetensorsFolder::Open(const std::string& dir) {
  std::unique_ptr<SafetensorsFolder> src(new SafetensorsFolder());
  src->dir_ = dir;
  while (src->dir_.size() > 1 && src->dir_.back() == '/') src->dir_.pop_back();
  const std::string& d = src->dir_;
  std::string config_path = d + "/config.json";
  if (!IsFile(config_path)) return NotFound("%s: no config.json in the folder", d.c_str());
  KILN_ASSIGN_OR_RETURN(std::string config_text, ReadText(config_path));
  StatusOr<Metadata> meta = ParseHfConfig(config_text);
  if (!meta.ok()) return meta.status().WithContext(d);
  src->metadata_ = std::move(meta).value();
  MetaValue dir_value;
  dir_value.type = MetaValue::Type::kString;
  dir_value.s = d;
  src->metadata_["hf.dir"] = std::move(dir_value);

  std::string index_path = d + "/model.safetensors.index.json";
  if (IsFile(index_path)) {
    KILN_ASSIGN_OR_RETURN(std::string index_text, ReadText(index_path));
    std::vector<std::pair<std::string, std::string>> weight_map;
    StatusOr<std::vector<std::string>> shards = ParseIndex(index_text, &weight_map);
    if (!shards.ok()) return shards.status().WithContext(d);
    KILN_RETURN_IF_ERROR(src->OpenShards(*shards));
    for (const auto& [tensor, shard] : weight_map) {
      if (src->FindTensor(tensor) == nullptr) {
        return InvalidArgument("%s: weight_map lists '%s' in %s, which does not contain it",
                               d.c_str(), tensor.c_str(), shard.c_str());
      }
    }
    return src;
  }
  if (IsFile(d + "/model.safetensors")) {
    KILN_RETURN_IF_ERROR(src->OpenShards({"model.safetensors"}));
    return src;
  }
  return NotFound("%s: no model.safetensors or model.safetensors.index.json", d.c_str());
}

}  // namespace kiln::io
