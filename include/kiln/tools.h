// Tool calling for any model (#7), shared by every front end (server, Python).
//
// The call envelope. Whatever the model, a tool call is generated under a grammar as one JSON
// object at the very start of the answer:
//     {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}, ...]}
// `name` is one of the offered tools (the named one for tool_choice {"type":"function",...}),
// `arguments` follows that tool's `parameters` JSON Schema; at most one call unless
// parallel_tool_calls. tool_choice "required"/named: the answer IS the envelope; "auto": the
// answer is the envelope or free text whose first character is not '{'; "none": no constraint.
// At most kMaxParallelToolCalls calls per answer: small models otherwise tend to repeat the
// same call until the context is full.
// One uniform envelope (not each model family's native format) keeps the grammar, the parser
// and the streamed deltas identical for every model; the model's own chat template still
// formats the tool definitions, earlier calls and results when it supports tools.
//
// Templates without tool support (no `tools` / `tool_calls` in the template text) get the
// documented fallback of RenderToolMessages: the tool definitions and the envelope instruction
// appended to the system message (one is added when absent), earlier assistant calls rendered
// as the envelope text, and tool results as a user message "Tool result (name, id): content"
// (consecutive results merged into one message, so user/assistant alternation holds).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/serving.h"

namespace kiln {

enum class ToolChoice { kNone, kAuto, kRequired, kNamed };

constexpr int kMaxParallelToolCalls = 8;

struct ToolDefinition {
  std::string name;             // ^[a-zA-Z0-9_-]{1,64}$
  std::string description;
  std::string parameters_json;  // a JSON Schema object; "" = no parameters ({} only)
  bool strict = false;          // informational: kiln always enforces the schema
};

struct ToolSet {
  std::vector<ToolDefinition> tools;
  std::string tools_json;       // the tools array as the chat template receives it ("" = none)
  ToolChoice choice = ToolChoice::kNone;
  std::string named;            // kNamed: the function's name
  bool parallel = true;         // parallel_tool_calls
  bool Active() const { return choice != ToolChoice::kNone && !tools.empty(); }
};

// The grammar of the envelope for `tools` (kGbnf, field "tools"). InvalidArgument naming
// "tools[i].function.parameters" and the JSON Schema keyword when a schema cannot be enforced.
StatusOr<Constraint> BuildToolConstraint(const ToolSet& tools);

// The messages (JSON array text, as the request parser normalizes them) ready for the model's
// chat template: assistant tool_calls arguments become objects (as Hugging Face templates
// expect); with `native_template` false, the fallback above is applied. `tools.Active()` adds
// the envelope instruction to the system message.
StatusOr<std::string> RenderToolMessages(const std::string& messages_json, const ToolSet& tools,
                                         bool native_template);

// Whether a chat template formats tools and tool calls itself.
bool TemplateSupportsTools(std::string_view chat_template);

// "call_" + 24 random alphanumerics.
std::string NewToolCallId();

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // the JSON text of the arguments, as generated
};

// One streamed change: a call opens (index, id, name set, arguments "") or its arguments grow.
struct ToolCallDelta {
  int32_t index = 0;
  std::optional<std::string> id;    // set on the call's first delta
  std::optional<std::string> name;  // set on the call's first delta
  std::string arguments;            // the next fragment of the arguments text
};

// Splits one choice's generated text into content and tool calls, incrementally. Feed() the
// text deltas as they arrive; it returns what to send now. After the last delta the answer is
// a tool-call answer iff in_envelope(): message.content null and message.tool_calls = calls()
// (those opened so far; a call cut short by max_tokens keeps the arguments generated, as a
// stream would have sent them); finish_reason "tool_calls" iff IsToolCall(), else the engine's
// ("length"). Otherwise the text is content. Streamed and whole responses agree by
// construction. Not thread-safe; one per choice.
class ToolCallParser {
 public:
  explicit ToolCallParser(bool tools_active) : active_(tools_active) {}

  struct Output {
    std::string content;                // text to send as content now
    std::vector<ToolCallDelta> calls;   // tool-call deltas to send now
  };
  Output Feed(std::string_view delta);

  // True when the whole text parsed as an envelope with at least one complete call.
  bool IsToolCall() const;
  const std::vector<ToolCall>& calls() const { return calls_; }
  const std::string& text() const { return text_; }
  bool in_envelope() const { return mode_ == Mode::kEnvelope; }

 private:
  enum class Mode { kUndecided, kText, kEnvelope };
  struct Scan;
  void Rescan(Output* out);

  bool active_;
  Mode mode_ = Mode::kUndecided;
  std::string text_;
  std::vector<ToolCall> calls_;       // calls opened so far (arguments as sent so far)
  bool complete_ = false;             // the envelope's closing brace was seen
};

}  // namespace kiln
