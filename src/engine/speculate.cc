#include "engine/speculate.h"

#include <algorithm>
#include <cmath>

namespace kiln::engine {

std::vector<int32_t> LookupDraft(std::span<const int32_t> history, int32_t ngram_min,
                                 int32_t ngram_max, int32_t min_len, int32_t max_len) {
  const int64_t size = static_cast<int64_t>(history.size());
  if (max_len <= 0) return {};
  for (int64_t n = ngram_max; n >= std::max<int32_t>(ngram_min, 1); --n) {
    if (size <= n) continue;
    const std::span<const int32_t> suffix = history.subspan(size - n);
    int64_t best = -1;  // start of the followers of the chosen occurrence
    // Most recent occurrence first; one that ends right before the suffix has no followers
    // beyond the suffix itself, which is fine: they are the suffix's own tokens.
    for (int64_t i = size - n - 1; i >= 0; --i) {
      if (history[i] != suffix[0] ||
          !std::equal(suffix.begin(), suffix.end(), history.begin() + i)) {
        continue;
      }
      const int64_t followers = std::min<int64_t>(size - (i + n), max_len);
      if (best < 0) best = i + n;
      if (followers >= min_len) {
        best = i + n;
        break;
      }
    }
    if (best < 0) continue;
    const int64_t len = std::min<int64_t>(size - best, max_len);
    return std::vector<int32_t>(history.begin() + best, history.begin() + best + len);
  }
  return {};
}

std::vector<int32_t> LookupPrediction(std::span<const int32_t> prediction,
                                      std::span<const int32_t> history, int32_t generated,
                                      int32_t ngram_min, int32_t ngram_max, int32_t max_len) {
  const int64_t p_size = static_cast<int64_t>(prediction.size());
  const int64_t h_size = static_cast<int64_t>(history.size());
  if (max_len <= 0 || p_size == 0) return {};
  for (int64_t n = std::min<int64_t>(ngram_max, h_size); n >= std::max<int32_t>(ngram_min, 1); --n) {
    const std::span<const int32_t> suffix = history.subspan(h_size - n);
    for (int64_t i = p_size - n; i >= 0; --i) {
      if (!std::equal(suffix.begin(), suffix.end(), prediction.begin() + i)) continue;
      const int64_t from = i + n, len = std::min<int64_t>(p_size - from, max_len);
      if (len <= 0) break;  // the prediction ends there: try a shorter n-gram
      return std::vector<int32_t>(prediction.begin() + from, prediction.begin() + from + len);
    }
  }
  if (generated < p_size) {
    const int64_t len = std::min<int64_t>(p_size - generated, max_len);
    return std::vector<int32_t>(prediction.begin() + generated, prediction.begin() + generated + len);
  }
  return {};
}

NgramPool::NgramPool(int32_t ngram_min, int32_t ngram_max, int32_t capacity)
    : ngram_min_(std::max(ngram_min, 1)), ngram_max_(ngram_max), capacity_(capacity) {}

uint64_t NgramPool::Key(std::span<const int32_t> ngram) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ ngram.size();
  for (int32_t t : ngram) {
    h ^= static_cast<uint32_t>(t);
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
  }
  return h;
}

void NgramPool::Add(std::span<const int32_t> tokens) {
  const int64_t size = static_cast<int64_t>(tokens.size());
  for (int64_t end = 1; end < size; ++end) {  // n-grams ending before `end`, followers after
    const int32_t n_follow = static_cast<int32_t>(std::min<int64_t>(size - end, kMaxFollow));
    for (int64_t n = ngram_min_; n <= ngram_max_ && n <= end; ++n) {
      if (static_cast<int32_t>(current_.size()) >= capacity_) {
        previous_ = std::move(current_);
        current_ = Map();
      }
      Follow& f = current_[Key(tokens.subspan(end - n, n))];
      std::copy(tokens.begin() + end, tokens.begin() + end + n_follow, f.tokens.begin());
      f.n = n_follow;
    }
  }
}

std::vector<int32_t> NgramPool::Lookup(std::span<const int32_t> history, int32_t max_len) const {
  const int64_t size = static_cast<int64_t>(history.size());
  for (int64_t n = std::min<int64_t>(ngram_max_, size); n >= ngram_min_; --n) {
    const uint64_t key = Key(history.subspan(size - n, n));
    for (const Map* m : {&current_, &previous_}) {
      auto it = m->find(key);
      if (it == m->end()) continue;
      const int32_t len = std::min(it->second.n, max_len);
      return std::vector<int32_t>(it->second.tokens.begin(), it->second.tokens.begin() + len);
    }
  }
  return {};
}

void StepCost::Observe(int32_t rows, double ms) {
  const double x = rows;
  s0_ = s0_ * kForget + 1;
  sx_ = sx_ * kForget + x;
  sxx_ = sxx_ * kForget + x * x;
  sy_ = sy_ * kForget + ms;
  sxy_ = sxy_ * kForget + x * ms;
  if (rows < kTable) {
    // The mean of this row count's recent steps, older ones weighing kForget less each.
    double& w = weight_[rows];
    w = w * kForget + 1;
    mean_ms_[rows] += (ms - mean_ms_[rows]) / w;
  }
}

double StepCost::row_ms() const {
  if (s0_ == 0) return 0;
  const double mean_x = sx_ / s0_, mean_y = sy_ / s0_;
  const double var = sxx_ / s0_ - mean_x * mean_x;
  if (var < 0.25) return mean_y / std::max(mean_x, 1.0) / 2;  // rows barely varied: the prior
  const double slope = (sxy_ / s0_ - mean_x * mean_y) / var;
  return std::clamp(slope, 0.0, mean_y / std::max(mean_x, 1.0));
}

double StepCost::base_ms() const {
  if (s0_ == 0) return 0;
  return std::max(0.0, (sy_ - row_ms() * sx_) / s0_);
}

double StepCost::Estimate(int32_t rows) const {
  if (rows > 0 && rows < kTable && weight_[rows] >= 2) return mean_ms_[rows];
  return base_ms() + row_ms() * rows;
}

void Acceptance::Verified(int32_t n_accepted, int32_t n_drafted) {
  constexpr double kDecay = 0.9;
  accepted = accepted * kDecay + n_accepted;
  rejected = rejected * kDecay + (n_accepted < n_drafted ? 1 : 0);
}

void Acceptance::Idle() {
  constexpr double kPull = 0.02;  // ~35 idle steps halve the distance to the prior
  accepted += (1 - accepted) * kPull;
  rejected += (1 - rejected) * kPull;
}

double ExpectedAccepted(double p, int32_t k) {
  double sum = 0, pk = 1;
  for (int32_t i = 0; i < k; ++i) {
    pk *= p;
    sum += pk;
  }
  return sum;
}

int32_t BestDraftLength(double p, int32_t limit, int32_t rows, double tokens,
                        const StepCost& cost, double draft_ms) {
  // Nothing measured yet: decode plainly first, so that the first costs seen are of plain
  // steps (a first step of many guessed rows would make every row look cheap).
  if (limit <= 0 || cost.empty()) return 0;
  int32_t best = 0;
  double best_rate = tokens / std::max(cost.Estimate(rows), 1e-9);
  double expected = 0, pk = 1;
  for (int32_t k = 1; k <= limit; ++k) {
    pk *= p;
    expected += pk;
    const double rate =
        (tokens + expected) / std::max(cost.Estimate(rows + k) + k * draft_ms, 1e-9);
    if (rate > best_rate) {
      best = k;
      best_rate = rate;
    }
  }
  return best;
}

}  // namespace kiln::engine
