// Scheduler against a FakeModel (no weights; MLC-LLM's mock-engine idea): the fake stores each
// row's (token, position) in the paged slots and computes logits from the history it READS BACK
// through the block table, checking every slot. So a wrong block table, a missed copy-on-write
// or a bad prefix-cache hit changes the output or fails the check. The oracle is the same
// logits function evaluated directly on the token history, sampled with the same Sampler.
#include "engine/scheduler.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <set>

namespace kiln::engine {
namespace {

constexpr int32_t kVocab = 64;

// copy_bias > 0 makes a model that tends to repeat itself (what prompt lookup bets on): the
// token that followed the last token's previous occurrence gets that much more logit.
void FakeLogits(const std::vector<int32_t>& history, float* out, float copy_bias = 0) {
  uint64_t h = 1469598103934665603ull;
  for (int32_t t : history) h = (h ^ static_cast<uint64_t>(t)) * 1099511628211ull;
  for (int32_t v = 0; v < kVocab; ++v) {
    const uint64_t x = (h ^ (static_cast<uint64_t>(v) * 0x9E3779B97F4A7C15ull)) * 0xBF58476D1CE4E5B9ull;
    out[v] = static_cast<float>((x >> 40) % 1000) / 250.0f;
  }
  if (copy_bias <= 0 || history.size() < 2) return;
  const int32_t last = history.back() % kVocab;
  for (size_t i = history.size() - 1; i-- > 0;) {
    if (history[i] % kVocab == last) {
      out[history[i + 1] % kVocab] += copy_bias;
      break;
    }
  }
}

// With row orders on (like llama.cpp's numerics), what a slot holds also depends on the order
// its row was computed in: the history entry of a position is token + kVocab * order code
// (0 batched, 1 single, 2 unset), so a row computed in another order than the oracle's, or a
// cached block computed in other orders, changes the logits.
int32_t HistoryEntry(int32_t token, int32_t order_code) { return token + kVocab * order_code; }
int32_t OrderCode(const std::optional<backend::RowOrder>& o) {
  return o ? static_cast<int32_t>(*o) : 2;
}

class FakeModel final : public StepModel {
 public:
  FakeModel(int32_t n_blocks, int32_t bt)
      : bt_(bt), token_(n_blocks * bt, -1), pos_(n_blocks * bt, -1), order_(n_blocks * bt, -1) {}
  int32_t n_vocab() const override { return kVocab; }
  bool UsesRowOrders() const override { return row_orders; }
  Status Forward(const model::Batch& batch, const std::vector<const std::vector<int32_t>*>& tables,
                 std::vector<float>* logits) override {
    ++calls;
    if (during_forward) during_forward(calls);
    max_rows = std::max(max_rows, batch.rows.size());
    std::map<int32_t, int> rows_per_seq;
    for (const model::BatchRow& r : batch.rows) {
      const int32_t slot = Slot(*tables[r.seq_idx], r.pos);
      token_[slot] = r.token;
      pos_[slot] = r.pos;
      row_log_.push_back({r.pos, r.token});
      order_[slot] = row_orders ? OrderCode(r.order) : 0;
      ++rows_per_seq[r.seq_idx];
    }
    // Like the real model between layers: stop after having written (some) K/V.
    if (abort_check_ && abort_check_()) return Cancelled("forward aborted");
    max_seqs = std::max(max_seqs, rows_per_seq.size());
    logits->assign(batch.NumLogitRows() * kVocab, 0);
    float* out = logits->data();
    for (const model::BatchRow& r : batch.rows) {
      if (!r.want_logits) continue;
      std::vector<int32_t> history;
      for (int32_t p = 0; p <= r.pos; ++p) {
        const int32_t slot = Slot(*tables[r.seq_idx], p);
        if (pos_[slot] != p) return Internal("slot %d holds position %d, want %d", slot, pos_[slot], p);
        history.push_back(HistoryEntry(token_[slot], order_[slot]));
      }
      FakeLogits(history, out, copy_bias);
      if (perturb_every > 0 && r.pos % perturb_every == 0) out[(r.pos * 7) % kVocab] += 1000;
      out += kVocab;
    }
    return Status::Ok();
  }
  void CopyBlock(int32_t src, int32_t dst) override {
    ++copies;
    for (int32_t i = 0; i < bt_; ++i) {
      token_[dst * bt_ + i] = token_[src * bt_ + i];
      pos_[dst * bt_ + i] = pos_[src * bt_ + i];
      order_[dst * bt_ + i] = order_[src * bt_ + i];
    }
  }
  int64_t odd_rows_after(size_t pos) const {
    int64_t n = 0;
    for (const auto& [p, t] : row_log_) n += p >= static_cast<int32_t>(pos) && t % 2 != 0;
    return n;
  }
  int calls = 0, copies = 0;
  size_t max_rows = 0, max_seqs = 0;
  bool row_orders = false;  // UsesRowOrders
  float copy_bias = 0;      // FakeLogits
  int32_t perturb_every = 0;  // > 0: the row at every such position prefers a fixed token
  std::function<void(int call)> during_forward;  // runs inside Forward (1-based call number)

