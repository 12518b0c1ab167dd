// The serving engine end to end on real weights. Oracle: the single-sequence loop of
// llama.cpp's CLI over a contiguous KV cache (a different KV layout and code path): the whole
// prompt in one forward call, then one call per generated token, sampled by the request's
// seeded sampler. A request's tokens AND the log-probability of each (so its logits, bit for
// bit), greedy and seeded, must equal the oracle's however the engine splits the work: alone,
// among 15 other requests of different lengths, with prompts longer than the prefill chunk
// whose last chunk is one token, with a cached prefix that leaves one prompt token to compute,
// with a prompt that continues another request's prompt + generated tokens (cached blocks
// that hold generated tokens), and after preemption by recompute (tiny KV budget, and a
// victim preempted after many generated tokens).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include "engine/evaluate.h"
#include "engine/loaded_model.h"
#include "kiln/serving.h"
#include "sampling/logits_processor.h"
#include "sampling/sampler.h"

namespace kiln {
namespace {

std::string Tiny(const char* name) { return std::string(KILN_TESTDATA_DIR) + "/tiny/" + name; }

std::string DefaultModel() {
  const char* home = std::getenv("HOME");
  std::string p = std::string(home ? home : "") + "/.cache/kiln/models/default.gguf";
  return std::filesystem::exists(p) ? p : "";
}

constexpr int32_t kPrefillChunk = 32;
constexpr int32_t kBlockTokens = 16;  // the engine's block size (kiln/serving.h)

struct Case {
  std::vector<int32_t> prompt;
  float temperature;
  uint64_t seed;
  int32_t max_tokens;
};

// n cases of 2..38 prompt tokens, alternately greedy and seeded, then four whose prompts end
// one token past a prefill chunk or a cache block (33 = 32 + 1, 49 = 3 x 16 + 1, 65 = 2 x 32
// + 1, 17 = 16 + 1) and a one-token prompt.
std::vector<Case> Cases(int n, int32_t n_vocab, int32_t max_tokens) {
  std::vector<Case> cases;
  auto add = [&](int i, int len) {
    Case c;
    for (int t = 0; t < len; ++t) c.prompt.push_back((t * 31 + i * 17 + 5) % n_vocab);
    c.temperature = i % 2 == 0 ? 0.0f : 0.9f;
    c.seed = 100 + i;
    c.max_tokens = max_tokens - (i % 4);
    cases.push_back(c);
  };
  for (int i = 0; i < n; ++i) add(i, 2 + (i * 13) % 37);
  const int extra[] = {kPrefillChunk + 1, 3 * kBlockTokens + 1, 2 * kPrefillChunk + 1,
                       kBlockTokens + 1, 1};
  for (int j = 0; j < 5; ++j) add(n + j, extra[j]);
  return cases;
}

struct Result {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;  // of each token
  std::string finish;
  Usage usage;
};

// Oracle: prompt in one Forward call, then one call per token, on a contiguous context.
Result Oracle(engine::LoadedModel& lm, const Case& c) {
  Result r;
  auto ctx = lm.model->NewContext(256);
  EXPECT_TRUE(ctx.ok());
  sampling::SamplingParams sp;
  sp.temperature = c.temperature;
  sp.seed = c.seed;
  sampling::Sampler sampler(sp);
  std::vector<float> logits, logprobs;
  Status st = engine::Prefill(*lm.model, **ctx, c.prompt, /*all_logits=*/false, &logits);
  EXPECT_TRUE(st.ok()) << st.ToString();
  while (st.ok() && static_cast<int32_t>(r.tokens.size()) < c.max_tokens) {
    const int32_t id = sampler.Sample(logits);
    sampling::LogSoftmax(logits, &logprobs);
    r.tokens.push_back(id);
    r.logprobs.push_back(logprobs[id]);
    model::Batch step;
    step.Add(id, (*ctx)->n_past(), 0, true);
    st = lm.model->Forward(step, **ctx, &logits);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  r.finish = "length";
  return r;
}

// Tokens equal and every log-probability bit-identical.
void ExpectSame(const Result& got, const Result& want, const std::string& what) {
  EXPECT_EQ(got.tokens, want.tokens) << what;
  EXPECT_EQ(got.finish, "length") << what;
  ASSERT_EQ(got.logprobs.size(), got.tokens.size()) << what;
  const size_t n = std::min(got.logprobs.size(), want.logprobs.size());
  for (size_t i = 0; i < n; ++i) {
    if (std::memcmp(&got.logprobs[i], &want.logprobs[i], sizeof(float)) != 0) {
      ADD_FAILURE() << what << ": logprob of token " << i << " is " << got.logprobs[i]
                    << ", alone in llama.cpp's order " << want.logprobs[i] << " (diff "
                    << got.logprobs[i] - want.logprobs[i] << ")";
      return;
    }
  }
}

// Appends one event to r; true at the final event.
bool AddEvent(const StreamEvent& e, Result& r) {
  r.tokens.insert(r.tokens.end(), e.token_ids.begin(), e.token_ids.end());
  for (const LogprobEntry& l : e.logprobs) r.logprobs.push_back(l.token.logprob);
  if (e.finish_reason) r.finish = *e.finish_reason;
  if (e.done) r.usage = e.usage;
  return e.done;
}

Result Collect(RequestStream& s, Result r = {}) {
  for (;;) {
    std::optional<StreamEvent> e = s.Next(std::chrono::milliseconds(120000));
    if (!e) {
      ADD_FAILURE() << "stream timed out";
      return r;
    }
    if (AddEvent(*e, r)) return r;
  }
}

CompletionRequest ToRequest(const Case& c) {
  CompletionRequest r;
  r.prompt_ids = c.prompt;
  r.sampling.temperature = c.temperature;
  r.sampling.seed = c.seed;
  r.sampling.max_tokens = c.max_tokens;
  r.sampling.ignore_eos = true;
  r.sampling.logprobs = true;
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

// A request with a prompt that starts with case i's prompt and generated tokens (a follow-up
// turn): the cache holds blocks of those tokens computed one at a time (decode order).
// *source[j] = the case continued by the j-th.
std::vector<Case> Continuations(const std::vector<Case>& cases, const std::vector<Result>& want,
                                int32_t n_vocab, int32_t max_context, std::vector<size_t>* source) {
  std::vector<Case> out;
  for (size_t i = 0; i < cases.size(); i += 2) {
    Case c = cases[i];
    c.prompt.insert(c.prompt.end(), want[i].tokens.begin(), want[i].tokens.end());
    for (int t = 0; t < 3; ++t) c.prompt.push_back((t * 7 + static_cast<int>(i) + 11) % n_vocab);
    c.seed += 1000;
    if (static_cast<int32_t>(c.prompt.size()) + c.max_tokens >= max_context) continue;
    out.push_back(c);
    source->push_back(i);
  }
  return out;
}

ServingOptions Options(const std::string& path) {
  ServingOptions o;
  o.model = path;
  o.mode = EngineMode::kServer;
  o.max_sequences = 16;
  o.max_context = 128;
  o.prefill_chunk = kPrefillChunk;
  return o;
}

// A victim (lowest priority) runs alone for 20+ tokens, then an older request arrives whose
// blocks and the victim's do not fit together: the victim is preempted with many generated
// tokens, recomputed later (its prompt and generated tokens in prefill chunks).
// The engine decodes ahead of the reader, so on a busy machine the victim can finish between
// the 20th token read and the older request's admission: then nothing was preempted and the
// scenario is run again (at most kAttempts times). Every attempt must match the oracle; at
// least one must preempt.
void CheckLatePreemption(engine::LoadedModel& lm, const std::string& path, float temperature) {
  const int32_t n_vocab = static_cast<int32_t>(lm.model->config().n_vocab);
  Case victim{{}, temperature, 7, 100};
  for (int t = 0; t < 3; ++t) victim.prompt.push_back((t * 13 + 3) % n_vocab);
  Case older{{}, 0.0f, 8, 40};
  for (int t = 0; t < 70; ++t) older.prompt.push_back((t * 29 + 1) % n_vocab);
  const Result want_victim = Oracle(lm, victim), want_older = Oracle(lm, older);
  const std::string what =
      std::string("late preemption, ") + (temperature > 0 ? "seeded" : "greedy");

  constexpr int kAttempts = 5;
  int64_t preemptions = 0;
  for (int attempt = 0; attempt < kAttempts && preemptions == 0; ++attempt) {
    ServingOptions o = Options(path);
    o.kv_memory_bytes = static_cast<int64_t>(7 * kBlockTokens * lm.model->KvBytesPerToken());
    auto eng = ServingEngine::Start(o);
    ASSERT_TRUE(eng.ok()) << eng.status().ToString();
    CompletionRequest rv = ToRequest(victim);
    rv.priority = 1;
    auto sv = (*eng)->Submit(rv);
    ASSERT_TRUE(sv.ok()) << sv.status().ToString();
    Result got_victim;
    bool done = false;
    while (!done && got_victim.tokens.size() < 20) {
      std::optional<StreamEvent> e = (*sv)->Next(std::chrono::milliseconds(120000));
      ASSERT_TRUE(e.has_value()) << "victim timed out";
      done = AddEvent(*e, got_victim);
    }
    ASSERT_FALSE(done) << "the victim finished before the older request came";
    auto so = (*eng)->Submit(ToRequest(older));
    ASSERT_TRUE(so.ok()) << so.status().ToString();
    got_victim = Collect(**sv, got_victim);
    const Result got_older = Collect(**so);
    ExpectSame(got_victim, want_victim, what + " victim");
    ExpectSame(got_older, want_older, what + " older");
    preemptions = WaitIdle(**eng, 2).preemptions;
  }
  EXPECT_GT(preemptions, 0) << what << ": no preemption in " << kAttempts << " attempts";
}

void CheckModel(const std::string& path, int n_cases, int32_t max_tokens, int64_t tight_kv_tokens) {
  model::LoadOptions lo;
  lo.n_ctx = 256;
  auto lm = engine::LoadModel(path, lo);
  ASSERT_TRUE(lm.ok()) << lm.status().ToString();
  const int32_t n_vocab = static_cast<int32_t>((*lm)->model->config().n_vocab);
  const size_t bytes_per_token = (*lm)->model->KvBytesPerToken();
  const std::vector<Case> cases = Cases(n_cases, n_vocab, max_tokens);
  std::vector<Result> want;
  for (const Case& c : cases) want.push_back(Oracle(**lm, c));
  ServingOptions o = Options(path);
  std::vector<size_t> source;
  const std::vector<Case> conts = Continuations(cases, want, n_vocab, o.max_context, &source);
  std::vector<Result> want_conts;
  for (const Case& c : conts) want_conts.push_back(Oracle(**lm, c));
  auto label = [&](const char* what, size_t i) {
    return std::string(what) + ", case " + std::to_string(i) + " (" +
           std::to_string(cases[i].prompt.size()) + " prompt tokens, " +
           (cases[i].temperature > 0 ? "seeded" : "greedy") + ")";
  };
  {  // Alone, one request at a time: prompts over 32 tokens end with a one-token chunk.
    auto eng = ServingEngine::Start(o);
    ASSERT_TRUE(eng.ok()) << eng.status().ToString();
    for (size_t i = 0; i < cases.size(); ++i) {
      auto s = (*eng)->Submit(ToRequest(cases[i]));
      ASSERT_TRUE(s.ok());
      ExpectSame(Collect(**s), want[i], label("alone", i));
    }
    // All together (ragged batches, chunked prefill mixed with decodes); the prefix cache holds
    // the first round's blocks, so the 17/33/49/65-token prompts compute one token.
    std::vector<Result> together = RunConcurrently(**eng, cases);
    int64_t hits = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
      ExpectSame(together[i], want[i], label("batched, cached prefix", i));
      EXPECT_EQ(together[i].usage.prompt_tokens, static_cast<int32_t>(cases[i].prompt.size()));
      const int32_t n_prompt = static_cast<int32_t>(cases[i].prompt.size());
      if (n_prompt % kBlockTokens == 1 && n_prompt > 1) {
        EXPECT_EQ(together[i].usage.cached_tokens, n_prompt - 1)
            << label("one token to compute", i);
      }
      hits += together[i].usage.cached_tokens;
    }
    EXPECT_GT(hits, 0);  // the second round hit the first round's blocks
    // Follow-up prompts over cached blocks that hold generated tokens. Where the model's
    // numbers depend on the row order, only the blocks inside the first prompt are reused
    // (generated tokens were computed alone, the follow-up's prompt rows in a batch); else
    // every full block the first request computed.
    const bool uses_orders = (*lm)->model->UsesRowOrders();
    std::vector<Result> got_conts = RunConcurrently(**eng, conts);
    for (size_t i = 0; i < conts.size(); ++i) {
      const std::string what = "continuation " + std::to_string(i) + " (" +
                               std::to_string(conts[i].prompt.size()) + " prompt tokens)";
      ExpectSame(got_conts[i], want_conts[i], what);
      const int32_t n_first = static_cast<int32_t>(cases[source[i]].prompt.size());
      const int32_t n_computed = n_first + static_cast<int32_t>(want[source[i]].tokens.size()) - 1;
      const int32_t n_reusable = uses_orders ? n_first : n_computed;
      EXPECT_EQ(got_conts[i].usage.cached_tokens, n_reusable / kBlockTokens * kBlockTokens)
          << what;
    }
    EngineMetrics m = WaitIdle(**eng, 2 * cases.size() + conts.size());
    EXPECT_EQ(m.running, 0);
  }
  {  // A KV budget far too small for everyone: preemption by recompute.
    o.kv_memory_bytes = static_cast<int64_t>(tight_kv_tokens * bytes_per_token);
    auto eng = ServingEngine::Start(o);
    ASSERT_TRUE(eng.ok()) << eng.status().ToString();
    std::vector<Result> got = RunConcurrently(**eng, cases);
    for (size_t i = 0; i < cases.size(); ++i) ExpectSame(got[i], want[i], label("tight KV", i));
    EngineMetrics m = WaitIdle(**eng, cases.size());
    EXPECT_GT(m.preemptions, 0);
    EXPECT_EQ(m.requests_finished, static_cast<int64_t>(cases.size()));
    EXPECT_EQ(m.running, 0);
    // Only the prefix cache still holds blocks; nothing is held by a sequence.
    EXPECT_LE(m.kv_blocks_used, m.kv_blocks_total);
  }
  CheckLatePreemption(**lm, path, 0.0f);
  CheckLatePreemption(**lm, path, 0.9f);
}

TEST(EngineE2eTest, TinyLlamaDeterministicAloneBatchedPreemptedCached) {
  CheckModel(Tiny("llama3_tied.gguf"), 16, 24, 160);
}

TEST(EngineE2eTest, TinyGemma3SlidingWindowDeterministic) {
  CheckModel(Tiny("gemma3.gguf"), 8, 20, 128);
}

// The general layer kernels (KILN_GGML_EXACT=0: no llama.cpp orders): every block is reused
// whatever the role of its rows, so every op must be batch invariant.
TEST(EngineE2eTest, TinyLlamaGeneralKernelsDeterministic) {
  setenv("KILN_GGML_EXACT", "0", 1);
  CheckModel(Tiny("llama3_tied.gguf"), 8, 20, 128);
  unsetenv("KILN_GGML_EXACT");
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
