// JSON Schema (draft 2020-12, as structured-output APIs use it) → GBNF text for Grammar::FromGbnf.
// Fails closed: a keyword kiln cannot enforce exactly is an error whose message names it
// (InvalidArgument "unsupported JSON Schema keyword 'uniqueItems' at #/properties/x"), never
// an ignored constraint. Annotations (title, description, examples, default, $comment, $schema,
// deprecated, readOnly, writeOnly, content*) are ignored: they do not constrain.
//
// Policies (see src/grammar/README.md):
// - Output is JSON text with at most kMaxJsonWhitespace whitespace characters ([ \t\n\r])
//   between tokens and none before or after the top-level value.
// - Object properties come in the schema's `properties` order, then additional properties.
// - enum/const accept the canonical serialization (nlohmann/Python json.dumps compact escapes,
//   keys sorted, raw UTF-8); integers also as "N.0".
// - integer = -?(0|[1-9][0-9]*)(.0+)? (1.0 is an integer in JSON Schema); ranges exact.
// - minimum/maximum/exclusive* are enforced exactly on integers (digit grammars); on
//   non-integer numbers they are refused (named).
// - oneOf is accepted only when its branches are provably disjoint (different JSON types or
//   distinct constants), else refused. allOf/$ref-with-siblings are merged where expressible.
// - format: date, time, date-time, uuid, email (simplified), uri, ipv4 are enforced (as
//   assertions, unlike the 2020-12 default of annotation); other formats are refused.
// - string length counts characters/escapes (a \uD83D\uDE00 pair counts 2); pattern, format
//   and length cannot be combined on one string (refused); pattern strings use raw UTF-8 and the
//   canonical escapes only; additional-property keys that must differ from declared names too.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"

namespace kiln::grammar {

constexpr int kMaxJsonWhitespace = 20;

struct JsonSchemaOptions {
  // OpenAPI-style `"nullable": true` accepted as "or null".
  bool allow_nullable = true;
};

StatusOr<std::string> JsonSchemaToGbnf(std::string_view schema_json,
                                       const JsonSchemaOptions& opts = {});

// Any JSON object ({"type":"json_object"} mode).
std::string JsonObjectGbnf();

}  // namespace kiln::grammar
