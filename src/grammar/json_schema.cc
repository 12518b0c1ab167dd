// JSON Schema → GBNF. One Converter walks the schema; every subschema becomes a rule, $refs
// become rule references (so recursion is free), allOf / $ref-with-siblings / anyOf-with-siblings
// are merged into plain schemas first (Merge), and anything not enforceable is refused by name.
#include "grammar/json_schema.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "grammar/grammar.h"
#include "grammar/regex.h"

namespace kiln::grammar {
namespace {

using ojson = nlohmann::ordered_json;

const std::set<std::string>& Annotations() {
  static const std::set<std::string> k = {
      "title", "description", "$comment", "examples", "default", "$schema", "deprecated",
      "readOnly", "writeOnly", "contentEncoding", "contentMediaType", "contentSchema",
      "$anchor", "$defs", "definitions", "$id"};
  return k;
}
const std::set<std::string>& Supported() {
  static const std::set<std::string> k = {
      "type", "enum", "const", "properties", "required", "additionalProperties", "items",
      "prefixItems", "minItems", "maxItems", "minLength", "maxLength", "pattern", "format",
      "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "anyOf", "oneOf", "allOf",
      "$ref", "nullable", "uniqueItems"};
  return k;
}

const char* kJsonTypes[] = {"null", "boolean", "object", "array", "string", "number"};

// Base rules, emitted on first use.
const std::map<std::string, std::string>& BaseRules() {
  static const std::map<std::string, std::string> k = {
      {"ws", StrFormat("[ \\t\\n\\r]{0,%d}", kMaxJsonWhitespace)},
      {"value", "object | array | string | number | \"true\" | \"false\" | \"null\""},
      {"object",
       "\"{\" ws ( member ( ws \",\" ws member )* ws )? \"}\""},
      {"member", "string ws \":\" ws value"},
      {"array", "\"[\" ws ( value ( ws \",\" ws value )* ws )? \"]\""},
      {"string", "\"\\\"\" jchar* \"\\\"\""},
      {"jchar", "[^\"\\\\\\x00-\\x1F] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} )"},
      {"number",
       "\"-\"? ( \"0\" | [1-9] [0-9]* ) ( \".\" [0-9]+ )? ( [eE] [-+]? [0-9]+ )?"},
      {"integer", "\"-\"? ( \"0\" | [1-9] [0-9]* ) intfrac"},
      {"intfrac", "( \".\" \"0\"+ )?"},
      {"boolean", "\"true\" | \"false\""},
      {"null", "\"null\""},
      {"never", "[^\\x00-\\U0010FFFF]"},
      {"hex", "[0-9a-fA-F]"},
      {"fdate",
       "fyear \"-\" ( ( \"01\" | \"03\" | \"05\" | \"07\" | \"08\" | \"10\" | \"12\" ) \"-\" "
       "( \"0\" [1-9] | [12] [0-9] | \"3\" [01] ) | ( \"04\" | \"06\" | \"09\" | \"11\" ) \"-\" "
       "( \"0\" [1-9] | [12] [0-9] | \"30\" ) | \"02-\" ( \"0\" [1-9] | \"1\" [0-9] | \"2\" [0-8] ) ) "
       "| fleap \"-02-29\""},
      {"fyear", "[0-9]{4}"},
      {"fleap",
       "[0-9]{2} ( \"0\" [48] | [2468] [048] | [13579] [26] ) | "
       "( \"0\" [048] | [2468] [048] | [13579] [26] ) \"00\""},
      {"ftime",
       "( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] \":\" [0-5] [0-9] ( \".\" [0-9]+ )? "
       "( [Zz] | [-+] ( [01] [0-9] | \"2\" [0-3] ) \":\" [0-5] [0-9] )"},
      {"fdatetime", "fdate [Tt] ftime"},
      {"fuuid", "hex{8} \"-\" hex{4} \"-\" hex{4} \"-\" hex{4} \"-\" hex{12}"},
      {"femail",
       "fatom ( \".\" fatom )* \"@\" flabel ( \".\" flabel )*"},
      {"fatom", "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"},
      {"flabel", "[A-Za-z0-9] ( [A-Za-z0-9-]* [A-Za-z0-9] )?"},
      // RFC 3986 section 3 (URI, not URI-reference): scheme ":" hier-part [?query] [#fragment].
      // IPv4 hosts are reg-names (any dotted digits are structurally valid); IPv6 is exact.
      {"furi",
       "[A-Za-z] [A-Za-z0-9+.-]* \":\" ( \"//\" furiauth furiabs | \"/\" ( furipchar+ furiabs )? "
       "| furipchar+ furiabs )? ( \"?\" furiquery )? ( \"#\" furiquery )?"},
      {"furiauth",
       "( ( furiunres | \":\" )* \"@\" )? ( \"[\" ( furiv6 | furivf ) \"]\" | furiunres* ) "
       "( \":\" [0-9]* )?"},
      {"furiunres", "[A-Za-z0-9._~!$&'()*+,;=-] | \"%\" hex hex"},  // unreserved, sub-delims, %XX
      {"furipchar", "furiunres | [:@]"},
      {"furiabs", "( \"/\" furipchar* )*"},
      {"furiquery", "( furipchar | [/?] )*"},
      {"furivf", "\"v\" hex+ \".\" ( furiunres | \":\" )+"},
      {"furih16", "hex{1,4}"},
      {"furils32", "furih16 \":\" furih16 | fipv4"},
      {"furiv6",
       "( furih16 \":\" ){6} furils32 | \"::\" ( furih16 \":\" ){5} furils32 "
       "| furih16? \"::\" ( furih16 \":\" ){4} furils32 "
       "| ( ( furih16 \":\" ){0,1} furih16 )? \"::\" ( furih16 \":\" ){3} furils32 "
       "| ( ( furih16 \":\" ){0,2} furih16 )? \"::\" ( furih16 \":\" ){2} furils32 "
       "| ( ( furih16 \":\" ){0,3} furih16 )? \"::\" furih16 \":\" furils32 "
       "| ( ( furih16 \":\" ){0,4} furih16 )? \"::\" furils32 "
       "| ( ( furih16 \":\" ){0,5} furih16 )? \"::\" furih16 "
       "| ( ( furih16 \":\" ){0,6} furih16 )? \"::\""},
      {"fipv4", "foctet \".\" foctet \".\" foctet \".\" foctet"},
      {"foctet", "\"25\" [0-5] | \"2\" [0-4] [0-9] | \"1\" [0-9] [0-9] | [1-9] [0-9] | [0-9]"},
  };
  return k;
}

// Base rules each base rule uses (so emitting one emits its dependencies).
const std::map<std::string, std::vector<std::string>>& BaseDeps() {
  static const std::map<std::string, std::vector<std::string>> k = {
      {"value", {"object", "array", "string", "number"}},
      {"object", {"ws", "member"}},
      {"member", {"string", "ws", "value"}},
      {"array", {"ws", "value"}},
      {"string", {"jchar"}},
      {"integer", {"intfrac"}},
      {"fdate", {"fyear", "fleap"}},
      {"fdatetime", {"fdate", "ftime"}},
      {"fuuid", {"hex"}},
      {"femail", {"fatom", "flabel"}},
      {"furi", {"furiauth", "furipchar", "furiabs", "furiquery"}},
      {"furiauth", {"furiunres", "furiv6", "furivf"}},
      {"furiunres", {"hex"}},
      {"furipchar", {"furiunres"}},
      {"furiabs", {"furipchar"}},
      {"furiquery", {"furipchar"}},
      {"furivf", {"hex", "furiunres"}},
      {"furih16", {"hex"}},
      {"furils32", {"furih16", "fipv4"}},
      {"furiv6", {"furih16", "furils32"}},
      {"fipv4", {"foctet"}},
  };
  return k;
}

const std::map<std::string, std::string>& Formats() {
  static const std::map<std::string, std::string> k = {
      {"date", "fdate"}, {"time", "ftime"}, {"date-time", "fdatetime"}, {"uuid", "fuuid"},
      {"email", "femail"}, {"uri", "furi"}, {"ipv4", "fipv4"}};
  return k;
}

Status Refuse(const std::string& keyword, const std::string& path, const std::string& why = "") {
  return InvalidArgument("unsupported JSON Schema keyword '%s' at %s%s%s", keyword.c_str(),
                         path.c_str(), why.empty() ? "" : ": ", why.c_str());
}

bool IsConstraint(const std::string& key) { return !Annotations().count(key); }

bool IsSchema(const ojson& v) { return v.is_object() || v.is_boolean(); }
bool IsCount(const ojson& v) {
  return v.is_number_unsigned() || (v.is_number_float() && v.get<double>() >= 0 &&
                                    std::floor(v.get<double>()) == v.get<double>());
}
bool AllOf(const ojson& v, bool (*pred)(const ojson&)) {
  return std::all_of(v.begin(), v.end(), [&](const ojson& x) { return pred(x); });
}

// The shape the specification gives each supported keyword's value, checked before the value is
// used: a malformed schema is the caller's error, named by keyword, never a converter crash.
// Returns what the value must be, or nullptr when it has that shape. The converter below relies
// on it: it reads every keyword's value without checking its type again.
const char* KeywordShapeError(const std::string& k, const ojson& v) {
  auto is_string = [](const ojson& x) { return x.is_string(); };
  if (k == "type") {
    if (v.is_string() || (v.is_array() && !v.empty() && AllOf(v, +is_string))) return nullptr;
    return "must be a string or a non-empty array of strings";
  }
  if (k == "enum") return v.is_array() ? nullptr : "must be an array";
  if (k == "required") {
    return v.is_array() && AllOf(v, +is_string) ? nullptr : "must be an array of strings";
  }
  if (k == "properties") {
    return v.is_object() && AllOf(v, IsSchema) ? nullptr : "must be an object of schemas";
  }
  if (k == "additionalProperties" || k == "items") {
    if (k == "items" && v.is_array()) return "must be a schema; the array form is prefixItems";
    return IsSchema(v) ? nullptr : "must be a schema (an object or a boolean)";
  }
  if (k == "prefixItems" || k == "allOf" || k == "anyOf" || k == "oneOf") {
    return v.is_array() && !v.empty() && AllOf(v, IsSchema)
               ? nullptr
               : "must be a non-empty array of schemas";
  }
  if (k == "minItems" || k == "maxItems" || k == "minLength" || k == "maxLength") {
    return IsCount(v) ? nullptr : "must be a non-negative integer";
  }
  if (k == "minimum" || k == "maximum" || k == "exclusiveMinimum" || k == "exclusiveMaximum") {
    return v.is_number() ? nullptr : "must be a number";
  }
  if (k == "pattern" || k == "format" || k == "$ref") return v.is_string() ? nullptr : "must be a string";
  if (k == "nullable" || k == "uniqueItems") return v.is_boolean() ? nullptr : "must be a boolean";
  return nullptr;  // const: any value
}

std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

// ── integer ranges as digit grammars ─────────────────────────────────────────────────────────

std::string RangeSameLen(const std::string& a, const std::string& b) {
  if (a.empty()) return "";
  if (a == b) return GbnfQuote(a);
  if (a[0] == b[0]) {
    std::string rest = RangeSameLen(a.substr(1), b.substr(1));
    return GbnfQuote(a.substr(0, 1)) + (rest.empty() ? "" : " " + rest);
  }
  size_t n = a.size() - 1;
  auto digits = [&](size_t k) { return k ? StrFormat(" [0-9]{%zu}", k) : std::string(); };
  if (a.substr(1) == std::string(n, '0') && b.substr(1) == std::string(n, '9')) {
    return StrFormat("[%c-%c]", a[0], b[0]) + digits(n);
  }
  std::vector<std::string> alts;
  alts.push_back(GbnfQuote(a.substr(0, 1)) + " " + RangeSameLen(a.substr(1), std::string(n, '9')));
  if (a[0] + 1 <= b[0] - 1) alts.push_back(StrFormat("[%c-%c]", a[0] + 1, b[0] - 1) + digits(n));
  alts.push_back(GbnfQuote(b.substr(0, 1)) + " " + RangeSameLen(std::string(n, '0'), b.substr(1)));
  return "( " + Join(alts, " | ") + " )";
}

// Decimal naturals in [a, b] (b < 0: unbounded), no leading zeros.
std::string NaturalRange(int64_t a, int64_t b) {
  std::vector<std::string> alts;
  std::string sa = std::to_string(a);
  size_t max_len = b < 0 ? sa.size() : std::to_string(b).size();
  int64_t pow = 1;
  for (size_t i = 1; i < sa.size(); ++i) pow *= 10;
  for (size_t n = sa.size(); n <= max_len; ++n, pow *= 10) {
    int64_t lo = std::max(a, n == 1 ? int64_t{0} : pow);
    int64_t hi = pow * 10 - 1;
    if (b >= 0) hi = std::min(hi, b);
    if (lo > hi) continue;
    alts.push_back(RangeSameLen(std::to_string(lo), std::to_string(hi)));
  }
  if (b < 0) alts.push_back(StrFormat("[1-9] [0-9]{%zu,}", sa.size()));
  if (alts.empty()) return "never";
  return "( " + Join(alts, " | ") + " )";
}

// ── the converter ────────────────────────────────────────────────────────────────────────────

class Converter {
 public:
  Converter(const ojson& root, const JsonSchemaOptions& opts) : root_(root), opts_(opts) {}

