// ModelConfig: common GGUF / config.json keys, validation, and the architecture table lookup.
#include "model/config.h"

#include <cmath>
#include <string_view>

#include "model/archs/arch.h"

namespace kiln::model {
namespace {

// Upper bounds against hostile files (far above any real model).
constexpr int kMaxLayers = 4096;
constexpr int64_t kMaxDim = int64_t{1} << 20;
constexpr int64_t kMaxVocab = int64_t{1} << 24;

StatusOr<int> SmallInt(StatusOr<int64_t> v, const char* what, int64_t max) {
  if (!v.ok()) return v.status();
  if (*v <= 0 || *v > max) return InvalidArgument("%s = %lld is out of range (1..%lld)", what,
                                                  static_cast<long long>(*v),
                                                  static_cast<long long>(max));
  return static_cast<int>(*v);
}

std::string Key(std::string_view prefix, std::string_view suffix) {
  std::string k(prefix);
  k += '.';
  k += suffix;
  return k;
}

// GGUF head counts may be per-layer arrays; kiln supports one value for every layer.
StatusOr<int64_t> UniformInt(const MetaReader& meta, const std::string& key, int64_t def) {
  const io::MetaValue* v = meta.Find(key);
  if (v == nullptr) return def;
  if (v->type != io::MetaValue::Type::kArray) return meta.Int(key);
  if (v->array.empty()) return InvalidArgument("'%s' is an empty array", key.c_str());
  KILN_ASSIGN_OR_RETURN(int64_t first, v->array[0].AsInt(key));
  for (const io::MetaValue& e : v->array) {
    KILN_ASSIGN_OR_RETURN(int64_t x, e.AsInt(key));
    if (x != first) return Unimplemented("'%s' differs between layers", key.c_str());
  }
  return first;
}

Status ReadGgufCommon(const MetaReader& meta, const ArchSpec& spec, ModelConfig* cfg) {
  const std::string a = spec.gguf_name;
  cfg->ggml_attention_rounding = true;  // judged against llama.cpp (config.h)
  KILN_ASSIGN_OR_RETURN(cfg->n_layers, SmallInt(meta.Int(Key(a, "block_count")), "block_count", kMaxLayers));
  KILN_ASSIGN_OR_RETURN(cfg->n_embd, SmallInt(meta.Int(Key(a, "embedding_length")), "embedding_length", kMaxDim));
  KILN_ASSIGN_OR_RETURN(cfg->n_ff, SmallInt(UniformInt(meta, Key(a, "feed_forward_length"), -1), "feed_forward_length", kMaxDim));
  KILN_ASSIGN_OR_RETURN(cfg->n_heads, SmallInt(UniformInt(meta, Key(a, "attention.head_count"), -1), "attention.head_count", kMaxDim));
  KILN_ASSIGN_OR_RETURN(cfg->n_heads_kv, SmallInt(UniformInt(meta, Key(a, "attention.head_count_kv"), cfg->n_heads), "attention.head_count_kv", kMaxDim));
  KILN_ASSIGN_OR_RETURN(cfg->head_dim, SmallInt(meta.Int(Key(a, "attention.key_length"), cfg->n_embd / cfg->n_heads), "attention.key_length", kMaxDim));
  KILN_ASSIGN_OR_RETURN(int64_t v_len, meta.Int(Key(a, "attention.value_length"), cfg->head_dim));
  if (v_len != cfg->head_dim) {
    return Unimplemented("attention.value_length %lld != key_length %d", static_cast<long long>(v_len), cfg->head_dim);
  }
  KILN_ASSIGN_OR_RETURN(int64_t n_rot, meta.Int(Key(a, "rope.dimension_count"), cfg->head_dim));
  if (n_rot != cfg->head_dim) {
    return Unimplemented("partial rotary embeddings (rope.dimension_count %lld, head_dim %d)", static_cast<long long>(n_rot), cfg->head_dim);
  }
  KILN_ASSIGN_OR_RETURN(double eps, meta.Double(Key(a, "attention.layer_norm_rms_epsilon")));
  cfg->norm_eps = static_cast<float>(eps);
  KILN_ASSIGN_OR_RETURN(double theta, meta.Double(Key(a, "rope.freq_base"), 10000.0));
  cfg->rope_theta = static_cast<float>(theta);
  KILN_ASSIGN_OR_RETURN(int64_t ctx, meta.Int(Key(a, "context_length"), 2048));
  cfg->context_length = static_cast<int32_t>(std::min<int64_t>(ctx, INT32_MAX));
  KILN_RETURN_IF_ERROR(ReadGgufRopeScaling(meta, a, &cfg->rope_scaling));

  // Vocabulary: the explicit key, else the tokenizer's list, else the embedding table.
  if (meta.Has(Key(a, "vocab_size"))) {
    KILN_ASSIGN_OR_RETURN(cfg->n_vocab, meta.Int(Key(a, "vocab_size")));
  } else if (const io::MetaValue* toks = meta.Find("tokenizer.ggml.tokens");
             toks != nullptr && toks->type == io::MetaValue::Type::kArray) {
    cfg->n_vocab = static_cast<int64_t>(toks->array.size());
  } else if (const io::TensorInfo* emb = meta.source().FindTensor("token_embd.weight");
             emb != nullptr && emb->shape.size() == 2) {
    cfg->n_vocab = emb->shape[0];
  }
  cfg->tied_embeddings = meta.source().FindTensor("output.weight") == nullptr;
  cfg->qkv_bias = meta.source().FindTensor("blk.0.attn_q.bias") != nullptr;
  return Status::Ok();
}

Status ReadHfCommon(const MetaReader& meta, ModelConfig* cfg) {
  KILN_ASSIGN_OR_RETURN(cfg->n_layers, SmallInt(meta.Int("num_hidden_layers"), "num_hidden_layers", kMaxLayers));
  KILN_ASSIGN_OR_RETURN(cfg->n_embd, SmallInt(meta.Int("hidden_size"), "hidden_size", kMaxDim));
  KILN_ASSIGN_OR_RETURN(cfg->n_ff, SmallInt(meta.Int("intermediate_size"), "intermediate_size", kMaxDim));
  KILN_ASSIGN_OR_RETURN(cfg->n_heads, SmallInt(meta.Int("num_attention_heads"), "num_attention_heads", kMaxDim));
  KILN_ASSIGN_OR_RETURN(cfg->n_heads_kv, SmallInt(meta.Int("num_key_value_heads", cfg->n_heads), "num_key_value_heads", kMaxDim));
  KILN_ASSIGN_OR_RETURN(cfg->head_dim, SmallInt(meta.Int("head_dim", cfg->n_embd / cfg->n_heads), "head_dim", kMaxDim));
  KILN_ASSIGN_OR_RETURN(cfg->n_vocab, meta.Int("vocab_size"));
  KILN_ASSIGN_OR_RETURN(double eps, meta.Double("rms_norm_eps", 1e-6));
  cfg->norm_eps = static_cast<float>(eps);
  KILN_RETURN_IF_ERROR(ReadHfRope(meta, "full_attention", &cfg->rope_theta, &cfg->rope_scaling));
  KILN_ASSIGN_OR_RETURN(int64_t ctx, meta.Int("max_position_embeddings", 2048));
  cfg->context_length = static_cast<int32_t>(std::min<int64_t>(ctx, INT32_MAX));
  KILN_ASSIGN_OR_RETURN(cfg->tied_embeddings, meta.Bool("tie_word_embeddings", cfg->tied_embeddings));
  KILN_ASSIGN_OR_RETURN(double partial, meta.Double("partial_rotary_factor", 1.0));
  if (partial != 1.0) return Unimplemented("partial_rotary_factor %g", partial);
  return Status::Ok();
}

StatusOr<const ArchSpec*> FindSpec(const MetaReader& meta, io::SourceFormat format) {
  if (format == io::SourceFormat::kGguf) {
    KILN_ASSIGN_OR_RETURN(std::string name, meta.String("general.architecture"));
    for (const ArchSpec* s : AllArchSpecs()) {
      if (name == s->gguf_name) return s;
    }
    return Unimplemented("GGUF architecture '%s' is not supported", name.c_str());
  }
  KILN_ASSIGN_OR_RETURN(std::string type, meta.String("model_type"));
  for (const ArchSpec* s : AllArchSpecs()) {
    for (std::string_view t : s->hf_types) {
      if (type == t) return s;
    }
  }
  return Unimplemented("Hugging Face model_type '%s' is not supported", type.c_str());
}

}  // namespace

const char* ArchName(Arch arch) { return SpecFor(arch).gguf_name; }

StatusOr<ModelConfig> ConfigFromSource(const io::TensorSource& source) {
  MetaReader meta(source);
  ModelConfig cfg;
  cfg.format = source.format();
  KILN_ASSIGN_OR_RETURN(const ArchSpec* spec, FindSpec(meta, cfg.format));
  cfg.arch = spec->arch;
  if (cfg.format == io::SourceFormat::kGguf) {
    KILN_RETURN_IF_ERROR(ReadGgufCommon(meta, *spec, &cfg));
    KILN_RETURN_IF_ERROR(spec->read_gguf(meta, &cfg));
  } else {
    cfg.tied_embeddings = spec->hf_tied_default;
    KILN_RETURN_IF_ERROR(ReadHfCommon(meta, &cfg));
    KILN_RETURN_IF_ERROR(spec->read_hf(meta, &cfg));
  }
  if (cfg.attention_scale == 0.0f) cfg.attention_scale = 1.0f / std::sqrt(static_cast<float>(cfg.head_dim));
  KILN_RETURN_IF_ERROR(cfg.Validate());
  return cfg;
}

Status ModelConfig::Validate() const {
  auto bad = [](const char* what, long long v) {
    return InvalidArgument("invalid model config: %s = %lld", what, v);
  };
  if (n_layers <= 0 || n_layers > kMaxLayers) return bad("n_layers", n_layers);
  if (n_embd <= 0) return bad("n_embd", n_embd);
  if (n_heads <= 0) return bad("n_heads", n_heads);
  if (n_heads_kv <= 0 || n_heads % n_heads_kv != 0) {
    return InvalidArgument("invalid model config: n_heads %d is not a multiple of n_heads_kv %d", n_heads, n_heads_kv);
  }
  if (head_dim <= 0 || head_dim % 2 != 0 || head_dim > backend::kMaxHeadDim) return bad("head_dim", head_dim);
  if (n_ff <= 0) return bad("n_ff", n_ff);
  if (n_vocab <= 0 || n_vocab > kMaxVocab) return bad("n_vocab", n_vocab);
  if (context_length <= 0) return bad("context_length", context_length);
  if (!(norm_eps > 0.0f) || !std::isfinite(norm_eps)) return InvalidArgument("invalid model config: norm eps %g", norm_eps);
  if (!(rope_theta > 0.0f) || !(rope_theta_local > 0.0f)) return InvalidArgument("invalid model config: rope theta %g / %g", rope_theta, rope_theta_local);
  if (rope_scaling.type != RopeScalingType::kNone && !(rope_scaling.factor > 0.0f)) {
    return InvalidArgument("invalid model config: rope scaling factor %g", rope_scaling.factor);
  }
  if (rope_scaling.type == RopeScalingType::kLlama3 &&
      (!(rope_scaling.high_freq_factor > rope_scaling.low_freq_factor) || rope_scaling.low_freq_factor <= 0 || rope_scaling.original_context <= 0)) {
    return InvalidArgument("invalid model config: llama3 rope scaling (low %g, high %g, original context %d)",
                           rope_scaling.low_freq_factor, rope_scaling.high_freq_factor, rope_scaling.original_context);
  }
  if (!layer_sliding.empty() && static_cast<int>(layer_sliding.size()) != n_layers) {
    return InvalidArgument("invalid model config: %zu sliding-window flags for %d layers", layer_sliding.size(), n_layers);
  }
  for (bool s : layer_sliding) {
    if (s && sliding_window <= 0) return bad("sliding_window", sliding_window);
  }
  if (!(attention_scale > 0.0f) || !std::isfinite(attention_scale)) return InvalidArgument("invalid model config: attention scale %g", attention_scale);
  if (!std::isfinite(embedding_scale) || embedding_scale <= 0.0f) return InvalidArgument("invalid model config: embedding scale %g", embedding_scale);
  return Status::Ok();
}

std::string ModelConfig::DebugString() const {
  int n_sliding = 0;
  for (bool s : layer_sliding) n_sliding += s;
  return StrFormat("%s (%s): vocab %lld, embd %d, layers %d (%d sliding, window %d), heads %d/%d x %d, ff %d, "
                   "eps %g, rope %s theta %g/%g scaling %d x%g, tied %d, qkv_bias %d, qk_norm %d, post_norms %d, "
                   "emb_scale %g, act %s, attn_scale %g, norm_offset %g, ctx %d",
                   ArchName(arch), format == io::SourceFormat::kGguf ? "gguf" : "hf",
                   static_cast<long long>(n_vocab), n_embd, n_layers, n_sliding, sliding_window, n_heads, n_heads_kv,
                   head_dim, n_ff, norm_eps, rope_style == RopeStyle::kNeox ? "neox" : "interleaved", rope_theta,
                   rope_theta_local, static_cast<int>(rope_scaling.type), rope_scaling.factor, tied_embeddings, qkv_bias,
                   qk_norm, post_norms, embedding_scale, activation == Activation::kSilu ? "silu" : "gelu_tanh",
                   attention_scale, norm_weight_offset, context_length);
}

}  // namespace kiln::model
