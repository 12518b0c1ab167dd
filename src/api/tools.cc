// Tool calling (include/kiln/tools.h): the envelope grammar, the prompt fallback for templates
// without tool support, and the incremental parser of generated envelopes.
#include "kiln/tools.h"

#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "grammar/json_schema.h"

namespace kiln {
namespace {

using ojson = nlohmann::ordered_json;

// Subtrees whose values are data, not schemas: a "$ref" there is not a reference.
bool IsDataKeyword(const std::string& key) {
  return key == "const" || key == "enum" || key == "default" || key == "examples";
}

// Moves a tool's local "$ref": "#/x" under the tool's place in the envelope's $defs.
void RebaseRefs(ojson* node, const std::string& base) {
  if (node->is_array()) {
    for (ojson& e : *node) RebaseRefs(&e, base);
    return;
  }
  if (!node->is_object()) return;
  for (auto it = node->begin(); it != node->end(); ++it) {
    if (it.key() == "$ref" && it.value().is_string()) {
      std::string ref = it.value().get<std::string>();
      if (!ref.empty() && ref[0] == '#' && (ref.size() == 1 || ref[1] == '/')) {
        it.value() = base + ref.substr(1);
      }
    } else if (!IsDataKeyword(it.key())) {
      RebaseRefs(&it.value(), base);
    }
  }
}

ojson EnvelopeSchema(const ToolSet& set, const std::vector<ojson>& params) {
  ojson any_of = ojson::array();
  ojson defs = ojson::object();
  for (size_t i = 0; i < set.tools.size(); ++i) {
    const ToolDefinition& t = set.tools[i];
    if (set.choice == ToolChoice::kNamed && t.name != set.named) continue;
    std::string def = "kiln_tool_" + std::to_string(i);
    ojson p = params[i];
    RebaseRefs(&p, "#/$defs/" + def);
    defs[def] = std::move(p);
    any_of.push_back(ojson{{"type", "object"},
                           {"properties", {{"name", {{"const", t.name}}},
                                           {"arguments", {{"$ref", "#/$defs/" + def}}}}},
                           {"required", {"name", "arguments"}},
                           {"additionalProperties", false}});
  }
  ojson items = any_of.size() == 1 ? any_of[0] : ojson{{"anyOf", any_of}};
  ojson calls = {{"type", "array"}, {"items", items}, {"minItems", 1},
                 {"maxItems", set.parallel ? kMaxParallelToolCalls : 1}};
  return ojson{{"type", "object"},
               {"properties", {{"tool_calls", calls}}},
               {"required", {"tool_calls"}},
               {"additionalProperties", false},
               {"$defs", defs}};
}

std::string EnvelopeText(const ojson& calls) {
  ojson env = {{"tool_calls", ojson::array()}};
  for (const ojson& c : calls) {
    const ojson& fn = c.contains("function") ? c["function"] : c;
    ojson args = fn.contains("arguments") ? fn["arguments"] : ojson::object();
    if (args.is_string()) {
      ojson parsed = ojson::parse(args.get<std::string>(), nullptr, false);
      if (!parsed.is_discarded()) args = std::move(parsed);
    }
    env["tool_calls"].push_back({{"name", fn.value("name", "")}, {"arguments", args}});
  }
  return env.dump();
}

std::string Instruction(const ToolSet& set, bool list_tools) {
  std::string s =
      "You can call tools. To call tools, reply with only a JSON object of this form and nothing "
      "else: {\"tool_calls\": [{\"name\": \"<tool name>\", \"arguments\": {<arguments>}}]}";
  if (set.choice == ToolChoice::kRequired) s += "\nYou must call at least one tool.";
  if (set.choice == ToolChoice::kNamed) s += "\nYou must call the tool \"" + set.named + "\".";
  if (set.choice == ToolChoice::kAuto) s += "\nIf no tool is needed, answer in plain text.";
  if (list_tools) {
    s += "\nAvailable tools:";
    ojson tools = ojson::parse(set.tools_json, nullptr, false);
    if (tools.is_array()) {
      for (const ojson& t : tools) s += "\n" + t.dump();
    }
  }
  return s;
}

}  // namespace

StatusOr<Constraint> BuildToolConstraint(const ToolSet& set) {
  std::vector<ojson> params;
  for (size_t i = 0; i < set.tools.size(); ++i) {
    const ToolDefinition& t = set.tools[i];
    std::string field = "tools[" + std::to_string(i) + "].function.parameters";
    ojson p = t.parameters_json.empty()
                  ? ojson{{"type", "object"}, {"properties", ojson::object()},
                          {"additionalProperties", false}}
                  : ojson::parse(t.parameters_json, nullptr, false);
    if (p.is_discarded() || !p.is_object()) {
      return InvalidArgument("%s: must be a JSON Schema object", field.c_str());
    }
    // Each schema alone first, so an error names its tool and a path inside its parameters.
    auto alone = grammar::JsonSchemaToGbnf(p.dump());
    if (!alone.ok()) {
      return InvalidArgument("%s: %s", field.c_str(), alone.status().message().c_str());
    }
    p.erase("$schema");  // annotations of a document root, not allowed below it
    p.erase("$id");
    params.push_back(std::move(p));
  }
  auto gbnf = grammar::JsonSchemaToGbnf(EnvelopeSchema(set, params).dump());
  if (!gbnf.ok()) return InvalidArgument("tools: %s", gbnf.status().message().c_str());
  Constraint c;
  c.kind = Constraint::Kind::kGbnf;
  c.field = "tools";
  if (set.choice == ToolChoice::kAuto) {
    // The envelope, or free text that does not start with '{'.
    std::string text = *gbnf;
    if (text.rfind("root ::= ", 0) != 0) return Internal("unexpected envelope grammar");
    c.text = "root ::= kiln-envelope | kiln-text\nkiln-text ::= [^{] .*\nkiln-envelope ::= " +
             text.substr(9);
  } else {
    c.text = std::move(*gbnf);
  }
  return c;
}

bool TemplateSupportsTools(std::string_view chat_template) {
  return chat_template.find("tools") != std::string_view::npos &&
         chat_template.find("tool_calls") != std::string_view::npos;
}

StatusOr<std::string> RenderToolMessages(const std::string& messages_json, const ToolSet& set,
                                         bool native_template) {
  ojson in = ojson::parse(messages_json, nullptr, false);
  if (in.is_discarded() || !in.is_array()) return InvalidArgument("messages must be an array");
  ojson out = ojson::array();
  std::map<std::string, std::string> call_names;  // tool_call_id → function name
  for (ojson& m : in) {
    std::string role = m.value("role", "");
    if (role == "assistant" && m.contains("tool_calls") && m["tool_calls"].is_array()) {
      for (ojson& c : m["tool_calls"]) {
        if (!c.contains("function") || !c["function"].is_object()) continue;
        ojson& fn = c["function"];
        call_names[c.value("id", "")] = fn.value("name", "");
        if (native_template && fn.contains("arguments") && fn["arguments"].is_string()) {
          ojson args = ojson::parse(fn["arguments"].get<std::string>(), nullptr, false);
          if (!args.is_discarded()) fn["arguments"] = std::move(args);
        }
      }
      if (!native_template) {
        std::string text = m["content"].is_string() ? m["content"].get<std::string>() : "";
        m["content"] = text + (text.empty() ? "" : "\n") + EnvelopeText(m["tool_calls"]);
        m.erase("tool_calls");
      }
    } else if (role == "tool" && !native_template) {
      std::string id = m.value("tool_call_id", "");
      std::string line = "Tool result (" + call_names[id] + ", " + id + "): " +
                         (m["content"].is_string() ? m["content"].get<std::string>() : "");
      bool merge = !out.empty() && out.back().value("kiln_tool_result", false);
      if (merge) {
        out.back()["content"] = out.back()["content"].get<std::string>() + "\n" + line;
      } else {
        out.push_back({{"role", "user"}, {"content", line}, {"kiln_tool_result", true}});
      }
      continue;
    }
    out.push_back(std::move(m));
  }
  for (ojson& m : out) m.erase("kiln_tool_result");
  if (set.Active()) {
    std::string instruction = Instruction(set, /*list_tools=*/!native_template);
    if (!out.empty() && out[0].value("role", "") == "system" && out[0]["content"].is_string()) {
      std::string sys = out[0]["content"].get<std::string>();
      out[0]["content"] = sys + (sys.empty() ? "" : "\n\n") + instruction;
    } else {
      out.insert(out.begin(), ojson{{"role", "system"}, {"content", instruction}});
    }
  }
  return out.dump();
}

std::string NewToolCallId() {
  static constexpr char kAlphabet[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<int> pick(0, sizeof(kAlphabet) - 2);
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kAlphabet[pick(rng)];
  return id;
}

// ── The envelope scanner ──────────────────────────────────────────────────────────────────
// Walks a prefix of the envelope's JSON text and reports, per call, its name (once its string
// is complete) and where its arguments' text starts and ends (npos = not yet).
struct ToolCallParser::Scan {
  struct Call {
    std::optional<std::string> name;
    size_t args_begin = std::string::npos, args_end = std::string::npos;
  };
  std::vector<Call> calls;
  bool complete = false;  // the top-level object closed
  bool bad = false;       // not JSON of the envelope's shape

  struct Frame {
    bool object = false;
    std::string key;
    int32_t index = 0;
  };
  std::vector<Frame> st;

  // Position in the envelope: at a call's field `key` (depth 3, under tool_calls[i]).
  bool AtCallField(const char* key) const {
    return st.size() == 3 && st[0].object && st[0].key == "tool_calls" && !st[1].object &&
           st[2].object && st[2].key == key;
  }
  Call& CurrentCall() {
    size_t idx = static_cast<size_t>(st[1].index);
    if (calls.size() <= idx) calls.resize(idx + 1);
    return calls[idx];
  }

  // Index just past the string starting at s[i] == '"', or npos when it is not closed yet.
  static size_t StringEnd(std::string_view s, size_t i) {
    for (size_t j = i + 1; j < s.size(); ++j) {
      if (s[j] == '\\') ++j;
      else if (s[j] == '"') return j + 1;
    }
    return std::string::npos;
  }

  void Run(std::string_view s) {
    enum class State { kValue, kAfterValue, kKey, kColon } state = State::kValue;
    size_t i = 0;
    auto is_ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
    auto value_end = [&](size_t end) {
      if (AtCallField("arguments")) CurrentCall().args_end = end;
      state = State::kAfterValue;
    };
    while (i < s.size() && !bad && !complete) {
      char c = s[i];
      if (is_ws(c)) { ++i; continue; }
      switch (state) {
        case State::kValue: {
          if (AtCallField("arguments")) CurrentCall().args_begin = i;
          if (c == '{' || c == '[') {
            st.push_back(Frame{.object = c == '{'});
            if (st.size() == 3 && !st[1].object && st[0].key == "tool_calls") CurrentCall();
            state = c == '{' ? State::kKey : State::kValue;
            ++i;
          } else if (c == ']' && !st.empty() && !st.back().object) {
            state = State::kAfterValue;  // an empty array: closed below
          } else if (c == '"') {
            size_t end = StringEnd(s, i);
            if (end == std::string::npos) return;
            if (AtCallField("name")) {
              ojson name = ojson::parse(s.substr(i, end - i), nullptr, false);
              if (name.is_string()) CurrentCall().name = name.get<std::string>();
            }
            i = end;
            value_end(end);
          } else {
            size_t j = i;
            while (j < s.size() && (isalnum(static_cast<unsigned char>(s[j])) || s[j] == '-' ||
                                    s[j] == '+' || s[j] == '.')) {
              ++j;
            }
            if (j == i) { bad = true; return; }
            if (j == s.size()) return;  // the literal may continue
            i = j;
            value_end(j);
          }
          break;
        }
        case State::kKey: {
          if (c == '}') { state = State::kAfterValue; break; }  // empty object: closed below
          if (c != '"') { bad = true; return; }
          size_t end = StringEnd(s, i);
          if (end == std::string::npos) return;
          ojson key = ojson::parse(s.substr(i, end - i), nullptr, false);
          if (!key.is_string()) { bad = true; return; }
          st.back().key = key.get<std::string>();
          i = end;
          state = State::kColon;
          break;
        }
        case State::kColon:
          if (c != ':') { bad = true; return; }
          ++i;
          state = State::kValue;
          break;
        case State::kAfterValue: {
          if (st.empty()) { bad = true; return; }
          Frame& top = st.back();
          if (c == ',') {
            if (top.object) state = State::kKey;
            else { ++top.index; state = State::kValue; }
            ++i;
          } else if (c == (top.object ? '}' : ']')) {
            st.pop_back();
            ++i;
            if (st.empty()) { complete = true; return; }
            value_end(i);
          } else {
            bad = true;
            return;
          }
          break;
        }
      }
    }
  }
};

void ToolCallParser::Rescan(Output* out) {
  Scan scan;
  scan.Run(text_);
  complete_ = scan.complete && !scan.bad;
  for (size_t k = 0; k < scan.calls.size(); ++k) {
    const Scan::Call& c = scan.calls[k];
    if (k == calls_.size()) {
      if (!c.name) break;  // a call opens once its name is known
      calls_.push_back(ToolCall{.id = NewToolCallId(), .name = *c.name});
      out->calls.push_back(ToolCallDelta{.index = static_cast<int32_t>(k), .id = calls_[k].id,
                                         .name = *c.name});
    }
    if (c.args_begin == std::string::npos) continue;
    size_t end = c.args_end == std::string::npos ? text_.size() : c.args_end;
    std::string_view args = std::string_view(text_).substr(c.args_begin, end - c.args_begin);
    ToolCall& call = calls_[k];
    if (args.size() > call.arguments.size() && args.starts_with(call.arguments)) {
      std::string fragment(args.substr(call.arguments.size()));
      call.arguments += fragment;
      if (!out->calls.empty() && out->calls.back().index == static_cast<int32_t>(k)) {
        out->calls.back().arguments += fragment;
      } else {
        out->calls.push_back(ToolCallDelta{.index = static_cast<int32_t>(k),
                                           .arguments = std::move(fragment)});
      }
    }
  }
}

ToolCallParser::Output ToolCallParser::Feed(std::string_view delta) {
  Output out;
  if (delta.empty()) return out;
  text_ += delta;
  if (mode_ == Mode::kUndecided) {
    mode_ = active_ && text_[0] == '{' ? Mode::kEnvelope : Mode::kText;
    if (mode_ == Mode::kText) delta = text_;
  }
  if (mode_ == Mode::kText) {
    out.content = std::string(delta);
    return out;
  }
  Rescan(&out);
  return out;
}

bool ToolCallParser::IsToolCall() const {
  if (mode_ != Mode::kEnvelope || !complete_ || calls_.empty()) return false;
  for (const ToolCall& c : calls_) {
    ojson args = ojson::parse(c.arguments, nullptr, false);
    if (args.is_discarded()) return false;
  }
  return true;
}

}  // namespace kiln
