"""Single ggml ops as an oracle: llama.cpp's own CPU code (the prebuilt libggml-base.so and the
libggml-cpu-<variant>.so that llama.cpp would pick on this CPU, shipped by npm
@node-llama-cpp/linux-x64 in .deps/node), called through ctypes, one op per graph.

    from ggml_ops import Ggml
    g = Ggml()                      # finds the libraries; variant "zen4" / "haswell" / …
    y = g.rope(x, pos, base=1e5, mode=0)          # x: float32 [n_tokens, n_heads, head_dim]
    y = g.rms_norm(x, eps)                        # x: float32 [rows, n]
    y = g.soft_max(x, scale)                      # x: float32 [rows, n]
    y = g.swiglu(gate, up)                        # float32 [rows, n] each

Used to pin down which arithmetic llama.cpp really runs (order of operations, fused
multiply-adds, its exp approximation) so that kiln's kernels can reproduce it bit for bit:

    python3 tools/oracle/ggml_ops.py              # compares a few ops with numpy mirrors

Library lookup: $KILN_GGML_DIR, else <repo>/.deps/node/node_modules/@node-llama-cpp/linux-x64/
bins/*/. ggml's API as of the llama.cpp release node-llama-cpp 3.22.1 bundles.
"""

from __future__ import annotations

import ctypes as C
import glob
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
GGML_TYPE_F32, GGML_TYPE_I32 = 0, 26


class _InitParams(C.Structure):
    _fields_ = [("mem_size", C.c_size_t), ("mem_buffer", C.c_void_p), ("no_alloc", C.c_bool)]


def _cpu_flags() -> set[str]:
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def best_variant() -> str:
    f = _cpu_flags()
    if {"avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512vbmi", "avx512_bf16"} <= f:
        return "zen4"
    if {"avx2", "fma", "f16c"} <= f:
        return "haswell"
    return "x64"


class Ggml:
    def __init__(self, variant: str | None = None):
        d = os.environ.get("KILN_GGML_DIR")
        if not d:
            hits = glob.glob(str(ROOT / ".deps/node/node_modules/@node-llama-cpp/linux-x64/bins/*/libggml-base.so"))
            if not hits:
                raise FileNotFoundError("libggml-base.so not found (scripts/install_deps.sh)")
            d = os.path.dirname(hits[0])
        self.variant = variant or best_variant()
        self.base = C.CDLL(os.path.join(d, "libggml-base.so"), mode=C.RTLD_GLOBAL)
        self.cpu = C.CDLL(os.path.join(d, f"libggml-cpu-{self.variant}.so"), mode=C.RTLD_GLOBAL)
        self.cpu.ggml_cpu_init()
        b = self.base
        b.ggml_init.restype = C.c_void_p
        b.ggml_init.argtypes = [_InitParams]
        b.ggml_free.argtypes = [C.c_void_p]
        for n in ("ggml_new_tensor_1d", "ggml_new_tensor_2d", "ggml_new_tensor_3d"):
            getattr(b, n).restype = C.c_void_p
        b.ggml_new_tensor_1d.argtypes = [C.c_void_p, C.c_int, C.c_int64]
        b.ggml_new_tensor_2d.argtypes = [C.c_void_p, C.c_int, C.c_int64, C.c_int64]
        b.ggml_new_tensor_3d.argtypes = [C.c_void_p, C.c_int, C.c_int64, C.c_int64, C.c_int64]
        b.ggml_get_data.restype = C.c_void_p
        b.ggml_get_data.argtypes = [C.c_void_p]
        b.ggml_new_graph.restype = C.c_void_p
        b.ggml_new_graph.argtypes = [C.c_void_p]
        b.ggml_build_forward_expand.argtypes = [C.c_void_p, C.c_void_p]
        b.ggml_rope_ext.restype = C.c_void_p
        b.ggml_rope_ext.argtypes = [C.c_void_p, C.c_void_p, C.c_void_p, C.c_void_p, C.c_int, C.c_int,
                                    C.c_int] + [C.c_float] * 6
        b.ggml_rms_norm.restype = C.c_void_p
        b.ggml_rms_norm.argtypes = [C.c_void_p, C.c_void_p, C.c_float]
        b.ggml_soft_max_ext.restype = C.c_void_p
        b.ggml_soft_max_ext.argtypes = [C.c_void_p, C.c_void_p, C.c_void_p, C.c_float, C.c_float]
        b.ggml_swiglu_split.restype = C.c_void_p
        b.ggml_swiglu_split.argtypes = [C.c_void_p, C.c_void_p, C.c_void_p]
        self.cpu.ggml_graph_compute_with_ctx.argtypes = [C.c_void_p, C.c_void_p, C.c_int]

    # ── plumbing ──────────────────────────────────────────────────────────────────────────
    def _ctx(self, nbytes: int):
        return self.base.ggml_init(_InitParams(nbytes + (64 << 20), None, False))

    def _tensor(self, ctx, arr: np.ndarray, typ=GGML_TYPE_F32):
        b = self.base
        shape = arr.shape[::-1]  # ggml ne[0] is the innermost dimension
        if len(shape) == 1:
            t = b.ggml_new_tensor_1d(ctx, typ, *shape)
        elif len(shape) == 2:
            t = b.ggml_new_tensor_2d(ctx, typ, *shape)
        else:
            t = b.ggml_new_tensor_3d(ctx, typ, *shape)
        C.memmove(b.ggml_get_data(t), np.ascontiguousarray(arr).ctypes.data, arr.nbytes)
        return t

    def _run(self, ctx, out, shape) -> np.ndarray:
        g = self.base.ggml_new_graph(ctx)
        self.base.ggml_build_forward_expand(g, out)
        self.cpu.ggml_graph_compute_with_ctx(ctx, g, 1)
        n = int(np.prod(shape))
        res = np.ctypeslib.as_array(C.cast(self.base.ggml_get_data(out), C.POINTER(C.c_float)), (n,))
        return res.copy().reshape(shape)

    # ── ops ───────────────────────────────────────────────────────────────────────────────
    def rope(self, x: np.ndarray, pos: np.ndarray, base: float, mode: int = 0, freq_scale: float = 1.0,
             freq_factors: np.ndarray | None = None) -> np.ndarray:
        x = np.asarray(x, np.float32)
        ctx = self._ctx(x.nbytes * 3)
        try:
            a = self._tensor(ctx, x)
            p = self._tensor(ctx, np.asarray(pos, np.int32), GGML_TYPE_I32)
            ff = self._tensor(ctx, np.asarray(freq_factors, np.float32)) if freq_factors is not None else None
            out = self.base.ggml_rope_ext(ctx, a, p, ff, x.shape[-1], mode, 0, base, freq_scale, 0.0, 1.0, 32.0, 1.0)
            return self._run(ctx, out, x.shape)
        finally:
            self.base.ggml_free(ctx)

    def rms_norm(self, x: np.ndarray, eps: float) -> np.ndarray:
        x = np.asarray(x, np.float32)
        ctx = self._ctx(x.nbytes * 3)
        try:
            return self._run(ctx, self.base.ggml_rms_norm(ctx, self._tensor(ctx, x), eps), x.shape)
        finally:
            self.base.ggml_free(ctx)

    def soft_max(self, x: np.ndarray, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, np.float32)
        ctx = self._ctx(x.nbytes * 3)
        try:
            return self._run(ctx, self.base.ggml_soft_max_ext(ctx, self._tensor(ctx, x), None, scale, 0.0), x.shape)
        finally:
            self.base.ggml_free(ctx)

    def swiglu(self, gate: np.ndarray, up: np.ndarray) -> np.ndarray:
        gate, up = np.asarray(gate, np.float32), np.asarray(up, np.float32)
        ctx = self._ctx(gate.nbytes * 4)
        try:
            out = self.base.ggml_swiglu_split(ctx, self._tensor(ctx, gate), self._tensor(ctx, up))
            return self._run(ctx, out, gate.shape)
        finally:
            self.base.ggml_free(ctx)


