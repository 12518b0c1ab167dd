// Scalar reference gated activations (SwiGLU, GeGLU-tanh).
#include <cmath>
#include <numbers>

#include "kernels/activation.h"

namespace kiln::kernels::ref {

float Silu(float x) { return static_cast<float>(x / (1.0 + std::exp(-static_cast<double>(x)))); }

float GeluTanh(float x) {
  const double d = x;
  const double k = std::sqrt(2.0 / std::numbers::pi);
  return static_cast<float>(0.5 * d * (1.0 + std::tanh(k * (d + 0.044715 * d * d * d))));
}

void GatedActivation(Activation act, const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float a = act == Activation::kSilu ? Silu(gate[i]) : GeluTanh(gate[i]);
    out[i] = a * up[i];
  }
}

}  // namespace kiln::kernels::ref