  StatusOr<std::string> Run() {
    // Another metaschema may switch vocabularies off (or on): only the standard drafts are known.
    if (root_.is_object() && root_.contains("$schema")) {
      static const std::set<std::string> kKnown = {
          "https://json-schema.org/draft/2020-12/schema", "https://json-schema.org/draft/2019-09/schema",
          "http://json-schema.org/draft-07/schema", "http://json-schema.org/draft-06/schema",
          "http://json-schema.org/draft-04/schema"};
      std::string uri = root_["$schema"].is_string() ? root_["$schema"].get<std::string>() : "";
      if (!uri.empty() && uri.back() == '#') uri.pop_back();
      if (!kKnown.count(uri)) return Refuse("$schema", "#", "unknown metaschema '" + uri + "'");
    }
    KILN_ASSIGN_OR_RETURN(std::string expr, Visit(root_, "#", 0));
    std::string out = "root ::= " + expr + "\n";
    for (const auto& [name, body] : rules_) out += name + " ::= " + body + "\n";
    for (const std::string& name : base_used_) out += name + " ::= " + BaseRules().at(name) + "\n";
    return out;
  }

 private:
  std::string Base(const std::string& name) {
    if (std::find(base_used_.begin(), base_used_.end(), name) == base_used_.end()) {
      base_used_.push_back(name);
      auto it = BaseDeps().find(name);
      if (it != BaseDeps().end()) {
        for (const auto& dep : it->second) Base(dep);
      }
    }
    return name;
  }

