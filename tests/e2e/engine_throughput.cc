// engine_throughput: aggregate generation throughput of the serving engine with N concurrent
// streams (developer tool, not a test). Usage:
//   engine_throughput MODEL [n_streams=16] [n_prompt=64] [n_gen=64] [threads=0]
// n_streams 0: time to first token of a n_prompt-token prompt cold, then again with the same
// prefix (cached) and a different last 16 tokens.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "kiln/serving.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL [n_streams] [n_prompt] [n_gen] [threads]\n", argv[0]);
    return 2;
  }
  const int n_streams = argc > 2 ? std::atoi(argv[2]) : 16;
  const int n_prompt = argc > 3 ? std::atoi(argv[3]) : 64;
  const int n_gen = argc > 4 ? std::atoi(argv[4]) : 64;
  kiln::ServingOptions o;
  o.model = argv[1];
  o.mode = kiln::EngineMode::kServer;
  o.n_threads = argc > 5 ? std::atoi(argv[5]) : 0;
  o.max_sequences = n_streams > 0 ? n_streams : 1;
  o.max_context = std::max(1024, n_prompt + 64);
  auto eng = kiln::ServingEngine::Start(o);
  if (!eng.ok()) {
    std::fprintf(stderr, "%s\n", eng.status().ToString().c_str());
    return 1;
  }
  std::printf("%s\n", (*eng)->DescribeConfig().c_str());
  const int32_t n_vocab = static_cast<int32_t>((*eng)->Info().n_vocab);
  if (n_streams == 0) {
    for (int round = 0; round < 2; ++round) {
      kiln::CompletionRequest r;
      for (int t = 0; t < n_prompt; ++t) r.prompt_ids.push_back((t * 131 + 7) % n_vocab);
      for (int t = 0; t < 16; ++t) r.prompt_ids.push_back((t * 31 + round * 1000 + 3) % n_vocab);
      r.sampling.max_tokens = 1;
      const auto t1 = std::chrono::steady_clock::now();
      auto s = (*eng)->Submit(std::move(r));
      if (!s.ok()) return 1;
      for (;;) {
        auto e = (*s)->Next(std::chrono::milliseconds(600000));
        if (!e) return 1;
        if (e->done) {
          std::printf("%s: TTFT %.1f ms, cached_tokens %d of %d\n", round ? "warm" : "cold",
                      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count(),
                      e->usage.cached_tokens, e->usage.prompt_tokens);
          break;
        }
      }
    }
    return 0;
  }
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<kiln::RequestStream>> streams;
  for (int i = 0; i < n_streams; ++i) {
    kiln::CompletionRequest r;
    for (int t = 0; t < n_prompt; ++t) r.prompt_ids.push_back((t * 131 + i * 977 + 7) % n_vocab);
    r.sampling.temperature = 0.8f;
    r.sampling.seed = i;
    r.sampling.max_tokens = n_gen;
    r.sampling.ignore_eos = true;
    auto s = (*eng)->Submit(std::move(r));
    if (!s.ok()) return 1;
    streams.push_back(std::move(*s));
  }
  int64_t gen = 0;
  double ttft_sum = 0;
  for (auto& s : streams) {
    bool first = true;
    for (;;) {
      auto e = s->Next(std::chrono::milliseconds(600000));
      if (!e) return 1;
      if (first) {
        ttft_sum += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        first = false;
      }
      if (e->done) {
        gen += e->usage.completion_tokens;
        break;
      }
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("streams %d  prompt %d  gen %d  wall %.2f s  generated %lld  aggregate %.1f tok/s "
              "(incl. prefill)\n", n_streams, n_prompt, n_gen, secs, static_cast<long long>(gen),
              gen / secs);
  return 0;
}
