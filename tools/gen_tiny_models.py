#!/usr/bin/env python3
"""Generates kiln's tiny reference models (tests/testdata/tiny/).

Needs torch + transformers (this is run once by a developer, NOT in CI; its
outputs are committed). For every model it writes
  tests/testdata/tiny/<name>/config.json + safetensors
  tests/testdata/tiny/<name>/logits.f32        transformers' float32 logits
  tests/testdata/tiny/<name>.gguf (+ variants)  via tools/hf_to_gguf.py
and finally tests/testdata/tiny/manifest.json. Weights come from fixed seeds,
so a re-run reproduces the same files with the same torch version.

Usage: tools/gen_tiny_models.py [--out tests/testdata/tiny]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hf_to_gguf  # noqa: E402

N_TOKENS = 32
VOCAB = 384  # >= 259 so the GGUF's SentencePiece vocab has <unk>,<s>,</s> + 256 bytes
TOKEN_SEED = 1234
GREEDY_PROMPT, GREEDY_N = 6, 16

COMMON = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128,
              max_position_embeddings=512, initializer_range=0.15,
              bos_token_id=1, eos_token_id=2, pad_token_id=None)


def _specs() -> list[dict]:
    """One dict per fixture: HF class, config, and what to emit."""
    from transformers import (Gemma3TextConfig, LlamaConfig, MistralConfig,
                              Qwen2Config, Qwen3Config)
    llama3_rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 64,
                   "rope_theta": 10000.0}
    gemma_common = dict(COMMON, num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                        sliding_window=4, rms_norm_eps=1e-6, tie_word_embeddings=True,
                        hidden_activation="gelu_pytorch_tanh",
                        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                         "full_attention": {"rope_type": "default", "rope_theta": 1000000.0}})
    S, F = "sliding_attention", "full_attention"
    return [
        dict(name="llama3_tied", cls="LlamaForCausalLM", seed=1,
             config=LlamaConfig(**COMMON, num_hidden_layers=3, num_attention_heads=4,
                                num_key_value_heads=2, rms_norm_eps=1e-5, tie_word_embeddings=True,
                                rope_parameters=llama3_rope),
             gguf_types=["F32", "F16", "Q8_0", "Q4_0"],
             notes="Llama 3 style: GQA 4/2, head_dim 16, llama3 rope scaling (factor 8, "
                   "original_max_position_embeddings 64 so all three frequency bands occur), "
                   "tied embeddings (no output.weight in the GGUF)."),
        dict(name="llama_untied", cls="LlamaForCausalLM", seed=2, shard="60KB",
             config=LlamaConfig(**COMMON, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=1, rms_norm_eps=1e-5, tie_word_embeddings=False,
                                rope_parameters={"rope_type": "default", "rope_theta": 500000.0}),
             gguf_types=["F32"],
             notes="Llama, MQA (4 query heads, 1 KV head), rope_theta 5e5, untied lm_head; "
                   "safetensors SHARDED (model.safetensors.index.json + several shards)."),
        dict(name="mistral", cls="MistralForCausalLM", seed=3,
             config=MistralConfig(**COMMON, num_hidden_layers=2, num_attention_heads=4,
                                  num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-5,
                                  sliding_window=None, tie_word_embeddings=False,
                                  rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
             gguf_types=["F32"],
             notes="Mistral (no sliding window): llama.cpp runs it as arch 'llama'."),
        dict(name="qwen2", cls="Qwen2ForCausalLM", seed=4,
             config=Qwen2Config(**COMMON, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, rms_norm_eps=1e-6, tie_word_embeddings=True,
                                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
             gguf_types=["F32"],
             notes="Qwen2: q/k/v biases (random, non-zero), tied embeddings, neox rope."),
        dict(name="qwen2_bf16", cls="Qwen2ForCausalLM", seed=4, bf16=True,
             config=Qwen2Config(**COMMON, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, rms_norm_eps=1e-6, tie_word_embeddings=True,
                                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
             gguf_types=["BF16"],
             notes="qwen2's weights rounded to bfloat16, safetensors in BF16; reference logits are "
                   "float32 math on the bf16 weights. GGUF: 2-D tensors BF16, 1-D F32."),
        dict(name="qwen3", cls="Qwen3ForCausalLM", seed=5,
             config=Qwen3Config(**COMMON, num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6,
                                tie_word_embeddings=False,
                                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}),
             gguf_types=["F32"],
             notes="Qwen3: per-head QK RMSNorm, head_dim 32 != hidden/heads (16), untied."),
        dict(name="gemma3", cls="Gemma3ForCausalLM", seed=6,
             config=Gemma3TextConfig(**gemma_common, num_hidden_layers=8, query_pre_attn_scalar=32,
                                     layer_types=[S, S, S, S, S, F, S, S]),
             gguf_types=["F32"],
             notes="Gemma 3 text: 8 layers, llama.cpp's default pattern (layer 5 global, others "
                   "sliding, window 4), local rope base 1e4 / global 1e6, head_dim 32 != 64/4, "
                   "4 norms per block + QK norm ((1+w) in HF, w+1 stored in GGUF), embeddings "
                   "scaled by sqrt(hidden), GELU-tanh, query_pre_attn_scalar = head_dim (llama.cpp "
                   "derives the scale from head_dim)."),
        dict(name="gemma3_qpas", cls="Gemma3ForCausalLM", seed=7,
             config=Gemma3TextConfig(**gemma_common, num_hidden_layers=4, query_pre_attn_scalar=24,
                                     layer_types=[S, F, S, F]),
             gguf_types=[],
             notes="Gemma 3 text, safetensors only (NO GGUF: llama.cpp cannot express it): "
                   "query_pre_attn_scalar 24 != head_dim 32, non-default layer pattern S,F,S,F "
                   "taken from config.json layer_types, window 4."),
    ]


def _perturb(model: torch.nn.Module, gemma: bool, seed: int) -> None:
    """Non-trivial weights: random norm gains (HF init sets them to 1 / 0) and
    random biases, so every tensor influences the logits."""
    gen = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                noise = torch.rand(p.shape, generator=gen) - 0.5  # [-0.5, 0.5)
                p.copy_(noise if gemma else 1.0 + noise)
            elif name.endswith(".bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))


def _build(spec: dict) -> torch.nn.Module:
    config = spec["config"]
    config.architectures = [spec["cls"]]
    config._attn_implementation = "eager"
    torch.manual_seed(spec["seed"])
    model = getattr(transformers, spec["cls"])(config).float().eval()
    _perturb(model, spec["cls"].startswith("Gemma"), spec["seed"])
    if spec.get("bf16"):
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(torch.bfloat16).float())
    return model


def _logits(model: torch.nn.Module, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=False)
    return out.logits[0].float().numpy().astype("<f4")


def _variant_logits(model: torch.nn.Module, arch: str, out_type: str, ids: list[int]) -> np.ndarray:
    """Reference for a GGUF of out_type: the same model with every weight
    replaced by what the GGUF dequantizes to. Blocks run along rows of the HF
    [out, in] matrices, so the llama Q/K row permutation does not matter."""
    saved = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for name, p in model.named_parameters():
            gname = hf_to_gguf.gguf_tensor_name(name, arch)
            stype = hf_to_gguf.storage_type(gname, tuple(p.shape), out_type)
            p.copy_(torch.from_numpy(hf_to_gguf.roundtrip(p.numpy(), stype)))
    try:
        return _logits(model, ids)
    finally:
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(saved[name])


def _greedy(model: torch.nn.Module, prompt: list[int], n: int) -> dict:
    """Greedy continuation with full recomputation (no KV cache), and the
    smallest top-1/top-2 logit margin met, so a test can tell a near-tie."""
    ids, margin = list(prompt), float("inf")
    for _ in range(n):
        row = torch.from_numpy(_logits(model, ids)[-1])
        top2 = torch.topk(row, 2).values
        margin = min(margin, float(top2[0] - top2[1]))
        ids.append(int(row.argmax()))
    return {"prompt_ids": list(prompt), "tokens": ids[len(prompt):], "min_margin": round(margin, 6)}


def _save_hf(model: torch.nn.Module, spec: dict, folder: Path) -> list[str]:
    if folder.exists():
        shutil.rmtree(folder)
    kwargs = {"max_shard_size": spec["shard"]} if spec.get("shard") else {}
    to_save = model
    if spec.get("bf16"):
        to_save = _build(spec).to(torch.bfloat16)  # same seed: identical values
    to_save.save_pretrained(folder, **kwargs)
    gen_cfg = folder / "generation_config.json"
    if gen_cfg.exists():
        gen_cfg.unlink()
    return sorted(p.name for p in folder.iterdir())


def _stats(logits: np.ndarray) -> dict:
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return {"logit_std": round(float(logits.std()), 3),
            "mean_max_prob": round(float(p.max(-1).mean()), 3)}


def generate(out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(TOKEN_SEED)
    ids = [int(t) for t in rng.integers(3, VOCAB, size=N_TOKENS)]
    models = []
    for spec in _specs():
        name = spec["name"]
        model = _build(spec)
        folder = out_dir / name
        files = _save_hf(model, spec, folder)
        arch = hf_to_gguf.ARCH_BY_CLASS[spec["cls"]]
        logits = _logits(model, ids)
        (folder / "logits.f32").write_bytes(logits.tobytes())
        entry = {
            "name": name, "hf_class": spec["cls"], "gguf_arch": arch if spec["gguf_types"] else None,
            "hf_dir": name, "hf_files": files,
            "safetensors_dtype": "BF16" if spec.get("bf16") else "F32",
            "sharded": "model.safetensors.index.json" in files,
            "token_ids": ids,
            "logits": {"file": f"{name}/logits.f32", "shape": list(logits.shape), "dtype": "f32le"},
            "stats": _stats(logits), "greedy": _greedy(model, ids[:GREEDY_PROMPT], GREEDY_N),
            "gguf": [], "notes": spec["notes"],
        }
        for t in spec["gguf_types"]:
            suffix = "" if t in ("F32", "BF16") else "." + t.lower()
            gpath = out_dir / f"{name}{suffix}.gguf"
            hf_to_gguf.convert(folder, gpath, t, name)
            ref = f"{name}/logits.f32"
            if t not in ("F32", "BF16"):  # BF16 weights already are the model's
                vl = _variant_logits(model, arch, t, ids)
                ref = f"{name}/logits.{t.lower()}.f32"
                (out_dir / ref).write_bytes(vl.tobytes())
            entry["gguf"].append({"file": gpath.name, "type": t, "logits": ref})
        models.append(entry)
        print(f"{name}: {entry['stats']} files={files} gguf={[g['file'] for g in entry['gguf']]}")
    manifest = {
        "version": 1,
        "generator": "tools/gen_tiny_models.py",
        "torch": torch.__version__, "transformers": transformers.__version__,
        "logits_layout": "little-endian float32, row-major [n_tokens, n_vocab]; row i = logits "
                         "predicting token i+1 after feeding token_ids[0..i] (no BOS added)",
        "models": models,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    root = Path(__file__).resolve().parent.parent
    p.add_argument("--out", type=Path, default=root / "tests" / "testdata" / "tiny")
    args = p.parse_args(argv)
    torch.use_deterministic_algorithms(True)
    generate(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
