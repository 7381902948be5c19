"""``python -m lowbit.kernels.validate``: run the kernel checks on this machine.

1. numba kernels vs lowbit.formats / lowbit.sim.mxdot on the edge vectors of
   :mod:`lowbit.kernels.vectors` (always; CPU).
2. Triton kernels, same checks: natively when a CUDA GPU is present, otherwise through Triton's
   CPU interpreter (said so in the output; ``--no-interpreter`` skips them instead).
3. Accumulation study (:mod:`lowbit.kernels.accum_study`): which accumulator model reproduces
   ``torch._scaled_mm`` (E4M3 x E4M3 -> FP32) bit for bit - on the CPU always (torch's CPU
   implementation), and on the GPU when it is Hopper (sm_90) or newer.

Exit code 0 when every kernel check passes, 1 otherwise. ``--json PATH`` writes the results.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np

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


class _NumbaOps:
    name = "numba"

    def __init__(self):
        from . import numba_gemm, numba_quant
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
    from dataclasses import replace

    from lowbit.formats import decode, encode, get_format
    out = []

    def rec(check, n, ok, detail=""):
        out.append({"backend": ops.name, "check": check, "vectors": int(n), "ok": bool(ok),
                    "detail": detail})

    for f in ("fp8_e4m3", "fp8_e5m2"):
        x = V.fp8_vector(f)
        rec(f"quantize {f}", x.size, np.array_equal(ops.fp8(x, f), encode(x, f)))
        c = np.arange(256, dtype=np.uint8)
        rec(f"dequantize {f}", 256, _same(ops.fp8_deq(c, f), decode(c, f)))
    for f in ("mxfp8", "mxfp8_e5m2", "mxfp4"):
        x = V.mx_matrix(f)
        for rule in S.MX_SCALE_RULES:
            qt = encode(x, replace(get_format(f), scale_rule=rule, name=None))
            rc = _pack(qt.codes) if f == "mxfp4" else qt.codes
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

    try:
        from lowbit.sim.mxdot import mx_dot_encoded
    except ImportError as e:  # pragma: no cover
        rec("gemm", 0, True, f"skipped: lowbit.sim.mxdot unavailable ({e})")
        return out
    M, N, K = gemm_size
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((M, K)) * np.exp2(rng.integers(-6, 6, (M, 1)))).astype(np.float32)
    b = rng.standard_normal((N, K)).astype(np.float32)

    def vals(p, bs):
        v = decode(_unpack(p, K), "fp4_e2m1")
        return np.pad(v, ((0, 0), (0, (-K) % bs)))

    ca, sa = ops.mx(a, "mxfp4", "floor")
    cb, sb = ops.mx(b, "mxfp4", "rceil")
    ref = mx_dot_encoded(vals(ca, 32), decode(sa, "e8m0"), vals(cb, 32), decode(sb, "e8m0"), 32,
                         "fp4_e2m1", accum="fp32")
    for v in ops.gemm_variants:
        rec(f"gemm mxfp4 {v or ''}".strip(), M * N, _same(ops.mx_gemm(ca, sa, cb, sb, K, v), ref),
            "vs lowbit.sim.mxdot accum=fp32")
    ca, sa, ta = ops.nv(a)
    cb, sb, tb = ops.nv(b)
    ref = mx_dot_encoded(vals(ca, 16), decode(sa, "ue4m3"), vals(cb, 16), decode(sb, "ue4m3"), 16,
                         "fp4_e2m1", accum="fp32", tensor_scale_a=float(ta),
                         tensor_scale_b=float(tb), scale_fmt="ue4m3")
    rec("gemm nvfp4", M * N, _same(ops.nv_gemm(ca, sa, ta, cb, sb, tb, K), ref),
        "vs lowbit.sim.mxdot accum=fp32")
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
    import numba
    env["numba"] = numba.__version__
    return env


def _print_checks(rows):
    for r in rows:
        mark = "PASS" if r["ok"] else "FAIL"
        print(f"  [{mark}] {r['backend']:<20} {r['check']:<28} {r['vectors']:>6} vectors"
              f"{'  ' + r['detail'] if r['detail'] else ''}")


def _study(device, gpu, K):
    from . import accum_study as A
    a, b = A.make_operands(32, 32, K)
    t = A.scaled_mm(a, b, device)
    res = A.study(a, b, t, gpu=gpu, lanes=not gpu)
    top, models = A.best(res)
    import torch
    same_as_mm = None
    if device == "cpu":
        ta = torch.from_numpy(a.astype(np.float32))
        tb = torch.from_numpy(b.astype(np.float32))
        same_as_mm = bool(np.array_equal((ta @ tb.t()).numpy().view(np.uint32), t.view(np.uint32)))
    print(f"  torch._scaled_mm on {device} (M=N=32, K={K}): best model(s) {models} match "
          f"{100 * top:.1f}% of outputs bit for bit")
    for name in ("exact", "fp32", "fp32_pairwise", "fp32_chunk32"):
        if name in res:
            print(f"    {name:<16} {100 * res[name][0]:5.1f}% exact, max err {res[name][1]:.0f} ulp")
    if same_as_mm is not None:
        print(f"    identical to torch.mm of the FP32-upcast operands: {same_as_mm}")
    return {"device": device, "K": K, "best": models, "best_match": top,
            "same_as_fp32_mm": same_as_mm,
            "models": {k: {"match": v[0], "max_ulp": v[1]} for k, v in res.items()}}


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m lowbit.kernels.validate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write results to this JSON file")
    ap.add_argument("--no-interpreter", action="store_true",
                    help="without a GPU, skip the Triton checks instead of interpreting them")
    ap.add_argument("--no-study", action="store_true", help="skip the _scaled_mm study")
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

    study = []
    if not args.no_study and env.get("torch") is not None:
        print("accumulation study (which accumulator model reproduces torch._scaled_mm):")
        try:
            for K in (256, 1024):
                study.append(_study("cpu", False, K))
        except Exception as e:  # noqa: BLE001 - report and go on
            notes.append(f"CPU _scaled_mm study failed: {type(e).__name__}: {e}")
        cap = env.get("capability")
        if env["cuda"] and cap and cap[0] >= 9:
            for K in (256, 4096):
                study.append(_study("cuda", True, K))
        elif env["cuda"]:
            notes.append(f"GPU _scaled_mm study skipped: compute capability {cap} < 9.0 (Hopper)")
        else:
            notes.append("GPU _scaled_mm study skipped: no CUDA GPU")
    for n in notes:
        print("note:", n)
    ok = all(r["ok"] for r in rows)
    print(f"{sum(r['ok'] for r in rows)}/{len(rows)} checks passed, "
          f"{sum(r['vectors'] for r in rows)} vectors, {time.time() - t0:.1f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"environment": env, "checks": rows, "study": study, "notes": notes}, fh,
                      indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
