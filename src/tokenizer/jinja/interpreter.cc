#include "tokenizer/jinja/interpreter.h"

#include "tokenizer/jinja/utf8.h"

namespace kiln::jinja {
namespace {

// Errors raised while evaluating a node get that node's position once (the innermost wins).
Status AtPos(const Status& s, int line, int col) {
  if (s.message().rfind("template ", 0) == 0) return s;
  return Status(s.code(), StrFormat("template error at line %d, column %d: %s", line, col,
                                    s.message().c_str()));
}

Status UndefinedError(const Value& v) {
  if (v.IsSecurityUndefined()) return InvalidArgument("SecurityError: %s", v.UndefinedHint().c_str());
  return InvalidArgument("UndefinedError: %s", v.UndefinedHint().c_str());
}

std::string ObjDesc(const Value& v) { return StrFormat("'%s object'", v.TypeName()); }

}  // namespace

const Value* Frame::Find(const std::string& name) const {
  for (const Frame* f = this; f != nullptr; f = f->parent.get()) {
    auto it = f->vars.find(name);
    if (it != f->vars.end()) return &it->second;
  }
  return nullptr;
}

Interpreter::Interpreter(const Limits& limits, ClockFn clock)
    : limits_(limits), clock_(std::move(clock)), globals_(std::make_shared<Frame>()) {
  AddGlobals(&globals_->vars);
}

Status Interpreter::CheckSize(size_t bytes) const {
  if (bytes > limits_.max_output_bytes) {
    return InvalidArgument("template output or value exceeds the size limit of %zu bytes",
                           limits_.max_output_bytes);
  }
  return Status::Ok();
}

Status Interpreter::CountIterations(int64_t n) {
  iterations_ += n;
  if (iterations_ > limits_.max_loop_iterations) {
    return InvalidArgument("template exceeds the limit of %lld loop iterations",
                           static_cast<long long>(limits_.max_loop_iterations));
  }
  return Status::Ok();
}

StatusOr<std::string> Interpreter::Render(const Body& body,
                                          const std::vector<std::pair<std::string, Value>>& vars) {
  auto top = std::make_shared<Frame>();
  top->parent = globals_;
  for (const auto& [k, v] : vars) top->vars[k] = v;
  std::string out;
  KILN_RETURN_IF_ERROR(Exec(body, top, &out));
  // Macros hold weak references to frames; drop the frames now.
  top->vars.clear();
  return out;
}

// ── Statements ───────────────────────────────────────────────────────────────────────────

Status Interpreter::Exec(const Body& body, const std::shared_ptr<Frame>& frame, std::string* out) {
  for (const StmtPtr& s : body) {
    KILN_RETURN_IF_ERROR(ExecStmt(*s, frame, out));
    if (flow_ != Flow::kNormal) return Status::Ok();
  }
  return Status::Ok();
}

Status Interpreter::ExecStmt(const Stmt& s, const std::shared_ptr<Frame>& frame, std::string* out) {
  switch (s.kind) {
    case StmtKind::kText:
      out->append(s.text);
      return CheckSize(out->size());
    case StmtKind::kOutput: {
      KILN_ASSIGN_OR_RETURN(Value v, Eval(*s.expr, frame));
      out->append(v.Str());
      return CheckSize(out->size());
    }
    case StmtKind::kIf:
      for (const auto& [cond, body] : s.branches) {
        bool take = true;
        if (cond) {
          KILN_ASSIGN_OR_RETURN(Value c, Eval(*cond, frame));
          take = c.Truthy();
        }
        if (take) return Exec(body, frame, out);
      }
      return Status::Ok();
    case StmtKind::kFor: return ExecFor(s, frame, out);
    case StmtKind::kSet:
    case StmtKind::kSetBlock: return ExecSet(s, frame, out);
    case StmtKind::kMacro:
      frame->vars[s.text] = MakeMacro(s, frame, s.text);
      return Status::Ok();
    case StmtKind::kCallBlock: {
      Value caller = MakeMacro(s, frame, "caller");
      const Expr& call = *s.expr;
      KILN_ASSIGN_OR_RETURN(Value fn, Eval(*call.children[0], frame));
      KILN_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(call, 1, frame));
      args.kwargs.emplace_back("caller", caller);
      StatusOr<Value> r = Call(fn, args);
      if (!r.ok()) return AtPos(r.status(), s.line, s.col);
      out->append(r->Str());
      return CheckSize(out->size());
    }
    case StmtKind::kFilterBlock: {
      std::string inner;
      KILN_RETURN_IF_ERROR(Exec(s.body, frame, &inner));
      KILN_ASSIGN_OR_RETURN(Value v, EvalFilterOrTest(*s.expr, Value::String(std::move(inner)), frame));
      out->append(v.Str());
      return CheckSize(out->size());
    }
    case StmtKind::kBreak: flow_ = Flow::kBreak; return Status::Ok();
    case StmtKind::kContinue: flow_ = Flow::kContinue; return Status::Ok();
  }
  return Status::Ok();
}