  std::string NewRule(const std::string& hint) {
    std::string clean;
    for (char c : hint) {
      if (isalnum(static_cast<unsigned char>(c))) clean += c;
      if (clean.size() >= 24) break;
    }
    std::string name = StrFormat("s%zu-%s", rules_.size(), clean.c_str());
    rule_index_[name] = rules_.size();
    rules_.push_back({name, ""});
    return name;
  }
  std::string AddRule(const std::string& hint, const std::string& body) {
    std::string name = NewRule(hint);
    rules_.back().second = body;
    return name;
  }
  void SetRule(const std::string& name, const std::string& body) {
    rules_[rule_index_.at(name)].second = body;
  }

  StatusOr<const ojson*> Resolve(const std::string& ref, const std::string& path) {
    if (ref.empty() || ref[0] != '#') return Refuse("$ref", path, "only local '#...' references");
    if (ref.size() > 1 && ref[1] != '/') return Refuse("$ref", path, "anchors are not supported");
    const ojson* cur = &root_;
    size_t i = 1;
    while (i < ref.size()) {
      size_t j = ref.find('/', i + 1);
      if (j == std::string::npos) j = ref.size();
      std::string tok = ref.substr(i + 1, j - i - 1);
      std::string dec;
      for (size_t k = 0; k < tok.size(); ++k) {
        if (tok[k] == '~' && k + 1 < tok.size() && (tok[k + 1] == '0' || tok[k + 1] == '1')) {
          dec += tok[k + 1] == '0' ? '~' : '/';
          ++k;
        } else if (tok[k] == '%' && k + 2 < tok.size() && isxdigit(tok[k + 1]) &&
                   isxdigit(tok[k + 2])) {
          dec += static_cast<char>(std::stoi(tok.substr(k + 1, 2), nullptr, 16));
          k += 2;
        } else {
          dec += tok[k];
        }
      }
      if (cur->is_object() && cur->contains(dec)) {
        cur = &(*cur)[dec];
      } else if (cur->is_array() && !dec.empty() &&
                 std::all_of(dec.begin(), dec.end(), ::isdigit) && std::stoul(dec) < cur->size()) {
        cur = &(*cur)[std::stoul(dec)];
      } else {
        return Refuse("$ref", path, "cannot resolve '" + ref + "'");
      }
      i = j;
    }
    return cur;
  }

  StatusOr<std::string> RefRule(const std::string& ref, const std::string& path, int depth) {
    auto it = ref_rules_.find(ref);
    if (it != ref_rules_.end()) return it->second;
    KILN_ASSIGN_OR_RETURN(const ojson* target, Resolve(ref, path));
    std::string name = NewRule("ref" + ref);
    ref_rules_[ref] = name;
    KILN_ASSIGN_OR_RETURN(std::string body, Visit(*target, ref, depth + 1));
    SetRule(name, body);
    // Every JSON value consumes input, so a rule can only recurse without consuming any
    // through a chain of bare references ({"$ref": "#/$defs/c"} inside #/$defs/c, or a → b → a).
    std::string cur = name;
    for (size_t step = 0; step <= rules_.size(); ++step) {
      auto next = rule_index_.find(rules_[rule_index_.at(cur)].second);
      if (next == rule_index_.end()) break;
      cur = next->first;
      if (cur == name) {
        return Refuse("$ref", path, "'" + ref + "' refers to itself without matching anything");
      }
    }
    return name;
  }

  Status CheckKeywords(const ojson& s, const std::string& path) {
    for (auto it = s.begin(); it != s.end(); ++it) {
      const std::string& k = it.key();
      if (k == "$id" && path != "#") return Refuse("$id", path, "only at the root");
      if (Annotations().count(k)) continue;
      if (!Supported().count(k)) return Refuse(k, path);
      if (const char* want = KeywordShapeError(k, *it)) {
        return InvalidArgument("invalid JSON Schema at %s: '%s' %s", path.c_str(), k.c_str(), want);
      }
      if (k == "uniqueItems" && *it != false) return Refuse(k, path, "cannot be enforced");
      if (k == "nullable" && !opts_.allow_nullable) return Refuse(k, path);
    }
    return Status::Ok();
  }

  StatusOr<std::string> Visit(const ojson& s, const std::string& path, int depth) {
    if (depth > kMaxDepth) return Refuse("$ref", path, "schema nesting too deep");
    if (s.is_boolean()) return Base(s.get<bool>() ? "value" : "never");
    if (!s.is_object()) return InvalidArgument("schema at %s is not an object", path.c_str());
    KILN_RETURN_IF_ERROR(CheckKeywords(s, path));
    if (s.contains("allOf") || (s.contains("$ref") && HasConstraintsBesides(s, {"$ref"}))) {
      ojson merged = ojson::object();
      std::vector<const ojson*> parts;
      ojson rest = s;
      rest.erase("allOf");
      if (s.contains("allOf")) {
        for (const auto& sub : s["allOf"]) parts.push_back(&sub);
      }
      KILN_ASSIGN_OR_RETURN(merged, Merge(rest, ojson::object(), path, 0));
      for (const ojson* p : parts) {
        KILN_ASSIGN_OR_RETURN(merged, Merge(merged, *p, path, 0));
      }
      return Visit(merged, path, depth + 1);
    }
    if (s.contains("$ref")) {
      return RefRule(s["$ref"].get<std::string>(), path, depth);
    }
    if (s.contains("anyOf") || s.contains("oneOf")) return VisitAnyOf(s, path, depth);
    if (s.contains("enum") || s.contains("const")) return VisitEnum(s, path);
    return VisitTypes(s, path, depth);
  }

