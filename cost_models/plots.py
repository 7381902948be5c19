"""Pareto plots of the cost report: accuracy (from a sweep) or energy against energy and area,
one point per (format, accumulator architecture), log cost axes, the Pareto front dashed."""

from __future__ import annotations

from pathlib import Path

from lowbit.sim.tables import pareto_front

__all__ = ["pareto_plots"]


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
        fig, ax = plt.subplots(figsize=(7.0, 4.4), dpi=110)
        pts = []
        for t in totals:
            key = canonical_spec(t["format"])
            if vals and key not in vals:
                continue
            y = vals[key] if vals else (t["e_total_uj"] if xkey != "e_total_uj"
                                                else t["array_area_um2"])
            pts.append({"cost": t[xkey], "value": y, "label": f"{t['format']} [{t['acc']}]",
                        "acc": t["acc"]})
        accs = sorted({p["acc"] for p in pts})
        for i, acc in enumerate(accs):
            sel = [p for p in pts if p["acc"] == acc]
            ax.scatter([p["cost"] for p in sel], [p["value"] for p in sel], s=25,
                       marker="os^Dv"[i % 5], label=f"acc={acc}")
        for p in pts:
            ax.annotate(p["label"], (p["cost"], p["value"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
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
