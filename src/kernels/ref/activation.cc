// Scalar reference gated activations (SwiGLU, GeGLU-tanh, ggml's table GELU).
#include <cmath>
#include <numbers>
#include <vector>

#include "kernels/activation.h"
#include "tensor/fp16.h"

namespace kiln::kernels::ref {

float Silu(float x) { return static_cast<float>(x / (1.0 + std::exp(-static_cast<double>(x)))); }

float GeluTanh(float x) {
  const double d = x;
  const double k = std::sqrt(2.0 / std::numbers::pi);
  return static_cast<float>(0.5 * d * (1.0 + std::tanh(k * (d + 0.044715 * d * d * d))));
}

namespace {

// ggml's GELU in float arithmetic (the values its f16 table holds, before rounding).
float GeluTanhFloat(float x) {
  constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
  constexpr float kCoefA = 0.044715f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + kCoefA * x * x)));
}

}  // namespace

float GeluTanhF16Table(float x) {
  if (x <= -10.0f) return 0.0f;
  if (x >= 10.0f) return x;
  static const std::vector<uint16_t> table = [] {
    std::vector<uint16_t> t(1 << 16);
    for (uint32_t h = 0; h < t.size(); ++h) {
      t[h] = Fp32ToFp16(GeluTanhFloat(Fp16ToFp32(static_cast<uint16_t>(h))));
    }
    return t;
  }();
  return Fp16ToFp32(table[Fp32ToFp16(x)]);
}

void GatedActivation(Activation act, const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float a = act == Activation::kSilu       ? Silu(gate[i])
                    : act == Activation::kGeluTanh ? GeluTanh(gate[i])
                                                   : GeluTanhF16Table(gate[i]);
    out[i] = a * up[i];
  }
}

void Add(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace kiln::kernels::ref
