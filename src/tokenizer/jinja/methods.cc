// Python str / dict / list methods templates call (`content.split('</think>')`, `d.items()`),
// with the immutable sandbox refusing the mutating ones.
#include <algorithm>
#include <set>

#include "tokenizer/jinja/builtins_internal.h"
#include "tokenizer/jinja/utf8.h"

namespace kiln::jinja {

Status BindArgs(const char* fn, const CallArgs& args, std::initializer_list<const char*> names,
                std::vector<Value>* out) {
  out->assign(names.size(), Value());
  if (args.args.size() > names.size()) {
    return InvalidArgument("TypeError: %s() takes at most %zu argument(s) (%zu given)", fn,
                           names.size(), args.args.size());
  }
  for (size_t i = 0; i < args.args.size(); ++i) (*out)[i] = args.args[i];
  for (const auto& [k, v] : args.kwargs) {
    size_t idx = 0;
    for (const char* n : names) {
      if (k == n) break;
      ++idx;
    }
    if (idx == names.size()) {
      return InvalidArgument("TypeError: %s() got an unexpected keyword argument '%s'", fn, k.c_str());
    }
    (*out)[idx] = v;
  }
  return Status::Ok();
}

// ── String helpers ───────────────────────────────────────────────────────────────────────

std::string PyStrip(const std::string& s, const Value& chars, bool left, bool right) {
  std::u32string cps = DecodeUtf8(s);
  std::u32string set;
  bool ws = chars.IsUndefined() || chars.IsNone();
  if (!ws) set = DecodeUtf8(chars.Str());
  auto strip_it = [&](char32_t c) { return ws ? IsPySpace(c) : set.find(c) != std::u32string::npos; };
  size_t a = 0, b = cps.size();
  if (left) {
    while (a < b && strip_it(cps[a])) ++a;
  }
  if (right) {
    while (b > a && strip_it(cps[b - 1])) --b;
  }
  return EncodeUtf8(std::u32string_view(cps).substr(a, b - a));
}

StatusOr<ValueList> PySplit(const std::string& s, const Value& sep, int64_t maxsplit) {
  ValueList out;
  if (sep.IsUndefined() || sep.IsNone()) {
    std::u32string cps = DecodeUtf8(s);
    size_t i = 0;
    while (true) {
      while (i < cps.size() && IsPySpace(cps[i])) ++i;
      if (i >= cps.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        // Rest of the string, with trailing whitespace removed.
        size_t end = cps.size();
        while (end > i && IsPySpace(cps[end - 1])) --end;
        out.push_back(Value::String(EncodeUtf8(std::u32string_view(cps).substr(i, end - i))));
        break;
      }
      size_t j = i;
      while (j < cps.size() && !IsPySpace(cps[j])) ++j;
      out.push_back(Value::String(EncodeUtf8(std::u32string_view(cps).substr(i, j - i))));
      i = j;
    }
    return out;
  }
  if (!sep.IsString()) return InvalidArgument("TypeError: must be str or None, not %s", sep.TypeName());
  const std::string& d = sep.AsString();
  if (d.empty()) return InvalidArgument("ValueError: empty separator");
  size_t pos = 0;
  while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
    size_t f = s.find(d, pos);
    if (f == std::string::npos) break;
    out.push_back(Value::String(s.substr(pos, f - pos)));
    pos = f + d.size();
  }
  out.push_back(Value::String(s.substr(pos)));
  return out;
}

std::vector<std::string> PySplitLines(const std::string& s) {
  std::vector<std::string> lines;
  std::u32string cps = DecodeUtf8(s);
  std::u32string cur;
  for (size_t i = 0; i < cps.size(); ++i) {
    char32_t c = cps[i];
    bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D ||
               c == 0x1E || c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) {
      cur.push_back(c);
      continue;
    }
    if (c == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') ++i;
    lines.push_back(EncodeUtf8(cur));
    cur.clear();
  }
  if (!cur.empty()) lines.push_back(EncodeUtf8(cur));
  return lines;
}

