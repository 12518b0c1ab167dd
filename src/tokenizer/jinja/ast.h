// AST of the Jinja subset: one generic node type per layer (expressions, statements). Built by
// Parse() once and shared read-only by every render.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja/value.h"

namespace kiln::jinja {

enum class ExprKind {
  kConst,     // value
  kName,      // name
  kList,      // children = items
  kTuple,     // children = items
  kDict,      // children = key0, value0, key1, value1, …
  kGetAttr,   // children[0].name
  kGetItem,   // children[0][children[1]]
  kSlice,     // children[0][c1:c2:c3], absent parts are nullptr
  kCall,      // children[0](children[1..], kwargs)
  kFilter,    // children[0] | name(children[1..], kwargs); children[0] null in filter blocks
  kTest,      // children[0] is [not] name(children[1..], kwargs); negated
  kNeg,       // -children[0]
  kPos,       // +children[0]
  kNot,       // not children[0]
  kBinary,    // children[0] op children[1]; op in + - * / // % ** ~
  kAnd,
  kOr,
  kCompare,   // children[0] ops[0] children[1] ops[1] children[2] …
  kCond,      // children[1] if children[0] else children[2] (children[2] may be null)
};

struct Expr {
  ExprKind kind;
  int line = 0, col = 0;
  Value value;
  std::string name;  // name, attribute, filter/test name, or binary operator
  bool negated = false;
  std::vector<std::unique_ptr<Expr>> children;
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> kwargs;
  std::vector<std::string> ops;  // kCompare: "==", "!=", "<", "<=", ">", ">=", "in", "notin"
};
using ExprPtr = std::unique_ptr<Expr>;

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class StmtKind {
  kText,         // text
  kOutput,       // {{ expr }}
  kIf,           // branches (condition null for else)
  kFor,          // for target in iter [if filter] body [else else_body]
  kSet,          // set target = expr
  kSetBlock,     // set target [| filters] body endset; expr = filter chain or null
  kMacro,        // macro name(params) body
  kCallBlock,    // call(params) expr body
  kFilterBlock,  // filter expr body
  kBreak,
  kContinue,
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // null: required
};

struct Stmt {
  StmtKind kind;
  int line = 0, col = 0;
  std::string text;  // kText data; kMacro name
  ExprPtr expr;      // output / set value / call expr / filter chain
  ExprPtr target;    // for / set target: Name, Tuple of Names, or GetAttr(Name) for namespaces
  ExprPtr iter, filter;
  bool recursive = false;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body, else_body;
  std::vector<MacroParam> params;
};

// Limits applied while parsing untrusted template source.
constexpr int kMaxParseDepth = 200;

// Parses a template with transformers' environment settings (trim_blocks, lstrip_blocks,
// loopcontrols, generation blocks). Errors are InvalidArgument with "line L, column C".
StatusOr<std::shared_ptr<const Body>> ParseTemplate(const std::string& source);

}  // namespace kiln::jinja
