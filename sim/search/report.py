"""Write a :class:`~lowbit.sim.search.api.SearchResult`: assignment table, sensitivity and cost
tables, the measured front (CSV, JSON, PNG) and a Markdown summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lowbit.sim.tables import markdown_table, write_csv

from .costs import METRIC_UNITS, fmt_cost


def assignment_rows(res) -> list[dict]:
    a, t, s = res.assignment, res.costs, res.sensitivity
    rows = []
    for i, ln in enumerate(t.layers):
        j = a.choice[i]
        r = {"layer": ln, "format": t.candidates[j], "sensitivity": float(s.values[i, j])}
        for m in t.per_layer:
            r[f"{m}_{METRIC_UNITS[m]}"] = float(t.per_layer[m][i, j])
        rows.append(r)
    return rows


def plot_front(res, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    pts = res.points
    style = {"ilp": ("o-", "C0", "ILP (mixed)"), "greedy": ("s--", "C1", "greedy"),
             "uniform": ("^", "C2", "uniform")}
    for kind, (mk, col, lab) in style.items():
        rs = sorted([r for r in pts if r["kind"] == kind and r.get("measured") is not None],
                    key=lambda r: r["cost_fraction"])
        if not rs:
            continue
        x = [r["cost_fraction"] for r in rs]
        y = [100 * r["measured"] for r in rs]
        ax.plot(x, y, mk, color=col, label=lab, alpha=0.85, ms=6)
        if all(r.get("metric_lo") is not None for r in rs):  # 95% bootstrap intervals
            ax.errorbar(x, y, yerr=[[max(0.0, yi - 100 * r["metric_lo"]) for yi, r in zip(y, rs)],
                                    [max(0.0, 100 * r["metric_hi"] - yi) for yi, r in zip(y, rs)]],
                        fmt="none", ecolor=col, alpha=0.6, capsize=2)
        if kind == "uniform":
            for r, xi, yi in zip(rs, x, y):
                ax.annotate(r["label"].replace("uniform ", ""), (xi, yi), fontsize=7,
                            xytext=(3, -9), textcoords="offset points")
    for r in pts:
        if r["kind"] == "ilp@budget" and r.get("measured") is not None:
            ax.plot([r["cost_fraction"]], [100 * r["measured"]], "*", color="C3", ms=14,
                    label="ILP @ budget")
    if res.float_metric is not None:
        ax.axhline(100 * res.float_metric, color="grey", ls=":", lw=1, label="float")
    for m, f in res.budget_fractions.items():
        if m == res.front_metric:
            ax.axvline(f, color="C3", ls=":", lw=1)
    ax.set_xlabel(f"{res.front_metric} / most expensive uniform candidate")
    ax.set_ylabel(f"measured {res.metric_name} (x100, 95% bootstrap intervals)")
    ax.set_title(f"{res.workload}: measured {res.metric_name} vs {res.front_metric} "
                 f"(sensitivity: {res.sensitivity.metric})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def summary_markdown(res) -> str:
    t, a, fm = res.costs, res.assignment, res.front_metric
    L = [f"# Mixed-precision search: {res.workload}", ""]
    L.append(f"- candidates: {', '.join(res.candidates)} (int8 -> int8_pc, int4 -> int4_pc: "
             "symmetric INT, FP32 scale per output channel / per token)")
    L.append(f"- sensitivity: `{res.sensitivity.metric}` {res.sensitivity.details.get('target', '')}"
             f"; ILP solver: {res.solver}; cost source: {t.source} ({t.notes.get('array')}, "
             f"area mode `{t.area_mode}`)")
    L.append("- MAC architecture behind every cost row (lowbit.cost_models, `arch='auto'`): a "
             "scalar MAC per element format whose accumulator is fixed-point (integer / Kulisch, "
             "Colbert-bound width for K = 1024) while it fits in 80 bits, else FP32; block "
             "formats (MX, NVFP4, per-group INT) a dot unit of the block length with an FP32 "
             "accumulator; energies Horowitz-45nm anchored; arrays "
             f"{t.notes.get('array')} at {t.notes.get('node_nm', 45)} nm")
    bl = ", ".join(f"{m} <= {fmt_cost(m, v)} ({res.budget_fractions[m]:.3g} of the most "
                   f"expensive uniform)" for m, v in res.budgets.items())
    L.append(f"- budget: {bl}")
    if res.ties:
        L.append(f"- ties: {res.ties}")
    if res.float_metric is not None:
        L.append(f"- float {res.metric_name}: {res.float_metric:.4f}")
    L += ["", "## Assignment at the budget", ""]
    L.append(markdown_table(assignment_rows(res), ["layer", "format", "sensitivity"] +
                 [f"{m}_{METRIC_UNITS[m]}" for m in t.per_layer],
                 {"sensitivity": lambda v: f"{v:.3g}", **{f"{m}_{METRIC_UNITS[m]}": (lambda v: f"{v:.4g}")
                                                         for m in t.per_layer}}))
    L += ["", "Totals: " + ", ".join(f"{m} {fmt_cost(m, v)}" for m, v in a.costs.items()), ""]
    at = next((r for r in res.points if r["kind"] == "ilp@budget"), None)
    gb = next((r for r in res.points if r["kind"] == "greedy@budget"), None)
    if at and at.get("measured") is not None:
        L.append(f"Measured {res.metric_name}: ILP {at['measured']:.4f}"
                 + (f", greedy {gb['measured']:.4f} ({gb['assignment']})" if gb else ""))
        L.append("")
    L += [f"## Measured front ({fm} as a fraction of the most expensive uniform candidate)", ""]
    rows = sorted([r for r in res.points if r["kind"] in ("ilp", "greedy", "uniform")],
                  key=lambda r: (r["kind"] != "uniform", r["kind"], r["cost_fraction"]))
    for r in rows:
        if r.get("metric_lo") is not None:
            r["95% CI"] = f"[{r['metric_lo']:.4f}, {r['metric_hi']:.4f}]"
    L.append(markdown_table(rows, ["kind", "label", "cost_fraction", "measured", "95% CI",
                                   "pred_sensitivity", "pareto", "assignment"],
                 {"cost_fraction": lambda v: f"{v:.3f}", "measured": lambda v: f"{v:.4f}",
                  "pred_sensitivity": lambda v: f"{v:.3g}"}))
    L += ["", "95% CI: percentile bootstrap over the evaluation samples (2000 resamples, seed "
          "0; lowbit.sim.stats); 'pareto' compares point estimates only."]
    L += ["", "Timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in res.timings.items()), ""]
    return "\n".join(L)


def write_outputs(res, out) -> dict:
    """Write ``assignment.csv``, ``sensitivity.csv``, ``costs.csv``, ``front.csv``,
    ``front.json``, ``front.png`` (when points were measured) and ``summary.md`` into ``out``."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out {str(out)!r} is not a writable folder ({exc})") from exc
    files = {}
    files["assignment"] = out / "assignment.csv"
    write_csv(files["assignment"], assignment_rows(res))
    files["sensitivity"] = out / "sensitivity.csv"
    write_csv(files["sensitivity"], res.sensitivity.rows())
    files["costs"] = out / "costs.csv"
    write_csv(files["costs"], res.costs.rows())
    files["front_csv"] = out / "front.csv"
    write_csv(files["front_csv"], res.points)
    files["front_json"] = out / "front.json"

    def clean(o):
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, np.ndarray):
            return clean(o.tolist())
        if isinstance(o, (np.floating, np.integer)):
            return o.item()
        return o

    payload = {
        "workload": res.workload, "metric_name": res.metric_name,
        "candidates": res.candidates, "sensitivity_metric": res.sensitivity.metric,
        "sensitivity_details": res.sensitivity.details, "solver": res.solver,
        "cost_source": res.costs.source, "cost_notes": res.costs.notes,
        "units": res.costs.units, "budgets": res.budgets,
        "budget_fractions": res.budget_fractions, "front_metric": res.front_metric,
        "float_metric": res.float_metric, "ties": res.ties,
        "assignment": {"formats": res.assignment.formats, "costs": res.assignment.costs,
                       "pred_sensitivity": res.assignment.sensitivity},
        "greedy": None if res.greedy is None else {"formats": res.greedy.formats,
                                                   "costs": res.greedy.costs},
        "points": res.points, "timings": res.timings,
    }
    files["front_json"].write_text(json.dumps(clean(payload), indent=1, default=str))
    if any(r.get("measured") is not None for r in res.points):
        files["front_png"] = plot_front(res, out / "front.png")
    files["summary"] = out / "summary.md"
    files["summary"].write_text(summary_markdown(res))
    return files
