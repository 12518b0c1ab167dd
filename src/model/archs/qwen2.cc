// Qwen2 / Qwen2.5: Llama with biases on the Q, K and V projections; NeoX RoPE in both formats.
#include "model/archs/arch.h"

namespace kiln::model {
namespace {

Status ReadGguf(const MetaReader& meta, ModelConfig* cfg) {
  cfg->rope_style = RopeStyle::kNeox;
  return Status::Ok();
}

Status ReadHf(const MetaReader& meta, ModelConfig* cfg) {
  cfg->rope_style = RopeStyle::kNeox;
  cfg->qkv_bias = true;
  KILN_ASSIGN_OR_RETURN(bool swa, meta.Bool("use_sliding_window", false));
  if (swa) return Unimplemented("Qwen2 use_sliding_window is not supported");
  return Status::Ok();
}

}  // namespace

const ArchSpec& Qwen2Spec() {
  static const ArchSpec spec{Arch::kQwen2, "qwen2", {"qwen2"}, "post_attention_layernorm", nullptr,
                             false, ReadGguf, ReadHf};
  return spec;
}

}  // namespace kiln::model
