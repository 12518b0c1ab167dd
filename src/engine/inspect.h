// What `kiln info` shows: a model's description read from its file without compute state.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"

namespace kiln::engine {

struct TensorRow {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t n_bytes = 0;
};

struct ModelSummary {
  std::string path, format, architecture, name;
  uint64_t n_params = 0, n_bytes = 0;
  int64_t n_vocab = 0, n_ctx_train = 0, n_embd = 0, n_layers = 0, n_heads = 0, n_heads_kv = 0,
          head_dim = 0, n_ff = 0;
  std::map<std::string, int64_t> dtype_counts;
  std::string chat_template;
  int32_t bos_id = -1, eos_id = -1, eot_id = -1;
  std::vector<TensorRow> tensors;
  std::vector<std::pair<std::string, std::string>> metadata;
};

// Opens the reference and describes it. The architecture config must parse (so `info` also
// tells whether kiln can run the model); the tokenizer is optional.
StatusOr<ModelSummary> Inspect(const std::string& reference);

}  // namespace kiln::engine
