// Logits processors applied before the sampler, per sequence: repetition / presence /
// frequency penalties, logit bias, a token mask (grammar hook, min_tokens), and log-softmax
// for logprobs. Semantics follow vLLM: the repetition penalty (CTRL) covers prompt and output
// tokens; presence and frequency penalties (OpenAI) cover output tokens only.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/status.h"

namespace kiln::sampling {

struct PenaltyParams {
  float repetition = 1.0f;  // > 0; 1 = off. logit > 0 → logit / r, else logit * r
  float presence = 0.0f;    // [-2, 2]: logit -= presence if the token occurred in the output
  float frequency = 0.0f;   // [-2, 2]: logit -= frequency * count in the output

  Status Validate() const;
  bool Active() const { return repetition != 1.0f || presence != 0.0f || frequency != 0.0f; }
};

// Token history a sequence's penalties need. Not thread-safe; one per sequence.
class PenaltyState {
 public:
  void AddPrompt(std::span<const int32_t> ids) { prompt_.insert(ids.begin(), ids.end()); }
  void AddOutput(int32_t id) { ++output_counts_[id]; }
  // Applies p to logits (n_vocab floats) in place.
  void Apply(const PenaltyParams& p, std::span<float> logits) const;

 private:
  std::unordered_set<int32_t> prompt_;
  std::unordered_map<int32_t, int32_t> output_counts_;
};

// logits[id] += bias for each entry; ids outside the row are ignored (validated earlier).
void ApplyLogitBias(const std::map<int32_t, float>& bias, std::span<float> logits);
// Sets logits of the listed tokens to -inf.
void BanTokens(std::span<const int32_t> ids, std::span<float> logits);
// Token mask hook (grammar): allowed is a bitset over the vocabulary, bit id % 32 of word
// id / 32; disallowed tokens get -inf.
void ApplyTokenBitmask(std::span<const uint32_t> allowed, std::span<float> logits);

// out[i] = logits[i] - logsumexp(logits), summed in double in index order.
void LogSoftmax(std::span<const float> logits, std::vector<float>* out);
// The k best (id, logprob) pairs of a log-softmax row, best first; ties by lower id.
std::vector<std::pair<int32_t, float>> TopK(std::span<const float> logprobs, int32_t k);

}  // namespace kiln::sampling
