"""Experiment ``minifloat-vs-int``: minifloats vs integers at 3-8 bits with FPGA LUT cost
(Aggarwal et al. 2023/24, "Post-Training Quantization with Low-precision Minifloats and
Integers on FPGAs").

Every format is scaled the same way (FP32 scale per output channel for the weights, per token
for the activations: ``<element>_pc``), W and A in the same format, RTN, exact accumulation.
Minifloats: all ExMy with M >= 1 at each width (finite-only, subnormals, as OCP FP6 / FP4; the
8-bit E4M3 is OCP's). Cost: LUTs per MAC of the lowbit.hw unit for the pair and the experiment's
accumulator (``lowbit.cost_models.unit_cost.mac_cost``, AMD 7-series ``xc7`` LUT6 and Lattice
``ice40`` LUT4 targets; ``exact``: Kulisch MAC for minifloats, exact integer MAC for ints).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lowbit.cost_models.unit_cost import mac_cost
from lowbit.formats import resolve
from lowbit.sim.sweep.plots import save, spread_labels, symlog_axis
from lowbit.sim.tables import pareto_mask
from lowbit.sim.workloads import get_workload

from .common import cell, diff_cell, float_baseline, plt, run_points, write_markdown, write_table

ELEMENTS = {3: ("int3", "fp3_e1m1"), 4: ("int4", "fp4_e1m2", "fp4_e2m1"),
            5: ("int5", "fp5_e1m3", "fp5_e2m2", "fp5_e3m1"),
            6: ("int6", "fp6_e1m4", "fp6_e2m3", "fp6_e3m2", "fp6_e4m1"),
            7: ("int7", "fp7_e2m4", "fp7_e3m3", "fp7_e4m2"),
            8: ("int8", "fp8_e3m4", "fp8_e4m3", "fp8_e5m2")}
CLAIM = ("Aggarwal et al. (arXiv 2311.12359): across 3-8-bit weights and activations, "
         "minifloats approach full-precision accuracy and compete with integers across the "
         "accuracy-precision trade-off, but against an FPGA cost model integer quantization "
         "often remains the Pareto-optimal option given its smaller resource footprint. (A "
         "minifloat with a 1-bit exponent has an integer-like uniform grid.)")


def formats() -> list[str]:
    return [f"{e}_pc" for b in sorted(ELEMENTS) for e in ELEMENTS[b]]


def _grid_note(el) -> str:
    f = resolve(el)
    if f.kind == "int":
        return "INT"
    return "uniform (INT-like)" if f.ebits == 1 else f"E{f.ebits}M{f.mbits}"


def run(out: Path, workload: str = "tinylm", accum: str = "exact", workers=None) -> dict:
    out = Path(out)
    fmts = formats()
    r = run_points(workload, fmts, [accum], ["rtn"], out, workers)
    pts = r["points"]
    task = get_workload(workload).metric_name
    ref = get_workload(workload).reference()["fidelity"][task]
    recs = []
    for f in fmts:
        m = pts[(f, accum, "rtn")]["metrics"][task]
        el = f[:-3]
        lut_x = mac_cost(f, f, accum, target="xc7")["cost"]
        lut_i = mac_cost(f, f, accum, target="ice40")["cost"]
        recs.append({"fmt": f, "el": el, "bits": resolve(el).bits, "m": m, "lut_x": lut_x,
                     "lut_i": lut_i, "grid": _grid_note(el)})
    hib = ref.higher_is_better
    par = pareto_mask([x["lut_x"] for x in recs], [x["m"].value for x in recs], hib)
    rows = []
    for x, p in zip(recs, par):
        d, _ = diff_cell(x["m"], ref)
        rows.append([x["bits"], x["fmt"], x["grid"], cell(x["m"]), d, f"{x['lut_x']:.1f}",
                     f"{x['lut_i']:.1f}", "yes" if p else ""])
    head = ["bits", "format", "grid", f"{task} [95% CI]", "Δ vs float [95% CI]",
            "LUT/MAC (xc7)", "LUT/MAC (iCE40)", "Pareto (xc7)"]
    table = write_table(out, "table", head, rows, "rlllrrrl")
    summary = _summary(recs, par, task, hib)
    png = _plot(out, recs, par, task, workload, ref)
    md = write_markdown(out, f"Minifloats vs integers, 3-8 bits, with FPGA LUT cost ({workload})", [
        f"Command: `lowbit experiment minifloat-vs-int --workload {workload}`. W = A format, FP32 "
        f"scale per channel / token (`_pc`), RTN, accumulator `{accum}`. Float model: {task} = "
        f"{ref.value:.4f}. `*` = differs from float (paired bootstrap, 95%).",
        table, "**Paper's claim.** " + CLAIM, "**Here.**\n\n" + "\n".join(f"- {s}" for s in summary),
        f"![{task} vs LUTs]({png.name})"])
    return {"table": md, "png": png, "rows": rows}


def _summary(recs, par, task, hib) -> list[str]:
    out = []
    for b in sorted({x["bits"] for x in recs}):
        grp = [x for x in recs if x["bits"] == b]
        best = (max if hib else min)(grp, key=lambda x: x["m"].value)
        ints = [x for x in grp if x["grid"] == "INT"]
        line = f"{b} bits: best {best['fmt']} ({task} {best['m'].value:.4g})"
        if ints and best is not ints[0]:
            d = best["m"].compare(ints[0]["m"])
            line += (f", vs {ints[0]['fmt']} {d['diff']:+.4g} [{d['lo']:+.4g}, {d['hi']:+.4g}]"
                     + (" (significant)" if d["significant"] else " (not significant)"))
        out.append(line)
    for x in recs:  # E1 minifloats: the INT grid, so any cost difference is the datapath's
        twin = next((y for y in recs if y["grid"] == "INT" and y["bits"] == x["bits"]), None)
        if x["grid"].startswith("uniform") and twin is not None:
            same = np.isclose(x["m"].value, twin["m"].value)
            out.append(f"{x['fmt']} has {twin['fmt']}'s grid ({task} "
                       f"{'identical' if same else 'different'}: {x['m'].value:.4g} vs "
                       f"{twin['m'].value:.4g}) but the cost model prices it at "
                       f"{x['lut_x']:.1f} vs {twin['lut_x']:.1f} xc7 LUTs: a sign-magnitude "
                       "minifloat MAC with a LUT-packed product vs a two's-complement INT MAC.")
    front = [x["fmt"] for x, p in zip(recs, par) if p]
    n_int = sum(1 for x, p in zip(recs, par) if p and x["grid"] == "INT")
    out.append(f"Pareto front (xc7 LUTs vs {task}, point estimates): {', '.join(front)} -- "
               f"{n_int} of {len(front)} are integers.")
    return out


def _plot(out, recs, par, task, workload, ref) -> Path:
    """Degradation vs float (paired difference, oriented so that up = worse) against xc7 LUTs
    per MAC, with the paired 95% intervals; symmetric-log y so that 8-bit and 3-bit formats
    both stay readable."""
    from matplotlib.ticker import FuncFormatter

    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(9, 5.4))
    sign = -1.0 if ref.higher_is_better else 1.0

    def deg(m):
        d = m.compare(ref)
        lo, hi = sorted((sign * d["lo"], sign * d["hi"]))
        return sign * d["diff"], lo, hi

    for x in recs:
        x["deg"] = deg(x["m"])
    for kind, mk, col in (("INT", "s", "C0"), ("FP", "o", "C1")):
        sel = [x for x in recs if (x["grid"] == "INT") == (kind == "INT")]
        v = np.array([x["deg"][0] for x in sel])
        lo = np.array([x["deg"][1] for x in sel])
        hi = np.array([x["deg"][2] for x in sel])
        ax.errorbar([x["lut_x"] for x in sel], v, yerr=[v - lo, hi - v], fmt=mk, color=col,
                    capsize=2, label="integer" if kind == "INT" else "minifloat")
    symlog_axis(ax, [x["deg"][0] for x in recs], [x["deg"][1] for x in recs],
                [x["deg"][2] for x in recs])
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    luts = [x["lut_x"] for x in recs]
    ax.set_xticks([t for t in (20, 30, 40, 60, 100, 150, 200, 300, 400, 600, 1000)
                   if min(luts) * 0.9 <= t <= max(luts) * 1.1])
    fig.canvas.draw()
    spread_labels([x["lut_x"] for x in recs], [x["deg"][0] for x in recs],
                  [x["el"] for x in recs], ax, fontsize=6)
    fr = sorted([(x["lut_x"], x["deg"][0]) for x, p in zip(recs, par) if p])
    ax.plot([a for a, _ in fr], [b for _, b in fr], "k--", lw=0.8, label="Pareto front")
    what = float_baseline(ax, task, ref)
    ax.set_xlabel("LUTs per MAC (AMD 7-series, calibrated model; log scale)")
    ax.set_ylabel(f"{what} (paired 95% interval; up = worse; symlog)")
    ax.set_title(f"{workload}: minifloats vs integers, 3-8 bits, per-channel FP32 scales")
    ax.grid(alpha=0.3, which="major")
    ax.legend(fontsize=8, loc="upper right")
    return save(fig, out / "plot.png")
