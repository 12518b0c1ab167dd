#include "engine/scheduler.h"

#include <algorithm>
#include <cmath>

#include "base/check.h"
#include "base/logging.h"
#include "engine/grammar_mask.h"

namespace kiln::engine {

using Clock = std::chrono::steady_clock;

namespace {
double MsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
// Seed of choice i: a fixed function of the request's seed so each choice has its own stream.
uint64_t ChoiceSeed(uint64_t seed, int32_t choice) {
  return choice == 0 ? seed : seed ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(choice));
}
}  // namespace

void Histogram::Add(double v) {
  size_t i = 0;
  while (i < bounds.size() && v > bounds[i]) ++i;
  ++counts[i];
  sum += v;
}

Histogram Histogram::Latency() {
  Histogram h;
  h.bounds = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000};
  h.counts.assign(h.bounds.size() + 1, 0);
  return h;
}

struct Scheduler::ReqState {
  Request req;
  int64_t order = 0;
  Clock::time_point arrival;
  int32_t n_prompt = 0;
  int32_t cached_tokens = 0;
  int32_t n_finished = 0;
  int32_t completion_tokens = 0;
  int32_t drafted = 0, accepted = 0;  // speculation, all choices
  bool forked = false;
  bool first_token = false;
  bool prefix_queried = false;
  std::vector<std::unique_ptr<Seq>> seqs;
};

struct Scheduler::Seq {
  ReqState* req = nullptr;
  int32_t choice = 0;
  std::vector<int32_t> tokens;  // prompt + generated
  // Prefix-cache numerics class of each token (see PrefixCache): the token's row order when
  // the model's numbers depend on it, else 0.
  std::vector<uint8_t> numerics;
  int32_t n_computed = 0;       // positions whose K/V are in the table
  kv::BlockTable table;
  sampling::Sampler sampler;
  sampling::PenaltyState penalties;
  std::unique_ptr<tokenizer::Detokenizer> detok;
  int32_t n_generated = 0;
  bool running = false, finished = false;
  std::unique_ptr<TokenMask> mask;  // grammar hook, created at the first sample
  Clock::time_point last_token;
  // Speculation: guessed tokens after `tokens`, computed in this step's forward (positions
  // tokens.size() onwards) and verified by SampleFrom; never part of tokens until sampled.
  std::vector<int32_t> draft;
  Acceptance acceptance;  // of this sequence's drafted tokens, for adaptive draft lengths
  // Draft-model speculation: the draft model's blocks, and positions whose K/V it holds.
  kv::BlockTable draft_table;
  int32_t draft_computed = 0;

  explicit Seq(const sampling::SamplingParams& p) : sampler(p) {}
  // The row order of position pos, from its role alone (never from batching): the prompt of
  // a prompt of >= 2 tokens as llama.cpp computes a prompt (one batch), every other token as
  // it computes a decoded token (alone). Chunking, cache hits and recompute keep the numbers.
  backend::RowOrder OrderOf(int32_t pos) const {
    const int32_t n_prompt = req->n_prompt;
    return pos < n_prompt && n_prompt >= 2 ? backend::RowOrder::kBatched
                                           : backend::RowOrder::kSingle;
  }
  void Append(int32_t id, bool row_orders) {
    const int32_t pos = static_cast<int32_t>(tokens.size());
    tokens.push_back(id);
    numerics.push_back(row_orders ? static_cast<uint8_t>(OrderOf(pos)) : 0);
  }
  int32_t Remaining() const { return static_cast<int32_t>(tokens.size()) - n_computed; }
};

Scheduler::Scheduler(const SchedulerConfig& config, StepModel* model,
                     std::shared_ptr<const tokenizer::Tokenizer> tokenizer)
    : config_(config),
      model_(model),
      tok_(std::move(tokenizer)),
      pool_(config.n_blocks, config.block_tokens),
      cache_(&pool_),
      ngram_pool_(config.speculate.ngram_min, config.speculate.ngram_max,
                  std::max(config.speculate.pool_ngrams, 1)) {
  KILN_CHECK(config.max_sequences > 0 && config.prefill_chunk > 0 && config.max_context > 1)
      << "bad scheduler config";
  stats_.kv_blocks_total = config.n_blocks;
  stats_.kv_block_tokens = config.block_tokens;
  row_orders_ = model_->UsesRowOrders();
}

Scheduler::~Scheduler() { AbortAll(); }

bool Scheduler::Older(const Seq& a, const Seq& b) const {
  if (a.req->req.priority != b.req->req.priority) return a.req->req.priority < b.req->req.priority;
  if (a.req->order != b.req->order) return a.req->order < b.req->order;
  return a.choice < b.choice;
}