std::string PyUpper(const std::string& s) {
  std::string out;
  for (char32_t c : DecodeUtf8(s)) {
    if (c == 0xDF) {
      out += "SS";  // the one common multi-character mapping
      continue;
    }
    AppendUtf8(ToUpperCp(c), &out);
  }
  return out;
}

std::string PyLower(const std::string& s) {
  std::u32string cps = DecodeUtf8(s);
  std::string out;
  for (size_t i = 0; i < cps.size(); ++i) {
    // Python's Final_Sigma rule: Σ after a cased letter and not before one becomes ς.
    if (cps[i] == 0x3A3 && i > 0 && IsCasedCp(cps[i - 1]) &&
        (i + 1 == cps.size() || !IsCasedCp(cps[i + 1]))) {
      AppendUtf8(0x3C2, &out);
      continue;
    }
    AppendUtf8(ToLowerCp(cps[i]), &out);
  }
  return out;
}

std::string PyCapitalize(const std::string& s) {
  std::u32string cps = DecodeUtf8(s);
  for (size_t i = 0; i < cps.size(); ++i) cps[i] = i == 0 ? ToUpperCp(cps[i]) : ToLowerCp(cps[i]);
  return EncodeUtf8(cps);
}

static bool IsCased(char32_t c) { return IsCasedCp(c); }

std::string PyTitle(const std::string& s) {
  std::u32string cps = DecodeUtf8(s);
  bool prev_cased = false;
  for (char32_t& c : cps) {
    c = prev_cased ? ToLowerCp(c) : ToUpperCp(c);
    prev_cased = IsCased(c);
  }
  return EncodeUtf8(cps);
}

std::string PyReplace(const std::string& s, const std::string& old, const std::string& repl,
                      int64_t count) {
  std::string out;
  if (old.empty()) {
    // Python inserts `repl` between every code point (and at both ends).
    std::u32string cps = DecodeUtf8(s);
    int64_t done = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) {
        out += repl;
        ++done;
      }
      if (i < cps.size()) AppendUtf8(cps[i], &out);
    }
    return out;
  }
  size_t pos = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    size_t f = s.find(old, pos);
    if (f == std::string::npos) break;
    out += s.substr(pos, f - pos) + repl;
    pos = f + old.size();
    ++done;
  }
  return out + s.substr(pos);
}

