// OpenAI response bodies and stream chunks (see include/kiln/openai_response.h).
#include "kiln/openai_response.h"

#include <chrono>
#include <random>

namespace kiln::openai {
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

std::string SystemFingerprint(const std::string& architecture) {
  return "kiln-0.1.0-" + architecture;
}

std::string ModelIdFromPath(const std::string& path) {
  std::string name = path.substr(path.find_last_of('/') + 1);
  if (name.size() > 5 && name.ends_with(".gguf")) name.resize(name.size() - 5);
  return name.empty() ? "kiln" : name;
}

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string OpenAiFinishReason(const std::string& kiln_reason) {
  // "stop", "abort" (server shutting down); "error" is reported separately
  return FinishReason(kiln_reason, /*tool_calls=*/false);
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
    choice["finish_reason"] = FinishReason(c.finish_reason, c.tool_calls_complete);
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

json ErrorBody(const RequestError& error) {
  json err = {{"message", error.message},
              {"type", error.type},
              {"param", error.param.empty() ? json(nullptr) : json(error.param)},
              {"code", error.code.empty() ? json(nullptr) : json(error.code)}};
  return json{{"error", std::move(err)}};
}

RequestError GenerationError(const StreamEvent& event) {
  return RequestError{.http_status = 500,
                      .message = event.error.empty() ? "generation failed" : event.error,
                      .type = "server_error"};
}

ChunkRenderer::ChunkRenderer(ResponseMeta meta, const Request& request)
    : meta_(std::move(meta)),
      include_usage_(request.include_usage),
      want_logprobs_(request.sampling.logprobs),
      n_(request.sampling.n),
      tools_(request.tools.Active()),
      text_offsets_(request.sampling.n, 0) {
  if (tools_) parsers_.assign(n_, ToolCallParser(/*tools_active=*/true));
}

void ChunkRenderer::Start(std::vector<std::string>* out) {
  if (meta_.endpoint != Endpoint::kChat) return;
  for (int32_t i = 0; i < n_; ++i) out->push_back(Dump(RoleChunk(meta_, i, include_usage_)));
}

std::optional<RequestError> ChunkRenderer::Render(const StreamEvent& ev,
                                                  std::vector<std::string>* out) {
  std::optional<RequestError> error;
  const bool valid_choice = ev.choice >= 0 && ev.choice < n_;
  if (valid_choice && ev.finish_reason == "error") {
    error = GenerationError(ev);
  } else if (valid_choice && tools_) {
    ToolCallParser& parser = parsers_[ev.choice];
    ToolCallParser::Output o = parser.Feed(ev.text);
    std::optional<std::string> reason;
    if (ev.finish_reason) reason = FinishReason(*ev.finish_reason, parser.IsToolCall());
    if (!o.content.empty() || !o.calls.empty() || reason || !ev.logprobs.empty()) {
      out->push_back(Dump(ToolCallChunk(meta_, ev.choice, o.content, o.calls, reason,
                                        ev.logprobs, want_logprobs_, include_usage_)));
    }
  } else if (valid_choice && (!ev.text.empty() || ev.finish_reason || !ev.logprobs.empty())) {
    out->push_back(Dump(EventChunk(meta_, ev, want_logprobs_, include_usage_,
                                   text_offsets_[ev.choice])));
    text_offsets_[ev.choice] += ev.text.size();
  }
  if (ev.done) {
    finished_ = true;
    if (include_usage_) out->push_back(Dump(UsageChunk(meta_, ev.usage)));
  }
  return error;
}

ResponseCollector::ResponseCollector(ResponseMeta meta, const Request& request)
    : meta_(std::move(meta)),
      want_logprobs_(request.sampling.logprobs),
      tools_(request.tools.Active()),
      choices_(request.sampling.n) {}

void ResponseCollector::Add(const StreamEvent& ev) {
  if (ev.choice >= 0 && ev.choice < static_cast<int32_t>(choices_.size())) {
    ChoiceResult& c = choices_[ev.choice];
    c.text += ev.text;
    c.logprobs.insert(c.logprobs.end(), ev.logprobs.begin(), ev.logprobs.end());
    if (ev.finish_reason) c.finish_reason = *ev.finish_reason;
    if (ev.finish_reason == "error") error_ = GenerationError(ev);
  }
  if (ev.done) {
    usage_ = ev.usage;
    done_ = true;
  }
}

json ResponseCollector::Body() const {
  if (!tools_) return CompletionBody(meta_, choices_, usage_, want_logprobs_);
  std::vector<ChoiceResult> choices = choices_;
  for (ChoiceResult& c : choices) {
    ToolCallParser parser(/*tools_active=*/true);
    parser.Feed(c.text);
    if (parser.in_envelope()) {  // as the stream would have sent it (tools.h)
      c.tool_answer = true;
      c.tool_calls = parser.calls();
      c.tool_calls_complete = parser.IsToolCall();
    }
  }
  return CompletionBody(meta_, choices, usage_, want_logprobs_);
}

}  // namespace kiln::openai