void Scheduler::EnqueueWaiting(Seq* s) {
  auto it = std::upper_bound(waiting_.begin(), waiting_.end(), s,
                             [&](const Seq* a, const Seq* b) { return Older(*a, *b); });
  waiting_.insert(it, s);
}

void Scheduler::Add(Request request) {
  KILN_CHECK(!request.prompt.empty() &&
             static_cast<int32_t>(request.prompt.size()) < config_.max_context)
      << "unvalidated request: prompt of " << request.prompt.size();
  auto rs = std::make_unique<ReqState>();
  rs->order = next_order_++;
  rs->arrival = Clock::now();
  rs->n_prompt = static_cast<int32_t>(request.prompt.size());
  rs->req = std::move(request);
  sampling::SamplingParams sp = rs->req.options.sampling;
  auto seq = std::make_unique<Seq>(sp);
  seq->req = rs.get();
  for (int32_t id : rs->req.prompt) seq->Append(id, row_orders_);
  seq->penalties.AddPrompt(rs->req.prompt);
  if (tok_) seq->detok = std::make_unique<tokenizer::Detokenizer>(tok_, rs->req.options.stop);
  EnqueueWaiting(seq.get());
  rs->seqs.push_back(std::move(seq));
  stats_.prompt_tokens_total += rs->n_prompt;
  requests_.push_back(std::move(rs));
}

int32_t Scheduler::AllocateBlock() {
  int32_t id = pool_.Allocate();
  if (id < 0 && cache_.Evict(1) == 1) id = pool_.Allocate();
  return id;
}

bool Scheduler::EnsureBlocks(Seq& s, int32_t n_positions) {
  const int32_t bt = config_.block_tokens;
  // Copy-on-write: the partial block the next row writes into is shared with a fork.
  if (s.n_computed % bt != 0) {
    const int32_t idx = s.n_computed / bt;
    const int32_t old = s.table.blocks()[idx];
    if (pool_.RefCount(old) > 1) {
      const int32_t fresh = AllocateBlock();
      if (fresh < 0) return false;
      model_->CopyBlock(old, fresh);
      pool_.Unref(old);
      s.table.ReplaceBlock(idx, fresh);
    }
  }
  while (s.table.NumBlocks() < kv::BlockTable::BlocksFor(n_positions, bt)) {
    const int32_t id = AllocateBlock();
    if (id < 0) return false;
    s.table.AppendBlock(id);
  }
  return true;
}

void Scheduler::CacheFullBlocks(const Seq& s) {
  if (!config_.prefix_cache) return;
  const int32_t n_full = s.n_computed / config_.block_tokens;
  if (n_full > 0) cache_.Insert(s.tokens, s.numerics, s.table.blocks(), n_full);
}

void Scheduler::Preempt(Seq& s) {
  CacheFullBlocks(s);  // recompute then reuses them unless they get evicted meanwhile
  s.table.Release(pool_);
  s.n_computed = 0;
  s.draft.clear();
  ReleaseDraftKv(s);
  s.running = false;
  running_.erase(std::find(running_.begin(), running_.end(), &s));
  EnqueueWaiting(&s);
  ++stats_.preemptions;
}

bool Scheduler::PreemptYoungest(const Seq* requester) {
  Seq* youngest = nullptr;
  for (Seq* s : running_) {
    if (youngest == nullptr || Older(*youngest, *s)) youngest = s;
  }
  if (youngest == nullptr) return false;
  const bool self = youngest == requester;
  Preempt(*youngest);
  return !self;
}

void Scheduler::HandleCancellations() {
  for (auto& rs : requests_) {
    if (!rs->req.stream->cancelled()) continue;
    for (auto& s : rs->seqs) {
      if (s->finished) continue;
      Event e;
      e.choice = s->choice;
      Finish(*s, e, "abort");
      rs->req.stream->Push(std::move(e));
    }
  }
  EraseFinishedRequests();
}

