#!/usr/bin/env bash
# Bounded libFuzzer run of the server's request parser (server/protocol/request_fuzz.cc) with
# ASan+UBSan under clang-14. CI: `scripts/fuzz_server.sh 60`; longer runs on demand.
# Usage: scripts/fuzz_server.sh [SECONDS=60]   (build dir: build-fuzz-server, corpus kept there)
# KILN_FUZZ_SEED (default 1): reproducible runs; 0 lets libFuzzer pick a random seed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_BUDGET="${1:-60}"
SEED="${KILN_FUZZ_SEED:-1}"
BUILD="${KILN_FUZZ_BUILD_DIR:-$ROOT/build-fuzz-server}"

# Every library gets coverage hooks and ASan+UBSan; request_fuzz links libFuzzer's main.
mkdir -p "$BUILD"
SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
CC=clang-14 CXX=clang++-14 cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKILN_FUZZ=ON -DKILN_BUILD_TESTS=OFF -DCMAKE_C_FLAGS="$SAN" -DCMAKE_CXX_FLAGS="$SAN" \
  > "$BUILD/configure.log" 2>&1 \
  || { cat "$BUILD/configure.log"; exit 1; }
cmake --build "$BUILD" --target request_fuzz -j "$(nproc)"

CORPUS="$BUILD/request_fuzz_corpus"
mkdir -p "$CORPUS"
seed() { printf '%s' "$2" > "$CORPUS/seed_$1.json"; }
seed chat '{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"max_tokens":5,"temperature":0.5,"top_p":0.9,"n":2,"stop":["a","b"],"seed":7}'
seed stream '{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],"stream":true,"stream_options":{"include_usage":true},"logprobs":true,"top_logprobs":3}'
seed completion '{"model":"m","prompt":[1,2,3],"max_tokens":3,"logprobs":2,"echo":false,"logit_bias":{"12":-5},"min_p":0.1,"top_k":4}'
seed extras '{"model":"m","prompt":"once","max_completion_tokens":4,"presence_penalty":0.5,"frequency_penalty":-0.5,"repetition_penalty":1.1,"min_tokens":1,"ignore_eos":true,"user":"u"}'
seed structured '{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"},"tools":[{"type":"function","function":{"name":"f","parameters":{}}}]}'
DICT="$BUILD/request_fuzz.dict"
printf '%s\n' '"{"' '"}"' '"["' '"]"' '":"' '","' '"\\u0000"' '"\\ud800"' '"1e400"' '"-0"' \
  '"null"' '"true"' '"false"' '"\"model\""' '"\"messages\""' '"\"role\""' '"\"content\""' \
  '"\"prompt\""' '"\"max_tokens\""' '"\"n\""' '"\"stop\""' '"\"stream\""' '"\"logit_bias\""' \
  '"\"top_logprobs\""' '"\"tool_calls\""' '"\"assistant\""' > "$DICT"

# -rss_limit_mb bounds memory; any crash, sanitizer report, leak or timeout fails the run.
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  "$BUILD/server/request_fuzz" "$CORPUS" -dict="$DICT" -max_total_time="$SECONDS_BUDGET" \
  -seed="$SEED" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$BUILD/request_fuzz_"
echo "fuzz_server: request_fuzz ran ${SECONDS_BUDGET}s (seed $SEED) without findings"
