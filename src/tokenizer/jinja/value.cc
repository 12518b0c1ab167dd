#include "tokenizer/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "tokenizer/jinja/utf8.h"

namespace kiln::jinja {

// ── Dict ─────────────────────────────────────────────────────────────────────────────────

const Value* Dict::Find(const Value& key) const {
  auto it = index_.find(KeyString(key));
  return it == index_.end() ? nullptr : &items_[it->second].second;
}

void Dict::Set(const Value& key, Value value) {
  std::string k = KeyString(key);
  auto it = index_.find(k);
  if (it != index_.end()) {
    items_[it->second].second = std::move(value);
    return;
  }
  index_.emplace(std::move(k), items_.size());
  items_.emplace_back(key, std::move(value));
}

// ── Construction ─────────────────────────────────────────────────────────────────────────

Value Value::String(std::string s) {
  Value v;
  v.kind_ = Kind::kString;
  v.s_ = std::make_shared<const std::string>(std::move(s));
  return v;
}

Value Value::List(ValueList items) {
  Value v;
  v.kind_ = Kind::kList;
  v.list_ = std::make_shared<ValueList>(std::move(items));
  return v;
}

Value Value::Tuple(ValueList items) {
  Value v = List(std::move(items));
  v.kind_ = Kind::kTuple;
  return v;
}

Value Value::MakeDict(std::shared_ptr<Dict> d) {
  Value v;
  v.kind_ = Kind::kDict;
  v.dict_ = d ? std::move(d) : std::make_shared<Dict>();
  return v;
}

Value Value::Namespace(std::shared_ptr<Dict> d) {
  Value v = MakeDict(std::move(d));
  v.kind_ = Kind::kNamespace;
  return v;
}

Value Value::Callable(std::string name, NativeFn fn) {
  Value v;
  v.kind_ = Kind::kCallable;
  v.s_ = std::make_shared<const std::string>(std::move(name));
  v.fn_ = std::make_shared<NativeFn>(std::move(fn));
  return v;
}

Value Value::Undefined(std::string hint, bool security) {
  Value v;
  v.s_ = std::make_shared<const std::string>(std::move(hint));
  v.i_ = security ? 1 : 0;
  return v;
}

const std::string& Value::EmptyString() {
  static const std::string* empty = new std::string();
  return *empty;
}

Value Value::FromJson(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return None();
    case nlohmann::ordered_json::value_t::boolean: return Bool(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Int(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Float(static_cast<double>(u));
      return Int(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Float(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return String(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      ValueList items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(FromJson(e));
      return List(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      auto d = std::make_shared<Dict>();
      for (const auto& [k, e] : j.items()) d->Set(String(k), FromJson(e));
      return MakeDict(std::move(d));
    }
    default: return None();  // binary / discarded: not produced by JSON text
  }
}

const void* Value::Identity() const {
  if (list_) return list_.get();
  if (dict_) return dict_.get();
  if (fn_) return fn_.get();
  return nullptr;
}

// ── Python protocol ──────────────────────────────────────────────────────────────────────

bool Value::Truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool:
    case Kind::kInt: return i_ != 0;
    case Kind::kFloat: return d_ != 0.0;
    case Kind::kString: return !s_->empty();
    case Kind::kList:
    case Kind::kTuple: return !list_->empty();
    case Kind::kDict: return dict_->size() != 0;
    case Kind::kNamespace:
    case Kind::kCallable: return true;
  }
  return false;
}

const char* Value::TypeName() const {
  switch (kind_) {
    case Kind::kUndefined: return "Undefined";
    case Kind::kNone: return "NoneType";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kList: return "list";
    case Kind::kTuple: return "tuple";
    case Kind::kDict: return "dict";
    case Kind::kNamespace: return "Namespace";
    case Kind::kCallable: return "function";
  }
  return "object";
}

std::string FormatPyFloat(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  // Shortest round-trip digits, then Python's repr layout (float_repr_style 'short').
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), d, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  bool neg = sci[0] == '-';
  if (neg) sci.erase(0, 1);
  size_t e_pos = sci.find('e');
  std::string mant = sci.substr(0, e_pos);
  int exp10 = std::stoi(sci.substr(e_pos + 1));
  std::string digits;
  for (char c : mant) {
    if (c != '.') digits.push_back(c);
  }
  int decpt = exp10 + 1;
  std::string out = neg ? "-" : "";
  if (decpt <= -4 || decpt > 16) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char e[16];
    std::snprintf(e, sizeof(e), "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
    out += e;
  } else if (decpt <= 0) {
    out += "0." + std::string(-decpt, '0') + digits;
  } else if (static_cast<size_t>(decpt) >= digits.size()) {
    out += digits + std::string(decpt - digits.size(), '0') + ".0";
  } else {
    out += digits.substr(0, decpt) + "." + digits.substr(decpt);
  }
  return out;
}

static bool IsPyPrintable(uint32_t cp) {
  if (cp < 0x20 || cp == 0x7F) return false;
  if (cp >= 0x80 && cp < 0xA0) return false;
  if (cp == 0xAD) return false;
  if (cp >= 0xD800 && cp < 0xE000) return false;
  if (cp == 0xFFFE || cp == 0xFFFF) return false;
  if (cp >= 0xE000 && cp < 0xF900) return false;  // private use
  if (cp >= 0x2028 && cp <= 0x202E) return false;
  if (cp >= 0x200B && cp <= 0x200F) return false;
  if (cp >= 0x2060 && cp <= 0x206F) return false;
  if (cp == 0xFEFF) return false;
  if (IsPySpace(cp) && cp != ' ') return false;
  return true;
}

std::string PyStrRepr(const std::string& s) {
  bool has_single = s.find('\'') != std::string::npos;
  bool has_double = s.find('"') != std::string::npos;
  char quote = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, quote);
  for (uint32_t cp : DecodeUtf8(s)) {
    if (cp == static_cast<uint32_t>(quote) || cp == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(cp));
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (!IsPyPrintable(cp)) {
      char buf[16];
      if (cp < 0x100) std::snprintf(buf, sizeof(buf), "\\x%02x", cp);
      else if (cp < 0x10000) std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
      else std::snprintf(buf, sizeof(buf), "\\U%08x", cp);
      out += buf;
    } else {
      AppendUtf8(cp, &out);
    }
  }
  out.push_back(quote);
  return out;
}

std::string Value::Repr() const {
  switch (kind_) {
    case Kind::kString: return PyStrRepr(*s_);
    case Kind::kUndefined: return "Undefined";
    case Kind::kList:
    case Kind::kTuple: {
      std::string out = kind_ == Kind::kList ? "[" : "(";
      for (size_t i = 0; i < list_->size(); ++i) {
        if (i) out += ", ";
        out += (*list_)[i].Repr();
      }
      if (kind_ == Kind::kTuple && list_->size() == 1) out += ",";
      out += kind_ == Kind::kList ? "]" : ")";
      return out;
    }
    case Kind::kDict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, v] : dict_->items()) {
        if (!first) out += ", ";
        first = false;
        out += k.Repr() + ": " + v.Repr();
      }
      return out + "}";
    }
    case Kind::kNamespace: {
      std::string out = "<Namespace {";
      bool first = true;
      for (const auto& [k, v] : dict_->items()) {
        if (!first) out += ", ";
        first = false;
        out += k.Repr() + ": " + v.Repr();
      }
      return out + "}>";
    }
    default: return Str();
  }
}

