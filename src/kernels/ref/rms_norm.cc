// Scalar reference RMSNorm: the oracle for every fast twin.
#include <cmath>
#include <cstdlib>

#include "kernels/norm.h"

namespace kiln::kernels::ref {

void RmsNorm(const float* x, const float* w, float w_offset, float eps, int64_t n, float* out) {
  if (std::getenv("PARITY_GGML_NORM")) {  // TEMP
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
    const float mean = static_cast<float>(sum / static_cast<double>(n));
    const float scale = 1.0f / std::sqrt(mean + eps);
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] * scale * (w[i] + w_offset);
    return;
  }
  double sum_sq = 0.0;
  for (int64_t i = 0; i < n; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
  const float inv_rms = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv_rms * (w[i] + w_offset);
}

}  // namespace kiln::kernels::ref
