// jinja2's builtin filters and tests (filters.py, tests.py) that chat templates use, plus
// transformers' tojson override (json.dumps with ensure_ascii=False, key order kept).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

#include "tokenizer/jinja/builtins_internal.h"
#include "tokenizer/jinja/utf8.h"

namespace kiln::jinja {
namespace {

using FilterFn = StatusOr<Value> (*)(Interpreter&, const Value&, CallArgs&);
using P = std::vector<Value>;

bool Given(const Value& v) { return !v.IsUndefined(); }

// Attribute lookup with dots ("a.b") and integer parts, as jinja2's make_attrgetter.
StatusOr<Value> GetPath(Interpreter& in, const Value& item, const Value& attribute) {
  if (attribute.IsInt()) return in.GetItem(item, attribute);
  std::string path = attribute.Str();
  Value cur = item;
  size_t start = 0;
  while (true) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    if (numeric) {
      KILN_ASSIGN_OR_RETURN(cur, in.GetItem(cur, Value::Int(std::atoll(part.c_str()))));
    } else {
      KILN_ASSIGN_OR_RETURN(cur, in.GetItem(cur, Value::String(part)));
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur;
}

// Key for sort/unique/dictsort: lowercases strings unless case_sensitive.
Value SortKey(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.IsString()) return Value::String(PyLower(v.AsString()));
  return v;
}

Status SortValues(std::vector<std::pair<Value, Value>>* keyed, bool reverse) {
  Status err;
  std::stable_sort(keyed->begin(), keyed->end(), [&](const auto& a, const auto& b) {
    if (!err.ok()) return false;
    StatusOr<bool> r = reverse ? Less(b.first, a.first) : Less(a.first, b.first);
    if (!r.ok()) {
      err = r.status();
      return false;
    }
    return *r;
  });
  return err;
}

StatusOr<Value> FTrim(Interpreter&, const Value& v, CallArgs& a) {
  P p;
  KILN_RETURN_IF_ERROR(BindArgs("trim", a, {"chars"}, &p));
  return Value::String(PyStrip(SoftStr(v), p[0], true, true));
}
StatusOr<Value> FUpper(Interpreter&, const Value& v, CallArgs&) { return Value::String(PyUpper(SoftStr(v))); }
StatusOr<Value> FLower(Interpreter&, const Value& v, CallArgs&) { return Value::String(PyLower(SoftStr(v))); }
StatusOr<Value> FCapitalize(Interpreter&, const Value& v, CallArgs&) {
  return Value::String(PyCapitalize(SoftStr(v)));
}
StatusOr<Value> FTitle(Interpreter&, const Value& v, CallArgs&) {
  // Words begin after runs of [-\s({\[<]; each word is capitalized.
  std::u32string cps = DecodeUtf8(SoftStr(v));
  std::u32string out;
  bool word_start = true;
  for (char32_t c : cps) {
    bool sep = IsPySpace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
    if (sep) {
      out.push_back(c);
      word_start = true;
    } else {
      out.push_back(word_start ? ToUpperCp(c) : ToLowerCp(c));
      word_start = false;
    }
  }
  return Value::String(EncodeUtf8(out));
}

StatusOr<Value> FLength(Interpreter&, const Value& v, CallArgs&) {
  switch (v.kind()) {
    case Value::Kind::kUndefined: return Value::Int(0);
    case Value::Kind::kString: return Value::Int(static_cast<int64_t>(Utf8Length(v.AsString())));
    case Value::Kind::kList:
    case Value::Kind::kTuple: return Value::Int(static_cast<int64_t>(v.AsList().size()));
    case Value::Kind::kDict: return Value::Int(static_cast<int64_t>(v.AsDict().size()));
    default: return InvalidArgument("TypeError: object of type '%s' has no len()", v.TypeName());
  }
}

StatusOr<Value> FFirst(Interpreter&, const Value& v, CallArgs&) {
  KILN_ASSIGN_OR_RETURN(ValueList items, Iterate(v));
  if (items.empty()) return Value::Undefined("No first item, sequence was empty.");
  return items.front();
}
StatusOr<Value> FLast(Interpreter&, const Value& v, CallArgs&) {
  KILN_ASSIGN_OR_RETURN(ValueList items, Iterate(v));
  if (items.empty()) return Value::Undefined("No last item, sequence was empty.");
  return items.back();
}

StatusOr<Value> FJoin(Interpreter& in, const Value& v, CallArgs& a) {
  P p;
  KILN_RETURN_IF_ERROR(BindArgs("join", a, {"d", "attribute"}, &p));
  KILN_ASSIGN_OR_RETURN(ValueList items, Iterate(v));
  std::string sep = Given(p[0]) ? p[0].Str() : "";
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    Value item = items[i];
    if (Given(p[1])) {
      KILN_ASSIGN_OR_RETURN(item, GetPath(in, item, p[1]));
    }
    if (i) out += sep;
    out += item.Str();
    KILN_RETURN_IF_ERROR(in.CheckSize(out.size()));
  }
  return Value::String(std::move(out));
}

StatusOr<Value> FDefault(Interpreter&, const Value& v, CallArgs& a) {
  P p;
  KILN_RETURN_IF_ERROR(BindArgs("default", a, {"default_value", "boolean"}, &p));
  if (v.IsUndefined() || (p[1].Truthy() && !v.Truthy())) {
    return Given(p[0]) ? p[0] : Value::String("");
  }
  return v;
}

StatusOr<Value> FReplace(Interpreter& in, const Value& v, CallArgs& a) {
  P p;
  KILN_RETURN_IF_ERROR(BindArgs("replace", a, {"old", "new", "count"}, &p));
  int64_t count = (p[2].IsInt()) ? p[2].AsInt() : -1;
  std::string r = PyReplace(SoftStr(v), p[0].Str(), p[1].Str(), count);
  KILN_RETURN_IF_ERROR(in.CheckSize(r.size()));
  return Value::String(std::move(r));
}

StatusOr<Value> FList(Interpreter&, const Value& v, CallArgs&) {
  KILN_ASSIGN_OR_RETURN(ValueList items, Iterate(v));
  return Value::List(std::move(items));
}
StatusOr<Value> FString(Interpreter&, const Value& v, CallArgs&) { return Value::String(SoftStr(v)); }

// Python float(str): optional whitespace, sign, digits/inf/nan.
bool ParsePyFloat(const std::string& s, double* out) {
  std::string t = PyStrip(s, Value(), true, true);
  if (t.empty()) return false;
  std::string clean;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == '_') {
      if (i == 0 || i + 1 >= t.size() || !isdigit(t[i - 1]) || !isdigit(t[i + 1])) return false;
      continue;
    }
    clean.push_back(t[i]);
  }
  char* end = nullptr;
  *out = std::strtod(clean.c_str(), &end);
  if (end != clean.c_str() + clean.size()) return false;
  // strtod accepts hex floats and "infinity"; Python accepts the latter only.
  return clean.find_first_of("xX") == std::string::npos;
}

