// Structured generation through the public C++ API (#7). Oracles: the single-sequence
// kiln::Engine (generate.cc, a separate loop over a contiguous KV cache) for the tokens of a
// constrained request, nlohmann::json plus hand-written schema checks for validity. The
// ServingEngine must give the Engine's tokens alone, among unconstrained requests, and under
// preemption; every choice of n > 1 must be valid; errors name the field and the cause.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "kiln/engine.h"
#include "kiln/serving.h"

namespace kiln {
namespace {

std::string Tiny(const char* name) { return std::string(KILN_TESTDATA_DIR) + "/tiny/" + name; }

// Bounded on purpose: every sentence fits max_tokens, so every output must end "stop".
constexpr const char* kSchema = R"({"type":"object","properties":{
  "id":{"type":"integer","minimum":-5,"maximum":300},
  "tags":{"type":"array","items":{"enum":["a","b","c"]},"minItems":1,"maxItems":3},
  "ok":{"type":"boolean"}},
  "required":["id","tags","ok"],"additionalProperties":false})";

// The schema above, checked by hand on the parsed text.
::testing::AssertionResult Valid(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return ::testing::AssertionFailure() << "not JSON: " << text;
  if (!j.is_object() || j.size() != 3 || !j.contains("id") || !j.contains("tags") ||
      !j.contains("ok")) {
    return ::testing::AssertionFailure() << "keys: " << text;
  }
  const nlohmann::json& id = j["id"];
  if (!id.is_number() || id.get<double>() != static_cast<double>(static_cast<int64_t>(id.get<double>())) ||
      id.get<double>() < -5 || id.get<double>() > 300) {
    return ::testing::AssertionFailure() << "id: " << text;
  }
  const nlohmann::json& tags = j["tags"];
  if (!tags.is_array() || tags.empty() || tags.size() > 3) {
    return ::testing::AssertionFailure() << "tags: " << text;
  }
  for (const auto& t : tags) {
    if (!t.is_string() || (t != "a" && t != "b" && t != "c")) {
      return ::testing::AssertionFailure() << "tag: " << text;
    }
  }
  if (!j["ok"].is_boolean()) return ::testing::AssertionFailure() << "ok: " << text;
  return ::testing::AssertionSuccess();
}

struct Choice {
  std::vector<int32_t> tokens;
  std::string text, finish;
  int32_t n_logprobs = 0;
};
struct Result {
  std::vector<Choice> choices;
  Usage usage;
};

Result Collect(RequestStream& s, int n) {
  Result r;
  r.choices.resize(n);
  for (;;) {
    std::optional<StreamEvent> e = s.Next(std::chrono::milliseconds(60000));
    if (!e) {
      ADD_FAILURE() << "stream timed out";
      return r;
    }
    Choice& c = r.choices.at(e->choice);
    c.tokens.insert(c.tokens.end(), e->token_ids.begin(), e->token_ids.end());
    c.text += e->text;
    c.n_logprobs += static_cast<int32_t>(e->logprobs.size());
    if (e->finish_reason) c.finish = *e->finish_reason;
    if (!e->error.empty()) ADD_FAILURE() << "error: " << e->error;
    if (e->done) {
      r.usage = e->usage;
      return r;
    }
  }
}

Constraint SchemaConstraint() {
  return {Constraint::Kind::kJsonSchema, kSchema, "response_format"};
}

CompletionRequest Constrained(const std::vector<int32_t>& prompt, float temp, uint64_t seed) {
  CompletionRequest r;
  r.prompt_ids = prompt;
  r.sampling.temperature = temp;
  r.sampling.seed = seed;
  r.sampling.max_tokens = 400;
  r.constraint = SchemaConstraint();
  return r;
}

CompletionRequest Free(const std::vector<int32_t>& prompt, uint64_t seed) {
  CompletionRequest r;
  r.prompt_ids = prompt;
  r.sampling.temperature = 0.9f;
  r.sampling.seed = seed;
  r.sampling.max_tokens = 30;
  r.sampling.ignore_eos = true;
  return r;
}

struct Case {
  std::vector<int32_t> prompt;
  float temp;
  uint64_t seed;
};

