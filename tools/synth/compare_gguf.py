#!/usr/bin/env python3
"""Compare two GGUF files tensor by tensor (type, shape, bytes).

  python tools/synth/compare_gguf.py A.gguf B.gguf

Prints one line per tensor that differs (type or bytes), then a summary; exit status 0 when
every tensor of A is in B with the same type, shape and bytes (and vice versa), 1 otherwise.
Metadata keys are not compared. Used to check tools/synth/quantize_gguf.py against
llama.cpp's quantizer (tools/synth/llama_quantize.py).
"""
import argparse
import sys

import numpy as np
import gguf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    args = ap.parse_args()
    ra, rb = gguf.GGUFReader(args.a), gguf.GGUFReader(args.b)
    ta = {t.name: t for t in ra.tensors}
    tb = {t.name: t for t in rb.tensors}
    same, diff = 0, 0
    for name in sorted(set(ta) | set(tb)):
        if name not in ta or name not in tb:
            print(f"{name}: only in {'A' if name in ta else 'B'}")
            diff += 1
            continue
        x, y = ta[name], tb[name]
        shape_x, shape_y = [int(d) for d in x.shape], [int(d) for d in y.shape]
        if x.tensor_type != y.tensor_type or shape_x != shape_y:
            print(f"{name}: A {x.tensor_type.name} {shape_x}, B {y.tensor_type.name} {shape_y}")
            diff += 1
            continue
        bx = np.asarray(x.data).view(np.uint8).reshape(-1)
        by = np.asarray(y.data).view(np.uint8).reshape(-1)
        if bx.size != by.size or not np.array_equal(bx, by):
            n = int(np.count_nonzero(bx != by)) if bx.size == by.size else -1
            print(f"{name}: {x.tensor_type.name} {shape_x}, bytes differ ({n} of {bx.size})")
            diff += 1
        else:
            same += 1
    print(f"{same} tensors byte-identical, {diff} differ")
    sys.exit(0 if diff == 0 else 1)


if __name__ == "__main__":
    main()
