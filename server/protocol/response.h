// OpenAI response bodies and stream chunks for the HTTP server: the builders themselves are the
// api layer's (include/kiln/openai_response.h, shared with the C API); this header adds the
// SSE framing.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "kiln/openai_response.h"
#include "protocol/request.h"

namespace kiln::server {

using openai::ChoiceResult;
using openai::ChunkRenderer;
using openai::CompletionBody;
using openai::Dump;
using openai::EventChunk;
using openai::NewResponseId;
using openai::ResponseCollector;
using openai::ResponseMeta;
using openai::RoleChunk;
using openai::UsageChunk;

// "data: <json>\n\n" (invalid UTF-8 from partial tokens replaced, never thrown).
std::string SseData(const nlohmann::json& j);
// "data: <text>\n\n" for a chunk already rendered to JSON text.
std::string SseData(const std::string& json_text);

}  // namespace kiln::server
