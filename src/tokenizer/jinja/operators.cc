// Python operator semantics (+ - * / // % ** ~, unary -, iteration, `in`) and globals.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "tokenizer/jinja/builtins_internal.h"
#include "tokenizer/jinja/utf8.h"

namespace kiln::jinja {
namespace {

constexpr int64_t kMaxRange = 100000;  // jinja2.sandbox.MAX_RANGE

Status TypeErr(const char* op, const Value& a, const Value& b) {
  return InvalidArgument("TypeError: unsupported operand type(s) for %s: '%s' and '%s'", op,
                         a.TypeName(), b.TypeName());
}

StatusOr<Value> IntOp(const std::string& op, int64_t a, int64_t b) {
  int64_t r = 0;
  bool overflow = false;
  if (op == "+") overflow = __builtin_add_overflow(a, b, &r);
  else if (op == "-") overflow = __builtin_sub_overflow(a, b, &r);
  else if (op == "*") overflow = __builtin_mul_overflow(a, b, &r);
  else if (op == "/") {
    if (b == 0) return InvalidArgument("ZeroDivisionError: division by zero");
    return Value::Float(static_cast<double>(a) / static_cast<double>(b));
  } else if (op == "//" || op == "%") {
    if (b == 0) return InvalidArgument("ZeroDivisionError: integer division or modulo by zero");
    if (a == INT64_MIN && b == -1) {
      if (op == "%") return Value::Int(0);
      overflow = true;
    } else {
      int64_t q = a / b, m = a % b;
      if (m != 0 && ((m < 0) != (b < 0))) {
        --q;
        m += b;
      }
      r = op == "//" ? q : m;
    }
  } else if (op == "**") {
    if (b < 0) {
      if (a == 0) return InvalidArgument("ZeroDivisionError: 0.0 cannot be raised to a negative power");
      return Value::Float(std::pow(static_cast<double>(a), static_cast<double>(b)));
    }
    r = 1;
    int64_t base = a;
    for (int64_t e = b; e > 0 && !overflow; e >>= 1) {
      if (e & 1) overflow = __builtin_mul_overflow(r, base, &r);
      if (e > 1 && !overflow) overflow = __builtin_mul_overflow(base, base, &base);
    }
  }
  if (overflow) return InvalidArgument("OverflowError: integer result does not fit in 64 bits");
  return Value::Int(r);
}

StatusOr<Value> FloatOp(const std::string& op, double a, double b) {
  if (op == "+") return Value::Float(a + b);
  if (op == "-") return Value::Float(a - b);
  if (op == "*") return Value::Float(a * b);
  if (op == "/" || op == "//" || op == "%") {
    if (b == 0) return InvalidArgument("ZeroDivisionError: float division by zero");
    if (op == "/") return Value::Float(a / b);
    // CPython float_divmod.
    double mod = std::fmod(a, b);
    double div = (a - mod) / b;
    if (mod != 0) {
      if ((b < 0) != (mod < 0)) {
        mod += b;
        div -= 1.0;
      }
    } else {
      mod = std::copysign(0.0, b);
    }
    double floordiv;
    if (div != 0) {
      floordiv = std::floor(div);
      if (div - floordiv > 0.5) floordiv += 1.0;
    } else {
      floordiv = std::copysign(0.0, a / b);
    }
    return Value::Float(op == "%" ? mod : floordiv);
  }
  if (op == "**") {
    if (a == 0 && b < 0) return InvalidArgument("ZeroDivisionError: 0.0 cannot be raised to a negative power");
    if (a < 0 && b != std::floor(b)) return InvalidArgument("complex results are not supported");
    return Value::Float(std::pow(a, b));
  }
  return Internal("bad float op");
}

StatusOr<Value> Repeat(Interpreter& in, const Value& seq, int64_t times) {
  if (times <= 0) {
    if (seq.IsString()) return Value::String("");
    return seq.IsTuple() ? Value::Tuple({}) : Value::List({});
  }
  size_t unit = seq.IsString() ? seq.AsString().size() : seq.AsList().size();
  if (unit != 0 && static_cast<uint64_t>(times) > in.limits().max_output_bytes / unit) {
    return InvalidArgument("template value exceeds the size limit of %zu bytes", in.limits().max_output_bytes);
  }
  if (seq.IsString()) {
    std::string out;
    for (int64_t i = 0; i < times; ++i) out += seq.AsString();
    return Value::String(std::move(out));
  }
  ValueList out;
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), seq.AsList().begin(), seq.AsList().end());
  return seq.IsTuple() ? Value::Tuple(std::move(out)) : Value::List(std::move(out));
}

