"""Throughput of the lowbit.sim GEMM engine, as ratios to numpy's float64 BLAS in the same run.

Usage: ``python benchmarks/bench_sim.py [--shapes 128x1024x128,1024x4096x4096] [--threads 0]
[--reps 3] [--reference] [--json out.json]``

A shape ``NxKxM`` is activations (N, K) times weights (M, K) transposed.  Both operands are
quantised first (``lowbit.sim.operands.prepare``, not timed: quantisation has its own benchmark);
then ``gemm_nt`` - the engine with its automatic, provably bit-identical fast paths - is timed,
best of ``--reps`` after a compile warm-up.  The baseline is ``x @ w.T`` in float64 (numpy's
BLAS) on the same shape with the same thread count, measured in the same run before and after
the cases (the faster of the two counts); ``x BLAS`` is
``t_BLAS / t_case`` (1.0 = BLAS speed), and "met" judges the issue-14 target on these wall-clock
figures.  ``G/cpu-s`` and ``x BLAS cpu`` use process CPU time instead (MACs per CPU-second of
all threads): on a machine shared with other jobs they show what the code does per core, while
the wall-clock figures also measure how much of the machine the run got.  ``--reference`` also
times the reference kernels (``LOWBIT_SLOW_GEMM=1``) on shapes up to 3e8 MACs, for the speed-up
column.

Targets (issue 14, 2 cores): int8 -> int32 and exact accumulation of fp8 operands >= 0.5x BLAS;
MXFP4 / MXFP8 / NVFP4 -> fp32 >= 0.2x BLAS; fp16 / bf16 / fp32 per-add sequential accumulation
>= 2 G MAC/s.  Data: standard normal; the int8 case scales it by 32 so the codes use the whole
int8 range.  Timings are noisy on a shared machine: compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace

import numpy as np

#: (activation/weight format, accumulator, input scale, target: ("ratio", r) | ("rate", MAC/s))
CASES = [
    ("fp16", "fp16", 1.0, ("rate", 2e9)),
    ("fp16", "bf16", 1.0, ("rate", 2e9)),
    ("fp16", "fp32", 1.0, ("rate", 2e9)),
    ("fp16", "fp16_pairwise", 1.0, None),
    ("fp8_e4m3", "fp32_chunk32", 1.0, None),
    ("fp8_e4m3", "exact", 1.0, ("ratio", 0.5)),
    ("int8", "int32", 32.0, ("ratio", 0.5)),
    ("int8_pc", "int32", 1.0, None),
    ("mxfp4", "fp32", 1.0, ("ratio", 0.2)),
    ("mxfp8_e4m3", "fp32", 1.0, ("ratio", 0.2)),
    ("nvfp4", "fp32", 1.0, ("ratio", 0.2)),
]
REFERENCE_MAX_MACS = 3e8


MIN_SECONDS = 0.5  # small shapes repeat until this much time has passed (best of the runs)


def _best(fn, reps):
    """(best wall seconds, best process CPU seconds) over at least ``reps`` calls, more for
    fast calls (until ``MIN_SECONDS``, at most 200)."""
    best, best_cpu, n, spent = np.inf, np.inf, 0, 0.0
    while n < reps or (spent < MIN_SECONDS and n < 200):
        t, c = time.perf_counter(), time.process_time()
        fn()
        dt = time.perf_counter() - t
        best, best_cpu = min(best, dt), min(best_cpu, time.process_time() - c)
        spent += dt
        n += 1
    return best, best_cpu


def run_shape(n, k, m, reps=3, reference=False, cases=CASES):
    from lowbit.formats.accum import parse_accum
    from lowbit.sim.engine import gemm_nt, gemm_path
    from lowbit.sim.fastpath import SLOW_GEMM_ENV
    from lowbit.sim.operands import prepare

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, k))
    w = rng.standard_normal((m, k))
    macs = n * k * m
    x @ w.T
    t_blas, c_blas = _best(lambda: x @ w.T, reps)
    rows = []
    for fmt, acc, scale, target in cases:
        A, W = prepare(x * scale, fmt), prepare(w * scale, fmt)
        model = parse_accum(acc)
        gemm_nt(A.rows(0, min(n, 4)), W.rows(0, min(m, 4)), model)  # compile / warm-up
        # fresh operand objects per call (no cached data statistics): the timing includes the
        # engine's exactness checks
        t, c = _best(lambda A=A, W=W, model=model: gemm_nt(replace(A), replace(W), model), reps)
        row = {"case": f"{fmt} x {fmt} -> {acc}", "path": gemm_path(A, W, model),
               "seconds": t, "cpu_seconds": c, "mac_per_s": macs / t, "mac_per_cpu_s": macs / c,
               "x_blas": t_blas / t, "x_blas_cpu": c_blas / c}
        if target is None:
            row["target"], row["ok"] = "-", None
        elif target[0] == "ratio":
            row["target"], row["ok"] = f">= {target[1]:g}x BLAS", row["x_blas"] >= target[1]
        else:
            row["target"], row["ok"] = (f">= {target[1] / 1e9:g} G MAC/s",
                                        row["mac_per_s"] >= target[1])
        if reference and macs <= REFERENCE_MAX_MACS:
            os.environ[SLOW_GEMM_ENV] = "1"
            try:
                t_ref = _best(lambda A=A, W=W, model=model: gemm_nt(replace(A), replace(W),
                                                                     model), 1)[0]
            finally:
                del os.environ[SLOW_GEMM_ENV]
            row["speedup_vs_reference"] = t_ref / t
        rows.append(row)
    # the baseline again after the cases: the faster of the two BLAS timings is the baseline
    # (a shared machine slows a 2-thread BLAS most; this keeps the ratios conservative)
    t2, c2 = _best(lambda: x @ w.T, reps)
    t_blas, c_blas = min(t_blas, t2), min(c_blas, c2)
    for row in rows:
        row["x_blas"], row["x_blas_cpu"] = t_blas / row["seconds"], c_blas / row["cpu_seconds"]
        if row["target"].endswith("x BLAS"):
            row["ok"] = row["x_blas"] >= float(row["target"].split()[1][:-1])
    rows.insert(0, {"case": "numpy float64 matmul (BLAS)", "path": "-", "seconds": t_blas,
                    "cpu_seconds": c_blas, "mac_per_s": macs / t_blas,
                    "mac_per_cpu_s": macs / c_blas, "x_blas": 1.0, "x_blas_cpu": 1.0,
                    "target": "-", "ok": None})
    return {"shape": [n, k, m], "macs": macs, "rows": rows}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="128x1024x128,1024x4096x4096",
                    help="comma-separated NxKxM (activations N x K, weights M x K)")
    ap.add_argument("--threads", type=int, default=0,
                    help="numba and BLAS threads (0 = all cores)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--reference", action="store_true",
                    help="also time the reference kernels on small shapes")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    import numba
    from threadpoolctl import threadpool_limits

    if a.threads:
        numba.set_num_threads(a.threads)
    threads = numba.get_num_threads()
    out = {"threads": threads, "shapes": []}
    with threadpool_limits(limits=a.threads or None, user_api="blas"):
        for spec in a.shapes.split(","):
            n, k, m = (int(v) for v in spec.lower().split("x"))
            res = run_shape(n, k, m, a.reps, a.reference)
            out["shapes"].append(res)
            print(f"\nGEMM ({n} x {k}) @ ({k} x {m})^T = {res['macs'] / 1e9:.2f} G MAC, "
                  f"{threads} threads, load {os.getloadavg()[0]:.1f}")
            print(f"{'case':36s} {'path':24s} {'G MAC/s':>8s} {'x BLAS':>7s} {'target':>16s} "
                  f"{'met':>4s} {'G/cpu-s':>8s} {'x BLAS cpu':>10s}"
                  + (f" {'x ref':>6s}" if a.reference else ""))
            for r in res["rows"]:
                ok = "-" if r["ok"] is None else ("yes" if r["ok"] else "NO")
                line = (f"{r['case']:36s} {r['path']:24s} {r['mac_per_s'] / 1e9:8.2f} "
                        f"{r['x_blas']:7.3f} {r['target']:>16s} {ok:>4s} "
                        f"{r['mac_per_cpu_s'] / 1e9:8.2f} {r['x_blas_cpu']:10.3f}")
                if a.reference and "speedup_vs_reference" in r:
                    line += f" {r['speedup_vs_reference']:6.1f}"
                print(line)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
