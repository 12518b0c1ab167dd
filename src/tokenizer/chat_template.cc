#include "tokenizer/chat_template.h"

#include "tokenizer/jinja/ast.h"

namespace kiln {

StatusOr<std::shared_ptr<const ChatTemplate>> ChatTemplate::Parse(std::string source,
                                                                  ChatTemplateOptions options) {
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const jinja::Body> body, jinja::ParseTemplate(source));
  std::shared_ptr<ChatTemplate> t(new ChatTemplate());
  t->source_ = std::move(source);
  t->options_ = std::move(options);
  t->body_ = std::move(body);
  return std::shared_ptr<const ChatTemplate>(std::move(t));
}

StatusOr<std::string> ChatTemplate::RenderWithVars(const nlohmann::ordered_json& vars) const {
  if (!vars.is_object()) return InvalidArgument("chat template variables must be a JSON object");
  std::vector<std::pair<std::string, jinja::Value>> values;
  for (const auto& [k, v] : vars.items()) values.emplace_back(k, jinja::Value::FromJson(v));
  jinja::ClockFn clock = options_.clock;
  if (!clock) {
    clock = [] {
      std::time_t now = std::time(nullptr);
      std::tm tm{};
      localtime_r(&now, &tm);
      return tm;
    };
  }
  jinja::Interpreter interp(options_.limits, std::move(clock));
  return interp.Render(*body_, values);
}

StatusOr<std::string> ChatTemplate::Render(const nlohmann::ordered_json& messages,
                                           const nlohmann::ordered_json& tools,
                                           bool add_generation_prompt,
                                           const nlohmann::ordered_json& extra_vars) const {
  if (!extra_vars.is_null() && !extra_vars.is_object()) {
    return InvalidArgument("chat template extra variables must be a JSON object");
  }
  // Same variables, in the same order, as transformers' render_jinja_template.
  nlohmann::ordered_json vars = nlohmann::ordered_json::object();
  vars["messages"] = messages;
  vars["tools"] = tools;
  vars["documents"] = nullptr;
  vars["add_generation_prompt"] = add_generation_prompt;
  if (extra_vars.is_object()) {
    for (const auto& [k, v] : extra_vars.items()) vars[k] = v;
  }
  return RenderWithVars(vars);
}

}  // namespace kiln
