// Contract for RMS normalisation (Llama / Qwen / Gemma style).
//   out[i] = x[i] / sqrt(mean(x^2) + eps) * (w[i] + w_offset)
// w_offset is 0 for weights stored as the multiplier (Llama, Qwen, Gemma in GGUF) and 1 for
// Hugging Face Gemma checkpoints, whose RMSNorm multiplies by (1 + w).
// Accumulation: the mean of squares in double (ref); fast kernels within kMaxRelErrF32 of it.
// Aliasing: out may equal x (in place). No alignment required. n >= 1.
#pragma once

#include <cstdint>

namespace kiln::kernels::ref {

void RmsNorm(const float* x, const float* w, float w_offset, float eps, int64_t n, float* out);

}  // namespace kiln::kernels::ref
