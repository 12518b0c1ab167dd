// OpenAI response bodies and SSE chunks built from kiln stream events. Pure functions of their
// inputs, so tests can compare them field by field with OpenAI's published schema.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kiln/serving.h"
#include "kiln/tools.h"
#include "protocol/request.h"

namespace kiln::server {

// What every response/chunk of one request shares.
struct ResponseMeta {
  Endpoint endpoint = Endpoint::kChat;
  std::string id;        // "chatcmpl-…" / "cmpl-…"
  int64_t created = 0;   // unix seconds
  std::string model;
  std::string system_fingerprint;
};

// A finished choice, accumulated from its events (non-streaming responses).
struct ChoiceResult {
  std::string text;
  std::vector<LogprobEntry> logprobs;
  std::string finish_reason;
  // A tool-call answer (ToolCallParser::in_envelope()): content null, tool_calls (when
  // non-empty) = the calls opened; finish_reason "tool_calls" iff tool_calls_complete.
  bool tool_answer = false;
  bool tool_calls_complete = false;
  std::vector<ToolCall> tool_calls;
};

// Random id with OpenAI's prefixes: "chatcmpl-" or "cmpl-" + 24 alphanumerics.
std::string NewResponseId(Endpoint endpoint);

// kiln finish reasons → OpenAI's enum ("abort" is reported as "stop": the server was stopping).
std::string OpenAiFinishReason(const std::string& kiln_reason);

nlohmann::json UsageJson(const Usage& usage);

// Non-streaming: {"id", "object": "chat.completion" | "text_completion", …, "choices", "usage"}.
nlohmann::json CompletionBody(const ResponseMeta& meta, const std::vector<ChoiceResult>& choices,
                              const Usage& usage, bool want_logprobs);

// Streaming: one chunk per event; `role_chunk` makes the chat chunk that opens a choice.
nlohmann::json RoleChunk(const ResponseMeta& meta, int32_t choice, bool include_usage);
// `text_offset`: bytes of this choice's text sent before the event (legacy logprobs only).
nlohmann::json EventChunk(const ResponseMeta& meta, const StreamEvent& event, bool want_logprobs,
                          bool include_usage, size_t text_offset);
// A chat chunk of a request with tools: content and/or tool-call deltas as OpenAI streams them
// ({"index", "id", "type": "function", "function": {"name", "arguments": ""}} when a call opens,
// then {"index", "function": {"arguments": fragment}}). `finish_reason` is OpenAI's value.
nlohmann::json ToolCallChunk(const ResponseMeta& meta, int32_t choice, const std::string& content,
                             const std::vector<ToolCallDelta>& calls,
                             const std::optional<std::string>& finish_reason,
                             const std::vector<LogprobEntry>& logprobs, bool want_logprobs,
                             bool include_usage);
// The include_usage chunk: empty choices and the usage.
nlohmann::json UsageChunk(const ResponseMeta& meta, const Usage& usage);

// The logprobs objects: chat {"content": [...], "refusal": null}; completions the legacy shape.
// `text_offset` is where the choice's text stood before these tokens (completions only).
nlohmann::json ChatLogprobs(const std::vector<LogprobEntry>& entries);
nlohmann::json LegacyLogprobs(const std::vector<LogprobEntry>& entries, size_t text_offset);

// "data: <json>\n\n" (invalid UTF-8 from partial tokens replaced, never thrown).
std::string SseData(const nlohmann::json& j);
// JSON text with invalid UTF-8 replaced by U+FFFD.
std::string Dump(const nlohmann::json& j);

}  // namespace kiln::server
