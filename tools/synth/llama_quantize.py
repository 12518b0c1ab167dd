#!/usr/bin/env python3
"""Quantize a GGUF with llama.cpp's own quantizer (llama_model_quantize), for benchmarks.

  python tools/synth/llama_quantize.py IN.gguf OUT.gguf --type Q4_K_M [--threads 2] [--pure]

Calls `llama_model_quantize` of the prebuilt libllama from npm node-llama-cpp
(.deps/node/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64, which also holds the ggml
libraries it links to) through ctypes, so the output is what `llama-quantize IN OUT TYPE
THREADS` of that llama.cpp build writes: llama.cpp's per-tensor type rules (for Q4_K_M most
matrices Q4_K, some attn_v / ffn_down and the output head / tied embedding Q6_K, and fallback
types for rows that are not a multiple of 256), without an importance matrix. `--pure` sets
the `pure` flag (every 2-D tensor in the target type, as llama-quantize --pure).

tools/synth/quantize_gguf.py writes "pure" Q8_0/Q4_0 with the gguf package instead;
tools/synth/compare_gguf.py compares two GGUFs tensor by tensor.

The parameter struct below is the field list of `llama_model_quantize_params` in include/llama.h
of the llama.cpp source node-llama-cpp 3.22.1 was built from (node-llama-cpp/llama/
gitRelease.bundle). The layout is checked at run time against the library's own
`llama_model_quantize_default_params()` (known default values, including the trailing
max_buf_size), so a different build fails closed instead of reading garbage.

Only for speed measurements: the synthetic weights are random.
"""
import argparse
import collections
import ctypes
import os
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
LIB_DIR = REPO / ".deps/node/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"

# enum llama_ftype (include/llama.h)
FTYPES = {
    "F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "Q5_0": 8, "Q5_1": 9,
    "Q2_K": 10, "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15,
    "Q5_K_S": 16, "Q5_K_M": 17, "Q6_K": 18, "IQ4_NL": 25, "IQ4_XS": 30, "BF16": 32,
}
GGML_TYPE_COUNT = 43  # enum ggml_type (ggml/include/ggml.h) of that build
DEFAULT_MAX_BUF = 8 * 1024 ** 3  # LLAMA_QUANT_MAX_BUF_SIZE, the library's default


class QuantizeParams(ctypes.Structure):
    """struct llama_model_quantize_params (field list of the node-llama-cpp 3.22.1 build)."""

    _fields_ = [
        ("nthread", ctypes.c_int32),
        ("ftype", ctypes.c_int),
        ("output_tensor_type", ctypes.c_int),
        ("token_embedding_type", ctypes.c_int),
        ("allow_requantize", ctypes.c_bool),
        ("quantize_output_tensor", ctypes.c_bool),
        ("only_copy", ctypes.c_bool),
        ("pure", ctypes.c_bool),
        ("keep_split", ctypes.c_bool),
        ("dry_run", ctypes.c_bool),
        ("imatrix", ctypes.c_void_p),
        ("kv_overrides", ctypes.c_void_p),
        ("tt_overrides", ctypes.c_void_p),
        ("prune_layers", ctypes.c_void_p),
        ("max_buf_size", ctypes.c_size_t),
    ]


LOG_CB = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)


def find_libllama(lib_dir: pathlib.Path) -> pathlib.Path:
    cands = sorted(lib_dir.glob("libllama.so")) + sorted(lib_dir.glob("libllama.v*.so"))
    if not cands:
        sys.exit(f"no libllama*.so in {lib_dir} (run scripts/install_deps.sh, or pass --lib-dir)")
    return cands[0]


def load(lib_dir: pathlib.Path) -> ctypes.CDLL:
    # libllama's RUNPATH is $ORIGIN: it finds libggml*.so next to itself. Load ggml-base and
    # ggml first by path anyway, so a stray system libggml cannot be picked up instead.
    for dep in ("libggml-base.so", "libggml.so"):
        p = lib_dir / dep
        if not p.is_file():
            p = next(iter(sorted(lib_dir.glob(dep.replace(".so", ".v*.so")))), None)
        if p is not None:
            ctypes.CDLL(str(p), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(str(find_libllama(lib_dir)))
    lib.llama_model_quantize_default_params.argtypes = []
    lib.llama_model_quantize_default_params.restype = QuantizeParams
    lib.llama_model_quantize.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(QuantizeParams)]
    lib.llama_model_quantize.restype = ctypes.c_uint32
    lib.llama_log_set.argtypes = [LOG_CB, ctypes.c_void_p]
    lib.llama_log_set.restype = None
    return lib


def check_defaults(p: QuantizeParams) -> None:
    """The defaults llama.cpp documents for this build; a mismatch means the struct differs."""
    want = dict(nthread=0, ftype=FTYPES["Q8_0"], output_tensor_type=GGML_TYPE_COUNT,
                token_embedding_type=GGML_TYPE_COUNT, allow_requantize=False,
                quantize_output_tensor=True, only_copy=False, pure=False, keep_split=False,
                dry_run=False, imatrix=None, kv_overrides=None, tt_overrides=None,
                prune_layers=None, max_buf_size=DEFAULT_MAX_BUF)
    bad = {k: getattr(p, k) for k, v in want.items() if getattr(p, k) != v}
    if bad:
        sys.exit(f"llama_model_quantize_params layout mismatch (fields {bad}); this libllama "
                 "is not the build whose llama.h this script follows")


def summarize(path: str) -> str:
    import gguf  # PyPI gguf, only for the summary

    r = gguf.GGUFReader(path)
    counts = collections.Counter(t.tensor_type.name for t in r.tensors)
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--type", required=True, choices=list(FTYPES), help="llama_ftype name")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pure", action="store_true", help="every 2-D tensor in the target type")
    ap.add_argument("--quiet", action="store_true", help="show only llama.cpp warnings (not per-tensor fallbacks) and errors")
    ap.add_argument("--lib-dir", type=pathlib.Path, default=LIB_DIR)
    args = ap.parse_args()
    if not os.path.isfile(args.src):
        sys.exit(f"src: no such file {args.src}")
    if args.threads < 1:
        sys.exit("--threads must be >= 1")

    lib = load(args.lib_dir)
    last = [0]

    def log(level: int, text: bytes, _ud) -> None:
        if level != 5:  # GGML_LOG_LEVEL_CONT continues the previous message
            last[0] = level
        msg = text.decode("utf-8", "replace")
        # --quiet: warnings and errors, minus the per-tensor "falling back to" lines (their
        # count is in llama.cpp's closing warning, the resulting types in our summary)
        if not args.quiet or (last[0] >= 3 and "falling back to" not in msg):  # WARN, ERROR
            sys.stderr.write(msg)

    cb = LOG_CB(log)  # kept alive until the call returns
    lib.llama_log_set(cb, None)

    params = lib.llama_model_quantize_default_params()
    check_defaults(params)
    params.nthread = args.threads
    params.ftype = FTYPES[args.type]
    params.pure = args.pure
    t0 = time.time()
    rc = lib.llama_model_quantize(args.src.encode(), args.dst.encode(), ctypes.byref(params))
    if rc != 0:
        sys.exit(f"llama_model_quantize failed (return code {rc}); see llama.cpp's log above")
    size = pathlib.Path(args.dst).stat().st_size
    print(f"{args.dst}: {args.type}{' pure' if args.pure else ''}, {size / 2**20:.1f} MiB "
          f"({size} bytes), {time.time() - t0:.1f}s; tensors: {summarize(args.dst)}")


if __name__ == "__main__":
    main()
