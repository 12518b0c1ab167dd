#include "engine/evaluate.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <vector>

namespace kiln::engine {
namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// -log softmax(logits)[target], in double.
double Nll(const float* logits, int64_t n_vocab, int32_t target) {
  double max_l = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) max_l = std::max<double>(max_l, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - max_l);
  return -(static_cast<double>(logits[target]) - max_l - std::log(sum));
}

}  // namespace

Status Prefill(model::Model& m, model::Context& ctx, const std::vector<int32_t>& ids,
               bool all_logits, std::vector<float>* logits) {
  if (ids.empty()) return InvalidArgument("the prompt is empty");
  model::Batch batch;
  batch.rows.reserve(ids.size());
  const int32_t pos0 = ctx.n_past();
  // Prompt rows in llama.cpp's order for a prompt (one batch), however Forward splits them;
  // a one-token prompt as a decoded token (the serving engine's rule, Scheduler).
  const backend::RowOrder order =
      ids.size() >= 2 ? backend::RowOrder::kBatched : backend::RowOrder::kSingle;
  for (size_t i = 0; i < ids.size(); ++i) {
    batch.Add(ids[i], pos0 + static_cast<int32_t>(i), 0, all_logits || i + 1 == ids.size(),
              order);
  }
  return m.Forward(batch, ctx, logits);
}

StatusOr<PerplexityOutput> Perplexity(LoadedModel& lm, std::string_view text, int32_t n_ctx,
                                      int32_t max_chunks) {
  if (n_ctx < 4) return InvalidArgument("perplexity context must be >= 4 tokens, got %d", n_ctx);
  const tokenizer::Tokenizer& tok = *lm.tokenizer;
  KILN_ASSIGN_OR_RETURN(std::vector<int32_t> ids,
                        tok.Encode(text, {.add_special = true, .parse_special = false}));
  int32_t n_chunks = static_cast<int32_t>(ids.size() / n_ctx);
  if (max_chunks > 0) n_chunks = std::min(n_chunks, max_chunks);
  if (n_chunks == 0) {
    return InvalidArgument("the text has %zu tokens, fewer than one chunk of %d", ids.size(), n_ctx);
  }
  KILN_ASSIGN_OR_RETURN(auto ctx, lm.model->NewContext(n_ctx));
  const int64_t n_vocab = lm.model->config().n_vocab;
  const bool add_bos = tok.add_bos() && tok.bos_id() >= 0;
  PerplexityOutput out;
  out.n_ctx = n_ctx;
  out.n_chunks = n_chunks;
  double total = 0;
  std::vector<float> logits;
  const int32_t first = n_ctx / 2;
  for (int32_t c = 0; c < n_chunks; ++c) {
    std::vector<int32_t> chunk(ids.begin() + static_cast<int64_t>(c) * n_ctx,
                               ids.begin() + static_cast<int64_t>(c + 1) * n_ctx);
    if (add_bos) chunk[0] = tok.bos_id();
    ctx->Clear();
    KILN_RETURN_IF_ERROR(Prefill(*lm.model, *ctx, chunk, /*all_logits=*/true, &logits));
    double chunk_sum = 0;
    int32_t n = 0;
    for (int32_t j = first; j < n_ctx - 1; ++j) {
      chunk_sum += Nll(logits.data() + static_cast<int64_t>(j) * n_vocab, n_vocab, chunk[j + 1]);
      ++n;
    }
    out.chunk_nll.push_back(chunk_sum / n);
    total += chunk_sum;
    out.n_scored += n;
  }
  out.perplexity = std::exp(total / static_cast<double>(out.n_scored));
  return out;
}

StatusOr<std::vector<float>> AllLogits(LoadedModel& lm, const std::vector<int32_t>& ids) {
  KILN_ASSIGN_OR_RETURN(auto ctx, lm.model->NewContext(static_cast<int32_t>(ids.size()) + 1));
  std::vector<float> logits;
  KILN_RETURN_IF_ERROR(Prefill(*lm.model, *ctx, ids, /*all_logits=*/true, &logits));
  return logits;
}

namespace {

double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

void Summarize(BenchPhase& ph) {
  if (ph.tok_s.empty()) return;
  double sum = 0;
  for (double v : ph.tok_s) sum += v;
  ph.mean = sum / static_cast<double>(ph.tok_s.size());
  if (ph.tok_s.size() < 2) return;
  double sq = 0;
  for (double v : ph.tok_s) sq += (v - ph.mean) * (v - ph.mean);
  ph.stddev = std::sqrt(sq / static_cast<double>(ph.tok_s.size() - 1));
}

}  // namespace

