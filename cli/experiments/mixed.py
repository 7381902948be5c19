"""Experiment ``mixed-precision``: HAWQ-V3 / FLIQS-style per-layer mixed precision over INT and
FP candidates (Yao et al. 2021, HAWQ-V3: ILP under a BOPs / size budget with Hessian-based
sensitivity; Dotzel et al. 2023, FLIQS: one search over integer and floating-point formats).

For each candidate family -- INT only, FP only, INT + FP -- the ILP of ``lowbit.sim.search``
(per-layer sensitivity x per-layer cost, PuLP/HiGHS) is solved at several BOPs budgets (bit
operations, MACs x weight bits x activation bits, HAWQ-V3's budget), and every assignment is
measured on the emulated workload with its 95% bootstrap interval. Sensitivity: HAWQ-style
``hessian`` when the workload has analytic gradients (digits-cnn: Hutchinson trace of each
layer's Hessian x ||W - Q(W)||^2 + activation term), else ``direct`` (output noise-to-signal
ratio with only that layer quantised, on calibration data).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lowbit.sim.search import SensitivityTable, compute_sensitivity, parse_candidates, search
from lowbit.sim.sweep.plots import save
from lowbit.sim.sweep.report import with_ci
from lowbit.sim.workloads import get_workload

from .common import plt, write_markdown, write_table

FAMILIES = {"INT": "int8_pc,int6_pc,int4_pc",
            "FP": "fp8_e4m3_pc,fp6_e3m2_pc,fp4_e2m1_pc",
            "INT+FP": "int8_pc,int6_pc,int4_pc,fp8_e4m3_pc,fp6_e3m2_pc,fp4_e2m1_pc"}
BUDGETS = (0.30, 0.40, 0.55, 0.75)
CLAIM = ("HAWQ-V3 (arXiv 2011.10680): an ILP over per-layer bit widths under a BOPs / size "
         "budget with Hessian-trace sensitivity; INT4/8 mixed ResNet-50 keeps 76.73% top-1 "
         "(INT8 77.58%). FLIQS (arXiv 2308.03290): searching INT and FP formats jointly beats "
         "searches restricted to one family at equal cost (ResNet-18 +1.31, ResNet-50 +0.90 "
         "points).")


def run(out: Path, workload: str = "tinylm", budgets=BUDGETS, accum: str = "exact") -> dict:
    out = Path(out)
    wl = get_workload(workload)
    metric = "hessian" if hasattr(wl, "loss_and_grads") else "direct"
    task = wl.metric_name
    hib = getattr(wl, "higher_is_better", True)
    rows, series = [], {}
    # sensitivities once for all candidates, sliced per family
    allc = parse_candidates(FAMILIES["INT+FP"])
    full = compute_sensitivity(wl, allc, metric)
    for fam, cands in FAMILIES.items():
        names = cands.split(",")
        idx = [full.candidates.index(n) for n in names]
        sens = SensitivityTable(full.values[:, idx], full.layers, names, full.metric,
                                full.details)
        # every family's most expensive uniform candidate is an 8-bit x 8-bit network, so
        # BOPs fractions are comparable across families
        res = search(wl, cands, "bops=1.0", metric=metric, front=False, measure=False,
                     accum=accum, sensitivity=sens)
        ref_bops = res.costs.max_uniform("bops")
        pts = []
        for b in budgets:
            try:
                r = search(wl, cands, f"bops={b}", metric=metric, front=False, measure=True,
                           accum=accum, sensitivity=sens)
            except ValueError:
                continue
            at = next(x for x in r.points if x["kind"] == "ilp@budget")
            pts.append((b, at))
            rows.append([fam, f"{b:.2f}", f"{at['bops'] / ref_bops:.3f}",
                         with_ci(at["measured"], at.get("metric_lo"), at.get("metric_hi")),
                         at["assignment"]])
        series[fam] = pts
    head = ["candidates", "BOPs budget (x uniform int8)", "BOPs used", f"{task} [95% CI]",
            "assignment (layer:format)"]
    table = write_table(out, "table", head, rows, "lrrrl")
    png = _plot(out, series, task, workload, hib)
    md = write_markdown(out, f"Mixed precision over INT and FP candidates ({workload})", [
        f"Command: `lowbit experiment mixed-precision --workload {workload}`. Sensitivity "
        f"`{metric}`, ILP objective = summed sensitivity, budget = BOPs as a fraction of the "
        f"uniform int8_pc / fp8_e4m3_pc network; accumulator `{accum}`, RTN weights. "
        "Candidates per family: " + "; ".join(f"{k}: {v}" for k, v in FAMILIES.items()) + ".",
        table, "**Paper's claim.** " + CLAIM,
        "**Here.** " + _verdict(series, task, hib), f"![{task} vs BOPs]({png.name})"])
    return {"table": md, "png": png, "rows": rows}


def _verdict(series, task, hib) -> str:
    """Per budget: the best family by point estimate, and whether the 95% intervals of the
    three families overlap (then no family is distinguishable at that budget)."""
    parts = []
    for b_idx, b in enumerate(BUDGETS):
        vals = {fam: pts[b_idx][1] for fam, pts in series.items() if b_idx < len(pts)}
        if len(vals) < 2:
            continue
        best = (max if hib else min)(vals, key=lambda f: vals[f]["measured"])
        los = [v.get("metric_lo", v["measured"]) for v in vals.values()]
        his = [v.get("metric_hi", v["measured"]) for v in vals.values()]
        overlap = max(los) <= min(his)
        parts.append(f"at {b:.2f}x BOPs " + (
            f"all families are within each other's 95% intervals ({task} "
            f"{min(v['measured'] for v in vals.values()):.4g}-"
            f"{max(v['measured'] for v in vals.values()):.4g})" if overlap else
            f"{best} is best ({task} {vals[best]['measured']:.4g}) and the intervals separate"))
    return "; ".join(parts) + "."


def _plot(out, series, task, workload, hib) -> Path:
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(7, 4.5))
    for k, ((fam, pts), mk) in enumerate(zip(series.items(), "osD")):
        if not pts:
            continue
        x = [b + 0.008 * (k - 1) for b, _ in pts]  # dodge so that equal results stay visible
        y = np.array([p["measured"] for _, p in pts])
        lo = np.array([p.get("metric_lo", p["measured"]) for _, p in pts])
        hi = np.array([p.get("metric_hi", p["measured"]) for _, p in pts])
        ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt=mk + "-", capsize=3, label=fam)
    ax.set_xlabel("BOPs budget (fraction of the uniform 8-bit network; families dodged)")
    ax.set_ylabel(f"{task} ({'higher' if hib else 'lower'} is better; 95% CI)")
    if not hib:
        ax.set_yscale("log")
    ax.set_title(f"{workload}: ILP mixed precision, INT vs FP vs INT+FP candidates")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return save(fig, out / "plot.png")
