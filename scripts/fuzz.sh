#!/usr/bin/env bash
# Bounded libFuzzer runs of the grammar front ends (src/grammar/grammar_fuzz.cc: GBNF parser +
# a masked walk; src/grammar/json_schema_fuzz.cc: JSON Schema converter) with ASan+UBSan under
# clang-14. Seeds: every schema of the JSON-Schema-Test-Suite (draft 2020-12, ../shared/data)
# and the grammars below. CI: `scripts/fuzz.sh 60` (60 s per target); longer runs on demand.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET=60]   (build dir: build-fuzz, corpora kept there)
# KILN_FUZZ_SEED (default 1) makes runs reproducible: CI always explores the same inputs, so a
# CI failure is a regression, and new findings come from long or random-seed local runs
# (KILN_FUZZ_SEED=0: libFuzzer picks a random seed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_BUDGET="${1:-60}"
SEED="${KILN_FUZZ_SEED:-1}"
BUILD="${KILN_FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
SUITE="${KILN_SHARED_DATA:-$ROOT/../shared/data}/json-schema-test-suite/draft2020-12"

# Every library gets coverage hooks and ASan+UBSan; the targets link libFuzzer's main.
SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
mkdir -p "$BUILD"
CC=clang-14 CXX=clang++-14 cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKILN_FUZZ=ON -DKILN_BUILD_TESTS=OFF -DCMAKE_C_FLAGS="$SAN" -DCMAKE_CXX_FLAGS="$SAN" \
  > "$BUILD/configure.log" 2>&1 \
  || { cat "$BUILD/configure.log"; exit 1; }
cmake --build "$BUILD" --target grammar_fuzz json_schema_fuzz -j "$(nproc)"

# Seed corpora (libFuzzer adds what it finds to the same folders).
SCHEMAS="$BUILD/json_schema_corpus" GRAMMARS="$BUILD/grammar_corpus"
mkdir -p "$SCHEMAS" "$GRAMMARS"
if [[ -d "$SUITE" ]]; then
  python3 - "$SUITE" "$SCHEMAS" <<'PY'
import json, pathlib, sys
suite, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
n = 0
for f in sorted(suite.rglob("*.json")):
    try:
        groups = json.loads(f.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        continue
    for g in groups if isinstance(groups, list) else []:
        if isinstance(g, dict) and "schema" in g:
            (out / f"suite_{n:04d}.json").write_text(json.dumps(g["schema"]), encoding="utf-8")
            n += 1
print(f"fuzz: {n} JSON-Schema-Test-Suite schemas as seeds")
PY
else
  echo "fuzz: no JSON-Schema-Test-Suite at $SUITE; schema seeds are the few below only"
fi
printf '%s' '{"type":"object","properties":{"name":{"type":"string","maxLength":20},"age":{"type":"integer","minimum":0,"maximum":150},"tags":{"type":"array","items":{"enum":["a","b"]},"minItems":1,"maxItems":3}},"required":["name"],"additionalProperties":false}' > "$SCHEMAS/seed_tool.json"
printf '%s' '{"$defs":{"n":{"type":"object","properties":{"v":{"type":"integer"},"k":{"type":"array","items":{"$ref":"#/$defs/n"}}}}},"$ref":"#/$defs/n"}' > "$SCHEMAS/seed_ref.json"
printf '%s' '{"type":"object","properties":{"d":{"type":"string","format":"date"},"u":{"type":"string","format":"uuid"},"e":{"type":"string","format":"email"},"p":{"type":"string","pattern":"^[A-Z]{2}-[0-9]{3}$"},"x":{"anyOf":[{"type":"null"},{"type":"number"}]}}}' > "$SCHEMAS/seed_formats.json"
g() { printf '%s' "$2" > "$GRAMMARS/seed_$1.gbnf"; }
g word 'root ::= [a-z]{2,5} ("-" [0-9]{1,3})?'
g csv $'root ::= row ("\\n" row){0,2}\nrow ::= cell ("," cell){2}\ncell ::= [A-Za-z0-9]{1,8}'
g unicode 'root ::= [à-ÿ\u0100-\U0001F600]{1,4} "!" [^a-z\x00]* .'
g parens $'root ::= pair+\npair ::= "(" pair* ")"  # comment'
g json $'root ::= value\nvalue ::= object | array | string | number | ("true" | "false" | "null")\nobject ::= "{" ws (string ":" ws value ("," ws string ":" ws value)*)? "}"\narray ::= "[" ws (value ("," ws value)*)? "]"\nstring ::= "\\"" ([^"\\\\] | "\\\\" ["\\\\/bfnrt])* "\\""\nnumber ::= "-"? [0-9]+ ("." [0-9]+)?\nws ::= [ \\t\\n]*'
g escapes $'root ::= "\\x41\\u00e9\\t" [\\]\\-\\\\] "a"? "b"* "c"+ "d"{2} "e"{1,} "f"{0,3}'
DICT="$BUILD/grammar.dict"
printf '%s\n' '"::="' '"|"' '"("' '")"' '"*"' '"+"' '"?"' '"{"' '"}"' '"["' '"]"' '"^"' '"\""' \
  '"\\u"' '"\\x"' '"root"' '"#"' '"."' '","' > "$DICT"
SDICT="$BUILD/json_schema.dict"
printf '%s\n' '"\"type\""' '"\"object\""' '"\"array\""' '"\"string\""' '"\"integer\""' \
  '"\"number\""' '"\"properties\""' '"\"required\""' '"\"items\""' '"\"prefixItems\""' \
  '"\"enum\""' '"\"const\""' '"\"anyOf\""' '"\"oneOf\""' '"\"allOf\""' '"\"$ref\""' '"\"$defs\""' \
  '"\"pattern\""' '"\"format\""' '"\"minimum\""' '"\"maximum\""' '"\"minLength\""' \
  '"\"maxLength\""' '"\"minItems\""' '"\"maxItems\""' '"\"additionalProperties\""' \
  '"\"nullable\""' '"#/$defs/"' > "$SDICT"

# -rss_limit_mb bounds memory; any crash, sanitizer report, leak or timeout fails the run.
run() {
  local target="$1" corpus="$2" dict="$3"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$BUILD/src/grammar/$target" "$corpus" -dict="$dict" -max_total_time="$SECONDS_BUDGET" \
    -seed="$SEED" -max_len=4096 -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$BUILD/${target}_"
}
run grammar_fuzz "$GRAMMARS" "$DICT"
run json_schema_fuzz "$SCHEMAS" "$SDICT"
# The server's request parser (server/protocol/request_fuzz.cc): same build dir and flags.
KILN_FUZZ_BUILD_DIR="$BUILD" KILN_FUZZ_SEED="$SEED" "$ROOT/scripts/fuzz_server.sh" "$SECONDS_BUDGET"
echo "fuzz: grammar_fuzz and json_schema_fuzz ran ${SECONDS_BUDGET}s each (seed $SEED) without findings"