bool ParsePyInt(const std::string& s, int64_t* out) {
  std::string t = PyStrip(s, Value(), true, true);
  size_t i = 0;
  bool neg = false;
  if (i < t.size() && (t[i] == '+' || t[i] == '-')) neg = t[i++] == '-';
  if (i >= t.size()) return false;
  int64_t r = 0;
  for (; i < t.size(); ++i) {
    if (t[i] == '_' && i + 1 < t.size() && isdigit(t[i + 1]) && isdigit(t[i - 1])) continue;
    if (!isdigit(t[i])) return false;
    if (__builtin_mul_overflow(r, 10, &r) || __builtin_add_overflow(r, t[i] - '0', &r)) return false;
  }
  *out = neg ? -r : r;
  return true;
}

StatusOr<Value> FInt(Interpreter&, const Value& v, CallArgs& a) {
  P p;
  KILN_RETURN_IF_ERROR(BindArgs("int", a, {"default", "base"}, &p));
  Value dflt = Given(p[0]) ? p[0] : Value::Int(0);
  if (v.IsUndefined()) return UndefinedErr(v);  // Undefined.__int__ raises
  if (v.IsInt() || v.IsBool()) return Value::Int(v.AsInt());
  if (v.IsFloat()) {
    double d = v.AsDouble();
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return dflt;
    return Value::Int(static_cast<int64_t>(d));
  }
  if (v.IsString()) {
    int64_t i;
    if (ParsePyInt(v.AsString(), &i)) return Value::Int(i);
    double d;
    if (ParsePyFloat(v.AsString(), &d) && std::isfinite(d) && std::fabs(d) < 9.2e18) {
      return Value::Int(static_cast<int64_t>(d));
    }
  }
  return dflt;
}