TEST(StructuredServingTest, MatchesSingleSequenceEngineAloneBatchedAndPreempted) {
  const std::string model = Tiny("llama3_tied.gguf");
  const std::vector<Case> cases = {
      {{5, 6, 7}, 0.0f, 1}, {{9, 10, 11, 12}, 1.0f, 2}, {{40, 41}, 1.0f, 3},
      {{70, 71, 72, 73, 74}, 0.7f, 4}, {{100, 101, 102}, 1.0f, 5}};
  // Reference tokens: kiln run's path (Engine::Generate: the scheduler with one sequence,
  // alone) with the same constraint and sampling.
  auto eng1 = Engine::Load({.model = model, .n_threads = 1, .n_ctx = 512});
  ASSERT_TRUE(eng1.ok()) << eng1.status().ToString();
  std::vector<std::vector<int32_t>> want;
  int32_t forced_total = 0;
  for (const Case& c : cases) {
    GenerateRequest g;
    g.prompt_ids = c.prompt;
    g.max_tokens = 400;
    g.temperature = c.temp;
    g.top_k = 0;
    g.top_p = 1;
    g.min_p = 0;
    g.seed = c.seed;
    g.constraint = SchemaConstraint();
    auto out = (*eng1)->Generate(g);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ(out->finish_reason, "stop");
    EXPECT_TRUE(Valid(out->text));
    forced_total += out->n_forced;
    want.push_back(out->output_ids);
  }
  EXPECT_GT(forced_total, 0) << "jump-forward never triggered";

  ServingOptions o;
  o.model = model;
  o.mode = EngineMode::kServer;
  o.max_sequences = 8;
  o.max_context = 512;
  o.prefill_chunk = 32;
  for (int round = 0; round < 2; ++round) {
    if (round == 1) o.kv_memory_bytes = 384 * 16 * 12;  // 12 blocks: constant preemption
    auto eng = ServingEngine::Start(o);
    ASSERT_TRUE(eng.ok()) << eng.status().ToString();
    if (round == 0) {  // alone
      for (size_t i = 0; i < cases.size(); ++i) {
        auto s = (*eng)->Submit(Constrained(cases[i].prompt, cases[i].temp, cases[i].seed));
        ASSERT_TRUE(s.ok()) << s.status().ToString();
        Result r = Collect(**s, 1);
        EXPECT_EQ(r.choices[0].tokens, want[i]) << "alone, case " << i;
        EXPECT_EQ(r.choices[0].finish, "stop");
        EXPECT_TRUE(Valid(r.choices[0].text));
      }
    }
    // Constrained and unconstrained requests interleaved in the same batches.
    std::vector<std::unique_ptr<RequestStream>> cs, fs;
    for (size_t i = 0; i < cases.size(); ++i) {
      auto f = (*eng)->Submit(Free(cases[i].prompt, 50 + i));
      auto c = (*eng)->Submit(Constrained(cases[i].prompt, cases[i].temp, cases[i].seed));
      ASSERT_TRUE(f.ok() && c.ok());
      fs.push_back(std::move(*f));
      cs.push_back(std::move(*c));
    }
    std::vector<Result> free_results;
    for (size_t i = 0; i < cases.size(); ++i) {
      Result r = Collect(*cs[i], 1);
      EXPECT_EQ(r.choices[0].tokens, want[i]) << "batched round " << round << ", case " << i;
      EXPECT_EQ(r.choices[0].finish, "stop");
      EXPECT_TRUE(Valid(r.choices[0].text)) << "round " << round;
      EXPECT_EQ(r.usage.completion_tokens, static_cast<int32_t>(want[i].size()));
      free_results.push_back(Collect(*fs[i], 1));
    }
    // The unconstrained neighbours are untouched by the masks: same tokens as alone.
    for (size_t i = 0; i < cases.size(); ++i) {
      auto s = (*eng)->Submit(Free(cases[i].prompt, 50 + i));
      ASSERT_TRUE(s.ok());
      Result alone = Collect(**s, 1);
      EXPECT_EQ(free_results[i].choices[0].tokens, alone.choices[0].tokens) << "free case " << i;
      EXPECT_EQ(free_results[i].choices[0].finish, "length");
    }
    if (round == 1) {
      EXPECT_GT((*eng)->Metrics().preemptions, 0);
    }
  }
}

