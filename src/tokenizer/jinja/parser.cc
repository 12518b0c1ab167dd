// Recursive-descent parser following jinja2's grammar (parser.py): operator precedence,
// postfix/filter/test chaining and statement tags, limited to what chat templates use.
#include <cerrno>
#include <cstdlib>
#include <set>

#include "tokenizer/jinja/ast.h"
#include "tokenizer/jinja/interpreter.h"
#include "tokenizer/jinja/lexer.h"

namespace kiln::jinja {
namespace {

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  StatusOr<std::shared_ptr<const Body>> Run() {
    auto body = std::make_shared<Body>();
    std::string end;
    KILN_RETURN_IF_ERROR(ParseBody({}, body.get(), &end));
    return std::shared_ptr<const Body>(std::move(body));
  }

 private:
  // ── Token helpers ──
  const Token& Cur() const { return toks_[pos_]; }
  const Token& Peek(size_t n = 1) const {
    return toks_[std::min(pos_ + n, toks_.size() - 1)];
  }
  void Advance() {
    if (pos_ + 1 < toks_.size()) ++pos_;
  }
  bool IsOp(const char* op) const { return Cur().kind == TokKind::kOp && Cur().text == op; }
  bool IsName(const char* name) const { return Cur().kind == TokKind::kName && Cur().text == name; }
  Status Error(const Token& t, const std::string& msg) const {
    return InvalidArgument("template syntax error at line %d, column %d: %s", t.line, t.col,
                           msg.c_str());
  }
  Status Error(const Expr& e, const std::string& msg) const {
    return InvalidArgument("template syntax error at line %d, column %d: %s", e.line, e.col,
                           msg.c_str());
  }
  static std::string Describe(const Token& t) {
    switch (t.kind) {
      case TokKind::kEof: return "end of template";
      case TokKind::kVarEnd: return "'}}'";
      case TokKind::kBlockEnd: return "'%}'";
      case TokKind::kData: return "template data";
      case TokKind::kString: return "string";
      default: return "'" + t.text + "'";
    }
  }
  Status Expect(const char* op) {
    if (!IsOp(op)) return Error(Cur(), std::string("expected '") + op + "', got " + Describe(Cur()));
    Advance();
    return Status::Ok();
  }
  Status ExpectBlockEnd() {
    if (Cur().kind != TokKind::kBlockEnd) {
      return Error(Cur(), "expected end of statement block, got " + Describe(Cur()));
    }
    Advance();
    return Status::Ok();
  }
  StatusOr<std::string> ExpectName() {
    if (Cur().kind != TokKind::kName) return Error(Cur(), "expected a name, got " + Describe(Cur()));
    std::string n = Cur().text;
    Advance();
    return n;
  }
  ExprPtr Node(ExprKind kind, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->col = at.col;
    return e;
  }

  // ── Statements ──
  // Parses until a block tag named in `ends` (its name consumed, `*end` set) or end of input.
  Status ParseBody(const std::set<std::string>& ends, Body* out, std::string* end) {
    if (++depth_ > kMaxParseDepth) return Error(Cur(), "template nested too deeply");
    while (true) {
      const Token& t = Cur();
      if (t.kind == TokKind::kEof) {
        if (!ends.empty()) {
          return Error(t, "unexpected end of template, expected '" + *ends.begin() + "'");
        }
        break;
      }
      if (t.kind == TokKind::kData) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kText;
        s->text = t.text;
        out->push_back(std::move(s));
        Advance();
      } else if (t.kind == TokKind::kVarBegin) {
        Advance();
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kOutput;
        s->line = t.line;
        s->col = t.col;
        KILN_ASSIGN_OR_RETURN(s->expr, ParseTuple(true, {}));
        if (Cur().kind != TokKind::kVarEnd) {
          return Error(Cur(), "expected end of print statement, got " + Describe(Cur()));
        }
        Advance();
        out->push_back(std::move(s));
      } else if (t.kind == TokKind::kBlockBegin) {
        const Token& name = Peek();
        if (name.kind == TokKind::kName && ends.count(name.text)) {
          *end = name.text;
          Advance();
          Advance();
          break;
        }
        Advance();
        KILN_RETURN_IF_ERROR(ParseStatement(out));
      } else {
        return Error(t, "unexpected " + Describe(t));
      }
    }
    --depth_;
    return Status::Ok();
  }