Status Interpreter::ExecSet(const Stmt& s, const std::shared_ptr<Frame>& frame, std::string* out) {
  Value value;
  if (s.kind == StmtKind::kSet) {
    KILN_ASSIGN_OR_RETURN(value, Eval(*s.expr, frame));
  } else {
    std::string inner;
    KILN_RETURN_IF_ERROR(Exec(s.body, frame, &inner));
    value = Value::String(std::move(inner));
    if (s.expr) {
      KILN_ASSIGN_OR_RETURN(value, EvalFilterOrTest(*s.expr, value, frame));
    }
  }
  Status st = Assign(*s.target, value, frame);
  return st.ok() ? st : AtPos(st, s.line, s.col);
}

Status Interpreter::Assign(const Expr& target, const Value& value, const std::shared_ptr<Frame>& frame) {
  if (target.kind == ExprKind::kName) {
    frame->vars[target.name] = value;
    return Status::Ok();
  }
  if (target.kind == ExprKind::kGetAttr) {
    const std::string& ns_name = target.children[0]->name;
    const Value* ns = frame->Find(ns_name);
    if (!ns || !ns->IsNamespace()) {
      return InvalidArgument("cannot assign attribute on non-namespace object");
    }
    if (!target.name.empty() && target.name[0] == '_') {
      return InvalidArgument(
          "SecurityError: chat templates cannot store underscore-prefixed attributes on a "
          "namespace, but got '%s'", target.name.c_str());
    }
    ns->MutableDict().Set(Value::String(target.name), value);
    return Status::Ok();
  }
  // Tuple unpacking.
  KILN_ASSIGN_OR_RETURN(ValueList items, Iterate(value));
  if (items.size() != target.children.size()) {
    return InvalidArgument("%s unpack: expected %zu values, got %zu",
                           items.size() > target.children.size() ? "too many values to"
                                                                 : "not enough values to",
                           target.children.size(), items.size());
  }
  for (size_t i = 0; i < items.size(); ++i) {
    KILN_RETURN_IF_ERROR(Assign(*target.children[i], items[i], frame));
  }
  return Status::Ok();
}

Status Interpreter::ExecFor(const Stmt& s, const std::shared_ptr<Frame>& frame, std::string* out) {
  KILN_ASSIGN_OR_RETURN(Value iterable, Eval(*s.iter, frame));
  StatusOr<ValueList> items_or = Iterate(iterable);
  if (!items_or.ok()) return AtPos(items_or.status(), s.iter->line, s.iter->col);
  ValueList items = std::move(items_or).value();
  if (s.filter) {
    ValueList kept;
    for (const Value& item : items) {
      KILN_RETURN_IF_ERROR(CountIterations(1));
      auto f = std::make_shared<Frame>();
      f->parent = frame;
      Status st = Assign(*s.target, item, f);
      if (!st.ok()) return AtPos(st, s.line, s.col);
      KILN_ASSIGN_OR_RETURN(Value keep, Eval(*s.filter, f));
      if (keep.Truthy()) kept.push_back(item);
    }
    items = std::move(kept);
  }
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    KILN_RETURN_IF_ERROR(CountIterations(1));
    auto f = std::make_shared<Frame>();
    f->parent = frame;
    Status st = Assign(*s.target, items[i], f);
    if (!st.ok()) return AtPos(st, s.line, s.col);
    auto loop = std::make_shared<Dict>();
    auto set = [&](const char* k, Value v) { loop->Set(Value::String(k), std::move(v)); };
    set("index", Value::Int(i + 1));
    set("index0", Value::Int(i));
    set("revindex", Value::Int(n - i));
    set("revindex0", Value::Int(n - i - 1));
    set("first", Value::Bool(i == 0));
    set("last", Value::Bool(i == n - 1));
    set("length", Value::Int(n));
    set("depth", Value::Int(1));
    set("depth0", Value::Int(0));
    if (i > 0) set("previtem", items[i - 1]);
    if (i + 1 < n) set("nextitem", items[i + 1]);
    set("cycle", Value::Callable("loop.cycle", [i](Interpreter&, CallArgs& a) -> StatusOr<Value> {
          if (a.args.empty()) return InvalidArgument("no items for cycling given");
          return a.args[static_cast<size_t>(i) % a.args.size()];
        }));
    f->vars["loop"] = Value::Namespace(loop);
    KILN_RETURN_IF_ERROR(Exec(s.body, f, out));
    if (flow_ == Flow::kBreak) {
      flow_ = Flow::kNormal;
      break;
    }
    flow_ = Flow::kNormal;
  }
  if (n == 0 && !s.else_body.empty()) return Exec(s.else_body, frame, out);
  return Status::Ok();
}

