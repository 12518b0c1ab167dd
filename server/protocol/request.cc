// OpenAI request parsing and validation (see request.h for the policy on unknown fields).
#include "protocol/request.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>

namespace kiln::server {
namespace {

using nlohmann::json;

constexpr int kMaxStopChars = 512;

ApiError Invalid(const std::string& param, const std::string& message) {
  return ApiError{.http_status = 400, .message = message, .param = param};
}

ApiError Unsupported(const std::string& param, const std::string& message) {
  return ApiError{.http_status = 400, .message = message, .param = param,
                  .code = "unsupported_parameter"};
}

// Reads optional fields of one JSON object with type and range checks. `null` means absent,
// as OpenAI's schema marks these fields nullable.
class Fields {
 public:
  explicit Fields(const json& obj) : obj_(obj) {}

  const json* Get(const char* key) const {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  std::optional<ApiError> Bool(const char* key, bool* out) const {
    const json* v = Get(key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) return Invalid(key, StrFormat("'%s' must be a boolean", key));
    *out = v->get<bool>();
    return std::nullopt;
  }

  std::optional<ApiError> Number(const char* key, double lo, double hi, float* out) const {
    const json* v = Get(key);
    if (!v) return std::nullopt;
    if (!v->is_number()) return Invalid(key, StrFormat("'%s' must be a number", key));
    double d = v->get<double>();
    if (!std::isfinite(d) || d < lo || d > hi) {
      return Invalid(key, StrFormat("'%s' must be between %g and %g, got %s", key, lo, hi,
                                    v->dump().c_str()));
    }
    *out = static_cast<float>(d);
    return std::nullopt;
  }

  std::optional<ApiError> Int(const char* key, int64_t lo, int64_t hi, int64_t* out) const {
    const json* v = Get(key);
    if (!v) return std::nullopt;
    return IntValue(*v, key, lo, hi, out);
  }

  std::optional<ApiError> String(const char* key, std::string* out) const {
    const json* v = Get(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) return Invalid(key, StrFormat("'%s' must be a string", key));
    *out = v->get<std::string>();
    return std::nullopt;
  }

  static std::optional<ApiError> IntValue(const json& v, const std::string& name, int64_t lo,
                                          int64_t hi, int64_t* out) {
    if (!v.is_number_integer()) {
      return Invalid(name, StrFormat("'%s' must be an integer", name.c_str()));
    }
    bool in_range;
    int64_t x = 0;
    if (v.is_number_unsigned()) {
      uint64_t u = v.get<uint64_t>();
      in_range = u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) &&
                 static_cast<int64_t>(u) >= lo && static_cast<int64_t>(u) <= hi;
      x = static_cast<int64_t>(u);
    } else {
      x = v.get<int64_t>();
      in_range = x >= lo && x <= hi;
    }
    if (!in_range) {
      return Invalid(name, StrFormat("'%s' must be between %lld and %lld, got %s", name.c_str(),
                                     static_cast<long long>(lo), static_cast<long long>(hi),
                                     v.dump().c_str()));
    }
    *out = x;
    return std::nullopt;
  }

