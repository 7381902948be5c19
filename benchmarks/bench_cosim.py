"""Co-simulation throughput: FP8 MAC under PyRTL FastSimulation vs CompiledSimulation, and the
wall time of the exhaustive FP8 x FP8 sweeps (65 536 vectors, incl. reference + compare).

    python benchmarks/bench_cosim.py [--n 65536] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pyrtl

from lowbit.hw.cosim import cosim
from lowbit.hw.units import UNITS, build_unit, unit_params


def sim_throughput(unit: str, sim: str, n: int, **kw) -> dict:
    rng = np.random.default_rng(0)
    u = UNITS[unit]
    kw = unit_params(unit, **kw)
    vecs = u.vectors(n, rng, False, **kw)
    t0 = time.perf_counter()
    build_unit(unit, **kw)
    outs = list(pyrtl.working_block().wirevector_subset(pyrtl.Output))
    t1 = time.perf_counter()
    cls = pyrtl.FastSimulation if sim == "fast" else pyrtl.CompiledSimulation
    s = cls(tracer=pyrtl.SimulationTrace(wires_to_track=outs))
    t2 = time.perf_counter()
    s.step_multiple({k: [int(x) for x in v] for k, v in vecs.items()})
    t3 = time.perf_counter()
    nv = len(next(iter(vecs.values())))
    return {"unit": unit, "sim": sim, "vectors": nv, "build_s": round(t1 - t0, 3),
            "sim_setup_s": round(t2 - t1, 3), "run_s": round(t3 - t2, 3),
            "vectors_per_s": round(nv / (t3 - t2)), "vectors_per_s_incl_setup": round(nv / (t3 - t1))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=65536)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    rows = []
    for unit, kw in [("fp_fma", dict(a="fp8_e4m3", b="fp8_e4m3", acc="fp32")),
                     ("fp_mac", dict(a="fp8_e4m3", b="fp8_e4m3", acc="fp32"))]:
        for sim in ("fast", "compiled"):
            r = sim_throughput(unit, sim, a.n, **kw)
            rows.append(r)
            print(f"{unit:8s} {sim:8s} {r['vectors']:7d} vectors: run {r['run_s']:7.2f} s "
                  f"({r['vectors_per_s']:>9,d} vec/s), sim setup {r['sim_setup_s']:.2f} s, "
                  f"build {r['build_s']:.2f} s", flush=True)
    sweeps = []
    for unit, kw in [("fp_mul", dict(a="fp8_e4m3", b="fp8_e4m3")),
                     ("fp_mul", dict(a="fp8_e5m2", b="fp8_e5m2")),
                     ("fp_fma", dict(a="fp8_e4m3", b="fp8_e4m3", acc="fp32")),
                     ("fp_fma", dict(a="fp8_e5m2", b="fp8_e5m2", acc="fp16"))]:
        for sim in ("fast", "compiled"):
            res = cosim(unit, exhaustive=True, sim=sim, **kw)
            sweeps.append({"unit": unit, **kw, "sim": sim, "vectors": res.vectors,
                           "mismatches": res.mismatches, "seconds": round(res.seconds, 2)})
            print(f"exhaustive {res}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"throughput": rows, "exhaustive": sweeps}, f, indent=1)


if __name__ == "__main__":
    main()
