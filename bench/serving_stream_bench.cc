// serving_stream_bench: capi_stream_bench's loop through the C++ serving API directly
// (ServingEngine::Submit + RequestStream::Next, no JSON), the baseline that isolates the C
// API's own cost per streamed token (docs/performance.md, C API). Developer tool.
//
//   serving_stream_bench MODEL [n_gen=128] [threads=2] [repetitions=3] [n_prompt_words=100]
//
// Same engine options (interactive mode, no speculation), prompt text, sampling and timing as
// capi_stream_bench: decode = (tokens - 1) / (time of the last token's event - the first's).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include "kiln/serving.h"

namespace {

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Run {
  double decode_tok_s = 0;
  double caller_cpu_us = 0;
  int n_events = 0;
};

bool RunOnce(kiln::ServingEngine& engine, const std::vector<int32_t>& prompt, int n_gen,
             Run* out) {
  kiln::CompletionRequest r;
  r.prompt_ids = prompt;
  r.sampling.temperature = 0;
  r.sampling.max_tokens = n_gen;
  r.sampling.ignore_eos = true;
  auto stream = engine.Submit(std::move(r));
  if (!stream.ok()) {
    std::fprintf(stderr, "%s\n", stream.status().ToString().c_str());
    return false;
  }
  using Clock = std::chrono::steady_clock;
  Clock::time_point first, last;
  int n = 0;
  const double cpu0 = ThreadCpuSeconds();
  for (;;) {
    std::optional<kiln::StreamEvent> e = (*stream)->Next(std::chrono::milliseconds(600000));
    if (!e) return false;
    if (!e->text.empty()) {
      last = Clock::now();
      if (n == 0) first = last;
      ++n;
    }
    if (e->done) break;
  }
  const double cpu1 = ThreadCpuSeconds();
  if (n < 2) return false;
  out->decode_tok_s = (n - 1) / std::chrono::duration<double>(last - first).count();
  out->caller_cpu_us = (cpu1 - cpu0) * 1e6 / n;
  out->n_events = n;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const int n_gen = argc > 2 ? std::atoi(argv[2]) : 128;
  const int threads = argc > 3 ? std::atoi(argv[3]) : 2;
  const int reps = argc > 4 ? std::atoi(argv[4]) : 3;
  const int n_words = argc > 5 ? std::atoi(argv[5]) : 100;
  if (argc < 2 || n_gen < 2 || reps < 1 || n_words < 1) {
    std::fprintf(stderr, "usage: %s MODEL [n_gen>=2] [threads] [repetitions] [n_prompt_words]\n",
                 argv[0]);
    return 2;
  }
  kiln::ServingOptions o;
  o.model = argv[1];
  o.mode = kiln::EngineMode::kInteractive;
  o.n_threads = threads;
  o.speculate.mode = kiln::SpeculateMode::kOff;  // one token per event, as capi_stream_bench
  auto engine = kiln::ServingEngine::Start(o);
  if (!engine.ok()) {
    std::fprintf(stderr, "%s\n", engine.status().ToString().c_str());
    return 1;
  }
  std::string text;
  for (int i = 0; i < n_words; ++i) text += i % 2 ? "kiln " : "fire ";
  // As the completions endpoint tokenizes a text prompt: with the model's BOS.
  auto prompt = (*engine)->Tokenize(text, /*add_special=*/true, /*parse_special=*/false);
  if (!prompt.ok()) return 1;
  Run r;
  if (!RunOnce(**engine, *prompt, n_gen, &r)) return 1;  // warm-up
  double sum_tok_s = 0, sum_cpu = 0;
  for (int i = 0; i < reps; ++i) {
    if (!RunOnce(**engine, *prompt, n_gen, &r)) return 1;
    std::printf("{\"rep\": %d, \"tokens\": %d, \"decode_tok_s\": %.1f, "
                "\"caller_cpu_us_per_token\": %.1f}\n", i, r.n_events, r.decode_tok_s,
                r.caller_cpu_us);
    sum_tok_s += r.decode_tok_s;
    sum_cpu += r.caller_cpu_us;
  }
  std::printf("{\"summary\": true, \"threads\": %d, \"n_gen\": %d, \"decode_tok_s\": %.1f, "
              "\"caller_cpu_us_per_token\": %.1f}\n", threads, n_gen, sum_tok_s / reps,
              sum_cpu / reps);
  return 0;
}
