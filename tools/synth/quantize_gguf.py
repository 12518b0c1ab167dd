#!/usr/bin/env python3
"""Quantize an F16/F32 GGUF (e.g. from make_synth_gguf.py) to Q8_0 or Q4_0, for benchmarks.

  python tools/synth/quantize_gguf.py IN.gguf OUT.gguf --type Q4_0 [--verify]

"Pure" quantization: every 2-D weight (including the tied token embedding, which is also the
output head) gets the target type; 1-D tensors (norms, biases, rope factors) stay F32. This
differs from llama-quantize's default mix, which keeps the output head / tied embedding at
Q6_K for Q4_0 files, or Q8_0 where its rows are not a multiple of 256 as in SmolLM2 (its `--pure`
flag gives what this script writes; tools/synth/llama_quantize.py --pure writes byte-identical
tensors, tests/py/test_synth_tools.py).

Quantizers: the gguf package's numpy Q8_0/Q4_0 (gguf.quants). tests/py/test_fixtures.py checks
they are bit-identical to ggml's quantize_row_q8_0_ref / quantize_row_q4_0_ref (which
llama-quantize uses without an imatrix). --verify repeats that check here, on the first
quantized tensor, against libggml-base.so from node-llama-cpp (ctypes).

Only for speed measurements: the synthetic weights are random.
"""
import argparse
import ctypes
import pathlib
import sys
import time

import numpy as np
import gguf

REPO = pathlib.Path(__file__).resolve().parents[2]
GGML_BASE = REPO / ".deps/node/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so"
TYPES = {"Q8_0": gguf.GGMLQuantizationType.Q8_0, "Q4_0": gguf.GGMLQuantizationType.Q4_0}
FILE_TYPES = {"Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "Q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}
REF_FN = {"Q8_0": "quantize_row_q8_0_ref", "Q4_0": "quantize_row_q4_0_ref"}
SKIP_KEYS = {"general.file_type", "general.alignment", "general.architecture"}


def copy_metadata(reader: gguf.GGUFReader, writer: gguf.GGUFWriter, file_type) -> None:
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name in SKIP_KEYS:
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), vtype, sub_type=sub)
    writer.add_file_type(int(file_type))


def to_f32(t) -> np.ndarray:
    if t.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
        return np.asarray(t.data, dtype=np.float32)
    return gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)


def verify_with_ggml(x: np.ndarray, q: np.ndarray, type_name: str) -> None:
    if not GGML_BASE.is_file():
        sys.exit(f"--verify: {GGML_BASE} missing (run scripts/install_deps.sh)")
    lib = ctypes.CDLL(str(GGML_BASE))
    fn = getattr(lib, REF_FN[type_name])
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn.restype = None
    x = np.ascontiguousarray(x, dtype=np.float32)
    want = np.frombuffer(np.ascontiguousarray(q).tobytes(), dtype=np.uint8)
    got = np.zeros_like(want)
    fn(x.ctypes.data, got.ctypes.data, x.size)
    if not np.array_equal(got, want):
        sys.exit(f"--verify: gguf.quants {type_name} differs from ggml {REF_FN[type_name]}")
    print(f"verify: {x.size} values, gguf.quants {type_name} == ggml {REF_FN[type_name]} (bit-identical)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--type", required=True, choices=sorted(TYPES))
    ap.add_argument("--verify", action="store_true", help="check bit-identity with ggml's quantizer")
    args = ap.parse_args()
    qtype = TYPES[args.type]

    reader = gguf.GGUFReader(args.src)
    arch = reader.fields["general.architecture"].contents()
    writer = gguf.GGUFWriter(args.dst, arch)
    copy_metadata(reader, writer, FILE_TYPES[args.type])

    # Plan: quantize 2-D tensors whose rows are whole blocks.
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    plan = []
    for t in reader.tensors:
        shape = [int(d) for d in reversed(t.shape)]  # numpy order: rows, cols
        quant = len(shape) == 2 and shape[-1] % block == 0
        plan.append((t, shape, quant))
        if quant:
            nbytes = gguf.quants.quant_shape_to_byte_shape(shape, qtype)
            writer.add_tensor_info(t.name, nbytes, np.dtype(np.uint8), int(np.prod(nbytes)), raw_dtype=qtype)
        else:
            writer.add_tensor_info(t.name, shape, np.dtype(np.float32), int(np.prod(shape)) * 4)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()

    t0 = time.time()
    verified = not args.verify
    for t, shape, quant in plan:
        x = to_f32(t).reshape(shape)
        if quant:
            q = gguf.quants.quantize(x, qtype)
            if not verified:
                verify_with_ggml(x[:64], q[:64], args.type)
                verified = True
            writer.write_tensor_data(q)
        else:
            writer.write_tensor_data(np.ascontiguousarray(x, dtype=np.float32))
    writer.close()
    print(f"{args.dst}: {args.type}, {sum(q for _, _, q in plan)} quantized tensors, "
          f"{pathlib.Path(args.dst).stat().st_size / 2**20:.1f} MiB, {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
