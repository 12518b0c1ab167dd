// kiln_grammar_driver (built from src/grammar/CMakeLists.txt; it lives in bench/ because it also
// loads models through io/): drives the grammar engine with a real vocabulary for the Python tests
// (tests/py/test_grammar*.py) and prints timings for the benchmark.
//   walk  MODEL (--schema FILE | --gbnf FILE) [--seed S] [--max-tokens N] [--check K]
//     a random walk under the mask; every step K allowed and K disallowed tokens are re-checked
//     by brute force (AcceptToken + Rollback). Prints one JSON line.
//   bench MODEL (--schema FILE | --gbnf FILE) [--steps N] [--seed S]
//     compile time, the first mask of a fresh grammar, and per-token mask time percentiles along
//     random walks. MODEL may also be a tokenizer.json (vocabulary only). Times are this
//     thread's CPU time (--clock wall for wall time).
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>

#include "grammar/compiled_grammar.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "io/tensor_source.h"
#include "tokenizer/tokenizer.h"

using namespace kiln;
using namespace kiln::grammar;

namespace {

double NowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

// This thread's CPU time: mask timings stay meaningful on a machine shared with other jobs.
bool g_cpu_clock = true;
double ClockMs() {
  if (!g_cpu_clock) return NowMs();
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Hex(const std::string& bytes) {
  std::string hex;
  for (unsigned char c : bytes) {
    char buf[3];
    std::snprintf(buf, sizeof buf, "%02x", c);
    hex += buf;
  }
  return hex;
}

int Fail(const std::string& msg) {
  nlohmann::json out = {{"error", msg}};
  std::cout << out.dump() << std::endl;
  return 1;
}

// Picks a random allowed token, preferring (p = 0.4) tokens with structural JSON bytes so
// walks close their strings and containers instead of wandering to the token limit.
int32_t Pick(const std::vector<int32_t>& allowed, const TokenVocab& vocab, std::mt19937_64& rng,
             bool can_end) {
  std::uniform_real_distribution<double> u(0, 1);
  if (can_end && u(rng) < 0.5) {
    for (int32_t id : allowed) {
      if (vocab.IsEog(id)) return id;
    }
  }
  if (u(rng) < 0.4) {
    std::vector<int32_t> structural;
    for (int32_t id : allowed) {
      const std::string& b = vocab.token_bytes(id);
      if (b.find_first_of("\"}],") != std::string::npos) structural.push_back(id);
    }
    if (!structural.empty()) return structural[rng() % structural.size()];
  }
  return allowed[rng() % allowed.size()];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return Fail("usage: walk|bench MODEL (--schema F | --gbnf F) [options]");
  std::string cmd = argv[1], model = argv[2], schema_file, gbnf_file;
  uint64_t seed = 1;
  int max_tokens = 200, check = 8, steps = 300;
  for (int i = 3; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--schema") schema_file = v;
    else if (k == "--gbnf") gbnf_file = v;
    else if (k == "--seed") seed = std::stoull(v);
    else if (k == "--max-tokens") max_tokens = std::stoi(v);
    else if (k == "--check") check = std::stoi(v);
    else if (k == "--steps") steps = std::stoi(v);
    else if (k == "--clock") g_cpu_clock = v != "wall";
    else return Fail("unknown option " + k);
  }
  double t0 = ClockMs();
  // MODEL: a GGUF / HF model folder, or a tokenizer.json (e.g. the Llama 3 128k vocabulary).
  StatusOr<std::shared_ptr<const tokenizer::Tokenizer>> tok = NotFound("no tokenizer");
  if (model.size() > 5 && model.compare(model.size() - 5, 5, ".json") == 0) {
    tok = tokenizer::Tokenizer::FromHfFiles(model);
  } else {
    auto src = io::OpenTensorSource(model);
    if (!src.ok()) return Fail(src.status().ToString());
    tok = tokenizer::Tokenizer::FromSource(**src);
  }
  if (!tok.ok()) return Fail(tok.status().ToString());
  double t1 = ClockMs();
  auto vocab = TokenVocab::FromTokenizer(**tok);
  double t2 = ClockMs();
  std::string gbnf;
  if (!schema_file.empty()) {
    auto g = JsonSchemaToGbnf(ReadFile(schema_file));
    if (!g.ok()) return Fail(g.status().ToString());
    gbnf = *g;
  } else {
    gbnf = ReadFile(gbnf_file);
  }
  double t3 = ClockMs();
  auto grammar = Grammar::FromGbnf(gbnf);
  if (!grammar.ok()) return Fail(grammar.status().ToString());
  auto cg = CompiledGrammar::Compile(std::move(*grammar), vocab);
  double t4 = ClockMs();
  std::mt19937_64 rng(seed);
  std::vector<uint32_t> mask;
  nlohmann::json out;
  out["n_vocab"] = vocab->n_vocab();
  out["load_ms"] = t1 - t0;
  out["vocab_ms"] = t2 - t1;
  out["compile_ms"] = t4 - t3;
  out["n_contexts"] = cg->n_contexts();
  out["n_uncertain"] = cg->n_uncertain_total();

  if (cmd == "walk") {
    Matcher m(cg, 4);
    mask.resize(m.BitmaskWords());
    std::string text;
    int n_checked = 0, n_mismatch = 0, n_steps = 0;
    std::vector<std::string> mismatches;
    for (; n_steps < max_tokens && !m.IsTerminated(); ++n_steps) {
      m.FillNextTokenBitmask(mask.data());
      std::vector<int32_t> allowed, denied;
      for (int32_t id = 0; id < vocab->n_vocab(); ++id) {
        (mask[id >> 5] >> (id & 31) & 1 ? allowed : denied).push_back(id);
      }
      if (allowed.empty()) return Fail("dead end: no token allowed after " + text);
      for (int c = 0; c < check; ++c) {
        for (auto* set : {&allowed, &denied}) {
          if (set->empty()) continue;
          int32_t id = (*set)[rng() % set->size()];
          bool ok = m.AcceptToken(id);
          if (ok) m.Rollback(1);
          ++n_checked;
          if (ok != (set == &allowed)) {
            ++n_mismatch;
            if (mismatches.size() < 5) mismatches.push_back(vocab->token_bytes(id));
          }
        }
      }
      int32_t id = Pick(allowed, *vocab, rng, m.CanTerminate());
      if (!m.AcceptToken(id)) return Fail("picked token rejected");
      if (!vocab->IsEog(id)) text += vocab->token_bytes(id);
    }
    out["text_hex"] = Hex(text);
    out["terminated"] = m.IsTerminated();
    out["steps"] = n_steps;
    out["checked"] = n_checked;
    out["mismatches"] = n_mismatch;
    out["mismatch_tokens"] = nlohmann::json::array();
    for (auto& s : mismatches) out["mismatch_tokens"].push_back(Hex(s));
    std::cout << out.dump() << std::endl;
    return 0;
  }
  if (cmd == "bench") {
    // Cold: the first generations with a fresh CompiledGrammar (context masks filled on first
    // use). Warm: further generations with the same (cached) CompiledGrammar.
    auto run = [&](int n_steps) {
      std::vector<double> times;
      while (static_cast<int>(times.size()) < n_steps) {
        Matcher m(cg, 1);
        mask.resize(m.BitmaskWords());
        for (int i = 0; i < max_tokens && !m.IsTerminated() &&
                        static_cast<int>(times.size()) < n_steps; ++i) {
          double a = ClockMs();
          m.FillNextTokenBitmask(mask.data());
          times.push_back((ClockMs() - a) * 1000.0);
          std::vector<int32_t> allowed;
          for (int32_t id = 0; id < vocab->n_vocab(); ++id) {
            if (mask[id >> 5] >> (id & 31) & 1) allowed.push_back(id);
          }
          if (allowed.empty()) return std::vector<double>();
          m.AcceptToken(Pick(allowed, *vocab, rng, m.CanTerminate()));
        }
      }
      return times;
    };
    auto stats = [&](std::vector<double> times, const std::string& prefix) {
      if (times.empty()) return;
      double total = 0;
      for (double t : times) total += t;
      std::sort(times.begin(), times.end());
      auto pct = [&](double p) { return times[std::min(times.size() - 1, size_t(p * times.size()))]; };
      out[prefix + "_us_p50"] = pct(0.5);
      out[prefix + "_us_p99"] = pct(0.99);
      out[prefix + "_us_max"] = times.back();
      out[prefix + "_ms_total"] = total / 1000.0;
      out[prefix + "_n"] = times.size();
    };
    {  // The first mask of a fresh CompiledGrammar: what a request with a new schema waits.
      auto fresh = CompiledGrammar::Compile(cg->grammar(), vocab);
      Matcher m(fresh, 1);
      mask.resize(m.BitmaskWords());
      double a = ClockMs();
      m.FillNextTokenBitmask(mask.data());
      out["first_mask_ms"] = ClockMs() - a;
    }
    stats(run(steps), "cold");
    out["n_contexts"] = cg->n_contexts();
    out["n_uncertain"] = cg->n_uncertain_total();
    stats(run(steps), "warm");
    out["n_contexts_after_warm"] = cg->n_contexts();
    std::cout << out.dump() << std::endl;
    return 0;
  }
  return Fail("unknown command " + cmd);
}