StatusOr<BenchOutput> Bench(LoadedModel& lm, int32_t n_prompt, int32_t n_gen, int32_t n_reps) {
  if (n_prompt < 1) return InvalidArgument("bench needs at least one prompt token");
  if (n_reps < 1) return InvalidArgument("bench needs at least one repetition, got %d", n_reps);
  KILN_ASSIGN_OR_RETURN(auto ctx, lm.model->NewContext(n_prompt + n_gen + 1));
  const int64_t n_vocab = lm.model->config().n_vocab;
  std::vector<int32_t> ids(n_prompt);
  for (int32_t i = 0; i < n_prompt; ++i) ids[i] = static_cast<int32_t>((i * 7919 + 13) % n_vocab);
  std::vector<float> logits;
  model::Batch step;
  auto decode_step = [&](int32_t i) {
    step.Clear();
    step.Add(static_cast<int32_t>((i * 104729 + 7) % n_vocab), ctx->n_past(), 0, true);
    return lm.model->Forward(step, *ctx, &logits);
  };
  // Warm-up (untimed).
  KILN_RETURN_IF_ERROR(Prefill(*lm.model, *ctx, ids, false, &logits));
  if (n_gen > 0) KILN_RETURN_IF_ERROR(decode_step(0));
  BenchOutput out;
  std::unique_ptr<ReadBandwidthProbe> probe;
  if (n_gen > 0) probe = std::make_unique<ReadBandwidthProbe>(lm.model->NumThreads());
  for (int32_t rep = 0; rep < n_reps; ++rep) {
    ctx->Clear();
    auto t0 = std::chrono::steady_clock::now();
    double c0 = ProcessCpuSeconds();
    KILN_RETURN_IF_ERROR(Prefill(*lm.model, *ctx, ids, false, &logits));
    double wall = Seconds(t0);
    out.pp.tok_s.push_back(n_prompt / wall);
    out.pp.wall_s.push_back(wall);
    out.pp.cpu_s.push_back(ProcessCpuSeconds() - c0);
    if (n_gen == 0) continue;
    t0 = std::chrono::steady_clock::now();
    c0 = ProcessCpuSeconds();
    for (int32_t i = 0; i < n_gen; ++i) KILN_RETURN_IF_ERROR(decode_step(i));
    wall = Seconds(t0);
    out.tg.tok_s.push_back(n_gen / wall);
    out.tg.wall_s.push_back(wall);
    out.tg.cpu_s.push_back(ProcessCpuSeconds() - c0);
    out.read_gbs = std::max(out.read_gbs, probe->Measure());
  }
  Summarize(out.pp);
  Summarize(out.tg);
  out.pp_tok_s = out.pp.mean;
  out.tg_tok_s = out.tg.mean;
  if (n_gen > 0) {
    out.tg_bytes_per_token = lm.model->DecodeBytesRead(n_prompt + n_gen / 2);
    if (out.read_gbs > 0) out.tg_roofline = out.tg_tok_s * out.tg_bytes_per_token / (out.read_gbs * 1e9);
  }
  return out;
}

ReadBandwidthProbe::ReadBandwidthProbe(int n_threads, size_t bytes)
    // No spinning: a pass is long, and a worker spinning after Measure() would add its CPU
    // time to the next timed phase (Bench's cpu_s).
    : pool_(std::make_unique<ThreadPool>(std::max(n_threads, 1), /*spin_us=*/0)),
      buf_(bytes / sizeof(uint64_t) * sizeof(uint64_t)) {
  uint64_t* p = buf_.as<uint64_t>();
  for (size_t i = 0; i < bytes / sizeof(uint64_t); ++i) p[i] = i;
}

double ReadBandwidthProbe::Measure(int passes) {
  const size_t n = buf_.size() / sizeof(uint64_t);
  const uint64_t* buf = buf_.as<uint64_t>();
  const int n_threads = pool_->NumThreads();
  std::vector<uint64_t> sums(static_cast<size_t>(n_threads) * 8);  // a cache line per thread
  const uint64_t want = static_cast<uint64_t>(n) * (n - 1) / 2;     // Σ i over [0, n)
  double best = 0;
  for (int pass = 0; pass < passes; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    pool_->Run([&](int t) {
      const size_t b = n * t / n_threads, e = n * (t + 1) / n_threads;
      uint64_t acc[8] = {};
      size_t i = b;
      for (; i + 8 <= e; i += 8) {
        for (int j = 0; j < 8; ++j) acc[j] += buf[i + j];
      }
      for (; i < e; ++i) acc[0] += buf[i];
      uint64_t s = 0;
      for (uint64_t a : acc) s += a;
      sums[static_cast<size_t>(t) * 8] = s;  // keeps the loop from being optimised away
    });
    const double wall = Seconds(t0);
    uint64_t check = 0;
    for (uint64_t s : sums) check += s;
    if (check != want) return 0.0;  // a pass did not read everything
    if (wall > 0) best = std::max(best, static_cast<double>(n * sizeof(uint64_t)) / wall / 1e9);
  }
  return best;
}

}  // namespace kiln::engine
