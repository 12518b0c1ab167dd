// Interpreter: renders a parsed template (ast.h) against variables, with the semantics of
// jinja2's ImmutableSandboxedEnvironment as transformers configures it. One Interpreter per
// render; the AST is shared and never modified.
#pragma once

#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/value.h"

namespace kiln::jinja {

// Bounds on what one render may consume; exceeding one is an InvalidArgument error.
struct Limits {
  int64_t max_loop_iterations = 1'000'000;  // all for-loop iterations of one render together
  int max_call_depth = 64;                  // nested macro / caller calls
  size_t max_output_bytes = 4 << 20;        // rendered text, and any single string or list built
};

// Returns the broken-down time strftime_now formats (local time by default).
using ClockFn = std::function<std::tm()>;

// A scope: the template's top level, one for-loop iteration, or one macro call.
struct Frame {
  std::shared_ptr<Frame> parent;
  std::unordered_map<std::string, Value> vars;
  const Value* Find(const std::string& name) const;
};

class Interpreter {
 public:
  Interpreter(const Limits& limits, ClockFn clock);

  // Renders `body` with `vars` (name → value) visible as template globals.
  StatusOr<std::string> Render(const Body& body, const std::vector<std::pair<std::string, Value>>& vars);

  // Used by builtins (filters, tests and methods call back into the interpreter).
  StatusOr<Value> ApplyFilter(const std::string& name, const Value& input, CallArgs& args);
  StatusOr<bool> ApplyTest(const std::string& name, const Value& input, CallArgs& args);
  StatusOr<Value> Call(const Value& fn, CallArgs& args);
  // jinja2 environment.getattr / getitem under the immutable sandbox.
  StatusOr<Value> GetAttr(const Value& obj, const std::string& name);
  StatusOr<Value> GetItem(const Value& obj, const Value& key);
  // Fails when `bytes` exceeds the per-value size limit.
  Status CheckSize(size_t bytes) const;
  Status CountIterations(int64_t n);
  const Limits& limits() const { return limits_; }
  std::tm Now() const { return clock_(); }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Status Exec(const Body& body, const std::shared_ptr<Frame>& frame, std::string* out);
  Status ExecStmt(const Stmt& s, const std::shared_ptr<Frame>& frame, std::string* out);
  Status ExecFor(const Stmt& s, const std::shared_ptr<Frame>& frame, std::string* out);
  Status ExecSet(const Stmt& s, const std::shared_ptr<Frame>& frame, std::string* out);
  Status Assign(const Expr& target, const Value& value, const std::shared_ptr<Frame>& frame);
  Value MakeMacro(const Stmt& s, const std::shared_ptr<Frame>& frame, const std::string& name);
  StatusOr<Value> CallMacro(const Stmt& s, const std::weak_ptr<Frame>& closure, CallArgs& args,
                            const Value& caller);

  StatusOr<Value> Eval(const Expr& e, const std::shared_ptr<Frame>& frame);
  StatusOr<Value> EvalInner(const Expr& e, const std::shared_ptr<Frame>& frame);
  StatusOr<CallArgs> EvalArgs(const Expr& e, size_t first, const std::shared_ptr<Frame>& frame);
  StatusOr<Value> EvalCompare(const Expr& e, const std::shared_ptr<Frame>& frame);
  StatusOr<Value> EvalFilterOrTest(const Expr& e, const Value& input, const std::shared_ptr<Frame>& frame);

  Limits limits_;
  ClockFn clock_;
  std::shared_ptr<Frame> globals_;
  Flow flow_ = Flow::kNormal;
  int64_t iterations_ = 0;
  int call_depth_ = 0;
};

// Builtins (builtins.cc).
StatusOr<Value> CallFilter(Interpreter& in, const std::string& name, const Value& input, CallArgs& args);
StatusOr<bool> CallTest(Interpreter& in, const std::string& name, const Value& input, CallArgs& args);
bool HasFilter(const std::string& name);
bool HasTest(const std::string& name);
// Bound method `obj.name` (str / dict / list methods), or nullopt-like undefined if none.
StatusOr<Value> GetMethod(const Value& obj, const std::string& name, bool* found);
// Global functions: range, namespace, dict, raise_exception, strftime_now, lipsum-free set.
void AddGlobals(std::unordered_map<std::string, Value>* vars);

// Python binary operators (+ - * / // % ** ~), unary minus/plus.
StatusOr<Value> BinaryOp(Interpreter& in, const std::string& op, const Value& a, const Value& b);
StatusOr<Value> Negate(const Value& v, bool minus);
// Python iter(): elements of a list/tuple, keys of a dict, characters of a string.
StatusOr<ValueList> Iterate(const Value& v);
// Python `a in b`.
StatusOr<bool> Contains(const Value& container, const Value& item);

}  // namespace kiln::jinja