 private:
  const json& obj_;
};

#define KILN_API_TRY(expr)              \
  do {                                  \
    if (auto err_ = (expr)) return err_; \
  } while (0)

std::optional<ApiError> ParseStop(const Fields& f, const RequestLimits& limits,
                                  SamplingOptions* s) {
  const json* v = f.Get("stop");
  if (!v) return std::nullopt;
  std::vector<std::string> stops;
  if (v->is_string()) {
    stops.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    if (static_cast<int>(v->size()) > limits.max_stop) {
      return Invalid("stop", StrFormat("'stop' has %zu sequences, at most %d are allowed",
                                       v->size(), limits.max_stop));
    }
    for (const json& e : *v) {
      if (!e.is_string()) return Invalid("stop", "'stop' must be a string or an array of strings");
      stops.push_back(e.get<std::string>());
    }
  } else {
    return Invalid("stop", "'stop' must be a string or an array of strings");
  }
  for (const std::string& stop : stops) {
    if (stop.empty()) return Invalid("stop", "'stop' sequences must not be empty");
    if (stop.size() > kMaxStopChars) {
      return Invalid("stop", StrFormat("'stop' sequences are limited to %d bytes", kMaxStopChars));
    }
  }
  s->stop = std::move(stops);
  return std::nullopt;
}

std::optional<ApiError> ParseLogitBias(const Fields& f, const RequestLimits& limits,
                                       SamplingOptions* s) {
  const json* v = f.Get("logit_bias");
  if (!v) return std::nullopt;
  if (!v->is_object()) return Invalid("logit_bias", "'logit_bias' must be an object");
  if (static_cast<int>(v->size()) > limits.max_logit_bias) {
    return Invalid("logit_bias", StrFormat("'logit_bias' has %zu entries, at most %d are allowed",
                                           v->size(), limits.max_logit_bias));
  }
  for (const auto& [key, value] : v->items()) {
    char* end = nullptr;
    errno = 0;
    long long id = key.empty() ? -1 : std::strtoll(key.c_str(), &end, 10);
    bool digits = !key.empty() && end == key.c_str() + key.size() && errno == 0 &&
                  key.find_first_not_of("0123456789") == std::string::npos;
    if (!digits || id < 0 || (limits.n_vocab > 0 && id >= limits.n_vocab)) {
      return Invalid("logit_bias",
                     StrFormat("'logit_bias' keys must be token ids in [0, %lld), got '%s'",
                               static_cast<long long>(limits.n_vocab), key.c_str()));
    }
    if (!value.is_number() || !std::isfinite(value.get<double>()) ||
        value.get<double>() < -100 || value.get<double>() > 100) {
      return Invalid("logit_bias", "'logit_bias' values must be numbers between -100 and 100");
    }
    s->logit_bias[static_cast<int32_t>(id)] = value.get<float>();
  }
  return std::nullopt;
}

// Fields shared by both endpoints.
std::optional<ApiError> ParseSampling(const Fields& f, const RequestLimits& limits,
                                      SamplingOptions* s) {
  KILN_API_TRY(f.Number("temperature", 0, 2, &s->temperature));
  KILN_API_TRY(f.Number("top_p", 0, 1, &s->top_p));
  KILN_API_TRY(f.Number("presence_penalty", -2, 2, &s->presence_penalty));
  KILN_API_TRY(f.Number("frequency_penalty", -2, 2, &s->frequency_penalty));
  KILN_API_TRY(f.Number("min_p", 0, 1, &s->min_p));
  KILN_API_TRY(f.Number("repetition_penalty", 0.01, 10, &s->repetition_penalty));
  int64_t x = 0;
  x = 1;
  KILN_API_TRY(f.Int("n", 1, limits.max_n, &x));
  s->n = static_cast<int32_t>(x);
  x = 0;
  KILN_API_TRY(f.Int("top_k", -1, std::numeric_limits<int32_t>::max(), &x));
  s->top_k = x < 0 ? 0 : static_cast<int32_t>(x);
  x = 0;
  KILN_API_TRY(f.Int("min_tokens", 0, std::numeric_limits<int32_t>::max(), &x));
  s->min_tokens = static_cast<int32_t>(x);
  if (const json* seed = f.Get("seed")) {
    int64_t v = 0;
    KILN_API_TRY(Fields::IntValue(*seed, "seed", std::numeric_limits<int64_t>::min(),
                                  std::numeric_limits<int64_t>::max(), &v));
    s->seed = static_cast<uint64_t>(v);
  }
  KILN_API_TRY(f.Bool("ignore_eos", &s->ignore_eos));
  KILN_API_TRY(ParseStop(f, limits, s));
  KILN_API_TRY(ParseLogitBias(f, limits, s));
  std::string user;
  KILN_API_TRY(f.String("user", &user));
  if (const json* b = f.Get("best_of")) {
    int64_t best_of = 0;
    KILN_API_TRY(Fields::IntValue(*b, "best_of", 1, limits.max_n, &best_of));
    if (best_of != s->n) return Unsupported("best_of", "'best_of' other than 'n' is not supported");
  }
  if (const json* st = f.Get("stop_token_ids")) {
    if (!st->is_array() || st->size() > 64) {
      return Invalid("stop_token_ids", "'stop_token_ids' must be an array of at most 64 token ids");
    }
    for (const json& e : *st) {
      int64_t id = 0;
      int64_t hi = limits.n_vocab > 0 ? limits.n_vocab - 1 : std::numeric_limits<int32_t>::max();
      KILN_API_TRY(Fields::IntValue(e, "stop_token_ids", 0, hi, &id));
      s->stop_token_ids.push_back(static_cast<int32_t>(id));
    }
  }
  return std::nullopt;
}

std::optional<ApiError> ParseMaxTokens(const Fields& f, const char* key, SamplingOptions* s) {
  int64_t x = -1;
  KILN_API_TRY(f.Int(key, 1, std::numeric_limits<int32_t>::max(), &x));
  if (f.Get(key)) s->max_tokens = static_cast<int32_t>(x);
  return std::nullopt;
}

std::optional<ApiError> ParseStreamOptions(const Fields& f, ParsedRequest* out) {
  KILN_API_TRY(f.Bool("stream", &out->stream));
  const json* so = f.Get("stream_options");
  if (!so) return std::nullopt;
  if (!so->is_object()) return Invalid("stream_options", "'stream_options' must be an object");
  if (!out->stream) {
    return Invalid("stream_options", "'stream_options' is only allowed when 'stream' is true");
  }
  Fields sf(*so);
  if (auto err = sf.Bool("include_usage", &out->include_usage)) {
    err->param = "stream_options.include_usage";
    return err;
  }
  return std::nullopt;
}

// Fields kiln cannot honour yet fail closed; the structured-generation issue (#7) replaces the
// rejections of response_format / tools with grammar compilation.
std::optional<ApiError> RejectUnsupported(const Fields& f, ParsedRequest* out) {
  if (const json* rf = f.Get("response_format")) {
    if (!rf->is_object() || !rf->contains("type") || !(*rf)["type"].is_string()) {
      return Invalid("response_format", "'response_format' must be an object with a 'type'");
    }
    if ((*rf)["type"] != "text") {
      out->response_format = *rf;
      return Unsupported("response_format",
                         "'response_format' of type '" + (*rf)["type"].get<std::string>() +
                             "' is not supported yet (structured generation, issue #7)");
    }
  }
  for (const char* key : {"tools", "functions"}) {
    if (const json* t = f.Get(key)) {
      if (!t->is_array()) return Invalid(key, StrFormat("'%s' must be an array", key));
      if (!t->empty()) {
        out->tools = *t;
        return Unsupported(key, StrFormat("'%s' is not supported yet (structured generation, "
                                          "issue #7)", key));
      }
    }
  }
  for (const char* key : {"tool_choice", "function_call"}) {
    if (const json* t = f.Get(key)) {
      if (!(t->is_string() && *t == "none")) {
        return Unsupported(key, StrFormat("'%s' is not supported yet (structured generation, "
                                          "issue #7)", key));
      }
    }
  }
  for (const char* key : {"audio", "prediction", "web_search_options"}) {
    if (f.Get(key)) return Unsupported(key, StrFormat("'%s' is not supported", key));
  }
  if (const json* m = f.Get("modalities")) {
    if (!m->is_array()) return Invalid("modalities", "'modalities' must be an array");
    for (const json& e : *m) {
      if (e != "text") return Unsupported("modalities", "only the 'text' modality is supported");
    }
  }
  return std::nullopt;
}

std::optional<ApiError> ContentText(const json& content, const std::string& param,
                                    std::string* out) {
  if (content.is_string()) {
    *out = content.get<std::string>();
    return std::nullopt;
  }
  if (!content.is_array()) {
    return Invalid(param, "'" + param + "' must be a string or an array of content parts");
  }
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const json& part = content[i];
    std::string part_param = param + "[" + std::to_string(i) + "]";
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string()) {
      return Invalid(part_param, "content parts must be objects with a 'type'");
    }
    if (part["type"] != "text") {
      return Unsupported(part_param, "content parts of type '" + part["type"].get<std::string>() +
                                         "' are not supported (text only)");
    }
    if (!part.contains("text") || !part["text"].is_string()) {
      return Invalid(part_param + ".text", "a text content part needs a string 'text'");
    }
    if (!text.empty()) text += "\n";
    text += part["text"].get<std::string>();
  }
  *out = std::move(text);
  return std::nullopt;
}