std::string Value::Str() const {
  switch (kind_) {
    case Kind::kUndefined: return "";
    case Kind::kNone: return "None";
    case Kind::kBool: return i_ ? "True" : "False";
    case Kind::kInt: return std::to_string(i_);
    case Kind::kFloat: return FormatPyFloat(d_);
    case Kind::kString: return *s_;
    case Kind::kCallable: return "<function " + *s_ + ">";
    default: return Repr();
  }
}

// ── Comparison ───────────────────────────────────────────────────────────────────────────

bool Equals(const Value& a, const Value& b) {
  if (a.IsNumber() && b.IsNumber()) {
    if (a.IsFloat() || b.IsFloat()) return a.AsDouble() == b.AsDouble();
    return a.AsInt() == b.AsInt();
  }
  if (a.IsSequence() && b.IsSequence()) {
    if (a.kind() != b.kind()) return false;
    const ValueList& x = a.AsList();
    const ValueList& y = b.AsList();
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i) {
      if (!Equals(x[i], y[i])) return false;
    }
    return true;
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: return true;
    case Value::Kind::kString: return a.AsString() == b.AsString();
    case Value::Kind::kDict: {
      if (a.AsDict().size() != b.AsDict().size()) return false;
      for (const auto& [k, v] : a.AsDict().items()) {
        const Value* o = b.AsDict().Find(k);
        if (!o || !Equals(v, *o)) return false;
      }
      return true;
    }
    default: return a.Identity() == b.Identity();
  }
}

