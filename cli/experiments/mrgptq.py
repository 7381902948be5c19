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
    ref = get_workload(workload).reference()["fidelity"][task]
    rows, data = [], {}
    for q in QUANTIZERS:
        mx = pts[("mxfp4", accum, q)]["metrics"]
        nv = pts[("nvfp4", accum, q)]["metrics"]
        gap, gd = diff_cell(mx.get(task), nv.get(task))
        fmx, fmxd = diff_cell(mx.get(task), ref)
        fnv, fnvd = diff_cell(nv.get(task), ref)
        mx_rtn = pts[("mxfp4", accum, "rtn")]["metrics"].get(task)
        nv_rtn = pts[("nvfp4", accum, "rtn")]["metrics"].get(task)
        dmx, _ = diff_cell(mx.get(task), mx_rtn) if q != "rtn" else ("", {})
        dnv, _ = diff_cell(nv.get(task), nv_rtn) if q != "rtn" else ("", {})
        rows.append([q, cell(mx.get(task)), cell(nv.get(task)), fmx, fnv, gap, dmx, dnv,
                     cell(mx.get("kl")), cell(nv.get("kl"))])
        data[q] = {"mx": fmxd, "nv": fnvd, "gap": gd}
    head = ["quantizer", f"MXFP4 {task}", f"NVFP4 {task}", "MXFP4 − float", "NVFP4 − float",
            "MXFP4 − NVFP4", "MXFP4 vs its RTN", "NVFP4 vs its RTN", "MXFP4 KL", "NVFP4 KL"]
    table = write_table(out, "table", head, rows, "l" + "r" * (len(head) - 1))
    verdicts = _verdicts(pts, accum, task) + _verdicts(pts, accum, "kl")
    png = _plot(out, data, task, workload, ref)
    md = write_markdown(out, f"MXFP4 vs NVFP4 under RTN / GPTQ / Hadamard+GPTQ ({workload})", [
        f"Command: `lowbit experiment mr-gptq --workload {workload}`. W4A4 (weights and "
        f"activations in the format), accumulator `{accum}`, {task} with 95% bootstrap "
        f"intervals (float model: {ref.value:.4f}); differences are paired bootstrap intervals "
        "over the same evaluation samples, `*` = significant (interval excludes 0).",
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


def _plot(out, d, task, workload, ref) -> Path:
    """Left: each format's paired difference to the float model per quantizer; right: the
    paired MXFP4 − NVFP4 gap. 95% paired bootstrap intervals (the per-format intervals of the
    table overlap because the evaluation windows differ a lot; the paired ones do not)."""
    pyplot = plt()
    fig, (ax, ax2) = pyplot.subplots(1, 2, figsize=(11, 4.8),
                                     gridspec_kw={"width_ratios": [1.6, 1]})
    qs = list(d)
    y = np.arange(len(qs))[::-1]
    for k, (key, lab, mk, col) in enumerate((
            ("mx", "MXFP4 (E8M0 scale / 32)", "o", "tab:blue"),
            ("nv", "NVFP4 (UE4M3 scale / 16 + FP32)", "s", "tab:orange"))):
        v = np.array([d[q][key]["diff"] for q in qs])
        lo = np.array([d[q][key]["lo"] for q in qs])
        hi = np.array([d[q][key]["hi"] for q in qs])
        ax.errorbar(v, y + (0.5 - k) * 0.28, xerr=[v - lo, hi - v], fmt=mk, color=col,
                    capsize=3, label=lab)
    ax.axvline(0, color="grey", lw=1, ls=":")
    better = "lower" if not ref.higher_is_better else "higher"
    ax.set_xlabel(f"{task} − float model ({ref.value:.3f}); {better} is better")
    ax.set_yticks(y, qs)
    ax.set_title("difference to float (paired 95% interval)", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    v = np.array([d[q]["gap"]["diff"] for q in qs])
    lo = np.array([d[q]["gap"]["lo"] for q in qs])
    hi = np.array([d[q]["gap"]["hi"] for q in qs])
    ax2.errorbar(v, y, xerr=[v - lo, hi - v], fmt="D", color="tab:purple", capsize=3)
    ax2.axvline(0, color="grey", lw=1, ls=":")
    ax2.set_yticks(y, [""] * len(qs))
    ax2.set_xlabel(f"MXFP4 − NVFP4 {task}")
    ax2.set_title("MXFP4 − NVFP4 gap (paired 95% interval)", fontsize=10)
    ax2.grid(alpha=0.3, axis="x")
    lim = max(float(np.max(np.abs(np.r_[lo, hi]))), 1e-12) * 1.1
    if np.all(lo > 0) or np.all(hi < 0):
        ax2.set_xlim(min(0.0, float(lo.min()) * 1.1), max(0.0, float(hi.max()) * 1.1))
    else:
        ax2.set_xlim(-lim, lim)
    fig.suptitle(f"{workload}: W4A4, MXFP4 vs NVFP4 per weight quantizer", fontsize=11)
    fig.tight_layout()
    return save(fig, out / "plot.png")
