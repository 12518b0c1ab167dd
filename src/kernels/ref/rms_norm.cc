// Scalar reference RMSNorm: the oracle for every fast twin.
#include <cmath>

#include "kernels/norm.h"

namespace kiln::kernels::ref {

void RmsNorm(const float* x, const float* w, float w_offset, float eps, int64_t n, float* out) {
  double sum_sq = 0.0;
  for (int64_t i = 0; i < n; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
  const float inv_rms = static_cast<float>(1.0 / std::sqrt(sum_sq / static_cast<double>(n) + eps));
  for (int64_t i = 0; i < n; ++i) out[i] = x[i] * inv_rms * (w[i] + w_offset);
}

}  // namespace kiln::kernels::ref