std::vector<Scheduler::Scheduled> Scheduler::Schedule() {
  std::vector<Scheduled> out;
  // 1. Running sequences, oldest first: decodes take one row; prefills share the chunk budget.
  int32_t budget = config_.prefill_chunk;
  std::vector<Seq*> order = running_;
  std::sort(order.begin(), order.end(), [&](const Seq* a, const Seq* b) { return Older(*a, *b); });
  Draft(order);
  for (Seq* s : order) {
    if (!s->running) continue;  // preempted by an older sequence in this loop
    const int32_t rem = s->Remaining();
    int32_t rows = rem == 1 ? 1 + static_cast<int32_t>(s->draft.size()) : std::min(rem, budget);
    if (rows == 0) continue;
    if (rows > 1 && rem == 1 && !EnsureBlocks(*s, s->n_computed + rows)) {
      DropDraft(*s);  // a guess never takes a block a real row needs
      rows = 1;
    }
    bool ok = EnsureBlocks(*s, s->n_computed + rows);
    while (!ok) {
      if (!PreemptYoungest(s)) break;  // s itself was preempted
      ok = EnsureBlocks(*s, s->n_computed + rows);
    }
    if (!ok) continue;
    if (rem > 1) budget -= rows;
    out.push_back({s, rows});
  }
  // 2. Admit waiting sequences while sequence slots, budget and blocks last (FCFS: stop at the
  // first that does not fit).
  while (!waiting_.empty() && budget > 0 &&
         static_cast<int32_t>(running_.size()) < config_.max_sequences) {
    Seq* s = waiting_.front();
    const int32_t bt = config_.block_tokens;
    std::vector<int32_t> hit;
    int32_t matched = 0;
    if (config_.prefix_cache) {
      matched = cache_.Match(s->tokens, s->numerics, static_cast<int32_t>(s->tokens.size()) - 1,
                             &hit);
    }
    const int32_t rows = std::min(static_cast<int32_t>(s->tokens.size()) - matched, budget);
    const int32_t need = kv::BlockTable::BlocksFor(matched + rows, bt) - matched / bt;
    if (pool_.NumFree() + cache_.NumEvictable() < need) {
      for (int32_t id : hit) pool_.Unref(id);
      break;
    }
    waiting_.erase(waiting_.begin());
    for (int32_t id : hit) s->table.AppendBlock(id);
    s->n_computed = matched;
    s->table.SetNumTokens(matched);
    if (!s->req->prefix_queried) {  // first admission: this is the request's cache lookup
      s->req->prefix_queried = true;
      s->req->cached_tokens = matched;
      ++stats_.prefix_cache_queries;
      stats_.prefix_cache_hit_tokens += matched;
      stats_.prefix_cache_query_tokens += static_cast<int64_t>(s->tokens.size());
    }
    s->running = true;
    running_.push_back(s);
    if (!EnsureBlocks(*s, matched + rows)) {  // evictable count was optimistic: retry later
      Preempt(*s);
      --stats_.preemptions;
      break;
    }
    budget -= rows;
    out.push_back({s, rows});
  }
  return out;
}

void Scheduler::Step() {
  HandleCancellations();
  std::vector<Scheduled> sched = Schedule();
  stats_.waiting = static_cast<int64_t>(waiting_.size());
  stats_.running = static_cast<int64_t>(running_.size());
  if (sched.empty()) {  // cancellations may have freed blocks
    UpdateKvStats();
    return;
  }
  batch_.Clear();
  std::vector<const std::vector<int32_t>*> tables;
  bool decode_only = true;  // every row a decode or a drafted token: a StepCost sample
  for (size_t i = 0; i < sched.size(); ++i) {
    Seq& s = *sched[i].seq;
    decode_only = decode_only && s.Remaining() == 1;
    tables.push_back(&s.table.blocks());
    const int32_t n_tokens = static_cast<int32_t>(s.tokens.size());
    for (int32_t r = 0; r < sched[i].n_rows; ++r) {
      // Logits for the last token and every drafted one (verification samples each).
      const int32_t pos = s.n_computed + r;
      const int32_t token = pos < n_tokens ? s.tokens[pos] : s.draft[pos - n_tokens];
      batch_.Add(token, pos, static_cast<int32_t>(i), pos + 1 >= n_tokens, s.OrderOf(pos));
    }
  }
  // A request of this step cancelled meanwhile (or Interrupt) stops the forward between
  // layers: nothing advances, and the next Step drops the cancelled request and redoes the rest.
  model_->SetAbortCheck([this, &sched] {
    if (interrupted_.load(std::memory_order_relaxed)) return true;
    for (const Scheduled& sc : sched) {
      if (sc.seq->req->req.stream->cancelled()) return true;
    }
    return false;
  });
  const Clock::time_point t0 = Clock::now();
  const Status st = model_->Forward(batch_, tables, &logits_);
  model_->SetAbortCheck(nullptr);
  if (st.ok() && decode_only) {
    step_cost_.Observe(static_cast<int32_t>(batch_.rows.size()), MsBetween(t0, Clock::now()));
  }
  ++stats_.steps;
  if (st.code() == StatusCode::kCancelled) {
    ++stats_.aborted_steps;
    for (const Scheduled& sc : sched) DropDraft(*sc.seq);
    UpdateKvStats();
    return;
  }
  if (!st.ok()) {
    KILN_LOG(kError, "engine step failed: %s", st.ToString().c_str());
    for (const Scheduled& sc : sched) {
      for (auto& s : sc.seq->req->seqs) {
        if (s->finished) continue;
        Event e;
        e.choice = s->choice;
        e.error = st.ToString();
        Finish(*s, e, "error");
        s->req->req.stream->Push(std::move(e));
      }
    }
    EraseFinishedRequests();
    return;
  }
  const int32_t n_vocab = model_->n_vocab();
  size_t logit_row = 0;
  for (const Scheduled& sc : sched) {
    Seq& s = *sc.seq;
    if (s.finished) continue;
    const int32_t before = s.n_computed;
    const int32_t n_draft = static_cast<int32_t>(s.draft.size());
    s.n_computed += sc.n_rows - n_draft;  // drafted rows count once verified (SampleFrom)
    s.table.SetNumTokens(s.n_computed);
    if (s.Remaining() == 0) {
      SampleFrom(s, logits_.data() + logit_row * n_vocab, n_draft);
      logit_row += 1 + n_draft;
    }
    // Only verified positions reach the prefix cache (Finish caches a finished sequence).
    if (!s.finished && s.n_computed / config_.block_tokens > before / config_.block_tokens) {
      CacheFullBlocks(s);
    }
  }
  EraseFinishedRequests();
  stats_.waiting = static_cast<int64_t>(waiting_.size());
  stats_.running = static_cast<int64_t>(running_.size());
  UpdateKvStats();
}

