"""``python -m lowbit.kernels.validate``: run the kernel checks on this machine.

1. numba kernels vs lowbit.formats (quantize / dequantize) and :func:`reference_block_gemm`
   (GEMMs) on the edge vectors of :mod:`lowbit.kernels.vectors` (always; CPU).
2. Triton kernels, same checks: natively when a CUDA GPU is present, otherwise through Triton's
   CPU interpreter (said so in the output; ``--no-interpreter`` skips them instead).

(The study of which accumulator model reproduces ``torch._scaled_mm`` is
``benchmarks/study_scaled_mm.py``; the GEMM kernels are also tested against
``lowbit.sim.mxdot`` in ``tests/kernels``.)

Exit code 0 when every kernel check passes, 1 otherwise. ``--json PATH`` writes the results.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import replace

import numba
import numpy as np

from lowbit.formats import decode, encode, get_format

from . import numba_gemm, numba_quant
from . import spec as S
from . import vectors as V


def _same(a, b):
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    an, bn = np.isnan(a), np.isnan(b)
    return bool(a.shape == b.shape and np.array_equal(an, bn)
                and np.array_equal(a.view(np.uint32)[~an], b.view(np.uint32)[~bn]))


def _pack(c):
    c = np.asarray(c, np.uint8)
    if c.shape[1] % 2:
        c = np.pad(c, ((0, 0), (0, 1)))
    return c[:, 0::2] | (c[:, 1::2] << 4)


def _unpack(p, K):
    p = np.asarray(p, np.uint8)
    return np.stack([p & 0xF, p >> 4], -1).reshape(p.shape[0], -1)[:, :K]


def reference_block_gemm(a_vals, a_scales, b_vals, b_scales, block, alpha=None):
    """The block-scaled GEMM model the kernels implement, from decoded values: ``C = A @ B^T``
    with, per scale block in K order, ``acc = fp32(acc + t)`` where ``t = X_A X_B sum_k a_k b_k``.

    ``a_vals`` (M, K) / ``b_vals`` (N, K): element values (float64, K a multiple of ``block``);
    ``a_scales`` (M, K/block) / ``b_scales`` (N, K/block): block scales (float64, NaN = NaN
    block). For FP4 elements and E8M0 / UE4M3 scales ``t`` is exact in float64 and has at most
    21 significant bits, so ``fp32(float64(acc + t))`` is the single rounding of the exact sum
    (two 24-bit operands: rounding through 53 >= 2*24 + 2 bits is innocuous, Figueroa 1995).
    NVFP4 epilogue ``fp32(float64(acc) * alpha)``, alpha = ts_A * ts_B (float64)."""
    M, K = a_vals.shape
    nb = K // block
    acc = np.zeros((M, b_vals.shape[0]), np.float32)
    with np.errstate(invalid="ignore"):
        for b in range(nb):
            sl = slice(b * block, (b + 1) * block)
            t = (a_vals[:, sl] @ b_vals[:, sl].T) * a_scales[:, b:b + 1] * b_scales[None, :, b]
            acc = (acc.astype(np.float64) + t).astype(np.float32)
    if alpha is not None:
        acc = (acc.astype(np.float64) * alpha).astype(np.float32)
    return acc


class _NumbaOps:
    name = "numba"

    def __init__(self):
        self.q, self.g = numba_quant, numba_gemm

    def fp8(self, x, f):
        return self.q.fp8_quantize(x, f)

    def fp8_deq(self, c, f):
        return self.q.fp8_dequantize(c, f)

    def mx(self, x, f, r):
        return self.q.mx_quantize(x, f, r)

    def mx_deq(self, c, s, K, f):
        return self.q.mx_dequantize(c, s, K, f)

    def nv(self, x):
        return self.q.nvfp4_quantize(x)

    def nv_deq(self, c, s, K, t):
        return self.q.nvfp4_dequantize(c, s, K, t)

    def mx_gemm(self, ca, sa, cb, sb, K, variant):
        return self.g.mxfp4_gemm(ca, sa, cb, sb, K)

    def nv_gemm(self, ca, sa, ta, cb, sb, tb, K):
        return self.g.nvfp4_gemm(ca, sa, ta, cb, sb, tb, K)

    gemm_variants = (None,)


class _TritonOps:
    gemm_variants = ("dot_scaled", "dequant")

    def __init__(self):
        import torch

        from . import _triton, triton_gemm, triton_quant
        self.torch, self.q, self.g = torch, triton_quant, triton_gemm
        self.dev = _triton.device()
        self.name = "triton-" + ("interpreter" if _triton.INTERPRETED else "native")

    def _t(self, a):
        return self.torch.from_numpy(np.ascontiguousarray(a)).to(self.dev)

    @staticmethod
    def _n(*ts):
        out = tuple(t.cpu().numpy() if hasattr(t, "cpu") else t for t in ts)
        return out if len(out) > 1 else out[0]

    def fp8(self, x, f):
        return self._n(self.q.fp8_quantize(self._t(x), f))

    def fp8_deq(self, c, f):
        return self._n(self.q.fp8_dequantize(self._t(c), f))

    def mx(self, x, f, r):
        return self._n(*self.q.mx_quantize(self._t(x), f, r))

    def mx_deq(self, c, s, K, f):
        return self._n(self.q.mx_dequantize(self._t(c), self._t(s), K, f))

    def nv(self, x):
        return self._n(*self.q.nvfp4_quantize(self._t(x)))

    def nv_deq(self, c, s, K, t):
        return self._n(self.q.nvfp4_dequantize(self._t(c), self._t(s), K, t))

    def mx_gemm(self, ca, sa, cb, sb, K, variant):
        return self._n(self.g.mxfp4_gemm(self._t(ca), self._t(sa), self._t(cb), self._t(sb), K,
                                         variant=variant))

    def nv_gemm(self, ca, sa, ta, cb, sb, tb, K):
        return self._n(self.g.nvfp4_gemm(self._t(ca), self._t(sa), ta, self._t(cb),
                                         self._t(sb), tb, K))


def run_checks(ops, gemm_size=(24, 20, 96)):
    """List of dicts {check, vectors, ok, detail} for one backend."""
    out = []

    def rec(check, n, ok, detail=""):
        out.append({"backend": ops.name, "check": check, "vectors": int(n), "ok": bool(ok),
                    "detail": detail})

    families = S.kernel_formats()
    for f in [n for n, fam in families.items() if fam == "element"]:
        x = V.fp8_vector(f)
        # the kernels' policy: saturate (Inf -> +-max), NaN -> +0 in a format without NaN
        rec(f"quantize {f}", x.size, np.array_equal(ops.fp8(x, f), encode(
            x, f, overflow="saturate", nan_input="zero")))
        c = np.arange(1 << get_format(f).bits, dtype=np.uint8)
        rec(f"dequantize {f}", c.size, _same(ops.fp8_deq(c, f), decode(c, f)))
    for f in [n for n, fam in families.items() if fam == "mx"]:
        x = V.mx_matrix(f)
        packed = S.mx_spec(f).elem.bits == 4
        for rule in S.MX_SCALE_RULES:
            qt = encode(x, replace(get_format(f), scale_rule=rule, name=None))
            rc = _pack(qt.codes) if packed else qt.codes
            c, s = ops.mx(x, f, rule)
            ok = np.array_equal(c, rc) and np.array_equal(s, qt.scale_codes)
            rec(f"quantize {f} {rule}", x.size, ok)
            rec(f"dequantize {f} {rule}", x.size,
                _same(ops.mx_deq(c, s, x.shape[1], f), qt.dequantize()))
    x = V.nvfp4_matrix()
    qt = encode(x, "nvfp4")
    c, s, ts = ops.nv(x)
    rec("quantize nvfp4", x.size, np.array_equal(c, _pack(qt.codes))
        and np.array_equal(s, qt.scale_codes) and float(ts) == qt.tensor_scale)
    rec("dequantize nvfp4", x.size, _same(ops.nv_deq(c, s, x.shape[1], ts), qt.dequantize()))

    M, N, K = gemm_size
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((M, K)) * np.exp2(rng.integers(-6, 6, (M, 1)))).astype(np.float32)
    b = rng.standard_normal((N, K)).astype(np.float32)

    def vals(p, bs):
        v = decode(_unpack(p, K), "fp4_e2m1")
        return np.pad(v, ((0, 0), (0, (-K) % bs)))

    mx = S.mx_spec("mxfp4")
    ca, sa = ops.mx(a, "mxfp4", "floor")
    cb, sb = ops.mx(b, "mxfp4", "rceil")
    ref = reference_block_gemm(vals(ca, mx.block), decode(sa, mx.fmt.scale), vals(cb, mx.block),
                               decode(sb, mx.fmt.scale), mx.block)
    for v in ops.gemm_variants:
        rec(f"gemm mxfp4 {v or ''}".strip(), M * N, _same(ops.mx_gemm(ca, sa, cb, sb, K, v), ref),
            "vs reference_block_gemm")
    nv = S.nvfp4_spec("nvfp4")
    ca, sa, ta = ops.nv(a)
    cb, sb, tb = ops.nv(b)
    ref = reference_block_gemm(vals(ca, nv.block), decode(sa, nv.fmt.scale), vals(cb, nv.block),
                               decode(sb, nv.fmt.scale), nv.block,
                               alpha=float(ta) * float(tb))
    rec("gemm nvfp4", M * N, _same(ops.nv_gemm(ca, sa, ta, cb, sb, tb, K), ref),
        "vs reference_block_gemm")
    return out


def environment():
    env = {"python": platform.python_version(), "machine": platform.machine()}
    try:
        import torch
        env["torch"] = torch.__version__
        env["cuda"] = bool(torch.cuda.is_available())
        if env["cuda"]:
            env["gpu"] = torch.cuda.get_device_name(0)
            env["capability"] = list(torch.cuda.get_device_capability(0))
    except ImportError:
        env["torch"] = None
        env["cuda"] = False
    try:
        from . import _triton
        env["triton"] = getattr(_triton.triton, "__version__", None)
        env["triton_interpreted"] = _triton.INTERPRETED
    except ImportError:  # pragma: no cover
        env["triton"] = None
    env["numba"] = numba.__version__
    return env


def _print_checks(rows):
    for r in rows:
        mark = "PASS" if r["ok"] else "FAIL"
        print(f"  [{mark}] {r['backend']:<20} {r['check']:<28} {r['vectors']:>6} vectors"
              f"{'  ' + r['detail'] if r['detail'] else ''}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m lowbit.kernels.validate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write results to this JSON file")
    ap.add_argument("--no-interpreter", action="store_true",
                    help="without a GPU, skip the Triton checks instead of interpreting them")
    args = ap.parse_args(argv)
    t0 = time.time()
    env = environment()
    print("lowbit.kernels.validate:", ", ".join(f"{k}={v}" for k, v in env.items()))
    rows, notes = [], []

    print("numba kernels (CPU) vs lowbit.formats / lowbit.sim.mxdot:")
    r = run_checks(_NumbaOps())
    _print_checks(r)
    rows += r

    if env.get("torch") is None or env.get("triton") is None:
        notes.append("Triton checks skipped: torch/triton not installed "
                     "(pip install lowbit[kernels])")
    elif not env["cuda"] and args.no_interpreter:
        notes.append("Triton checks skipped: no CUDA GPU (torch.cuda.is_available() is False) "
                     "and --no-interpreter given")
    else:
        if not env["cuda"]:
            notes.append("native GPU validation skipped: no CUDA GPU "
                         "(torch.cuda.is_available() is False); Triton kernels ran in the CPU "
                         "interpreter (TRITON_INTERPRET=1)")
        ops = _TritonOps()
        print(f"Triton kernels ({ops.name}) vs lowbit.formats / lowbit.sim.mxdot:")
        r = run_checks(ops)
        _print_checks(r)
        rows += r

    for n in notes:
        print("note:", n)
    ok = all(r["ok"] for r in rows)
    print(f"{sum(r['ok'] for r in rows)}/{len(rows)} checks passed, "
          f"{sum(r['vectors'] for r in rows)} vectors, {time.time() - t0:.1f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"environment": env, "checks": rows, "notes": notes}, fh, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
