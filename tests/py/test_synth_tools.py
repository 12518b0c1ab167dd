"""Checks the benchmark-model tools in tools/synth against llama.cpp's own quantizer.

tools/synth/llama_quantize.py calls llama_model_quantize of node-llama-cpp's prebuilt libllama
through ctypes (its parameter struct is checked against the library's defaults at run time);
tools/synth/quantize_gguf.py is kiln's numpy "pure" Q8_0/Q4_0 quantizer. Here, on the tiny
fixture llama3_tied (n_embd 64, so no K-quant can be tested: their rows must be multiples of
256 and llama.cpp falls back to other types):
- llama.cpp's quantizer (--pure) applied to the F32 fixture reproduces the committed Q4_0/Q8_0
  fixtures tensor for tensor (those were written by tools/hf_to_gguf.py);
- quantize_gguf.py and llama.cpp's quantizer agree byte for byte on the F16 fixture;
- kiln loads what llama_quantize.py writes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kiln_env import NODE_MODULES, ROOT, kiln_json

TINY = ROOT / "tests" / "testdata" / "tiny"
SYNTH = ROOT / "tools" / "synth"
LIB_DIR = NODE_MODULES / "@node-llama-cpp" / "linux-x64" / "bins" / "linux-x64"


def _need_libllama() -> None:
    if not any(LIB_DIR.glob("libllama*.so")):
        msg = f"libllama from node-llama-cpp missing under {LIB_DIR} (run scripts/install_deps.sh)"
        if os.environ.get("KILN_REQUIRE_ORACLES"):
            pytest.fail(msg)
        pytest.skip(msg)


def _run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SYNTH / script), *args], capture_output=True,
                          text=True, timeout=300)


def _llama_quantize(src: Path, dst: Path, qtype: str, *extra: str) -> None:
    _need_libllama()
    p = _run("llama_quantize.py", str(src), str(dst), "--type", qtype, "--threads", "1",
             "--quiet", "--lib-dir", str(LIB_DIR), *extra)
    assert p.returncode == 0, p.stderr[-3000:]
    assert dst.is_file()


def _same_tensors(a: Path, b: Path) -> None:
    p = _run("compare_gguf.py", str(a), str(b))
    assert p.returncode == 0, f"{a.name} vs {b.name}:\n{p.stdout[-3000:]}"
    assert " 0 differ" in p.stdout


@pytest.mark.parametrize("qtype", ["Q4_0", "Q8_0"])
def test_llama_quantizer_reproduces_fixture(tmp_path: Path, qtype: str) -> None:
    out = tmp_path / f"tied.{qtype}.gguf"
    _llama_quantize(TINY / "llama3_tied.gguf", out, qtype, "--pure")
    _same_tensors(TINY / f"llama3_tied.{qtype.lower()}.gguf", out)
    info = kiln_json("info", "-m", str(out), "--json")
    assert info["dtype_counts"] == {"f32": 8, qtype.lower(): 22}


@pytest.mark.parametrize("qtype", ["Q4_0", "Q8_0"])
def test_quantize_gguf_matches_llama_quantizer(tmp_path: Path, qtype: str) -> None:
    ours, theirs = tmp_path / "ours.gguf", tmp_path / "llama.gguf"
    p = _run("quantize_gguf.py", str(TINY / "llama3_tied.f16.gguf"), str(ours), "--type", qtype)
    assert p.returncode == 0, p.stderr[-3000:]
    _llama_quantize(TINY / "llama3_tied.f16.gguf", theirs, qtype, "--pure")
    _same_tensors(ours, theirs)


def test_llama_quantize_rejects_bad_input(tmp_path: Path) -> None:
    p = _run("llama_quantize.py", str(tmp_path / "missing.gguf"), str(tmp_path / "o.gguf"),
             "--type", "Q4_0")
    assert p.returncode != 0 and "src" in p.stderr
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    _need_libllama()
    p = _run("llama_quantize.py", str(bad), str(tmp_path / "o.gguf"), "--type", "Q4_0",
             "--lib-dir", str(LIB_DIR))
    assert p.returncode != 0 and "llama_model_quantize failed" in p.stderr
