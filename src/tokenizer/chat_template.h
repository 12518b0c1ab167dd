// ChatTemplate: renders a model's Jinja chat template (tokenizer_config.json "chat_template" or
// GGUF tokenizer.chat_template) to a prompt, byte-identical to transformers'
// apply_chat_template(tokenize=False) with jinja2's ImmutableSandboxedEnvironment.
// Parse once, render many; thread-safe (Render is const and allocates its own state).
#pragma once

#include <ctime>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "tokenizer/jinja/interpreter.h"

namespace kiln {

struct ChatTemplateOptions {
  jinja::Limits limits;
  // Time for strftime_now(); empty: the current local time. Tests inject a fixed clock.
  std::function<std::tm()> clock;
};

class ChatTemplate {
 public:
  // Parses `source`; syntax errors are InvalidArgument with line and column.
  static StatusOr<std::shared_ptr<const ChatTemplate>> Parse(std::string source,
                                                             ChatTemplateOptions options = {});

  // Renders with variables messages, tools (null → None), documents (None),
  // add_generation_prompt, and every key of `extra_vars` (bos_token, eos_token,
  // enable_thinking, …; an object or null). Template errors, raise_exception() and exceeded
  // limits are InvalidArgument; raise_exception's message is kept ("TemplateError: <msg>").
  StatusOr<std::string> Render(const nlohmann::ordered_json& messages,
                               const nlohmann::ordered_json& tools, bool add_generation_prompt,
                               const nlohmann::ordered_json& extra_vars) const;

  // Renders with arbitrary top-level variables (an object); nothing is added.
  StatusOr<std::string> RenderWithVars(const nlohmann::ordered_json& vars) const;

  const std::string& source() const { return source_; }

 private:
  ChatTemplate() = default;
  std::string source_;
  ChatTemplateOptions options_;
  std::shared_ptr<const jinja::Body> body_;
};

}  // namespace kiln