void Scheduler::UpdateKvStats() {
  stats_.kv_blocks_used = pool_.NumUsed();
  stats_.kv_blocks_cached = config_.prefix_cache ? cache_.NumEvictable() : 0;
  // Only running sequences hold blocks that are not full (cached blocks always are).
  const int32_t bt = config_.block_tokens;
  partial_blocks_.clear();
  for (const Seq* s : running_) {
    const std::vector<int32_t>& blocks = s->table.blocks();
    for (size_t i = s->n_computed / bt; i < blocks.size(); ++i) {
      const int32_t filled = std::clamp<int32_t>(s->n_computed - static_cast<int32_t>(i) * bt, 0, bt);
      partial_blocks_.push_back({blocks[i], filled});
    }
  }
  std::sort(partial_blocks_.begin(), partial_blocks_.end());
  int64_t unfilled = 0;
  for (size_t i = 0; i < partial_blocks_.size(); ++i) {
    // Sorted by (block, filled): the last entry of a block has the most tokens.
    if (i + 1 < partial_blocks_.size() && partial_blocks_[i + 1].first == partial_blocks_[i].first) {
      continue;
    }
    unfilled += bt - partial_blocks_[i].second;
  }
  // Blocks only the prefix cache holds are full and reclaimable on demand: not counted.
  stats_.kv_slots_allocated = (stats_.kv_blocks_used - cache_.NumEvictable()) * bt;
  stats_.kv_slots_unfilled = unfilled;
  stats_.kv_slot_steps_allocated += stats_.kv_slots_allocated;
  stats_.kv_slot_steps_unfilled += unfilled;
}

void Scheduler::Fork(Seq& parent) {
  ReqState& rs = *parent.req;
  rs.forked = true;
  const RequestOptions& o = rs.req.options;
  for (int32_t c = 1; c < o.n; ++c) {
    sampling::SamplingParams sp = o.sampling;
    sp.seed = ChoiceSeed(o.sampling.seed, c);
    auto child = std::make_unique<Seq>(sp);
    child->req = &rs;
    child->choice = c;
    child->tokens = parent.tokens;
    child->numerics = parent.numerics;
    child->n_computed = parent.n_computed;
    child->table = parent.table.Fork(pool_);
    child->penalties = parent.penalties;
    if (tok_) child->detok = std::make_unique<tokenizer::Detokenizer>(tok_, o.stop);
    child->running = true;
    running_.push_back(child.get());
    rs.seqs.push_back(std::move(child));
  }
}