std::optional<ApiError> ParseMessage(const json& m, size_t i, json* out) {
  std::string param = "messages[" + std::to_string(i) + "]";
  if (!m.is_object()) return Invalid(param, "each message must be an object");
  auto role_it = m.find("role");
  if (role_it == m.end() || !role_it->is_string()) {
    return Invalid(param + ".role", "each message needs a string 'role'");
  }
  std::string role = role_it->get<std::string>();
  if (role != "system" && role != "developer" && role != "user" && role != "assistant" &&
      role != "tool") {
    return Invalid(param + ".role", "unknown role '" + role +
                                        "' (expected system, developer, user, assistant or tool)");
  }
  json msg = json::object();
  msg["role"] = role == "developer" ? "system" : role;
  auto content = m.find("content");
  bool has_tool_calls = m.contains("tool_calls") && !m["tool_calls"].is_null();
  if (content == m.end() || content->is_null()) {
    if (!(role == "assistant" && has_tool_calls)) {
      return Invalid(param + ".content", "message content is required");
    }
    msg["content"] = nullptr;
  } else {
    std::string text;
    KILN_API_TRY(ContentText(*content, param + ".content", &text));
    msg["content"] = std::move(text);
  }
  if (auto name = m.find("name"); name != m.end() && !name->is_null()) {
    if (!name->is_string()) return Invalid(param + ".name", "'name' must be a string");
    msg["name"] = *name;
  }
  if (has_tool_calls) {
    if (role != "assistant" || !m["tool_calls"].is_array()) {
      return Invalid(param + ".tool_calls", "'tool_calls' must be an array on assistant messages");
    }
    msg["tool_calls"] = m["tool_calls"];
  }
  if (role == "tool") {
    auto id = m.find("tool_call_id");
    if (id == m.end() || !id->is_string()) {
      return Invalid(param + ".tool_call_id", "tool messages need a string 'tool_call_id'");
    }
    msg["tool_call_id"] = *id;
  }
  *out = std::move(msg);
  return std::nullopt;
}

