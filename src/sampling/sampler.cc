#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>

namespace kiln::sampling {

Status SamplingParams::Validate() const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature)) {
    return InvalidArgument("temperature must be a finite number >= 0, got %g", temperature);
  }
  if (top_k < 0) return InvalidArgument("top_k must be >= 0, got %d", top_k);
  if (!(top_p > 0.0f && top_p <= 1.0f)) {
    return InvalidArgument("top_p must be in (0, 1], got %g", top_p);
  }
  if (!(min_p >= 0.0f && min_p <= 1.0f)) {
    return InvalidArgument("min_p must be in [0, 1], got %g", min_p);
  }
  return Status::Ok();
}

int32_t Argmax(std::span<const float> logits) {
  KILN_CHECK(!logits.empty());
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = static_cast<int32_t>(i);
  }
  return best;
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {}

int32_t Sampler::Sample(std::span<const float> logits) {
  if (params_.IsGreedy()) return Argmax(logits);
  const size_t n = logits.size();
  KILN_CHECK(n > 0);
  candidates_.resize(n);
  const float inv_t = 1.0f / params_.temperature;
  float max_l = -INFINITY;
  for (size_t i = 0; i < n; ++i) max_l = std::max(max_l, logits[i] * inv_t);
  // Softmax in double for a stable, order-fixed sum.
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    float p = std::exp(logits[i] * inv_t - max_l);
    candidates_[i] = {p, static_cast<int32_t>(i)};
    sum += p;
  }
  // Sort by probability, descending; ties by id so the order is fully determined.
  auto by_p = [](const Candidate& a, const Candidate& b) {
    return a.p > b.p || (a.p == b.p && a.id < b.id);
  };
  size_t keep = n;
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < n) {
    keep = static_cast<size_t>(params_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + keep, candidates_.end(), by_p);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_p);
  }
  if (params_.top_p < 1.0f) {
    double mass = 0;
    size_t i = 0;
    for (; i < keep; ++i) {
      mass += candidates_[i].p / sum;
      if (mass >= params_.top_p) break;
    }
    keep = std::min(keep, i + 1);
  }
  if (params_.min_p > 0.0f) {
    const float threshold = params_.min_p * candidates_[0].p;
    size_t i = 1;
    while (i < keep && candidates_[i].p >= threshold) ++i;
    keep = i;
  }
  double kept = 0;
  for (size_t i = 0; i < keep; ++i) kept += candidates_[i].p;
  double r = rng_.NextDouble() * kept;
  double acc = 0;
  for (size_t i = 0; i < keep; ++i) {
    acc += candidates_[i].p;
    if (r < acc) return candidates_[i].id;
  }
  return candidates_[keep - 1].id;
}

}  // namespace kiln::sampling