// Python `fmt % args` for the conversions templates use: %s %r %d %i %f %x %% with optional
// (name), flags "-0 +", width and precision.
StatusOr<Value> PercentFormat(Interpreter& in, const std::string& fmt, const Value& args) {
  ValueList positional;
  bool mapping_like = false;  // dict/list args: unused arguments are not an error in Python
  if (args.IsTuple()) {
    positional = args.AsList();
  } else {
    positional.push_back(args);
    // Python skips the "not all arguments converted" check for objects with __getitem__.
    mapping_like = args.IsDict() || args.IsList() || args.IsUndefined();
  }
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) return InvalidArgument("ValueError: incomplete format");
    const Value* arg = nullptr;
    if (fmt[i] == '(') {
      size_t close = fmt.find(')', i);
      if (close == std::string::npos) return InvalidArgument("ValueError: incomplete format key");
      if (!args.IsDict()) return InvalidArgument("TypeError: format requires a mapping");
      arg = args.AsDict().Find(Value::String(fmt.substr(i + 1, close - i - 1)));
      if (!arg) return InvalidArgument("KeyError: '%s'", fmt.substr(i + 1, close - i - 1).c_str());
      i = close + 1;
      mapping_like = true;
    }
    std::string spec = "%";
    while (i < fmt.size() && std::strchr("-+ 0#", fmt[i])) spec += fmt[i++];
    while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) spec += fmt[i++];
    if (i < fmt.size() && fmt[i] == '.') {
      spec += fmt[i++];
      while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) spec += fmt[i++];
    }
    if (i >= fmt.size()) return InvalidArgument("ValueError: incomplete format");
    char conv = fmt[i];
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (!arg) {
      if (next >= positional.size()) return InvalidArgument("TypeError: not enough arguments for format string");
      arg = &positional[next++];
    }
    if (spec.size() > 12) return InvalidArgument("format spec too long");
    char buf[512];
    if (conv == 's' || conv == 'r') {
      std::string text = conv == 's' ? arg->Str() : arg->Repr();
      std::string sspec = spec + "s";
      if (spec == "%") {
        out += text;
      } else {
        std::snprintf(buf, sizeof(buf), sspec.c_str(), text.c_str());
        out += buf;
      }
    } else if (conv == 'd' || conv == 'i' || conv == 'x' || conv == 'X' || conv == 'o') {
      if (!arg->IsNumber()) {
        return InvalidArgument("TypeError: %%%c format: a real number is required, not %s", conv, arg->TypeName());
      }
      int64_t v = arg->IsFloat() ? static_cast<int64_t>(arg->AsDouble()) : arg->AsInt();
      std::string ispec = spec + "ll" + (conv == 'i' ? 'd' : conv);
      std::snprintf(buf, sizeof(buf), ispec.c_str(), static_cast<long long>(v));
      out += buf;
    } else if (conv == 'f' || conv == 'F' || conv == 'e' || conv == 'g') {
      if (!arg->IsNumber()) return InvalidArgument("TypeError: must be real number, not %s", arg->TypeName());
      std::string fspec = spec + conv;
      std::snprintf(buf, sizeof(buf), fspec.c_str(), arg->AsDouble());
      out += buf;
    } else {
      return InvalidArgument("ValueError: unsupported format character '%c'", conv);
    }
    KILN_RETURN_IF_ERROR(in.CheckSize(out.size()));
  }
  if (next < positional.size() && !mapping_like) {
    return InvalidArgument("TypeError: not all arguments converted during string formatting");
  }
  return Value::String(std::move(out));
}

}  // namespace

Status UndefinedErr(const Value& v) {
  if (v.IsSecurityUndefined()) return InvalidArgument("SecurityError: %s", v.UndefinedHint().c_str());
  return InvalidArgument("UndefinedError: %s", v.UndefinedHint().c_str());
}