Value Interpreter::MakeMacro(const Stmt& s, const std::shared_ptr<Frame>& frame, const std::string& name) {
  std::weak_ptr<Frame> closure = frame;
  const Stmt* def = &s;
  return Value::Callable(name, [this, def, closure](Interpreter&, CallArgs& args) -> StatusOr<Value> {
    Value caller;
    for (auto it = args.kwargs.begin(); it != args.kwargs.end(); ++it) {
      if (it->first == "caller") {
        caller = it->second;
        args.kwargs.erase(it);
        break;
      }
    }
    return CallMacro(*def, closure, args, caller);
  });
}

StatusOr<Value> Interpreter::CallMacro(const Stmt& s, const std::weak_ptr<Frame>& closure,
                                       CallArgs& args, const Value& caller) {
  if (call_depth_ >= limits_.max_call_depth) {
    return InvalidArgument("template exceeds the macro call depth limit of %d", limits_.max_call_depth);
  }
  auto f = std::make_shared<Frame>();
  f->parent = closure.lock();
  if (!f->parent) f->parent = globals_;
  if (args.args.size() > s.params.size()) {
    return InvalidArgument("macro '%s' takes not more than %zu argument(s)", s.text.c_str(),
                           s.params.size());
  }
  std::vector<bool> bound(s.params.size(), false);
  for (size_t i = 0; i < args.args.size(); ++i) {
    f->vars[s.params[i].name] = args.args[i];
    bound[i] = true;
  }
  for (auto& [k, v] : args.kwargs) {
    size_t idx = 0;
    while (idx < s.params.size() && s.params[idx].name != k) ++idx;
    if (idx == s.params.size()) {
      return InvalidArgument("macro '%s' takes no keyword argument '%s'", s.text.c_str(), k.c_str());
    }
    f->vars[k] = v;
    bound[idx] = true;
  }
  for (size_t i = 0; i < s.params.size(); ++i) {
    if (bound[i]) continue;
    if (s.params[i].default_value) {
      KILN_ASSIGN_OR_RETURN(Value d, Eval(*s.params[i].default_value, f));
      f->vars[s.params[i].name] = d;
    } else {
      f->vars[s.params[i].name] = Value::Undefined(
          StrFormat("parameter '%s' was not provided", s.params[i].name.c_str()));
    }
  }
  if (!caller.IsUndefined()) f->vars["caller"] = caller;
  ++call_depth_;
  std::string out;
  Flow saved = flow_;
  flow_ = Flow::kNormal;
  Status st = Exec(s.body, f, &out);
  flow_ = saved;
  --call_depth_;
  KILN_RETURN_IF_ERROR(st);
  return Value::String(std::move(out));
}

// ── Expressions ──────────────────────────────────────────────────────────────────────────

StatusOr<Value> Interpreter::Eval(const Expr& e, const std::shared_ptr<Frame>& frame) {
  StatusOr<Value> v = EvalInner(e, frame);
  if (!v.ok()) return AtPos(v.status(), e.line, e.col);
  return v;
}

