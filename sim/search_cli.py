"""``lowbit search``: mixed-precision search (registered by ``lowbit.main``).

    lowbit search --workload digits-cnn --candidates fp8_e4m3,mxfp6_e2m3,mxfp4,nvfp4,int8,int4 \
                  --budget energy=0.5 [--metric direct|hessian|proxy] [--out DIR]

Writes assignment.csv, sensitivity.csv, costs.csv, front.csv, front.json, front.png and
summary.md into --out. Bad arguments / infeasible budgets raise ValueError (exit code 2).
"""

from __future__ import annotations

import argparse
import sys

from lowbit.sim.quantizers.compose import QUANTIZER_HELP, parse_quantizer
from lowbit.sim.search import search, write_outputs
from lowbit.sim.workloads import resolve_workload

_BUDGET_HELP = (
    "cost budget METRIC=VALUE (repeatable or comma separated). Metrics: energy (pJ per "
    "inference: compute + SRAM + DRAM), latency (cycles of the array model), memory (weight "
    "bits incl. scales), bops (MACs x w_bits x a_bits), area (shared MAC array supporting "
    "every format used). A bare VALUE is a FRACTION of the cost of the most expensive "
    "uniform candidate (energy=0.5 = half the energy of the costliest all-one-format "
    "network); with a unit suffix it is absolute: energy=3uJ|800nJ|5e5pJ, memory=16KiB|"
    "20kB|1e5bits, latency=4000cycles, area=0.2mm2|1e5um2, bops=2e8bops. Default energy=0.5")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "search",
        help="mixed-precision search: per-layer sensitivity x cost model -> ILP, Pareto front",
        description="Choose one candidate format per layer minimising the summed per-layer "
        "sensitivity under cost budgets (ILP in PuLP), then measure the chosen mix, every "
        "uniform candidate and a greedy baseline on the emulated workload.",
    )
    p.add_argument("--workload", default="digits-cnn",
                   help="workload: a registered name (digits-cnn, minilm, an installed "
                   "lowbit.workloads entry point), path/to/file.py:function returning a Workload "
                   "(e.g. a TorchWorkload), or model.onnx with --data")
    p.add_argument("--data", default=None, metavar="DATA.npz",
                   help="data of an ONNX --workload: .npz with keys calib, eval_x, optional eval_y")
    p.add_argument("--candidates", default="fp8_e4m3,mxfp6_e2m3,mxfp4,nvfp4,int8,int4",
                   help="comma-separated candidate formats (lowbit.formats names, or WFMT/AFMT); "
                   "int8 -> int8_pc and int4 -> int4_pc (symmetric INT, FP32 scale per output "
                   "channel / per token). Default: %(default)s")
    p.add_argument("--budget", action="append", default=None, metavar="METRIC=VALUE",
                   help=_BUDGET_HELP)
    p.add_argument("--metric", default="direct", choices=("direct", "hessian", "proxy"),
                   help="sensitivity estimator: direct (output error with only that layer "
                   "quantised, emulated), hessian (Hutchinson trace x ||W-Q(W)||^2, HAWQ style), "
                   "proxy (weight + activation quantisation NSR). Default: direct")
    p.add_argument("--direct-target", default="output", choices=("output", "metric"),
                   help="direct sensitivity measures the model-output NSR on calibration "
                   "data (output, default) or the eval-metric drop (metric, slower)")
    p.add_argument("--tie", action="append", default=None, metavar="L1=L2[=L3]",
                   help="layers that must share a format (repeatable)")
    p.add_argument("--minimize", default="sensitivity",
                   help="objective: sensitivity (default) or a cost metric (then give "
                   "--max-sensitivity)")
    p.add_argument("--max-sensitivity", type=float, default=None,
                   help="upper bound on the summed sensitivity when --minimize is a cost metric")
    p.add_argument("--area-mode", default="sum", choices=("sum", "max"),
                   help="shared-array area of the formats in use: sum of per-format arrays "
                   "(default) or the largest one")
    p.add_argument("--array", default="16x16", metavar="RxC", help="MAC array size (default 16x16)")
    p.add_argument("--solver", default="auto", choices=("auto", "highs", "cbc", "coin"),
                   help="MILP solver (auto: HiGHS, else PuLP's bundled CBC, else cbc on PATH)")
    p.add_argument("--front-points", type=int, default=10,
                   help="budget points of the Pareto sweep (default 10; 0 = no front)")
    p.add_argument("--no-measure", action="store_true",
                   help="skip measuring the assignments on the workload")
    p.add_argument("--accum", default="exact", help="accumulator of every layer (default exact)")
    p.add_argument("--quantizer", default="rtn", type=_quantizer,
                   help="weight quantizer used when measuring: " + QUANTIZER_HELP.split(": ", 1)[1]
                   + " (default rtn)")
    p.add_argument("--out", default="results/search", help="output folder (default results/search)")
    p.add_argument("--quiet", action="store_true", help="print only the summary paths")
    p.set_defaults(func=run_search_command)


def _quantizer(text: str) -> str:
    """argparse type: a quantiser spec (lowbit.sim.quantizers.compose) -> its canonical name."""
    try:
        return parse_quantizer(text).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--quantizer: ")) from None


def _parse_array(s: str) -> tuple[int, int]:
    try:
        r, c = (int(v) for v in s.lower().split("x"))
        if r < 1 or c < 1:
            raise ValueError
        return r, c
    except ValueError:
        raise ValueError(f"--array: expected RxC with positive integers, got {s!r}") from None


def _parse_ties(items) -> list:
    out = []
    for t in items or ():
        names = [n.strip() for n in t.replace(",", "=").split("=") if n.strip()]
        if len(names) < 2:
            raise ValueError(f"--tie: expected L1=L2[=L3...], got {t!r}")
        out.append(names)
    return out


def run_search_command(args) -> int:
    rows, cols = _parse_array(args.array)
    if args.front_points < 0:
        raise ValueError("--front-points: must be >= 0")
    say = (lambda *_: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
    budgets = args.budget or ["energy=0.5"]
    sens_kw = {"target": args.direct_target} if args.metric == "direct" else {}
    res = search(resolve_workload(args.workload, args.data), args.candidates, budgets, metric=args.metric,
                 ties=_parse_ties(args.tie), solver=args.solver, minimize=args.minimize,
                 max_sensitivity=args.max_sensitivity, front=args.front_points > 0,
                 n_front=max(args.front_points, 2), measure=not args.no_measure,
                 accum=args.accum, quantizer=args.quantizer,
                 cost_kw={"rows": rows, "cols": cols, "area_mode": args.area_mode},
                 sens_kw=sens_kw, progress=say)
    files = write_outputs(res, args.out)
    if not args.quiet:
        a = res.assignment
        print("assignment: " + ", ".join(f"{k}={v}" for k, v in a.formats.items()))
        at = next((r for r in res.points if r["kind"] == "ilp@budget"), None)
        if at is not None and at.get("measured") is not None:
            print(f"measured {res.metric_name}: {at['measured']:.4f} at {res.front_metric} = "
                  f"{at['cost_fraction']:.3f} of the most expensive uniform candidate")
    for k, pth in files.items():
        print(f"{k}: {pth}")
    return 0
