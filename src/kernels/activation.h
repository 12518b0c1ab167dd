// Contract for the gated feed-forward activations: out[i] = act(gate[i]) * up[i].
//   kSilu:     x / (1 + exp(-x))                                   (Llama, Qwen: SwiGLU)
//   kGeluTanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))    (Gemma: GeGLU, "gelu_pytorch_tanh")
// Aliasing: out may equal gate or up. Accumulation: float (ref computes in double).
#pragma once

#include <cstdint>

namespace kiln::kernels {

enum class Activation { kSilu, kGeluTanh };

}  // namespace kiln::kernels

namespace kiln::kernels::ref {

float Silu(float x);
float GeluTanh(float x);
void GatedActivation(Activation act, const float* gate, const float* up, int64_t n, float* out);

}  // namespace kiln::kernels::ref