StatusOr<Value> FFloat(Interpreter&, const Value& v, CallArgs& a) {
  P p;
  KILN_RETURN_IF_ERROR(BindArgs("float", a, {"default"}, &p));
  Value dflt = Given(p[0]) ? p[0] : Value::Float(0.0);
  if (v.IsUndefined()) return UndefinedErr(v);  // Undefined.__float__ raises
  if (v.IsNumber()) return Value::Float(v.AsDouble());
  double d;
  if (v.IsString() && ParsePyFloat(v.AsString(), &d)) return Value::Float(d);
  return dflt;
}

StatusOr<Value> FAbs(Interpreter&, const Value& v, CallArgs&) {
  if (v.IsFloat()) return Value::Float(std::fabs(v.AsDouble()));
  if (v.IsInt() || v.IsBool()) {
    if (v.AsInt() == INT64_MIN) return InvalidArgument("OverflowError: abs overflow");
    return Value::Int(std::llabs(v.AsInt()));
  }
  return InvalidArgument("TypeError: bad operand type for abs(): '%s'", v.TypeName());
}

StatusOr<Value> FRound(Interpreter&, const Value& v, CallArgs& a) {
  P p;
  KILN_RETURN_IF_ERROR(BindArgs("round", a, {"precision", "method"}, &p));
  if (!v.IsNumber()) return InvalidArgument("TypeError: type %s doesn't define __round__", v.TypeName());
  int64_t prec = p[0].IsInt() ? p[0].AsInt() : 0;
  std::string method = Given(p[1]) ? p[1].Str() : "common";
  double x = v.AsDouble();
  if (method == "common") {
    if (v.IsInt() || v.IsBool()) {
      if (prec >= 0) return Value::Int(v.AsInt());
    }
    if (prec < 0 || prec > 300) return InvalidArgument("round precision %lld", static_cast<long long>(prec));
    // Correctly rounded (half-even on the exact binary value), as Python's round().
    char buf[400];
    std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(prec), x);
    return Value::Float(std::strtod(buf, nullptr));
  }
  if (method != "floor" && method != "ceil") {
    return InvalidArgument("method must be common, ceil or floor");
  }
  double scale = std::pow(10.0, static_cast<double>(prec));
  double r = method == "floor" ? std::floor(x * scale) : std::ceil(x * scale);
  return Value::Float(r / scale);
}

StatusOr<Value> FItems(Interpreter&, const Value& v, CallArgs&) {
  if (v.IsUndefined()) return Value::List({});
  if (!v.IsDict()) return InvalidArgument("TypeError: Can only get item pairs from a mapping.");
  ValueList out;
  for (const auto& [k, e] : v.AsDict().items()) out.push_back(Value::Tuple({k, e}));
  return Value::List(std::move(out));
}

StatusOr<Value> FDictSort(Interpreter&, const Value& v, CallArgs& a) {
  P p;
  KILN_RETURN_IF_ERROR(BindArgs("dictsort", a, {"case_sensitive", "by", "reverse"}, &p));
  if (!v.IsDict()) return InvalidArgument("TypeError: dictsort expects a mapping");
  bool by_value = Given(p[1]) && p[1].Str() == "value";
  if (Given(p[1]) && !by_value && p[1].Str() != "key") {
    return InvalidArgument("FilterArgumentError: You can only sort by either \"key\" or \"value\"");
  }
  std::vector<std::pair<Value, Value>> keyed;
  for (const auto& [k, e] : v.AsDict().items()) {
    keyed.emplace_back(SortKey(by_value ? e : k, p[0].Truthy()), Value::Tuple({k, e}));
  }
  KILN_RETURN_IF_ERROR(SortValues(&keyed, p[2].Truthy()));
  ValueList out;
  for (auto& [k, item] : keyed) out.push_back(std::move(item));
  return Value::List(std::move(out));
}