  static bool HasConstraintsBesides(const ojson& s, std::initializer_list<const char*> keys) {
    for (auto it = s.begin(); it != s.end(); ++it) {
      if (!IsConstraint(it.key())) continue;
      if (std::none_of(keys.begin(), keys.end(), [&](const char* k) { return it.key() == k; })) {
        return true;
      }
    }
    return false;
  }

  // ── allOf / sibling merging ──
  StatusOr<ojson> Merge(const ojson& a_in, const ojson& b_in, const std::string& path, int depth) {
    if (depth > kMaxDepth) return Refuse("allOf", path, "merge too deep");
    ojson a = a_in, b = b_in;
    for (ojson* x : {&a, &b}) {
      if (x->is_boolean()) {
        if (!x->get<bool>()) return ojson(false);
        *x = ojson::object();
      }
      if (!x->is_object()) return InvalidArgument("schema at %s is not an object", path.c_str());
      KILN_RETURN_IF_ERROR(CheckKeywords(*x, path));
      if (x->contains("$ref")) {
        KILN_ASSIGN_OR_RETURN(const ojson* target, Resolve((*x)["$ref"].get<std::string>(), path));
        ojson rest = *x;
        rest.erase("$ref");
        KILN_ASSIGN_OR_RETURN(*x, Merge(rest, *target, path, depth + 1));
        if (x->is_boolean()) {
          if (!x->get<bool>()) return ojson(false);
          *x = ojson::object();
        }
      }
      if (x->contains("allOf")) {
        ojson rest = *x;
        rest.erase("allOf");
        for (const auto& sub : (*x)["allOf"]) {
          KILN_ASSIGN_OR_RETURN(rest, Merge(rest, sub, path, depth + 1));
          if (rest.is_boolean()) return rest;
        }
        *x = rest;
      }
    }
    // items applies after the prefixItems of its own schema object only.
    for (const ojson* x : {&a, &b}) {
      const ojson* other = x == &a ? &b : &a;
      if (x->contains("items") && other->contains("prefixItems") &&
          (!x->contains("prefixItems") || (*x)["prefixItems"] != (*other)["prefixItems"])) {
        return Refuse("allOf", path, "items and prefixItems in different parts");
      }
    }
    ojson out = a;
    for (auto it = b.begin(); it != b.end(); ++it) {
      const std::string& k = it.key();
      if (!IsConstraint(k)) continue;
      if (!out.contains(k)) {
        out[k] = *it;
        continue;
      }
      ojson& mine = out[k];
      const ojson& theirs = *it;
      if (mine == theirs) continue;
      if (k == "type") {
        std::set<std::string> ta = TypeSet(mine), tb = TypeSet(theirs), both;
        for (const auto& t : ta) {
          if (tb.count(t)) both.insert(t);
          else if (t == "number" && tb.count("integer")) both.insert("integer");
        }
        for (const auto& t : tb) {
          if (t == "number" && ta.count("integer")) both.insert("integer");
        }
        if (both.empty()) return ojson(false);
        mine = ojson::array();
        for (const auto& t : both) mine.push_back(t);
      } else if (k == "properties") {
        for (auto p = theirs.begin(); p != theirs.end(); ++p) {
          if (mine.contains(p.key())) {
            KILN_ASSIGN_OR_RETURN(mine[p.key()], Merge(mine[p.key()], *p, path, depth + 1));
          } else {
            mine[p.key()] = *p;
          }
        }
      } else if (k == "required") {
        for (const auto& r : theirs) {
          if (std::find(mine.begin(), mine.end(), r) == mine.end()) mine.push_back(r);
        }
      } else if (k == "items") {
        KILN_ASSIGN_OR_RETURN(mine, Merge(mine, theirs, path, depth + 1));
      } else if (k == "minLength" || k == "minItems" || k == "minimum" ||
                 k == "exclusiveMinimum") {
        if (theirs.get<double>() > mine.get<double>()) mine = theirs;
      } else if (k == "maxLength" || k == "maxItems" || k == "maximum" ||
                 k == "exclusiveMaximum") {
        if (theirs.get<double>() < mine.get<double>()) mine = theirs;
      } else if (k == "enum" || k == "const") {
        ojson va = k == "enum" ? mine : ojson::array({mine});
        ojson vb = k == "enum" ? theirs : ojson::array({theirs});
        ojson keep = ojson::array();
        for (const auto& v : va) {
          if (std::find(vb.begin(), vb.end(), v) != vb.end()) keep.push_back(v);
        }
        out.erase(k);
        if (keep.empty()) return ojson(false);
        if (out.contains("enum") || out.contains("const")) return Refuse("allOf", path, "enum with const");
        out["enum"] = keep;
      } else {
        return Refuse("allOf", path, "cannot merge '" + k + "'");
      }
    }
    // additionalProperties in one part judges the other part's properties: only exact when the
    // part that has it already declares every property.
    for (const ojson* x : {&a, &b}) {
      const ojson* other = x == &a ? &b : &a;
      if (!x->contains("additionalProperties") || (*x)["additionalProperties"] == true) continue;
      if (!other->contains("properties")) continue;
      for (auto p = (*other)["properties"].begin(); p != (*other)["properties"].end(); ++p) {
        if (!x->contains("properties") || !(*x)["properties"].contains(p.key())) {
          return Refuse("additionalProperties", path, "combined with other properties in allOf");
        }
      }
    }
    return out;
  }

  static std::set<std::string> TypeSet(const ojson& t) {
    std::set<std::string> out;
    if (t.is_string()) out.insert(t.get<std::string>());
    if (t.is_array()) {
      for (const auto& x : t) {
        if (x.is_string()) out.insert(x.get<std::string>());
      }
    }
    return out;
  }

  // ── anyOf / oneOf ──
  StatusOr<std::string> VisitAnyOf(const ojson& s, const std::string& path, int depth) {
    if (s.contains("anyOf") && s.contains("oneOf")) return Refuse("oneOf", path, "with anyOf");
    const char* key = s.contains("anyOf") ? "anyOf" : "oneOf";
    const ojson& branches = s[key];
    if (!branches.is_array() || branches.empty()) return Refuse(key, path, "not a non-empty array");
    ojson rest = s;
    rest.erase(key);
    bool has_rest = HasConstraintsBesides(rest, {});
    std::vector<ojson> merged;
    for (const auto& b : branches) {
      if (has_rest) {
        KILN_ASSIGN_OR_RETURN(ojson m, Merge(rest, b, path, 0));
        merged.push_back(std::move(m));
      } else {
        merged.push_back(b);
      }
    }
    if (std::string(key) == "oneOf") {
      for (size_t i = 0; i < merged.size(); ++i) {
        for (size_t j = i + 1; j < merged.size(); ++j) {
          KILN_ASSIGN_OR_RETURN(bool disjoint, Disjoint(merged[i], merged[j], path));
          if (!disjoint) {
            return Refuse("oneOf", path,
                          "branches may overlap (oneOf is enforced only for provably disjoint "
                          "branches)");
          }
        }
      }
    }
    std::vector<std::string> alts;
    for (size_t i = 0; i < merged.size(); ++i) {
      KILN_ASSIGN_OR_RETURN(std::string e, Visit(merged[i], path + "/" + key + "/" +
                                                                std::to_string(i), depth + 1));
      alts.push_back(e);
    }
    return AddRule(key, Join(alts, " | "));
  }

