// Llama family: Llama 2 / 3.x (llama3 rope scaling), Mistral, SmolLM, TinyLlama.
#include "model/archs/arch.h"

namespace kiln::model {
namespace {

// llama.cpp's converter permutes Llama Q/K rows so GGUF files use interleaved-pair RoPE; the
// scaling of Llama 3.x GGUF files comes as the rope_freqs tensor (see weights.cc).
Status ReadGguf(const MetaReader& meta, ModelConfig* cfg) {
  cfg->rope_style = RopeStyle::kInterleaved;
  return Status::Ok();
}

Status ReadHf(const MetaReader& meta, ModelConfig* cfg) {
  cfg->rope_style = RopeStyle::kNeox;
  KILN_ASSIGN_OR_RETURN(bool bias, meta.Bool("attention_bias", false));
  if (bias) return Unimplemented("Llama attention_bias (output projection bias) is not supported");
  KILN_ASSIGN_OR_RETURN(bool mlp_bias, meta.Bool("mlp_bias", false));
  if (mlp_bias) return Unimplemented("Llama mlp_bias is not supported");
  // Mistral v0.1 attends within a window on every layer; later versions set it to null.
  KILN_ASSIGN_OR_RETURN(int64_t window, meta.Int("sliding_window", 0));
  if (window > 0 && window < cfg->context_length) {
    cfg->sliding_window = static_cast<int32_t>(window);
    cfg->layer_sliding.assign(cfg->n_layers, true);
  }
  return Status::Ok();
}

}  // namespace

const ArchSpec& LlamaSpec() {
  static const ArchSpec spec{Arch::kLlama, "llama", {"llama", "mistral"}, "post_attention_layernorm",
                             nullptr, false, ReadGguf, ReadHf};
  return spec;
}

}  // namespace kiln::model
