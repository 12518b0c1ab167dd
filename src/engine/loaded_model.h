// LoadedModel: a model with its tokenizer and chat template, loaded from one reference
// (path, HF folder, hf://, default). Immutable after load except for the model's scratch.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "model/model.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace kiln::engine {

struct LoadedModel {
  std::string path;  // resolved local path
  std::unique_ptr<model::Model> model;
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer;
  std::shared_ptr<const ChatTemplate> chat_template;  // null if the model has none
  double load_ms = 0;
};

// Resolves a model reference to a local path (downloads hf:// references).
StatusOr<std::string> ResolveReference(const std::string& reference);

StatusOr<std::unique_ptr<LoadedModel>> LoadModel(const std::string& reference,
                                                  const model::LoadOptions& options);

// Threads the model computes with, and the kernel ISA it uses.
int NumThreads(const LoadedModel& lm);
std::string KernelIsa(const LoadedModel& lm);

// A tokenizer and chat template without the model's weights: from a tokenizer.json file, a
// folder holding one, or any model reference.
struct LoadedTokenizer {
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer;
  std::shared_ptr<const ChatTemplate> chat_template;  // null if none
};
StatusOr<LoadedTokenizer> LoadTokenizer(const std::string& reference);

// Renders the chat template with OpenAI-style messages (and tools, may be null JSON).
// FailedPrecondition if the model has no template.
StatusOr<std::string> RenderChat(const tokenizer::Tokenizer& tok,
                                 const ChatTemplate* tmpl,
                                 const std::string& messages_json, const std::string& tools_json,
                                 bool add_generation_prompt);

}  // namespace kiln::engine
