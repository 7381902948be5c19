"""Write a sweep's results: results.csv, results.json, report.md and PNG plots.

All outputs are rebuilt from the SQLite store for the requested points, so a resumed sweep
reports every point, whichever run computed it.

* ``results.csv`` — one row per point: workload, format, accum, quantizer, status, metric,
  delta vs the fp32 reference, bits_per_element, min/mean layer SQNR (dB), seconds, error.
* ``results.json`` — the same plus per-layer SQNR and every metric field, and the reference.
* ``report.md`` — a Markdown table and links to the plots.
* ``metric_vs_bits.png`` — metric vs weight bits per element (one marker per accumulator).
* ``sqnr_heatmap.png`` — per-layer output SQNR (dB), points x layers.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

CSV_FIELDS = ("workload", "format", "accum", "quantizer", "status", "metric_name", "metric",
              "delta_vs_fp32", "bits_per_element", "min_layer_sqnr_db", "mean_layer_sqnr_db",
              "seconds", "error")


def flatten(rows: list[dict], reference: float | None) -> list[dict]:
    out = []
    for r in rows:
        res = r.get("result") or {}
        sq = res.get("per_layer_sqnr") or {}
        finite = [v for v in sq.values() if isinstance(v, float) and math.isfinite(v)]
        metric = res.get("metric")
        out.append({
            "workload": r["workload"], "format": r["format"], "accum": r["accum"],
            "quantizer": r["quantizer"], "status": r["status"],
            "metric_name": res.get("metric_name", ""),
            "metric": metric,
            "delta_vs_fp32": (metric - reference) if metric is not None and reference is not None
            else None,
            "bits_per_element": res.get("bits_per_element"),
            "min_layer_sqnr_db": min(sq.values()) if sq else None,
            "mean_layer_sqnr_db": sum(finite) / len(finite) if finite else None,
            "seconds": r.get("seconds"),
            "error": r.get("error") or "",
            "per_layer_sqnr": sq,
            "result": res,
        })
    return out


def _fmt(v, nd=4):
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        out = f"{v:.{nd}f}"
        return out[1:] if out.startswith("-") and float(out) == 0 else out
    return str(v)


def write_outputs(out_dir: Path, rows: list[dict], workload, stats: dict | None = None,
                  plots: bool = True) -> dict[str, Path]:
    """Write all result files for ``rows`` (store rows) into ``out_dir``; returns paths."""
    out_dir = Path(out_dir)
    ref = workload.reference()["metric"]
    ref_metric = ref.get("metric")
    flat = flatten(rows, ref_metric)
    paths = {}

    p = out_dir / "results.csv"
    with open(p, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in flat:
            w.writerow({k: _fmt(r[k], 6) if isinstance(r[k], float) else r[k] for k in CSV_FIELDS})
    paths["csv"] = p

    from .store import _sanitize

    p = out_dir / "results.json"
    doc = {"workload": workload.name, "workload_version": getattr(workload, "version", ""),
           "metric_name": workload.metric_name, "reference": ref,
           "layers": [s.name for s in workload.layers()],
           "points": [{k: v for k, v in r.items() if k != "result"} | {"details": r["result"]}
                      for r in flat]}
    p.write_text(json.dumps(_sanitize(doc), indent=1, default=str))
    paths["json"] = p

    if plots:
        try:
            paths.update(_plots(out_dir, flat, workload, ref_metric))
        except Exception as exc:  # noqa: BLE001 - plots are a convenience
            paths["plot_error"] = str(exc)

    p = out_dir / "report.md"
    lines = [f"# Format sweep: {workload.name}", "",
             f"Reference (float weights, float64 arithmetic): {workload.metric_name} = "
             f"{_fmt(ref_metric)}. Weights and activations in the listed format "
             "(`W/A` = different formats); blocks and channels along the GEMM reduction axis.",
             ""]
    if stats:
        lines += [f"Points: {stats.get('total')} ({stats.get('computed')} computed now, "
                  f"{stats.get('skipped')} reused from results.sqlite, {stats.get('failed')} "
                  f"failed); wall time {stats.get('seconds', 0):.1f} s.", ""]
    lines += [f"| format | bits/elem | accum | quantizer | {workload.metric_name} | "
              "Δ vs ref | min layer SQNR (dB) | status |",
              "|---|---:|---|---|---:|---:|---:|---|"]
    for r in flat:
        status = r["status"] if r["status"] == "ok" else f"error: {r['error'][:80]}"
        lines.append(f"| {r['format']} | {_fmt(r['bits_per_element'], 2)} | {r['accum']} | "
                     f"{r['quantizer']} | {_fmt(r['metric'])} | {_fmt(r['delta_vs_fp32'])} | "
                     f"{_fmt(r['min_layer_sqnr_db'], 1)} | {status} |")
    for key, title in (("plot_metric", "Metric vs bits per element"),
                       ("plot_heatmap", "Per-layer SQNR")):
        if key in paths:
            lines += ["", f"![{title}]({paths[key].name})"]
    if "plot_error" in paths:
        lines += ["", f"(plots skipped: {paths['plot_error']})"]
    p.write_text("\n".join(lines) + "\n")
    paths["md"] = p
    return paths


def _plots(out_dir: Path, flat: list[dict], workload, ref_metric) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import numpy as np

    ok = [r for r in flat if r["status"] == "ok" and r["metric"] is not None]
    paths = {}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = "osD^v<>"
    groups = sorted({(r["accum"], r["quantizer"]) for r in ok})
    for i, g in enumerate(groups):
        pts = [r for r in ok if (r["accum"], r["quantizer"]) == g]
        ax.scatter([r["bits_per_element"] for r in pts], [r["metric"] for r in pts],
                   marker=markers[i % len(markers)], label=f"accum={g[0]}, {g[1]}", alpha=0.8)
        if i == 0:
            for k, r in enumerate(sorted(pts, key=lambda r: (r["bits_per_element"], r["metric"]))):
                ax.annotate(r["format"], (r["bits_per_element"], r["metric"]), fontsize=6,
                            xytext=(4, -10 + 9 * (k % 3)), textcoords="offset points")
    if ref_metric is not None:
        ax.axhline(ref_metric, color="gray", ls="--", lw=0.8, label="float reference")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("weight bits per element (incl. block scales)")
    ax.set_ylabel(workload.metric_name)
    ax.set_title(f"{workload.name}: {workload.metric_name} vs bits per element")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths["plot_metric"] = out_dir / "metric_vs_bits.png"
    fig.savefig(paths["plot_metric"], dpi=110)
    plt.close(fig)

    layers = [s.name for s in workload.layers()]
    if ok and layers:
        mat = np.array([[r["per_layer_sqnr"].get(n, np.nan) for n in layers] for r in ok],
                       dtype=float)
        mat = np.where(np.isposinf(mat), 99.0, mat)
        h = max(3.0, 0.28 * len(ok) + 1.5)
        w = max(5.0, 0.25 * len(layers) + 3.5)
        fig, ax = plt.subplots(figsize=(w, h))
        im = ax.imshow(np.clip(mat, 0, 60), aspect="auto", cmap="viridis", vmin=0, vmax=60)
        if mat.size <= 400:
            for (i, j), v in np.ndenumerate(mat):
                ax.text(j, i, "inf" if v >= 99 else f"{v:.0f}", ha="center", va="center",
                        fontsize=6, color="white" if v < 35 else "black")
        ax.set_yticks(range(len(ok)), [f"{r['format']} / {r['accum']} / {r['quantizer']}"
                                        for r in ok], fontsize=7)
        ax.set_xticks(range(len(layers)), layers, rotation=90, fontsize=7)
        fig.colorbar(im, ax=ax, label="output SQNR vs float (dB, colour clipped at 60)")
        ax.set_title(f"{workload.name}: per-layer SQNR")
        fig.tight_layout()
        paths["plot_heatmap"] = out_dir / "sqnr_heatmap.png"
        fig.savefig(paths["plot_heatmap"], dpi=110)
        plt.close(fig)
    return paths