void Scheduler::Draft(const std::vector<Seq*>& by_age) {
  for (Seq* s : by_age) s->draft.clear();
  const SpeculateConfig& sc = config_.speculate;
  if (!sc.enabled) return;
  int32_t decode_rows = 0;
  for (const Seq* s : by_age) decode_rows += s->Remaining() == 1 ? 1 : 0;
  int32_t room = sc.step_rows - decode_rows;
  int32_t rows = decode_rows;  // this step's rows and expected tokens, as drafts are added
  double tokens = decode_rows;
  // Blocks for guesses come from the free list only (never by evicting cached prefixes), with
  // a block per running sequence kept back for real rows.
  int32_t spare_blocks = pool_.NumFree() - static_cast<int32_t>(running_.size());
  const int32_t bt = config_.block_tokens;
  std::vector<std::pair<Seq*, int32_t>> wanted;  // draft model: (sequence, guesses)
  for (Seq* s : by_age) {
    if (room < sc.draft_min) break;
    const RequestOptions& o = s->req->req.options;
    if (!o.speculate || s->Remaining() != 1 || s->n_generated == 0) continue;
    const int32_t n_tokens = static_cast<int32_t>(s->tokens.size());
    // Drafted tokens at positions n_tokens.. stay inside the context, and leave the last of
    // max_tokens to the row after them.
    int32_t limit = std::min({sc.draft_max, room, config_.max_context - n_tokens});
    if (o.max_tokens > 0) limit = std::min(limit, o.max_tokens - s->n_generated - 1);
    if (limit < sc.draft_min) continue;
    int32_t min_len = sc.draft_min;
    if (sc.adaptive) {  // only as many as this sequence's acceptance rate pays for
      limit = BestDraftLength(s->acceptance.p(), limit, rows, tokens, step_cost_,
                              draft_model_ ? draft_forward_ms_ : 0);
      if (limit < sc.draft_min) {
        s->acceptance.Idle();
        continue;
      }
      min_len = limit;
    }
    std::vector<int32_t> draft;
    if (!draft_model_) {
      draft = LookupDraft(s->tokens, sc.ngram_min, sc.ngram_max, min_len, limit);
      if (static_cast<int32_t>(draft.size()) < sc.draft_min && !o.prediction.empty()) {
        draft = LookupPrediction(o.prediction, s->tokens, s->n_generated, sc.ngram_min,
                                 sc.ngram_max, limit);
      }
      if (static_cast<int32_t>(draft.size()) < sc.draft_min && sc.pool_ngrams > 0) {
        draft = ngram_pool_.Lookup(s->tokens, limit);  // seen in an earlier request?
      }
      if (static_cast<int32_t>(draft.size()) < sc.draft_min) continue;
    }
    // A draft model's guesses come below, all sequences together; room for `limit` of them.
    const int32_t n_draft = draft_model_ ? limit : static_cast<int32_t>(draft.size());
    const int32_t need =
        std::max(0, kv::BlockTable::BlocksFor(n_tokens + n_draft, bt) - s->table.NumBlocks()) + 1;
    if (need > spare_blocks) continue;
    spare_blocks -= need;
    room -= n_draft;
    rows += n_draft;
    tokens += ExpectedAccepted(s->acceptance.p(), n_draft);
    if (draft_model_) {
      wanted.push_back({s, n_draft});
    } else {
      s->draft = std::move(draft);
    }
  }
  if (!wanted.empty()) RunDraftModel(wanted);
  // Guesses a constraint would refuse are cut before they cost rows (the refused token could
  // never be sampled, so nothing after it could be kept).
  for (Seq* s : by_age) {
    if (s->draft.empty() || !s->mask) continue;
    s->draft.resize(s->mask->AllowedPrefix(s->draft));
    if (static_cast<int32_t>(s->draft.size()) < sc.draft_min) s->draft.clear();
  }
}

void Scheduler::SetDraftModel(StepModel* draft, int32_t n_blocks) {
  KILN_CHECK(draft != nullptr && n_blocks > 0 && requests_.empty()) << "bad draft model setup";
  draft_model_ = draft;
  draft_pool_ = std::make_unique<kv::BlockPool>(n_blocks, config_.block_tokens);
}

void Scheduler::ReleaseDraftKv(Seq& s) {
  if (draft_pool_) s.draft_table.Release(*draft_pool_);
  s.draft_computed = 0;
}