StatusOr<CallArgs> Interpreter::EvalArgs(const Expr& e, size_t first, const std::shared_ptr<Frame>& frame) {
  CallArgs args;
  for (size_t i = first; i < e.children.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(Value v, Eval(*e.children[i], frame));
    args.args.push_back(std::move(v));
  }
  for (const auto& [k, ex] : e.kwargs) {
    KILN_ASSIGN_OR_RETURN(Value v, Eval(*ex, frame));
    args.kwargs.emplace_back(k, std::move(v));
  }
  return args;
}

StatusOr<Value> Interpreter::EvalFilterOrTest(const Expr& e, const Value& input,
                                              const std::shared_ptr<Frame>& frame) {
  // Filter chains nest through children[0]; the innermost null child takes `input`.
  Value base = input;
  if (e.children[0]) {
    KILN_ASSIGN_OR_RETURN(base, Eval(*e.children[0], frame));
  }
  KILN_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1, frame));
  if (e.kind == ExprKind::kTest) {
    KILN_ASSIGN_OR_RETURN(bool r, ApplyTest(e.name, base, args));
    return Value::Bool(r != e.negated);
  }
  return ApplyFilter(e.name, base, args);
}

StatusOr<Value> Interpreter::ApplyFilter(const std::string& name, const Value& input, CallArgs& args) {
  return CallFilter(*this, name, input, args);
}

StatusOr<bool> Interpreter::ApplyTest(const std::string& name, const Value& input, CallArgs& args) {
  return CallTest(*this, name, input, args);
}

StatusOr<Value> Interpreter::Call(const Value& fn, CallArgs& args) {
  if (fn.IsCallable()) return fn.Fn()(*this, args);
  if (fn.IsUndefined()) return UndefinedError(fn);
  return InvalidArgument("'%s' object is not callable", fn.TypeName());
}

StatusOr<Value> Interpreter::GetAttr(const Value& obj, const std::string& name) {
  if (obj.IsUndefined()) return UndefinedError(obj);
  if (name.size() > 1 && name[0] == '_' && name[1] == '_') {
    return Value::Undefined(StrFormat("access to attribute '%s' of '%s' object is unsafe.",
                                      name.c_str(), obj.TypeName()), true);
  }
  if (obj.IsNamespace()) {
    const Value* v = obj.AsDict().Find(Value::String(name));
    if (v) return *v;
    return Value::Undefined(StrFormat("'%s' has no attribute '%s'",
                                      obj.AsDict().Find(Value::String("index0")) ? "LoopContext"
                                                                                  : "Namespace",
                                      name.c_str()));
  }
  bool found = false;
  KILN_ASSIGN_OR_RETURN(Value m, GetMethod(obj, name, &found));
  if (found) return m;
  if (obj.IsDict()) {
    const Value* v = obj.AsDict().Find(Value::String(name));
    if (v) return *v;
  }
  return Value::Undefined(StrFormat("%s has no attribute '%s'", ObjDesc(obj).c_str(), name.c_str()));
}

static int64_t NormIndex(int64_t i, int64_t n) { return i < 0 ? i + n : i; }

StatusOr<Value> Interpreter::GetItem(const Value& obj, const Value& key) {
  if (obj.IsUndefined()) return UndefinedError(obj);
  if (obj.IsDict() || obj.IsNamespace()) {
    if (obj.IsDict()) {
      const Value* v = obj.AsDict().Find(key);
      if (v) return *v;
    }
  } else if (obj.IsSequence() && (key.IsInt() || key.IsBool())) {
    const ValueList& l = obj.AsList();
    int64_t i = NormIndex(key.AsInt(), static_cast<int64_t>(l.size()));
    if (i >= 0 && i < static_cast<int64_t>(l.size())) return l[i];
  } else if (obj.IsString() && (key.IsInt() || key.IsBool())) {
    std::u32string cps = DecodeUtf8(obj.AsString());
    int64_t i = NormIndex(key.AsInt(), static_cast<int64_t>(cps.size()));
    if (i >= 0 && i < static_cast<int64_t>(cps.size())) return Value::String(EncodeUtf8(cps.substr(i, 1)));
  }
  if (key.IsString()) {
    if (obj.IsNamespace()) return GetAttr(obj, key.AsString());
    bool found = false;
    if (key.AsString().rfind("__", 0) == 0) {
      return Value::Undefined(StrFormat("access to attribute '%s' of '%s' object is unsafe.",
                                        key.AsString().c_str(), obj.TypeName()), true);
    }
    KILN_ASSIGN_OR_RETURN(Value m, GetMethod(obj, key.AsString(), &found));
    if (found) return m;
    return Value::Undefined(StrFormat("%s has no attribute '%s'", ObjDesc(obj).c_str(),
                                      key.AsString().c_str()));
  }
  return Value::Undefined(StrFormat("%s has no element %s", ObjDesc(obj).c_str(), key.Repr().c_str()));
}

