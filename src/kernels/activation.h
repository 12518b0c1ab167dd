// Contract for the gated feed-forward activations: out[i] = act(gate[i]) * up[i].
//   kSilu:     x / (1 + exp(-x))                                   (Llama, Qwen: SwiGLU)
//   kGeluTanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))    (Gemma: GeGLU, "gelu_pytorch_tanh")
// Aliasing: out may equal gate or up. Accumulation: float (ref computes in double).
#pragma once

#include <cstdint>

namespace kiln::kernels {

//   kGeluTanhF16Table: kGeluTanh as ggml's CPU computes it (what GGUF models are judged by):
//              x <= -10 → 0, x >= 10 → x, else the float formula evaluated at x rounded to
//              f16, the result rounded to f16 (ggml reads it from a 64K-entry f16 table).
enum class Activation { kSilu, kGeluTanh, kGeluTanhF16Table };

}  // namespace kiln::kernels

namespace kiln::kernels::ref {

float Silu(float x);
float GeluTanh(float x);
float GeluTanhF16Table(float x);
void GatedActivation(Activation act, const float* gate, const float* up, int64_t n, float* out);
// Residual add: x[i] += y[i].
void Add(float* x, const float* y, int64_t n);

}  // namespace kiln::kernels::ref
