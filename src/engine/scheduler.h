// Scheduler: the serving engine's step. Continuous batching at step granularity: each Step()
// builds ONE ragged batch of decode rows (one per running sequence) and prefill chunks
// (bounded by prefill_chunk tokens per step), admits waiting sequences by KV budget (reusing
// their longest cached prefix), preempts the youngest sequence by recompute when blocks run
// out, samples, detokenizes, applies stop rules and pushes events to each request's stream.
// n > 1: the prompt is prefilled once, then the choices fork and share its blocks
// (copy-on-write of the last partial block).
//
// Determinism: a sequence's tokens depend only on its own rows (batch-invariant model ops)
// and its own RNG, so they do not change with batch composition, preemption or cache hits.
// Where the model's numbers depend on a row's summation order (llama.cpp's arithmetic), each
// row's order comes from its role (Seq::OrderOf: prompt rows batched, generated rows alone),
// never from how the step grouped rows, and the prefix cache keys blocks by those orders.
//
// Engine-thread only; not thread-safe. EngineLoop is the only caller.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "base/status.h"
#include "engine/request.h"
#include "engine/speculate.h"
#include "engine/step_model.h"
#include "kv/block_pool.h"
#include "kv/prefix_cache.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/tokenizer.h"

namespace kiln::engine {

struct SchedulerConfig {
  int32_t max_sequences = 4;   // running sequences at once
  int32_t max_context = 2048;  // positions per sequence
  int32_t n_blocks = 256;
  int32_t block_tokens = kv::kDefaultBlockTokens;
  int32_t prefill_chunk = 256;  // prompt tokens per step (all sequences together)
  bool prefix_cache = true;
  SpeculateConfig speculate;  // draft-free speculation (prompt lookup); off unless enabled
};

struct Histogram {
  std::vector<double> bounds;   // upper bounds, ascending
  std::vector<int64_t> counts;  // bounds.size() + 1 (+Inf last)
  double sum = 0;               // of every value added (Prometheus _sum)
  void Add(double v);
  static Histogram Latency();   // ms buckets
};

struct SchedulerStats {
  int64_t waiting = 0, running = 0;
  int64_t kv_blocks_total = 0, kv_blocks_used = 0, kv_block_tokens = 0;
  int64_t kv_blocks_cached = 0;  // used blocks only the prefix cache holds (evictable)
  // Fragmentation: of the slots of blocks that sequences hold (used blocks minus those only
  // the prefix cache holds, x kv_block_tokens), those holding no token (the unfilled tail of
  // each sequence's last block; a block shared by forks counts once).
  int64_t kv_slots_allocated = 0, kv_slots_unfilled = 0;
  // The same two summed over every step, so a run's mean is a ratio of differences.
  int64_t kv_slot_steps_allocated = 0, kv_slot_steps_unfilled = 0;
  int64_t prefix_cache_queries = 0, prefix_cache_hit_tokens = 0, prefix_cache_query_tokens = 0;
  int64_t requests_finished = 0, prompt_tokens_total = 0, generated_tokens_total = 0;
  int64_t preemptions = 0, steps = 0;
  int64_t aborted_steps = 0;  // forwards stopped early by a cancellation or Interrupt()
  // Speculation: tokens drafted into forwards, and of those the ones verification kept.
  int64_t spec_drafted_tokens = 0, spec_accepted_tokens = 0;
  Histogram ttft_ms = Histogram::Latency(), itl_ms = Histogram::Latency();
};

class Scheduler {
 public:
  // tokenizer may be null (tests): no text, no end-of-generation tokens, no stop strings.
  Scheduler(const SchedulerConfig& config, StepModel* model,
            std::shared_ptr<const tokenizer::Tokenizer> tokenizer);
  ~Scheduler();

  const SchedulerConfig& config() const { return config_; }
  // Draft-model speculation (with config.speculate.enabled): `draft`, a smaller model with the
  // same vocabulary, guesses each step's drafted tokens greedily instead of prompt lookup; its
  // K/V lives in its own pool of n_blocks blocks, rolled back with the target's. Call before
  // the first Step; draft must outlive the scheduler.
  void SetDraftModel(StepModel* draft, int32_t n_blocks);
  // Queues a validated request (prompt non-empty, shorter than max_context, ids in range).
  void Add(Request request);
  bool HasWork() const { return !requests_.empty(); }
  // One forward over the scheduled rows. An error fails the step's requests, not the engine.
  void Step();
  // Ends every request with finish_reason "abort" (shutdown).
  void AbortAll();
  // Any thread: the running step and every later one stop at the model's next layer (the
  // step's rows count as not computed). Shutdown calls it so AbortAll never waits for a long
  // prefill. A request cancelled during a step stops that step the same way (see Step).
  void Interrupt() { interrupted_.store(true); }

  const SchedulerStats& stats() const { return stats_; }
  const kv::BlockPool& pool() const { return pool_; }
  kv::PrefixCache& prefix_cache() { return cache_; }

 private:
  struct ReqState;
  struct Seq;
  struct Scheduled {
    Seq* seq;
    int32_t n_rows;
  };

  void HandleCancellations();
  std::vector<Scheduled> Schedule();
  bool EnsureBlocks(Seq& s, int32_t n_positions);
  int32_t AllocateBlock();
  bool PreemptYoungest(const Seq* keep_older_than);
  void Preempt(Seq& s);
  void CacheFullBlocks(const Seq& s);
  void Draft(const std::vector<Seq*>& by_age);
  void RunDraftModel(const std::vector<std::pair<Seq*, int32_t>>& wanted);
  void ReleaseDraftKv(Seq& s);
  void RollBackDraftKv(Seq& s, int32_t valid);
  void DropDraft(Seq& s);
  void SampleFrom(Seq& s, const float* logits, int32_t n_draft);
  bool Choose(Seq& s, const float* logits, Event& e, int32_t* id);
  bool Emit(Seq& s, int32_t id, Event& e);
  bool JumpForward(Seq& s, Event& e);
  bool AtLength(const Seq& s) const;
  void Fork(Seq& parent);
  void Finish(Seq& s, Event& e, const char* reason);
  void EraseFinishedRequests();
  void UpdateKvStats();
  void EnqueueWaiting(Seq* s);
  bool Older(const Seq& a, const Seq& b) const;

  SchedulerConfig config_;
  StepModel* model_;
  std::shared_ptr<const tokenizer::Tokenizer> tok_;
  kv::BlockPool pool_;
  kv::PrefixCache cache_;
  std::vector<std::unique_ptr<ReqState>> requests_;
  std::vector<Seq*> waiting_;  // sorted oldest first
  std::vector<Seq*> running_;  // admission order
  int64_t next_order_ = 0;
  SchedulerStats stats_;
  model::Batch batch_;
  std::vector<float> logits_, scratch_, logprobs_;
  std::vector<uint32_t> mask_bits_;
  std::vector<std::pair<int32_t, int32_t>> partial_blocks_;  // (block, tokens filled)
  bool row_orders_ = false;  // model_->UsesRowOrders(): cache blocks keyed by row orders
  std::atomic<bool> interrupted_{false};
  StepCost step_cost_;  // decode steps' ms by rows: what a drafted row costs
  NgramPool ngram_pool_;  // lookup's fallback: n-grams of finished requests
  StepModel* draft_model_ = nullptr;
  std::unique_ptr<kv::BlockPool> draft_pool_;
  model::Batch draft_batch_;
  std::vector<float> draft_logits_;
  double draft_forward_ms_ = 0;  // recent mean of one draft-model forward (one token per seq)
};

}  // namespace kiln::engine
