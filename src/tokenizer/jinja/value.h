// Value: the dynamic type of the Jinja interpreter, with Python semantics (truthiness, str(),
// repr(), ==, ordering) because chat templates are written against jinja2 running in CPython
// and their output must match it byte for byte.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace kiln::jinja {

class Value;
class Interpreter;

using ValueList = std::vector<Value>;

// Positional and keyword arguments of a call.
struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
};

// A callable: builtin function, bound method, macro, loop.cycle. Gets the interpreter for
// limits and for calling back into templates (macros).
using NativeFn = std::function<StatusOr<Value>(Interpreter&, CallArgs&)>;

// Insertion-ordered dict with Python key equality (1 == 1.0 == True).
class Dict {
 public:
  const Value* Find(const Value& key) const;
  void Set(const Value& key, Value value);
  size_t size() const;  // defined below Value: clang instantiates vector::size eagerly
  const std::vector<std::pair<Value, Value>>& items() const { return items_; }

 private:
  std::vector<std::pair<Value, Value>> items_;
  std::map<std::string, size_t> index_;  // KeyString(key) → position in items_
};

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kTuple, kDict,
                    kNamespace, kCallable };

  Value() = default;  // undefined
  static Value None() { Value v; v.kind_ = Kind::kNone; return v; }
  static Value Bool(bool b) { Value v; v.kind_ = Kind::kBool; v.i_ = b; return v; }
  static Value Int(int64_t i) { Value v; v.kind_ = Kind::kInt; v.i_ = i; return v; }
  static Value Float(double d) { Value v; v.kind_ = Kind::kFloat; v.d_ = d; return v; }
  static Value String(std::string s);
  static Value List(ValueList items);
  static Value Tuple(ValueList items);
  static Value MakeDict(std::shared_ptr<Dict> d = nullptr);
  static Value Namespace(std::shared_ptr<Dict> d = nullptr);
  static Value Callable(std::string name, NativeFn fn);
  // An undefined that remembers why (its name, or a sandbox refusal); `security` undefineds
  // fail when called, like jinja2's unsafe_undefined.
  static Value Undefined(std::string hint, bool security = false);

  static Value FromJson(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool IsUndefined() const { return kind_ == Kind::kUndefined; }
  bool IsNone() const { return kind_ == Kind::kNone; }
  bool IsBool() const { return kind_ == Kind::kBool; }
  bool IsInt() const { return kind_ == Kind::kInt; }
  bool IsFloat() const { return kind_ == Kind::kFloat; }
  bool IsNumber() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool; }
  bool IsString() const { return kind_ == Kind::kString; }
  bool IsList() const { return kind_ == Kind::kList; }
  bool IsTuple() const { return kind_ == Kind::kTuple; }
  bool IsSequence() const { return kind_ == Kind::kList || kind_ == Kind::kTuple; }
  bool IsDict() const { return kind_ == Kind::kDict; }
  bool IsNamespace() const { return kind_ == Kind::kNamespace; }
  bool IsCallable() const { return kind_ == Kind::kCallable; }

  bool AsBool() const { return i_ != 0; }
  int64_t AsInt() const { return i_; }          // kInt or kBool
  double AsDouble() const { return kind_ == Kind::kFloat ? d_ : static_cast<double>(i_); }
  const std::string& AsString() const { return *s_; }
  const ValueList& AsList() const { return *list_; }   // kList or kTuple
  const Dict& AsDict() const { return *dict_; }        // kDict or kNamespace
  Dict& MutableDict() const { return *dict_; }
  const std::shared_ptr<Dict>& DictPtr() const { return dict_; }
  const NativeFn& Fn() const { return *fn_; }
  const std::string& CallableName() const { return *s_; }
  const std::string& UndefinedHint() const { return s_ ? *s_ : EmptyString(); }
  bool IsSecurityUndefined() const { return kind_ == Kind::kUndefined && i_ == 1; }
  // Identity for `is sameas` on containers.
  const void* Identity() const;

  // Python bool(x).
  bool Truthy() const;
  // Python str(x) as jinja2 prints it ({{ x }}): undefined → "".
  std::string Str() const;
  // Python repr(x).
  std::string Repr() const;
  // Python type name, for error messages ("str", "dict", "int", …).
  const char* TypeName() const;

 private:
  static const std::string& EmptyString();

  Kind kind_ = Kind::kUndefined;
  int64_t i_ = 0;
  double d_ = 0;
  std::shared_ptr<const std::string> s_;
  std::shared_ptr<ValueList> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<NativeFn> fn_;
};

inline size_t Dict::size() const { return items_.size(); }

// Python ==.
bool Equals(const Value& a, const Value& b);
// Python <, or an error for unorderable types.
StatusOr<bool> Less(const Value& a, const Value& b);
// Canonical string with Python hash/eq semantics for dict keys and unique().
std::string KeyString(const Value& v);

// Python float repr ("1.0", "1e+20", "0.1", "inf").
std::string FormatPyFloat(double d);
// Python repr of a str.
std::string PyStrRepr(const std::string& s);

// json.dumps(x, ensure_ascii, indent, separators, sort_keys) as transformers' tojson filter.
struct JsonDumpOptions {
  bool ensure_ascii = false;
  int indent = -1;  // -1: None
  std::string indent_str;  // used when indent was given as a string
  bool has_indent = false;
  std::string item_sep = ", ";
  std::string key_sep = ": ";
  bool sort_keys = false;
};
StatusOr<std::string> JsonDumps(const Value& v, const JsonDumpOptions& options);

}  // namespace kiln::jinja