std::optional<ApiError> ParseMessages(const Fields& f, const RequestLimits& limits,
                                      ParsedRequest* out) {
  const json* v = f.Get("messages");
  if (!v) return Invalid("messages", "'messages' is required");
  if (!v->is_array()) return Invalid("messages", "'messages' must be an array");
  if (v->empty()) return Invalid("messages", "'messages' must contain at least one message");
  if (static_cast<int>(v->size()) > limits.max_messages) {
    return Invalid("messages", StrFormat("at most %d messages are allowed", limits.max_messages));
  }
  out->messages = json::array();
  for (size_t i = 0; i < v->size(); ++i) {
    json msg;
    KILN_API_TRY(ParseMessage((*v)[i], i, &msg));
    out->messages.push_back(std::move(msg));
  }
  return std::nullopt;
}

std::optional<ApiError> ParseIdArray(const json& v, const RequestLimits& limits,
                                     std::vector<int32_t>* out) {
  int64_t hi = limits.n_vocab > 0 ? limits.n_vocab - 1 : std::numeric_limits<int32_t>::max();
  for (const json& e : v) {
    int64_t id = 0;
    KILN_API_TRY(Fields::IntValue(e, "prompt", 0, hi, &id));
    out->push_back(static_cast<int32_t>(id));
  }
  return std::nullopt;
}

// prompt: string | [string] | [int] | [[int]]; batches of several prompts are not supported.
std::optional<ApiError> ParsePrompt(const Fields& f, const RequestLimits& limits,
                                    ParsedRequest* out) {
  const json* v = f.Get("prompt");
  if (!v) return Invalid("prompt", "'prompt' is required");
  if (v->is_string()) {
    out->prompt_text = v->get<std::string>();
    return std::nullopt;
  }
  if (!v->is_array() || v->empty()) {
    return Invalid("prompt", "'prompt' must be a string, an array of token ids, or a one-element "
                             "array of either");
  }
  const json& first = (*v)[0];
  if (first.is_number_integer()) {
    KILN_API_TRY(ParseIdArray(*v, limits, &out->prompt_ids));
    return std::nullopt;
  }
  if (v->size() != 1) {
    return Unsupported("prompt", "batches of several prompts are not supported; send one "
                                 "request per prompt");
  }
  if (first.is_string()) {
    out->prompt_text = first.get<std::string>();
    return std::nullopt;
  }
  if (first.is_array() && !first.empty()) {
    KILN_API_TRY(ParseIdArray(first, limits, &out->prompt_ids));
    return std::nullopt;
  }
  return Invalid("prompt", "'prompt' must be a string or token ids");
}

std::optional<ApiError> ParseChatFields(const Fields& f, const RequestLimits& limits,
                                        ParsedRequest* out) {
  KILN_API_TRY(ParseMessages(f, limits, out));
  KILN_API_TRY(ParseMaxTokens(f, "max_tokens", &out->sampling));
  KILN_API_TRY(ParseMaxTokens(f, "max_completion_tokens", &out->sampling));
  KILN_API_TRY(f.Bool("logprobs", &out->sampling.logprobs));
  int64_t top = 0;
  KILN_API_TRY(f.Int("top_logprobs", 0, limits.max_top_logprobs, &top));
  if (f.Get("top_logprobs") && !out->sampling.logprobs) {
    return Invalid("top_logprobs", "'top_logprobs' requires 'logprobs' to be true");
  }
  out->sampling.top_logprobs = static_cast<int32_t>(top);
  return std::nullopt;
}

