// Helpers shared by the builtin files (operators.cc, methods.cc, filters.cc).
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

#include "tokenizer/jinja/interpreter.h"

namespace kiln::jinja {

// Binds positional and keyword arguments to `names`; absent parameters stay undefined.
// Fails on too many positional arguments or unknown keywords, as Python would.
Status BindArgs(const char* fn, const CallArgs& args, std::initializer_list<const char*> names,
                std::vector<Value>* out);

// Python's str(x) for values reaching string filters (undefined → "").
inline std::string SoftStr(const Value& v) { return v.Str(); }

// Python str.strip family on code points; chars == nullptr strips whitespace.
std::string PyStrip(const std::string& s, const Value& chars, bool left, bool right);
// Python str.split(sep=None, maxsplit=-1).
StatusOr<ValueList> PySplit(const std::string& s, const Value& sep, int64_t maxsplit);
// Python str.splitlines() (without keepends).
std::vector<std::string> PySplitLines(const std::string& s);
std::string PyUpper(const std::string& s);
std::string PyLower(const std::string& s);
std::string PyCapitalize(const std::string& s);
std::string PyTitle(const std::string& s);  // str.title()
// Python str.replace(old, new, count=-1), code-point exact.
std::string PyReplace(const std::string& s, const std::string& old, const std::string& repl, int64_t count);
Status UndefinedErr(const Value& v);

}  // namespace kiln::jinja