  // What a (merged) schema can match, coarsely: JSON types, or an explicit value list.
  StatusOr<bool> Disjoint(const ojson& a, const ojson& b, const std::string& path) {
    auto values = [&](const ojson& s, std::vector<ojson>* out) -> StatusOr<bool> {
      ojson x = s;
      if (x.is_object() && x.contains("$ref") && x.size() == 1) {
        KILN_ASSIGN_OR_RETURN(const ojson* t, Resolve(x["$ref"].get<std::string>(), path));
        x = *t;
      }
      if (!x.is_object()) return false;
      if (x.contains("const")) {
        out->push_back(x["const"]);
        return true;
      }
      if (x.contains("enum") && x["enum"].is_array()) {
        for (const auto& v : x["enum"]) out->push_back(v);
        return true;
      }
      return false;
    };
    std::vector<ojson> va, vb;
    KILN_ASSIGN_OR_RETURN(bool ha, values(a, &va));
    KILN_ASSIGN_OR_RETURN(bool hb, values(b, &vb));
    if (ha && hb) {
      for (const auto& x : va) {
        if (std::find(vb.begin(), vb.end(), x) != vb.end()) return false;
      }
      return true;
    }
    KILN_ASSIGN_OR_RETURN(std::set<std::string> ta, Types(a, path));
    KILN_ASSIGN_OR_RETURN(std::set<std::string> tb, Types(b, path));
    for (const auto& t : ta) {
      if (tb.count(t)) return false;
    }
    return true;
  }

  StatusOr<std::set<std::string>> Types(const ojson& s_in, const std::string& path) {
    ojson s = s_in;
    for (int i = 0; i < 8 && s.is_object() && s.contains("$ref"); ++i) {
      KILN_ASSIGN_OR_RETURN(const ojson* t, Resolve(s["$ref"].get<std::string>(), path));
      s = *t;
    }
    std::set<std::string> all(std::begin(kJsonTypes), std::end(kJsonTypes));
    if (s.is_boolean()) return s.get<bool>() ? all : std::set<std::string>{};
    if (!s.is_object()) return all;
    auto of_value = [](const ojson& v) -> std::string {
      if (v.is_null()) return "null";
      if (v.is_boolean()) return "boolean";
      if (v.is_object()) return "object";
      if (v.is_array()) return "array";
      if (v.is_string()) return "string";
      return "number";
    };
    if (s.contains("const")) return std::set<std::string>{of_value(s["const"])};
    if (s.contains("enum") && s["enum"].is_array()) {
      std::set<std::string> out;
      for (const auto& v : s["enum"]) out.insert(of_value(v));
      return out;
    }
    if (!s.contains("type") || s.contains("anyOf") || s.contains("oneOf") || s.contains("allOf")) {
      return all;
    }
    std::set<std::string> out;
    for (std::string t : TypeSet(s["type"])) out.insert(t == "integer" ? "number" : t);
    if (Nullable(s)) out.insert("null");
    return out;
  }

  // ── enum / const ──
  StatusOr<std::string> VisitEnum(const ojson& s, const std::string& path) {
    std::vector<ojson> values;
    if (s.contains("enum")) {
      for (const auto& v : s["enum"]) values.push_back(v);
    }
    if (s.contains("const")) {
      std::vector<ojson> keep;
      bool in_enum = !s.contains("enum") ||
                     std::find(values.begin(), values.end(), s["const"]) != values.end();
      if (in_enum) keep.push_back(s["const"]);
      values = keep;
    }
    for (auto it = s.begin(); it != s.end(); ++it) {
      const std::string& k = it.key();
      if (!IsConstraint(k) || k == "enum" || k == "const" || k == "type" || k == "nullable") continue;
      return Refuse(k, path, "combined with enum/const");
    }
    if (s.contains("type")) {
      std::set<std::string> types = TypeSet(s["type"]);
      if (Nullable(s)) types.insert("null");
      std::vector<ojson> keep;
      for (const auto& v : values) {
        bool ok = (v.is_null() && types.count("null")) || (v.is_boolean() && types.count("boolean")) ||
                  (v.is_object() && types.count("object")) || (v.is_array() && types.count("array")) ||
                  (v.is_string() && types.count("string")) ||
                  (v.is_number() && (types.count("number") ||
                                     (types.count("integer") && IsIntegral(v))));
        if (ok) keep.push_back(v);
      }
      values = keep;
    }
    if (values.empty()) return Base("never");
    std::vector<std::string> alts;
    for (const auto& v : values) alts.push_back(Literal(nlohmann::json::parse(v.dump())));
    return AddRule("enum", Join(alts, " | "));
  }

  // OpenAPI's `nullable: true`; a non-boolean value is refused where the type is built.
  static bool Nullable(const ojson& s) {
    auto it = s.find("nullable");
    return it != s.end() && it->is_boolean() && it->get<bool>();
  }

  static bool IsIntegral(const ojson& v) {
    if (v.is_number_integer()) return true;
    double d = v.get<double>();
    return std::isfinite(d) && std::floor(d) == d;
  }

  std::string Literal(const nlohmann::json& v) {
    if (v.is_number()) {
      double d = v.get<double>();
      if (v.is_number_integer() || (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 1e15)) {
        std::string text = v.is_number_integer() ? v.dump() : StrFormat("%.0f", d);
        if (text == "-0") text = "0";
        Base("intfrac");
        std::string out = "( " + GbnfQuote(text) + " intfrac";
        // Large values also as the float text json.dumps writes (9.007199254740992e+15).
        std::string as_double = nlohmann::json(d).dump();
        if (as_double.find_first_of("eE") != std::string::npos) out += " | " + GbnfQuote(as_double);
        return out + " )";
      }
      return GbnfQuote(v.dump());
    }
    if (v.is_array()) {
      std::vector<std::string> parts;
      for (const auto& e : v) parts.push_back(Literal(e));
      Base("ws");
      if (parts.empty()) return "( \"[\" ws \"]\" )";
      return "( \"[\" ws " + Join(parts, " ws \",\" ws ") + " ws \"]\" )";
    }
    if (v.is_object()) {
      std::vector<std::string> parts;
      for (auto it = v.begin(); it != v.end(); ++it) {
        parts.push_back(GbnfQuote(nlohmann::json(it.key()).dump()) + " ws \":\" ws " +
                        Literal(*it));
      }
      Base("ws");
      if (parts.empty()) return "( \"{\" ws \"}\" )";
      return "( \"{\" ws " + Join(parts, " ws \",\" ws ") + " ws \"}\" )";
    }
    return GbnfQuote(v.dump());
  }

