// kiln's serving API: many concurrent requests on one engine (continuous batching, paged KV,
// prefix caching), each streaming its events. The server, the chat CLI and the Python package
// all sit on this interface. Thread-safe: Submit/Cancel/Metrics may be called from any thread.
//
// Status: the contract of issue #5/#6. Field meanings follow OpenAI's API where a field of the
// same name exists there.
//
// Implementation status (engine, src/api/serving.cc): step 1 ready, and more — one engine
// thread, paged KV (16-token blocks) with continuous batching (chunked prefill mixed with
// decodes in one forward), preemption by recompute, prefix cache (cached_tokens), full
// per-request sampling, Cancel, Metrics. Details a front end may rely on:
//  - A token that ends generation (EOS/EOT unless ignore_eos, or one of stop_token_ids) is in
//    the final event's token_ids but contributes no text. Stop strings are never emitted.
//  - logprobs are log-softmax of the logits after penalties, logit_bias and min_tokens bans,
//    before temperature / top-k / top-p / min-p (i.e. the model's distribution as adjusted).
//  - n > 1: choice 0 uses `seed`, choice i a fixed function of it; the prompt is computed once.
//  - Dropping a RequestStream cancels its request. Errors of Submit: InvalidArgument naming
//    the field. A constraint that cannot be compiled is InvalidArgument naming the field and,
//    for JSON Schema, the keyword (e.g. "response_format.json_schema.schema: unsupported JSON
//    Schema keyword 'not' at #/properties/a").
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "kiln/engine.h"

