#include "sampling/logits_processor.h"

#include <algorithm>
#include <cmath>

namespace kiln::sampling {

Status PenaltyParams::Validate() const {
  if (!(repetition > 0.0f) || !std::isfinite(repetition)) {
    return InvalidArgument("repetition_penalty must be a finite number > 0, got %g", repetition);
  }
  if (!(presence >= -2.0f && presence <= 2.0f)) {
    return InvalidArgument("presence_penalty must be in [-2, 2], got %g", presence);
  }
  if (!(frequency >= -2.0f && frequency <= 2.0f)) {
    return InvalidArgument("frequency_penalty must be in [-2, 2], got %g", frequency);
  }
  return Status::Ok();
}

void PenaltyState::Apply(const PenaltyParams& p, std::span<float> logits) const {
  const int64_t n = static_cast<int64_t>(logits.size());
  if (p.repetition != 1.0f) {
    auto penalize = [&](int32_t id) {
      if (id < 0 || id >= n) return;
      float& l = logits[id];
      l = l > 0 ? l / p.repetition : l * p.repetition;
    };
    for (int32_t id : prompt_) penalize(id);
    for (const auto& [id, count] : output_counts_) {
      if (!prompt_.contains(id)) penalize(id);
    }
  }
  if (p.presence != 0.0f || p.frequency != 0.0f) {
    for (const auto& [id, count] : output_counts_) {
      if (id < 0 || id >= n) continue;
      logits[id] -= p.frequency * static_cast<float>(count) + p.presence;
    }
  }
}

void ApplyLogitBias(const std::map<int32_t, float>& bias, std::span<float> logits) {
  for (const auto& [id, b] : bias) {
    if (id >= 0 && static_cast<size_t>(id) < logits.size()) logits[id] += b;
  }
}

void BanTokens(std::span<const int32_t> ids, std::span<float> logits) {
  for (int32_t id : ids) {
    if (id >= 0 && static_cast<size_t>(id) < logits.size()) logits[id] = -INFINITY;
  }
}

void ApplyTokenBitmask(std::span<const uint32_t> allowed, std::span<float> logits) {
  for (size_t i = 0; i < logits.size(); ++i) {
    const size_t w = i / 32;
    const bool ok = w < allowed.size() && ((allowed[w] >> (i % 32)) & 1u);
    if (!ok) logits[i] = -INFINITY;
  }
}

void LogSoftmax(std::span<const float> logits, std::vector<float>* out) {
  float max_l = -INFINITY;
  for (float l : logits) max_l = std::max(max_l, l);
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - max_l);
  const double log_z = max_l + std::log(sum);
  out->resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    (*out)[i] = static_cast<float>(static_cast<double>(logits[i]) - log_z);
  }
}

std::vector<std::pair<int32_t, float>> TopK(std::span<const float> logprobs, int32_t k) {
  // Partial selection: a sorted window of the k best so far; most entries are rejected by one
  // comparison with the window's worst, so this is one pass over the row, not a sort.
  const size_t keep = std::min<size_t>(std::max(k, 0), logprobs.size());
  std::vector<std::pair<int32_t, float>> best;
  if (keep == 0) return best;
  best.reserve(keep + 1);
  auto better = [](const std::pair<int32_t, float>& a, const std::pair<int32_t, float>& b) {
    return a.second > b.second || (a.second == b.second && a.first < b.first);
  };
  for (size_t i = 0; i < logprobs.size(); ++i) {
    const std::pair<int32_t, float> c{static_cast<int32_t>(i), logprobs[i]};
    // Ids arrive ascending, so a tie with the window's worst never displaces it.
    if (best.size() == keep && !(c.second > best.back().second)) continue;
    best.insert(std::upper_bound(best.begin(), best.end(), c, better), c);
    if (best.size() > keep) best.pop_back();
  }
  return best;
}

}  // namespace kiln::sampling
