// One table row per architecture: how its config is read and which structural features it
// has. Adding an architecture = one archs/<name>.cc defining a spec + a line in AllArchSpecs().
// Internal to model/.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "io/tensor_source.h"
#include "model/config.h"

namespace kiln::model {

// Typed, key-checked access to metadata for the arch readers.
class MetaReader {
 public:
  explicit MetaReader(const io::TensorSource& source) : source_(source) {}
  const io::TensorSource& source() const { return source_; }
  bool Has(std::string_view key) const;
  // Missing key → NotFound; wrong type → InvalidArgument. Both name the key.
  StatusOr<int64_t> Int(std::string_view key) const;
  StatusOr<double> Double(std::string_view key) const;
  StatusOr<std::string> String(std::string_view key) const;
  // Optional variants: the default when the key is absent (or JSON null).
  StatusOr<int64_t> Int(std::string_view key, int64_t def) const;
  StatusOr<double> Double(std::string_view key, double def) const;
  StatusOr<bool> Bool(std::string_view key, bool def) const;
  const io::MetaValue* Find(std::string_view key) const;

 private:
  const io::TensorSource& source_;
};

struct ArchSpec {
  Arch arch;
  const char* gguf_name;                   // general.architecture
  std::vector<std::string_view> hf_types;  // config.json model_type values
  // Hugging Face tensor names that differ between architectures.
  const char* hf_ffn_norm;        // FFN pre-norm: "post_attention_layernorm" (Llama) …
  const char* hf_post_attn_norm;  // Gemma: "post_attention_layernorm"; nullptr if none
  bool hf_tied_default;           // tie_word_embeddings when config.json omits it
  // Architecture-specific fields, after the common keys are read (cfg pre-filled).
  Status (*read_gguf)(const MetaReader& meta, ModelConfig* cfg);
  Status (*read_hf)(const MetaReader& meta, ModelConfig* cfg);
};

const ArchSpec& LlamaSpec();
const ArchSpec& Qwen2Spec();
const ArchSpec& Qwen3Spec();
const ArchSpec& Gemma3Spec();
const std::vector<const ArchSpec*>& AllArchSpecs();
const ArchSpec& SpecFor(Arch arch);

// Shared helpers for arch readers.
// Hugging Face RoPE settings: transformers >= 5 "rope_parameters" (flat, or nested per layer
// type such as "full_attention"), else the older rope_theta + rope_scaling.* keys (rope_type /
// type, factor, low/high_freq_factor, original_max_position_embeddings). Unknown types →
// Unimplemented.
Status ReadHfRope(const MetaReader& meta, const std::string& layer_type, float* theta,
                  RopeScaling* scaling);
Status ReadHfRopeScaling(const MetaReader& meta, const std::string& prefix, RopeScaling* out);
// GGUF <arch>.rope.scaling.* (type none/linear, factor) → RopeScaling.
Status ReadGgufRopeScaling(const MetaReader& meta, std::string_view arch, RopeScaling* out);

}  // namespace kiln::model
