#!/usr/bin/env python3
"""Converts a Hugging Face model folder (config.json + safetensors) to GGUF v3.

Written for kiln's tiny test fixtures (tests/testdata/tiny/), but it follows
llama.cpp's on-disk conventions so that llama.cpp loads the files and computes
the same function as transformers:

- architectures: LlamaForCausalLM / MistralForCausalLM -> "llama",
  Qwen2ForCausalLM -> "qwen2", Qwen3ForCausalLM -> "qwen3",
  Gemma3ForCausalLM -> "gemma3".
- "llama" uses the interleaved (GPT-J style) rope in llama.cpp while HF rotates
  the two halves of each head, so the rows of q_proj/k_proj are permuted per
  head: rows [0..d/2) and [d/2..d) are interleaved.
- Gemma's RMSNorm computes x * (1 + w); llama.cpp's norm is x * w, so every
  "*norm.weight" tensor of a Gemma model is stored as (1 + w).
- llama3 rope scaling is stored as a `rope_freqs.weight` tensor of n_rot/2
  per-frequency divisors (llama.cpp divides each rope frequency by it).
- a minimal SentencePiece ("llama") vocabulary of n_vocab pieces: llama.cpp
  refuses a model without one; the fixtures feed token ids directly.

Only numpy and the `gguf` package are needed (no torch). Usage:
  tools/hf_to_gguf.py MODEL_DIR OUT.gguf [--type F32|F16|BF16|Q8_0|Q4_0]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import struct
import sys
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT

ARCH_BY_CLASS = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
    "Gemma3ForCausalLM": "gemma3",
}

OUT_TYPES = {
    "F32": (QT.F32, gguf.LlamaFileType.ALL_F32),
    "F16": (QT.F16, gguf.LlamaFileType.MOSTLY_F16),
    "BF16": (QT.BF16, gguf.LlamaFileType.MOSTLY_BF16),
    "Q8_0": (QT.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    "Q4_0": (QT.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0),
}

# llama.cpp's default Gemma 3 layout: every 6th layer (5, 11, ...) is global.
GEMMA3_DEFAULT_SWA_PERIOD = 6

# --------------------------------------------------------------------------
# safetensors reading (numpy only; BF16 widened to F32 exactly)
# --------------------------------------------------------------------------

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def _read_safetensors_file(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_len])
    base = 8 + header_len
    tensors, dtypes = {}, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        buf = raw[base + start: base + end]
        dtype = info["dtype"]
        if dtype == "BF16":
            bits = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif dtype in _ST_DTYPES:
            arr = np.frombuffer(buf, dtype=np.dtype(_ST_DTYPES[dtype]).newbyteorder("<"))
            arr = arr.astype(np.float32)
        else:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {dtype}")
        tensors[name] = arr.reshape(info["shape"])
        dtypes[name] = dtype
    return tensors, dtypes


def load_hf_folder(folder: Path) -> tuple[dict, dict[str, np.ndarray], dict[str, str]]:
    """Returns (config, tensors as float32 arrays, source dtype per tensor)."""
    config = json.loads((folder / "config.json").read_text())
    index = folder / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors, dtypes = {}, {}
    for name in files:
        t, d = _read_safetensors_file(folder / name)
        tensors.update(t)
        dtypes.update(d)
    return config, tensors, dtypes


# --------------------------------------------------------------------------
# hyper-parameters
# --------------------------------------------------------------------------


def _rope_params(config: dict, layer_type: str | None = None) -> dict:
    """Rope parameters in transformers 5 form ({rope_type, rope_theta, ...}),
    also accepting the legacy rope_theta + rope_scaling keys."""
    params = config.get("rope_parameters")
    if params and layer_type and layer_type in params:
        return dict(params[layer_type])
    if params and ("rope_type" in params or "rope_theta" in params):
        return dict(params)
    out = dict(config.get("rope_scaling") or {"rope_type": "default"})
    if "type" in out and "rope_type" not in out:
        out["rope_type"] = out.pop("type")
    if layer_type == "sliding_attention" and "rope_local_base_freq" in config:
        out = {"rope_type": "default", "rope_theta": config["rope_local_base_freq"]}
    else:
        out.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    return out


def head_dim_of(config: dict) -> int:
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def llama3_rope_factors(head_dim: int, rope: dict) -> np.ndarray:
    """Per-frequency divisors of llama3 rope scaling (Llama 3.1 paper/HF code)."""
    factor = rope["factor"]
    low = rope.get("low_freq_factor", 1.0)
    high = rope.get("high_freq_factor", 4.0)
    old_ctx = rope.get("original_max_position_embeddings", 8192)
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    out = []
    for i in range(0, head_dim, 2):
        freq = 1.0 / (rope["rope_theta"] ** (i / head_dim))
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


def _gemma3_layer_types(config: dict) -> list[str]:
    n = config["num_hidden_layers"]
    types = config.get("layer_types")
    if types:
        return list(types)
    period = config.get("sliding_window_pattern", GEMMA3_DEFAULT_SWA_PERIOD)
    return ["full_attention" if (i + 1) % period == 0 else "sliding_attention" for i in range(n)]


def _write_hparams(w: gguf.GGUFWriter, arch: str, config: dict) -> np.ndarray | None:
    """Writes the <arch>.* keys; returns the rope_freqs tensor if one is needed."""
    hd = head_dim_of(config)
    w.add_context_length(config.get("max_position_embeddings", 2048))
    w.add_embedding_length(config["hidden_size"])
    w.add_block_count(config["num_hidden_layers"])
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(config["num_attention_heads"])
    w.add_head_count_kv(config.get("num_key_value_heads", config["num_attention_heads"]))
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_layer_norm_rms_eps(config["rms_norm_eps"])
    w.add_rope_dimension_count(hd)
    w.add_vocab_size(config["vocab_size"])

    if arch == "gemma3":
        types = _gemma3_layer_types(config)
        full = _rope_params(config, "full_attention")
        local = _rope_params(config, "sliding_attention")
        w.add_rope_freq_base(full["rope_theta"])
        w.add_rope_freq_base_swa(local["rope_theta"])
        w.add_sliding_window(config["sliding_window"])
        default = ["full_attention" if (i + 1) % GEMMA3_DEFAULT_SWA_PERIOD == 0
                   else "sliding_attention" for i in range(len(types))]
        if types != default:
            # Newer llama.cpp reads a per-layer "is sliding" array; older ones
            # assume period 6. Not cross-checked with llama.cpp.
            print("warning: non-default Gemma 3 layer pattern", file=sys.stderr)
            w.add_sliding_window_pattern([t == "sliding_attention" for t in types])
        qpas = config.get("query_pre_attn_scalar", hd)
        if qpas != hd:
            raise ValueError(f"query_pre_attn_scalar={qpas} != head_dim={hd}: llama.cpp "
                             "derives the attention scale from head_dim, so the GGUF "
                             "would not compute the same function")
        for key, adder in (("final_logit_softcapping", w.add_final_logit_softcapping),
                           ("attn_logit_softcapping", w.add_attn_logit_softcapping)):
            if config.get(key) is not None:
                adder(config[key])
        if full.get("rope_type", "default") == "linear":
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(full["factor"])
        elif full.get("rope_type", "default") != "default":
            raise ValueError(f"unsupported gemma3 rope_type {full['rope_type']}")
        return None

    rope = _rope_params(config)
    w.add_rope_freq_base(rope["rope_theta"])
    rope_type = rope.get("rope_type", "default")
    if rope_type == "default":
        return None
    if rope_type == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(rope["factor"])
        return None
    if rope_type == "llama3":
        return llama3_rope_factors(hd, rope)
    raise ValueError(f"unsupported rope_type {rope_type}")


def _write_vocab(w: gguf.GGUFWriter, n_vocab: int) -> None:
    """A valid SentencePiece vocabulary: <unk>, <s>, </s>, 256 byte pieces,
    then filler pieces. Token ids carry no meaning for the fixtures."""
    if n_vocab < 3 + 256:
        raise ValueError(f"vocab_size {n_vocab} too small for a byte-fallback SPM vocab")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256
    for i in range(len(tokens), n_vocab):
        tokens.append(f"\u2581t{i}")
        types.append(gguf.TokenType.NORMAL)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * 3 + [0.0] * 256 + [-float(i) for i in range(n_vocab - 259)])
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)


# --------------------------------------------------------------------------
# tensors
# --------------------------------------------------------------------------

_LAYER_MAP_COMMON = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "self_attn.q_norm": "attn_q_norm",
    "self_attn.k_norm": "attn_k_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
# Gemma 3 has four norms per block; the others two.
_LAYER_MAP_GEMMA3 = {
    "post_attention_layernorm": "post_attention_norm",
    "pre_feedforward_layernorm": "ffn_norm",
    "post_feedforward_layernorm": "post_ffw_norm",
}
_LAYER_MAP_PLAIN = {"post_attention_layernorm": "ffn_norm"}
_TOP_MAP = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
_LAYER_RE = re.compile(r"^model\.layers\.(\d+)\.(.+)\.(weight|bias)$")


def gguf_tensor_name(hf_name: str, arch: str) -> str:
    if hf_name in _TOP_MAP:
        return _TOP_MAP[hf_name]
    m = _LAYER_RE.match(hf_name)
    if not m:
        raise ValueError(f"unexpected tensor {hf_name}")
    layer, module, kind = m.groups()
    table = dict(_LAYER_MAP_COMMON)
    table.update(_LAYER_MAP_GEMMA3 if arch == "gemma3" else _LAYER_MAP_PLAIN)
    if module not in table:
        raise ValueError(f"unexpected tensor {hf_name}")
    return f"blk.{layer}.{table[module]}.{kind}"


def permute_rows_for_llama(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF keeps each head's rope pairs as (i, i + d/2); llama.cpp's "llama"
    rope pairs (2i, 2i + 1). Reorders each head's rows accordingly."""
    shape = w.shape
    return (w.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:])
            .swapaxes(1, 2).reshape(shape))