 private:
  int32_t Slot(const std::vector<int32_t>& table, int32_t pos) const {
    return table.at(pos / bt_) * bt_ + pos % bt_;
  }
  int32_t bt_;
  std::vector<int32_t> token_, pos_, order_;
  std::vector<std::pair<int32_t, int32_t>> row_log_;  // (pos, token) of every row computed
};

// The oracle: generation straight from the history. row_orders: as a single sequence runs in
// llama.cpp, the prompt in one batch (order 0; a one-token prompt alone, 1), then each
// generated token alone (1).
std::vector<int32_t> Reference(const std::vector<int32_t>& prompt, const RequestOptions& o,
                               uint64_t seed, bool row_orders = false, float copy_bias = 0) {
  sampling::SamplingParams sp = o.sampling;
  sp.seed = seed;
  sampling::Sampler sampler(sp);
  std::vector<float> logits(kVocab);
  std::vector<int32_t> history, out;
  const int32_t prompt_code = row_orders ? (prompt.size() >= 2 ? 0 : 1) : 0;
  for (int32_t t : prompt) history.push_back(HistoryEntry(t, prompt_code));
  for (int32_t i = 0; i < o.max_tokens; ++i) {
    FakeLogits(history, logits.data(), copy_bias);
    const int32_t id = sampler.Sample(logits);
    out.push_back(id);
    history.push_back(HistoryEntry(id, row_orders ? 1 : 0));
  }
  return out;
}

struct Collected {
  std::map<int32_t, std::vector<int32_t>> tokens;  // per choice
  std::map<int32_t, std::string> finish;
  bool done = false;
  Usage usage;
};

Collected Drain(OutputStream& s) {
  Collected c;
  while (auto e = s.Pop(std::chrono::milliseconds(0))) {
    auto& v = c.tokens[e->choice];
    v.insert(v.end(), e->token_ids.begin(), e->token_ids.end());
    if (e->finish_reason) c.finish[e->choice] = *e->finish_reason;
    if (e->done) {
      c.done = true;
      c.usage = e->usage;
    }
  }
  return c;
}

std::vector<int32_t> Prompt(int n, int salt) {
  std::vector<int32_t> p(n);
  for (int i = 0; i < n; ++i) p[i] = (i * 7 + salt * 13) % kVocab;
  return p;
}

Request MakeRequest(std::vector<int32_t> prompt, int32_t max_tokens, float temp, uint64_t seed,
                    int32_t n = 1) {
  Request r;
  r.prompt = std::move(prompt);
  r.options.max_tokens = max_tokens;
  r.options.sampling.temperature = temp;
  r.options.sampling.seed = seed;
  r.options.n = n;
  r.stream = std::make_shared<OutputStream>();
  return r;
}

void RunToEnd(Scheduler& s, int max_steps = 100000) {
  for (int i = 0; i < max_steps && s.HasWork(); ++i) s.Step();
  ASSERT_FALSE(s.HasWork()) << "did not finish";
}

struct Rig {
  SchedulerConfig config;
  std::unique_ptr<FakeModel> model;
  std::unique_ptr<Scheduler> sched;
  explicit Rig(SchedulerConfig c) : config(c) {
    model = std::make_unique<FakeModel>(c.n_blocks, c.block_tokens);
    sched = std::make_unique<Scheduler>(c, model.get(), nullptr);
  }
};

SchedulerConfig Config(int32_t n_blocks, int32_t max_seqs, int32_t chunk, int32_t bt = 4) {
  SchedulerConfig c;
  c.n_blocks = n_blocks;
  c.block_tokens = bt;
  c.max_sequences = max_seqs;
  c.prefill_chunk = chunk;
  c.max_context = 256;
  return c;
}

// 16 requests of different lengths, greedy and seeded, under several configurations: each
// request's tokens equal the oracle's, and all blocks return to the pool (after the cache is
// cleared).
void CheckLoad(SchedulerConfig c, bool expect_preemption, bool row_orders = false) {
  Rig s(c);
  s.model->row_orders = row_orders;
  s.sched = std::make_unique<Scheduler>(c, s.model.get(), nullptr);  // reads UsesRowOrders
  std::vector<Request> reqs;
  std::vector<std::shared_ptr<OutputStream>> streams;
  for (int i = 0; i < 16; ++i) {
    // Prompts of 1..41 tokens (1 and 41 = a chunk + 1 with chunk 8 or 16 and blocks of 4).
    const int n_prompt = i == 15 ? 1 : 3 + (i * 11) % 40;
    Request r = MakeRequest(Prompt(n_prompt, i % 5), 5 + (i * 7) % 30,
                            i % 2 ? 0.8f : 0.0f, 1000 + i);
    reqs.push_back(r);
    streams.push_back(r.stream);
    s.sched->Add(r);
  }
  RunToEnd(*s.sched);
  for (int i = 0; i < 16; ++i) {
    Collected got = Drain(*streams[i]);
    ASSERT_TRUE(got.done) << i;
    EXPECT_EQ(got.tokens[0], Reference(reqs[i].prompt, reqs[i].options, 1000 + i, row_orders))
        << "request " << i;
    EXPECT_EQ(got.finish[0], "length");
    EXPECT_EQ(got.usage.completion_tokens, reqs[i].options.max_tokens);
  }
  EXPECT_EQ(s.sched->stats().preemptions > 0, expect_preemption);
  EXPECT_LE(s.model->max_seqs, static_cast<size_t>(c.max_sequences));
  s.sched->prefix_cache().Clear();
  EXPECT_EQ(s.sched->pool().NumFree(), c.n_blocks);
}

TEST(SchedulerTest, ManyRequestsMatchOracleWithRoomForAll) { CheckLoad(Config(512, 16, 64), false); }
TEST(SchedulerTest, TinyKvBudgetPreemptsAndStillMatches) { CheckLoad(Config(20, 16, 16), true); }
TEST(SchedulerTest, OneAtATime) { CheckLoad(Config(64, 1, 8), false); }
// A model whose numbers depend on each row's order (llama.cpp's): the orders come from the
// rows' roles, whatever the chunking, batching, preemption or cache hits.
TEST(SchedulerTest, RowOrdersFollowTheRoleUnderLoad) {
  CheckLoad(Config(512, 16, 64), false, true);
  CheckLoad(Config(20, 16, 16), true, true);
  CheckLoad(Config(64, 1, 8), false, true);
}

// A follow-up prompt = an earlier request's prompt + its generated tokens: with row orders the
// cache gives back only the blocks inside the earlier prompt (its generated tokens were
// computed alone, the follow-up computes them as prompt); without, every full block.
TEST(SchedulerTest, CachedBlocksOfGeneratedTokensServeOnlyModelsWithoutRowOrders) {
  for (bool row_orders : {false, true}) {
    SCOPED_TRACE(row_orders ? "row orders" : "no row orders");
    Rig s(Config(64, 4, 64));
    s.model->row_orders = row_orders;
    s.sched = std::make_unique<Scheduler>(s.config, s.model.get(), nullptr);
    Request a = MakeRequest(Prompt(6, 1), 10, 0.0f, 1);
    s.sched->Add(a);
    RunToEnd(*s.sched);
    const std::vector<int32_t> a_out = Drain(*a.stream).tokens[0];
    ASSERT_EQ(a_out.size(), 10u);
    std::vector<int32_t> follow = a.prompt;  // 6 prompt + 10 generated + 2 = 18 tokens
    follow.insert(follow.end(), a_out.begin(), a_out.end());
    follow.push_back(3);
    follow.push_back(5);
    Request b = MakeRequest(follow, 4, 0.8f, 2);
    s.sched->Add(b);
    RunToEnd(*s.sched);
    Collected got = Drain(*b.stream);
    EXPECT_EQ(got.tokens[0], Reference(follow, b.options, 2, row_orders));
    // a computed 15 positions (3 full blocks of 4); with orders only block 0 (positions 0..3)
    // holds prompt rows alone.
    EXPECT_EQ(got.usage.cached_tokens, row_orders ? 4 : 12);
  }
}
TEST(SchedulerTest, NoPrefixCacheUnderPressure) {
  SchedulerConfig c = Config(20, 8, 16);
  c.prefix_cache = false;
  CheckLoad(c, true);
}

TEST(SchedulerTest, ChunkedPrefillDoesNotStallRunningDecodes) {
  Rig s(Config(128, 4, 8));
  Request a = MakeRequest(Prompt(5, 1), 40, 0.0f, 1);
  s.sched->Add(a);
  for (int i = 0; i < 3; ++i) s.sched->Step();  // a is decoding
  ASSERT_EQ(Drain(*a.stream).tokens[0].size(), 3u);
  Request b = MakeRequest(Prompt(100, 2), 3, 0.0f, 2);
  s.sched->Add(b);
  int a_tokens = 0;
  for (int i = 0; i < 13; ++i) {
    s.sched->Step();
    a_tokens += static_cast<int>(Drain(*a.stream).tokens[0].size());
  }
  EXPECT_EQ(a_tokens, 13);  // one token per step while b's 100-token prompt is prefilled
  EXPECT_LE(s.model->max_rows, 8u + 1u);
  EXPECT_EQ(Drain(*b.stream).tokens[0].size(), 1u);  // b's prefill took 13 chunks of 8
  RunToEnd(*s.sched);
}

TEST(SchedulerTest, NChoicesShareThePromptWithCopyOnWrite) {
  Rig s(Config(64, 8, 64));
  Request r = MakeRequest(Prompt(10, 3), 12, 1.0f, 77, /*n=*/4);  // 10 % 4 != 0: shared partial block
  s.sched->Add(r);
  s.sched->Step();  // prefill + first tokens of all 4 choices
  EXPECT_EQ(s.sched->pool().NumUsed(), 3);  // the 3 prompt blocks, shared
  RunToEnd(*s.sched);
  Collected got = Drain(*r.stream);
  ASSERT_TRUE(got.done);
  EXPECT_GT(s.model->copies, 0);
  std::set<std::vector<int32_t>> distinct;
  for (int c = 0; c < 4; ++c) {
    const uint64_t seed = c == 0 ? 77 : 77 ^ (0x9E3779B97F4A7C15ull * c);
    EXPECT_EQ(got.tokens[c], Reference(r.prompt, r.options, seed)) << "choice " << c;
    distinct.insert(got.tokens[c]);
  }
  EXPECT_EQ(distinct.size(), 4u);
  EXPECT_EQ(got.usage.completion_tokens, 48);
  s.sched->prefix_cache().Clear();
  EXPECT_EQ(s.sched->pool().NumFree(), 64);
}

TEST(SchedulerTest, CancelFreesBlocksAtTheNextStep) {
  Rig s(Config(64, 4, 64));
  Request a = MakeRequest(Prompt(30, 1), 100, 0.0f, 1, 2);
  Request b = MakeRequest(Prompt(9, 2), 100, 0.0f, 1);
  s.sched->Add(a);
  s.sched->Add(b);
  for (int i = 0; i < 5; ++i) s.sched->Step();
  const int32_t used = s.sched->pool().NumUsed();
  a.stream->Cancel();
  s.sched->Step();
  EXPECT_LT(s.sched->pool().NumUsed(), used);
  Collected got = Drain(*a.stream);
  EXPECT_TRUE(got.done);
  EXPECT_EQ(got.finish[0], "abort");
  EXPECT_EQ(got.finish[1], "abort");
  b.stream->Cancel();
  s.sched->Step();
  EXPECT_FALSE(s.sched->HasWork());
  s.sched->prefix_cache().Clear();
  EXPECT_EQ(s.sched->pool().NumFree(), 64);
}

TEST(SchedulerTest, CancelDuringAForwardStopsThatStepAndRedoesTheOthersRows) {
  Rig s(Config(128, 4, 8));
  Request a = MakeRequest(Prompt(5, 1), 20, 0.0f, 1);
  Request b = MakeRequest(Prompt(100, 2), 5, 0.0f, 2);
  s.sched->Add(a);
  s.sched->Add(b);
  s.model->during_forward = [&](int call) {
    if (call == 4) b.stream->Cancel();  // b is still prefilling: step 4 stops early
  };
  RunToEnd(*s.sched);
  EXPECT_EQ(s.sched->stats().aborted_steps, 1);
  Collected got_a = Drain(*a.stream), got_b = Drain(*b.stream);
  EXPECT_EQ(got_a.tokens[0], Reference(a.prompt, a.options, 1));  // a's rows were redone
  EXPECT_TRUE(got_b.done);
  EXPECT_EQ(got_b.finish[0], "abort");
  EXPECT_TRUE(got_b.tokens[0].empty());
  s.sched->prefix_cache().Clear();
  EXPECT_EQ(s.sched->pool().NumFree(), 128);
}

TEST(SchedulerTest, InterruptStopsTheStepInProgressThenAbortAllEndsEverything) {
  Rig s(Config(128, 4, 8));
  Request a = MakeRequest(Prompt(40, 1), 20, 0.0f, 1);
  s.sched->Add(a);
  s.model->during_forward = [&](int call) {
    if (call == 2) s.sched->Interrupt();
  };
  for (int i = 0; i < 3; ++i) s.sched->Step();
  EXPECT_EQ(s.sched->stats().aborted_steps, 2);  // steps 2 and 3
  s.sched->AbortAll();
  Collected got = Drain(*a.stream);
  EXPECT_TRUE(got.done);
  EXPECT_EQ(got.finish[0], "abort");
  EXPECT_FALSE(s.sched->HasWork());
}

TEST(SchedulerTest, PrefixCacheHitGivesSameTokensAndCountsCachedTokens) {
  Rig s(Config(64, 4, 64));
  Request a = MakeRequest(Prompt(23, 4), 6, 0.7f, 5);
  s.sched->Add(a);
  RunToEnd(*s.sched);
  Collected first = Drain(*a.stream);
  Request b = MakeRequest(Prompt(23, 4), 6, 0.7f, 5);
  s.sched->Add(b);
  RunToEnd(*s.sched);
  Collected second = Drain(*b.stream);
  EXPECT_EQ(first.tokens[0], second.tokens[0]);
  EXPECT_EQ(first.usage.cached_tokens, 0);
  EXPECT_EQ(second.usage.cached_tokens, 20);  // 5 full blocks of 4 (the last token is recomputed)
  EXPECT_EQ(s.sched->stats().prefix_cache_hit_tokens, 20);
}

TEST(SchedulerTest, AdmissionRespectsMaxSequences) {
  Rig s(Config(256, 2, 64));
  std::vector<Request> reqs;
  for (int i = 0; i < 5; ++i) {
    reqs.push_back(MakeRequest(Prompt(4, i), 4, 0.0f, 1));
    s.sched->Add(reqs.back());
  }
  s.sched->Step();
  EXPECT_EQ(s.sched->stats().running, 2);
  EXPECT_EQ(s.sched->stats().waiting, 3);
  RunToEnd(*s.sched);
  EXPECT_EQ(s.model->max_seqs, 2u);
  for (Request& r : reqs) EXPECT_TRUE(Drain(*r.stream).done);
}

TEST(SchedulerTest, StopTokenIdsMinTokensAndPenaltiesApply) {
  Rig s(Config(64, 4, 64));
  Request r = MakeRequest(Prompt(6, 1), 30, 0.0f, 1);
  const std::vector<int32_t> ref = Reference(r.prompt, r.options, 1);
  r.options.stop_token_ids = {ref[3]};
  r.options.min_tokens = 0;
  s.sched->Add(r);
  RunToEnd(*s.sched);
  Collected got = Drain(*r.stream);
  // Stops at the first occurrence of ref[3] (included in token_ids, as EOS is).
  const auto first = std::find(ref.begin(), ref.end(), ref[3]);
  EXPECT_EQ(got.tokens[0], std::vector<int32_t>(ref.begin(), first + 1));
  EXPECT_EQ(got.finish[0], "stop");

  Request m = MakeRequest(Prompt(6, 1), 30, 0.0f, 1);
  m.options.stop_token_ids = {ref[0]};
  m.options.min_tokens = 2;  // ref[0] is banned for the first 2 tokens
  s.sched->Add(m);
  RunToEnd(*s.sched);
  got = Drain(*m.stream);
  ASSERT_GE(got.tokens[0].size(), 2u);
  EXPECT_NE(got.tokens[0][0], ref[0]);
  EXPECT_NE(got.tokens[0][1], ref[0]);
}

// Allows only even token ids and records what it was told.
class EvenOnly final : public TokenMask {
 public:
  explicit EvenOnly(std::vector<int32_t>* seen) : seen_(seen) {}
  bool Fill(std::vector<uint32_t>* allowed) override {
    allowed->assign((kVocab + 31) / 32, 0x55555555u);
    return true;
  }
  void Accept(int32_t token) override { seen_->push_back(token); }
  int32_t AllowedPrefix(std::span<const int32_t> tokens) override {
    int32_t n = 0;
    while (n < static_cast<int32_t>(tokens.size()) && tokens[n] % 2 == 0) ++n;
    return n;
  }