// ── Methods ──────────────────────────────────────────────────────────────────────────────
namespace {

using Method = StatusOr<Value> (*)(Interpreter&, const Value&, CallArgs&);

StatusOr<int64_t> OptInt(const Value& v, int64_t dflt) {
  if (v.IsUndefined() || v.IsNone()) return dflt;
  if (!v.IsInt() && !v.IsBool()) return InvalidArgument("TypeError: an integer is required");
  return v.AsInt();
}

StatusOr<Value> StrStrip(const Value& self, CallArgs& a, bool l, bool r) {
  std::vector<Value> p;
  KILN_RETURN_IF_ERROR(BindArgs("strip", a, {"chars"}, &p));
  return Value::String(PyStrip(self.AsString(), p[0], l, r));
}

StatusOr<Value> StrSplit(const Value& self, CallArgs& a, bool reverse) {
  std::vector<Value> p;
  KILN_RETURN_IF_ERROR(BindArgs("split", a, {"sep", "maxsplit"}, &p));
  KILN_ASSIGN_OR_RETURN(int64_t maxsplit, OptInt(p[1], -1));
  if (reverse && maxsplit >= 0) return InvalidArgument("str.rsplit with maxsplit is not supported");
  KILN_ASSIGN_OR_RETURN(ValueList parts, PySplit(self.AsString(), p[0], maxsplit));
  return Value::List(std::move(parts));
}

StatusOr<Value> StrAffix(const Value& self, CallArgs& a, bool start) {
  std::vector<Value> p;
  KILN_RETURN_IF_ERROR(BindArgs(start ? "startswith" : "endswith", a, {"prefix"}, &p));
  std::vector<std::string> cands;
  if (p[0].IsString()) {
    cands.push_back(p[0].AsString());
  } else if (p[0].IsTuple()) {
    for (const Value& v : p[0].AsList()) {
      if (!v.IsString()) return InvalidArgument("TypeError: tuple for startswith must only contain str");
      cands.push_back(v.AsString());
    }
  } else {
    return InvalidArgument("TypeError: %s first arg must be str or a tuple of str, not %s",
                           start ? "startswith" : "endswith", p[0].TypeName());
  }
  const std::string& s = self.AsString();
  for (const std::string& c : cands) {
    if (c.size() > s.size()) continue;
    if (start ? s.compare(0, c.size(), c) == 0 : s.compare(s.size() - c.size(), c.size(), c) == 0) {
      return Value::Bool(true);
    }
  }
  return Value::Bool(false);
}

StatusOr<Value> StrFind(const Value& self, CallArgs& a, const char* which) {
  std::vector<Value> p;
  KILN_RETURN_IF_ERROR(BindArgs(which, a, {"sub"}, &p));
  if (!p[0].IsString()) return InvalidArgument("TypeError: must be str, not %s", p[0].TypeName());
  const std::string& s = self.AsString();
  const std::string& sub = p[0].AsString();
  std::string w = which;
  if (w == "count") {
    if (sub.empty()) return Value::Int(static_cast<int64_t>(Utf8Length(s)) + 1);
    int64_t n = 0;
    for (size_t f = s.find(sub); f != std::string::npos; f = s.find(sub, f + sub.size())) ++n;
    return Value::Int(n);
  }
  size_t f = w == "rfind" || w == "rindex" ? s.rfind(sub) : s.find(sub);
  if (f == std::string::npos) {
    if (w == "index" || w == "rindex") return InvalidArgument("ValueError: substring not found");
    return Value::Int(-1);
  }
  return Value::Int(static_cast<int64_t>(Utf8Length(std::string_view(s).substr(0, f))));
}

// str.format with {} / {0} / {name} fields and {{ }} escapes; format specs are rejected.
StatusOr<Value> StrFormatMethod(Interpreter& in, const Value& self, CallArgs& a) {
  const std::string& f = self.AsString();
  std::string out;
  size_t auto_idx = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    char c = f[i];
    if (c == '{' && i + 1 < f.size() && f[i + 1] == '{') { out += '{'; ++i; continue; }
    if (c == '}' && i + 1 < f.size() && f[i + 1] == '}') { out += '}'; ++i; continue; }
    if (c == '}') return InvalidArgument("ValueError: Single '}' encountered in format string");
    if (c != '{') { out += c; continue; }
    size_t close = f.find('}', i);
    if (close == std::string::npos) return InvalidArgument("ValueError: Single '{' encountered in format string");
    std::string field = f.substr(i + 1, close - i - 1);
    if (field.find_first_of(":!.[") != std::string::npos) {
      return InvalidArgument("str.format field '%s' is not supported", field.c_str());
    }
    const Value* v = nullptr;
    if (field.empty()) {
      if (auto_idx >= a.args.size()) return InvalidArgument("IndexError: Replacement index out of range");
      v = &a.args[auto_idx++];
    } else if (std::all_of(field.begin(), field.end(), ::isdigit)) {
      size_t idx = std::stoul(field);
      if (idx >= a.args.size()) return InvalidArgument("IndexError: Replacement index out of range");
      v = &a.args[idx];
    } else {
      for (const auto& [k, val] : a.kwargs) {
        if (k == field) v = &val;
      }
      if (!v) return InvalidArgument("KeyError: '%s'", field.c_str());
    }
    out += v->Str();
    KILN_RETURN_IF_ERROR(in.CheckSize(out.size()));
    i = close;
  }
  return Value::String(std::move(out));
}

