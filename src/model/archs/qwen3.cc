// Qwen3 (dense): RMSNorm over each head of q and k before RoPE, no biases by default.
#include "model/archs/arch.h"

namespace kiln::model {
namespace {

Status ReadGguf(const MetaReader& meta, ModelConfig* cfg) {
  cfg->rope_style = RopeStyle::kNeox;
  cfg->qk_norm = true;
  return Status::Ok();
}

Status ReadHf(const MetaReader& meta, ModelConfig* cfg) {
  cfg->rope_style = RopeStyle::kNeox;
  cfg->qk_norm = true;
  // Qwen3's attention_bias also adds an output-projection bias, which kiln does not carry.
  KILN_ASSIGN_OR_RETURN(bool bias, meta.Bool("attention_bias", false));
  if (bias) return Unimplemented("Qwen3 attention_bias is not supported");
  KILN_ASSIGN_OR_RETURN(bool swa, meta.Bool("use_sliding_window", false));
  if (swa) return Unimplemented("Qwen3 use_sliding_window is not supported");
  return Status::Ok();
}

}  // namespace

const ArchSpec& Qwen3Spec() {
  static const ArchSpec spec{Arch::kQwen3, "qwen3", {"qwen3"}, "post_attention_layernorm", nullptr,
                             false, ReadGguf, ReadHf};
  return spec;
}

}  // namespace kiln::model
