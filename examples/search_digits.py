"""Mixed-precision search on digits-cnn: sensitivity x cost model -> ILP -> measured front.

    .venv/bin/python examples/search_digits.py [OUT_DIR]

Runs the three sensitivity estimators on the same candidates, solves the ILP at an energy
budget of 0.8 x the most expensive uniform candidate, and writes the full report (assignment,
front CSV/JSON/PNG, summary.md) for the direct estimator into OUT_DIR (default
results/search_digits). Candidates include unscaled FP6/FP4 element formats so that the choice
matters on this easy task (the scaled 4-bit formats already reach float accuracy here).
"""

from __future__ import annotations

import sys

from lowbit.sim.search import search, write_outputs
from lowbit.sim.workloads import get_workload

CANDIDATES = "int8,fp8_e4m3,fp6_e3m2,fp6_e2m3,fp4_e2m1"


def main(out: str = "results/search_digits") -> None:
    wl = get_workload("digits-cnn")
    for metric in ("proxy", "hessian", "direct"):
        res = search(wl, CANDIDATES, "energy=0.8", metric=metric, front=metric == "direct",
                     n_front=8)
        at = next(r for r in res.points if r["kind"] == "ilp@budget")
        print(f"{metric:8s} {at['assignment']}  energy={at['cost_fraction']:.3f}  "
              f"top1={at['measured']:.4f}")
        if metric == "direct":
            files = write_outputs(res, out)
            print("front:", files["front_png"], "summary:", files["summary"])
            for r in sorted(res.points, key=lambda r: (r["kind"], r["cost_fraction"])):
                print(f"  {r['kind']:13s} {r['cost_fraction']:.3f} {r['measured']:.4f} "
                      f"{r['assignment']}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