  Status ParseStatement(Body* out) {
    const Token t = Cur();
    if (t.kind != TokKind::kName) return Error(t, "tag name expected");
    const std::string& n = t.text;
    auto s = std::make_unique<Stmt>();
    s->line = t.line;
    s->col = t.col;
    Advance();
    if (n == "if") {
      KILN_RETURN_IF_ERROR(ParseIf(s.get()));
    } else if (n == "for") {
      KILN_RETURN_IF_ERROR(ParseFor(s.get()));
    } else if (n == "set") {
      KILN_RETURN_IF_ERROR(ParseSet(s.get()));
    } else if (n == "macro") {
      KILN_RETURN_IF_ERROR(ParseMacro(s.get()));
    } else if (n == "call") {
      KILN_RETURN_IF_ERROR(ParseCallBlock(s.get()));
    } else if (n == "filter") {
      s->kind = StmtKind::kFilterBlock;
      KILN_ASSIGN_OR_RETURN(s->expr, ParseFilterChain(nullptr, true));
      KILN_RETURN_IF_ERROR(ExpectBlockEnd());
      std::string end;
      KILN_RETURN_IF_ERROR(ParseBody({"endfilter"}, &s->body, &end));
      KILN_RETURN_IF_ERROR(ExpectBlockEnd());
    } else if (n == "break" || n == "continue") {
      if (loop_depth_ == 0) return Error(t, "'" + n + "' outside of a loop");
      s->kind = n == "break" ? StmtKind::kBreak : StmtKind::kContinue;
      KILN_RETURN_IF_ERROR(ExpectBlockEnd());
    } else if (n == "generation") {
      // transformers' AssistantTracker: renders its body unchanged.
      KILN_RETURN_IF_ERROR(ExpectBlockEnd());
      std::string end;
      KILN_RETURN_IF_ERROR(ParseBody({"endgeneration"}, out, &end));
      return ExpectBlockEnd();
    } else {
      return Error(t, "encountered unknown or unsupported tag '" + n + "'");
    }
    out->push_back(std::move(s));
    return Status::Ok();
  }

  Status ParseIf(Stmt* s) {
    s->kind = StmtKind::kIf;
    while (true) {
      KILN_ASSIGN_OR_RETURN(ExprPtr cond, ParseTuple(false, {}, /*with_condexpr=*/false));
      KILN_RETURN_IF_ERROR(ExpectBlockEnd());
      Body body;
      std::string end;
      KILN_RETURN_IF_ERROR(ParseBody({"elif", "else", "endif"}, &body, &end));
      s->branches.emplace_back(std::move(cond), std::move(body));
      if (end == "elif") continue;
      if (end == "else") {
        KILN_RETURN_IF_ERROR(ExpectBlockEnd());
        Body else_body;
        KILN_RETURN_IF_ERROR(ParseBody({"endif"}, &else_body, &end));
        s->branches.emplace_back(nullptr, std::move(else_body));
      }
      return ExpectBlockEnd();
    }
  }

