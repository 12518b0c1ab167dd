// Plain data of the serving engine: a request's sampling/stopping options, the events it
// streams, and the thread-safe stream they travel on (engine thread → front-end thread).
// include/kiln/serving.h mirrors these types for the public API (api/serving.cc converts).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "sampling/logits_processor.h"
#include "sampling/sampler.h"

namespace kiln::engine {

// Token-mask hook (grammar, #7): per-choice state restricting the next token. The scheduler
// calls Fill before sampling and Accept with the sampled token; one instance per choice.
class TokenMask {
 public:
  virtual ~TokenMask() = default;
  // Sets *allowed to a bitset over the vocabulary (bit id % 32 of word id / 32); returns false
  // when nothing is restricted at this step.
  virtual bool Fill(std::vector<uint32_t>* allowed) = 0;
  virtual void Accept(int32_t token) = 0;
  // After Accept (or a Fill that had to give up): non-empty when the token broke the
  // constraint or the constraint failed (the choice ends "error").
  virtual std::string Error() const { return {}; }
  // After Accept: the constraint is complete, nothing may follow (the choice ends "stop").
  virtual bool Done() const { return false; }
  // Jump-forward: up to max_tokens tokens the constraint forces next, already accepted; the
  // caller appends them to the output without sampling. Empty when nothing is forced.
  virtual std::vector<int32_t> Forced(int32_t max_tokens) { return {}; }
  // Speculation: how many leading tokens of a guess the constraint would accept in a row from
  // the current state, which it leaves unchanged. Guesses are cut there before they cost rows.
  virtual int32_t AllowedPrefix(std::span<const int32_t> tokens) {
    return static_cast<int32_t>(tokens.size());
  }
};

struct RequestOptions {
  sampling::SamplingParams sampling;  // temperature, top_k, top_p, min_p, seed
  sampling::PenaltyParams penalties;
  std::map<int32_t, float> logit_bias;
  int32_t n = 1;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_token_ids;
  int32_t max_tokens = -1;  // -1: until the context is full
  int32_t min_tokens = 0;
  bool ignore_eos = false;
  bool logprobs = false;
  int32_t top_logprobs = 0;
  // Draft-free speculation where the engine has it on (never changes the tokens); false opts
  // this request out.
  bool speculate = true;
  // Predicted Outputs: tokens the output is expected to repeat, a source of guesses.
  std::vector<int32_t> prediction;
  // Null: no mask. Called once per choice (engine thread) when the choice starts sampling.
  std::function<std::unique_ptr<TokenMask>()> token_mask_factory;
};

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;
};
struct LogprobEntry {
  TokenLogprob token;
  std::vector<TokenLogprob> top;
};

struct Usage {
  int32_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
  // Speculation: drafted tokens verified, and of those the ones kept (all choices).
  int32_t drafted_tokens = 0, accepted_tokens = 0;
};

struct Event {
  int32_t choice = 0;
  std::string text;
  std::vector<int32_t> token_ids;
  int32_t n_forced = 0;  // of token_ids, those the grammar forced (jump-forward, not sampled)
  std::vector<LogprobEntry> logprobs;
  std::optional<std::string> finish_reason;  // "stop" | "length" | "abort" | "error"
  std::string error;
  bool done = false;
  Usage usage;
};

// Thread-safe. The engine pushes; one consumer pops. Cancel() may come from any thread.
class OutputStream {
 public:
  void Push(Event e);
  // nullopt on timeout, or at once after the done event was popped.
  std::optional<Event> Pop(std::chrono::milliseconds timeout);
  void Cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;
  bool finished_ = false;  // the done event was popped
  std::atomic<bool> cancelled_{false};
};

struct Request {
  std::string id;
  std::vector<int32_t> prompt;
  RequestOptions options;
  int32_t priority = 0;  // lower first; FCFS within a priority
  std::shared_ptr<OutputStream> stream;
};

}  // namespace kiln::engine
