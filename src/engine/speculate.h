// Draft-free speculation (#15): cheap guesses of a sequence's next tokens, which the scheduler
// appends to the sequence's next forward and verifies there. Verification samples every
// position from the target's own logits, in order, with the sequence's own sampler, and keeps a
// drafted token only when it IS the sampled one; so speculation never changes a token (greedy
// or sampled), it only saves forwards when guesses are right.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace kiln::engine {

struct SpeculateConfig {
  bool enabled = false;
  int32_t ngram_max = 3;  // prompt lookup: longest history suffix matched first
  int32_t ngram_min = 1;
  int32_t draft_max = 8;  // drafted tokens per sequence per step
  int32_t draft_min = 1;  // shorter drafts are not worth their rows: none is made
  // Adaptive: each sequence drafts only as many tokens as pay, from its own acceptance rate and
  // the measured cost of a step's rows (StepCost). Off (tests): every lookup up to draft_max.
  bool adaptive = true;
  // Load: a step's decode rows plus drafted rows stay within this many (the CPU turns compute
  // bound as rows grow, and a guessed row then takes the place of a real one). Sequences draft
  // oldest first while room lasts; at step_rows busy sequences nobody drafts.
  int32_t step_rows = 16;
  // The engine's n-gram pool (NgramPool): n-grams remembered from finished requests; 0: none.
  int32_t pool_ngrams = 1 << 17;  // per generation: at most ~20 MB in all
};

// The measured cost of steps that held only decode and drafted rows, by row count: a recent
// mean per row count (exponentially forgotten), and a line ms = base + per_row * rows fitted
// the same way for row counts not seen lately. Until rows vary enough to fit a slope, a row is
// taken to cost half a step. Small models on a CPU are compute bound enough that the
// second row costs far more than the line says; the per-count means see that.
class StepCost {
 public:
  void Observe(int32_t rows, double ms);
  bool empty() const { return s0_ == 0; }
  double base_ms() const;
  double row_ms() const;
  double Estimate(int32_t rows) const;  // ms of a step of `rows` rows

 private:
  static constexpr double kForget = 0.98;
  static constexpr int32_t kTable = 128;
  double s0_ = 0, sx_ = 0, sxx_ = 0, sy_ = 0, sxy_ = 0;
  std::vector<double> mean_ms_ = std::vector<double>(kTable, 0);
  std::vector<double> weight_ = std::vector<double>(kTable, 0);
};

// A sequence's running estimate of how often a drafted token is accepted: decayed counts with a
// prior of one accept and one reject (p = 0.5), drifting back to the prior on steps without a
// verification so that a sequence that stopped drafting tries again later.
struct Acceptance {
  double accepted = 1, rejected = 1;
  double p() const { return accepted / (accepted + rejected); }
  void Verified(int32_t n_accepted, int32_t n_drafted);
  void Idle();
};

// How many drafted tokens (0..limit) maximise the step's expected tokens per ms, for a sequence
// whose drafted tokens are accepted with probability p (token k only if all before it were,
// so k tokens are worth p + p^2 + ... + p^k), added to a step of `rows` rows expected to give
// `tokens` tokens. 0 when drafting does not pay, or when nothing was measured yet.
// draft_ms: what each drafted token costs outside the step (a draft model's forward).
int32_t BestDraftLength(double p, int32_t limit, int32_t rows, double tokens,
                        const StepCost& cost, double draft_ms = 0);
// p + p^2 + ... + p^k
double ExpectedAccepted(double p, int32_t k);

// The engine's n-gram pool, shared by all requests: what followed each n-gram (n = ngram_min
// .. ngram_max) in the token sequences of finished requests, most recent first. Prompt lookup
// falls back to it when a sequence's own history has no match, so a task that repeats across
// requests (the same document, a JSON shape, boilerplate code) is guessed from the last one.
// Bounded: two generations of at most `capacity` n-grams each; the older is dropped when the
// newer fills.
class NgramPool {
 public:
  static constexpr int32_t kMaxFollow = 8;  // followers kept per n-gram (draft_max default)
  NgramPool(int32_t ngram_min, int32_t ngram_max, int32_t capacity);
  void Add(std::span<const int32_t> tokens);
  // The tokens that followed the longest n-gram ending `history` (at most max_len). Empty
  // when none was seen.
  std::vector<int32_t> Lookup(std::span<const int32_t> history, int32_t max_len) const;
  size_t size() const { return current_.size() + previous_.size(); }

 private:
  struct Follow {
    std::array<int32_t, kMaxFollow> tokens;
    int32_t n = 0;
  };
  using Map = std::unordered_map<uint64_t, Follow>;
  static uint64_t Key(std::span<const int32_t> ngram);
  int32_t ngram_min_, ngram_max_, capacity_;
  Map current_, previous_;
};

// Prompt lookup: the tokens that followed the most recent earlier occurrence of the history's
// last n tokens (n = ngram_max down to ngram_min; the longest suffix that occurs wins), at most
// max_len of them, preferring an occurrence with at least min_len followers. Empty when no
// suffix recurs.
std::vector<int32_t> LookupDraft(std::span<const int32_t> history, int32_t ngram_min,
                                 int32_t ngram_max, int32_t min_len, int32_t max_len);
// The same lookup of history's last n tokens in another text (a request's Predicted Output):
// what followed their last occurrence there. With no occurrence and `generated` < the text's
// length, the text from position `generated` on (output and prediction aligned).
std::vector<int32_t> LookupPrediction(std::span<const int32_t> prediction,
                                      std::span<const int32_t> history, int32_t generated,
                                      int32_t ngram_min, int32_t ngram_max, int32_t max_len);

}  // namespace kiln::engine
