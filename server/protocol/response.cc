// SSE framing of the shared OpenAI response builders (see response.h).
#include "protocol/response.h"

namespace kiln::server {

std::string SseData(const nlohmann::json& j) { return SseData(Dump(j)); }

std::string SseData(const std::string& json_text) { return "data: " + json_text + "\n\n"; }

}  // namespace kiln::server