  Status ParseFor(Stmt* s) {
    s->kind = StmtKind::kFor;
    KILN_ASSIGN_OR_RETURN(s->target, ParseAssignTarget(false, true));
    if (!IsName("in")) return Error(Cur(), "expected 'in', got " + Describe(Cur()));
    Advance();
    KILN_ASSIGN_OR_RETURN(s->iter, ParseTuple(false, {"recursive"}, /*with_condexpr=*/false));
    if (IsName("if")) {
      Advance();
      KILN_ASSIGN_OR_RETURN(s->filter, ParseExpression());
    }
    if (IsName("recursive")) return Error(Cur(), "recursive for loops are not supported");
    KILN_RETURN_IF_ERROR(ExpectBlockEnd());
    ++loop_depth_;
    std::string end;
    KILN_RETURN_IF_ERROR(ParseBody({"endfor", "else"}, &s->body, &end));
    --loop_depth_;
    if (end == "else") {
      KILN_RETURN_IF_ERROR(ExpectBlockEnd());
      int saved = loop_depth_;
      loop_depth_ = 0;  // jinja2: break/continue are not allowed in a for-else body
      KILN_RETURN_IF_ERROR(ParseBody({"endfor"}, &s->else_body, &end));
      loop_depth_ = saved;
    }
    return ExpectBlockEnd();
  }

  Status ParseSet(Stmt* s) {
    KILN_ASSIGN_OR_RETURN(s->target, ParseAssignTarget(true, false));
    if (IsOp("=")) {
      Advance();
      s->kind = StmtKind::kSet;
      KILN_ASSIGN_OR_RETURN(s->expr, ParseTuple(false, {}));
      return ExpectBlockEnd();
    }
    s->kind = StmtKind::kSetBlock;
    if (IsOp("|")) {
      KILN_ASSIGN_OR_RETURN(s->expr, ParseFilterChain(nullptr, false));
    }
    KILN_RETURN_IF_ERROR(ExpectBlockEnd());
    std::string end;
    KILN_RETURN_IF_ERROR(ParseBody({"endset"}, &s->body, &end));
    return ExpectBlockEnd();
  }

  Status ParseParams(std::vector<MacroParam>* params) {
    KILN_RETURN_IF_ERROR(Expect("("));
    while (!IsOp(")")) {
      if (!params->empty()) KILN_RETURN_IF_ERROR(Expect(","));
      if (IsOp(")")) break;
      MacroParam p;
      KILN_ASSIGN_OR_RETURN(p.name, ExpectName());
      if (IsOp("=")) {
        Advance();
        KILN_ASSIGN_OR_RETURN(p.default_value, ParseExpression());
      } else if (!params->empty() && params->back().default_value) {
        return Error(Cur(), "non-default argument follows default argument");
      }
      params->push_back(std::move(p));
    }
    Advance();
    return Status::Ok();
  }

  Status ParseMacro(Stmt* s) {
    s->kind = StmtKind::kMacro;
    KILN_ASSIGN_OR_RETURN(s->text, ExpectName());
    KILN_RETURN_IF_ERROR(ParseParams(&s->params));
    KILN_RETURN_IF_ERROR(ExpectBlockEnd());
    int saved = loop_depth_;
    loop_depth_ = 0;
    std::string end;
    KILN_RETURN_IF_ERROR(ParseBody({"endmacro"}, &s->body, &end));
    loop_depth_ = saved;
    return ExpectBlockEnd();
  }

  Status ParseCallBlock(Stmt* s) {
    s->kind = StmtKind::kCallBlock;
    if (IsOp("(")) KILN_RETURN_IF_ERROR(ParseParams(&s->params));
    const Token at = Cur();
    KILN_ASSIGN_OR_RETURN(s->expr, ParseExpression());
    if (s->expr->kind != ExprKind::kCall) return Error(at, "expected call");
    KILN_RETURN_IF_ERROR(ExpectBlockEnd());
    int saved = loop_depth_;
    loop_depth_ = 0;
    std::string end;
    KILN_RETURN_IF_ERROR(ParseBody({"endcall"}, &s->body, &end));
    loop_depth_ = saved;
    return ExpectBlockEnd();
  }