  // ── types ──
  StatusOr<std::string> VisitTypes(const ojson& s, const std::string& path, int depth) {
    std::set<std::string> types;
    if (s.contains("type")) {
      const ojson& t = s["type"];
      types = TypeSet(t);
      for (const auto& x : types) {
        if (x != "integer" && std::find(std::begin(kJsonTypes), std::end(kJsonTypes), x) ==
                                  std::end(kJsonTypes)) {
          return Refuse("type", path, "unknown type '" + x + "'");
        }
      }
    } else {
      types.insert(std::begin(kJsonTypes), std::end(kJsonTypes));
    }
    if (Nullable(s)) types.insert("null");
    if (types.count("number")) types.erase("integer");
    std::vector<std::string> alts;
    for (const std::string& t : types) {
      std::string e;
      if (t == "null" || t == "boolean") {
        e = Base(t);
      } else if (t == "string") {
        KILN_ASSIGN_OR_RETURN(e, StringRule(s, path));
      } else if (t == "number" || t == "integer") {
        KILN_ASSIGN_OR_RETURN(e, NumberRule(s, path, t == "integer"));
      } else if (t == "array") {
        KILN_ASSIGN_OR_RETURN(e, ArrayRule(s, path, depth));
      } else if (t == "object") {
        KILN_ASSIGN_OR_RETURN(e, ObjectRule(s, path, depth));
      }
      alts.push_back(e);
    }
    if (alts.empty()) return Base("never");
    if (alts.size() == 1) return alts[0];
    return AddRule("types", Join(alts, " | "));
  }

