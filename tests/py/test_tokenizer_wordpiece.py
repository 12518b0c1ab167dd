"""WordPiece (BERT) against the Hugging Face `tokenizers` library. The reference tokenizer is
built with `tokenizers`' own components (BertNormalizer, BertPreTokenizer, WordPiece, BertProcessing,
WordPiece decoder) over the bge vocabulary from ../shared/data/tokenizer-vectors (GGUF pieces
mapped back: "▁word" -> "word", "piece" -> "##piece"). kiln loads both that tokenizer.json and the
GGUF itself; both must encode identically to the reference (and the JSON one must decode so)."""
import os

import pytest

import tokenizer_fuzz_util as fu

# Shared conformance data: ../shared/data beside the checkout, as CI lays it out.
_SHARED_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))), "shared", "data")

tokenizers = pytest.importorskip("tokenizers")
gguf = pytest.importorskip("gguf")

BGE = os.path.join(_SHARED_DATA, "tokenizer-vectors", "ggml-vocab-bert-bge.gguf")
pytestmark = pytest.mark.skipif(fu.driver_path() is None or not os.path.exists(BGE),
                                reason="kiln_tok_driver or bert-bge GGUF absent")


def hf_vocab_from_gguf():
    r = gguf.GGUFReader(BGE)
    t, tt = r.fields["tokenizer.ggml.tokens"], r.fields["tokenizer.ggml.token_type"]
    vocab = {}
    for i, (ti, ty) in enumerate(zip(t.data, tt.data)):
        piece = bytes(t.parts[ti]).decode()
        if int(tt.parts[ty][0]) == 3 or piece.startswith("[unused"):
            word = piece
        elif piece.startswith("\u2581"):
            word = piece[1:]
        else:
            word = "##" + piece
        vocab.setdefault(word, i)
    return vocab


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    vocab = hf_vocab_from_gguf()
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.BertProcessing(("[SEP]", vocab["[SEP]"]), ("[CLS]", vocab["[CLS]"]))
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    path = tmp_path_factory.mktemp("bert") / "tokenizer.json"
    tok.save(str(path))
    return tok, str(path)


def test_wordpiece_matches_hf(reference):
    hf, path = reference
    texts = fu.fuzz_strings(seed=2024, count=800, specials=["[CLS]", "[SEP]", "[MASK]", "[UNK]"])
    mismatches = []
    for parse in (False, True):
        hf.encode_special_tokens = not parse
        want = [hf.encode(t, add_special_tokens=True).ids for t in texts]
        for model in (path, BGE):
            reqs = [{"op": "encode", "text": t, "parse_special": parse, "add_special": True}
                    for t in texts]
            got = [r.get("ids") for r in fu.run_driver(model, reqs)]
            mismatches += [(os.path.basename(model), parse, t, w, g)
                           for t, w, g in zip(texts, want, got) if w != g]
    hf.encode_special_tokens = False
    ids = [hf.encode(t).ids for t in texts]
    reqs = [{"op": "decode", "ids": x, "skip_special": i % 2 == 0} for i, x in enumerate(ids)]
    for q, r in zip(reqs, fu.run_driver(path, reqs)):
        want = hf.decode(q["ids"], skip_special_tokens=q["skip_special"])
        if r["text"] != want:
            mismatches.append(("decode", q, want, r["text"]))
    print(f"wordpiece: {4 * len(texts)} encodes, {len(reqs)} decodes, {len(mismatches)} mismatches")
    assert not mismatches, "\n".join(repr(m) for m in mismatches[:8])
