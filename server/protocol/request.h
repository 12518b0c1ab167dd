// OpenAI request bodies → kiln requests, for the HTTP server. The parser and validator itself
// is the api layer's (include/kiln/openai.h), shared with the Python package; this header
// adapts it to the server's types (nlohmann JSON messages) and builds error bodies.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "kiln/openai.h"
#include "kiln/openai_response.h"
#include "kiln/serving.h"

namespace kiln::server {

using ApiError = openai::RequestError;
using Endpoint = openai::Endpoint;
using RequestLimits = openai::RequestLimits;

// The validated request, before tokenization: openai::Request plus the messages as JSON.
struct ParsedRequest : openai::Request {
  nlohmann::json messages;  // kChat: messages_json parsed
};

// Parses and validates a request body (see include/kiln/openai.h for the policy on fields).
std::optional<ApiError> ParseRequest(std::string_view body, Endpoint endpoint,
                                     const RequestLimits& limits, ParsedRequest* out);

// Parses JSON with a nesting limit checked first (the parser never sees deep input).
std::optional<ApiError> ParseJsonBody(std::string_view body, int max_depth, nlohmann::json* out);

// Maps a kiln::Status from the engine to an ApiError (one place for code → HTTP status).
inline ApiError ErrorFromStatus(const Status& status, std::string param = "") {
  return openai::ErrorFromStatus(status, std::move(param));
}

// {"error": {...}} as OpenAI sends it (the shared builder, include/kiln/openai_response.h).
using openai::ErrorBody;

}  // namespace kiln::server