// Builds sort keys from `attribute` (comma-separated paths allowed), as make_multi_attrgetter.
StatusOr<Value> ItemKey(Interpreter& in, const Value& item, const Value& attribute, bool case_sensitive) {
  if (!Given(attribute) || attribute.IsNone()) return SortKey(item, case_sensitive);
  if (attribute.IsString() && attribute.AsString().find(',') != std::string::npos) {
    ValueList parts;
    KILN_ASSIGN_OR_RETURN(ValueList names, PySplit(attribute.AsString(), Value::String(","), -1));
    for (const Value& n : names) {
      KILN_ASSIGN_OR_RETURN(Value x, GetPath(in, item, n));
      parts.push_back(SortKey(x, case_sensitive));
    }
    return Value::List(std::move(parts));
  }
  KILN_ASSIGN_OR_RETURN(Value x, GetPath(in, item, attribute));
  return SortKey(x, case_sensitive);
}

StatusOr<Value> FSort(Interpreter& in, const Value& v, CallArgs& a) {
  P p;
  KILN_RETURN_IF_ERROR(BindArgs("sort", a, {"reverse", "case_sensitive", "attribute"}, &p));
  KILN_ASSIGN_OR_RETURN(ValueList items, Iterate(v));
  std::vector<std::pair<Value, Value>> keyed;
  for (const Value& item : items) {
    KILN_ASSIGN_OR_RETURN(Value k, ItemKey(in, item, p[2], p[1].Truthy()));
    keyed.emplace_back(std::move(k), item);
  }
  KILN_RETURN_IF_ERROR(SortValues(&keyed, p[0].Truthy()));
  ValueList out;
  for (auto& [k, item] : keyed) out.push_back(std::move(item));
  return Value::List(std::move(out));
}

StatusOr<Value> FUnique(Interpreter& in, const Value& v, CallArgs& a) {
  P p;
  KILN_RETURN_IF_ERROR(BindArgs("unique", a, {"case_sensitive", "attribute"}, &p));
  KILN_ASSIGN_OR_RETURN(ValueList items, Iterate(v));
  std::set<std::string> seen;
  ValueList out;
  for (const Value& item : items) {
    KILN_ASSIGN_OR_RETURN(Value k, ItemKey(in, item, p[1], p[0].Truthy()));
    if (k.IsList() || k.IsDict() || k.IsNamespace()) {
      return InvalidArgument("TypeError: unhashable type: '%s'", k.TypeName());
    }
    if (seen.insert(KeyString(k)).second) out.push_back(item);
  }
  return Value::List(std::move(out));
}

StatusOr<Value> MinMax(Interpreter& in, const Value& v, CallArgs& a, bool want_max) {
  P p;
  KILN_RETURN_IF_ERROR(BindArgs(want_max ? "max" : "min", a, {"case_sensitive", "attribute"}, &p));
  KILN_ASSIGN_OR_RETURN(ValueList items, Iterate(v));
  if (items.empty()) return Value::Undefined(want_max ? "No aggregated item, sequence was empty." : "No aggregated item, sequence was empty.");
  size_t best = 0;
  KILN_ASSIGN_OR_RETURN(Value best_key, ItemKey(in, items[0], p[1], p[0].Truthy()));
  for (size_t i = 1; i < items.size(); ++i) {
    KILN_ASSIGN_OR_RETURN(Value k, ItemKey(in, items[i], p[1], p[0].Truthy()));
    KILN_ASSIGN_OR_RETURN(bool better, want_max ? Less(best_key, k) : Less(k, best_key));
    if (better) {
      best = i;
      best_key = k;
    }
  }
  return items[best];
}
StatusOr<Value> FMin(Interpreter& in, const Value& v, CallArgs& a) { return MinMax(in, v, a, false); }
StatusOr<Value> FMax(Interpreter& in, const Value& v, CallArgs& a) { return MinMax(in, v, a, true); }

StatusOr<Value> FSum(Interpreter& in, const Value& v, CallArgs& a) {
  P p;
  KILN_RETURN_IF_ERROR(BindArgs("sum", a, {"attribute", "start"}, &p));
  KILN_ASSIGN_OR_RETURN(ValueList items, Iterate(v));
  Value total = Given(p[1]) ? p[1] : Value::Int(0);
  for (const Value& item : items) {
    Value x = item;
    if (Given(p[0])) {
      KILN_ASSIGN_OR_RETURN(x, GetPath(in, item, p[0]));
    }
    KILN_ASSIGN_OR_RETURN(total, BinaryOp(in, "+", total, x));
  }
  return total;
}

