"""Shared pieces of the paper experiments: where results go, tables with intervals, plots."""

from __future__ import annotations

from pathlib import Path

from lowbit.sim.fidelity import SampleMetric
from lowbit.sim.sweep import sweep
from lowbit.sim.sweep.compare import sample_metrics
from lowbit.sim.sweep.report import fmt_num, with_ci
from lowbit.sim.tables import markdown_grid, write_grid_csv

DEFAULT_OUT = "results/experiments"


def run_points(workload: str, formats, accums, quantizers, out: Path, workers=None) -> dict:
    """Sweep points (resumable) into ``out/sweep/<workload>/``; returns ``{(format, accum,
    quantizer): {"row": store row, "metrics": {name: SampleMetric}}}`` and the sweep result."""
    res = sweep(workload, formats, accums, quantizers, out=Path(out) / "sweep", workers=workers,
                progress=False, plots=True)
    pts = {}
    for r in res["rows"]:
        pts[(r["format"], r["accum"], r["quantizer"])] = {
            "row": r, "metrics": sample_metrics(r.get("result") or {})}
    return {"points": pts, "sweep": res}


def cell(m: SampleMetric | None, nd: int = 4) -> str:
    """``value [lo, hi]`` of a metric ('' when missing)."""
    if m is None:
        return ""
    lo, hi = m.ci()
    return with_ci(m.value, lo, hi, nd)


def diff_cell(a: SampleMetric | None, b: SampleMetric | None, nd: int = 4) -> tuple[str, dict]:
    """Paired ``a - b`` as ``diff [lo, hi]`` + '*' when significant; and the raw dict."""
    if a is None or b is None:
        return "", {}
    d = a.compare(b)
    return with_ci(d["diff"], d["lo"], d["hi"], nd) + (" *" if d["significant"] else ""), d


def write_table(out: Path, name: str, header: list[str], rows: list[list], align=None) -> str:
    """``out/name.csv`` and the Markdown text of the table."""
    out.mkdir(parents=True, exist_ok=True)
    write_grid_csv(out / f"{name}.csv", header, rows)
    return markdown_grid(header, rows, align)


def write_markdown(out: Path, title: str, sections: list[str]) -> Path:
    p = out / "table.md"
    p.write_text(f"# {title}\n\n" + "\n\n".join(s.strip() for s in sections) + "\n")
    return p


def plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as pyplot

    return pyplot


def float_baseline(ax, task: str, ref) -> str:
    """Draw the float model as the zero line of a paired-difference plot (``ref``: the float
    model's SampleMetric) and return the y-axis quantity, oriented so that up is worse."""
    ax.axhline(0.0, color="grey", ls=":", lw=1, label=f"float model ({task} {ref.value:.4g})")
    return f"float − {task}" if ref.higher_is_better else f"{task} − float"


__all__ = ["DEFAULT_OUT", "cell", "diff_cell", "float_baseline", "fmt_num", "plt", "run_points",
           "write_markdown", "write_table"]