# ── numpy mirrors of what kiln computes (for the self-check below) ────────────────────────

def _fma(a, b, c):
    return (np.float64(a) * np.float64(b) + np.float64(c)).astype(np.float32)  # exact for f32 inputs


_libm = C.CDLL("libm.so.6")
for _n in ("powf", "cosf", "sinf"):
    getattr(_libm, _n).restype = C.c_float
_libm.powf.argtypes = [C.c_float, C.c_float]
_libm.cosf.argtypes = _libm.sinf.argtypes = [C.c_float]


def mirror_rope_normal(x: np.ndarray, pos: np.ndarray, base: float) -> np.ndarray:
    """ggml's NORMAL rope: theta_i = pos * theta_scale^i by repeated float multiplication,
    theta_scale = powf(base, -2/d), cosf/sinf, then x0' = fma(x0, c, -(x1*s)) and
    x1' = fma(x0, s, x1*c)."""
    x = np.asarray(x, np.float32).copy()
    d = x.shape[-1]
    ts = np.float32(_libm.powf(base, float(np.float32(-2.0) / np.float32(d))))
    for t, p in enumerate(pos):
        theta = np.float32(p)
        for i in range(d // 2):
            c, s = np.float32(_libm.cosf(float(theta))), np.float32(_libm.sinf(float(theta)))
            x0, x1 = x[t, :, 2 * i].copy(), x[t, :, 2 * i + 1].copy()
            x[t, :, 2 * i] = _fma(x0, c, -(x1 * s))
            x[t, :, 2 * i + 1] = _fma(x0, s, x1 * c)
            theta = np.float32(theta * ts)
    return x


def main() -> None:
    g = Ggml()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 64)).astype(np.float32)
    pos = np.array([0, 1, 7, 33, 200, 1000], np.int32)
    ours = mirror_rope_normal(x, pos, 100000.0)
    ref = g.rope(x, pos, 100000.0, mode=0)
    print(f"ggml-cpu-{g.variant} rope normal: {np.sum(ours.view(np.uint32) == ref.view(np.uint32))}/{x.size} "
          f"bit-identical to the mirror, max |diff| {np.max(np.abs(ours - ref)):.3g}")


if __name__ == "__main__":
    main()
