// The server's adapter over the shared OpenAI request parser (include/kiln/openai.h).
#include "protocol/request.h"

namespace kiln::server {

using nlohmann::json;

std::optional<ApiError> ParseJsonBody(std::string_view body, int max_depth, json* out) {
  if (auto err = openai::CheckJsonBody(body, max_depth)) return err;
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return ApiError{.message = "request body is not valid JSON"};
  *out = std::move(parsed);
  return std::nullopt;
}

std::optional<ApiError> ParseRequest(std::string_view body, Endpoint endpoint,
                                     const RequestLimits& limits, ParsedRequest* out) {
  if (auto err = openai::ParseRequest(body, endpoint, limits, out)) return err;
  if (endpoint == Endpoint::kChat) {
    out->messages = json::parse(out->messages_json, nullptr, /*allow_exceptions=*/false);
  }
  return std::nullopt;
}

}  // namespace kiln::server
