// Developer tool (not a test): runs a model on token ids and prints logits or a greedy
// continuation, to compare by hand with llama.cpp (tools/oracle/llama_ref.mjs).
//   model_run_tool logits MODEL 'id,id,...'          → one JSON array of rows on stdout
//   model_run_tool greedy MODEL 'id,id,...' N        → generated ids (+ GGUF token text)
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "model/model.h"

using namespace kiln;

namespace {

std::vector<int32_t> ParseIds(const std::string& s) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty() && item != "[" ) ids.push_back(std::atoi(item.c_str() + (item[0] == '[')));
  }
  return ids;
}

std::string TokenText(const model::Model& m, int32_t id) {
  const io::MetaValue* toks = m.source().FindMeta("tokenizer.ggml.tokens");
  if (toks == nullptr || id < 0 || static_cast<size_t>(id) >= toks->array.size()) return "?";
  return toks->array[id].s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s logits|greedy MODEL IDS [N]\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  model::LoadOptions opts;
  opts.n_threads = 2;
  opts.kv_dtype = std::getenv("KV_F16") ? DType::kF16 : DType::kF32;
  opts.n_ctx = 512;
  auto m = model::Model::Load(argv[2], opts);
  if (!m.ok()) {
    std::fprintf(stderr, "%s\n", m.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "%s\n", (*m)->config().DebugString().c_str());
  auto ctx = (*m)->NewContext();
  if (!ctx.ok()) return 1;
  std::vector<int32_t> ids = ParseIds(argv[3]);
  std::vector<float> logits;
  const int64_t n_vocab = (*m)->config().n_vocab;
  model::Batch batch;
  for (size_t i = 0; i < ids.size(); ++i) batch.Add(ids[i], static_cast<int32_t>(i), 0, mode == "logits" || i + 1 == ids.size());
  auto t0 = std::chrono::steady_clock::now();
  Status st = (*m)->Forward(batch, **ctx, &logits);
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  auto t1 = std::chrono::steady_clock::now();
  std::fprintf(stderr, "prompt: %zu tokens in %.3f s\n", ids.size(), std::chrono::duration<double>(t1 - t0).count());
  if (mode == "logits") {
    std::printf("[");
    for (size_t r = 0; r < ids.size(); ++r) {
      std::printf(r ? ",[" : "[");
      for (int64_t v = 0; v < n_vocab; ++v) std::printf(v ? ",%.7g" : "%.7g", logits[r * n_vocab + v]);
      std::printf("]");
    }
    std::printf("]\n");
    return 0;
  }
  const int n = argc > 4 ? std::atoi(argv[4]) : 16;
  std::string text;
  for (int i = 0; i < n; ++i) {
    int32_t best = 0;
    bool finite = true;
    for (int64_t v = 0; v < n_vocab; ++v) {
      finite &= std::isfinite(logits[v]);
      if (logits[v] > logits[best]) best = static_cast<int32_t>(v);
    }
    if (!finite) {
      std::fprintf(stderr, "non-finite logits at step %d\n", i);
      return 1;
    }
    if (std::getenv("MARGINS") != nullptr) {  // top-1 minus top-2 logit, for near-tie analysis
      float second = -INFINITY;
      for (int64_t v = 0; v < n_vocab; ++v) {
        if (v != best && logits[v] > second) second = logits[v];
      }
      std::fprintf(stderr, "step %d token %d margin %.6f\n", i, best, logits[best] - second);
    }
    std::printf("%d ", best);
    text += TokenText(**m, best);
    batch.Clear();
    batch.Add(best, (*ctx)->n_past(), 0, true);
    st = (*m)->Forward(batch, **ctx, &logits);
    if (!st.ok()) return 1;
  }
  auto t2 = std::chrono::steady_clock::now();
  std::printf("\n%s\n", text.c_str());
  std::fprintf(stderr, "gen: %d tokens in %.3f s\n", n, std::chrono::duration<double>(t2 - t1).count());
  return 0;
}