StatusOr<Value> BinaryOp(Interpreter& in, const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    std::string s = a.Str() + b.Str();
    KILN_RETURN_IF_ERROR(in.CheckSize(s.size()));
    return Value::String(std::move(s));
  }
  if (op == "%" && a.IsString()) return PercentFormat(in, a.AsString(), b);
  if (a.IsUndefined()) return UndefinedErr(a);
  if (b.IsUndefined()) return UndefinedErr(b);
  if (a.IsNumber() && b.IsNumber()) {
    if (a.IsFloat() || b.IsFloat()) return FloatOp(op, a.AsDouble(), b.AsDouble());
    return IntOp(op, a.AsInt(), b.AsInt());
  }
  if (op == "+") {
    if (a.IsString() && b.IsString()) {
      KILN_RETURN_IF_ERROR(in.CheckSize(a.AsString().size() + b.AsString().size()));
      return Value::String(a.AsString() + b.AsString());
    }
    if (a.IsSequence() && a.kind() == b.kind()) {
      KILN_RETURN_IF_ERROR(in.CheckSize(a.AsList().size() + b.AsList().size()));
      ValueList out = a.AsList();
      out.insert(out.end(), b.AsList().begin(), b.AsList().end());
      return a.IsTuple() ? Value::Tuple(std::move(out)) : Value::List(std::move(out));
    }
    if (a.IsString()) {
      return InvalidArgument("TypeError: can only concatenate str (not \"%s\") to str", b.TypeName());
    }
    return TypeErr("+", a, b);
  }
  if (op == "*") {
    if ((a.IsString() || a.IsSequence()) && (b.IsInt() || b.IsBool())) return Repeat(in, a, b.AsInt());
    if ((b.IsString() || b.IsSequence()) && (a.IsInt() || a.IsBool())) return Repeat(in, b, a.AsInt());
  }
  if (op == "%" && a.IsString()) return PercentFormat(in, a.AsString(), b);
  return TypeErr(op.c_str(), a, b);
}

StatusOr<Value> Negate(const Value& v, bool minus) {
  if (v.IsFloat()) return Value::Float(minus ? -v.AsDouble() : v.AsDouble());
  if (v.IsInt() || v.IsBool()) {
    if (!minus) return Value::Int(v.AsInt());
    if (v.AsInt() == INT64_MIN) return InvalidArgument("OverflowError: integer negation overflow");
    return Value::Int(-v.AsInt());
  }
  return InvalidArgument("TypeError: bad operand type for unary %s: '%s'", minus ? "-" : "+", v.TypeName());
}

StatusOr<ValueList> Iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return ValueList{};
    case Value::Kind::kList:
    case Value::Kind::kTuple: return v.AsList();
    case Value::Kind::kDict: {
      ValueList keys;
      for (const auto& [k, e] : v.AsDict().items()) keys.push_back(k);
      return keys;
    }
    case Value::Kind::kString: {
      ValueList chars;
      for (char32_t cp : DecodeUtf8(v.AsString())) {
        std::string s;
        AppendUtf8(cp, &s);
        chars.push_back(Value::String(std::move(s)));
      }
      return chars;
    }
    default: return InvalidArgument("TypeError: '%s' object is not iterable", v.TypeName());
  }
}

StatusOr<bool> Contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined: return false;
    case Value::Kind::kString:
      if (!item.IsString()) {
        return InvalidArgument("TypeError: 'in <string>' requires string as left operand, not %s",
                               item.TypeName());
      }
      return container.AsString().find(item.AsString()) != std::string::npos;
    case Value::Kind::kList:
    case Value::Kind::kTuple:
      for (const Value& e : container.AsList()) {
        if (Equals(e, item)) return true;
      }
      return false;
    case Value::Kind::kDict:
      if (item.IsList() || item.IsDict()) {
        return InvalidArgument("TypeError: unhashable type: '%s'", item.TypeName());
      }
      return container.AsDict().Find(item) != nullptr;
    default:
      return InvalidArgument("TypeError: argument of type '%s' is not iterable", container.TypeName());
  }
}

// ── Globals ──────────────────────────────────────────────────────────────────────────────