StatusOr<Value> FReverse(Interpreter&, const Value& v, CallArgs&) {
  if (v.IsString()) {
    std::u32string cps = DecodeUtf8(v.AsString());
    std::reverse(cps.begin(), cps.end());
    return Value::String(EncodeUtf8(cps));
  }
  KILN_ASSIGN_OR_RETURN(ValueList items, Iterate(v));
  std::reverse(items.begin(), items.end());
  return Value::List(std::move(items));
}

StatusOr<Value> FSafe(Interpreter&, const Value& v, CallArgs&) { return Value::String(SoftStr(v)); }

StatusOr<Value> FEscape(Interpreter&, const Value& v, CallArgs&) {
  std::string out;
  for (char c : SoftStr(v)) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return Value::String(std::move(out));
}

StatusOr<Value> FIndent(Interpreter& in, const Value& v, CallArgs& a) {
  P p;
  KILN_RETURN_IF_ERROR(BindArgs("indent", a, {"width", "first", "blank"}, &p));
  std::string ind;
  if (p[0].IsString()) ind = p[0].AsString();
  else ind = std::string(Given(p[0]) ? std::max<int64_t>(0, std::min<int64_t>(p[0].AsInt(), 4096)) : 4, ' ');
  // jinja2 appends "\n" to the value itself, so only strings are accepted.
  if (v.IsUndefined()) return UndefinedErr(v);
  if (!v.IsString()) {
    return InvalidArgument("TypeError: unsupported operand type(s) for +=: '%s' and 'str'", v.TypeName());
  }
  std::vector<std::string> lines = PySplitLines(v.AsString() + "\n");
  std::string rv;
  if (p[2].Truthy()) {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i) rv += "\n" + ind;
      rv += lines[i];
    }
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) rv += "\n" + (lines[i].empty() ? "" : ind) + lines[i];
  }
  if (p[1].Truthy()) rv = ind + rv;
  KILN_RETURN_IF_ERROR(in.CheckSize(rv.size()));
  return Value::String(std::move(rv));
}