TEST(StructuredServingTest, EveryChoiceOfNIsValidAndLogprobsStillWork) {
  ServingOptions o;
  o.model = Tiny("qwen2.gguf");
  o.max_context = 512;
  auto eng = ServingEngine::Start(o);
  ASSERT_TRUE(eng.ok()) << eng.status().ToString();
  CompletionRequest r = Constrained({3, 4, 5, 6}, 1.0f, 11);
  r.sampling.n = 5;
  auto s = (*eng)->Submit(r);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  Result got = Collect(**s, 5);
  std::set<std::string> distinct;
  int32_t total = 0;
  for (const Choice& c : got.choices) {
    EXPECT_EQ(c.finish, "stop");
    EXPECT_TRUE(Valid(c.text));
    distinct.insert(c.text);
    total += static_cast<int32_t>(c.tokens.size());
  }
  EXPECT_GT(distinct.size(), 1u) << "choices share one matcher?";
  EXPECT_EQ(got.usage.completion_tokens, total);

  // With logprobs there is no jump-forward (forced tokens have no forward pass of their own):
  // one logprob entry per token, and the output is still valid.
  r.sampling.n = 2;
  r.sampling.logprobs = true;
  auto s2 = (*eng)->Submit(r);
  ASSERT_TRUE(s2.ok());
  got = Collect(**s2, 2);
  for (const Choice& c : got.choices) {
    EXPECT_TRUE(Valid(c.text));
    EXPECT_EQ(c.n_logprobs, static_cast<int32_t>(c.tokens.size()));
  }
}

TEST(StructuredServingTest, FinishedGrammarStopsEvenWithIgnoreEosOrMinTokens) {
  ServingOptions o;
  o.model = Tiny("llama3_tied.gguf");
  o.max_context = 128;
  auto eng = ServingEngine::Start(o);
  ASSERT_TRUE(eng.ok()) << eng.status().ToString();
  for (int variant = 0; variant < 3; ++variant) {
    CompletionRequest r;
    r.prompt_ids = {7, 8, 9};
    r.sampling.temperature = 1.0f;
    r.sampling.seed = 3 + variant;
    r.sampling.max_tokens = 50;
    r.sampling.ignore_eos = variant == 1;
    r.sampling.min_tokens = variant == 2 ? 20 : 0;
    r.constraint = {Constraint::Kind::kGbnf, "root ::= (\"yes\" | \"no\") [.!]?", "grammar"};
    auto s = (*eng)->Submit(r);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    Result got = Collect(**s, 1);
    EXPECT_EQ(got.choices[0].finish, "stop") << "variant " << variant;
    const std::string& t = got.choices[0].text;
    EXPECT_TRUE(t == "yes" || t == "no" || t == "yes." || t == "no." || t == "yes!" || t == "no!")
        << "variant " << variant << ": '" << t << "'";
  }
}

TEST(StructuredServingTest, CheckConstraintNamesTheFieldAndTheCause) {
  ServingOptions o;
  o.model = Tiny("llama3_tied.gguf");
  o.max_context = 64;
  auto eng = ServingEngine::Start(o);
  ASSERT_TRUE(eng.ok()) << eng.status().ToString();
  ServingEngine& e = **eng;
  EXPECT_TRUE(e.CheckConstraint({}).ok());
  EXPECT_TRUE(e.CheckConstraint({Constraint::Kind::kJsonObject, "", "response_format"}).ok());
  EXPECT_TRUE(e.CheckConstraint(SchemaConstraint()).ok());
  struct Bad {
    Constraint c;
    std::vector<std::string> want;
  };
  const std::vector<Bad> bad = {
      {{Constraint::Kind::kJsonSchema, R"({"type":"object","properties":{"a":{"not":{}}}})",
        "response_format.json_schema.schema"},
       {"response_format.json_schema.schema: ", "'not'", "#/properties/a"}},
      {{Constraint::Kind::kJsonSchema, R"({"type":"strin"})", "tools[0].function.parameters"},
       {"tools[0].function.parameters: "}},
      {{Constraint::Kind::kJsonSchema, "{not json", "schema"}, {"schema: "}},
      {{Constraint::Kind::kJsonSchema, "", "schema"}, {"schema: ", "empty"}},
      {{Constraint::Kind::kGbnf, "root ::= \"a\"\nx ::= [b-\n", "grammar"},
       {"grammar: ", "line 2"}},
      {{Constraint::Kind::kGbnf, "root ::= missing", ""}, {"constraint: "}},
      {{Constraint::Kind::kJsonObject, "{}", "response_format"}, {"response_format: "}},
  };
  for (const Bad& b : bad) {
    Status st = e.CheckConstraint(b.c);
    ASSERT_FALSE(st.ok()) << b.c.text;
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
    for (const std::string& w : b.want) {
      EXPECT_NE(st.message().find(w), std::string::npos) << st.message() << " lacks " << w;
    }
    CompletionRequest r;
    r.prompt_ids = {1, 2, 3};
    r.constraint = b.c;
    auto s = e.Submit(r);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().message(), st.message());
  }
}

}  // namespace
}  // namespace kiln
