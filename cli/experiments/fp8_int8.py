"""Experiment ``fp8-vs-int8``: FP8 vs INT8 MAC cost for each accumulator architecture, next to
the accuracy each format reaches on a workload (van Baalen et al. 2023, "FP8 versus INT8 for
efficient deep learning inference").

Cost: per-MAC area (GE), energy (pJ, Horowitz-45nm anchored) and LUTs (xc7, iCE40) of the
lowbit.hw registry units priced by ``lowbit.cost_models.unit_cost.mac_cost`` for three
accumulator architectures of the FP8 MAC -- an exact fixed-point (Kulisch) accumulator
(``kulisch_mac``), an FP16 and an FP32 accumulator (``fp_mac``) -- against the INT8 MAC with its
exact integer accumulator (``int_mac``, overflow-free for K = 1024). Accuracy: the workload with
INT8 and FP8 operands (per-channel FP32 scales for both, ``_pc``) under the matching
accumulator models (exact / fp16 / fp32; int8 always accumulates exactly in its integer
register).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lowbit.cost_models.energy import mac_energy
from lowbit.cost_models.unit_cost import mac_cost
from lowbit.sim.sweep.plots import save
from lowbit.sim.workloads import get_workload

from .common import cell, diff_cell, plt, run_points, write_markdown, write_table

ARCHS = (("Kulisch (exact fixed-point)", "exact"), ("FP16 accumulator", "fp16"),
         ("FP32 accumulator", "fp32"))
FP8 = ("fp8_e4m3", "fp8_e5m2")
CLAIM = ("van Baalen et al. (arXiv 2303.17951): in dedicated hardware the FP8 formats are "
         "50-180% less efficient than INT8 (cost ratio 1.5-2.8x), the accumulator being part "
         "of the MAC; INT8 is as accurate or better for most networks after PTQ, FP8-E4M3 "
         "helps networks with strong outliers (transformers).")


def _costs(f: str, acc: str) -> dict:
    return {"ge": mac_cost(f, f, acc, target="gates")["cost"], "pj": mac_energy(f, f, acc)["pj"],
            "lx": mac_cost(f, f, acc, target="xc7")["cost"],
            "li": mac_cost(f, f, acc, target="ice40")["cost"]}


def cost_rows() -> list[dict]:
    i8 = _costs("int8", "exact")
    rows = [{"arch": "INT8, integer accumulator", "fmt": "int8", **i8, "r_ge": 1.0, "r_pj": 1.0,
             "r_lx": 1.0, "r_li": 1.0}]
    for name, acc in ARCHS:
        for f in FP8:
            c = _costs(f, acc)
            rows.append({"arch": name, "fmt": f, **c,
                         **{f"r_{k}": c[k] / i8[k] for k in ("ge", "pj", "lx", "li")}})
    return rows


def run(out: Path, workload: str = "tinylm", workers=None) -> dict:
    out = Path(out)
    crow = cost_rows()
    head = ["FP8 MAC accumulator", "format", "area (GE)", "energy (pJ)", "LUT xc7", "LUT iCE40",
            "area / INT8", "energy / INT8", "LUT xc7 / INT8", "energy ratio in 1.5-2.8x?"]
    body = [[r["arch"], r["fmt"], f"{r['ge']:.0f}", f"{r['pj']:.3f}", f"{r['lx']:.0f}",
             f"{r['li']:.0f}", f"{r['r_ge']:.2f}", f"{r['r_pj']:.2f}", f"{r['r_lx']:.2f}",
             "" if r["fmt"] == "int8" else ("yes" if 1.5 <= r["r_pj"] <= 2.8 else
                                            "below" if r["r_pj"] < 1.5 else "above")]
            for r in crow]
    t_cost = write_table(out, "cost", head, body, "llrrrrrrrl")
    fmts = ["int8_pc", "fp8_e4m3_pc", "fp8_e5m2_pc"]
    accs = [a[1] for a in ARCHS]
    r = run_points(workload, fmts, accs, ["rtn"], out, workers)
    pts = r["points"]
    task = get_workload(workload).metric_name
    arows = []
    for acc in accs:
        i8 = pts[("int8_pc", "exact", "rtn")]["metrics"][task]
        for f in fmts[1:]:
            m = pts[(f, acc, "rtn")]["metrics"][task]
            d, _ = diff_cell(m, i8)
            arows.append([acc, f, cell(m), cell(i8), d])
    t_acc = write_table(out, "accuracy", ["accumulator", "FP8 format", f"FP8 {task}",
                                          f"INT8 (exact int acc) {task}", "FP8 − INT8"], arows,
                        "llrrr")
    png = _plot(out, crow)
    md = write_markdown(out, f"FP8 vs INT8: MAC cost per accumulator architecture ({workload})", [
        f"Command: `lowbit experiment fp8-vs-int8 --workload {workload}`. Per-MAC costs from "
        "`lowbit.cost_models` (Yosys-calibrated models of the lowbit.hw units, Horowitz "
        "energies); the INT8 MAC accumulates in an exact integer register for K = 1024.",
        t_cost, f"Accuracy on {workload} (95% bootstrap intervals; `*` = significant paired "
        "difference):", t_acc, "**Paper's claim.** " + CLAIM,
        "**Here.** The FP8/INT8 ratio depends on the accumulator: " + "; ".join(
            f"{r['arch']} {r['fmt']}: energy {r['r_pj']:.2f}x, area {r['r_ge']:.2f}x"
            for r in crow[1:]) + ".", f"![cost ratios]({png.name})"])
    return {"table": md, "png": png, "cost": crow, "accuracy": arows}


def _plot(out, crow) -> Path:
    pyplot = plt()
    rows = crow[1:]
    labels = [f"{r['fmt'].replace('fp8_', '')}\n{r['arch'].split(' (')[0]}" for r in rows]
    x = np.arange(len(rows))
    fig, ax = pyplot.subplots(figsize=(9, 4.2))
    for k, (key, lab) in enumerate((("r_ge", "area"), ("r_pj", "energy"), ("r_lx", "LUT xc7"))):
        ax.bar(x + (k - 1) * 0.25, [r[key] for r in rows], 0.25, label=lab)
    ax.axhspan(1.5, 2.8, color="grey", alpha=0.15, label="paper: 1.5-2.8x")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("FP8 MAC cost / INT8 MAC cost")
    ax.set_title("FP8 vs INT8 MAC cost per accumulator architecture")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save(fig, out / "plot.png")
