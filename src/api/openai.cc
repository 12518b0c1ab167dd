// OpenAI request parsing and validation (see include/kiln/openai.h for the policy on fields).
// Moved here from server/protocol so the server and the Python package share one parser (#8).
#include "kiln/openai.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

namespace kiln::openai {
namespace {

// Ordered: a JSON Schema's property order is the order of the generated output.
using json = nlohmann::ordered_json;

constexpr int kMaxStopChars = 512;
constexpr int kMaxJsonDepth = 64;

RequestError Invalid(const std::string& param, const std::string& message) {
  return RequestError{.http_status = 400, .message = message, .param = param};
}

RequestError Unsupported(const std::string& param, const std::string& message) {
  return RequestError{.http_status = 400, .message = message, .param = param,
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

  std::optional<RequestError> Bool(const char* key, bool* out) const {
    const json* v = Get(key);
    if (!v) return std::nullopt;
    if (!v->is_boolean()) return Invalid(key, StrFormat("'%s' must be a boolean", key));
    *out = v->get<bool>();
    return std::nullopt;
  }

  std::optional<RequestError> Number(const char* key, double lo, double hi, float* out) const {
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

  std::optional<RequestError> Int(const char* key, int64_t lo, int64_t hi, int64_t* out) const {
    const json* v = Get(key);
    if (!v) return std::nullopt;
    return IntValue(*v, key, lo, hi, out);
  }

  std::optional<RequestError> String(const char* key, std::string* out) const {
    const json* v = Get(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) return Invalid(key, StrFormat("'%s' must be a string", key));
    *out = v->get<std::string>();
    return std::nullopt;
  }

  static std::optional<RequestError> IntValue(const json& v, const std::string& name, int64_t lo,
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

std::optional<RequestError> ParseStop(const Fields& f, const RequestLimits& limits,
                                  SamplingOptions* s) {
  const json* v = f.Get("stop");
  if (!v) return std::nullopt;
  std::vector<std::string> stops;
  if (v->is_string()) {
    stops.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    if (v->empty()) return Invalid("stop", "'stop' must have at least 1 item");
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

std::optional<RequestError> ParseLogitBias(const Fields& f, const RequestLimits& limits,
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
std::optional<RequestError> ParseSampling(const Fields& f, const RequestLimits& limits,
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

std::optional<RequestError> ParseMaxTokens(const Fields& f, const char* key, SamplingOptions* s) {
  int64_t x = -1;
  KILN_API_TRY(f.Int(key, 1, std::numeric_limits<int32_t>::max(), &x));
  if (f.Get(key)) s->max_tokens = static_cast<int32_t>(x);
  return std::nullopt;
}

std::optional<RequestError> ParseStreamOptions(const Fields& f, Request* out) {
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

bool ValidToolName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

std::optional<RequestError> OptionalString(const json& obj, const char* key,
                                           const std::string& param) {
  auto it = obj.find(key);
  if (it != obj.end() && !it->is_null() && !it->is_string()) {
    return Invalid(param, "'" + param + "' must be a string");
  }
  return std::nullopt;
}

std::optional<RequestError> OptionalBool(const json& obj, const char* key,
                                         const std::string& param) {
  auto it = obj.find(key);
  if (it != obj.end() && !it->is_null() && !it->is_boolean()) {
    return Invalid(param, "'" + param + "' must be a boolean");
  }
  return std::nullopt;
}

// response_format: {"type":"text"} | {"type":"json_object"} |
// {"type":"json_schema","json_schema":{"name","schema","strict","description"}}.
std::optional<RequestError> ParseResponseFormat(const Fields& f, Request* out) {
  const json* rf = f.Get("response_format");
  if (!rf) return std::nullopt;
  if (!rf->is_object() || !rf->contains("type") || !(*rf)["type"].is_string()) {
    return Invalid("response_format", "'response_format' must be an object with a string 'type'");
  }
  std::string type = (*rf)["type"].get<std::string>();
  Constraint& c = out->response_format;
  if (type == "text") return std::nullopt;
  if (type == "json_object") {
    c.kind = Constraint::Kind::kJsonObject;
    c.field = "response_format";
    return std::nullopt;
  }
  if (type != "json_schema") {
    return Invalid("response_format.type", "unknown 'response_format.type' '" + type +
                                               "' (expected text, json_object or json_schema)");
  }
  auto js = rf->find("json_schema");
  if (js == rf->end() || !js->is_object()) {
    return Invalid("response_format.json_schema",
                   "'response_format.json_schema' must be an object with 'name' and 'schema'");
  }
  auto name = js->find("name");
  if (name == js->end() || !name->is_string() || !ValidToolName(name->get<std::string>())) {
    return Invalid("response_format.json_schema.name",
                   "'response_format.json_schema.name' must be a string of 1-64 letters, "
                   "digits, '_' or '-'");
  }
  KILN_API_TRY(OptionalString(*js, "description", "response_format.json_schema.description"));
  KILN_API_TRY(OptionalBool(*js, "strict", "response_format.json_schema.strict"));
  c.kind = Constraint::Kind::kJsonSchema;
  c.field = "response_format.json_schema.schema";
  auto schema = js->find("schema");
  if (schema == js->end() || schema->is_null()) {
    c.text = "{}";  // any JSON value
  } else if (!schema->is_object()) {
    return Invalid(c.field, "'response_format.json_schema.schema' must be a JSON Schema object");
  } else {
    c.text = schema->dump();
  }
  return std::nullopt;
}

std::optional<RequestError> ParseTool(const json& t, size_t i, ToolDefinition* out) {
  std::string param = "tools[" + std::to_string(i) + "]";
  if (!t.is_object()) return Invalid(param, "each tool must be an object");
  auto type = t.find("type");
  if (type == t.end() || !type->is_string()) {
    return Invalid(param + ".type", "each tool needs a string 'type'");
  }
  if (*type != "function") {
    return Unsupported(param + ".type", "tools of type '" + type->get<std::string>() +
                                            "' are not supported (only 'function')");
  }
  auto fn = t.find("function");
  if (fn == t.end() || !fn->is_object()) {
    return Invalid(param + ".function", "a function tool needs a 'function' object");
  }
  auto name = fn->find("name");
  if (name == fn->end() || !name->is_string() || !ValidToolName(name->get<std::string>())) {
    return Invalid(param + ".function.name",
                   "'" + param + ".function.name' must be a string of 1-64 letters, digits, "
                   "'_' or '-'");
  }
  out->name = name->get<std::string>();
  KILN_API_TRY(OptionalString(*fn, "description", param + ".function.description"));
  KILN_API_TRY(OptionalBool(*fn, "strict", param + ".function.strict"));
  if (auto d = fn->find("description"); d != fn->end() && d->is_string()) out->description = *d;
  if (auto s = fn->find("strict"); s != fn->end() && s->is_boolean()) out->strict = *s;
  auto params = fn->find("parameters");
  if (params != fn->end() && !params->is_null()) {
    if (!params->is_object()) {
      return Invalid(param + ".function.parameters",
                     "'" + param + ".function.parameters' must be a JSON Schema object");
    }
    out->parameters_json = params->dump();
  }
  return std::nullopt;
}

std::optional<RequestError> ParseToolChoice(const Fields& f, ToolSet* set) {
  const json* tc = f.Get("tool_choice");
  set->choice = set->tools.empty() ? ToolChoice::kNone : ToolChoice::kAuto;
  if (!tc) return std::nullopt;
  if (tc->is_string()) {
    std::string s = tc->get<std::string>();
    if (s == "none") set->choice = ToolChoice::kNone;
    else if (s == "auto") set->choice = ToolChoice::kAuto;
    else if (s == "required") set->choice = ToolChoice::kRequired;
    else return Invalid("tool_choice", "'tool_choice' must be 'none', 'auto', 'required' or "
                                       "{\"type\": \"function\", \"function\": {\"name\": …}}");
  } else if (tc->is_object()) {
    auto type = tc->find("type");
    if (type == tc->end() || *type != "function") {
      return Unsupported("tool_choice", "'tool_choice' objects must have type 'function'");
    }
    auto fn = tc->find("function");
    if (fn == tc->end() || !fn->is_object() || !fn->contains("name") ||
        !(*fn)["name"].is_string()) {
      return Invalid("tool_choice", "'tool_choice.function.name' must be a string");
    }
    set->choice = ToolChoice::kNamed;
    set->named = (*fn)["name"].get<std::string>();
    bool known = std::any_of(set->tools.begin(), set->tools.end(),
                             [&](const ToolDefinition& t) { return t.name == set->named; });
    if (!known) {
      return Invalid("tool_choice", "'tool_choice' names the function '" + set->named +
                                        "', which is not in 'tools'");
    }
  } else {
    return Invalid("tool_choice", "'tool_choice' must be a string or an object");
  }
  if (set->choice != ToolChoice::kNone && set->tools.empty()) {
    return Invalid("tool_choice", "'tool_choice' other than 'none' requires 'tools'");
  }
  return std::nullopt;
}

std::optional<RequestError> ParseTools(const Fields& f, const RequestLimits& limits,
                                       Request* out) {
  ToolSet& set = out->tools;
  if (const json* t = f.Get("tools")) {
    if (!t->is_array()) return Invalid("tools", "'tools' must be an array");
    if (static_cast<int>(t->size()) > limits.max_tools) {
      return Invalid("tools", StrFormat("at most %d tools are allowed", limits.max_tools));
    }
    if (out->endpoint == Endpoint::kCompletion && !t->empty()) {
      return Unsupported("tools", "'tools' is only supported on /v1/chat/completions");
    }
    std::set<std::string> names;
    for (size_t i = 0; i < t->size(); ++i) {
      ToolDefinition def;
      KILN_API_TRY(ParseTool((*t)[i], i, &def));
      if (!names.insert(def.name).second) {
        return Invalid("tools[" + std::to_string(i) + "].function.name",
                       "duplicate function name '" + def.name + "'");
      }
      set.tools.push_back(std::move(def));
    }
    if (!t->empty()) set.tools_json = t->dump();
  }
  KILN_API_TRY(ParseToolChoice(f, &set));
  KILN_API_TRY(f.Bool("parallel_tool_calls", &set.parallel));
  if (set.Active() && out->response_format.kind != Constraint::Kind::kNone) {
    return Unsupported("response_format", "'response_format' cannot be combined with 'tools' "
                                          "unless 'tool_choice' is 'none'");
  }
  return std::nullopt;
}

// Fields kiln cannot honour fail closed.
std::optional<RequestError> RejectUnsupported(const Fields& f) {
  for (const char* key : {"functions", "function_call"}) {
    if (f.Get(key)) {
      return Unsupported(key, StrFormat("'%s' (deprecated) is not supported; use 'tools' and "
                                        "'tool_choice'", key));
    }
  }
  for (const char* key : {"audio", "web_search_options"}) {
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

// An assistant message's tool_calls: [{"id", "type": "function", "function": {"name",
// "arguments": JSON text}}].
std::optional<RequestError> ParseToolCalls(const json& calls, const std::string& param,
                                           json* out) {
  if (!calls.is_array()) return Invalid(param, "'tool_calls' must be an array");
  *out = json::array();
  for (size_t j = 0; j < calls.size(); ++j) {
    const json& c = calls[j];
    std::string p = param + "[" + std::to_string(j) + "]";
    if (!c.is_object()) return Invalid(p, "each tool call must be an object");
    if (!c.contains("id") || !c["id"].is_string()) {
      return Invalid(p + ".id", "each tool call needs a string 'id'");
    }
    if (c.contains("type") && !c["type"].is_string()) {
      return Invalid(p + ".type", "a tool call's 'type' must be a string");
    }
    if (c.contains("type") && c["type"] != "function") {
      return Unsupported(p + ".type", "tool calls of type '" + c["type"].get<std::string>() +
                                          "' are not supported (only 'function')");
    }
    if (!c.contains("function") || !c["function"].is_object()) {
      return Invalid(p + ".function", "each tool call needs a 'function' object");
    }
    const json& fn = c["function"];
    if (!fn.contains("name") || !fn["name"].is_string()) {
      return Invalid(p + ".function.name", "each tool call needs a string 'function.name'");
    }
    if (!fn.contains("arguments") || !fn["arguments"].is_string() ||
        json::parse(fn["arguments"].get<std::string>(), nullptr, false).is_discarded()) {
      return Invalid(p + ".function.arguments",
                     "'function.arguments' must be a string of JSON text");
    }
    out->push_back(json{{"id", c["id"]},
                        {"type", "function"},
                        {"function", {{"name", fn["name"]}, {"arguments", fn["arguments"]}}}});
  }
  return std::nullopt;
}

std::optional<RequestError> ContentText(const json& content, const std::string& param,
                                    std::string* out) {
  if (content.is_string()) {
    *out = content.get<std::string>();
    return std::nullopt;
  }
  if (!content.is_array()) {
    return Invalid(param, "'" + param + "' must be a string or an array of content parts");
  }
  if (content.empty()) return Invalid(param, "'" + param + "' must have at least 1 item");
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

std::optional<RequestError> ParseMessage(const json& m, size_t i, json* out) {
  std::string param = "messages[" + std::to_string(i) + "]";
  if (!m.is_object()) return Invalid(param, "each message must be an object");
  auto role_it = m.find("role");
  if (role_it == m.end() || !role_it->is_string()) {
    return Invalid(param + ".role", "each message needs a string 'role'");
  }
  std::string role = role_it->get<std::string>();
  if (role == "function") {
    return Unsupported(param + ".role", "'function' messages (deprecated) are not supported; use "
                                        "'tool' messages");
  }
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
    json calls;
    KILN_API_TRY(ParseToolCalls(m["tool_calls"], param + ".tool_calls", &calls));
    msg["tool_calls"] = std::move(calls);
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

std::optional<RequestError> ParseMessages(const Fields& f, const RequestLimits& limits,
                                      Request* out) {
  const json* v = f.Get("messages");
  if (!v) return Invalid("messages", "'messages' is required");
  if (!v->is_array()) return Invalid("messages", "'messages' must be an array");
  if (v->empty()) return Invalid("messages", "'messages' must contain at least one message");
  if (static_cast<int>(v->size()) > limits.max_messages) {
    return Invalid("messages", StrFormat("at most %d messages are allowed", limits.max_messages));
  }
  json messages = json::array();
  for (size_t i = 0; i < v->size(); ++i) {
    json msg;
    KILN_API_TRY(ParseMessage((*v)[i], i, &msg));
    messages.push_back(std::move(msg));
  }
  out->messages_json = messages.dump();
  return std::nullopt;
}

std::optional<RequestError> ParseIdArray(const json& v, const RequestLimits& limits,
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
std::optional<RequestError> ParsePrompt(const Fields& f, const RequestLimits& limits,
                                    Request* out) {
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

std::optional<RequestError> ParseChatFields(const Fields& f, const RequestLimits& limits,
                                        Request* out) {
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
  // Predicted Outputs: {"type": "content", "content": text or text parts}, a hint that only
  // feeds speculation's guesses (the output never depends on it).
  if (const json* p = f.Get("prediction")) {
    if (!p->is_object() || !p->contains("type") || (*p)["type"] != "content") {
      return Invalid("prediction.type", "'prediction' must be {\"type\": \"content\", "
                                        "\"content\": ...}");
    }
    if (!p->contains("content")) return Invalid("prediction.content", "'prediction.content' is required");
    std::string text;
    KILN_API_TRY(ContentText((*p)["content"], "prediction.content", &text));
    out->prediction = std::move(text);
  }
  return std::nullopt;
}

std::optional<RequestError> ParseCompletionFields(const Fields& f, const RequestLimits& limits,
                                              Request* out) {
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

// The param a constraint error names: the field before the message's first ": " when it is
// one of the request's (e.g. "tools[0].function.parameters: …"), else `fallback`.
std::string ErrorParam(const std::string& message, const std::string& fallback) {
  size_t colon = message.find(": ");
  if (colon == std::string::npos) return fallback;
  std::string head = message.substr(0, colon);
  if (head.rfind("tools", 0) == 0 || head.rfind("response_format", 0) == 0) return head;
  return fallback;
}

std::optional<RequestError> ChatPrompt(const ServingEngine& engine, const Request& r,
                                       std::vector<int32_t>* ids) {
  bool native = TemplateSupportsTools(engine.Info().chat_template);
  auto messages = RenderToolMessages(r.messages_json, r.tools, native);
  if (!messages.ok()) return ErrorFromStatus(messages.status(), "messages");
  std::string tools_json = native ? r.tools.tools_json : "";
  auto text = engine.ApplyChatTemplate(*messages, tools_json, /*add_generation_prompt=*/true);
  if (!text.ok()) return ErrorFromStatus(text.status(), "messages");
  // Templates emit BOS themselves; special-token text in them is structure.
  auto toks = engine.Tokenize(*text, /*add_special=*/false, /*parse_special=*/true);
  if (!toks.ok()) return ErrorFromStatus(toks.status(), "messages");
  *ids = std::move(*toks);
  return std::nullopt;
}

}  // namespace

std::optional<RequestError> CheckJsonBody(std::string_view body, int max_depth) {
  if (JsonDepth(body, max_depth) > max_depth) {
    return Invalid("", StrFormat("JSON nesting deeper than %d levels", max_depth));
  }
  if (!json::accept(body)) {
    // Parse again with exceptions only to get the parser's position message.
    try {
      json ignored = json::parse(body);
      (void)ignored;
    } catch (const json::exception& e) {
      return Invalid("", std::string("request body is not valid JSON: ") + e.what());
    }
    return Invalid("", "request body is not valid JSON");
  }
  return std::nullopt;
}

std::optional<RequestError> ParseRequest(std::string_view body, Endpoint endpoint,
                                         const RequestLimits& limits, Request* out) {
  KILN_API_TRY(CheckJsonBody(body, kMaxJsonDepth));
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Invalid("", "request body is not valid JSON");
  if (!j.is_object()) return Invalid("", "request body must be a JSON object");
  Fields f(j);
  out->endpoint = endpoint;
  const json* model = f.Get("model");
  if (!model) return Invalid("model", "'model' is required");
  if (!model->is_string()) return Invalid("model", "'model' must be a string");
  out->model = model->get<std::string>();
  KILN_API_TRY(ParseStreamOptions(f, out));
  KILN_API_TRY(RejectUnsupported(f));
  KILN_API_TRY(ParseResponseFormat(f, out));
  KILN_API_TRY(ParseTools(f, limits, out));
  KILN_API_TRY(ParseSampling(f, limits, &out->sampling));
  if (f.Get("speculation")) {  // kiln extension: a request may opt out of speculation
    std::string mode;
    KILN_API_TRY(f.String("speculation", &mode));
    if (mode != "auto" && mode != "off") {
      return Invalid("speculation", "'speculation' must be 'auto' or 'off', got '" + mode + "'");
    }
    out->speculate = mode == "auto";
  }
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

std::optional<RequestError> BuildCompletionRequest(const ServingEngine& engine,
                                                   const Request& r, CompletionRequest* out) {
  std::vector<int32_t> ids;
  if (r.endpoint == Endpoint::kChat) {
    KILN_API_TRY(ChatPrompt(engine, r, &ids));
  } else if (r.prompt_text) {
    auto toks = engine.Tokenize(*r.prompt_text, /*add_special=*/true, /*parse_special=*/false);
    if (!toks.ok()) return ErrorFromStatus(toks.status(), "prompt");
    ids = std::move(*toks);
  } else {
    ids = r.prompt_ids;
  }
  if (ids.empty()) {
    return RequestError{.message = "the prompt is empty after tokenization",
                        .param = r.endpoint == Endpoint::kChat ? "messages" : "prompt"};
  }
  Constraint constraint = r.response_format;
  if (r.tools.Active()) {
    auto c = BuildToolConstraint(r.tools);
    if (!c.ok()) return ErrorFromStatus(c.status(), ErrorParam(c.status().message(), "tools"));
    constraint = std::move(*c);
  }
  if (constraint.kind != Constraint::Kind::kNone) {
    Status s = engine.CheckConstraint(constraint);
    if (!s.ok()) return ErrorFromStatus(s, ErrorParam(s.message(), constraint.field));
  }
  out->prompt_ids = std::move(ids);
  out->sampling = r.sampling;
  out->constraint = std::move(constraint);
  out->speculate = r.speculate;
  if (!r.prediction.empty()) {
    auto p = engine.Tokenize(r.prediction, /*add_special=*/false, /*parse_special=*/false);
    if (!p.ok()) return ErrorFromStatus(p.status(), "prediction.content");
    out->prediction_ids = std::move(*p);
  }
  return std::nullopt;
}

std::optional<RequestError> CheckContextLength(const CompletionRequest& r, int32_t max_context) {
  int64_t n_prompt = static_cast<int64_t>(r.prompt_ids.size());
  int64_t want = n_prompt + std::max<int64_t>(r.sampling.max_tokens, 0);
  if (max_context <= 0 || want <= max_context) return std::nullopt;
  bool prompt_too_long = n_prompt >= max_context;
  return RequestError{
      .message = StrFormat("This model's maximum context length is %d tokens. However, you "
                           "requested %lld tokens (%lld in the prompt, %d for the completion). "
                           "Please reduce the prompt or max_tokens.",
                           max_context, static_cast<long long>(want),
                           static_cast<long long>(n_prompt), std::max(r.sampling.max_tokens, 0)),
      .param = prompt_too_long ? "messages" : "max_tokens",
      .code = "context_length_exceeded"};
}

RequestError ErrorFromStatus(const Status& status, std::string param) {
  RequestError e{.message = status.message(), .param = std::move(param)};
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

std::string FinishReason(const std::string& kiln_reason, bool tool_calls) {
  if (tool_calls) return "tool_calls";
  if (kiln_reason == "length") return "length";
  return "stop";
}

}  // namespace kiln::openai
