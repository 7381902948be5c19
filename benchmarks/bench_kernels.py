"""Benchmark the lowbit.kernels numba kernels against the numpy / lowbit.formats path, and (when a
CUDA GPU is present) the Triton quantizers' throughput against memory bandwidth.

    .venv/bin/python benchmarks/bench_kernels.py [--rows 2048 --cols 2048 --repeat 5 --json out]

For every operation the reference path produces the same bits (checked here before timing):
- fp8 quantize:            lowbit.formats.encode(x, "fp8_e4m3")
- mxfp8 / mxfp4 / nvfp4:   lowbit.formats.encode(x, fmt) (+ lowbit.formats.pack for FP4)
- dequantize:              QuantizedTensor.dequantize() / lowbit.formats.decode, cast to float32
- FP4 GEMM:                numpy per-block reference (formats.decode, einsum block dots, FP32
                           accumulation in K order) and lowbit.sim.mxdot.mx_dot_encoded
Times are the best of ``--repeat`` runs after one warm-up (numba compile excluded; the minimum
is the robust estimator on a shared machine).
"""
# ruff: noqa: B023  (closures are called immediately inside the loop that defines them)
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def _timeit(fn, repeat):
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.min(ts))


def _pack(c):
    from lowbit.formats import pack
    return np.stack([pack(r, "fp4_e2m1") for r in c]) if c.ndim == 2 else pack(c, "fp4_e2m1")


def _np_block_gemm(Pa, Xa, Pb, Xb, bs, alpha=None):
    """numpy reference: exact block dots (float64 einsum, exact for FP4), FP32 accumulation."""
    M, Kp = Pa.shape
    nb = Kp // bs
    d = np.einsum("mbk,nbk->mnb", Pa.reshape(M, nb, bs), Pb.reshape(-1, nb, bs))
    t = (d * Xa[:, None, :] * Xb[None, :, :]).astype(np.float32)
    acc = np.zeros(t.shape[:2], np.float32)
    for b in range(nb):
        acc = acc + t[:, :, b]
    return acc if alpha is None else (acc.astype(np.float64) * alpha).astype(np.float32)


