// Weights: per-layer tensor views resolved by name from a TensorSource, for both GGUF
// (llama.cpp) and Hugging Face naming, with shapes checked against the ModelConfig. Matrices
// stay in the source's mmap; only small vectors (norms, biases) that are not f32 in the file
// are converted into owned f32 copies.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "base/status.h"
#include "io/tensor_source.h"
#include "model/config.h"

namespace kiln::model {

struct LayerWeights {
  const float* attn_norm = nullptr;       // [n_embd]
  backend::Matrix wq, wk, wv, wo;         // [n_heads*hd, n_embd], [kv*hd, n_embd] x2, [n_embd, n_heads*hd]
  const float* bq = nullptr;              // qkv_bias: [n_heads*hd], [kv*hd], [kv*hd]
  const float* bk = nullptr;
  const float* bv = nullptr;
  const float* q_norm = nullptr;          // qk_norm: [head_dim]
  const float* k_norm = nullptr;
  const float* post_attn_norm = nullptr;  // post_norms: [n_embd]
  const float* ffn_norm = nullptr;        // [n_embd]
  backend::Matrix w_gate, w_up, w_down;   // [n_ff, n_embd] x2, [n_embd, n_ff]
  const float* post_ffn_norm = nullptr;   // post_norms: [n_embd]
};

// Immutable after Load; valid while the TensorSource lives.
class Weights {
 public:
  // NotFound naming a missing tensor; InvalidArgument naming a tensor with the wrong shape;
  // Unimplemented naming a tensor whose dtype the backend cannot compute with.
  static StatusOr<std::unique_ptr<Weights>> Load(const io::TensorSource& source,
                                                 const ModelConfig& cfg, backend::Backend& be);

  backend::Matrix token_embd;  // [n_vocab, n_embd]
  backend::Matrix output;      // [n_vocab, n_embd]; == token_embd when tied
  const float* output_norm = nullptr;
  const float* rope_freqs = nullptr;  // GGUF rope_freqs.weight [head_dim/2] (llama3 scaling), or null
  std::vector<LayerWeights> layers;

 private:
  Weights() = default;
  std::vector<std::unique_ptr<float[]>> owned_;  // converted vectors
  friend class WeightsLoader;
};

}  // namespace kiln::model
