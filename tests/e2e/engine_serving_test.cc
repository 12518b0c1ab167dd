// The serving engine end to end on real weights. Oracle: engine::Generate, the single-sequence
// loop over a contiguous KV cache (a different KV layout and code path). A request's tokens,
// greedy and seeded, must equal the oracle's alone, among 15 other requests of different
// lengths, after preemption (tiny KV budget) and with its prefix served from the cache.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>

#include "engine/generate.h"
#include "engine/loaded_model.h"
#include "kiln/serving.h"

namespace kiln {
namespace {

std::string Tiny(const char* name) { return std::string(KILN_TESTDATA_DIR) + "/tiny/" + name; }

std::string DefaultModel() {
  const char* home = std::getenv("HOME");
  std::string p = std::string(home ? home : "") + "/.cache/kiln/models/default.gguf";
  return std::filesystem::exists(p) ? p : "";
}

struct Case {
  std::vector<int32_t> prompt;
  float temperature;
  uint64_t seed;
  int32_t max_tokens;
};

std::vector<Case> Cases(int n, int32_t n_vocab, int32_t max_tokens) {
  std::vector<Case> cases;
  for (int i = 0; i < n; ++i) {
    Case c;
    const int len = 2 + (i * 13) % 37;
    for (int t = 0; t < len; ++t) c.prompt.push_back((t * 31 + i * 17 + 5) % n_vocab);
    c.temperature = i % 2 == 0 ? 0.0f : 0.9f;
    c.seed = 100 + i;
    c.max_tokens = max_tokens - (i % 4);
    cases.push_back(c);
  }
  return cases;
}

// Oracle: the contiguous single-sequence loop.
std::vector<int32_t> Oracle(engine::LoadedModel& lm, const Case& c) {
  auto ctx = lm.model->NewContext(256);
  EXPECT_TRUE(ctx.ok());
  engine::GenerateParams gp;
  gp.sampling.temperature = c.temperature;
  gp.sampling.seed = c.seed;
  gp.max_tokens = c.max_tokens;
  gp.ignore_eos = true;
  auto out = engine::Generate(lm, **ctx, c.prompt, gp, nullptr);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return out->output_ids;
}

struct Result {
  std::vector<int32_t> tokens;
  std::string finish;
  Usage usage;
};

Result Collect(RequestStream& s) {
  Result r;
  for (;;) {
    std::optional<StreamEvent> e = s.Next(std::chrono::milliseconds(60000));
    if (!e) {
      ADD_FAILURE() << "stream timed out";
      return r;
    }
    r.tokens.insert(r.tokens.end(), e->token_ids.begin(), e->token_ids.end());
    if (e->finish_reason) r.finish = *e->finish_reason;
    if (e->done) {
      r.usage = e->usage;
      return r;
    }
  }
}

CompletionRequest ToRequest(const Case& c) {
  CompletionRequest r;
  r.prompt_ids = c.prompt;
  r.sampling.temperature = c.temperature;
  r.sampling.seed = c.seed;
  r.sampling.max_tokens = c.max_tokens;
  r.sampling.ignore_eos = true;
  return r;
}

std::vector<Result> RunConcurrently(ServingEngine& eng, const std::vector<Case>& cases) {
  std::vector<std::unique_ptr<RequestStream>> streams;
  for (const Case& c : cases) {
    auto s = eng.Submit(ToRequest(c));
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    streams.push_back(std::move(*s));
  }
  std::vector<Result> out;
  for (auto& s : streams) out.push_back(Collect(*s));
  return out;
}

// Metrics are a snapshot published after each engine step, so poll until the engine is idle.
EngineMetrics WaitIdle(ServingEngine& eng, int64_t finished) {
  EngineMetrics m;
  for (int i = 0; i < 500; ++i) {
    m = eng.Metrics();
    if (m.requests_finished >= finished && m.running == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return m;
}

void CheckModel(const std::string& path, int n_cases, int32_t max_tokens, int64_t tight_kv_tokens) {
  model::LoadOptions lo;
  lo.n_ctx = 256;
  auto lm = engine::LoadModel(path, lo);
  ASSERT_TRUE(lm.ok()) << lm.status().ToString();
  const int32_t n_vocab = static_cast<int32_t>((*lm)->model->config().n_vocab);
  const size_t bytes_per_token = (*lm)->model->KvBytesPerToken();
  const std::vector<Case> cases = Cases(n_cases, n_vocab, max_tokens);
  std::vector<std::vector<int32_t>> want;
  for (const Case& c : cases) want.push_back(Oracle(**lm, c));

  ServingOptions o;
  o.model = path;
  o.mode = EngineMode::kServer;
  o.max_sequences = 16;
  o.max_context = 128;
  o.prefill_chunk = 32;
  {  // Alone, one request at a time.
    auto eng = ServingEngine::Start(o);
    ASSERT_TRUE(eng.ok()) << eng.status().ToString();
    for (size_t i = 0; i < cases.size(); ++i) {
      auto s = (*eng)->Submit(ToRequest(cases[i]));
      ASSERT_TRUE(s.ok());
      Result r = Collect(**s);
      EXPECT_EQ(r.tokens, want[i]) << "alone, case " << i;
      EXPECT_EQ(r.finish, "length");
    }
    // All together (ragged batches, chunked prefill mixed with decodes); prefix cache warm.
    std::vector<Result> together = RunConcurrently(**eng, cases);
    for (size_t i = 0; i < cases.size(); ++i) {
      EXPECT_EQ(together[i].tokens, want[i]) << "batched, case " << i;
      EXPECT_EQ(together[i].usage.prompt_tokens, static_cast<int32_t>(cases[i].prompt.size()));
    }
    EngineMetrics m = WaitIdle(**eng, 2 * n_cases);
    EXPECT_GT(m.prefix_cache_hit_tokens, 0);  // the second round hit the first round's blocks
    EXPECT_EQ(m.running, 0);
  }
  {  // A KV budget far too small for everyone: preemption by recompute.
    o.kv_memory_bytes = static_cast<int64_t>(tight_kv_tokens * bytes_per_token);
    auto eng = ServingEngine::Start(o);
    ASSERT_TRUE(eng.ok()) << eng.status().ToString();
    std::vector<Result> got = RunConcurrently(**eng, cases);
    for (size_t i = 0; i < cases.size(); ++i) {
      EXPECT_EQ(got[i].tokens, want[i]) << "tight KV, case " << i;
    }
    EngineMetrics m = WaitIdle(**eng, n_cases);
    EXPECT_GT(m.preemptions, 0);
    EXPECT_EQ(m.requests_finished, n_cases);
    EXPECT_EQ(m.running, 0);
    // Only the prefix cache still holds blocks; nothing is held by a sequence.
    EXPECT_LE(m.kv_blocks_used, m.kv_blocks_total);
  }
}

TEST(EngineE2eTest, TinyLlamaDeterministicAloneBatchedPreemptedCached) {
  CheckModel(Tiny("llama3_tied.gguf"), 16, 24, 160);
}

TEST(EngineE2eTest, TinyGemma3SlidingWindowDeterministic) {
  CheckModel(Tiny("gemma3.gguf"), 8, 20, 128);
}

TEST(EngineE2eTest, DefaultModelDeterministic) {
  const std::string path = DefaultModel();
  if (path.empty()) GTEST_SKIP() << "no ~/.cache/kiln/models/default.gguf (scripts/fetch_models.sh)";
  CheckModel(path, 8, 10, 128);
}

TEST(EngineE2eTest, ValidationNamesTheField) {
  ServingOptions o;
  o.model = Tiny("llama3_tied.gguf");
  o.max_context = 64;
  auto eng = ServingEngine::Start(o);
  ASSERT_TRUE(eng.ok()) << eng.status().ToString();
  auto expect_error = [&](CompletionRequest r, const char* field) {
    auto s = (*eng)->Submit(std::move(r));
    ASSERT_FALSE(s.ok()) << field;
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(s.status().message().find(field), std::string::npos) << s.status().ToString();
  };
  CompletionRequest base;
  base.prompt_ids = {1, 2, 3};
  CompletionRequest r = base;
  r.sampling.temperature = -1;
  expect_error(r, "temperature");
  r = base; r.sampling.top_p = 0; expect_error(r, "top_p");
  r = base; r.sampling.top_k = -2; expect_error(r, "top_k");
  r = base; r.sampling.min_p = 2; expect_error(r, "min_p");
  r = base; r.sampling.repetition_penalty = 0; expect_error(r, "repetition_penalty");
  r = base; r.sampling.presence_penalty = 3; expect_error(r, "presence_penalty");
  r = base; r.sampling.frequency_penalty = -3; expect_error(r, "frequency_penalty");
  r = base; r.sampling.logit_bias[100000] = 1; expect_error(r, "logit_bias");
  r = base; r.sampling.n = 0; expect_error(r, "n must");
  r = base; r.sampling.max_tokens = 0; expect_error(r, "max_tokens");
  r = base; r.sampling.min_tokens = 5; r.sampling.max_tokens = 2; expect_error(r, "min_tokens");
  r = base; r.sampling.top_logprobs = 3; expect_error(r, "top_logprobs");
  r = base; r.sampling.stop_token_ids = {-1}; expect_error(r, "stop_token_ids");
  r = base; r.prompt_ids.assign(64, 1); expect_error(r, "context");
  r = base; r.prompt_ids = {}; expect_error(r, "prompt");
  EXPECT_NE((*eng)->DescribeConfig().find("max_context 64"), std::string::npos)
      << (*eng)->DescribeConfig();
}

TEST(EngineE2eTest, ModePresetsAndOverrides) {
  struct ModeCase {
    EngineMode mode;
    int max_sequences;
    int64_t kv_bytes;
    const char* want;
  };
  // tiny llama3_tied: 512 training positions, 384 KV bytes per token (3 layers x 2 heads x 16 x f16 x K,V).
  const std::vector<ModeCase> cases = {
      {EngineMode::kInteractive, 0, 0, "mode interactive: max_sequences 1, max_context 512, prefill_chunk 512"},
      {EngineMode::kLocal, 0, 0, "mode local: max_sequences 4, max_context 512, prefill_chunk 256, kv 0.4 MiB (64 blocks"},
      {EngineMode::kServer, 0, 0, "mode server: max_sequences 16, max_context 512, prefill_chunk 512, kv 3.0 MiB (512 blocks"},
      {EngineMode::kServer, 3, 384 * 16 * 10, "mode server: max_sequences 3, max_context 160, prefill_chunk 512, kv 0.1 MiB (10 blocks"},
  };
  for (const ModeCase& c : cases) {
    ServingOptions o;
    o.model = Tiny("llama3_tied.gguf");
    o.mode = c.mode;
    o.max_sequences = c.max_sequences;
    o.kv_memory_bytes = c.kv_bytes;
    auto eng = ServingEngine::Start(o);
    ASSERT_TRUE(eng.ok()) << eng.status().ToString();
    EXPECT_NE((*eng)->DescribeConfig().find(c.want), std::string::npos) << (*eng)->DescribeConfig();
  }
  ServingOptions bad;
  bad.model = Tiny("llama3_tied.gguf");
  bad.max_context = 100000;
  EXPECT_FALSE(ServingEngine::Start(bad).ok());
}

TEST(EngineE2eTest, LogprobsNChoicesStopStringsAndCancel) {
  ServingOptions o;
  o.model = Tiny("llama3_tied.gguf");
  o.max_context = 128;
  auto eng = ServingEngine::Start(o);
  ASSERT_TRUE(eng.ok()) << eng.status().ToString();
  CompletionRequest r;
  r.prompt_ids = {5, 6, 7, 8, 9};
  r.sampling.temperature = 0;
  r.sampling.max_tokens = 6;
  r.sampling.ignore_eos = true;
  r.sampling.logprobs = true;
  r.sampling.top_logprobs = 3;
  r.sampling.n = 3;
  auto s = (*eng)->Submit(r);
  ASSERT_TRUE(s.ok());
  std::map<int, std::vector<int32_t>> per_choice;
  int finishes = 0;
  for (;;) {
    auto e = (*s)->Next(std::chrono::milliseconds(30000));
    ASSERT_TRUE(e.has_value());
    per_choice[e->choice].insert(per_choice[e->choice].end(), e->token_ids.begin(), e->token_ids.end());
    ASSERT_EQ(e->logprobs.size(), e->token_ids.size());
    for (const LogprobEntry& l : e->logprobs) {
      ASSERT_EQ(l.top.size(), 3u);
      EXPECT_EQ(l.top[0].id, l.token.id);  // greedy: the sampled token is the best
      EXPECT_FLOAT_EQ(l.top[0].logprob, l.token.logprob);
      EXPECT_LE(l.token.logprob, 0.0f);
      EXPECT_GE(l.top[1].logprob, l.top[2].logprob);
    }
    finishes += e->finish_reason.has_value();
    if (e->done) {
      EXPECT_EQ(e->usage.completion_tokens, 18);
      break;
    }
  }
  EXPECT_EQ(finishes, 3);
  EXPECT_EQ(per_choice[0], per_choice[1]);  // greedy choices agree
  EXPECT_EQ(per_choice[0], per_choice[2]);

  // Stop string: the text of a greedy run, cut at its second token's text.
  CompletionRequest g;
  g.prompt_ids = {5, 6, 7, 8, 9};
  g.sampling.temperature = 0;
  g.sampling.max_tokens = 1000;
  g.sampling.ignore_eos = true;
  auto cancel_me = (*eng)->Submit(g);
  ASSERT_TRUE(cancel_me.ok());
  auto first = (*cancel_me)->Next(std::chrono::milliseconds(30000));
  ASSERT_TRUE(first.has_value());
  (*cancel_me)->Cancel();
  Result rest = Collect(**cancel_me);
  EXPECT_EQ(rest.finish, "abort");
  EXPECT_LT(rest.usage.completion_tokens, 120);
}

}  // namespace
}  // namespace kiln
