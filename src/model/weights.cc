// Tensor-name tables for GGUF and Hugging Face files, shape checks, vector conversion.
#include "model/weights.h"

#include <cstring>

#include "model/archs/arch.h"

namespace kiln::model {

enum class Role {
  kAttnNorm, kQ, kK, kV, kO, kQBias, kKBias, kVBias, kQNorm, kKNorm, kPostAttnNorm,
  kFfnNorm, kGate, kUp, kDown, kPostFfnNorm,
};

namespace {

std::string GgufName(Role role, int il) {
  const char* suffix = "";
  switch (role) {
    case Role::kAttnNorm: suffix = "attn_norm.weight"; break;
    case Role::kQ: suffix = "attn_q.weight"; break;
    case Role::kK: suffix = "attn_k.weight"; break;
    case Role::kV: suffix = "attn_v.weight"; break;
    case Role::kO: suffix = "attn_output.weight"; break;
    case Role::kQBias: suffix = "attn_q.bias"; break;
    case Role::kKBias: suffix = "attn_k.bias"; break;
    case Role::kVBias: suffix = "attn_v.bias"; break;
    case Role::kQNorm: suffix = "attn_q_norm.weight"; break;
    case Role::kKNorm: suffix = "attn_k_norm.weight"; break;
    case Role::kPostAttnNorm: suffix = "post_attention_norm.weight"; break;
    case Role::kFfnNorm: suffix = "ffn_norm.weight"; break;
    case Role::kGate: suffix = "ffn_gate.weight"; break;
    case Role::kUp: suffix = "ffn_up.weight"; break;
    case Role::kDown: suffix = "ffn_down.weight"; break;
    case Role::kPostFfnNorm: suffix = "post_ffw_norm.weight"; break;
  }
  return StrFormat("blk.%d.%s", il, suffix);
}

std::string HfName(const ArchSpec& spec, Role role, int il) {
  const char* suffix = "";
  switch (role) {
    case Role::kAttnNorm: suffix = "input_layernorm.weight"; break;
    case Role::kQ: suffix = "self_attn.q_proj.weight"; break;
    case Role::kK: suffix = "self_attn.k_proj.weight"; break;
    case Role::kV: suffix = "self_attn.v_proj.weight"; break;
    case Role::kO: suffix = "self_attn.o_proj.weight"; break;
    case Role::kQBias: suffix = "self_attn.q_proj.bias"; break;
    case Role::kKBias: suffix = "self_attn.k_proj.bias"; break;
    case Role::kVBias: suffix = "self_attn.v_proj.bias"; break;
    case Role::kQNorm: suffix = "self_attn.q_norm.weight"; break;
    case Role::kKNorm: suffix = "self_attn.k_norm.weight"; break;
    case Role::kPostAttnNorm:
      return StrFormat("model.layers.%d.%s.weight", il, spec.hf_post_attn_norm ? spec.hf_post_attn_norm : "?");
    case Role::kFfnNorm: return StrFormat("model.layers.%d.%s.weight", il, spec.hf_ffn_norm);
    case Role::kGate: suffix = "mlp.gate_proj.weight"; break;
    case Role::kUp: suffix = "mlp.up_proj.weight"; break;
    case Role::kDown: suffix = "mlp.down_proj.weight"; break;
    case Role::kPostFfnNorm: suffix = "post_feedforward_layernorm.weight"; break;
  }
  return StrFormat("model.layers.%d.%s", il, suffix);
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace

class WeightsLoader {
 public:
  WeightsLoader(const io::TensorSource& source, const ModelConfig& cfg, backend::Backend& be, Weights* w)
      : source_(source), cfg_(cfg), be_(be), spec_(SpecFor(cfg.arch)), w_(w) {}

  Status LoadAll() {
    const bool gguf = cfg_.format == io::SourceFormat::kGguf;
    const int64_t e = cfg_.n_embd, q_dim = int64_t{cfg_.n_heads} * cfg_.head_dim,
                  kv_dim = int64_t{cfg_.n_heads_kv} * cfg_.head_dim;
    KILN_ASSIGN_OR_RETURN(w_->token_embd, Mat(gguf ? "token_embd.weight" : "model.embed_tokens.weight", cfg_.n_vocab, e));
    KILN_ASSIGN_OR_RETURN(w_->output_norm, Vec(gguf ? "output_norm.weight" : "model.norm.weight", e));
    const char* out_name = gguf ? "output.weight" : "lm_head.weight";
    if (cfg_.tied_embeddings && source_.FindTensor(out_name) == nullptr) {
      w_->output = w_->token_embd;
    } else {
      KILN_ASSIGN_OR_RETURN(w_->output, Mat(out_name, cfg_.n_vocab, e));
    }
    if (gguf && source_.FindTensor("rope_freqs.weight") != nullptr) {
      KILN_ASSIGN_OR_RETURN(w_->rope_freqs, Vec("rope_freqs.weight", cfg_.head_dim / 2));
    }
    w_->layers.resize(cfg_.n_layers);
    for (int il = 0; il < cfg_.n_layers; ++il) {
      LayerWeights& l = w_->layers[il];
      KILN_ASSIGN_OR_RETURN(l.attn_norm, Vec(Name(Role::kAttnNorm, il), e));
      KILN_ASSIGN_OR_RETURN(l.wq, Mat(Name(Role::kQ, il), q_dim, e));
      KILN_ASSIGN_OR_RETURN(l.wk, Mat(Name(Role::kK, il), kv_dim, e));
      KILN_ASSIGN_OR_RETURN(l.wv, Mat(Name(Role::kV, il), kv_dim, e));
      KILN_ASSIGN_OR_RETURN(l.wo, Mat(Name(Role::kO, il), e, q_dim));
      if (cfg_.qkv_bias) {
        KILN_ASSIGN_OR_RETURN(l.bq, Vec(Name(Role::kQBias, il), q_dim));
        KILN_ASSIGN_OR_RETURN(l.bk, Vec(Name(Role::kKBias, il), kv_dim));
        KILN_ASSIGN_OR_RETURN(l.bv, Vec(Name(Role::kVBias, il), kv_dim));
      }
      if (cfg_.qk_norm) {
        KILN_ASSIGN_OR_RETURN(l.q_norm, Vec(Name(Role::kQNorm, il), cfg_.head_dim));
        KILN_ASSIGN_OR_RETURN(l.k_norm, Vec(Name(Role::kKNorm, il), cfg_.head_dim));
      }
      if (cfg_.post_norms) {
        KILN_ASSIGN_OR_RETURN(l.post_attn_norm, Vec(Name(Role::kPostAttnNorm, il), e));
        KILN_ASSIGN_OR_RETURN(l.post_ffn_norm, Vec(Name(Role::kPostFfnNorm, il), e));
      }
      KILN_ASSIGN_OR_RETURN(l.ffn_norm, Vec(Name(Role::kFfnNorm, il), e));
      KILN_ASSIGN_OR_RETURN(l.w_gate, Mat(Name(Role::kGate, il), cfg_.n_ff, e));
      KILN_ASSIGN_OR_RETURN(l.w_up, Mat(Name(Role::kUp, il), cfg_.n_ff, e));
      KILN_ASSIGN_OR_RETURN(l.w_down, Mat(Name(Role::kDown, il), e, cfg_.n_ff));
    }
    // Every matrix of a product in the backend's preferred layout; a tied head stays one
    // matrix (the embedding lookup reads the same bytes).
    const bool tied = w_->output.data == w_->token_embd.data;
    Prepare(&w_->output);
    if (tied) w_->token_embd = w_->output;
    for (LayerWeights& l : w_->layers) {
      for (backend::Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) {
        Prepare(m);
      }
    }
    return Status::Ok();
  }

  // The backend's layout for a product's matrix; when it copied the bytes, the file's pages of
  // the tensor are released so the weights stay resident once, not twice.
  void Prepare(backend::Matrix* m) {
    const uint8_t* before = m->data;
    be_.PrepareMatMulWeight(m);
    if (m->data != before) source_.ReleasePages(before, static_cast<size_t>(m->rows) * m->row_bytes);
  }

 private:
  std::string Name(Role role, int il) const {
    return cfg_.format == io::SourceFormat::kGguf ? GgufName(role, il) : HfName(spec_, role, il);
  }

  StatusOr<const io::TensorInfo*> Find(const std::string& name, std::vector<int64_t> shape) const {
    const io::TensorInfo* t = source_.FindTensor(name);
    if (t == nullptr) return NotFound("model lacks tensor '%s'", name.c_str());
    if (t->shape != shape) {
      return InvalidArgument("tensor '%s' has shape %s, expected %s", name.c_str(),
                             ShapeString(t->shape).c_str(), ShapeString(shape).c_str());
    }
    Status st = be_.CheckWeightType(t->dtype);
    if (!st.ok()) return st.WithContext("tensor '" + name + "'");
    return t;
  }

  StatusOr<backend::Matrix> Mat(const std::string& name, int64_t rows, int64_t cols) const {
    KILN_ASSIGN_OR_RETURN(const io::TensorInfo* t, Find(name, {rows, cols}));
    const std::optional<size_t> row_bytes = RowBytes(t->dtype, cols);
    if (!row_bytes.has_value() || *row_bytes * static_cast<size_t>(rows) != t->n_bytes) {
      return InvalidArgument("tensor '%s': %lld columns do not fit %s blocks", name.c_str(),
                             static_cast<long long>(cols), DTypeName(t->dtype));
    }
    return backend::Matrix{t->dtype, rows, cols, t->data, *row_bytes};
  }

  // f32 vectors are used in place when aligned; anything else is converted once.
  StatusOr<const float*> Vec(const std::string& name, int64_t n) {
    KILN_ASSIGN_OR_RETURN(const io::TensorInfo* t, Find(name, {n}));
    if (t->dtype == DType::kF32 && reinterpret_cast<uintptr_t>(t->data) % alignof(float) == 0) {
      return reinterpret_cast<const float*>(t->data);
    }
    const std::optional<size_t> row_bytes = RowBytes(t->dtype, n);
    if (!row_bytes.has_value() || *row_bytes != t->n_bytes) {
      return InvalidArgument("tensor '%s': %lld elements do not fit %s blocks", name.c_str(),
                             static_cast<long long>(n), DTypeName(t->dtype));
    }
    const backend::Matrix m{t->dtype, 1, n, t->data, *row_bytes};
    auto buf = std::make_unique<float[]>(n);
    const int32_t row0 = 0;
    be_.EmbeddingRows(m, &row0, 1, buf.get());
    w_->owned_.push_back(std::move(buf));
    return w_->owned_.back().get();
  }

  const io::TensorSource& source_;
  const ModelConfig& cfg_;
  backend::Backend& be_;
  const ArchSpec& spec_;
  Weights* w_;
};

StatusOr<std::unique_ptr<Weights>> Weights::Load(const io::TensorSource& source,
                                                 const ModelConfig& cfg, backend::Backend& be) {
  std::unique_ptr<Weights> w(new Weights());
  WeightsLoader loader(source, cfg, be, w.get());
  KILN_RETURN_IF_ERROR(loader.LoadAll());
  return w;
}

}  // namespace kiln::model
