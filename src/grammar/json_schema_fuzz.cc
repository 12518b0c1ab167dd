// libFuzzer target: JSON Schema text → GBNF → Grammar. The converter must never crash, and any
// GBNF it produces must parse (an error there is kiln's bug, not the input's), unless the grammar
// exceeds the size limits. Built with -DKILN_FUZZ=ON under clang (scripts/fuzz.sh).
#include <cstdint>
#include <cstdio>
#include <string_view>

#include "grammar/grammar.h"
#include "grammar/json_schema.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto gbnf = kiln::grammar::JsonSchemaToGbnf(text);
  if (!gbnf.ok()) {
    if (gbnf.status().message().empty()) __builtin_trap();  // errors must say why
    if (gbnf.status().code() == kiln::StatusCode::kInternal) {  // the converter's own bug
      std::fprintf(stderr, "%s\n", gbnf.status().ToString().c_str());
      __builtin_trap();
    }
    return 0;
  }
  auto g = kiln::grammar::Grammar::FromGbnf(*gbnf);
  if (!g.ok() && g.status().code() != kiln::StatusCode::kResourceExhausted) {
    std::fprintf(stderr, "converter produced GBNF that does not parse: %s\n%s\n",
                 g.status().ToString().c_str(), gbnf->c_str());
    __builtin_trap();
  }
  return 0;
}
