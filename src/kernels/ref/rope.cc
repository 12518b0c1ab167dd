// Scalar reference RoPE and its frequency table (plain / linear / llama3 scaling).
#include <cmath>
#include <numbers>

#include "base/check.h"
#include "kernels/rope.h"

namespace kiln::kernels::ref {
namespace {

// Llama 3.x's "llama3" rope_type: long wavelengths are slowed by `factor`, short ones kept,
// the band between is interpolated (published with Llama 3.1; same as transformers' version).
double Llama3Adjust(double inv_freq, const RopeScaling& s) {
  const double low_freq_wavelen = s.original_context / static_cast<double>(s.low_freq_factor);
  const double high_freq_wavelen = s.original_context / static_cast<double>(s.high_freq_factor);
  const double wavelen = 2.0 * std::numbers::pi / inv_freq;
  if (wavelen < high_freq_wavelen) return inv_freq;
  if (wavelen > low_freq_wavelen) return inv_freq / s.factor;
  const double smooth = (s.original_context / wavelen - s.low_freq_factor) /
                        (static_cast<double>(s.high_freq_factor) - s.low_freq_factor);
  return (1.0 - smooth) * inv_freq / s.factor + smooth * inv_freq;
}

}  // namespace

void RopeInvFreq(int head_dim, float theta, const RopeScaling& scaling, const float* freq_factors,
                 float* inv_freq) {
  KILN_CHECK(head_dim > 0 && head_dim % 2 == 0) << "head_dim " << head_dim;
  for (int i = 0; i < head_dim / 2; ++i) {
    double f = 1.0 / std::pow(static_cast<double>(theta), 2.0 * i / head_dim);
    switch (scaling.type) {
      case RopeScalingType::kNone: break;
      case RopeScalingType::kLinear: f /= scaling.factor; break;
      case RopeScalingType::kLlama3: f = Llama3Adjust(f, scaling); break;
    }
    if (freq_factors != nullptr) f /= freq_factors[i];
    inv_freq[i] = static_cast<float>(f);
  }
}

void Rope(float* x, int n_heads, int head_dim, const float* inv_freq, int32_t pos,
          RopeStyle style) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const float angle = static_cast<float>(pos) * inv_freq[i];
    const double c = std::cos(static_cast<double>(angle));
    const double s = std::sin(static_cast<double>(angle));
    const int i0 = style == RopeStyle::kInterleaved ? 2 * i : i;
    const int i1 = style == RopeStyle::kInterleaved ? 2 * i + 1 : i + half;
    for (int h = 0; h < n_heads; ++h) {
      float* v = x + static_cast<int64_t>(h) * head_dim;
      const double a = v[i0], b = v[i1];
      v[i0] = static_cast<float>(a * c - b * s);
      v[i1] = static_cast<float>(a * s + b * c);
    }
  }
}

}  // namespace kiln::kernels::ref
