// OpenAI request bodies (chat/completions, completions) → kiln requests: the one parser and
// validator every front end uses (the server, the Python package), so a field means the same
// thing and fails with the same error everywhere.
//
// Strict validation: every known field is type- and range-checked and a failure names the field
// (`param` of OpenAI's error object). Fields OpenAI documents that do not change the output
// (user, store, metadata, service_tier, …) and fields nobody documents are ignored, like vLLM;
// fields whose meaning kiln cannot honour (audio, legacy functions, …) fail closed.
// response_format and tools become Constraints compiled by the engine before anything is
// queued (ServingEngine::CheckConstraint), so a schema kiln cannot enforce is a 400 too.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/serving.h"
#include "kiln/tools.h"

namespace kiln::openai {

// A request error: front ends turn it into {"error": {message, type, param, code}} (HTTP) or
// the matching exception (Python).
struct RequestError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // "" → null
  std::string code;   // "" → null
};

enum class Endpoint { kChat, kCompletion };

struct RequestLimits {
  int max_n = 16;
  int max_stop = 4;
  int max_logit_bias = 1024;
  int max_top_logprobs = 20;
  int max_messages = 4096;
  int max_tools = 128;
  int64_t n_vocab = 0;   // logit_bias keys must be < n_vocab when > 0
};

// The validated request, before templating and tokenization.
struct Request {
  Endpoint endpoint = Endpoint::kChat;
  std::string model;
  bool stream = false;
  bool include_usage = false;
  // kChat: the messages array (JSON text) as the chat template expects it: string contents,
  // developer → system, assistant tool_calls and tool messages validated.
  std::string messages_json;
  // kCompletion: a text prompt or token ids (exactly one is set).
  std::optional<std::string> prompt_text;
  std::vector<int32_t> prompt_ids;
  bool echo = false;
  SamplingOptions sampling;
  Constraint response_format;  // kNone for {"type":"text"} or absent
  ToolSet tools;               // chat only; tools.Active() when calls may be generated
  bool speculate = true;       // kiln extension "speculation": "auto" (default) | "off"
  std::string prediction;      // chat: Predicted Outputs' content ("" = none)
};

// Parses and validates a request body (UTF-8 JSON). Does not compile constraints.
std::optional<RequestError> ParseRequest(std::string_view body, Endpoint endpoint,
                                         const RequestLimits& limits, Request* out);

// Checks that `body` is JSON within `max_depth` levels of nesting (the depth is checked first,
// so a parser never sees deeper input). Front ends use it for their other JSON endpoints.
std::optional<RequestError> CheckJsonBody(std::string_view body, int max_depth);

// Everything between a parsed request and ServingEngine::Submit: the chat template (with the
// tool definitions and the tool fallback of kiln/tools.h), tokenization, and the constraint
// from response_format or tools, compiled by engine.CheckConstraint (errors name the field).
std::optional<RequestError> BuildCompletionRequest(const ServingEngine& engine,
                                                   const Request& request,
                                                   CompletionRequest* out);

// OpenAI rejects prompt + max_tokens beyond the context instead of silently clamping:
// context_length_exceeded naming "messages" (the prompt alone is too long) or "max_tokens".
// `max_context` <= 0 → no limit.
std::optional<RequestError> CheckContextLength(const CompletionRequest& request,
                                               int32_t max_context);

// Maps a kiln::Status to a RequestError (the one place for code → HTTP status).
RequestError ErrorFromStatus(const Status& status, std::string param = "");

// OpenAI's finish_reason for a choice: "tool_calls" when it produced calls, else
// "length" | "stop" ("abort" is reported as "stop": the server was stopping).
std::string FinishReason(const std::string& kiln_reason, bool tool_calls);

}  // namespace kiln::openai
