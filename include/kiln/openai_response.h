// OpenAI response bodies and stream chunks built from kiln stream events: the one builder the
// HTTP server (SSE) and the C API (kiln.h) share, so a request body gets the same JSON through
// both. Pure functions of their inputs, plus two small per-request state machines over them:
// ChunkRenderer (a streaming request's chunks) and ResponseCollector (a whole response).
// Moved here from server/protocol (#18). Uses nlohmann::json: front ends that include this
// header link nlohmann_json (kiln_api exports it).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "kiln/openai.h"
#include "kiln/serving.h"
#include "kiln/tools.h"

namespace kiln::openai {

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

// The system_fingerprint of responses: "kiln-<version>-<architecture>".
std::string SystemFingerprint(const std::string& architecture);

// The model id responses report for a model file or folder: its name without ".gguf" ("kiln"
// when empty), as `kiln serve` lists it in /v1/models.
std::string ModelIdFromPath(const std::string& path);

// Seconds since the Unix epoch (the `created` field).
int64_t UnixNow();

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

// {"error": {"message", "type", "param", "code"}} as OpenAI sends it.
nlohmann::json ErrorBody(const RequestError& error);

// The error of a choice that failed in the engine (finish_reason "error"): a server_error (500).
RequestError GenerationError(const StreamEvent& event);

// JSON text with invalid UTF-8 (partial tokens) replaced by U+FFFD, never thrown.
std::string Dump(const nlohmann::json& j);

// The chunks of one streaming request, as JSON texts, in the order OpenAI sends them. Not
// thread-safe; one per request.
class ChunkRenderer {
 public:
  ChunkRenderer(ResponseMeta meta, const Request& request);

  // The chunks that open the stream (chat: one role chunk per choice).
  void Start(std::vector<std::string>* out);
  // Appends the chunks of one event (after the done event: the usage chunk when
  // stream_options.include_usage). A choice that failed in the engine adds no chunk: its
  // error is returned for the front end to report (the server sends it as an error event).
  std::optional<RequestError> Render(const StreamEvent& event, std::vector<std::string>* out);
  // The done event was rendered: nothing follows but the front end's end marker ([DONE]).
  bool finished() const { return finished_; }

 private:
  ResponseMeta meta_;
  bool include_usage_ = false;
  bool want_logprobs_ = false;
  int32_t n_ = 1;
  bool tools_ = false;                   // tool calls possible: split text into calls (#7)
  std::vector<ToolCallParser> parsers_;  // one per choice when tools_
  std::vector<size_t> text_offsets_;     // bytes of text sent per choice
  bool finished_ = false;
};

// A whole (non-streaming) response accumulated from a request's events. Not thread-safe.
class ResponseCollector {
 public:
  ResponseCollector(ResponseMeta meta, const Request& request);

  void Add(const StreamEvent& event);
  // The done event was added.
  bool done() const { return done_; }
  // A choice failed in the engine (the last such error): the response is this error instead.
  const std::optional<RequestError>& error() const { return error_; }
  // The response body (after done() and without error()): tool-call answers resolved as the
  // stream would have sent them (kiln/tools.h).
  nlohmann::json Body() const;

 private:
  ResponseMeta meta_;
  bool want_logprobs_ = false;
  bool tools_ = false;
  std::vector<ChoiceResult> choices_;
  Usage usage_;
  std::optional<RequestError> error_;
  bool done_ = false;
};

}  // namespace kiln::openai