def storage_type(gguf_name: str, shape: tuple[int, ...], out_type: str) -> QT:
    """Type a tensor is stored as in a GGUF of the given --type: 1-D tensors
    (norms, biases, rope_freqs) stay F32; 2-D ones take out_type when the row
    length fits its block size, else F16 (quantized) or out_type."""
    qtype = OUT_TYPES[out_type][0]
    if len(shape) < 2 or gguf_name == "rope_freqs.weight":
        return QT.F32
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    if shape[-1] % block != 0:
        return QT.F16
    return qtype


def roundtrip(arr: np.ndarray, qtype: QT) -> np.ndarray:
    """What a reader dequantizes from a tensor stored as qtype (float32)."""
    if qtype == QT.F32:
        return arr.astype(np.float32)
    q = gguf.quants.quantize(arr.astype(np.float32), qtype)
    return gguf.quants.dequantize(q, qtype).reshape(arr.shape).astype(np.float32)


def gguf_tensors(arch: str, config: dict, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """HF tensors (float32) -> GGUF-named float32 tensors in llama.cpp layout."""
    n_head = config["num_attention_heads"]
    n_head_kv = config.get("num_key_value_heads", n_head)
    out = {}
    for hf_name, arr in tensors.items():
        if hf_name == "lm_head.weight" and config.get("tie_word_embeddings", False):
            continue  # llama.cpp reuses token_embd when output is absent
        name = gguf_tensor_name(hf_name, arch)
        arr = np.asarray(arr, dtype=np.float32)
        if arch == "llama" and ".attn_q." in name:
            arr = permute_rows_for_llama(arr, n_head)
        elif arch == "llama" and ".attn_k." in name:
            arr = permute_rows_for_llama(arr, n_head_kv)
        if arch == "gemma3" and hf_name.endswith("norm.weight"):
            arr = arr + 1.0
        out[name] = arr
    return out


def convert(folder: Path, out_path: Path, out_type: str = "F32", name: str | None = None) -> None:
    config, tensors, _ = load_hf_folder(folder)
    cls = (config.get("architectures") or [""])[0]
    if cls not in ARCH_BY_CLASS:
        raise ValueError(f"unsupported architecture {cls!r}")
    arch = ARCH_BY_CLASS[cls]
    qtype, file_type = OUT_TYPES[out_type]

    w = gguf.GGUFWriter(str(out_path), arch)
    w.add_name(name or folder.name)
    w.add_file_type(file_type)
    if qtype not in (QT.F32, QT.F16, QT.BF16):
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    rope_freqs = _write_hparams(w, arch, config)
    _write_vocab(w, config["vocab_size"])

    named = gguf_tensors(arch, config, tensors)
    if rope_freqs is not None:
        named["rope_freqs.weight"] = rope_freqs
    for gname in sorted(named, key=_tensor_order):
        arr = named[gname]
        stype = storage_type(gname, arr.shape, out_type)
        if stype == QT.F32:
            w.add_tensor(gname, arr.astype(np.float32))
        else:
            w.add_tensor(gname, gguf.quants.quantize(arr, stype), raw_dtype=stype)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _tensor_order(name: str) -> tuple:
    m = re.match(r"blk\.(\d+)\.", name)
    return (1, int(m.group(1)), name) if m else (0 if name.startswith("token") else 2, 0, name)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--type", default="F32", choices=sorted(OUT_TYPES))
    p.add_argument("--name", default=None)
    args = p.parse_args(argv)
    convert(args.model_dir, args.out, args.type, args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
