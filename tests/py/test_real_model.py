"""The real models (installed by scripts/fetch_models.sh) against llama.cpp on the same GGUF.

Perplexity on the first chunks of WikiText-2 (llama-perplexity's method, computed live by
tools/oracle/llama_ref.mjs) must agree within 1 %. Prompt tokenization must be identical. The
fidelity claim is on full next-token distributions: over a WikiText-2 slice, the same ids fed
to both, kiln's argmax must be llama.cpp's at >= 90 % of positions and KL(llama.cpp || kiln)
must stay small, with bounds that the arithmetic of another host leaves room for and a real
bug does not (figures at WIKI_TOKENS).

Nothing here asks for bit-equal results: llama.cpp's arithmetic depends on the host, which
picks AMX, AVX-512 or AVX2 kernels that round differently (issue #22: greedy decoding of the
default model agreed 5 x 32 tokens on AMD Zen 4; on an Intel AMX host three of the five prompts
parted after 12, 5 and 20 tokens). Greedy decoding must agree on the first token of each
prompt only, a clear winner on both models; how long the runs agree is printed, as a developer
tool on a named host. Exact-match checks stay where both sides are ours (e.g.
tests/py/test_kernel_isas.py: every ISA against kiln's ref kernels).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from kiln_env import GEMMA, SMOLLM, WIKI, kiln, kiln_json, oracle, require

N_CHUNKS = 3
CTX = 512

MODELS = [pytest.param(SMOLLM, id="smollm2"), pytest.param(GEMMA, id="gemma3")]


@pytest.mark.parametrize("model", MODELS)
def test_perplexity_within_one_percent_of_llama_cpp(model):
    require(model, "model")
    require(WIKI, "WikiText-2")
    ours = kiln_json("perplexity", "-m", str(model), "-f", str(WIKI), "-c", str(CTX),
                     "--chunks", str(N_CHUNKS), "--json")
    ref = oracle("perplexity", "--model", str(model), "--text-file", str(WIKI), "--ctx", str(CTX),
                 "--chunks", str(N_CHUNKS))
    assert ours["n_chunks"] == N_CHUNKS
    assert ours["n_scored"] == N_CHUNKS * (CTX - 1 - CTX // 2)
    rel = abs(ours["perplexity"] - ref["ppl"]) / ref["ppl"]
    print(f"{model.name}: kiln ppl {ours['perplexity']:.4f} llama.cpp {ref['ppl']:.4f} rel {rel:.4%}")
    assert rel < 0.01


PROMPTS = ["The capital of France is", "Once upon a time, in a small village by the sea,",
           "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
           "Le café coûte 3,50 € à Paris, et le thé 🍵 est gratuit.", "<|im_start|>user\nHi"]


@pytest.mark.parametrize("model", MODELS)
def test_prompt_tokens_match_llama_cpp(model, tmp_path):
    require(model, "model")
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(PROMPTS))
    ref = oracle("tokenize", "--model", str(model), "--texts-file", str(prompts), "--bos", "auto")
    ref_ids = ref["tokens"] if "tokens" in ref else ref["ids"]
    for text, want in zip(PROMPTS, ref_ids):
        got = kiln_json("run", "-m", str(model), "-p", text, "-n", "1", "--temp", "0", "--json")
        assert got["prompt_ids"] == want, text


@pytest.mark.parametrize("model", MODELS)
def test_info_describes_the_file(model):
    require(model, "model")
    info = kiln_json("info", "-m", str(model), "--json")
    assert info["format"] == "gguf"
    if model == SMOLLM:
        assert (info["architecture"], info["n_layers"], info["n_embd"], info["n_vocab"]) == ("llama", 30, 576, 49152)
        assert "<|im_start|>" in info["chat_template"]
    else:
        assert (info["architecture"], info["n_layers"], info["n_embd"], info["n_vocab"]) == ("gemma3", 18, 640, 262144)
    assert sum(info["dtype_counts"].values()) == (272 if model == SMOLLM else 236)


# The first WIKI_TOKENS tokens of WikiText-2 through both, f16 KV cache on both sides (kiln's
# default). Per position: KL(llama.cpp || kiln) of the softmaxes, whether the argmaxes agree,
# |Δ log p| of llama.cpp's argmax token. Measured on AMD Zen 4 (llama.cpp's AVX-512 kernels):
#                                      top-1   mean KL  p99 KL   max KL   mean |Δ log p|
#   SmolLM2 (256): kiln (bit-exact)    1.000   7e-13    3e-12    6e-12    7e-7
#     llama.cpp, flash attention on    0.980   3.4e-3   2.3e-2   3.7e-2   4.4e-2
#     llama.cpp, f32 KV cache          0.973   3.5e-3   2.0e-2   3.9e-2   4.6e-2
#   Gemma 3 (128): kiln                0.977   5.3e-3   2.9e-2   3.0e-2   5.4e-2
#     kiln, KILN_REPACK=0              0.977   4.6e-3   2.3e-2   3.8e-2   4.9e-2
#     llama.cpp, flash attention on    0.969   5.9e-3   2.8e-2   3.4e-2   5.8e-2
#     llama.cpp, f32 KV cache          0.938   6.4e-3   3.6e-2   4.0e-2   6.3e-2
# (the llama.cpp rows: llama.cpp against itself under legitimate arithmetic changes, a proxy for
# what another host's kernels do). Bugs are far outside: the slice without its first token (every
# position off by one, one token of context short) gives SmolLM2 0.918 / 4.9e-2 / 0.56 / 5.3 /
# 0.10 and Gemma 3 (its BOS gone) 0.409 / 1.9 / 8.5 / 17 / 2.0; kiln's rows shifted by one
# position 0.06 / 6.2 / 17 / 20 / 6.9 (checked below on every run). No bound on the max KL:
# single positions reach 0.13 under flash attention (Gemma 3, 256 positions).
WIKI_TOKENS = {"smollm2": 256, "gemma3": 128}  # llama.cpp side ~25 / ~90 ms a row (oracle export)
MIN_TOP1, MAX_MEAN_KL, MAX_P99_KL, MAX_MEAN_DLOGP = 0.90, 0.02, 0.15, 0.15


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64) - x.max()
    return x - np.log(np.exp(x).sum())


def _fidelity(ref: np.ndarray, ours: np.ndarray) -> dict:
    kl, top1, dlogp = [], [], []
    for r, o in zip(ref, ours):
        lp, lq = _log_softmax(r), _log_softmax(o)
        a = r.argmax()
        kl.append(np.exp(lp) @ (lp - lq))
        top1.append(a == o.argmax())
        dlogp.append(abs(lp[a] - lq[a]))
    return {"top1": np.mean(top1), "kl_mean": np.mean(kl), "kl_p99": np.percentile(kl, 99),
            "kl_max": np.max(kl), "dlogp_mean": np.mean(dlogp)}


@pytest.mark.parametrize("model", MODELS)
def test_logits_close_to_llama_cpp_on_wikitext(model, tmp_path):
    require(model, "model")
    require(WIKI, "WikiText-2")
    name = "smollm2" if model == SMOLLM else "gemma3"
    n = WIKI_TOKENS[name]
    with WIKI.open(encoding="utf-8", newline="") as f:  # CRLF kept, as llama-perplexity reads it
        text = f.read(2000)
    ids = kiln_json("tokenize", "-m", str(model), text, "--ids", "--add-special")[:n]
    assert len(ids) == n
    (tmp_path / "ids.json").write_text(json.dumps(ids))
    ref_out = oracle("logits", "--model", str(model), "--tokens-file", str(tmp_path / "ids.json"),
                     "--kv", "f16", "--out", str(tmp_path / "ref.f32"))
    ours_out = kiln_json("logits", "-m", str(model), "--ids", ",".join(map(str, ids)),
                         "-o", str(tmp_path / "ours.f32"))
    assert ours_out["n_vocab"] == ref_out["n_vocab"]
    ref = np.fromfile(tmp_path / "ref.f32", dtype="<f4").reshape(n, ref_out["n_vocab"])
    ours = np.fromfile(tmp_path / "ours.f32", dtype="<f4").reshape(n, ref_out["n_vocab"])
    assert np.isfinite(ref).all() and np.isfinite(ours).all()
    assert ref.argmax(1).tolist() == ref_out["argmax"]
    got = _fidelity(ref, ours)
    print(f"{name}: {n} positions, " + ", ".join(f"{k} {v:.3g}" for k, v in got.items()))
    assert got["top1"] >= MIN_TOP1, got
    assert got["kl_mean"] < MAX_MEAN_KL and got["kl_p99"] < MAX_P99_KL, got
    assert got["dlogp_mean"] < MAX_MEAN_DLOGP, got
    # The bounds reject rows one position off.
    shifted = _fidelity(ref[1:], ours[:-1])
    assert shifted["top1"] < MIN_TOP1 and shifted["kl_mean"] > MAX_MEAN_KL, shifted


GREEDY_N = 32
# Tokens agreed before the first difference, 5 prompts x 32: printed, not asserted, as they
# depend on the host's llama.cpp kernels (issue #22). Measured with llama.cpp on AMD Zen 4
# (ggml-cpu-zen4): SmolLM2 Q4_1 [32, 32, 32, 32, 32] (on an Intel AMX host [32, 32, 12, 5, 20]);
# Gemma 3 Q4_K_M [11, 9, 6, 15, 10] (llama.cpp repacks Q4_K weights and runs Q8_0 prompt products
# through tinyBLAS, other summation orders that kiln does not reproduce). Asserted: the first
# token of each prompt, where llama.cpp's top-2 logit margin is at least 0.5 on both models
# (measured), about ten times the mean |Δ log p| above.


@pytest.mark.parametrize("model", MODELS)
def test_greedy_first_token_matches_llama_cpp(model, tmp_path):
    require(model, "model")
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps(PROMPTS))
    ref = oracle("greedy", "--model", str(model), "--prompts-file", str(prompts), "--n", str(GREEDY_N))
    agreed = []
    for r in ref["results"]:
        assert len(r["tokens"]) == GREEDY_N
        got = kiln_json("run", "-m", str(model), "-p", r["prompt"], "-n", str(GREEDY_N), "--temp", "0",
                        "--json")
        assert got["prompt_ids"] == r["prompt_ids"], r["prompt"]
        n = 0
        while n < min(len(got["output_ids"]), GREEDY_N) and got["output_ids"][n] == r["tokens"][n]:
            n += 1
        agreed.append(n)
    name = "smollm2" if model == SMOLLM else "gemma3"
    print(f"{name}: greedy tokens agreed with llama.cpp {agreed}")
    assert min(agreed) >= 1, agreed