static StatusOr<Value> Slice(Interpreter& in, const Value& obj, const Value* start, const Value* stop,
                             const Value* step) {
  auto as_int = [](const Value* v, int64_t* out) -> Status {
    if (!v || v->IsNone()) return Status::Ok();
    if (!v->IsInt() && !v->IsBool()) {
      return InvalidArgument("slice indices must be integers or None");
    }
    *out = v->AsInt();
    return Status::Ok();
  };
  int64_t st = 1;
  KILN_RETURN_IF_ERROR(as_int(step, &st));
  if (st == 0) return InvalidArgument("slice step cannot be zero");
  std::u32string cps;
  int64_t n;
  if (obj.IsString()) {
    cps = DecodeUtf8(obj.AsString());
    n = static_cast<int64_t>(cps.size());
  } else if (obj.IsSequence()) {
    n = static_cast<int64_t>(obj.AsList().size());
  } else if (obj.IsUndefined()) {
    return UndefinedError(obj);
  } else {
    return InvalidArgument("'%s' object is not subscriptable", obj.TypeName());
  }
  int64_t lo = st > 0 ? 0 : n - 1, hi = st > 0 ? n : -1;
  int64_t a = lo, b = hi;
  bool has_a = start && !start->IsNone(), has_b = stop && !stop->IsNone();
  KILN_RETURN_IF_ERROR(as_int(start, &a));
  KILN_RETURN_IF_ERROR(as_int(stop, &b));
  auto clamp = [&](int64_t x) {
    if (x < 0) x += n;
    if (st > 0) return std::clamp<int64_t>(x, 0, n);
    return std::clamp<int64_t>(x, -1, n - 1);
  };
  if (has_a) a = clamp(a);
  if (has_b) b = clamp(b);
  std::vector<int64_t> idx;
  for (int64_t i = a; st > 0 ? i < b : i > b; i += st) idx.push_back(i);
  if (obj.IsString()) {
    std::u32string r;
    for (int64_t i : idx) r.push_back(cps[i]);
    return Value::String(EncodeUtf8(r));
  }
  ValueList r;
  for (int64_t i : idx) r.push_back(obj.AsList()[i]);
  return obj.IsTuple() ? Value::Tuple(std::move(r)) : Value::List(std::move(r));
}

StatusOr<Value> Interpreter::EvalCompare(const Expr& e, const std::shared_ptr<Frame>& frame) {
  KILN_ASSIGN_OR_RETURN(Value left, Eval(*e.children[0], frame));
  for (size_t i = 0; i < e.ops.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(Value right, Eval(*e.children[i + 1], frame));
    const std::string& op = e.ops[i];
    bool r;
    if (op == "==" || op == "!=") {
      r = Equals(left, right) == (op == "==");
    } else if (op == "in" || op == "notin") {
      KILN_ASSIGN_OR_RETURN(bool c, Contains(right, left));
      r = c == (op == "in");
    } else {
      if (left.IsUndefined()) return UndefinedError(left);
      if (right.IsUndefined()) return UndefinedError(right);
      if (op == "<") {
        KILN_ASSIGN_OR_RETURN(r, Less(left, right));
      } else if (op == ">") {
        KILN_ASSIGN_OR_RETURN(r, Less(right, left));
      } else if (op == "<=") {
        KILN_ASSIGN_OR_RETURN(bool gt, Less(right, left));
        r = !gt;
        if (left.IsFloat() || right.IsFloat()) r = left.AsDouble() <= right.AsDouble();
      } else {
        KILN_ASSIGN_OR_RETURN(bool lt, Less(left, right));
        r = !lt;
        if (left.IsFloat() || right.IsFloat()) r = left.AsDouble() >= right.AsDouble();
      }
    }
    if (!r) return Value::Bool(false);
    left = std::move(right);
  }
  return Value::Bool(true);
}

