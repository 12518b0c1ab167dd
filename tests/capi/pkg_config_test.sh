#!/usr/bin/env bash
# usage: pkg_config_test.sh BUILD_DIR SOURCE_DIR CC
# Installs the C API component into a scratch prefix, builds examples/c/chat.c the way
# docs/embedding.md says (pkg-config --cflags --libs kiln) and runs it on the default model.
set -euo pipefail
BUILD="$1"; SRC="$2"; CC="$3"
MODEL="${KILN_CACHE:-$HOME/.cache/kiln}/models/default.gguf"
if [[ ! -e "$MODEL" ]]; then echo "SKIP: $MODEL missing (scripts/fetch_models.sh)"; exit 77; fi
PREFIX="$(mktemp -d)"
trap 'rm -rf "$PREFIX"' EXIT
cmake --install "$BUILD" --component capi --prefix "$PREFIX" >/dev/null
PC_DIR="$(dirname "$(find "$PREFIX" -name kiln.pc | head -1)")"
export PKG_CONFIG_PATH="$PC_DIR"
LIBDIR="$(pkg-config --variable=libdir kiln)"
[[ -f "$PREFIX/include/kiln/kiln.h" ]] || { echo "kiln.h not installed"; exit 1; }
# shellcheck disable=SC2046
"$CC" -std=c99 -Wall -Wextra -pedantic -Werror "$SRC/examples/c/chat.c" \
  $(pkg-config --cflags --libs kiln) -Wl,-rpath,"$LIBDIR" -o "$PREFIX/chat"
# The binary must load the installed library, not the build tree's.
ldd "$PREFIX/chat" | grep -q "$LIBDIR/libkiln.so.1" || { ldd "$PREFIX/chat"; exit 1; }
OUT="$("$PREFIX/chat" "$MODEL" "Say hello in one word.")"
[[ "$OUT" =~ [A-Za-z] ]] || { echo "no answer: '$OUT'"; exit 1; }
echo "pkg_config_test: ok ($OUT)"