  // Name, `a, b` tuple of names, or `ns.attr` when with_namespace.
  StatusOr<ExprPtr> ParseAssignTarget(bool with_namespace, bool stop_at_in) {
    const Token at = Cur();
    if (with_namespace && Peek().kind == TokKind::kOp && Peek().text == ".") {
      KILN_ASSIGN_OR_RETURN(std::string ns, ExpectName());
      Advance();  // '.'
      auto e = Node(ExprKind::kGetAttr, at);
      auto base = Node(ExprKind::kName, at);
      base->name = ns;
      e->children.push_back(std::move(base));
      KILN_ASSIGN_OR_RETURN(e->name, ExpectName());
      return e;
    }
    auto tuple = Node(ExprKind::kTuple, at);
    bool is_tuple = false;
    bool paren = IsOp("(");
    if (paren) Advance();
    while (true) {
      if (!tuple->children.empty()) {
        if (!IsOp(",")) break;
        Advance();
        is_tuple = true;
        if ((stop_at_in && IsName("in")) || IsOp("=") || IsOp(")")) break;
      }
      auto name = Node(ExprKind::kName, Cur());
      KILN_ASSIGN_OR_RETURN(name->name, ExpectName());
      if (name->name == "true" || name->name == "false" || name->name == "none" ||
          name->name == "True" || name->name == "False" || name->name == "None") {
        return Error(at, "can't assign to constant '" + name->name + "'");
      }
      tuple->children.push_back(std::move(name));
    }
    if (paren) KILN_RETURN_IF_ERROR(Expect(")"));
    if (!is_tuple && !paren) return std::move(tuple->children[0]);
    return tuple;
  }

  // ── Expressions ──
  bool IsTupleEnd(const std::set<std::string>& extra_end) const {
    const Token& t = Cur();
    if (t.kind == TokKind::kVarEnd || t.kind == TokKind::kBlockEnd || t.kind == TokKind::kEof) return true;
    if (t.kind == TokKind::kOp && t.text == ")") return true;
    return t.kind == TokKind::kName && extra_end.count(t.text);
  }