// Greedy guesses from the draft model, `k` per sequence: the first forward catches each
// sequence's draft K/V up with its tokens (its last token's logits give guess 1), each next
// forward feeds the previous guess. The sequences share every forward.
void Scheduler::RunDraftModel(const std::vector<std::pair<Seq*, int32_t>>& wanted) {
  const int32_t bt = config_.block_tokens;
  std::vector<std::pair<Seq*, int32_t>> active;
  for (const auto& [s, k] : wanted) {
    const int32_t n_tokens = static_cast<int32_t>(s->tokens.size());
    // Positions the draft model computes: up to n_tokens - 1 + (k - 1).
    bool ok = true;
    while (ok && s->draft_table.NumBlocks() < kv::BlockTable::BlocksFor(n_tokens + k - 1, bt)) {
      const int32_t id = draft_pool_->Allocate();
      ok = id >= 0;
      if (ok) s->draft_table.AppendBlock(id);
    }
    if (ok) active.push_back({s, k});
  }
  const int32_t n_vocab = model_->n_vocab();
  for (int32_t round = 0; !active.empty(); ++round) {
    draft_batch_.Clear();
    std::vector<const std::vector<int32_t>*> tables;
    for (size_t i = 0; i < active.size(); ++i) {
      Seq& s = *active[i].first;
      tables.push_back(&s.draft_table.blocks());
      const int32_t n_tokens = static_cast<int32_t>(s.tokens.size());
      for (int32_t pos = s.draft_computed; pos < n_tokens + round; ++pos) {
        const int32_t token = pos < n_tokens ? s.tokens[pos] : s.draft[pos - n_tokens];
        draft_batch_.Add(token, pos, static_cast<int32_t>(i), pos + 1 == n_tokens + round);
      }
    }
    const Clock::time_point t0 = Clock::now();
    const Status st = draft_model_->Forward(draft_batch_, tables, &draft_logits_);
    // The cost of a guess: forwards of about a row per sequence (not a prompt's catch-up).
    if (st.ok() && draft_batch_.rows.size() <= 2 * active.size()) {
      const double ms = MsBetween(t0, Clock::now());
      draft_forward_ms_ = draft_forward_ms_ == 0 ? ms : 0.9 * draft_forward_ms_ + 0.1 * ms;
    }
    if (!st.ok()) {  // no guesses this step; the target decodes as usual
      KILN_LOG(kWarn, "draft model step failed: %s", st.ToString().c_str());
      for (auto& [s, k] : active) {
        s->draft.clear();
        s->draft_computed = 0;  // recomputed from the start next time
      }
      return;
    }
    const int32_t d_vocab = draft_model_->n_vocab();
    std::vector<std::pair<Seq*, int32_t>> next;
    for (size_t i = 0; i < active.size(); ++i) {
      Seq& s = *active[i].first;
      s.draft_computed = static_cast<int32_t>(s.tokens.size()) + round;
      const float* row = draft_logits_.data() + i * static_cast<size_t>(d_vocab);
      const int32_t id = static_cast<int32_t>(std::max_element(row, row + d_vocab) - row);
      if (id >= n_vocab) continue;  // a padding id the target has not: stop guessing
      s.draft.push_back(id);
      if (static_cast<int32_t>(s.draft.size()) < active[i].second) next.push_back(active[i]);
    }
    active = std::move(next);
  }
}

void Scheduler::RollBackDraftKv(Seq& s, int32_t valid) {
  if (!draft_pool_ || s.draft_computed <= valid) return;
  s.draft_computed = valid;
  s.draft_table.Truncate(std::min(s.draft_table.NumBlocks(),
                                  kv::BlockTable::BlocksFor(valid, config_.block_tokens)),
                         valid, *draft_pool_);
}

void Scheduler::DropDraft(Seq& s) {
  s.draft.clear();
  if (!s.running) return;
  // The draft model computed real tokens only below tokens.size(); guesses beyond go.
  RollBackDraftKv(s, static_cast<int32_t>(s.tokens.size()));
  const int32_t keep = kv::BlockTable::BlocksFor(static_cast<int32_t>(s.tokens.size()),
                                                 config_.block_tokens);
  s.table.Truncate(std::min(s.table.NumBlocks(), keep), s.n_computed, pool_);
}

bool Scheduler::AtLength(const Seq& s) const {
  const int32_t max_tokens = s.req->req.options.max_tokens;
  return s.n_generated == max_tokens || static_cast<int32_t>(s.tokens.size()) >= config_.max_context;
}

namespace {
bool IsStopId(const RequestOptions& o, int32_t t) {
  return std::find(o.stop_token_ids.begin(), o.stop_token_ids.end(), t) != o.stop_token_ids.end();
}
}  // namespace

