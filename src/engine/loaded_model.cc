#include "engine/loaded_model.h"

#include <chrono>
#include <nlohmann/json.hpp>

#include "base/thread_pool.h"
#include "model/resolve.h"

namespace kiln::engine {

StatusOr<std::unique_ptr<LoadedModel>> LoadModel(const std::string& reference,
                                                  const model::LoadOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  auto lm = std::make_unique<LoadedModel>();
  KILN_ASSIGN_OR_RETURN(lm->path, model::ResolveModelReference(reference));
  KILN_ASSIGN_OR_RETURN(lm->model, model::Model::Load(lm->path, options));
  KILN_ASSIGN_OR_RETURN(lm->tokenizer, tokenizer::Tokenizer::FromSource(lm->model->source()));
  if (!lm->tokenizer->chat_template().empty()) {
    auto tmpl = ChatTemplate::Parse(lm->tokenizer->chat_template());
    // A template we cannot parse makes chat unavailable, not the model.
    if (tmpl.ok()) lm->chat_template = *tmpl;
  }
  if (lm->tokenizer->n_vocab() > lm->model->config().n_vocab) {
    return InvalidArgument("tokenizer has %d tokens but the model's output has %lld",
                           lm->tokenizer->n_vocab(), (long long)lm->model->config().n_vocab);
  }
  lm->load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return lm;
}

StatusOr<std::string> RenderChat(const tokenizer::Tokenizer& tok,
                                 const ChatTemplate* tmpl,
                                 const std::string& messages_json, const std::string& tools_json,
                                 bool add_generation_prompt) {
  if (tmpl == nullptr) return FailedPrecondition("the model has no chat template");
  nlohmann::ordered_json messages = nlohmann::ordered_json::parse(messages_json, nullptr, false);
  if (messages.is_discarded() || !messages.is_array()) {
    return InvalidArgument("messages must be a JSON array");
  }
  nlohmann::ordered_json tools;  // null
  if (!tools_json.empty()) {
    tools = nlohmann::ordered_json::parse(tools_json, nullptr, false);
    if (tools.is_discarded() || !tools.is_array()) return InvalidArgument("tools must be a JSON array");
  }
  nlohmann::ordered_json extra = {{"bos_token", std::string(tok.bos_text())},
                                  {"eos_token", std::string(tok.eos_text())}};
  return tmpl->Render(messages, tools, add_generation_prompt, extra);
}

}  // namespace kiln::engine

namespace kiln::engine {
namespace {

std::shared_ptr<const ChatTemplate> ParseTemplate(const tokenizer::Tokenizer& tok) {
  if (tok.chat_template().empty()) return nullptr;
  auto tmpl = ChatTemplate::Parse(tok.chat_template());
  return tmpl.ok() ? *tmpl : nullptr;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

StatusOr<std::string> ResolveReference(const std::string& reference) {
  return model::ResolveModelReference(reference);
}

int NumThreads(const LoadedModel& lm) { return lm.model->NumThreads(); }
std::string KernelIsa(const LoadedModel& lm) { return lm.model->KernelIsa(); }

StatusOr<LoadedTokenizer> LoadTokenizer(const std::string& reference) {
  LoadedTokenizer out;
  if (EndsWith(reference, ".json")) {
    KILN_ASSIGN_OR_RETURN(out.tokenizer, tokenizer::Tokenizer::FromHfFiles(reference));
  } else {
    KILN_ASSIGN_OR_RETURN(auto source, model::OpenModelSource(reference));
    KILN_ASSIGN_OR_RETURN(out.tokenizer, tokenizer::Tokenizer::FromSource(*source));
  }
  out.chat_template = ParseTemplate(*out.tokenizer);
  return out;
}

}  // namespace kiln::engine