StatusOr<Value> StrMethod(Interpreter& in, const std::string& name, const Value& self, CallArgs& a) {
  const std::string& s = self.AsString();
  std::vector<Value> p;
  if (name == "strip") return StrStrip(self, a, true, true);
  if (name == "lstrip") return StrStrip(self, a, true, false);
  if (name == "rstrip") return StrStrip(self, a, false, true);
  if (name == "split") return StrSplit(self, a, false);
  if (name == "rsplit") return StrSplit(self, a, true);
  if (name == "startswith") return StrAffix(self, a, true);
  if (name == "endswith") return StrAffix(self, a, false);
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    return StrFind(self, a, name.c_str());
  }
  if (name == "format") return StrFormatMethod(in, self, a);
  KILN_RETURN_IF_ERROR(BindArgs(name.c_str(), a, {"a", "b", "c"}, &p));
  if (name == "upper") return Value::String(PyUpper(s));
  if (name == "lower") return Value::String(PyLower(s));
  if (name == "title") return Value::String(PyTitle(s));
  if (name == "capitalize") return Value::String(PyCapitalize(s));
  if (name == "splitlines") {
    ValueList out;
    for (std::string& l : PySplitLines(s)) out.push_back(Value::String(std::move(l)));
    return Value::List(std::move(out));
  }
  if (name == "replace") {
    if (!p[0].IsString() || !p[1].IsString()) return InvalidArgument("TypeError: replace() arguments must be str");
    KILN_ASSIGN_OR_RETURN(int64_t count, OptInt(p[2], -1));
    std::string r = PyReplace(s, p[0].AsString(), p[1].AsString(), count);
    KILN_RETURN_IF_ERROR(in.CheckSize(r.size()));
    return Value::String(std::move(r));
  }
  if (name == "join") {
    KILN_ASSIGN_OR_RETURN(ValueList items, Iterate(p[0]));
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].IsString()) {
        return InvalidArgument("TypeError: sequence item %zu: expected str instance, %s found", i,
                               items[i].TypeName());
      }
      if (i) out += s;
      out += items[i].AsString();
      KILN_RETURN_IF_ERROR(in.CheckSize(out.size()));
    }
    return Value::String(std::move(out));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    if (!p[0].IsString()) return InvalidArgument("TypeError: argument must be str");
    const std::string& x = p[0].AsString();
    if (name == "removeprefix" && s.compare(0, x.size(), x) == 0) return Value::String(s.substr(x.size()));
    if (name == "removesuffix" && x.size() <= s.size() && !x.empty() &&
        s.compare(s.size() - x.size(), x.size(), x) == 0) {
      return Value::String(s.substr(0, s.size() - x.size()));
    }
    return self;
  }
  auto all = [&](auto pred) {
    std::u32string cps = DecodeUtf8(s);
    return Value::Bool(!cps.empty() && std::all_of(cps.begin(), cps.end(), pred));
  };
  if (name == "isdigit" || name == "isnumeric" || name == "isdecimal") {
    return all([](char32_t c) { return c >= '0' && c <= '9'; });
  }
  if (name == "isalpha") return all([](char32_t c) { return IsCased(c); });
  if (name == "isalnum") return all([](char32_t c) { return IsCased(c) || (c >= '0' && c <= '9'); });
  if (name == "isspace") return all([](char32_t c) { return IsPySpace(c); });
  if (name == "islower" || name == "isupper") {
    bool lower = name == "islower";
    bool any = false;
    for (char32_t c : DecodeUtf8(s)) {
      if (!IsCased(c)) continue;
      any = true;
      if ((ToUpperCp(c) != c) != lower) return Value::Bool(false);
    }
    return Value::Bool(any);
  }
  return Internal("unhandled str method %s", name.c_str());
}

