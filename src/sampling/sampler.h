// Token sampling for one sequence: temperature, top-k, top-p, min-p over a logits row, with a
// per-request seeded RNG so a given seed always yields the same tokens (whatever else runs).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"
#include "sampling/rng.h"

namespace kiln::sampling {

struct SamplingParams {
  float temperature = 1.0f;  // <= 0 → greedy (argmax)
  int32_t top_k = 0;         // 0 → disabled
  float top_p = 1.0f;        // 1 → disabled; keeps the smallest prefix with mass >= top_p
  float min_p = 0.0f;        // 0 → disabled; drops tokens with p < min_p * p_max
  uint64_t seed = 0;

  // InvalidArgument naming the field for values out of range (temperature < 0 or NaN,
  // top_k < 0, top_p not in (0, 1], min_p not in [0, 1]).
  Status Validate() const;
  bool IsGreedy() const { return temperature <= 0.0f; }
};

// Index of the largest logit; ties go to the lowest index. logits must be non-empty.
int32_t Argmax(std::span<const float> logits);

// Per-request sampler. Not thread-safe; one per sequence. Scratch is reused across calls, so
// sampling allocates nothing after the first token.
class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // Picks a token from one row of logits (n_vocab floats). Order of filters (as vLLM):
  // temperature scaling → softmax → top-k → top-p → min-p → renormalise → draw.
  int32_t Sample(std::span<const float> logits);

  const SamplingParams& params() const { return params_; }

 private:
  struct Candidate {
    float p;
    int32_t id;
  };
  SamplingParams params_;
  Rng rng_;
  std::vector<Candidate> candidates_;
};

}  // namespace kiln::sampling