// Samples the sequence's next token from one row of logits: grammar mask, penalties, biases,
// min_tokens, then the sampler (and logprobs). False when the choice ended instead (a grammar
// that allows nothing).
bool Scheduler::Choose(Seq& s, const float* logits, Event& e, int32_t* id) {
  const RequestOptions& o = s.req->req.options;
  const int32_t n_vocab = model_->n_vocab();
  scratch_.assign(logits, logits + n_vocab);
  std::span<float> row(scratch_);
  // The grammar mask (#7) comes first; penalties and biases only reorder allowed tokens.
  if (o.token_mask_factory && s.n_generated == 0 && !s.mask) s.mask = o.token_mask_factory();
  const bool masked = s.mask && s.mask->Fill(&mask_bits_);
  if (masked) sampling::ApplyTokenBitmask(mask_bits_, row);
  s.penalties.Apply(o.penalties, row);
  sampling::ApplyLogitBias(o.logit_bias, row);
  if (s.n_generated < o.min_tokens) {
    sampling::BanTokens(o.stop_token_ids, row);
    if (tok_ && !o.ignore_eos) sampling::BanTokens(tok_->eog_ids(), row);
  }
  if (masked && !(*std::max_element(row.begin(), row.end()) > -INFINITY)) {
    // Nothing allowed: the grammar may only end but min_tokens bans EOG ("stop"), or a bug.
    if (tok_ && AnyAllowedOf(mask_bits_, tok_->eog_ids())) {
      Finish(s, e, "stop");
    } else {
      e.error = s.mask->Error().empty() ? "constraint: the grammar allows no token"
                                        : s.mask->Error();
      Finish(s, e, "error");
    }
    return false;
  }
  *id = s.sampler.Sample(row);
  if (o.logprobs) {
    sampling::LogSoftmax(row, &logprobs_);
    LogprobEntry entry;
    entry.token = {*id, logprobs_[*id]};
    for (const auto& [tid, lp] : sampling::TopK(logprobs_, o.top_logprobs)) {
      entry.top.push_back({tid, lp});
    }
    e.logprobs.push_back(std::move(entry));
  }
  return true;
}

// Appends a sampled token and applies the stop rules. False when the choice ended.
bool Scheduler::Emit(Seq& s, int32_t id, Event& e) {
  ReqState& rs = *s.req;
  const RequestOptions& o = rs.req.options;
  s.Append(id, row_orders_);
  ++s.n_generated;
  ++rs.completion_tokens;
  ++stats_.generated_tokens_total;
  s.penalties.AddOutput(id);
  if (s.mask) s.mask->Accept(id);
  e.token_ids.push_back(id);
  const bool mask_done = s.mask && s.mask->Done();  // a finished grammar ends the choice
  const bool eog = (!o.ignore_eos || mask_done) && tok_ && tok_->IsEndOfGeneration(id);
  if (s.mask && !s.mask->Error().empty()) {
    e.error = s.mask->Error();
    Finish(s, e, "error");
    return false;
  }
  if (eog || IsStopId(o, id)) {
    Finish(s, e, "stop");
    return false;
  }
  if (s.detok) e.text += s.detok->Push(id);
  if ((s.detok && s.detok->stopped()) || mask_done) {
    Finish(s, e, "stop");
    return false;
  }
  if (AtLength(s)) {
    Finish(s, e, "length");
    return false;
  }
  return true;
}

// Jump-forward (#7): tokens the grammar forces are appended without sampling; the next step
// computes them like a prefill chunk. True when any was appended (the choice may have ended).
bool Scheduler::JumpForward(Seq& s, Event& e) {
  ReqState& rs = *s.req;
  const RequestOptions& o = rs.req.options;
  int32_t room = config_.max_context - static_cast<int32_t>(s.tokens.size());
  if (o.max_tokens > 0) room = std::min(room, o.max_tokens - s.n_generated);
  const std::vector<int32_t> forced = s.mask->Forced(room);
  if (forced.empty()) return false;
  bool stopped = false;
  for (int32_t f : forced) {
    s.Append(f, row_orders_);
    ++s.n_generated;
    ++rs.completion_tokens;
    ++stats_.generated_tokens_total;
    s.penalties.AddOutput(f);
    e.token_ids.push_back(f);
    ++e.n_forced;
    if (s.detok) e.text += s.detok->Push(f);
    stopped = (s.detok && s.detok->stopped()) || IsStopId(o, f);
    if (stopped) break;
  }
  if (stopped) {
    Finish(s, e, "stop");
  } else if (AtLength(s)) {
    Finish(s, e, "length");
  }
  return true;
}

