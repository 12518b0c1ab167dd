// Token sampling for one sequence: temperature, top-k, top-p, min-p over a logits row, with a
// per-request seeded RNG so a given seed always yields the same tokens (whatever else runs).
//
// Speed: nothing sorts the whole vocabulary on the usual paths. One pass computes the
// probabilities and a histogram of them (by float exponent and 3 mantissa bits); a threshold
// read off the histogram picks the few candidates a filter or a draw can reach, and only those
// are sorted. The chosen token is exactly the one a full sort would give (see Sample).
#pragma once

#include <array>
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
  struct Candidate {
    float p;  // exp(logit / T - max): 1 for the best token, unnormalised
    int32_t id;
  };

  explicit Sampler(const SamplingParams& params);

  // Picks a token from one row of logits (n_vocab floats). Order of filters (as vLLM):
  // temperature scaling → softmax → top-k → top-p (over the top-k, renormalised) → min-p →
  // renormalise → draw. The draw walks the kept candidates best first (ties: lower id) and
  // takes the first whose cumulative probability exceeds u * total, u uniform in [0, 1) from
  // the request's RNG (one number per call). Identical tokens to sorting the whole row.
  int32_t Sample(std::span<const float> logits);

  // The candidates the filters keep for this row, best first (no draw, RNG untouched). With
  // no filter this is the whole row, sorted (tests and debugging; Sample avoids that).
  std::span<const Candidate> Filter(std::span<const float> logits);

  const SamplingParams& params() const { return params_; }

 private:
  static constexpr int kBins = 1024;  // float bits >> 20 of p in [0, 1]

  void Softmax(std::span<const float> logits);
  float ThresholdForMass(double mass) const;
  float ThresholdForCount(int64_t count) const;
  void CollectSorted(float threshold);
  // Runs top-k / top-p / min-p; returns how many of candidates_ are kept.
  size_t FilterCandidates();
  int32_t DrawFrom(size_t keep, double u);
  int32_t DrawUnfiltered(double u);

  SamplingParams params_;
  Rng rng_;
  std::vector<float> probs_;            // [n_vocab]
  std::vector<Candidate> candidates_;   // sorted prefix of the row (p desc, id asc)
  double sum_ = 0;                      // sum of probs_, in index order
  float p_max_ = 0;
  std::array<double, kBins> bin_mass_{};
  std::array<int32_t, kBins> bin_count_{};
};

}  // namespace kiln::sampling