std::optional<ApiError> ParseCompletionFields(const Fields& f, const RequestLimits& limits,
                                              ParsedRequest* out) {
  KILN_API_TRY(ParsePrompt(f, limits, out));
  out->sampling.max_tokens = 16;  // OpenAI's default for legacy completions
  KILN_API_TRY(ParseMaxTokens(f, "max_tokens", &out->sampling));
  int64_t logprobs = -1;
  KILN_API_TRY(f.Int("logprobs", 0, limits.max_top_logprobs, &logprobs));
  if (logprobs >= 0) {
    out->sampling.logprobs = true;
    out->sampling.top_logprobs = static_cast<int32_t>(logprobs);
  }
  KILN_API_TRY(f.Bool("echo", &out->echo));
  if (out->echo) return Unsupported("echo", "'echo' is not supported");
  if (const json* suffix = f.Get("suffix")) {
    if (!suffix->is_string()) return Invalid("suffix", "'suffix' must be a string");
    if (!suffix->get<std::string>().empty()) {
      return Unsupported("suffix", "'suffix' is not supported");
    }
  }
  return std::nullopt;
}

// Depth of the deepest array/object, scanning bytes outside strings; stops early past `limit`.
int JsonDepth(std::string_view body, int limit) {
  int depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') max_depth = std::max(max_depth, ++depth);
    else if (c == ']' || c == '}') --depth;
    if (max_depth > limit) break;
  }
  return max_depth;
}

}  // namespace

std::optional<ApiError> ParseJsonBody(std::string_view body, int max_depth, json* out) {
  if (JsonDepth(body, max_depth) > max_depth) {
    return Invalid("", StrFormat("JSON nesting deeper than %d levels", max_depth));
  }
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    // Rerun with exceptions only to get the parser's position message.
    try {
      json ignored = json::parse(body);
      (void)ignored;
    } catch (const json::exception& e) {
      return Invalid("", std::string("request body is not valid JSON: ") + e.what());
    }
    return Invalid("", "request body is not valid JSON");
  }
  *out = std::move(parsed);
  return std::nullopt;
}

std::optional<ApiError> ParseRequest(std::string_view body, Endpoint endpoint,
                                     const RequestLimits& limits, ParsedRequest* out) {
  json j;
  KILN_API_TRY(ParseJsonBody(body, 64, &j));
  if (!j.is_object()) return Invalid("", "request body must be a JSON object");
  Fields f(j);
  out->endpoint = endpoint;
  const json* model = f.Get("model");
  if (!model) return Invalid("model", "'model' is required");
  if (!model->is_string()) return Invalid("model", "'model' must be a string");
  out->model = model->get<std::string>();
  KILN_API_TRY(ParseStreamOptions(f, out));
  KILN_API_TRY(RejectUnsupported(f, out));
  KILN_API_TRY(ParseSampling(f, limits, &out->sampling));
  if (endpoint == Endpoint::kChat) {
    KILN_API_TRY(ParseChatFields(f, limits, out));
  } else {
    KILN_API_TRY(ParseCompletionFields(f, limits, out));
  }
  const SamplingOptions& s = out->sampling;
  if (s.max_tokens > 0 && s.min_tokens > s.max_tokens) {
    return Invalid("min_tokens", "'min_tokens' must not exceed 'max_tokens'");
  }
  return std::nullopt;
}

ApiError ErrorFromStatus(const Status& status, std::string param) {
  ApiError e{.message = status.message(), .param = std::move(param)};
  switch (status.code()) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kOutOfRange:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kDataLoss:
      e.http_status = 400;
      break;
    case StatusCode::kUnimplemented:
      e.http_status = 400;
      e.code = "unsupported_parameter";
      break;
    case StatusCode::kNotFound:
      e.http_status = 404;
      e.code = "not_found";
      break;
    case StatusCode::kResourceExhausted:
      e.http_status = 429;
      e.type = "rate_limit_exceeded";
      break;
    case StatusCode::kUnavailable:
      e.http_status = 503;
      e.type = "server_error";
      break;
    case StatusCode::kCancelled:
      e.http_status = 499;
      e.type = "cancelled";
      break;
    default:
      e.http_status = 500;
      e.type = "server_error";
      break;
  }
  return e;
}

json ErrorBody(const ApiError& error) {
  json err = {{"message", error.message},
              {"type", error.type},
              {"param", error.param.empty() ? json(nullptr) : json(error.param)},
              {"code", error.code.empty() ? json(nullptr) : json(error.code)}};
  return json{{"error", std::move(err)}};
}

}  // namespace kiln::server