StatusOr<Value> FWordCount(Interpreter&, const Value& v, CallArgs&) {
  int64_t n = 0;
  bool in_word = false;
  for (char32_t c : DecodeUtf8(SoftStr(v))) {
    bool w = IsPyWordChar(c);
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value::Int(n);
}

StatusOr<Value> FCenter(Interpreter& in, const Value& v, CallArgs& a) {
  P p;
  KILN_RETURN_IF_ERROR(BindArgs("center", a, {"width"}, &p));
  std::string s = SoftStr(v);
  int64_t width = p[0].IsInt() ? p[0].AsInt() : 80;
  KILN_RETURN_IF_ERROR(in.CheckSize(static_cast<size_t>(std::max<int64_t>(width, 0))));
  int64_t len = static_cast<int64_t>(Utf8Length(s));
  if (width <= len) return Value::String(s);
  int64_t marg = width - len;
  int64_t left = marg / 2 + (marg & width & 1);
  return Value::String(std::string(left, ' ') + s + std::string(marg - left, ' '));
}

StatusOr<Value> FBatch(Interpreter&, const Value& v, CallArgs& a) {
  P p;
  KILN_RETURN_IF_ERROR(BindArgs("batch", a, {"linecount", "fill_with"}, &p));
  if (!p[0].IsInt() || p[0].AsInt() <= 0) return InvalidArgument("batch: linecount must be a positive int");
  KILN_ASSIGN_OR_RETURN(ValueList items, Iterate(v));
  size_t n = static_cast<size_t>(p[0].AsInt());
  ValueList out, cur;
  for (const Value& item : items) {
    cur.push_back(item);
    if (cur.size() == n) {
      out.push_back(Value::List(std::move(cur)));
      cur.clear();
    }
  }
  if (!cur.empty()) {
    if (Given(p[1])) {
      while (cur.size() < n) cur.push_back(p[1]);
    }
    out.push_back(Value::List(std::move(cur)));
  }
  return Value::List(std::move(out));
}

StatusOr<Value> FToJson(Interpreter& in, const Value& v, CallArgs& a) {
  P p;
  KILN_RETURN_IF_ERROR(BindArgs("tojson", a, {"ensure_ascii", "indent", "separators", "sort_keys"}, &p));
  JsonDumpOptions o;
  o.ensure_ascii = p[0].Truthy();
  if (Given(p[1]) && !p[1].IsNone()) {
    o.has_indent = true;
    if (p[1].IsString()) {
      o.indent_str = p[1].AsString();
    } else if (p[1].IsInt()) {
      o.indent_str = std::string(std::clamp<int64_t>(p[1].AsInt(), 0, 4096), ' ');
    } else {
      return InvalidArgument("TypeError: tojson indent must be an int or a string");
    }
    o.item_sep = ",";
  }
  if (Given(p[2]) && !p[2].IsNone()) {
    if (!p[2].IsSequence() || p[2].AsList().size() != 2) {
      return InvalidArgument("ValueError: tojson separators must be a pair of strings");
    }
    o.item_sep = p[2].AsList()[0].Str();
    o.key_sep = p[2].AsList()[1].Str();
  }
  o.sort_keys = p[3].Truthy();
  KILN_ASSIGN_OR_RETURN(std::string s, JsonDumps(v, o));
  KILN_RETURN_IF_ERROR(in.CheckSize(s.size()));
  return Value::String(std::move(s));
}

// select / reject / selectattr / rejectattr.
StatusOr<Value> SelectImpl(Interpreter& in, const Value& v, CallArgs& a, bool want, bool by_attr) {
  if (!v.Truthy()) return Value::List({});  // jinja2: `if value:` before iterating
  KILN_ASSIGN_OR_RETURN(ValueList items, Iterate(v));
  size_t next = 0;
  Value attr;
  if (by_attr) {
    if (a.args.empty()) return InvalidArgument("TypeError: missing parameter for attribute name");
    attr = a.args[next++];
  }
  std::string test;
  if (next < a.args.size()) test = a.args[next++].Str();
  CallArgs test_args;
  test_args.args.assign(a.args.begin() + next, a.args.end());
  test_args.kwargs = a.kwargs;
  ValueList out;
  for (const Value& item : items) {
    Value x = item;
    if (by_attr) {
      KILN_ASSIGN_OR_RETURN(x, GetPath(in, item, attr));
    }
    bool ok;
    if (test.empty()) {
      ok = x.Truthy();
    } else {
      CallArgs copy = test_args;
      KILN_ASSIGN_OR_RETURN(ok, in.ApplyTest(test, x, copy));
    }
    if (ok == want) out.push_back(item);
  }
  return Value::List(std::move(out));
}
StatusOr<Value> FSelect(Interpreter& in, const Value& v, CallArgs& a) { return SelectImpl(in, v, a, true, false); }
StatusOr<Value> FReject(Interpreter& in, const Value& v, CallArgs& a) { return SelectImpl(in, v, a, false, false); }
StatusOr<Value> FSelectAttr(Interpreter& in, const Value& v, CallArgs& a) { return SelectImpl(in, v, a, true, true); }
StatusOr<Value> FRejectAttr(Interpreter& in, const Value& v, CallArgs& a) { return SelectImpl(in, v, a, false, true); }

StatusOr<Value> FMap(Interpreter& in, const Value& v, CallArgs& a) {
  if (!v.Truthy()) return Value::List({});  // jinja2: `if value:` before iterating
  KILN_ASSIGN_OR_RETURN(ValueList items, Iterate(v));
  Value attribute, dflt;
  for (const auto& [k, x] : a.kwargs) {
    if (k == "attribute") attribute = x;
    else if (k == "default") dflt = x;
  }
  ValueList out;
  if (Given(attribute)) {
    for (const Value& item : items) {
      KILN_ASSIGN_OR_RETURN(Value x, GetPath(in, item, attribute));
      if (x.IsUndefined() && Given(dflt)) x = dflt;
      out.push_back(std::move(x));
    }
    return Value::List(std::move(out));
  }
  if (a.args.empty()) return InvalidArgument("map requires a filter argument");
  std::string filter = a.args[0].Str();
  CallArgs rest;
  rest.args.assign(a.args.begin() + 1, a.args.end());
  rest.kwargs = a.kwargs;
  for (const Value& item : items) {
    CallArgs copy = rest;
    KILN_ASSIGN_OR_RETURN(Value x, in.ApplyFilter(filter, item, copy));
    out.push_back(std::move(x));
  }
  return Value::List(std::move(out));
}

StatusOr<Value> FAttr(Interpreter& in, const Value& v, CallArgs& a) {
  P p;
  KILN_RETURN_IF_ERROR(BindArgs("attr", a, {"name"}, &p));
  return in.GetAttr(v, p[0].Str());
}

StatusOr<Value> FFormat(Interpreter& in, const Value& v, CallArgs& a) {
  // printf-style with %s / %d / %% only.
  std::string f = SoftStr(v), out;
  size_t next = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] != '%') { out += f[i]; continue; }
    if (i + 1 >= f.size()) return InvalidArgument("ValueError: incomplete format");
    char c = f[++i];
    if (c == '%') { out += '%'; continue; }
    if (next >= a.args.size()) return InvalidArgument("TypeError: not enough arguments for format string");
    const Value& x = a.args[next++];
    if (c == 's') out += x.Str();
    else if (c == 'r') out += x.Repr();
    else if (c == 'd' || c == 'i') {
      if (!x.IsNumber()) return InvalidArgument("TypeError: %%d format: a real number is required");
      out += std::to_string(x.IsFloat() ? static_cast<int64_t>(x.AsDouble()) : x.AsInt());
    } else {
      return InvalidArgument("format conversion '%%%c' is not supported", c);
    }
    KILN_RETURN_IF_ERROR(in.CheckSize(out.size()));
  }
  if (next < a.args.size()) return InvalidArgument("TypeError: not all arguments converted during string formatting");
  return Value::String(std::move(out));
}

