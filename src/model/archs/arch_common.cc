// MetaReader, the shared rope-scaling readers and the architecture table.
#include <cmath>

#include "model/archs/arch.h"

namespace kiln::model {

const io::MetaValue* MetaReader::Find(std::string_view key) const {
  const io::MetaValue* v = source_.FindMeta(key);
  if (v == nullptr || v->type == io::MetaValue::Type::kNull) return nullptr;
  return v;
}

bool MetaReader::Has(std::string_view key) const { return Find(key) != nullptr; }

StatusOr<int64_t> MetaReader::Int(std::string_view key) const {
  const io::MetaValue* v = Find(key);
  if (v == nullptr) return NotFound("model metadata lacks '%.*s'", static_cast<int>(key.size()), key.data());
  if (!v->IsInteger()) {
    // config.json writers sometimes emit 4096.0; accept integral floats.
    if (v->IsNumber() && v->f == std::floor(v->f) && std::abs(v->f) < 9e15) return static_cast<int64_t>(v->f);
    return InvalidArgument("model metadata '%.*s' is not an integer", static_cast<int>(key.size()), key.data());
  }
  return v->AsInt(key);
}

StatusOr<double> MetaReader::Double(std::string_view key) const {
  const io::MetaValue* v = Find(key);
  if (v == nullptr) return NotFound("model metadata lacks '%.*s'", static_cast<int>(key.size()), key.data());
  return v->AsDouble(key);
}

StatusOr<std::string> MetaReader::String(std::string_view key) const {
  const io::MetaValue* v = Find(key);
  if (v == nullptr) return NotFound("model metadata lacks '%.*s'", static_cast<int>(key.size()), key.data());
  if (v->type != io::MetaValue::Type::kString) {
    return InvalidArgument("model metadata '%.*s' is not a string", static_cast<int>(key.size()), key.data());
  }
  return v->s;
}

StatusOr<int64_t> MetaReader::Int(std::string_view key, int64_t def) const {
  if (!Has(key)) return def;
  return Int(key);
}

StatusOr<double> MetaReader::Double(std::string_view key, double def) const {
  if (!Has(key)) return def;
  return Double(key);
}

StatusOr<bool> MetaReader::Bool(std::string_view key, bool def) const {
  const io::MetaValue* v = Find(key);
  if (v == nullptr) return def;
  if (v->type == io::MetaValue::Type::kBool) return v->b;
  if (v->IsInteger()) return v->i != 0;
  return InvalidArgument("model metadata '%.*s' is not a boolean", static_cast<int>(key.size()), key.data());
}

Status ReadHfRopeScaling(const MetaReader& meta, const std::string& prefix, RopeScaling* out) {
  *out = RopeScaling{};
  std::string type;
  if (meta.Has(prefix + "rope_type")) {
    KILN_ASSIGN_OR_RETURN(type, meta.String(prefix + "rope_type"));
  } else if (meta.Has(prefix + "type")) {
    KILN_ASSIGN_OR_RETURN(type, meta.String(prefix + "type"));
  } else {
    return Status::Ok();
  }
  if (type == "default") return Status::Ok();
  KILN_ASSIGN_OR_RETURN(double factor, meta.Double(prefix + "factor"));
  out->factor = static_cast<float>(factor);
  if (type == "linear") {
    out->type = RopeScalingType::kLinear;
  } else if (type == "llama3") {
    out->type = RopeScalingType::kLlama3;
    KILN_ASSIGN_OR_RETURN(double low, meta.Double(prefix + "low_freq_factor"));
    KILN_ASSIGN_OR_RETURN(double high, meta.Double(prefix + "high_freq_factor"));
    KILN_ASSIGN_OR_RETURN(int64_t orig, meta.Int(prefix + "original_max_position_embeddings"));
    out->low_freq_factor = static_cast<float>(low);
    out->high_freq_factor = static_cast<float>(high);
    if (orig <= 0 || orig > INT32_MAX) {
      return InvalidArgument("%soriginal_max_position_embeddings %lld", prefix.c_str(), static_cast<long long>(orig));
    }
    out->original_context = static_cast<int32_t>(orig);
  } else {
    return Unimplemented("%srope_type '%s' is not supported", prefix.c_str(), type.c_str());
  }
  return Status::Ok();
}

Status ReadHfRope(const MetaReader& meta, const std::string& layer_type, float* theta,
                  RopeScaling* scaling) {
  std::string prefix;
  if (meta.Has("rope_parameters.rope_theta") || meta.Has("rope_parameters.rope_type")) {
    prefix = "rope_parameters.";
  } else if (!layer_type.empty() && meta.Has("rope_parameters." + layer_type + ".rope_theta")) {
    prefix = "rope_parameters." + layer_type + ".";
  }
  if (!prefix.empty()) {  // transformers >= 5
    KILN_ASSIGN_OR_RETURN(double t, meta.Double(prefix + "rope_theta", 10000.0));
    *theta = static_cast<float>(t);
    return ReadHfRopeScaling(meta, prefix, scaling);
  }
  KILN_ASSIGN_OR_RETURN(double t, meta.Double("rope_theta", 10000.0));
  *theta = static_cast<float>(t);
  return ReadHfRopeScaling(meta, "rope_scaling.", scaling);
}

Status ReadGgufRopeScaling(const MetaReader& meta, std::string_view arch, RopeScaling* out) {
  *out = RopeScaling{};
  const std::string prefix = std::string(arch) + ".rope.scaling.";
  if (!meta.Has(prefix + "type")) {
    // Older files: only a linear factor key.
    if (meta.Has(prefix + "linear")) {
      KILN_ASSIGN_OR_RETURN(double f, meta.Double(prefix + "linear"));
      if (f != 1.0) {
        out->type = RopeScalingType::kLinear;
        out->factor = static_cast<float>(f);
      }
    }
    return Status::Ok();
  }
  KILN_ASSIGN_OR_RETURN(std::string type, meta.String(prefix + "type"));
  if (type == "none") return Status::Ok();
  if (type != "linear") return Unimplemented("GGUF rope scaling type '%s' is not supported", type.c_str());
  KILN_ASSIGN_OR_RETURN(double f, meta.Double(prefix + "factor"));
  out->type = RopeScalingType::kLinear;
  out->factor = static_cast<float>(f);
  return Status::Ok();
}

const std::vector<const ArchSpec*>& AllArchSpecs() {
  static const std::vector<const ArchSpec*> specs = {&LlamaSpec(), &Qwen2Spec(), &Qwen3Spec(), &Gemma3Spec()};
  return specs;
}

const ArchSpec& SpecFor(Arch arch) {
  for (const ArchSpec* s : AllArchSpecs()) {
    if (s->arch == arch) return *s;
  }
  KILN_CHECK(false) << "no spec for arch " << static_cast<int>(arch);
  return LlamaSpec();
}

}  // namespace kiln::model
