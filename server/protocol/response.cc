// OpenAI response bodies and SSE chunks (see response.h).
#include "protocol/response.h"

#include <random>

namespace kiln::server {
namespace {

using nlohmann::json;

const char* ObjectName(Endpoint e, bool chunk) {
  if (e == Endpoint::kCompletion) return "text_completion";
  return chunk ? "chat.completion.chunk" : "chat.completion";
}

json Header(const ResponseMeta& meta, bool chunk) {
  return json{{"id", meta.id},
              {"object", ObjectName(meta.endpoint, chunk)},
              {"created", meta.created},
              {"model", meta.model},
              {"system_fingerprint", meta.system_fingerprint}};
}

json Bytes(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

json TokenJson(const TokenLogprob& t) {
  return json{{"token", t.text}, {"logprob", t.logprob}, {"bytes", Bytes(t.text)}};
}

json FinishJson(const std::optional<std::string>& reason) {
  return reason ? json(OpenAiFinishReason(*reason)) : json(nullptr);
}

}  // namespace

std::string NewResponseId(Endpoint endpoint) {
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string id = endpoint == Endpoint::kChat ? "chatcmpl-" : "cmpl-";
  std::uniform_int_distribution<int> pick(0, sizeof(kAlphabet) - 2);
  for (int i = 0; i < 24; ++i) id += kAlphabet[pick(rng)];
  return id;
}

std::string OpenAiFinishReason(const std::string& kiln_reason) {
  // "stop", "abort" (server shutting down); "error" is reported separately
  return openai::FinishReason(kiln_reason, /*tool_calls=*/false);
}

json UsageJson(const Usage& usage) {
  return json{{"prompt_tokens", usage.prompt_tokens},
              {"completion_tokens", usage.completion_tokens},
              {"total_tokens", usage.prompt_tokens + usage.completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", usage.cached_tokens}}},
              // Speculation's guesses, in the fields OpenAI uses for Predicted Outputs.
              {"completion_tokens_details",
               {{"accepted_prediction_tokens", usage.accepted_tokens},
                {"rejected_prediction_tokens", usage.drafted_tokens - usage.accepted_tokens}}}};
}

json ChatLogprobs(const std::vector<LogprobEntry>& entries) {
  json content = json::array();
  for (const LogprobEntry& e : entries) {
    json item = TokenJson(e.token);
    json top = json::array();
    for (const TokenLogprob& t : e.top) top.push_back(TokenJson(t));
    item["top_logprobs"] = std::move(top);
    content.push_back(std::move(item));
  }
  return json{{"content", std::move(content)}, {"refusal", nullptr}};
}

json LegacyLogprobs(const std::vector<LogprobEntry>& entries, size_t text_offset) {
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(),
       offsets = json::array();
  for (const LogprobEntry& e : entries) {
    tokens.push_back(e.token.text);
    token_logprobs.push_back(e.token.logprob);
    json alternatives = json::object();
    for (const TokenLogprob& t : e.top) {
      // Two alternatives may decode to the same text; keep the more likely (listed first).
      if (!alternatives.contains(t.text)) alternatives[t.text] = t.logprob;
    }
    top.push_back(std::move(alternatives));
    offsets.push_back(text_offset);
    text_offset += e.token.text.size();
  }
  return json{{"tokens", std::move(tokens)},
              {"token_logprobs", std::move(token_logprobs)},
              {"top_logprobs", std::move(top)},
              {"text_offset", std::move(offsets)}};
}

json CompletionBody(const ResponseMeta& meta, const std::vector<ChoiceResult>& choices,
                    const Usage& usage, bool want_logprobs) {
  json body = Header(meta, /*chunk=*/false);
  json out = json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceResult& c = choices[i];
    json choice{{"index", i}};
    if (meta.endpoint == Endpoint::kChat) {
      choice["message"] = {{"role", "assistant"}, {"content", c.text}, {"refusal", nullptr}};
      if (c.tool_answer) choice["message"]["content"] = nullptr;
      if (!c.tool_calls.empty()) {
        json calls = json::array();
        for (const ToolCall& t : c.tool_calls) {
          calls.push_back({{"id", t.id},
                           {"type", "function"},
                           {"function", {{"name", t.name}, {"arguments", t.arguments}}}});
        }
        choice["message"]["content"] = nullptr;
        choice["message"]["tool_calls"] = std::move(calls);
      }
      choice["logprobs"] = want_logprobs ? ChatLogprobs(c.logprobs) : json(nullptr);
    } else {
      choice["text"] = c.text;
      choice["logprobs"] = want_logprobs ? LegacyLogprobs(c.logprobs, 0) : json(nullptr);
    }
    choice["finish_reason"] = openai::FinishReason(c.finish_reason, c.tool_calls_complete);
    out.push_back(std::move(choice));
  }
  body["choices"] = std::move(out);
  body["usage"] = UsageJson(usage);
  return body;
}

json RoleChunk(const ResponseMeta& meta, int32_t choice, bool include_usage) {
  json chunk = Header(meta, /*chunk=*/true);
  chunk["choices"] = json::array({json{{"index", choice},
                                       {"delta", {{"role", "assistant"}, {"content", ""}}},
                                       {"logprobs", nullptr},
                                       {"finish_reason", nullptr}}});
  if (include_usage) chunk["usage"] = nullptr;
  return chunk;
}

json EventChunk(const ResponseMeta& meta, const StreamEvent& event, bool want_logprobs,
                bool include_usage, size_t text_offset) {
  json chunk = Header(meta, /*chunk=*/true);
  json choice{{"index", event.choice}};
  bool has_logprobs = want_logprobs && !event.logprobs.empty();
  if (meta.endpoint == Endpoint::kChat) {
    json delta = json::object();
    if (!event.text.empty()) delta["content"] = event.text;
    choice["delta"] = std::move(delta);
    choice["logprobs"] = has_logprobs ? ChatLogprobs(event.logprobs) : json(nullptr);
  } else {
    choice["text"] = event.text;
    choice["logprobs"] = has_logprobs ? LegacyLogprobs(event.logprobs, text_offset) : json(nullptr);
  }
  choice["finish_reason"] = FinishJson(event.finish_reason);
  chunk["choices"] = json::array({std::move(choice)});
  // Chat chunks carry "usage": null until the usage chunk; the legacy completion schema has
  // no nullable usage, so its chunks leave the field out.
  if (include_usage && meta.endpoint == Endpoint::kChat) chunk["usage"] = nullptr;
  return chunk;
}

json ToolCallChunk(const ResponseMeta& meta, int32_t choice, const std::string& content,
                   const std::vector<ToolCallDelta>& calls,
                   const std::optional<std::string>& finish_reason,
                   const std::vector<LogprobEntry>& logprobs, bool want_logprobs,
                   bool include_usage) {
  json chunk = Header(meta, /*chunk=*/true);
  json delta = json::object();
  if (!content.empty()) delta["content"] = content;
  if (!calls.empty()) {
    json out = json::array();
    for (const ToolCallDelta& d : calls) {
      json fn = json::object();
      if (d.name) fn["name"] = *d.name;
      fn["arguments"] = d.arguments;
      json item{{"index", d.index}};
      if (d.id) {
        item["id"] = *d.id;
        item["type"] = "function";
      }
      item["function"] = std::move(fn);
      out.push_back(std::move(item));
    }
    delta["tool_calls"] = std::move(out);
  }
  bool has_logprobs = want_logprobs && !logprobs.empty();
  chunk["choices"] = json::array({json{{"index", choice},
                                       {"delta", std::move(delta)},
                                       {"logprobs", has_logprobs ? ChatLogprobs(logprobs) : json(nullptr)},
                                       {"finish_reason", finish_reason ? json(*finish_reason) : json(nullptr)}}});
  if (include_usage) chunk["usage"] = nullptr;
  return chunk;
}

json UsageChunk(const ResponseMeta& meta, const Usage& usage) {
  json chunk = Header(meta, /*chunk=*/true);
  chunk["choices"] = json::array();
  chunk["usage"] = UsageJson(usage);
  return chunk;
}

std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string SseData(const json& j) { return "data: " + Dump(j) + "\n\n"; }

}  // namespace kiln::server