const std::map<std::string, FilterFn>& Filters() {
  static const auto* m = new std::map<std::string, FilterFn>{
      {"abs", FAbs}, {"attr", FAttr}, {"batch", FBatch}, {"capitalize", FCapitalize},
      {"center", FCenter}, {"count", FLength}, {"d", FDefault}, {"default", FDefault},
      {"dictsort", FDictSort}, {"e", FEscape}, {"escape", FEscape}, {"first", FFirst},
      {"float", FFloat}, {"forceescape", FEscape}, {"format", FFormat}, {"indent", FIndent},
      {"int", FInt}, {"items", FItems}, {"join", FJoin}, {"last", FLast}, {"length", FLength},
      {"list", FList}, {"lower", FLower}, {"map", FMap}, {"max", FMax}, {"min", FMin},
      {"reject", FReject}, {"rejectattr", FRejectAttr}, {"replace", FReplace},
      {"reverse", FReverse}, {"round", FRound}, {"safe", FSafe}, {"select", FSelect},
      {"selectattr", FSelectAttr}, {"sort", FSort}, {"string", FString}, {"sum", FSum},
      {"title", FTitle}, {"tojson", FToJson}, {"trim", FTrim}, {"unique", FUnique},
      {"upper", FUpper}, {"wordcount", FWordCount}};
  return *m;
}

// ── Tests ────────────────────────────────────────────────────────────────────────────────

StatusOr<bool> TestCompare(const std::string& op, const Value& a, const Value& b) {
  if (op == "eq") return Equals(a, b);
  if (op == "ne") return !Equals(a, b);
  if (a.IsUndefined()) return UndefinedErr(a);
  if (b.IsUndefined()) return UndefinedErr(b);
  if (op == "lt") return Less(a, b);
  if (op == "gt") return Less(b, a);
  KILN_ASSIGN_OR_RETURN(bool r, op == "le" ? Less(b, a) : Less(a, b));
  return !r;
}

StatusOr<int64_t> IntOperand(const Value& v) {
  if (v.IsUndefined()) return UndefinedErr(v);
  if (!v.IsInt() && !v.IsBool()) return InvalidArgument("TypeError: test expects an integer, got %s", v.TypeName());
  return v.AsInt();
}

}  // namespace

bool HasFilter(const std::string& name) { return Filters().count(name) != 0; }

StatusOr<Value> CallFilter(Interpreter& in, const std::string& name, const Value& input, CallArgs& args) {
  auto it = Filters().find(name);
  if (it == Filters().end()) return InvalidArgument("TemplateAssertionError: No filter named '%s'.", name.c_str());
  // Filters that stringify (trim, upper …) accept undefined as ""; the rest iterate it as empty.
  return it->second(in, input, args);
}

