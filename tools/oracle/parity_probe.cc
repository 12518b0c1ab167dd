// parity_probe: kiln's greedy continuation of token-id prompts, straight through
// model::Model (no tokenizer, no CLI), for comparing with llama.cpp (llama_ref.mjs greedy).
//
//   parity_probe MODEL.gguf N_TOKENS < prompts.txt
//
// prompts.txt: one prompt per line, token ids separated by spaces (BOS included if wanted).
// Prints one line per prompt: the N greedy token ids (argmax, lowest id on ties). One thread,
// f16 KV, the prompt evaluated as one batch like llama.cpp's.
//
// Build (a developer tool, not part of the CMake build): link the kiln static libraries, e.g.
//   c++ -std=c++20 -O2 -Isrc -Iinclude tools/oracle/parity_probe.cc -o /tmp/parity_probe \
//     -LBUILD/src/model -LBUILD/src/backend -LBUILD/src/kv -LBUILD/src/kernels -LBUILD/src/io \
//     -LBUILD/src/tensor -LBUILD/src/base -lkiln_model -lkiln_backend -lkiln_kv \
//     -lkiln_kernels -lkiln_io -lkiln_tensor -lkiln_base -lpthread
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "model/model.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: parity_probe MODEL.gguf N_TOKENS < prompts.txt\n");
    return 2;
  }
  kiln::model::LoadOptions opts;
  opts.n_threads = 1;
  opts.n_ctx = 1024;
  auto model_or = kiln::model::Model::Load(argv[1], opts);
  if (!model_or.ok()) {
    std::fprintf(stderr, "load: %s\n", model_or.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<kiln::model::Model> model = std::move(*model_or);
  const int n_gen = std::atoi(argv[2]);
  const int64_t n_vocab = model->config().n_vocab;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::vector<int32_t> ids;
    for (int32_t t; in >> t;) ids.push_back(t);
    if (ids.empty()) continue;
    auto ctx_or = model->NewContext(0);
    if (!ctx_or.ok()) return 1;
    std::unique_ptr<kiln::model::Context> ctx = std::move(*ctx_or);
    kiln::model::Batch batch;
    for (size_t i = 0; i < ids.size(); ++i) {
      batch.Add(ids[i], static_cast<int32_t>(i), 0, i + 1 == ids.size());
    }
    std::vector<float> logits;
    for (int g = 0; g < n_gen; ++g) {
      kiln::Status st = model->Forward(batch, *ctx, &logits);
      if (!st.ok()) {
        std::fprintf(stderr, "forward: %s\n", st.ToString().c_str());
        return 1;
      }
      int32_t best = 0;
      for (int64_t v = 1; v < n_vocab; ++v) {
        if (logits[v] > logits[best]) best = static_cast<int32_t>(v);
      }
      std::printf(g == 0 ? "%d" : " %d", best);
      batch.Clear();
      batch.Add(best, ctx->n_past(), 0, true);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  return 0;
}
