// Gemma 3 (text): (1 + w) RMSNorms, pre and post norms around attention and FFN, QK-norm,
// GeGLU-tanh, embeddings scaled by sqrt(n_embd), and interleaved sliding-window (local, rope
// base 10000) and global layers (rope_theta, with the model's rope scaling).
#include <cmath>

#include "model/archs/arch.h"

namespace kiln::model {
namespace {

// Layer il is global iff (il + 1) % pattern == 0 (Gemma 3: pattern 6, five local then one global).
void SetPattern(int pattern, ModelConfig* cfg) {
  cfg->layer_sliding.assign(cfg->n_layers, true);
  for (int il = 0; il < cfg->n_layers; ++il) {
    cfg->layer_sliding[il] = pattern <= 0 ? false : (il + 1) % pattern != 0;
  }
}

void SetCommon(ModelConfig* cfg) {
  cfg->rope_style = RopeStyle::kNeox;
  cfg->local_rope = true;
  cfg->qk_norm = true;
  cfg->post_norms = true;
  cfg->activation = Activation::kGeluTanh;
  cfg->embedding_scale = std::sqrt(static_cast<float>(cfg->n_embd));
}

StatusOr<int32_t> Window(const MetaReader& meta, const char* key) {
  KILN_ASSIGN_OR_RETURN(int64_t w, meta.Int(key));
  if (w <= 0 || w > INT32_MAX) return InvalidArgument("'%s' = %lld is out of range", key, static_cast<long long>(w));
  return static_cast<int32_t>(w);
}

// llama.cpp's gemma3: pattern 6, local rope base 10000, no local scaling; the converter
// already stored norm weights as 1 + w, so no offset here.
Status ReadGguf(const MetaReader& meta, ModelConfig* cfg) {
  SetCommon(cfg);
  cfg->activation = Activation::kGeluTanhF16Table;  // llama.cpp's CPU GELU (activation.h)  // llama.cpp's CPU GELU (activation.h)
  cfg->norm_weight_offset = 0.0f;
  cfg->rope_theta_local = 10000.0f;
  KILN_ASSIGN_OR_RETURN(cfg->sliding_window, Window(meta, "gemma3.attention.sliding_window"));
  KILN_ASSIGN_OR_RETURN(int64_t pattern, meta.Int("gemma3.attention.sliding_window_pattern", 6));
  SetPattern(static_cast<int>(pattern), cfg);
  // Gemma 3 27B scales queries by (n_embd / n_heads)^-0.5, the others by head_dim^-0.5.
  const int scalar = cfg->n_layers == 62 ? cfg->n_embd / cfg->n_heads : cfg->head_dim;
  cfg->attention_scale = 1.0f / std::sqrt(static_cast<float>(scalar));
  return Status::Ok();
}

Status ReadHf(const MetaReader& meta, ModelConfig* cfg) {
  SetCommon(cfg);
  cfg->norm_weight_offset = 1.0f;
  if (meta.Has("hidden_activation")) {
    KILN_ASSIGN_OR_RETURN(std::string act, meta.String("hidden_activation"));
    if (act != "gelu_pytorch_tanh" && act != "gelu_tanh") {
      return Unimplemented("Gemma 3 hidden_activation '%s' is not supported", act.c_str());
    }
  }
  for (const char* cap : {"final_logit_softcapping", "attn_logit_softcapping"}) {
    if (meta.Has(cap)) return Unimplemented("Gemma 3 %s is not supported", cap);
  }
  KILN_ASSIGN_OR_RETURN(bool bias, meta.Bool("attention_bias", false));
  if (bias) return Unimplemented("Gemma 3 attention_bias is not supported");
  if (meta.Has("rope_parameters.sliding_attention.rope_theta")) {  // transformers >= 5
    RopeScaling local_scaling;
    KILN_RETURN_IF_ERROR(ReadHfRope(meta, "sliding_attention", &cfg->rope_theta_local, &local_scaling));
    if (local_scaling.type != RopeScalingType::kNone) {
      return Unimplemented("Gemma 3 rope scaling on sliding-window layers is not supported");
    }
  } else {
    KILN_ASSIGN_OR_RETURN(double local, meta.Double("rope_local_base_freq", 10000.0));
    cfg->rope_theta_local = static_cast<float>(local);
  }
  KILN_ASSIGN_OR_RETURN(double scalar, meta.Double("query_pre_attn_scalar", cfg->head_dim));
  if (!(scalar > 0)) return InvalidArgument("query_pre_attn_scalar %g", scalar);
  cfg->attention_scale = static_cast<float>(1.0 / std::sqrt(scalar));
  KILN_ASSIGN_OR_RETURN(cfg->sliding_window, Window(meta, "sliding_window"));
  if (const io::MetaValue* types = meta.Find("layer_types"); types != nullptr) {
    if (types->type != io::MetaValue::Type::kArray || static_cast<int>(types->array.size()) != cfg->n_layers) {
      return InvalidArgument("layer_types must list one type per layer (%d)", cfg->n_layers);
    }
    cfg->layer_sliding.assign(cfg->n_layers, false);
    for (int il = 0; il < cfg->n_layers; ++il) {
      const std::string& t = types->array[il].s;
      if (t == "sliding_attention") {
        cfg->layer_sliding[il] = true;
      } else if (t != "full_attention") {
        return InvalidArgument("layer_types[%d] = '%s' is not a known attention type", il, t.c_str());
      }
    }
  } else {
    KILN_ASSIGN_OR_RETURN(int64_t pattern, meta.Int("sliding_window_pattern", 6));
    SetPattern(static_cast<int>(pattern), cfg);
  }
  return Status::Ok();
}

}  // namespace

const ArchSpec& Gemma3Spec() {
  static const ArchSpec spec{Arch::kGemma3, "gemma3", {"gemma3_text"}, "pre_feedforward_layernorm",
                             "post_attention_layernorm", true, ReadGguf, ReadHf};
  return spec;
}

}  // namespace kiln::model