bool HasTest(const std::string& name) {
  static const std::set<std::string> kTests = {
      "defined", "undefined", "none", "string", "number", "integer", "float", "mapping",
      "iterable", "sequence", "boolean", "true", "false", "even", "odd", "divisibleby",
      "equalto", "eq", "==", "ne", "!=", "lt", "<", "lessthan", "le", "<=", "gt", ">",
      "greaterthan", "ge", ">=", "in", "lower", "upper", "callable", "sameas", "escaped",
      "filter", "test"};
  return kTests.count(name) != 0;
}

StatusOr<bool> CallTest(Interpreter& in, const std::string& name, const Value& v, CallArgs& args) {
  if (!HasTest(name)) return InvalidArgument("TemplateAssertionError: No test named '%s'.", name.c_str());
  P p;
  KILN_RETURN_IF_ERROR(BindArgs(name.c_str(), args, {"other"}, &p));
  const Value& o = p[0];
  if (name == "defined") return !v.IsUndefined();
  if (name == "undefined") return v.IsUndefined();
  if (name == "none") return v.IsNone();
  if (name == "string") return v.IsString();
  if (name == "number") return v.IsNumber();
  if (name == "integer") return v.IsInt();
  if (name == "float") return v.IsFloat();
  if (name == "boolean") return v.IsBool();
  if (name == "true") return v.IsBool() && v.AsBool();
  if (name == "false") return v.IsBool() && !v.AsBool();
  if (name == "mapping") return v.IsDict();
  if (name == "iterable") return v.IsString() || v.IsSequence() || v.IsDict() || v.IsUndefined();
  if (name == "sequence") return v.IsString() || v.IsSequence() || v.IsDict() || v.IsUndefined();
  if (name == "callable") return v.IsCallable() || v.IsUndefined();  // Undefined has __call__
  if (name == "escaped") return false;
  if (name == "lower" || name == "upper") {
    std::string s = SoftStr(v);
    bool any = false;
    for (char32_t c : DecodeUtf8(s)) {
      if (!IsCasedCp(c)) continue;
      any = true;
      if ((ToUpperCp(c) != c) != (name == "lower")) return false;
    }
    return any;
  }
  if (name == "filter") return HasFilter(SoftStr(v));
  if (name == "test") return HasTest(SoftStr(v));
  if (name == "even" || name == "odd") {
    if (v.IsFloat()) {  // value % 2 == 0 (even) / == 1 (odd), with Python's float modulo
      KILN_ASSIGN_OR_RETURN(Value m, BinaryOp(in, "%", v, Value::Int(2)));
      return m.AsDouble() == (name == "even" ? 0.0 : 1.0);
    }
    KILN_ASSIGN_OR_RETURN(int64_t i, IntOperand(v));
    return ((i % 2) == 0) == (name == "even");
  }
  if (name == "divisibleby") {
    if (v.IsFloat() || o.IsFloat()) {
      if (v.IsUndefined()) return UndefinedErr(v);
      if (o.IsUndefined()) return UndefinedErr(o);
      KILN_ASSIGN_OR_RETURN(Value m, BinaryOp(in, "%", v, o));
      return m.AsDouble() == 0;
    }
    KILN_ASSIGN_OR_RETURN(int64_t a, IntOperand(v));
    KILN_ASSIGN_OR_RETURN(int64_t b, IntOperand(o));
    if (b == 0) return InvalidArgument("ZeroDivisionError: integer division or modulo by zero");
    if (b == -1) return true;
    return a % b == 0;
  }
  if (name == "in") return Contains(o, v);
  if (name == "sameas") {
    if (v.kind() != o.kind()) return false;
    if (v.Identity() != nullptr) return v.Identity() == o.Identity();
    return Equals(v, o);
  }
  static const std::map<std::string, std::string> kCmp = {
      {"equalto", "eq"}, {"eq", "eq"}, {"==", "eq"}, {"ne", "ne"}, {"!=", "ne"},
      {"lt", "lt"}, {"<", "lt"}, {"lessthan", "lt"}, {"le", "le"}, {"<=", "le"},
      {"gt", "gt"}, {">", "gt"}, {"greaterthan", "gt"}, {"ge", "ge"}, {">=", "ge"}};
  return TestCompare(kCmp.at(name), v, o);
}

}  // namespace kiln::jinja
