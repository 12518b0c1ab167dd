// ModelConfig: every hyperparameter and per-architecture behaviour of a decoder-only
// transformer, as data. ConfigFromSource reads it from GGUF keys or a Hugging Face
// config.json through one table row per architecture (archs/<arch>.cc); the forward pass
// branches on these fields, never on architecture names.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "base/status.h"
#include "io/tensor_source.h"

namespace kiln::model {

enum class Arch { kLlama, kQwen2, kQwen3, kGemma3 };

using backend::Activation;
using backend::RopeScaling;
using backend::RopeScalingType;
using backend::RopeStyle;

const char* ArchName(Arch arch);

struct ModelConfig {
  Arch arch = Arch::kLlama;
  io::SourceFormat format = io::SourceFormat::kGguf;

  int64_t n_vocab = 0;
  int n_embd = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_heads_kv = 0;
  int head_dim = 0;
  int n_ff = 0;
  int32_t context_length = 0;  // trained context

  float norm_eps = 1e-5f;
  // Added to every RMSNorm weight: 1 for Hugging Face Gemma (x * (1 + w)), 0 otherwise
  // (llama.cpp's converter stores Gemma's weights as 1 + w already).
  float norm_weight_offset = 0.0f;

  // RoPE. Global (full-attention) layers use rope_theta + rope_scaling; sliding-window layers
  // use rope_theta_local without scaling (Gemma 3: 10000).
  float rope_theta = 10000.0f;
  float rope_theta_local = 10000.0f;
  bool local_rope = false;  // sliding layers use rope_theta_local (Gemma 3); else rope_theta
  RopeScaling rope_scaling;
  // Pair layout of Q/K for RoPE; depends on the format for Llama (GGUF rows are permuted).
  RopeStyle rope_style = RopeStyle::kNeox;

  // Sliding-window attention: layer_sliding[il] true → attends to the last `sliding_window`
  // positions only. Empty or all false: every layer is global.
  std::vector<bool> layer_sliding;
  int32_t sliding_window = 0;

  bool tied_embeddings = false;  // output head = token embedding table
  bool qkv_bias = false;         // Qwen2
  bool qk_norm = false;          // Qwen3, Gemma 3: RMSNorm over each head of q and k before RoPE
  bool post_norms = false;       // Gemma 3: RMSNorm on attention and FFN outputs before the residual
  float embedding_scale = 1.0f;  // Gemma: sqrt(n_embd)
  Activation activation = Activation::kSilu;
  float attention_scale = 0.0f;  // multiplies q.k; default 1/sqrt(head_dim)
  // Reproduce llama.cpp's CPU rounding where it differs from exact f32 math (GGUF sources, so
  // greedy decoding agrees with llama.cpp): f16 q and softmax probabilities against an f16 KV
  // cache (backend::AttentionParams::round_qp_to_kv_dtype).
  bool ggml_attention_rounding = false;

  bool IsSliding(int layer) const {
    return layer < static_cast<int>(layer_sliding.size()) && layer_sliding[layer];
  }
  // InvalidArgument naming the first inconsistent field.
  Status Validate() const;
  std::string DebugString() const;
};

// Reads the configuration from a GGUF file's metadata or a Hugging Face folder's config.json
// (TensorSource::metadata()). InvalidArgument / Unimplemented with the offending key named.
StatusOr<ModelConfig> ConfigFromSource(const io::TensorSource& source);

}  // namespace kiln::model
