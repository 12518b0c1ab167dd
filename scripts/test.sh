#!/usr/bin/env bash
# The README's second command, and what CI runs: installs, builds (Release and ASan+UBSan),
# and runs every test tier. Exits non-zero on the first failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export KILN_DEPS="$ROOT/.deps"

step() { echo; echo "=== $* ($(date +%H:%M:%S))"; }

step "install dependencies"; scripts/install_deps.sh
step "fetch models"; KILN_FETCH_CODER=1 scripts/fetch_models.sh  # + the Qwen2.5-Coder pair (#15)
step "dependency table"; python3 tools/check_deps.py
step "build release"; scripts/build.sh release
export KILN_REQUIRE_ORACLES=1
step "unit + golden tests (release)"; ctest --test-dir build --output-on-failure -j "$(nproc)"
step "python tests: oracles, e2e, real models (release binaries)"
find_bin() { find "$ROOT/build" -name "$1" -type f -perm -u+x | head -1; }
export KILN_BUILD_DIR="$ROOT/build" KILN_BIN="$ROOT/build/kiln" KILN_REQUIRE_ORACLES=1
export KILN_TEMPLATE_DRIVER="$(find_bin kiln_template_driver)"
export KILN_GRAMMAR_DRIVER="$(find_bin kiln_grammar_driver)"
python3 -m pytest -q -rs tests/py --ignore=tests/py/test_python.py
step "python package: pip install . into a venv, then its tests"
python3 -m venv --system-site-packages build/py-venv
build/py-venv/bin/pip install -q --disable-pip-version-check ./
build/py-venv/bin/python -m pytest -q -rs tests/py/test_python.py
step "build asan"; scripts/build.sh asan
step "unit + golden tests (ASan+UBSan)"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j "$(nproc)" -LE slow
step "ARM (cross-compiled, qemu)"; scripts/test_arm.sh
step "libFuzzer, bounded (grammar, JSON Schema, request parser; clang-14 + ASan/UBSan)"
scripts/fuzz.sh 60
echo; echo "test.sh: all passed"