static StatusOr<Value> Range(Interpreter& in, CallArgs& a) {
  if (!a.kwargs.empty()) return InvalidArgument("TypeError: range() takes no keyword arguments");
  int64_t p[3] = {0, 0, 1};
  if (a.args.empty() || a.args.size() > 3) {
    return InvalidArgument("TypeError: range expected 1 to 3 arguments, got %zu", a.args.size());
  }
  for (size_t i = 0; i < a.args.size(); ++i) {
    if (!a.args[i].IsInt() && !a.args[i].IsBool()) {
      return InvalidArgument("TypeError: '%s' object cannot be interpreted as an integer",
                             a.args[i].TypeName());
    }
  }
  if (a.args.size() == 1) {
    p[1] = a.args[0].AsInt();
  } else {
    p[0] = a.args[0].AsInt();
    p[1] = a.args[1].AsInt();
    if (a.args.size() == 3) p[2] = a.args[2].AsInt();
  }
  if (p[2] == 0) return InvalidArgument("ValueError: range() arg 3 must not be zero");
  int64_t n = 0;
  if (p[2] > 0 && p[1] > p[0]) n = (p[1] - p[0] - 1) / p[2] + 1;
  if (p[2] < 0 && p[1] < p[0]) n = (p[0] - p[1] - 1) / (-p[2]) + 1;
  if (n > kMaxRange) {
    return InvalidArgument(
        "OverflowError: Range too big. The sandbox blocks ranges larger than MAX_RANGE (%lld).",
        static_cast<long long>(kMaxRange));
  }
  ValueList out;
  for (int64_t i = 0; i < n; ++i) out.push_back(Value::Int(p[0] + i * p[2]));
  return Value::List(std::move(out));
}

// dict(mapping_or_pairs, **kwargs), as Python's dict().
static StatusOr<Value> MakeDictFrom(CallArgs& a) {
  auto d = std::make_shared<Dict>();
  if (a.args.size() > 1) return InvalidArgument("TypeError: dict expected at most 1 argument");
  if (a.args.size() == 1) {
    const Value& src = a.args[0];
    if (src.IsDict() || src.IsNamespace()) {
      for (const auto& [k, v] : src.AsDict().items()) d->Set(k, v);
    } else {
      KILN_ASSIGN_OR_RETURN(ValueList items, Iterate(src));
      for (const Value& it : items) {
        if (!it.IsSequence() || it.AsList().size() != 2) {
          return InvalidArgument("ValueError: dictionary update sequence element has wrong length");
        }
        d->Set(it.AsList()[0], it.AsList()[1]);
      }
    }
  }
  for (const auto& [k, v] : a.kwargs) d->Set(Value::String(k), v);
  return Value::MakeDict(std::move(d));
}

void AddGlobals(std::unordered_map<std::string, Value>* vars) {
  (*vars)["range"] = Value::Callable("range", Range);
  (*vars)["dict"] = Value::Callable("dict", [](Interpreter&, CallArgs& a) { return MakeDictFrom(a); });
  (*vars)["namespace"] = Value::Callable("namespace", [](Interpreter&, CallArgs& a) -> StatusOr<Value> {
    KILN_ASSIGN_OR_RETURN(Value d, MakeDictFrom(a));
    for (const auto& [k, v] : d.AsDict().items()) {
      if (k.IsString() && !k.AsString().empty() && k.AsString()[0] == '_') {
        return InvalidArgument(
            "SecurityError: chat templates cannot store underscore-prefixed attributes on a "
            "namespace, but got %s", k.Repr().c_str());
      }
    }
    return Value::Namespace(d.DictPtr());
  });
  (*vars)["raise_exception"] = Value::Callable("raise_exception", [](Interpreter&, CallArgs& a) -> StatusOr<Value> {
    std::vector<Value> p;
    KILN_RETURN_IF_ERROR(BindArgs("raise_exception", a, {"message"}, &p));
    return InvalidArgument("TemplateError: %s", p[0].Str().c_str());
  });
  (*vars)["strftime_now"] = Value::Callable("strftime_now", [](Interpreter& in, CallArgs& a) -> StatusOr<Value> {
    std::vector<Value> p;
    KILN_RETURN_IF_ERROR(BindArgs("strftime_now", a, {"format"}, &p));
    if (!p[0].IsString()) return InvalidArgument("TypeError: strftime() argument 1 must be str");
    std::tm tm = in.Now();
    std::string out(256, '\0');
    size_t n = p[0].AsString().empty() ? 0 : std::strftime(out.data(), out.size(), p[0].AsString().c_str(), &tm);
    if (n == 0 && !p[0].AsString().empty()) {
      out.resize(4096);
      n = std::strftime(out.data(), out.size(), p[0].AsString().c_str(), &tm);
    }
    out.resize(n);
    return Value::String(std::move(out));
  });
}

}  // namespace kiln::jinja