// logits: n_draft + 1 rows, the last computed token's then each drafted token's. Verification
// samples row i exactly as decoding without a draft would (same pipeline, same RNG draw) and
// goes on to row i + 1 only when the sampled token is the drafted one, whose K/V is then
// already right; so the tokens never depend on the draft. Rejected positions are dropped.
void Scheduler::SampleFrom(Seq& first, const float* logits, int32_t n_draft) {
  ReqState& rs = *first.req;
  const RequestOptions& o = rs.req.options;
  const int32_t n_vocab = model_->n_vocab();
  std::vector<Seq*> targets = {&first};
  if (!rs.forked && o.n > 1) {
    Fork(first);
    for (size_t c = 1; c < rs.seqs.size(); ++c) targets.push_back(rs.seqs[c].get());
  }
  rs.forked = true;
  const Clock::time_point now = Clock::now();
  if (!rs.first_token) {
    rs.first_token = true;
    stats_.ttft_ms.Add(MsBetween(rs.arrival, now));
  }
  for (Seq* sp : targets) {
    Seq& s = *sp;
    Event e;
    e.choice = s.choice;
    if (s.n_generated > 0) stats_.itl_ms.Add(MsBetween(s.last_token, now));
    s.last_token = now;
    const std::vector<int32_t> draft = std::move(s.draft);
    s.draft.clear();
    rs.drafted += n_draft;  // counted before any Finish reports usage
    stats_.spec_drafted_tokens += n_draft;
    const int32_t accepted_before = rs.accepted;
    for (int32_t i = 0; i <= n_draft; ++i) {
      int32_t id = 0;
      if (!Choose(s, logits + static_cast<size_t>(i) * n_vocab, e, &id)) break;
      const bool hit = i < n_draft && id == draft[i];
      if (hit) {  // its K/V, computed from the drafted token, is the token's
        ++rs.accepted;
        ++stats_.spec_accepted_tokens;
        ++s.n_computed;
        s.table.SetNumTokens(s.n_computed);
      }
      if (!Emit(s, id, e)) break;
      if (s.mask && !o.logprobs && JumpForward(s, e)) break;
      if (!hit) break;
    }
    if (n_draft > 0) {
      s.acceptance.Verified(rs.accepted - accepted_before, n_draft);
      if (!s.finished) DropDraft(s);  // the rejected positions' blocks go back
    }
    if (!s.finished) RollBackDraftKv(s, s.n_computed);  // the draft model's rejected guesses
    rs.req.stream->Push(std::move(e));
  }
}

void Scheduler::Finish(Seq& s, Event& e, const char* reason) {
  KILN_CHECK(!s.finished) << "finished twice";
  if (s.detok && !s.detok->stopped() && std::string(reason) != "error") e.text += s.detok->Finish();
  e.finish_reason = reason;
  s.finished = true;
  s.draft.clear();
  ReleaseDraftKv(s);
  const SpeculateConfig& sc = config_.speculate;
  if (sc.enabled && sc.pool_ngrams > 0 && !draft_model_ && std::string(reason) != "error") {
    ngram_pool_.Add(s.tokens);
  }
  if (s.running) {
    CacheFullBlocks(s);
    s.table.Release(pool_);
    s.running = false;
    running_.erase(std::find(running_.begin(), running_.end(), &s));
  } else {
    s.table.Release(pool_);
    auto it = std::find(waiting_.begin(), waiting_.end(), &s);
    if (it != waiting_.end()) waiting_.erase(it);
  }
  ReqState& rs = *s.req;
  ++rs.n_finished;
  // The request is done when every choice finished (choices not forked yet count as pending).
  const int32_t n_choices = rs.forked ? static_cast<int32_t>(rs.seqs.size()) : rs.req.options.n;
  if (rs.n_finished == n_choices || !rs.forked) {
    if (!rs.forked) {
      // Finished before its first token (abort/error): the other choices never started.
      for (int32_t c = 1; c < rs.req.options.n; ++c) {
        Event other;
        other.choice = c;
        other.finish_reason = reason;
        other.error = e.error;
        rs.req.stream->Push(std::move(other));
      }
      rs.n_finished = rs.req.options.n;
    }
    e.done = true;
    e.usage.prompt_tokens = rs.n_prompt;
    e.usage.completion_tokens = rs.completion_tokens;
    e.usage.cached_tokens = rs.cached_tokens;
    e.usage.drafted_tokens = rs.drafted;
    e.usage.accepted_tokens = rs.accepted;
    ++stats_.requests_finished;
  }
}

void Scheduler::EraseFinishedRequests() {
  std::erase_if(requests_, [](const std::unique_ptr<ReqState>& rs) {
    return rs->n_finished >= rs->req.options.n;
  });
}

void Scheduler::AbortAll() {
  for (auto& rs : requests_) rs->req.stream->Cancel();
  HandleCancellations();
  KILN_CHECK(requests_.empty() && running_.empty() && waiting_.empty()) << "abort left work";
}

}  // namespace kiln::engine
