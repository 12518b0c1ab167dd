#!/usr/bin/env bash
# The README's first command: installs dependencies, builds kiln, fetches the default model and
# generates text with it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/install_deps.sh"
"$ROOT/scripts/fetch_models.sh"
"$ROOT/scripts/build.sh" release
echo
"$ROOT/build/kiln" run -m default -p "The capital of France is" -n 32
