#!/usr/bin/env bash
# build.sh [release|asan]: configures and builds into build/ or build-asan/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODE="${1:-release}"
case "$MODE" in
  release) DIR="$ROOT/build"; ARGS=(-DCMAKE_BUILD_TYPE=Release) ;;
  asan) DIR="$ROOT/build-asan"; ARGS=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_SANITIZE=ON) ;;
  *) echo "usage: build.sh [release|asan]" >&2; exit 2 ;;
esac
cmake -S "$ROOT" -B "$DIR" -G Ninja "${ARGS[@]}" >/dev/null
cmake --build "$DIR" -j "$(nproc)"