def bench_numba(rows, cols, repeat, gemm_mnk):
    from lowbit.formats import decode, encode
    from lowbit.kernels import numba_gemm as ng
    from lowbit.kernels import numba_quant as nq
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((rows, cols)) * np.exp2(rng.integers(-8, 8, (rows, 1)))
         ).astype(np.float32)
    res = []

    def add(op, f_numba, f_ref, check):
        assert check(), f"{op}: numba and reference outputs differ"
        tn, tr = _timeit(f_numba, repeat), _timeit(f_ref, repeat)
        res.append({"op": op, "numba_s": tn, "reference_s": tr, "speedup": tr / tn,
                    "numba_GBps": x.nbytes / tn / 1e9})
        print(f"  {op:<28} numba {tn * 1e3:8.2f} ms  reference {tr * 1e3:8.2f} ms  "
              f"speedup {tr / tn:5.1f}x")

    for f in ("fp8_e4m3", "fp8_e5m2"):
        add(f"quantize {f}", lambda: nq.fp8_quantize(x, f), lambda: encode(x, f),
            lambda: np.array_equal(nq.fp8_quantize(x, f), encode(x, f)))
        c = nq.fp8_quantize(x, f)
        add(f"dequantize {f}", lambda: nq.fp8_dequantize(c, f),
            lambda: decode(c, f).astype(np.float32),
            lambda: np.array_equal(nq.fp8_dequantize(c, f), decode(c, f).astype(np.float32)))
    for f in ("mxfp8", "mxfp4"):
        fp4 = f == "mxfp4"

        def ref(f=f, fp4=fp4):
            qt = encode(x, f)
            return (_pack(qt.codes) if fp4 else qt.codes), qt.scale_codes

        add(f"quantize{'+pack' if fp4 else ''} {f}", lambda f=f: nq.mx_quantize(x, f), ref,
            lambda f=f, ref=ref: all(np.array_equal(a, b) for a, b in
                                     zip(nq.mx_quantize(x, f), ref())))
        qt = encode(x, f)
        c, s = nq.mx_quantize(x, f)
        add(f"dequantize {f}", lambda c=c, s=s, f=f: nq.mx_dequantize(c, s, cols, f),
            lambda qt=qt: qt.dequantize().astype(np.float32),
            lambda c=c, s=s, f=f, qt=qt: np.array_equal(nq.mx_dequantize(c, s, cols, f),
                                                        qt.dequantize().astype(np.float32)))

    def ref_nv():
        qt = encode(x, "nvfp4")
        return _pack(qt.codes), qt.scale_codes

    add("quantize+pack nvfp4", lambda: nq.nvfp4_quantize(x)[:2], ref_nv,
        lambda: all(np.array_equal(a, b) for a, b in zip(nq.nvfp4_quantize(x)[:2], ref_nv())))
    qt = encode(x, "nvfp4")
    c, s, ts = nq.nvfp4_quantize(x)
    add("dequantize nvfp4", lambda: nq.nvfp4_dequantize(c, s, cols, ts),
        lambda: qt.dequantize().astype(np.float32),
        lambda: np.array_equal(nq.nvfp4_dequantize(c, s, cols, ts),
                               qt.dequantize().astype(np.float32)))

    M, N, K = gemm_mnk
    a = x[:M, :K].copy()
    b = (rng.standard_normal((N, K))).astype(np.float32)

    def vals(p, bs):
        lo, hi = p & 0xF, p >> 4
        return decode(np.stack([lo, hi], -1).reshape(p.shape[0], -1)[:, :K], "fp4_e2m1")

    for name, bs in (("mxfp4", 32), ("nvfp4", 16)):
        if name == "mxfp4":
            ca, sa = nq.mx_quantize(a, "mxfp4")
            cb, sb = nq.mx_quantize(b, "mxfp4")
            Xa, Xb, alpha, sf = decode(sa, "e8m0"), decode(sb, "e8m0"), None, None
            f_numba = lambda: ng.mxfp4_gemm(ca, sa, cb, sb, K)  # noqa: E731
        else:
            ca, sa, ta = nq.nvfp4_quantize(a)
            cb, sb, tb = nq.nvfp4_quantize(b)
            Xa, Xb, alpha, sf = decode(sa, "ue4m3"), decode(sb, "ue4m3"), float(ta) * float(tb), \
                "ue4m3"
            f_numba = lambda: ng.nvfp4_gemm(ca, sa, ta, cb, sb, tb, K)  # noqa: E731
        f_np = lambda: _np_block_gemm(vals(ca, bs), Xa, vals(cb, bs), Xb, bs, alpha)  # noqa: E731
        add(f"gemm {name} {M}x{N}x{K}", f_numba, f_np,
            lambda: np.array_equal(f_numba().view(np.uint32), f_np().view(np.uint32)))
        try:
            from lowbit.sim.mxdot import mx_dot_encoded
            kw = {} if alpha is None else dict(tensor_scale_a=float(ta), tensor_scale_b=float(tb),
                                               scale_fmt=sf)
            Pa, Pb = vals(ca, bs), vals(cb, bs)
            f_sim = lambda: mx_dot_encoded(Pa, Xa, Pb, Xb, bs, "fp4_e2m1", accum="fp32", **kw)  # noqa: E731,E501
            add(f"gemm {name} vs lowbit.sim", f_numba, f_sim,
                lambda: np.array_equal(f_numba().view(np.uint32),
                                       f_sim().astype(np.float32).view(np.uint32)))
        except ImportError:
            pass
    return res


def bench_triton_gpu(rows, cols, repeat):
    import torch
    if not torch.cuda.is_available():
        print("Triton GPU throughput: skipped (no CUDA GPU; the interpreter is not benchmarked)")
        return []
    from lowbit.kernels import triton_quant as tq
    x = torch.randn(rows, cols, device="cuda", dtype=torch.float32)
    res = []

    def run(op, fn, nbytes):
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(repeat * 10):
            fn()
        torch.cuda.synchronize()
        dt = (time.perf_counter() - t) / (repeat * 10)
        res.append({"op": op, "s": dt, "GBps": nbytes / dt / 1e9})
        print(f"  {op:<28} {dt * 1e6:9.1f} us  {nbytes / dt / 1e9:8.1f} GB/s")

    n = x.numel()
    run("copy (bandwidth reference)", lambda: x.clone(), 2 * 4 * n)
    run("fp8_e4m3 quantize", lambda: tq.fp8_quantize(x, "fp8_e4m3"), 5 * n)
    run("mxfp8 quantize floor", lambda: tq.mx_quantize(x, "mxfp8"), 5 * n + n // 32)
    run("mxfp4 quantize+pack", lambda: tq.mx_quantize(x, "mxfp4"), 4.5 * n + n // 32)
    run("nvfp4 quantize+pack", lambda: tq.nvfp4_quantize(x, tensor_amax=4.0), 4.5 * n + n // 16)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--cols", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--gemm", type=int, nargs=3, default=(256, 256, 1024), metavar=("M", "N", "K"))
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    import numba
    print(f"numba kernels vs numpy/lowbit.formats path, {args.rows}x{args.cols} float32, "
          f"{numba.get_num_threads()} threads (cpu_count={os.cpu_count()}):")
    out = {"numba": bench_numba(args.rows, args.cols, args.repeat, tuple(args.gemm))}
    try:
        out["triton_gpu"] = bench_triton_gpu(args.rows * 4, args.cols * 4, args.repeat)
    except ImportError:
        print("Triton GPU throughput: skipped (torch/triton not installed)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