const std::set<std::string>& StrMethods() {
  static const auto* m = new std::set<std::string>{
      "strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith", "find", "rfind",
      "index", "rindex", "count", "format", "upper", "lower", "title", "capitalize", "splitlines",
      "replace", "join", "removeprefix", "removesuffix", "isdigit", "isnumeric", "isdecimal",
      "isalpha", "isalnum", "isspace", "islower", "isupper"};
  return *m;
}

StatusOr<Value> DictMethod(const std::string& name, const Value& self, CallArgs& a) {
  std::vector<Value> p;
  if (name == "get") {
    KILN_RETURN_IF_ERROR(BindArgs("get", a, {"key", "default"}, &p));
    const Value* v = self.AsDict().Find(p[0]);
    if (v) return *v;
    return p[1].IsUndefined() ? Value::None() : p[1];
  }
  KILN_RETURN_IF_ERROR(BindArgs(name.c_str(), a, {}, &p));
  ValueList out;
  for (const auto& [k, v] : self.AsDict().items()) {
    if (name == "keys") out.push_back(k);
    else if (name == "values") out.push_back(v);
    else out.push_back(Value::Tuple({k, v}));
  }
  if (name == "copy") {
    auto d = std::make_shared<Dict>(self.AsDict());
    return Value::MakeDict(std::move(d));
  }
  return Value::List(std::move(out));
}

StatusOr<Value> ListMethod(const std::string& name, const Value& self, CallArgs& a) {
  std::vector<Value> p;
  KILN_RETURN_IF_ERROR(BindArgs(name.c_str(), a, {"x"}, &p));
  const ValueList& l = self.AsList();
  if (name == "count") {
    return Value::Int(std::count_if(l.begin(), l.end(), [&](const Value& v) { return Equals(v, p[0]); }));
  }
  if (name == "copy") return Value::List(l);
  for (size_t i = 0; i < l.size(); ++i) {
    if (Equals(l[i], p[0])) return Value::Int(static_cast<int64_t>(i));
  }
  return InvalidArgument("ValueError: %s is not in list", p[0].Repr().c_str());
}

Value Unsafe(const Value& obj, const std::string& name) {
  return Value::Undefined(StrFormat("access to attribute '%s' of '%s' object is unsafe.",
                                    name.c_str(), obj.TypeName()), true);
}

}  // namespace

StatusOr<Value> GetMethod(const Value& obj, const std::string& name, bool* found) {
  *found = false;
  if (obj.IsString() && StrMethods().count(name)) {
    *found = true;
    Value self = obj;
    return Value::Callable("str." + name, [self, name](Interpreter& in, CallArgs& a) {
      return StrMethod(in, name, self, a);
    });
  }
  if (obj.IsDict()) {
    static const std::set<std::string> kSafe = {"get", "items", "keys", "values", "copy"};
    static const std::set<std::string> kUnsafe = {"pop", "popitem", "setdefault", "update", "clear"};
    if (kUnsafe.count(name)) {
      *found = true;
      return Unsafe(obj, name);
    }
    if (kSafe.count(name)) {
      *found = true;
      Value self = obj;
      return Value::Callable("dict." + name, [self, name](Interpreter&, CallArgs& a) {
        return DictMethod(name, self, a);
      });
    }
  }
  if (obj.IsSequence()) {
    static const std::set<std::string> kUnsafe = {"append", "extend", "insert", "pop", "remove",
                                                  "reverse", "sort", "clear"};
    if (obj.IsList() && kUnsafe.count(name)) {
      *found = true;
      return Unsafe(obj, name);
    }
    if (name == "index" || name == "count" || (obj.IsList() && name == "copy")) {
      *found = true;
      Value self = obj;
      return Value::Callable("list." + name, [self, name](Interpreter&, CallArgs& a) {
        return ListMethod(name, self, a);
      });
    }
  }
  return Value();
}

}  // namespace kiln::jinja