namespace kiln {

enum class EngineMode { kLocal, kInteractive, kServer };

struct ServingOptions {
  std::string model = "default";
  EngineMode mode = EngineMode::kLocal;
  int n_threads = 0;           // 0 → all cores
  // Overrides of the mode preset; 0 → from the preset, the machine and the model.
  int max_sequences = 0;       // sequences decoded together
  int max_context = 0;         // tokens per sequence (prompt + output)
  int64_t kv_memory_bytes = 0; // KV pool size
  int prefill_chunk = 0;       // prompt tokens per step per sequence
  SpeculateOptions speculate;  // kiln/engine.h; requests may opt out (CompletionRequest)
};

// Per-request sampling and stopping. Validate() names the offending field.
struct SamplingOptions {
  float temperature = 1.0f;
  float top_p = 1.0f;
  int32_t top_k = 0;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  std::map<int32_t, float> logit_bias;
  std::optional<uint64_t> seed;       // none → drawn from the engine's entropy
  int32_t n = 1;                      // choices
  std::vector<std::string> stop;      // stop strings, never emitted
  std::vector<int32_t> stop_token_ids;
  int32_t max_tokens = -1;            // -1 → until the context is full
  int32_t min_tokens = 0;
  bool ignore_eos = false;
  bool logprobs = false;
  int32_t top_logprobs = 0;           // 0..20
};

// Constraint (structured generation, #7) is declared in kiln/engine.h.

struct CompletionRequest {
  std::vector<int32_t> prompt_ids;    // already templated and tokenized
  SamplingOptions sampling;
  Constraint constraint;              // kNone = unconstrained
  int32_t priority = 0;               // lower runs first; FCFS within a priority
  bool speculate = true;              // false: no guessed tokens for this request
  // Predicted Outputs: tokens the output is expected to repeat; speculation guesses from them
  // (never changes the output).
  std::vector<int32_t> prediction_ids;
};

struct TokenLogprob {
  int32_t id = 0;
  std::string text;    // the token's bytes (may be a partial UTF-8 character)
  float logprob = 0;
};

struct LogprobEntry {
  TokenLogprob token;                // the sampled token
  std::vector<TokenLogprob> top;     // top_logprobs alternatives, best first
};

struct Usage {
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;     // over all choices
  int32_t cached_tokens = 0;         // prompt tokens served from the prefix cache
  int32_t drafted_tokens = 0;        // speculation: guessed tokens verified (all choices)
  int32_t accepted_tokens = 0;       // of those, the ones sampling confirmed
};

// One event of a request's stream. Events of different choices interleave; each choice ends
// with exactly one event carrying finish_reason; the last event of the request has done=true
// and the final usage.
struct StreamEvent {
  int32_t choice = 0;
  std::string text;                    // UTF-8-safe delta (may be empty)
  std::vector<int32_t> token_ids;      // tokens this delta covers
  std::vector<LogprobEntry> logprobs;  // one per token when requested
  std::optional<std::string> finish_reason;  // "stop" | "length" | "abort" | "error"
  std::string error;                   // set when finish_reason == "error"
  bool done = false;
  Usage usage;                         // meaningful when done
};

// A submitted request's handle. Next() blocks until an event or the timeout.
class RequestStream {
 public:
  virtual ~RequestStream() = default;
  // nullopt on timeout. After the done event, returns nullopt immediately.
  virtual std::optional<StreamEvent> Next(std::chrono::milliseconds timeout) = 0;
  // Cancels the request (client gone); its KV blocks are freed at the next engine step.
  virtual void Cancel() = 0;
  virtual const std::string& id() const = 0;
};

struct EngineMetrics {
  int64_t queue_length = 0, running = 0;
  int64_t kv_blocks_total = 0, kv_blocks_used = 0, kv_block_tokens = 0;
  int64_t kv_blocks_cached = 0;  // of the used: held only by the prefix cache (evictable)
  // KV fragmentation: of the slots of blocks that sequences hold (cache-only blocks excluded),
  // those holding no token; now, and summed over engine steps (a run's mean is the ratio of the
  // sums' differences).
  int64_t kv_slots_allocated = 0, kv_slots_unfilled = 0;
  int64_t kv_slot_steps_allocated = 0, kv_slot_steps_unfilled = 0;
  int64_t prefix_cache_queries = 0, prefix_cache_hit_tokens = 0, prefix_cache_query_tokens = 0;
  int64_t requests_finished = 0, prompt_tokens_total = 0, generated_tokens_total = 0;
  int64_t preemptions = 0;
  int64_t spec_drafted_tokens = 0, spec_accepted_tokens = 0;  // speculation, totals
  double gen_tok_s = 0;  // recent generation throughput
  std::vector<double> ttft_ms_buckets, itl_ms_buckets;        // histogram bucket bounds
  std::vector<int64_t> ttft_ms_counts, itl_ms_counts;         // counts per bucket (+Inf last)
  double ttft_ms_sum = 0, itl_ms_sum = 0;                     // sums of the observed values
};

class ServingEngine {
 public:
  static StatusOr<std::unique_ptr<ServingEngine>> Start(const ServingOptions& options);
  virtual ~ServingEngine() = default;  // stops the engine thread; pending requests end "abort"

  virtual const ModelInfo& Info() const = 0;
  // The effective configuration after presets (for the start-up banner).
  virtual std::string DescribeConfig() const = 0;
  // Tokens per sequence (prompt + output) after presets: longer requests are refused.
  virtual int32_t MaxContext() const = 0;
  // Validates (InvalidArgument naming the field; prompt longer than the context etc.) and queues.
  virtual StatusOr<std::unique_ptr<RequestStream>> Submit(CompletionRequest request) = 0;
  // Compiles (and caches) a constraint without submitting anything: OK, or InvalidArgument
  // naming constraint.field and the cause. Submit does the same check.
  virtual Status CheckConstraint(const Constraint& constraint) const = 0;
  virtual EngineMetrics Metrics() const = 0;

  // Text services on the engine's tokenizer (any thread).
  virtual StatusOr<std::vector<int32_t>> Tokenize(std::string_view text, bool add_special,
                                                  bool parse_special) const = 0;
  virtual std::string Detokenize(const std::vector<int32_t>& ids) const = 0;
  virtual StatusOr<std::string> ApplyChatTemplate(const std::string& messages_json,
                                                  const std::string& tools_json,
                                                  bool add_generation_prompt) const = 0;
};

}  // namespace kiln
