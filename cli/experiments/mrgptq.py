"""Experiment ``mr-gptq``: MXFP4 vs NVFP4 under RTN, GPTQ and block-Hadamard + GPTQ, with and
without the format-specific scale search (Egiazarian et al. 2025, "Bridging the Gap Between
Promise and Performance for Microscaling FP4 Quantization", MR-GPTQ).

W4A4: weights and activations in the format, exact accumulation (so only the formats and the
quantisers differ), on the tinylm workload by default. Quantisers: rtn, gptq, mrgptq (GPTQ +
scale search), hadamard+rtn, hadamard+gptq, hadamard+mrgptq; the Hadamard block equals the
format's group (32 for MXFP4, 16 for NVFP4).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lowbit.sim.sweep.plots import save
from lowbit.sim.workloads import get_workload

from .common import cell, diff_cell, plt, run_points, write_markdown, write_table

FORMATS = ("mxfp4", "nvfp4")
QUANTIZERS = ("rtn", "gptq", "mrgptq", "hadamard+rtn", "hadamard+gptq", "hadamard+mrgptq")
CLAIM = ("MR-GPTQ (arXiv 2509.23202): MXFP4's power-of-two scales cost accuracy; block-wise "
         "Hadamard rotations matched to the group size plus GPTQ with format-specific scale "
         "handling bring MXFP4 close to NVFP4, while NVFP4's small 16-element groups make "
         "rotations (outlier spreading) of little or negative use.")


def run(out: Path, workload: str = "tinylm", accum: str = "exact", workers=None) -> dict:
    out = Path(out)
    r = run_points(workload, FORMATS, [accum], QUANTIZERS, out, workers)
    pts = r["points"]
    wl_res = r["sweep"]
    task = get_workload(workload).metric_name
    rows, data = [], {}
    for q in QUANTIZERS:
        mx = pts[("mxfp4", accum, q)]["metrics"]
        nv = pts[("nvfp4", accum, q)]["metrics"]
        gap, gd = diff_cell(mx.get(task), nv.get(task))
        mx_rtn = pts[("mxfp4", accum, "rtn")]["metrics"].get(task)
        nv_rtn = pts[("nvfp4", accum, "rtn")]["metrics"].get(task)
        dmx, _ = diff_cell(mx.get(task), mx_rtn) if q != "rtn" else ("", {})
        dnv, _ = diff_cell(nv.get(task), nv_rtn) if q != "rtn" else ("", {})
        rows.append([q, cell(mx.get(task)), cell(nv.get(task)), gap, dmx, dnv,
                     cell(mx.get("kl")), cell(nv.get("kl"))])
        data[q] = {"mx": mx.get(task), "nv": nv.get(task), "gap": gd}
    head = ["quantizer", f"MXFP4 {task}", f"NVFP4 {task}", "MXFP4 − NVFP4",
            "MXFP4 vs its RTN", "NVFP4 vs its RTN", "MXFP4 KL", "NVFP4 KL"]
    table = write_table(out, "table", head, rows, "lrrrrrrr")
    verdicts = _verdicts(pts, accum, task) + _verdicts(pts, accum, "kl")
    png = _plot(out, data, task, workload)
    md = write_markdown(out, f"MXFP4 vs NVFP4 under RTN / GPTQ / Hadamard+GPTQ ({workload})", [
        f"Command: `lowbit experiment mr-gptq --workload {workload}`. W4A4 (weights and "
        f"activations in the format), accumulator `{accum}`, {task} with 95% bootstrap "
        "intervals; differences are paired bootstrap intervals over the same evaluation "
        "samples, `*` = significant (interval excludes 0).",
        table, "**Paper's claim.** " + CLAIM, "**Here.**\n\n" + "\n".join(f"- {v}" for v in verdicts),
        f"![{task} per quantizer]({png.name})",
        f"Full sweep report: `{wl_res['paths']['md'].relative_to(out)}`."])
    return {"table": md, "png": png, "rows": rows, "verdicts": verdicts}


def _verdicts(pts, accum, metric) -> list[str]:
    """What the measurements say about the paper's three claims, on ``metric``."""
    def m(fmt, q):
        return pts[(fmt, accum, q)]["metrics"].get(metric)

    a = m("mxfp4", "rtn")
    if a is None:
        return []
    lower = not a.higher_is_better
    out = []

    def cmp(x, y):
        d = x.compare(y)
        return d, f"{d['diff']:+.4g} [{d['lo']:+.4g}, {d['hi']:+.4g}]" + \
            ("" if d["significant"] else ", not significant")

    g0, t0 = cmp(m("mxfp4", "rtn"), m("nvfp4", "rtn"))
    g1, t1 = cmp(m("mxfp4", "hadamard+mrgptq"), m("nvfp4", "hadamard+mrgptq"))
    closed = (1 - g1["diff"] / g0["diff"]) if g0["diff"] else float("nan")
    out.append(f"{metric}: MXFP4 − NVFP4 = {t0} with RTN and {t1} with hadamard+mrgptq"
               + (f" ({100 * closed:.0f}% of the RTN gap closed)"
                  if g0["significant"] and closed == closed else ""))
    for q in ("hadamard+rtn", "hadamard+gptq"):
        base = q.split("+")[1]
        d, t = cmp(m("nvfp4", q), m("nvfp4", base))
        out.append(f"{metric}: NVFP4 {q} vs {base}: {t} -> rotation {_effect(d, lower)}")
        d, t = cmp(m("mxfp4", q), m("mxfp4", base))
        out.append(f"{metric}: MXFP4 {q} vs {base}: {t} -> rotation {_effect(d, lower)}")
    d, t = cmp(m("mxfp4", "mrgptq"), m("mxfp4", "gptq"))
    out.append(f"{metric}: MXFP4 scale search (mrgptq vs gptq): {t} -> scale search "
               f"{_effect(d, lower)}")
    return out


def _effect(d, lower: bool) -> str:
    """'helps' / 'hurts' for a significant paired difference (new - old), else 'no
    significant effect'."""
    if not d["significant"]:
        return "no significant effect"
    return "helps" if (d["diff"] < 0) == lower else "hurts"


def _plot(out, d, task, workload) -> Path:
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(8, 4.2))
    qs = list(d)
    x = np.arange(len(qs))
    for k, (key, lab, mk) in enumerate((("mx", "MXFP4 (E8M0 / 32)", "o"),
                                        ("nv", "NVFP4 (UE4M3 / 16 + FP32)", "s"))):
        ms = [d[q][key] for q in qs]
        v = np.array([m.value for m in ms])
        ci = np.array([m.ci() for m in ms])
        ax.errorbar(x + (k - 0.5) * 0.15, v, yerr=[v - ci[:, 0], ci[:, 1] - v], fmt=mk,
                    capsize=3, label=lab)
    ax.set_xticks(x, qs, rotation=20, fontsize=8)
    ax.set_ylabel(f"{task} (95% bootstrap interval)")
    ax.set_title(f"{workload}: W4A4, MXFP4 vs NVFP4 per quantizer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, out / "plot.png")