  StatusOr<ExprPtr> ParseTuple(bool allow_empty_error, const std::set<std::string>& extra_end,
                               bool with_condexpr = true, bool explicit_parens = false) {
    const Token at = Cur();
    auto tuple = Node(ExprKind::kTuple, at);
    bool is_tuple = false;
    while (true) {
      if (!tuple->children.empty()) KILN_RETURN_IF_ERROR(Expect(","));
      if (IsTupleEnd(extra_end)) break;
      ExprPtr e;
      if (with_condexpr) {
        KILN_ASSIGN_OR_RETURN(e, ParseExpression());
      } else {
        KILN_ASSIGN_OR_RETURN(e, ParseOr());
      }
      tuple->children.push_back(std::move(e));
      if (IsOp(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (!tuple->children.empty()) return std::move(tuple->children[0]);
      if (!explicit_parens) return Error(at, "expected an expression, got " + Describe(at));
    }
    return tuple;
  }

  StatusOr<ExprPtr> ParseExpression() {
    if (++depth_ > kMaxParseDepth) return Error(Cur(), "expression nested too deeply");
    KILN_ASSIGN_OR_RETURN(ExprPtr e, ParseCondExpr());
    --depth_;
    return e;
  }

  StatusOr<ExprPtr> ParseCondExpr() {
    const Token at = Cur();
    KILN_ASSIGN_OR_RETURN(ExprPtr expr1, ParseOr());
    while (IsName("if")) {
      Advance();
      KILN_ASSIGN_OR_RETURN(ExprPtr cond, ParseOr());
      ExprPtr expr3;
      if (IsName("else")) {
        Advance();
        KILN_ASSIGN_OR_RETURN(expr3, ParseCondExpr());
      }
      auto e = Node(ExprKind::kCond, at);
      e->children.push_back(std::move(cond));
      e->children.push_back(std::move(expr1));
      e->children.push_back(std::move(expr3));
      expr1 = std::move(e);
    }
    return expr1;
  }

  StatusOr<ExprPtr> ParseOr() {
    KILN_ASSIGN_OR_RETURN(ExprPtr left, ParseAnd());
    while (IsName("or")) {
      const Token at = Cur();
      Advance();
      KILN_ASSIGN_OR_RETURN(ExprPtr right, ParseAnd());
      auto e = Node(ExprKind::kOr, at);
      e->children.push_back(std::move(left));
      e->children.push_back(std::move(right));
      left = std::move(e);
    }
    return left;
  }

  StatusOr<ExprPtr> ParseAnd() {
    KILN_ASSIGN_OR_RETURN(ExprPtr left, ParseNot());
    while (IsName("and")) {
      const Token at = Cur();
      Advance();
      KILN_ASSIGN_OR_RETURN(ExprPtr right, ParseNot());
      auto e = Node(ExprKind::kAnd, at);
      e->children.push_back(std::move(left));
      e->children.push_back(std::move(right));
      left = std::move(e);
    }
    return left;
  }

  StatusOr<ExprPtr> ParseNot() {
    if (IsName("not")) {
      const Token at = Cur();
      Advance();
      if (++depth_ > kMaxParseDepth) return Error(at, "expression nested too deeply");
      KILN_ASSIGN_OR_RETURN(ExprPtr inner, ParseNot());
      --depth_;
      auto e = Node(ExprKind::kNot, at);
      e->children.push_back(std::move(inner));
      return e;
    }
    return ParseCompare();
  }

  StatusOr<ExprPtr> ParseCompare() {
    const Token at = Cur();
    KILN_ASSIGN_OR_RETURN(ExprPtr expr, ParseMath1());
    auto cmp = Node(ExprKind::kCompare, at);
    cmp->children.push_back(std::move(expr));
    while (true) {
      std::string op;
      if (Cur().kind == TokKind::kOp &&
          (Cur().text == "==" || Cur().text == "!=" || Cur().text == "<" || Cur().text == ">" ||
           Cur().text == "<=" || Cur().text == ">=")) {
        op = Cur().text;
        Advance();
      } else if (IsName("in")) {
        op = "in";
        Advance();
      } else if (IsName("not") && Peek().kind == TokKind::kName && Peek().text == "in") {
        op = "notin";
        Advance();
        Advance();
      } else {
        break;
      }
      KILN_ASSIGN_OR_RETURN(ExprPtr rhs, ParseMath1());
      cmp->ops.push_back(op);
      cmp->children.push_back(std::move(rhs));
    }
    if (cmp->ops.empty()) return std::move(cmp->children[0]);
    return cmp;
  }

  StatusOr<ExprPtr> Binary(const Token& at, const std::string& op, ExprPtr l, ExprPtr r) {
    auto e = Node(ExprKind::kBinary, at);
    e->name = op;
    e->children.push_back(std::move(l));
    e->children.push_back(std::move(r));
    return e;
  }

  StatusOr<ExprPtr> ParseMath1() {
    KILN_ASSIGN_OR_RETURN(ExprPtr left, ParseConcat());
    while (IsOp("+") || IsOp("-")) {
      const Token at = Cur();
      Advance();
      KILN_ASSIGN_OR_RETURN(ExprPtr right, ParseConcat());
      KILN_ASSIGN_OR_RETURN(left, Binary(at, at.text, std::move(left), std::move(right)));
    }
    return left;
  }

  StatusOr<ExprPtr> ParseConcat() {
    KILN_ASSIGN_OR_RETURN(ExprPtr left, ParseMath2());
    while (IsOp("~")) {
      const Token at = Cur();
      Advance();
      KILN_ASSIGN_OR_RETURN(ExprPtr right, ParseMath2());
      KILN_ASSIGN_OR_RETURN(left, Binary(at, "~", std::move(left), std::move(right)));
    }
    return left;
  }

  StatusOr<ExprPtr> ParseMath2() {
    KILN_ASSIGN_OR_RETURN(ExprPtr left, ParsePow());
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      const Token at = Cur();
      Advance();
      KILN_ASSIGN_OR_RETURN(ExprPtr right, ParsePow());
      KILN_ASSIGN_OR_RETURN(left, Binary(at, at.text, std::move(left), std::move(right)));
    }
    return left;
  }

  StatusOr<ExprPtr> ParsePow() {
    KILN_ASSIGN_OR_RETURN(ExprPtr left, ParseUnary(true));
    while (IsOp("**")) {
      const Token at = Cur();
      Advance();
      KILN_ASSIGN_OR_RETURN(ExprPtr right, ParseUnary(true));
      KILN_ASSIGN_OR_RETURN(left, Binary(at, "**", std::move(left), std::move(right)));
    }
    return left;
  }

  StatusOr<ExprPtr> ParseUnary(bool with_filter) {
    if (++depth_ > kMaxParseDepth) return Error(Cur(), "expression nested too deeply");
    const Token at = Cur();
    ExprPtr node;
    if (IsOp("-") || IsOp("+")) {
      Advance();
      KILN_ASSIGN_OR_RETURN(ExprPtr inner, ParseUnary(false));
      node = Node(at.text == "-" ? ExprKind::kNeg : ExprKind::kPos, at);
      node->children.push_back(std::move(inner));
    } else {
      KILN_ASSIGN_OR_RETURN(node, ParsePrimary());
    }
    KILN_ASSIGN_OR_RETURN(node, ParsePostfix(std::move(node)));
    if (with_filter) {
      KILN_ASSIGN_OR_RETURN(node, ParseFilterExpr(std::move(node)));
    }
    --depth_;
    return node;
  }

  StatusOr<ExprPtr> ParsePrimary() {
    const Token at = Cur();
    switch (at.kind) {
      case TokKind::kName: {
        Advance();
        if (at.text == "true" || at.text == "True" || at.text == "false" || at.text == "False") {
          auto e = Node(ExprKind::kConst, at);
          e->value = Value::Bool(at.text[0] == 't' || at.text[0] == 'T');
          return e;
        }
        if (at.text == "none" || at.text == "None") {
          auto e = Node(ExprKind::kConst, at);
          e->value = Value::None();
          return e;
        }
        auto e = Node(ExprKind::kName, at);
        e->name = at.text;
        return e;
      }
      case TokKind::kString: {
        std::string s;
        while (Cur().kind == TokKind::kString) {
          s += Cur().text;
          Advance();
        }
        auto e = Node(ExprKind::kConst, at);
        e->value = Value::String(std::move(s));
        return e;
      }
      case TokKind::kInt: {
        Advance();
        errno = 0;
        char* endp = nullptr;
        long long v = std::strtoll(at.text.c_str(), &endp, 10);
        auto e = Node(ExprKind::kConst, at);
        if (errno == ERANGE) e->value = Value::Float(std::strtod(at.text.c_str(), nullptr));
        else e->value = Value::Int(v);
        return e;
      }
      case TokKind::kFloat: {
        Advance();
        auto e = Node(ExprKind::kConst, at);
        e->value = Value::Float(std::strtod(at.text.c_str(), nullptr));
        return e;
      }
      case TokKind::kOp:
        if (at.text == "(") {
          Advance();
          KILN_ASSIGN_OR_RETURN(ExprPtr e, ParseTuple(false, {}, true, true));
          KILN_RETURN_IF_ERROR(Expect(")"));
          return e;
        }
        if (at.text == "[") return ParseList();
        if (at.text == "{") return ParseDict();
        break;
      default: break;
    }
    return Error(at, "unexpected " + Describe(at));
  }

  StatusOr<ExprPtr> ParseList() {
    auto e = Node(ExprKind::kList, Cur());
    Advance();
    while (!IsOp("]")) {
      if (!e->children.empty()) KILN_RETURN_IF_ERROR(Expect(","));
      if (IsOp("]")) break;
      KILN_ASSIGN_OR_RETURN(ExprPtr item, ParseExpression());
      e->children.push_back(std::move(item));
    }
    Advance();
    return e;
  }

  StatusOr<ExprPtr> ParseDict() {
    auto e = Node(ExprKind::kDict, Cur());
    Advance();
    while (!IsOp("}")) {
      if (!e->children.empty()) KILN_RETURN_IF_ERROR(Expect(","));
      if (IsOp("}")) break;
      KILN_ASSIGN_OR_RETURN(ExprPtr key, ParseExpression());
      KILN_RETURN_IF_ERROR(Expect(":"));
      KILN_ASSIGN_OR_RETURN(ExprPtr value, ParseExpression());
      e->children.push_back(std::move(key));
      e->children.push_back(std::move(value));
    }
    Advance();
    return e;
  }

  StatusOr<ExprPtr> ParsePostfix(ExprPtr node) {
    while (true) {
      if (IsOp(".") || IsOp("[")) {
        KILN_ASSIGN_OR_RETURN(node, ParseSubscript(std::move(node)));
      } else if (IsOp("(")) {
        KILN_ASSIGN_OR_RETURN(node, ParseCall(std::move(node)));
      } else {
        return node;
      }
    }
  }

  StatusOr<ExprPtr> ParseFilterExpr(ExprPtr node) {
    while (true) {
      if (IsOp("|")) {
        KILN_ASSIGN_OR_RETURN(node, ParseFilterChain(std::move(node), false));
      } else if (IsName("is")) {
        KILN_ASSIGN_OR_RETURN(node, ParseTest(std::move(node)));
      } else if (IsOp("(")) {
        KILN_ASSIGN_OR_RETURN(node, ParseCall(std::move(node)));
      } else {
        return node;
      }
    }
  }

  StatusOr<ExprPtr> ParseSubscript(ExprPtr node) {
    const Token at = Cur();
    if (IsOp(".")) {
      Advance();
      if (Cur().kind == TokKind::kName) {
        auto e = Node(ExprKind::kGetAttr, at);
        e->name = Cur().text;
        e->children.push_back(std::move(node));
        Advance();
        return e;
      }
      if (Cur().kind == TokKind::kInt) {
        auto e = Node(ExprKind::kGetItem, at);
        e->children.push_back(std::move(node));
        auto idx = Node(ExprKind::kConst, Cur());
        idx->value = Value::Int(std::strtoll(Cur().text.c_str(), nullptr, 10));
        e->children.push_back(std::move(idx));
        Advance();
        return e;
      }
      return Error(Cur(), "expected name or number after '.'");
    }
    Advance();  // '['
    std::vector<ExprPtr> parts;
    bool is_slice = false;
    // Slice a:b:c, any part optional.
    ExprPtr cur;
    int n_colons = 0;
    while (!IsOp("]")) {
      if (IsOp(":")) {
        is_slice = true;
        parts.push_back(std::move(cur));
        ++n_colons;
        if (n_colons > 2) return Error(Cur(), "invalid slice");
        Advance();
        continue;
      }
      if (cur) return Error(Cur(), "expected ']' or ':', got " + Describe(Cur()));
      if (IsOp(",")) return Error(Cur(), "tuple subscripts are not supported");
      KILN_ASSIGN_OR_RETURN(cur, ParseExpression());
    }
    Advance();
    parts.push_back(std::move(cur));
    if (!is_slice) {
      if (!parts[0]) return Error(at, "expected an expression inside '[]'");
      auto e = Node(ExprKind::kGetItem, at);
      e->children.push_back(std::move(node));
      e->children.push_back(std::move(parts[0]));
      return e;
    }
    auto e = Node(ExprKind::kSlice, at);
    e->children.push_back(std::move(node));
    parts.resize(3);
    for (auto& p : parts) e->children.push_back(std::move(p));
    return e;
  }

  Status ParseCallArgs(Expr* e) {
    KILN_RETURN_IF_ERROR(Expect("("));
    bool first = true;
    while (!IsOp(")")) {
      if (!first) KILN_RETURN_IF_ERROR(Expect(","));
      first = false;
      if (IsOp(")")) break;
      if (IsOp("*") || IsOp("**")) return Error(Cur(), "*args / **kwargs calls are not supported");
      if (Cur().kind == TokKind::kName && Peek().kind == TokKind::kOp && Peek().text == "=") {
        std::string key = Cur().text;
        Advance();
        Advance();
        KILN_ASSIGN_OR_RETURN(ExprPtr v, ParseExpression());
        e->kwargs.emplace_back(std::move(key), std::move(v));
      } else {
        if (!e->kwargs.empty()) return Error(Cur(), "positional argument follows keyword argument");
        KILN_ASSIGN_OR_RETURN(ExprPtr v, ParseExpression());
        e->children.push_back(std::move(v));
      }
    }
    Advance();
    return Status::Ok();
  }

  StatusOr<ExprPtr> ParseCall(ExprPtr node) {
    auto e = Node(ExprKind::kCall, Cur());
    e->line = node->line;  // errors point at the callee, not at '('
    e->col = node->col;
    e->children.push_back(std::move(node));
    KILN_RETURN_IF_ERROR(ParseCallArgs(e.get()));
    return e;
  }

  StatusOr<std::string> ParseDottedName() {
    KILN_ASSIGN_OR_RETURN(std::string name, ExpectName());
    while (IsOp(".")) {
      Advance();
      KILN_ASSIGN_OR_RETURN(std::string part, ExpectName());
      name += "." + part;
    }
    return name;
  }

  // `| f(args) | g …` applied to node (null in filter/set blocks). start_inline: the first
  // filter has no leading '|' ({% filter upper %}), as jinja2's parse_filter.
  StatusOr<ExprPtr> ParseFilterChain(ExprPtr node, bool start_inline) {
    while (IsOp("|") || start_inline) {
      if (!start_inline) Advance();
      start_inline = false;
      auto e = Node(ExprKind::kFilter, Cur());
      KILN_ASSIGN_OR_RETURN(e->name, ParseDottedName());
      // jinja2 rejects unknown filters when compiling, even in branches never taken.
      if (!HasFilter(e->name)) return Error(*e, "no filter named '" + e->name + "'");
      e->children.push_back(std::move(node));
      if (IsOp("(")) KILN_RETURN_IF_ERROR(ParseCallArgs(e.get()));
      node = std::move(e);
    }
    return node;
  }

  StatusOr<ExprPtr> ParseTest(ExprPtr node) {
    const Token at = Cur();
    Advance();  // 'is'
    auto e = Node(ExprKind::kTest, at);
    if (IsName("not")) {
      Advance();
      e->negated = true;
    }
    KILN_ASSIGN_OR_RETURN(e->name, ParseDottedName());
    if (!HasTest(e->name)) return Error(*e, "no test named '" + e->name + "'");
    e->children.push_back(std::move(node));
    if (IsOp("(")) {
      KILN_RETURN_IF_ERROR(ParseCallArgs(e.get()));
    } else {
      const Token& t = Cur();
      bool arg_start = t.kind == TokKind::kString || t.kind == TokKind::kInt ||
                       t.kind == TokKind::kFloat ||
                       (t.kind == TokKind::kOp && (t.text == "[" || t.text == "{")) ||
                       (t.kind == TokKind::kName && t.text != "else" && t.text != "or" &&
                        t.text != "and");
      if (arg_start && t.kind == TokKind::kName && t.text == "is") {
        return Error(t, "you cannot chain multiple tests with is");
      }
      if (arg_start) {
        KILN_ASSIGN_OR_RETURN(ExprPtr arg, ParsePrimary());
        KILN_ASSIGN_OR_RETURN(arg, ParsePostfix(std::move(arg)));
        e->children.push_back(std::move(arg));
      }
    }
    return e;
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

StatusOr<std::shared_ptr<const Body>> ParseTemplate(const std::string& source) {
  KILN_ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(NormalizeSource(source)));
  return Parser(std::move(tokens)).Run();
}

}  // namespace kiln::jinja