  StatusOr<int64_t> NonNegInt(const ojson& s, const char* key, const std::string& path) {
    const ojson& v = s[key];
    if (!v.is_number() || !IsIntegral(v) || v.get<double>() < 0) {
      return Refuse(key, path, "not a non-negative integer");
    }
    return v.get<double>() > 1e15 ? int64_t{1'000'000'000'000'000} : v.get<int64_t>();
  }

  StatusOr<std::string> StringRule(const ojson& s, const std::string& path) {
    std::vector<std::string> kinds;
    for (const char* k : {"pattern", "format", "minLength", "maxLength"}) {
      if (s.contains(k)) kinds.push_back(k);
    }
    bool has_len = s.contains("minLength") || s.contains("maxLength");
    int n_kinds = s.contains("pattern") + s.contains("format") + has_len;
    if (n_kinds > 1) {
      return Refuse(kinds.back(), path, "combined with " + kinds.front());
    }
    Base("string");
    if (s.contains("pattern")) {
      CharSetEmitter emit = [this](const std::vector<CodeRange>& r) { return JsonChars(r); };
      auto body = RegexToGbnf(s["pattern"].get<std::string>(), emit, "jchar");
      if (!body.ok()) return Refuse("pattern", path, body.status().message());
      return AddRule("pattern", "\"\\\"\" " + *body + " \"\\\"\"");
    }
    if (s.contains("format")) {
      auto it = Formats().find(s["format"].get<std::string>());
      if (it == Formats().end()) {
        return Refuse("format", path, "format '" + s["format"].get<std::string>() + "'");
      }
      return AddRule("format", "\"\\\"\" " + Base(it->second) + " \"\\\"\"");
    }
    if (has_len) {
      int64_t lo = 0, hi = -1;
      if (s.contains("minLength")) {
        KILN_ASSIGN_OR_RETURN(lo, NonNegInt(s, "minLength", path));
      }
      if (s.contains("maxLength")) {
        KILN_ASSIGN_OR_RETURN(hi, NonNegInt(s, "maxLength", path));
      }
      if (hi >= 0 && hi < lo) return Base("never");
      if (lo > kMaxRepetition) return Refuse("minLength", path, "too large");
      if (hi > kMaxRepetition) return Refuse("maxLength", path, "too large");
      std::string rep = hi < 0 ? StrFormat("{%lld,}", static_cast<long long>(lo))
                               : StrFormat("{%lld,%lld}", static_cast<long long>(lo),
                                           static_cast<long long>(hi));
      return AddRule("str", "\"\\\"\" jchar" + rep + " \"\\\"\"");
    }
    return std::string("string");
  }

  // One JSON-string character whose decoded value is in ranges: raw, or the escape that
  // nlohmann/Python json.dumps produce for '"', '\\' and control characters.
  std::string JsonChars(const std::vector<CodeRange>& ranges) {
    std::vector<CodeRange> norm = Normalize(ranges);
    std::vector<CodeRange> specials;
    for (uint32_t c = 0; c < 0x20; ++c) specials.push_back({c, c});
    specials.push_back({'"', '"'});
    specials.push_back({'\\', '\\'});
    std::vector<CodeRange> without;
    {
      std::vector<CodeRange> comp = Complement(specials);
      // intersection of norm and comp
      for (CodeRange a : norm) {
        for (CodeRange b : comp) {
          uint32_t lo = std::max(a.lo, b.lo), hi = std::min(a.hi, b.hi);
          if (lo <= hi) without.push_back({lo, hi});
        }
      }
    }
    std::vector<std::string> alts;
    if (!without.empty()) alts.push_back(GbnfClass(without));
    std::string long_form[2];  // hex digits after \u000 / \u001
    for (CodeRange sp : specials) {
      bool in = std::any_of(norm.begin(), norm.end(),
                            [&](CodeRange r) { return r.lo <= sp.lo && sp.lo <= r.hi; });
      if (!in) continue;
      switch (sp.lo) {
        case '"': alts.push_back(GbnfQuote("\\\"")); break;
        case '\\': alts.push_back(GbnfQuote("\\\\")); break;
        case '\b': alts.push_back(GbnfQuote("\\b")); break;
        case '\f': alts.push_back(GbnfQuote("\\f")); break;
        case '\n': alts.push_back(GbnfQuote("\\n")); break;
        case '\r': alts.push_back(GbnfQuote("\\r")); break;
        case '\t': alts.push_back(GbnfQuote("\\t")); break;
        default: long_form[sp.lo >> 4] += "0123456789abcdef"[sp.lo & 15];
      }
    }
    for (int hi = 0; hi < 2; ++hi) {
      if (!long_form[hi].empty()) {
        alts.push_back(GbnfQuote(hi ? "\\u001" : "\\u000") + " [" + long_form[hi] + "]");
      }
    }
    if (alts.empty()) return Base("never");
    return alts.size() == 1 ? alts[0] : "( " + Join(alts, " | ") + " )";
  }

  // Integer-valued bounds: lo (lo_incl) and hi (hi_incl), infinite when absent.
  struct Bounds {
    double lo = -INFINITY, hi = INFINITY;
    bool lo_incl = true, hi_incl = true;
  };
  StatusOr<Bounds> GetBounds(const ojson& s, const std::string& path) {
    Bounds b;
    constexpr double kLimit = 1e15;
    for (const char* k : {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"}) {
      if (!s.contains(k)) continue;
      double v = s[k].get<double>();
      if (!std::isfinite(v) || std::fabs(v) > kLimit) return Refuse(k, path, "out of range");
      bool excl = k[0] == 'e';
      bool lower = std::string(k).find("inimum") != std::string::npos;
      if (lower && (v > b.lo || (v == b.lo && excl))) {
        b.lo = v;
        b.lo_incl = !excl;
      }
      if (!lower && (v < b.hi || (v == b.hi && excl))) {
        b.hi = v;
        b.hi_incl = !excl;
      }
    }
    return b;
  }

  // Decimal magnitudes I(.F)? (no sign, no exponent) in [a, b] with open/closed ends; a >= 0.
  std::string Magnitude(int64_t a, bool a_incl, double b, bool b_incl) {
    std::string any = "( \".\" [0-9]+ )?", zero = "( \".\" \"0\"+ )?";
    std::string nonzero = "\".\" [0-9]* [1-9] [0-9]*";
    std::vector<std::string> alts;
    if (std::isfinite(b) && static_cast<double>(a) > b) return Base("never");
    if (std::isfinite(b) && static_cast<double>(a) == b) {
      return a_incl && b_incl ? GbnfQuote(std::to_string(a)) + " " + zero : Base("never");
    }
    alts.push_back(GbnfQuote(std::to_string(a)) + " " + (a_incl ? any : nonzero));
    int64_t mid_hi = std::isfinite(b) ? static_cast<int64_t>(b) - 1 : -1;
    if (!std::isfinite(b) || a + 1 <= mid_hi) alts.push_back(NaturalRange(a + 1, mid_hi) + " " + any);
    if (std::isfinite(b) && b_incl) alts.push_back(GbnfQuote(std::to_string(static_cast<int64_t>(b))) + " " + zero);
    return "( " + Join(alts, " | ") + " )";
  }

  StatusOr<std::string> NumberRule(const ojson& s, const std::string& path, bool integer) {
    bool bounded = false;
    for (const char* k : {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}) {
      if (!s.contains(k)) continue;
      if (!integer && !IsIntegral(s[k])) {
        return Refuse(k, path, "non-integer bounds are enforced on integers only");
      }
      bounded = true;
    }
    if (!bounded) return Base(integer ? "integer" : "number");
    KILN_ASSIGN_OR_RETURN(Bounds bd, GetBounds(s, path));
    if (!integer) {  // exact decimal grammar, no exponent form (documented)
      std::vector<std::string> alts;
      if (bd.hi > 0 || (bd.hi == 0 && bd.hi_incl)) {
        bool zero_ok = bd.lo < 0 || (bd.lo == 0 && bd.lo_incl);
        int64_t a = bd.lo < 0 ? 0 : static_cast<int64_t>(bd.lo);
        alts.push_back(Magnitude(a, bd.lo < 0 ? zero_ok : bd.lo_incl, bd.hi, bd.hi_incl));
      }
      if (bd.lo < 0) {  // negative values: magnitude in (max(0, -hi), -lo]
        int64_t a = bd.hi < 0 ? static_cast<int64_t>(-bd.hi) : 0;
        bool a_incl = bd.hi < 0 ? bd.hi_incl : false;
        double b = std::isfinite(bd.lo) ? -bd.lo : INFINITY;
        alts.push_back("\"-\" " + Magnitude(a, a_incl, b, bd.lo_incl));
      }
      if (alts.empty()) return Base("never");
      return AddRule("num", Join(alts, " | "));
    }
    // Integer bounds: the tightest inclusive [lo, hi].
    double lo = bd.lo_incl ? std::ceil(bd.lo) : std::floor(bd.lo) + 1;
    double hi = bd.hi_incl ? std::floor(bd.hi) : std::ceil(bd.hi) - 1;
    if (lo > hi) return Base("never");
    std::vector<std::string> alts;
    // Negative part: magnitudes [max(1, -hi), -lo].
    if (lo < 0) {
      int64_t mag_lo = std::isfinite(hi) ? std::max<int64_t>(1, static_cast<int64_t>(-hi)) : 1;
      int64_t mag_hi = std::isfinite(lo) ? static_cast<int64_t>(-lo) : -1;
      if (mag_hi < 0 || mag_lo <= mag_hi) alts.push_back("\"-\" " + NaturalRange(mag_lo, mag_hi));
    }
    if (hi >= 0) {
      int64_t a = std::isfinite(lo) ? std::max<int64_t>(0, static_cast<int64_t>(lo)) : 0;
      int64_t b = std::isfinite(hi) ? static_cast<int64_t>(hi) : -1;
      alts.push_back(NaturalRange(a, b));
    }
    Base("intfrac");
    Base("never");
    return AddRule("int", "( " + Join(alts, " | ") + " ) intfrac");
  }

  StatusOr<std::string> ArrayRule(const ojson& s, const std::string& path, int depth) {
    std::vector<std::string> prefix;
    if (s.contains("prefixItems")) {
      for (size_t i = 0; i < s["prefixItems"].size(); ++i) {
        KILN_ASSIGN_OR_RETURN(std::string e, Visit(s["prefixItems"][i],
                                                   path + "/prefixItems/" + std::to_string(i),
                                                   depth + 1));
        prefix.push_back(e);
      }
    }
    std::string item = Base("value");
    bool items_allowed = true;
    if (s.contains("items")) {
      const ojson& it = s["items"];
      if (it == false) {
        items_allowed = false;
      } else {
        KILN_ASSIGN_OR_RETURN(item, Visit(it, path + "/items", depth + 1));
      }
    }
    int64_t min = 0, max = -1;
    if (s.contains("minItems")) {
      KILN_ASSIGN_OR_RETURN(min, NonNegInt(s, "minItems", path));
    }
    if (s.contains("maxItems")) {
      KILN_ASSIGN_OR_RETURN(max, NonNegInt(s, "maxItems", path));
    }
    int64_t k = static_cast<int64_t>(prefix.size());
    if (!items_allowed) max = max < 0 ? k : std::min(max, k);
    if (max >= 0 && max < min) return Base("never");
    if (min > kMaxRepetition) return Refuse("minItems", path, "too large");
    if (max > kMaxRepetition) return Refuse("maxItems", path, "too large");
    Base("ws");
    if (max == 0) return AddRule("arr", "\"[\" ws \"]\"");
    // tail(i): the elements after the i-th, each with a leading separator.
    std::string tail;
    int64_t i_start = std::max<int64_t>(k, 1);
    {
      int64_t rep_lo = std::max<int64_t>(0, min - i_start);
      std::string rep = max < 0 ? StrFormat("{%lld,}", static_cast<long long>(rep_lo))
                                : StrFormat("{%lld,%lld}", static_cast<long long>(rep_lo),
                                            static_cast<long long>(std::max<int64_t>(0, max - i_start)));
      if (max < 0 || max > i_start) tail = "( ws \",\" ws " + item + " )" + rep;
    }
    for (int64_t i = std::min<int64_t>(k, max < 0 ? k : max) - 1; i >= 1; --i) {
      std::string piece = "ws \",\" ws " + prefix[i] + (tail.empty() ? "" : " " + tail);
      tail = i < min ? piece : "( " + piece + " )?";
    }
    std::string first = k > 0 ? prefix[0] : item;
    std::string body = first + (tail.empty() ? "" : " " + tail);
    if (min == 0) return AddRule("arr", "\"[\" ws ( " + body + " ws )? \"]\"");
    return AddRule("arr", "\"[\" ws " + body + " ws \"]\"");
  }

  StatusOr<std::string> ObjectRule(const ojson& s, const std::string& path, int depth) {
    struct Prop {
      std::string key;
      const ojson* schema;
      bool required;
    };
    std::vector<Prop> props;
    std::set<std::string> required;
    if (s.contains("required")) {
      for (const auto& r : s["required"]) {
        required.insert(r.get<std::string>());
      }
    }
    static const ojson kTrue = true;
    const ojson* additional = &kTrue;
    if (s.contains("additionalProperties")) additional = &s["additionalProperties"];
    if (s.contains("properties")) {
      for (auto it = s["properties"].begin(); it != s["properties"].end(); ++it) {
        props.push_back({it.key(), &*it, required.count(it.key()) > 0});
      }
    }
    for (const auto& r : required) {  // required but not declared: judged by additionalProperties
      bool declared = std::any_of(props.begin(), props.end(), [&](const Prop& p) { return p.key == r; });
      if (!declared) props.push_back({r, additional, true});
    }
    Base("ws");
    std::vector<std::string> kvs;
    std::vector<bool> req;
    for (const Prop& p : props) {
      if (*p.schema == false) {
        if (p.required) return Base("never");
        continue;
      }
      KILN_ASSIGN_OR_RETURN(std::string v, Visit(*p.schema, path + "/properties/" + p.key, depth + 1));
      kvs.push_back(GbnfQuote(nlohmann::json(p.key).dump()) + " ws \":\" ws " + v);
      req.push_back(p.required);
    }
    std::string add_kv;
    if (*additional != false) {
      KILN_ASSIGN_OR_RETURN(std::string v, Visit(*additional, path + "/additionalProperties", depth + 1));
      std::vector<std::string> declared;
      for (const Prop& p : props) declared.push_back(p.key);
      add_kv = OtherKey(declared) + " ws \":\" ws " + v;
    }
    size_t n = kvs.size();
    // rest[j]: what may follow once property j-1 (or an earlier one) was written.
    std::vector<std::string> rest(n + 1);
    rest[n] = add_kv.empty() ? "" : AddRule("objrest", "( ws \",\" ws " + add_kv + " )*");
    for (size_t j = n; j-- > 0;) {
      std::string piece = "ws \",\" ws " + kvs[j];
      std::string body = req[j] ? piece : "( " + piece + " )?";
      if (!rest[j + 1].empty()) body += " " + rest[j + 1];
      rest[j] = AddRule("objrest", body);
    }
    std::vector<std::string> firsts;
    bool any_required = false;
    for (size_t k = 0; k < n; ++k) {
      firsts.push_back(kvs[k] + (rest[k + 1].empty() ? "" : " " + rest[k + 1]));
      if (req[k]) {
        any_required = true;
        break;
      }
    }
    if (!any_required && !add_kv.empty()) firsts.push_back(add_kv + " " + rest[n]);
    if (firsts.empty()) return AddRule("obj", "\"{\" ws \"}\"");
    std::string body = AddRule("objbody", Join(firsts, " | "));
    if (any_required) return AddRule("obj", "\"{\" ws " + body + " ws \"}\"");
    return AddRule("obj", "\"{\" ws ( " + body + " ws )? \"}\"");
  }

  // A key that is none of `declared`: any JSON string if nothing is declared, else a string in
  // canonical form (raw UTF-8, json.dumps escapes) whose decoded value is not a declared name,
  // built as the complement of the names' trie (one rule per trie node).
  std::string OtherKey(const std::vector<std::string>& declared) {
    if (declared.empty()) return Base("string");
    struct Node {
      std::map<uint32_t, int> next;
      bool terminal = false;
    };
    std::vector<Node> trie(1);
    for (const std::string& name : declared) {
      int cur = 0;
      for (size_t i = 0; i < name.size();) {
        uint32_t cp = 0xFFFD;
        int len = Utf8Decode(std::string_view(name).substr(i), &cp);
        i += len > 0 ? len : 1;
        auto it = trie[cur].next.find(cp);
        if (it == trie[cur].next.end()) {
          trie.push_back({});
          it = trie[cur].next.emplace(cp, static_cast<int>(trie.size()) - 1).first;
        }
        cur = it->second;
      }
      trie[cur].terminal = true;
    }
    std::string any = AddRule("keychar", JsonChars({{0, 0x10FFFF}}));
    std::vector<std::string> names(trie.size());
    for (size_t i = 0; i < trie.size(); ++i) names[i] = NewRule("notkey");
    for (size_t i = 0; i < trie.size(); ++i) {
      std::vector<std::string> alts;
      if (!trie[i].terminal) alts.push_back("\"\"");
      std::vector<CodeRange> used;
      for (const auto& [cp, child] : trie[i].next) {
        alts.push_back(JsonChars({{cp, cp}}) + " " + names[child]);
        used.push_back({cp, cp});
      }
      std::vector<CodeRange> others = Complement(used);
      if (!others.empty()) alts.push_back(JsonChars(others) + " " + any + "*");
      SetRule(names[i], alts.empty() ? Base("never") : Join(alts, " | "));
    }
    return AddRule("otherkey", "\"\\\"\" " + names[0] + " \"\\\"\"");
  }

  static constexpr int kMaxDepth = 64;
  const ojson& root_;
  JsonSchemaOptions opts_;
  std::vector<std::pair<std::string, std::string>> rules_;
  std::map<std::string, size_t> rule_index_;
  std::vector<std::string> base_used_;
  std::map<std::string, std::string> ref_rules_;
};

}  // namespace

StatusOr<std::string> JsonSchemaToGbnf(std::string_view schema_json, const JsonSchemaOptions& opts) {
  ojson schema = ojson::parse(schema_json, nullptr, /*allow_exceptions=*/false);
  if (schema.is_discarded()) return InvalidArgument("JSON Schema is not valid JSON");
  try {
    return Converter(schema, opts).Run();
  } catch (const nlohmann::json::exception& e) {
    // A keyword whose value has a type the converter did not check first. The request still
    // fails closed; kInternal marks it as kiln's bug (json_schema_fuzz traps on it).
    return Internal("JSON Schema converter: %s", e.what());
  }
}

std::string JsonObjectGbnf() {
  auto g = JsonSchemaToGbnf(R"({"type":"object"})");
  KILN_CHECK(g.ok()) << g.status().ToString();
  return *g;
}

}  // namespace kiln::grammar
