"""Throughput of the lowbit.sim GEMM engine (emulated MACs per second).

Usage: ``python benchmarks/bench_sim.py [--n 128 --k 1024 --m 128] [--threads 1] [--json out.json]``

For each accumulator model, runs the GEMM kernel on already-quantised operands (so only the
emulated accumulation is timed; compile time excluded by a warm-up call) and reports MAC/s and
the slowdown versus numpy's float64 matmul (BLAS) on the same shapes.  ``--threads 1`` gives the
per-core figure (numba and BLAS both limited to one thread).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def _best(fn, reps):
    """(best wall seconds, best process-CPU seconds) over ``reps`` calls after a warm-up.
    With one thread the CPU time is the per-core cost even on a loaded machine."""
    fn()
    best, best_cpu = np.inf, np.inf
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        fn()
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
    return best, best_cpu


def run(n=128, k=1024, m=128, threads=1, reps=3):
    import numba
    from threadpoolctl import threadpool_limits

    from lowbit.formats.accum import parse_accum
    from lowbit.sim.gemm import gemm_nt
    from lowbit.sim.operands import prepare

    if threads:
        numba.set_num_threads(threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, k))
    w = rng.standard_normal((m, k))
    macs = n * k * m
    rows = []
    with threadpool_limits(limits=threads or None):
        t_np, c_np = _best(lambda: x @ w.T, reps)
        rows.append(("numpy float64 matmul (BLAS)", "-", macs / t_np, macs / c_np, 1.0))
        cases = [("fp16", "fp16"), ("fp16", "bf16"), ("fp16", "fp32"), ("fp16", "fp16_pairwise"),
                 ("fp16", "fp32_chunk32"), ("fp16", "exact"), ("int8", "int32"),
                 ("mxfp4", "fp32"), ("mxfp8_e4m3", "fp32"), ("nvfp4", "fp32")]
        for fmt, acc in cases:
            A = prepare(x, fmt)
            W = prepare(w, fmt)
            model = parse_accum(acc)
            t, c = _best(lambda A=A, W=W, model=model: gemm_nt(A, W, model), reps)
            rows.append((f"{fmt} x {fmt} -> {acc}", acc, macs / t, macs / c, c / c_np))
    return {"shape": [n, k, m], "threads": threads or numba.get_num_threads(), "rows": rows}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--k", type=int, default=1024)
    ap.add_argument("--m", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1, help="0 = numba default")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    res = run(a.n, a.k, a.m, a.threads, a.reps)
    print(f"GEMM ({a.n} x {a.k}) @ ({a.k} x {a.m}), threads={res['threads']}")
    print(f"{'case':36s} {'MAC/s wall':>12s} {'MAC/s CPU':>12s} {'CPU x BLAS':>11s}")
    for name, _, rate, crate, slow in res["rows"]:
        print(f"{name:36s} {rate / 1e6:10.1f} M {crate / 1e6:10.1f} M {slow:10.1f}x")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
