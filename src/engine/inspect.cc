#include "engine/inspect.h"

#include "model/config.h"
#include "model/resolve.h"
#include "tokenizer/tokenizer.h"

namespace kiln::engine {

StatusOr<ModelSummary> Inspect(const std::string& reference) {
  KILN_ASSIGN_OR_RETURN(auto source, model::OpenModelSource(reference));
  ModelSummary s;
  s.path = source->path();
  s.format = source->format() == io::SourceFormat::kGguf ? "gguf" : "safetensors";
  for (const io::TensorInfo& t : source->tensors()) {
    s.n_params += static_cast<uint64_t>(t.NumElements());
    s.n_bytes += t.n_bytes;
    s.dtype_counts[DTypeName(t.dtype)]++;
    s.tensors.push_back({t.name, DTypeName(t.dtype), t.shape, t.n_bytes});
  }
  for (const auto& [key, value] : source->metadata()) {
    s.metadata.emplace_back(key, value.ToString());
  }
  if (const io::MetaValue* v = source->FindMeta("general.name"); v && v->type == io::MetaValue::Type::kString) {
    s.name = v->s;
  } else if (const io::MetaValue* v2 = source->FindMeta("_name_or_path"); v2 && v2->type == io::MetaValue::Type::kString) {
    s.name = v2->s;
  }
  KILN_ASSIGN_OR_RETURN(model::ModelConfig cfg, model::ConfigFromSource(*source));
  s.architecture = model::ArchName(cfg.arch);
  s.n_vocab = cfg.n_vocab;
  s.n_ctx_train = cfg.context_length;
  s.n_embd = cfg.n_embd;
  s.n_layers = cfg.n_layers;
  s.n_heads = cfg.n_heads;
  s.n_heads_kv = cfg.n_heads_kv;
  s.head_dim = cfg.head_dim;
  s.n_ff = cfg.n_ff;
  auto tok = tokenizer::Tokenizer::FromSource(*source);
  if (tok.ok()) {
    s.chat_template = (*tok)->chat_template();
    s.bos_id = (*tok)->bos_id();
    s.eos_id = (*tok)->eos_id();
    s.eot_id = (*tok)->eot_id();
  }
  return s;
}

}  // namespace kiln::engine
