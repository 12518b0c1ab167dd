"""Shared paths for the Python tests: the kiln binary, the oracle, the real models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("KILN_BUILD_DIR", ROOT / "build"))
KILN = Path(os.environ.get("KILN_BIN", BUILD / "kiln"))
ORACLE = ROOT / "tools" / "oracle" / "llama_ref.mjs"
NODE_MODULES = Path(os.environ.get("KILN_NODE_MODULES", ROOT / ".deps" / "node" / "node_modules"))
MODELS = Path(os.environ.get("KILN_CACHE", Path.home() / ".cache" / "kiln")) / "models"
SMOLLM = MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA = MODELS / "gemma-3-270m-q4_k_m.gguf"
WIKI = ROOT.parent / "shared" / "data" / "wikitext-2-raw" / "wiki.test.raw"


def require(path: Path, what: str) -> None:
    if not path.exists():
        pytest.skip(f"{what} missing at {path} (run scripts/fetch_models.sh / scripts/build.sh)")


def kiln(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    require(KILN, "kiln binary")
    proc = subprocess.run([str(KILN), *args], capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"kiln {' '.join(args)} failed:\n{proc.stderr[-3000:]}"
    return proc


def kiln_json(*args: str, timeout: float = 600) -> dict:
    return json.loads(kiln(*args, timeout=timeout).stdout.strip().splitlines()[-1])


def oracle(*args: str, timeout: float = 900) -> dict:
    if shutil.which("node") is None or not (NODE_MODULES / "node-llama-cpp").is_dir():
        pytest.skip(f"llama.cpp oracle missing under {NODE_MODULES} (run scripts/install_deps.sh)")
    proc = subprocess.run(["node", str(ORACLE), *args], capture_output=True, text=True,
                          timeout=timeout,
                          env={**os.environ, "NODE_LLAMA_CPP_SKIP_DOWNLOAD": "true"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)
