"""Pareto plots of the cost report: accuracy (from a sweep) or energy against energy and area,
one point per (format, accumulator architecture) with the sweep's 95% bootstrap interval as an
error bar, log cost axes, the Pareto front dashed."""

from __future__ import annotations

from pathlib import Path

from lowbit.sim.sweep.plots import spread_labels
from lowbit.sim.tables import pareto_front

__all__ = ["pareto_plots", "split_outliers"]

OUTLIER_GAP = 3.0
"""A metric value is drawn at the axis edge (off-scale) when a gap in the sorted values separates
it from the best values and that gap is more than ``OUTLIER_GAP`` times the spread of the values
on the best side: one broken network must not squash every other point into one line."""


def split_outliers(values, higher_is_better: bool = True) -> list[bool]:
    """``mask[i]`` True when ``values[i]`` lies beyond the widest gap of the sorted values, on the
    worse side, and that gap exceeds ``OUTLIER_GAP`` times the spread of the better side."""
    v = sorted(values, reverse=higher_is_better)
    if len(v) < 3:
        return [False] * len(values)
    gaps = [abs(v[i + 1] - v[i]) for i in range(len(v) - 1)]
    g = max(range(len(gaps)), key=gaps.__getitem__)
    spread = abs(v[g] - v[0])
    if gaps[g] <= OUTLIER_GAP * max(spread, 1e-12):
        return [False] * len(values)
    cut = v[g]
    return [(x < cut) if higher_is_better else (x > cut) for x in values]


def pareto_plots(out: Path, totals: list[dict], sweep: dict, canonical_spec=str) -> list[Path]:
    """``pareto_energy.png`` and ``pareto_area.png`` in ``out``; returns their paths.
    ``canonical_spec`` maps a row's format to the sweep's key; the front keeps the best metric
    per cost (``sweep["higher_is_better"]``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vals = (sweep or {}).get("values", {})
    paths = []
    for xkey, xlabel, fname in (("e_total_uj", "energy per inference (uJ)", "pareto_energy.png"),
                                ("array_area_um2", "MAC array area (um^2)", "pareto_area.png")):
        fig, ax = plt.subplots(figsize=(9.0, 5.0), dpi=110)
        pts = []
        for t in totals:
            key = canonical_spec(t["format"])
            if vals and key not in vals:
                continue
            y = vals[key] if vals else (t["e_total_uj"] if xkey != "e_total_uj"
                                                else t["array_area_um2"])
            lo, hi = (sweep or {}).get("ci", {}).get(key, (y, y)) if vals else (y, y)
            pts.append({"cost": t[xkey], "value": y, "label": f"{t['format']} [{t['acc']}]",
                        "acc": t["acc"], "err": (max(y - lo, 0.0), max(hi - y, 0.0))})
        hib = (sweep or {}).get("higher_is_better", True)
        off = split_outliers([p["value"] for p in pts], hib) if vals else [False] * len(pts)
        shown = [p for p, o in zip(pts, off) if not o]
        if any(off):
            ys = [v for p in shown for v in (p["value"] - p["err"][0], p["value"] + p["err"][1])]
            pad = 0.08 * (max(ys) - min(ys) or 1.0)
            edge = min(ys) - pad if hib else max(ys) + pad
            ax.set_ylim(*sorted((edge, (max(ys) + pad) if hib else (min(ys) - pad))))
            for p, o in zip(pts, off):
                if o:
                    ax.plot(p["cost"], edge, "v" if hib else "^", color="0.4", ms=6,
                            clip_on=False)
                    p["label"] += f" = {p['value']:.3g} (off scale)"
                    p["value"] = edge
                    p["err"] = (0.0, 0.0)
        accs = sorted({p["acc"] for p in pts})
        for i, acc in enumerate(accs):
            sel = [p for p, o in zip(pts, off) if p["acc"] == acc and not o]
            ax.errorbar([p["cost"] for p in sel], [p["value"] for p in sel],
                        yerr=[[p["err"][0] for p in sel], [p["err"][1] for p in sel]],
                        fmt="os^Dv"[i % 5], ms=5, capsize=2, lw=0.8, label=f"acc={acc}")
        spread_labels([p["cost"] for p in pts], [p["value"] for p in pts],
                      [p["label"] for p in pts], ax, fontsize=6)
        if vals and pts:
            sgn = 1.0 if sweep.get("higher_is_better", True) else -1.0
            front = pareto_front([{**p, "value": sgn * p["value"]} for p in pts])
            front = [{**p, "value": sgn * p["value"]} for p in front]
            ax.plot([p["cost"] for p in front], [p["value"] for p in front], "k--", lw=0.8,
                    label="Pareto front")
            ax.set_ylabel(sweep.get("metric_name", "metric"))
        else:
            ax.set_ylabel("MAC array area (um^2)" if xkey == "e_total_uj"
                          else "energy per inference (uJ)")
            ax.set_yscale("log")
        ax.legend(fontsize=7)
        ax.set_xlabel(xlabel)
        ax.set_xscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.set_title(("accuracy vs " if vals else "cost only: ") + xlabel.split(" (")[0])
        fig.tight_layout()
        p = out / fname
        fig.savefig(p)
        plt.close(fig)
        paths.append(p)
    return paths