 private:
  std::vector<int32_t>* seen_;
};

TEST(SchedulerTest, TokenMaskHookRestrictsSampling) {
  Rig s(Config(64, 4, 64));
  std::vector<int32_t> seen;
  Request r = MakeRequest(Prompt(7, 2), 20, 1.0f, 9);
  r.options.token_mask_factory = [&] { return std::make_unique<EvenOnly>(&seen); };
  s.sched->Add(r);
  RunToEnd(*s.sched);
  Collected got = Drain(*r.stream);
  ASSERT_EQ(got.tokens[0].size(), 20u);
  for (int32_t t : got.tokens[0]) EXPECT_EQ(t % 2, 0) << t;
  EXPECT_EQ(seen, got.tokens[0]);
}

// Fragmentation accounting, worked by hand with 4-token blocks: allocated = used blocks x 4,
// unfilled = slots of those blocks holding no token; a partial block shared by forks counts
// once, and after copy-on-write each copy counts.
TEST(SchedulerTest, FragmentationCountsUnfilledSlotsOfUsedBlocks) {
  Rig s(Config(64, 4, 64));
  Request a = MakeRequest(Prompt(6, 1), 10, 0.0f, 1);
  s.sched->Add(a);
  auto frag = [&] {
    const SchedulerStats& st = s.sched->stats();
    return std::pair<int64_t, int64_t>{st.kv_slots_allocated, st.kv_slots_unfilled};
  };
  s.sched->Step();  // prefill 6 positions: blocks [4][2 of 4]
  EXPECT_EQ(frag(), (std::pair<int64_t, int64_t>{8, 2}));
  s.sched->Step();  // 7 positions
  EXPECT_EQ(frag(), (std::pair<int64_t, int64_t>{8, 1}));
  s.sched->Step();  // 8: two full blocks
  EXPECT_EQ(frag(), (std::pair<int64_t, int64_t>{8, 0}));
  s.sched->Step();  // 9: a third block with 1 token
  EXPECT_EQ(frag(), (std::pair<int64_t, int64_t>{12, 3}));
  const SchedulerStats& st = s.sched->stats();
  EXPECT_EQ(st.kv_slot_steps_allocated, 8 + 8 + 8 + 12);
  EXPECT_EQ(st.kv_slot_steps_unfilled, 2 + 1 + 0 + 3);
  RunToEnd(*s.sched);
  s.sched->prefix_cache().Clear();
  s.sched->Step();  // nothing to run: the gauges follow the pool back to empty
  EXPECT_EQ(frag(), (std::pair<int64_t, int64_t>{0, 0}));

  Rig f(Config(64, 4, 64));
  Request b = MakeRequest(Prompt(6, 2), 4, 1.0f, 5, /*n=*/2);
  f.sched->Add(b);
  f.sched->Step();  // prefill, then fork: both choices share [4][2 of 4]
  EXPECT_EQ(f.sched->stats().kv_slots_allocated, 8);
  EXPECT_EQ(f.sched->stats().kv_slots_unfilled, 2);
  f.sched->Step();  // copy-on-write: each choice has its own [3 of 4] block
  EXPECT_EQ(f.sched->stats().kv_slots_allocated, 12);
  EXPECT_EQ(f.sched->stats().kv_slots_unfilled, 2);
  RunToEnd(*f.sched);
}

// ---- Speculation (#15): prompt lookup drafts, verified in the same forward ----

// A prompt that repeats itself, so prompt lookup finds drafts.
std::vector<int32_t> RepeatingPrompt(int period, int repeats, int salt) {
  std::vector<int32_t> p;
  for (int r = 0; r < repeats; ++r) {
    for (int i = 0; i < period; ++i) p.push_back((i * 5 + salt * 11) % kVocab);
  }
  return p;
}

// Fixed drafting (every lookup up to draft_max) unless adaptive: the fake's step times mean
// nothing, and the tests want drafts.
SchedulerConfig Speculating(SchedulerConfig c, bool adaptive = false) {
  c.speculate.enabled = true;
  c.speculate.adaptive = adaptive;
  c.speculate.draft_min = 1;
  c.speculate.draft_max = 6;
  return c;
}

// The core contract: every request's tokens equal the oracle's (decoding without drafts), for
// greedy and sampled requests, models that copy a lot or a little, with and without row orders,
// with room for all and under preemption, alone and with n > 1; drafts were made and some kept.
TEST(SchedulerSpeculationTest, NeverChangesTheTokens) {
  for (float copy_bias : {100.0f, 3.0f}) {
    for (bool row_orders : {false, true}) {
      for (SchedulerConfig c : {Config(512, 16, 64), Config(24, 16, 16), Config(64, 1, 8)}) {
        SCOPED_TRACE(testing::Message() << "copy_bias " << copy_bias << " row_orders "
                                        << row_orders << " blocks " << c.n_blocks);
        // Adaptive with the roomy config (drafts then depend on timing, never the tokens).
        Rig s(Speculating(c, /*adaptive=*/c.n_blocks == 512 && copy_bias >= 100));
        s.model->row_orders = row_orders;
        s.model->copy_bias = copy_bias;
        s.sched = std::make_unique<Scheduler>(s.config, s.model.get(), nullptr);
        std::vector<Request> reqs;
        for (int i = 0; i < 12; ++i) {
          const int n = i == 5 ? 2 : 1;
          reqs.push_back(MakeRequest(RepeatingPrompt(3 + i % 5, 3, i), 10 + (i * 7) % 25,
                                     i % 2 ? 0.8f : 0.0f, 500 + i, n));
          if (i == 7) reqs.back().options.sampling.top_p = 0.9f;
          s.sched->Add(reqs.back());
        }
        RunToEnd(*s.sched);
        int64_t drafted = 0, accepted = 0;
        for (int i = 0; i < 12; ++i) {
          Collected got = Drain(*reqs[i].stream);
          ASSERT_TRUE(got.done) << i;
          for (int ch = 0; ch < reqs[i].options.n; ++ch) {
            const uint64_t seed = ch == 0 ? 500 + i : (500 + i) ^ (0x9E3779B97F4A7C15ull * ch);
            EXPECT_EQ(got.tokens[ch],
                      Reference(reqs[i].prompt, reqs[i].options, seed, row_orders, copy_bias))
                << "request " << i << " choice " << ch;
          }
          EXPECT_LE(got.usage.accepted_tokens, got.usage.drafted_tokens);
          drafted += got.usage.drafted_tokens;
          accepted += got.usage.accepted_tokens;
        }
        EXPECT_EQ(drafted, s.sched->stats().spec_drafted_tokens);
        EXPECT_EQ(accepted, s.sched->stats().spec_accepted_tokens);
        EXPECT_GT(drafted, 0);
        EXPECT_GT(accepted, 0);
        if (copy_bias >= 100) {
          EXPECT_LT(s.model->calls, 12 * 40);  // fewer forwards than tokens
        }
        s.sched->prefix_cache().Clear();
        EXPECT_EQ(s.sched->pool().NumFree(), c.n_blocks);
      }
    }
  }
}

// Rejected drafts give their positions back block-exactly: after every step a lone sequence
// holds exactly the blocks its tokens need, and the prefix cache holds only verified K/V (a
// follow-up request through the cache still matches the oracle: the fake reads K/V back).
TEST(SchedulerSpeculationTest, RejectedDraftsRollBackBlocksAndNeverReachTheCache) {
  for (bool row_orders : {false, true}) {
    Rig s(Speculating(Config(64, 4, 64, /*bt=*/2)));
    s.model->row_orders = row_orders;
    s.model->copy_bias = 3.0f;  // sampled: many drafts rejected part-way
    s.sched = std::make_unique<Scheduler>(s.config, s.model.get(), nullptr);
    Request a = MakeRequest(RepeatingPrompt(4, 3, 1), 40, 0.9f, 3);
    s.sched->Add(a);
    std::vector<int32_t> out;
    while (s.sched->HasWork()) {
      s.sched->Step();
      Collected c = Drain(*a.stream);
      out.insert(out.end(), c.tokens[0].begin(), c.tokens[0].end());
      if (c.done) break;
      const int32_t n_tokens = static_cast<int32_t>(a.prompt.size() + out.size());
      // Computed positions (all but the last token), plus at most the last token's block.
      EXPECT_GE(s.sched->pool().NumUsed(), kv::BlockTable::BlocksFor(n_tokens - 1, 2));
      EXPECT_LE(s.sched->pool().NumUsed(), kv::BlockTable::BlocksFor(n_tokens, 2))
          << "after " << out.size() << " tokens";
    }
    EXPECT_EQ(out, Reference(a.prompt, a.options, 3, row_orders, 3.0f));
    const SchedulerStats& st = s.sched->stats();
    EXPECT_GT(st.spec_accepted_tokens, 0);
    EXPECT_LT(st.spec_accepted_tokens, st.spec_drafted_tokens);  // some were rejected

    std::vector<int32_t> follow = a.prompt;
    follow.insert(follow.end(), out.begin(), out.end());
    follow.push_back(7);
    Request b = MakeRequest(follow, 12, 0.0f, 4);
    s.sched->Add(b);
    RunToEnd(*s.sched);
    Collected got = Drain(*b.stream);
    EXPECT_GT(got.usage.cached_tokens, 0);
    EXPECT_EQ(got.tokens[0], Reference(follow, b.options, 4, row_orders, 3.0f));
    s.sched->prefix_cache().Clear();
    EXPECT_EQ(s.sched->pool().NumFree(), 64);
  }
}

// Logprobs, penalties, stop ids and a token mask see exactly the tokens decoding without
// drafts sees: the same request with speculation on and off gives identical events' content.
TEST(SchedulerSpeculationTest, LogprobsPenaltiesStopIdsAndMasksAreUnchanged) {
  auto run = [](bool speculate, bool masked) {
    SchedulerConfig c = Config(128, 4, 64);
    if (speculate) c = Speculating(c);
    Rig s(c);
    s.model->copy_bias = 6.0f;
    s.sched = std::make_unique<Scheduler>(s.config, s.model.get(), nullptr);
    std::vector<int32_t> seen;
    Request r = MakeRequest(RepeatingPrompt(5, 4, 2), 30, 0.7f, 11);
    r.options.logprobs = true;
    r.options.top_logprobs = 3;
    r.options.penalties.frequency = 0.3f;
    r.options.stop_token_ids = {63};
    if (masked) r.options.token_mask_factory = [&] { return std::make_unique<EvenOnly>(&seen); };
    s.sched->Add(r);
    std::vector<int32_t> tokens;
    std::vector<LogprobEntry> logprobs;
    std::string finish;
    int64_t accepted = 0;
    RunToEnd(*s.sched);
    while (auto ev = r.stream->Pop(std::chrono::milliseconds(0))) {
      const Event& e = *ev;
      tokens.insert(tokens.end(), e.token_ids.begin(), e.token_ids.end());
      logprobs.insert(logprobs.end(), e.logprobs.begin(), e.logprobs.end());
      if (e.finish_reason) finish = *e.finish_reason;
      if (e.done) accepted = e.usage.accepted_tokens;
    }
    if (masked) EXPECT_EQ(seen, tokens);
    // Guesses the mask refuses never reach a forward: every row after the prompt is even.
    if (masked) EXPECT_EQ(s.model->odd_rows_after(r.prompt.size()), 0);
    return std::make_tuple(tokens, logprobs, finish, accepted);
  };
  for (bool masked : {false, true}) {
    SCOPED_TRACE(masked ? "masked" : "unmasked");
    auto [t_off, lp_off, f_off, acc_off] = run(false, masked);
    auto [t_on, lp_on, f_on, acc_on] = run(true, masked);
    EXPECT_EQ(t_on, t_off);
    EXPECT_EQ(f_on, f_off);
    EXPECT_EQ(acc_off, 0);
    EXPECT_GT(acc_on, 0);
    ASSERT_EQ(lp_on.size(), lp_off.size());
    for (size_t i = 0; i < lp_on.size(); ++i) {
      EXPECT_EQ(lp_on[i].token.id, lp_off[i].token.id);
      EXPECT_EQ(lp_on[i].token.logprob, lp_off[i].token.logprob) << i;
      ASSERT_EQ(lp_on[i].top.size(), lp_off[i].top.size());
      for (size_t k = 0; k < lp_on[i].top.size(); ++k) {
        EXPECT_EQ(lp_on[i].top[k].id, lp_off[i].top[k].id);
        EXPECT_EQ(lp_on[i].top[k].logprob, lp_off[i].top[k].logprob);
      }
    }
  }
}

// Load: a step's decode rows plus drafted rows stay within step_rows; with as many decoding
// sequences as step_rows nobody drafts. A request may opt out.
TEST(SchedulerSpeculationTest, DraftsShrinkAsTheBatchFillsAndRequestsMayOptOut) {
  SchedulerConfig c = Speculating(Config(512, 8, 256));
  c.speculate.step_rows = 8;
  Rig s(c);
  s.model->copy_bias = 100.0f;
  s.sched = std::make_unique<Scheduler>(s.config, s.model.get(), nullptr);
  std::vector<Request> reqs;
  for (int i = 0; i < 8; ++i) {
    reqs.push_back(MakeRequest(RepeatingPrompt(4, 3, i), 30, 0.0f, 1));
    s.sched->Add(reqs.back());
  }
  RunToEnd(*s.sched);
  EXPECT_EQ(s.sched->stats().spec_drafted_tokens, 0);  // 8 decoding = step_rows
  EXPECT_LE(s.model->max_rows, 8u * 12u);               // the prefills

  Rig t(c);
  t.model->copy_bias = 100.0f;
  t.sched = std::make_unique<Scheduler>(t.config, t.model.get(), nullptr);
  Request a = MakeRequest(RepeatingPrompt(4, 3, 1), 30, 0.0f, 1);
  Request b = MakeRequest(RepeatingPrompt(4, 3, 2), 30, 0.0f, 1);
  b.options.speculate = false;
  t.sched->Add(a);
  t.sched->Add(b);
  t.model->max_rows = 0;
  RunToEnd(*t.sched);
  Collected ga = Drain(*a.stream), gb = Drain(*b.stream);
  EXPECT_GT(ga.usage.drafted_tokens, 0);
  EXPECT_EQ(gb.usage.drafted_tokens, 0);
  EXPECT_EQ(gb.tokens[0], Reference(b.prompt, b.options, 1, false, 100.0f));
}

// A draft model: the same fake as the target (so with correct draft K/V every greedy guess is
// right), or one that guesses wrong at every 7th position (a rejection, then a roll-back of
// the draft model's K/V; stale draft K/V would make every later guess wrong). The target's
// tokens never change; blocks of both pools come back.
TEST(SchedulerSpeculationTest, DraftModelGuessesAreVerifiedAndItsKvRollsBack) {
  for (int32_t perturb : {0, 7}) {
    for (SchedulerConfig c : {Config(512, 8, 64), Config(24, 8, 16)}) {
      SCOPED_TRACE(testing::Message() << "perturb " << perturb << " blocks " << c.n_blocks);
      Rig s(Speculating(c));
      s.model->copy_bias = 3.0f;
      FakeModel draft(c.n_blocks, c.block_tokens);
      draft.copy_bias = 3.0f;
      draft.perturb_every = perturb;
      s.sched->SetDraftModel(&draft, c.n_blocks);
      std::vector<Request> reqs;
      for (int i = 0; i < 6; ++i) {
        reqs.push_back(MakeRequest(Prompt(5 + i * 3, i), 30, i % 3 == 2 ? 0.8f : 0.0f, 40 + i));
        s.sched->Add(reqs.back());
      }
      RunToEnd(*s.sched);
      int64_t greedy_drafted = 0, greedy_accepted = 0;
      for (int i = 0; i < 6; ++i) {
        Collected got = Drain(*reqs[i].stream);
        EXPECT_EQ(got.tokens[0], Reference(reqs[i].prompt, reqs[i].options, 40 + i, false, 3.0f))
            << "request " << i;
        if (i % 3 != 2) {
          greedy_drafted += got.usage.drafted_tokens;
          greedy_accepted += got.usage.accepted_tokens;
        }
      }
      EXPECT_GT(greedy_drafted, 0);
      if (perturb == 0 && c.n_blocks == 512) EXPECT_EQ(greedy_accepted, greedy_drafted);
      EXPECT_GT(greedy_accepted * 2, greedy_drafted);  // stale draft K/V would sink this
      s.sched->prefix_cache().Clear();
      EXPECT_EQ(s.sched->pool().NumFree(), c.n_blocks);
    }
  }
}

TEST(StepCostTest, FitsBaseAndPerRowCostAndDerivesTheThreshold) {
  StepCost cost;
  // Nothing observed: no guesses until plain steps have been measured.
  EXPECT_EQ(BestDraftLength(0.99, 5, 1, 1, cost), 0);
  for (int i = 0; i < 50; ++i) cost.Observe(1, 4.0);
  // Rows never varied: a row is taken to cost half the observed step.
  EXPECT_DOUBLE_EQ(cost.row_ms(), 2.0);
  EXPECT_DOUBLE_EQ(cost.base_ms(), 2.0);
  EXPECT_DOUBLE_EQ(cost.Estimate(1), 4.0);  // seen: its own mean
  EXPECT_DOUBLE_EQ(cost.Estimate(3), 8.0);  // not seen: the line
  EXPECT_EQ(BestDraftLength(0.99, 5, 1, 1, cost), 5);  // sure guesses pay even so
  for (int i = 0; i < 200; ++i) cost.Observe(1 + i % 9, 3.0 + 0.5 * (1 + i % 9));
  // (The one-row steps before are forgotten, but not quite: 0.98^200 of their weight.)
  EXPECT_NEAR(cost.row_ms(), 0.5, 0.01);
  EXPECT_NEAR(cost.base_ms(), 3.0, 0.05);
  EXPECT_NEAR(cost.Estimate(20), 13.0, 0.2);
  EXPECT_NEAR(cost.Estimate(2), 4.0, 0.01);
}

TEST(StepCostTest, DraftLengthMaximisesTokensPerMs) {
  StepCost cost;  // 3 ms + 1 ms per row, every count seen
  for (int i = 0; i < 200; ++i) cost.Observe(1 + i % 20, 3.0 + (1 + i % 20));
  // One sequence: k tokens at p = 0.5 give 1 + (1 - 0.5^k) tokens for 4 + k ms; the best k
  // is 1 (1.5 / 5 = .3 > 1/4; k = 2: 1.75 / 6 = .29).
  EXPECT_EQ(BestDraftLength(0.5, 8, 1, 1, cost), 1);
  EXPECT_EQ(BestDraftLength(0.2, 8, 1, 1, cost), 0);  // 1.2 / 5 < 1 / 4: no draft pays
  EXPECT_EQ(BestDraftLength(0.95, 6, 1, 1, cost), 6);  // sure guesses: the whole limit
  EXPECT_EQ(BestDraftLength(0.7, 8, 16, 16, cost), 0);  // a full batch: 16.7 / 20 < 16 / 19
  EXPECT_NEAR(ExpectedAccepted(0.5, 3), 0.875, 1e-12);
  Acceptance a;
  EXPECT_DOUBLE_EQ(a.p(), 0.5);
  for (int i = 0; i < 20; ++i) a.Verified(4, 4);  // always right: p climbs
  EXPECT_GT(a.p(), 0.95);
  for (int i = 0; i < 40; ++i) a.Verified(0, 3);  // always wrong: p falls
  EXPECT_LT(a.p(), 0.2);
  const double low = a.p();
  for (int i = 0; i < 100; ++i) a.Idle();  // no drafts: back toward the prior, to try again
  EXPECT_GT(a.p(), low);
  EXPECT_LT(a.p(), 0.5);
}

TEST(NgramPoolTest, RemembersWhatFollowedLongestNgramFirstAndStaysBounded) {
  NgramPool pool(1, 3, 1000);
  pool.Add(std::vector<int32_t>{1, 2, 3, 4, 5, 6});
  pool.Add(std::vector<int32_t>{9, 2, 3, 7, 8});
  // [2 3] was last followed by 7 8; [1 2 3] by 4 5 6 (the longest n-gram wins).
  EXPECT_EQ(pool.Lookup(std::vector<int32_t>{0, 2, 3}, 4), (std::vector<int32_t>{7, 8}));
  EXPECT_EQ(pool.Lookup(std::vector<int32_t>{1, 2, 3}, 2), (std::vector<int32_t>{4, 5}));
  EXPECT_EQ(pool.Lookup(std::vector<int32_t>{5}, 4), (std::vector<int32_t>{6}));
  EXPECT_TRUE(pool.Lookup(std::vector<int32_t>{42}, 4).empty());
  NgramPool small(1, 1, 4);  // two generations of 4: the oldest n-grams go
  for (int32_t i = 0; i < 20; ++i) small.Add(std::vector<int32_t>{100 + i, 200 + i});
  EXPECT_LE(small.size(), 8u);
  EXPECT_TRUE(small.Lookup(std::vector<int32_t>{100}, 1).empty());
  EXPECT_EQ(small.Lookup(std::vector<int32_t>{119}, 1), (std::vector<int32_t>{219}));
}

// A request that repeats an earlier one's output gets its guesses from the pool (its own
// history has none), and its tokens still equal the oracle's.
TEST(SchedulerSpeculationTest, NgramPoolGuessesFromEarlierRequests) {
  SchedulerConfig c = Speculating(Config(256, 4, 64));
  c.speculate.ngram_min = 2;
  Rig s(c);
  s.model->copy_bias = 3.0f;
  s.sched = std::make_unique<Scheduler>(s.config, s.model.get(), nullptr);
  Request a = MakeRequest(Prompt(9, 3), 24, 0.0f, 1);
  s.sched->Add(a);
  RunToEnd(*s.sched);
  Collected first = Drain(*a.stream);
  // Same prompt: b's greedy output is a's, which b's own history does not hold yet.
  Request b = MakeRequest(Prompt(9, 3), 24, 0.0f, 1);
  s.sched->Add(b);
  RunToEnd(*s.sched);
  Collected second = Drain(*b.stream);
  EXPECT_EQ(second.tokens[0], first.tokens[0]);
  EXPECT_GT(second.usage.accepted_tokens, first.usage.accepted_tokens + 10);

  SchedulerConfig off = c;
  off.speculate.pool_ngrams = 0;
  Rig t(off);
  t.model->copy_bias = 3.0f;
  t.sched = std::make_unique<Scheduler>(t.config, t.model.get(), nullptr);
  Request a2 = MakeRequest(Prompt(9, 3), 24, 0.0f, 1), b2 = MakeRequest(Prompt(9, 3), 24, 0.0f, 1);
  t.sched->Add(a2);
  RunToEnd(*t.sched);
  t.sched->Add(b2);
  RunToEnd(*t.sched);
  EXPECT_EQ(Drain(*b2.stream).usage.accepted_tokens, Drain(*a2.stream).usage.accepted_tokens);
}

TEST(LookupDraftTest, PredictionByNgramThenByPosition) {
  const std::vector<int32_t> pred = {10, 11, 12, 13, 11, 14, 15};
  // History ends with [12 13]: found in the prediction, followed by 11 14 15.
  EXPECT_EQ(LookupPrediction(pred, std::vector<int32_t>{1, 12, 13}, 2, 1, 3, 8),
            (std::vector<int32_t>{11, 14, 15}));
  // [11] last occurs at 4: 14 15 follow (max_len 1: only 14).
  EXPECT_EQ(LookupPrediction(pred, std::vector<int32_t>{2, 11}, 2, 1, 3, 1),
            (std::vector<int32_t>{14}));
  // Nothing matches: aligned with the output generated so far (3 tokens).
  EXPECT_EQ(LookupPrediction(pred, std::vector<int32_t>{7, 8, 9}, 3, 1, 3, 2),
            (std::vector<int32_t>{13, 11}));
  EXPECT_TRUE(LookupPrediction(pred, std::vector<int32_t>{7}, 7, 1, 3, 2).empty());
  EXPECT_TRUE(LookupPrediction({}, std::vector<int32_t>{7}, 0, 1, 3, 2).empty());
}

TEST(LookupDraftTest, LongestRecurringSuffixMostRecentFirst) {
  const std::vector<int32_t> h = {1, 2, 3, 9, 1, 2, 3, 4, 5, 7, 2, 3};
  // Suffix [2 3] occurs at 1 and 5: the most recent (5) is followed by 4 5 7 2 3.
  EXPECT_EQ(LookupDraft(h, 1, 3, 2, 3), (std::vector<int32_t>{4, 5, 7}));
  // Suffix [7 2 3] does not recur, [2 3] does; max_len bounds the draft.
  EXPECT_EQ(LookupDraft(h, 2, 3, 1, 1), (std::vector<int32_t>{4}));
  EXPECT_TRUE(LookupDraft(std::vector<int32_t>{1, 2, 3}, 1, 3, 1, 4).empty());  // nothing recurs
  EXPECT_TRUE(LookupDraft(h, 1, 3, 1, 0).empty());
  // A recent occurrence with too few followers yields to an older one with enough.
  const std::vector<int32_t> g = {5, 6, 7, 8, 5, 6, 5};
  EXPECT_EQ(LookupDraft(g, 1, 1, 3, 3), (std::vector<int32_t>{6, 7, 8}));
  EXPECT_EQ(LookupDraft(g, 1, 1, 1, 3), (std::vector<int32_t>{6, 5}));
}

}  // namespace
}  // namespace kiln::engine
