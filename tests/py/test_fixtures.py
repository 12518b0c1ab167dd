"""Checks the tiny reference models in tests/testdata/tiny against llama.cpp.

The fixtures (HF folders, transformers float32 logits, GGUFs) are written by
tools/gen_tiny_models.py + tools/hf_to_gguf.py and committed. Here:
- the manifest is consistent with the files;
- the converter reproduces every committed GGUF byte for byte;
- F16/BF16/Q8_0/Q4_0 tensors are bit-identical to ggml's own reference
  converters/quantizers (libggml-base.so from node-llama-cpp, via ctypes);
- llama.cpp (node-llama-cpp, tools/oracle/llama_ref.mjs) run on every GGUF
  gives the transformers logits within the tolerances below, and its greedy
  continuation and llama-perplexity-style NLL match the reference.
Oracle tests skip with a message when node or node-llama-cpp is missing.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "testdata" / "tiny"
ORACLE = ROOT / "tools" / "oracle" / "llama_ref.mjs"
NODE_MODULES = ROOT / ".deps" / "node" / "node_modules"
GGML_BASE = NODE_MODULES / "@node-llama-cpp" / "linux-x64" / "bins" / "linux-x64" / "libggml-base.so"

sys.path.insert(0, str(ROOT / "tools"))
import hf_to_gguf  # noqa: E402

import gguf  # noqa: E402

MANIFEST = json.loads((TINY / "manifest.json").read_text())
MODELS = {m["name"]: m for m in MANIFEST["models"]}
GGUFS = [(m["name"], g) for m in MANIFEST["models"] for g in m["gguf"]]

# Max |llama.cpp - reference| over all positions and vocab entries, per GGUF
# storage type (reference: transformers float32 on the weights the GGUF
# dequantizes to). Measured on this fixture set (see README.md):
#   F32 <= 8.4e-6 (gemma3 3.0e-3: llama.cpp's GELU uses an fp16 table),
#   F16 7.5e-3, BF16 4.2e-2 (activations rounded to f16/bf16 for the matmul),
#   Q8_0 0.23, Q4_0 0.22 (llama.cpp quantizes activations to 8 bits).
MAX_ABS_TOL = {"F32": 1e-4, "F16": 3e-2, "BF16": 0.15, "Q8_0": 0.6, "Q4_0": 0.6}
RMS_TOL = {"F32": 2e-5, "F16": 6e-3, "BF16": 3e-2, "Q8_0": 0.12, "Q4_0": 0.12}
GEMMA_F32_TOL = (1e-2, 2e-3)  # (max abs, rms): GELU table lookup in llama.cpp


def _tolerances(name: str, gtype: str) -> tuple[float, float]:
    if gtype == "F32" and MODELS[name]["hf_class"].startswith("Gemma"):
        return GEMMA_F32_TOL
    return MAX_ABS_TOL[gtype], RMS_TOL[gtype]


def _ref_logits(rel: str, shape: list[int]) -> np.ndarray:
    return np.fromfile(TINY / rel, dtype="<f4").reshape(shape).astype(np.float64)


def _oracle_available() -> str | None:
    if shutil.which("node") is None:
        return "node not installed"
    if not (NODE_MODULES / "node-llama-cpp").is_dir():
        return f"node-llama-cpp missing under {NODE_MODULES} (run scripts/install_deps.sh)"
    return None


def run_oracle(*args: str) -> dict:
    reason = _oracle_available()
    if reason:
        pytest.skip(reason)
    proc = subprocess.run(["node", str(ORACLE), *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "NODE_LLAMA_CPP_SKIP_DOWNLOAD": "true"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def oracle(tmp_path_factory) -> dict:
    """Every llama.cpp job of this file in ONE node process (backend loads once)."""
    jobs, keys = [], []
    for name, g in GGUFS:
        m = MODELS[name]
        model = str(TINY / g["file"])
        jobs.append({"mode": "logits", "model": model, "kv": "f32", "tokens": m["token_ids"]})
        keys.append(("logits", g["file"]))
        greedy = m["greedy"]
        jobs.append({"mode": "greedy", "model": model, "kv": "f32", "tokens": greedy["prompt_ids"],
                     "n": len(greedy["tokens"])})
        keys.append(("greedy", g["file"]))
    qwen3 = MODELS["qwen3"]["token_ids"]
    jobs.append({"mode": "perplexity", "model": str(TINY / "qwen3.gguf"), "kv": "f32",
                 "tokens": qwen3, "ctx": len(qwen3)})
    keys.append(("perplexity", "qwen3.gguf"))
    jobs.append({"mode": "tokenize", "model": str(TINY / "qwen3.gguf"), "texts": ["Az"], "bos": "yes"})
    keys.append(("tokenize", "qwen3.gguf"))
    path = tmp_path_factory.mktemp("oracle") / "jobs.json"
    path.write_text(json.dumps(jobs))
    out = run_oracle("batch", "--jobs", str(path))
    return dict(zip(keys, out["results"]))


# ---------------------------------------------------------------- manifest


def test_manifest_files_consistent():
    assert MANIFEST["version"] == 1
    for m in MANIFEST["models"]:
        folder = TINY / m["hf_dir"]
        assert sorted(p.name for p in folder.iterdir() if not p.name.startswith("logits")) == m["hf_files"]
        n_tokens, n_vocab = m["logits"]["shape"]
        assert n_tokens == len(m["token_ids"])
        assert all(0 <= t < n_vocab for t in m["token_ids"])
        logits = _ref_logits(m["logits"]["file"], m["logits"]["shape"])
        assert np.isfinite(logits).all() and logits.std() > 0.5  # not degenerate
        for g in m["gguf"]:
            assert (TINY / g["file"]).is_file()
            assert (TINY / g["logits"]).stat().st_size == 4 * n_tokens * n_vocab


def test_sharded_and_bf16_fixtures_exist():
    assert any(m["sharded"] for m in MANIFEST["models"])
    assert any(m["safetensors_dtype"] == "BF16" for m in MANIFEST["models"])
    sharded = next(m for m in MANIFEST["models"] if m["sharded"])
    index = json.loads((TINY / sharded["hf_dir"] / "model.safetensors.index.json").read_text())
    _, tensors, _ = hf_to_gguf.load_hf_folder(TINY / sharded["hf_dir"])
    assert sorted(index["weight_map"]) == sorted(tensors)


# ---------------------------------------------------------------- converter


@pytest.mark.parametrize("name,g", GGUFS, ids=[g["file"] for _, g in GGUFS])
def test_converter_reproduces_committed_gguf(tmp_path, name, g):
    out = tmp_path / g["file"]
    hf_to_gguf.convert(TINY / MODELS[name]["hf_dir"], out, g["type"], name)
    assert out.read_bytes() == (TINY / g["file"]).read_bytes()


@pytest.mark.parametrize("name", ["llama3_tied", "gemma3"])
def test_converter_accepts_legacy_rope_keys(tmp_path, name):
    """Hub checkpoints still use rope_theta + rope_scaling (+ rope_local_base_freq)."""
    folder = tmp_path / name
    shutil.copytree(TINY / name, folder)
    cfg = json.loads((folder / "config.json").read_text())
    rope = cfg.pop("rope_parameters")
    if name == "gemma3":
        cfg["rope_theta"] = rope["full_attention"]["rope_theta"]
        cfg["rope_local_base_freq"] = rope["sliding_attention"]["rope_theta"]
    else:
        cfg["rope_theta"] = rope.pop("rope_theta")
        cfg["rope_scaling"] = rope
    (folder / "config.json").write_text(json.dumps(cfg))
    hf_to_gguf.convert(folder, tmp_path / "out.gguf", "F32", name)
    assert (tmp_path / "out.gguf").read_bytes() == (TINY / f"{name}.gguf").read_bytes()


def _gguf_tensors(path: Path) -> dict:
    return {t.name: t for t in gguf.GGUFReader(str(path)).tensors}


def _ggml():
    if not GGML_BASE.is_file():
        pytest.skip(f"{GGML_BASE} missing (run scripts/install_deps.sh)")
    lib = ctypes.CDLL(str(GGML_BASE))
    for fn in ("quantize_row_q8_0_ref", "quantize_row_q4_0_ref", "ggml_fp32_to_fp16_row",
               "ggml_fp32_to_bf16_row_ref"):
        getattr(lib, fn).argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        getattr(lib, fn).restype = None
    return lib


@pytest.mark.parametrize("f32_file,q_file,fn", [
    ("llama3_tied.gguf", "llama3_tied.q8_0.gguf", "quantize_row_q8_0_ref"),
    ("llama3_tied.gguf", "llama3_tied.q4_0.gguf", "quantize_row_q4_0_ref"),
    ("llama3_tied.gguf", "llama3_tied.f16.gguf", "ggml_fp32_to_fp16_row"),
])
def test_quantized_tensors_match_ggml_reference(f32_file, q_file, fn):
    lib = _ggml()
    src, dst = _gguf_tensors(TINY / f32_file), _gguf_tensors(TINY / q_file)
    assert sorted(src) == sorted(dst)
    n_checked = 0
    for name, t in dst.items():
        if t.tensor_type == gguf.GGMLQuantizationType.F32:
            assert np.array_equal(np.asarray(t.data), np.asarray(src[name].data)), name
            continue
        x = np.ascontiguousarray(np.asarray(src[name].data, dtype=np.float32))
        want = np.frombuffer(np.asarray(t.data).tobytes(), dtype=np.uint8)
        got = np.zeros_like(want)
        getattr(lib, fn)(x.ctypes.data, got.ctypes.data, x.size)
        assert np.array_equal(got, want), name
        n_checked += 1
    assert n_checked > 0


def test_bf16_tensors_match_ggml_reference():
    lib = _ggml()
    _, tensors, dtypes = hf_to_gguf.load_hf_folder(TINY / "qwen2_bf16")
    assert set(dtypes.values()) == {"BF16"}
    cfg = json.loads((TINY / "qwen2_bf16" / "config.json").read_text())
    named = hf_to_gguf.gguf_tensors("qwen2", cfg, tensors)
    stored = _gguf_tensors(TINY / "qwen2_bf16.gguf")
    for name, arr in named.items():
        t = stored[name]
        if arr.ndim == 1:
            assert t.tensor_type == gguf.GGMLQuantizationType.F32
            continue
        assert t.tensor_type == gguf.GGMLQuantizationType.BF16
        x = np.ascontiguousarray(arr, dtype=np.float32)
        got = np.zeros(x.size, dtype=np.uint16)
        lib.ggml_fp32_to_bf16_row_ref(x.ctypes.data, got.ctypes.data, x.size)
        assert np.array_equal(got.tobytes(), np.asarray(t.data).tobytes()), name


def test_llama_layout_transforms():
    """Independent of the converter's code path: llama.cpp layout facts."""
    cfg, hf, _ = hf_to_gguf.load_hf_folder(TINY / "llama3_tied")
    g = _gguf_tensors(TINY / "llama3_tied.gguf")
    assert "output.weight" not in g  # tied
    assert "rope_freqs.weight" in g and len(np.asarray(g["rope_freqs.weight"].data)) == 8
    q_hf = hf["model.layers.0.self_attn.q_proj.weight"]
    q_gg = np.asarray(g["blk.0.attn_q.weight"].data)
    hd = cfg["head_dim"]
    # row 2i of a GGUF head is HF row i; row 2i+1 is HF row i + hd/2
    assert np.array_equal(q_gg[0], q_hf[0]) and np.array_equal(q_gg[1], q_hf[hd // 2])
    assert np.array_equal(q_gg[hd + 2], q_hf[hd + 1])
    _, hf_g, _ = hf_to_gguf.load_hf_folder(TINY / "gemma3")
    gg = _gguf_tensors(TINY / "gemma3.gguf")
    w = hf_g["model.layers.0.self_attn.q_norm.weight"]
    assert np.array_equal(np.asarray(gg["blk.0.attn_q_norm.weight"].data), (w + 1.0).astype(np.float32))


# ---------------------------------------------------------------- llama.cpp


@pytest.mark.parametrize("name,g", GGUFS, ids=[g["file"] for _, g in GGUFS])
def test_llama_cpp_logits_match_reference(oracle, name, g):
    m = MODELS[name]
    out = oracle[("logits", g["file"])]
    got = np.asarray(out["logits"], dtype=np.float64)
    ref = _ref_logits(g["logits"], m["logits"]["shape"])
    assert got.shape == ref.shape
    max_tol, rms_tol = _tolerances(name, g["type"])
    diff = got - ref
    max_abs, rms = float(np.abs(diff).max()), float(np.sqrt((diff ** 2).mean()))
    print(f"{g['file']}: max_abs={max_abs:.3g} rms={rms:.3g}")
    assert max_abs <= max_tol and rms <= rms_tol, (max_abs, rms)
    if g["type"] in ("Q8_0", "Q4_0"):
        # the dequantized-weight reference must be closer than the F32 one
        f32 = _ref_logits(m["logits"]["file"], m["logits"]["shape"])
        assert rms < float(np.sqrt(((got - f32) ** 2).mean()))


@pytest.mark.parametrize("name,g", GGUFS, ids=[g["file"] for _, g in GGUFS])
def test_llama_cpp_greedy_matches_reference(oracle, name, g):
    m = MODELS[name]
    greedy = m["greedy"]
    if g["logits"] != m["logits"]["file"]:
        pytest.skip("greedy reference is for the unquantized weights")
    if greedy["min_margin"] < 4 * _tolerances(name, g["type"])[0]:
        pytest.skip(f"near-tie: min top-2 margin {greedy['min_margin']} vs tolerance")
    assert oracle[("greedy", g["file"])]["results"][0]["tokens"] == greedy["tokens"]


def test_llama_cpp_perplexity_method(oracle):
    """llama_ref's perplexity (second half of each chunk) on the reference."""
    m = MODELS["qwen3"]
    ids = m["token_ids"]
    out = oracle[("perplexity", "qwen3.gguf")]
    ref = _ref_logits(m["logits"]["file"], m["logits"]["shape"])
    logp = ref - ref.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    n = len(ids)
    want = -np.mean([logp[j, ids[j + 1]] for j in range(n // 2, n - 1)])
    assert out["scored_per_chunk"] == n - 1 - n // 2
    assert abs(out["mean_nll"] - want) < 1e-4


def test_llama_cpp_tokenize_spm_byte_fallback(oracle):
    """Our fixture vocab has no text pieces: SPM falls back to bytes
    (after the '\u2581' space prefix llama.cpp adds)."""
    out = oracle[("tokenize", "qwen3.gguf")]
    want = [1] + [3 + b for b in "\u2581Az".encode()]
    assert out["ids"] == [want]
