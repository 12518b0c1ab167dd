// OpenAI request bodies (chat/completions, completions) → kiln::CompletionRequest inputs.
// Strict validation: every known field is type- and range-checked and a failure names the field
// (`param` of OpenAI's error object). Fields OpenAI documents that do not change the output
// (user, store, metadata, service_tier, …) and fields nobody documents are ignored, like vLLM;
// fields whose meaning kiln cannot honour yet (tools, response_format, audio, …) fail closed.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "kiln/serving.h"

namespace kiln::server {

// A request error: the HTTP layer turns it into {"error": {message, type, param, code}}.
struct ApiError {
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
  int64_t n_vocab = 0;   // logit_bias keys must be < n_vocab when > 0
};

// The validated request, before tokenization.
struct ParsedRequest {
  Endpoint endpoint = Endpoint::kChat;
  std::string model;
  bool stream = false;
  bool include_usage = false;
  // kChat: the messages array as the chat template expects it (string contents, developer → system).
  nlohmann::json messages;
  // kCompletion: a text prompt or token ids (exactly one is set).
  std::optional<std::string> prompt_text;
  std::vector<int32_t> prompt_ids;
  bool echo = false;
  SamplingOptions sampling;
  // Structured generation (#7): the raw response_format / tools when they are not a no-op.
  // Today the parser rejects them; the hook is here so the grammar engine only has to fill
  // CompletionRequest::grammar from these.
  nlohmann::json response_format;
  nlohmann::json tools;
};

// Parses and validates a request body. The body must be UTF-8 JSON (nlohmann checks encoding).
std::optional<ApiError> ParseRequest(std::string_view body, Endpoint endpoint,
                                     const RequestLimits& limits, ParsedRequest* out);

// Parses JSON with a nesting limit checked first (the parser never sees deep input).
std::optional<ApiError> ParseJsonBody(std::string_view body, int max_depth, nlohmann::json* out);

// Maps a kiln::Status from the engine to an ApiError (one place for code → HTTP status).
ApiError ErrorFromStatus(const Status& status, std::string param = "");

// {"error": {...}} as OpenAI sends it.
nlohmann::json ErrorBody(const ApiError& error);

}  // namespace kiln::server