StatusOr<Value> Interpreter::EvalInner(const Expr& e, const std::shared_ptr<Frame>& frame) {
  switch (e.kind) {
    case ExprKind::kConst: return e.value;
    case ExprKind::kName: {
      const Value* v = frame->Find(e.name);
      if (v) return *v;
      return Value::Undefined(StrFormat("'%s' is undefined", e.name.c_str()));
    }
    case ExprKind::kList:
    case ExprKind::kTuple: {
      ValueList items;
      for (const ExprPtr& c : e.children) {
        KILN_ASSIGN_OR_RETURN(Value v, Eval(*c, frame));
        items.push_back(std::move(v));
      }
      return e.kind == ExprKind::kList ? Value::List(std::move(items)) : Value::Tuple(std::move(items));
    }
    case ExprKind::kDict: {
      auto d = std::make_shared<Dict>();
      for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
        KILN_ASSIGN_OR_RETURN(Value k, Eval(*e.children[i], frame));
        KILN_ASSIGN_OR_RETURN(Value v, Eval(*e.children[i + 1], frame));
        if (k.IsList() || k.IsDict() || k.IsNamespace() || k.IsUndefined()) {
          return InvalidArgument("unhashable type: '%s'", k.TypeName());
        }
        d->Set(k, std::move(v));
      }
      return Value::MakeDict(std::move(d));
    }
    case ExprKind::kGetAttr: {
      KILN_ASSIGN_OR_RETURN(Value obj, Eval(*e.children[0], frame));
      return GetAttr(obj, e.name);
    }
    case ExprKind::kGetItem: {
      KILN_ASSIGN_OR_RETURN(Value obj, Eval(*e.children[0], frame));
      KILN_ASSIGN_OR_RETURN(Value key, Eval(*e.children[1], frame));
      return GetItem(obj, key);
    }
    case ExprKind::kSlice: {
      KILN_ASSIGN_OR_RETURN(Value obj, Eval(*e.children[0], frame));
      Value parts[3];
      for (int i = 0; i < 3; ++i) {
        if (e.children[i + 1]) {
          KILN_ASSIGN_OR_RETURN(parts[i], Eval(*e.children[i + 1], frame));
        }
      }
      return Slice(*this, obj, e.children[1] ? &parts[0] : nullptr, e.children[2] ? &parts[1] : nullptr,
                   e.children[3] ? &parts[2] : nullptr);
    }
    case ExprKind::kCall: {
      KILN_ASSIGN_OR_RETURN(Value fn, Eval(*e.children[0], frame));
      KILN_ASSIGN_OR_RETURN(CallArgs args, EvalArgs(e, 1, frame));
      return Call(fn, args);
    }
    case ExprKind::kFilter:
    case ExprKind::kTest: return EvalFilterOrTest(e, Value(), frame);
    case ExprKind::kNeg:
    case ExprKind::kPos: {
      KILN_ASSIGN_OR_RETURN(Value v, Eval(*e.children[0], frame));
      if (v.IsUndefined()) return UndefinedError(v);
      return Negate(v, e.kind == ExprKind::kNeg);
    }
    case ExprKind::kNot: {
      KILN_ASSIGN_OR_RETURN(Value v, Eval(*e.children[0], frame));
      return Value::Bool(!v.Truthy());
    }
    case ExprKind::kAnd:
    case ExprKind::kOr: {
      KILN_ASSIGN_OR_RETURN(Value l, Eval(*e.children[0], frame));
      if (l.Truthy() == (e.kind == ExprKind::kOr)) return l;
      return Eval(*e.children[1], frame);
    }
    case ExprKind::kBinary: {
      KILN_ASSIGN_OR_RETURN(Value l, Eval(*e.children[0], frame));
      KILN_ASSIGN_OR_RETURN(Value r, Eval(*e.children[1], frame));
      return BinaryOp(*this, e.name, l, r);
    }
    case ExprKind::kCompare: return EvalCompare(e, frame);
    case ExprKind::kCond: {
      KILN_ASSIGN_OR_RETURN(Value c, Eval(*e.children[0], frame));
      if (c.Truthy()) return Eval(*e.children[1], frame);
      if (e.children[2]) return Eval(*e.children[2], frame);
      return Value::Undefined("the inline if-expression evaluated to false and no else section was defined.");
    }
  }
  return Internal("unknown expression kind");
}

}  // namespace kiln::jinja