StatusOr<bool> Less(const Value& a, const Value& b) {
  if (a.IsNumber() && b.IsNumber()) {
    if (a.IsFloat() || b.IsFloat()) return a.AsDouble() < b.AsDouble();
    return a.AsInt() < b.AsInt();
  }
  if (a.IsString() && b.IsString()) return a.AsString() < b.AsString();  // UTF-8 order = code point order
  if (a.IsSequence() && b.IsSequence() && a.kind() == b.kind()) {
    const ValueList& x = a.AsList();
    const ValueList& y = b.AsList();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (Equals(x[i], y[i])) continue;
      return Less(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  return InvalidArgument("'<' not supported between instances of '%s' and '%s'", a.TypeName(),
                         b.TypeName());
}

std::string KeyString(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kNone: return "N";
    case Value::Kind::kBool:
    case Value::Kind::kInt: return "n" + std::to_string(v.AsInt());
    case Value::Kind::kFloat: {
      double d = v.AsDouble();
      if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.2e18) {
        return "n" + std::to_string(static_cast<int64_t>(d));
      }
      return "f" + FormatPyFloat(d);
    }
    case Value::Kind::kString: return "s" + v.AsString();
    case Value::Kind::kTuple:
    case Value::Kind::kList: {
      std::string out = "t(";
      for (const Value& e : v.AsList()) out += KeyString(e) + "\x1f";
      return out + ")";
    }
    default: {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "p%p", v.Identity());
      return buf;
    }
  }
}

// ── json.dumps ───────────────────────────────────────────────────────────────────────────

static void JsonString(const std::string& s, bool ensure_ascii, std::string* out) {
  out->push_back('"');
  for (uint32_t cp : DecodeUtf8(s)) {
    switch (cp) {
      case '"': *out += "\\\""; continue;
      case '\\': *out += "\\\\"; continue;
      case '\n': *out += "\\n"; continue;
      case '\r': *out += "\\r"; continue;
      case '\t': *out += "\\t"; continue;
      case '\b': *out += "\\b"; continue;
      case '\f': *out += "\\f"; continue;
      default: break;
    }
    char buf[16];
    if (cp < 0x20 || (ensure_ascii && cp > 0x7E)) {
      if (cp >= 0x10000) {
        uint32_t v = cp - 0x10000;
        std::snprintf(buf, sizeof(buf), "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
      } else {
        std::snprintf(buf, sizeof(buf), "\\u%04x", cp);
      }
      *out += buf;
    } else {
      AppendUtf8(cp, out);
    }
  }
  out->push_back('"');
}

static std::string JsonFloat(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return FormatPyFloat(d);
}

static Status JsonDumpsRec(const Value& v, const JsonDumpOptions& o, int level, std::string* out) {
  if (level > 512) return InvalidArgument("tojson: nesting too deep");
  auto newline = [&](int lvl) {
    if (!o.has_indent) return;
    out->push_back('\n');
    for (int i = 0; i < lvl; ++i) *out += o.indent_str;
  };
  switch (v.kind()) {
    case Value::Kind::kNone: *out += "null"; return Status::Ok();
    case Value::Kind::kBool: *out += v.AsBool() ? "true" : "false"; return Status::Ok();
    case Value::Kind::kInt: *out += std::to_string(v.AsInt()); return Status::Ok();
    case Value::Kind::kFloat: *out += JsonFloat(v.AsDouble()); return Status::Ok();
    case Value::Kind::kString: JsonString(v.AsString(), o.ensure_ascii, out); return Status::Ok();
    case Value::Kind::kList:
    case Value::Kind::kTuple: {
      const ValueList& items = v.AsList();
      if (items.empty()) { *out += "[]"; return Status::Ok(); }
      out->push_back('[');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) *out += o.item_sep;
        newline(level + 1);
        KILN_RETURN_IF_ERROR(JsonDumpsRec(items[i], o, level + 1, out));
      }
      newline(level);
      out->push_back(']');
      return Status::Ok();
    }
    case Value::Kind::kDict: {
      std::vector<std::pair<std::string, const Value*>> entries;
      for (const auto& [k, e] : v.AsDict().items()) {
        std::string key;
        switch (k.kind()) {
          case Value::Kind::kString: key = k.AsString(); break;
          case Value::Kind::kNone: key = "null"; break;
          case Value::Kind::kBool: key = k.AsBool() ? "true" : "false"; break;
          case Value::Kind::kInt: key = std::to_string(k.AsInt()); break;
          case Value::Kind::kFloat: key = JsonFloat(k.AsDouble()); break;
          default:
            return InvalidArgument("tojson: keys must be str, int, float, bool or None, not %s",
                                   k.TypeName());
        }
        entries.emplace_back(std::move(key), &e);
      }
      if (o.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
      }
      if (entries.empty()) { *out += "{}"; return Status::Ok(); }
      out->push_back('{');
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i) *out += o.item_sep;
        newline(level + 1);
        JsonString(entries[i].first, o.ensure_ascii, out);
        *out += o.key_sep;
        KILN_RETURN_IF_ERROR(JsonDumpsRec(*entries[i].second, o, level + 1, out));
      }
      newline(level);
      out->push_back('}');
      return Status::Ok();
    }
    default:
      return InvalidArgument("Object of type %s is not JSON serializable", v.TypeName());
  }
}

StatusOr<std::string> JsonDumps(const Value& v, const JsonDumpOptions& options) {
  std::string out;
  KILN_RETURN_IF_ERROR(JsonDumpsRec(v, options, 0, &out));
  return out;
}

}  // namespace kiln::jinja
