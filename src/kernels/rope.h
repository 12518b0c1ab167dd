// Contract for rotary position embeddings (RoPE).
//
// A head vector of head_dim floats is rotated as head_dim/2 pairs; pair i turns by the angle
// pos * inv_freq[i]. Two layouts of the pairs exist in the wild:
//   kInterleaved: pairs (2i, 2i+1)            ("normal" mode; Llama-family GGUF files, whose
//                                              converter permuted the Q/K rows to this layout)
//   kNeox:        pairs (i, i + head_dim/2)   (Hugging Face rotate_half; Qwen, Gemma everywhere)
// inv_freq comes from RopeInvFreq, computed once per model (not per token).
#pragma once

#include <cstdint>

namespace kiln::kernels {

enum class RopeStyle { kInterleaved, kNeox };

enum class RopeScalingType { kNone, kLinear, kLlama3 };

// Context-extension schemes, as Hugging Face's rope_scaling describes them.
struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  float factor = 1.0f;            // linear and llama3
  float low_freq_factor = 1.0f;   // llama3
  float high_freq_factor = 4.0f;  // llama3
  int32_t original_context = 8192;  // llama3: original_max_position_embeddings
};

}  // namespace kiln::kernels

namespace kiln::kernels::ref {

// inv_freq[i] = theta^(-2i/head_dim) for i < head_dim/2, then adjusted by `scaling`, then
// divided by freq_factors[i] when freq_factors is non-null (GGUF's rope_freqs tensor, which
// carries llama3 scaling precomputed). Computed in double, stored as float. head_dim even.
void RopeInvFreq(int head_dim, float theta, const RopeScaling& scaling, const float* freq_factors,
                 float* inv_freq);

// Rotates x[n_heads][head_dim] in place for one token at position pos. The angle is computed
// in float as pos * inv_freq[i] (as Hugging Face does), then cos/sin in double.
void Rope(float* x, int n_heads, int head_dim, const float* inv_freq, int32_t pos,
          RopeStyle style);

}  // namespace kiln::kernels::ref
