"""Write a sweep's results: results.csv, results.json, report.md, pairwise.csv and PNG plots.

All outputs are rebuilt from the SQLite store for the requested points, so a resumed sweep
reports every point, whichever run computed it.

* ``results.csv`` -- one row per point: workload, format, accum, quantizer, status, bits per
  element, and for every metric its value with the 95% bootstrap interval (``M``, ``M_lo``,
  ``M_hi``), the task metric's paired difference to the float reference (``delta``,
  ``delta_lo``, ``delta_hi``, ``delta_p``, ``distinguishable``), min / mean layer SQNR, seconds,
  error.
* ``results.json`` -- the same plus per-layer SQNR, every metric field, the reference and the
  assumptions.
* ``pairwise.csv`` -- paired differences of the task metric between every two points (Holm).
* ``report.md`` -- assumptions, the table with intervals, what is significant, plots.
* ``fidelity.png`` (forest plot: every metric with its interval, one row per point),
  ``metric_vs_bits.png`` and ``sqnr_heatmap.png`` (per-layer output SQNR).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from lowbit.formats import resolve

from ..fidelity import SampleMetric
from ..stats import LEVEL, N_BOOT, SEED
from ..tables import markdown_grid, write_csv
from . import compare
from .plots import write_plots
from .points import split_format
from .store import json_safe

BASE_FIELDS = ("workload", "format", "accum", "quantizer", "status", "metric_name", "metric",
               "metric_lo", "metric_hi", "delta_vs_fp32", "delta_lo", "delta_hi", "delta_p",
               "distinguishable", "bits_per_element", "min_layer_sqnr_db",
               "mean_layer_sqnr_db", "seconds", "error")
ASSUMED_PAIRS = (("mxfp4", "nvfp4"),)


def flatten(rows: list[dict], reference: float | None, ref_samples: dict | None = None,
            metric_name: str | None = None) -> list[dict]:
    """Store rows -> flat dicts (one per point) with intervals and the difference to float."""
    deltas = (compare.vs_reference(rows, ref_samples or {}, metric_name)
              if metric_name else [None] * len(rows))
    out = []
    for r, d in zip(rows, deltas):
        res = r.get("result") or {}
        sq = res.get("per_layer_sqnr") or {}
        finite = [v for v in sq.values() if isinstance(v, float) and math.isfinite(v)]
        metric = res.get("metric")
        ci = res.get("metric_ci") or [None, None]
        f = {"workload": r["workload"], "format": r["format"], "accum": r["accum"],
             "quantizer": r["quantizer"], "status": r["status"],
             "metric_name": res.get("metric_name", ""), "metric": metric,
             "metric_lo": ci[0], "metric_hi": ci[1],
             "delta_vs_fp32": (metric - reference) if metric is not None and reference is not None
             else None,
             "delta_lo": d["lo"] if d else None, "delta_hi": d["hi"] if d else None,
             "delta_p": d["p"] if d else None,
             "distinguishable": (bool(d["significant"]) if d else None),
             "distinguishable_holm": (bool(d["holm"]) if d else None),
             "bits_per_element": res.get("bits_per_element"),
             "min_layer_sqnr_db": min(sq.values()) if sq else None,
             "mean_layer_sqnr_db": sum(finite) / len(finite) if finite else None,
             "seconds": r.get("seconds"), "error": r.get("error") or "",
             "per_layer_sqnr": sq, "metrics": res.get("metrics") or {}, "result": res}
        for name, m in f["metrics"].items():
            f[name], f[f"{name}_lo"], f[f"{name}_hi"] = m["value"], m["lo"], m["hi"]
        out.append(f)
    return out


def p_text(p: float) -> str:
    """``p = 0.031``; a bootstrap p-value of 0 (no resample crossed 0) as ``p < 2/N_BOOT``,
    the test's resolution."""
    if p == 0:
        return f"p < {2.0 / N_BOOT:g}"
    return f"p = {fmt_num(p, 3)}"


def fmt_num(v, nd=4):
    """Number for tables: fixed decimals, '+inf dB' spelt 'inf', '' for None; '-0' avoided."""
    if v is None or v == "":
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if math.isnan(v):
            return "nan"
        if v != 0 and abs(v) < 10 ** -nd and nd > 2:
            return f"{v:.2e}"
        out = f"{v:.{nd}f}"
        return out[1:] if out.startswith("-") and float(out) == 0 else out
    return str(v)


def with_ci(v, lo, hi, nd=4) -> str:
    if v is None:
        return ""
    return f"{fmt_num(v, nd)} [{fmt_num(lo, nd)}, {fmt_num(hi, nd)}]"


def format_notes(names) -> list[str]:
    """One line per format: its scaling (what the reports call 'unscaled' / 'scaled')."""
    out, unscaled = [], []
    parts = [split_format(s) for s in names]
    muls = sorted({m for _, _, m in parts if m != "exact"})
    for spec in sorted({f for w, a, _ in parts for f in (w, a)}):
        f = resolve(spec)
        if f.kind != "block":
            unscaled.append(spec)
            continue
        bs = f.block_size
        g = ("per tensor" if bs is None else "per channel / token (row of the GEMM operand)"
             if bs == -1 else f"per block of {bs}" if isinstance(bs, int) else f"per {bs} tile")
        sc = "FP32" if f.scale is None else f.scale.name.upper()
        extra = " and an FP32 per-tensor scale" if f.tensor_scale else ""
        out.append(f"`{spec}`: {f.element.name} elements, {sc} scale {g}{extra} "
                   f"({f.bits_per_element:g} bits/element excl. per-channel / per-tensor scales)")
    if unscaled:
        out.insert(0, "Unscaled (values rounded to the element grid as they are, saturating at "
                   f"the format's max): {', '.join(f'`{u}`' for u in unscaled)}")
    for m in muls:
        out.append(f"`@{m}`: every GEMM product is the multiplier model `{m}` "
                   f"(lowbit.formats.multiplier; `lmul`: L-Mul, Luo & Sun 2024) applied to the "
                   "element codes; block scales and the accumulator as with exact products")
    return out


def assumptions(workload, flat: list[dict]) -> list[str]:
    wl_notes = list(getattr(workload, "assumptions", lambda: [])())
    accs = sorted({r["accum"] for r in flat})
    qs = sorted({r["quantizer"] for r in flat})
    return wl_notes + [
        "Weights and activations of every quantised GEMM in the listed format (`W/A` = different "
        "weight / activation formats); blocks and channels run along the GEMM reduction axis K; "
        "biases, normalisation, softmax and activations in float64.",
        *format_notes([r["format"] for r in flat]),
        f"Accumulators: {', '.join(accs)} (lowbit.formats.accum: `exact` = one rounding of the "
        "exact dot product; `fp32` = IEEE single adds in sequence, one rounding per add or per "
        "MX / NVFP4 block). Weight quantisers: " + ", ".join(qs) + " (lowbit.sim.quantizers."
        "compose).",
        "Output SQNR = 10 log10(sum y_float^2 / sum (y_q - y_float)^2) over all outputs of the "
        "evaluation set (a ratio of sums), +inf when identical. KL = KL(float || quantised) of "
        "the output distribution per prediction, in nats. Agreement = share of arg-max "
        "predictions equal to the float model's. Layer SQNR: each GEMM output of the quantised "
        "network against the float network (earlier layers' errors included).",
        f"Intervals: {int(LEVEL * 100)}% percentile bootstrap over evaluation samples, {N_BOOT} "
        f"resamples, seed {SEED}, the same resamples for every point (paired). A difference is "
        "significant when its paired interval excludes 0; 'Holm' corrects for the number of "
        "comparisons in a table.",
    ]


def _ref_samples(workload) -> dict:
    return dict(workload.reference().get("fidelity") or {})


def write_outputs(out_dir: Path, rows: list[dict], workload, stats: dict | None = None,
                  plots: bool = True) -> dict[str, Path]:
    """Write all result files for ``rows`` (store rows) into ``out_dir``; returns paths."""
    out_dir = Path(out_dir)
    ref = workload.reference()
    ref_metric = ref["metric"].get("metric")
    ref_fid: dict = _ref_samples(workload)
    mname = workload.metric_name
    flat = flatten(rows, ref_metric, ref_fid, mname if mname in ref_fid else None)
    metric_names = list(dict.fromkeys(k for r in flat for k in r["metrics"]))
    paths: dict[str, Path] = {}

    fields = list(BASE_FIELDS) + [f"{m}{s}" for m in metric_names if m != mname
                                  for s in ("", "_lo", "_hi")]
    paths["csv"] = write_csv(out_dir / "results.csv", [
        {k: fmt_num(r.get(k), 6) if isinstance(r.get(k), float) else r.get(k, "") for k in fields}
        for r in flat], fields)

    pairs = compare.pairwise(rows, mname) if mname in ref_fid else []
    paths["pairwise"] = write_csv(out_dir / "pairwise.csv", pairs,
                                  ["a", "b", "diff", "lo", "hi", "p", "significant", "holm"])

    named = []
    for a, b in ASSUMED_PAIRS:
        named += [{"a_format": a, "b_format": b, **x} for x in compare.named_pair(rows, a, b)]

    notes = assumptions(workload, flat)
    ref_summary = {k: m.summary() for k, m in ref_fid.items()}
    doc = {"workload": workload.name, "workload_version": getattr(workload, "version", ""),
           "metric_name": mname, "reference": ref["metric"], "reference_metrics": ref_summary,
           "assumptions": notes, "layers": [s.name for s in workload.layers()],
           "named_pairs": named,
           "points": [{k: v for k, v in r.items() if k != "result"} | {"details": r["result"]}
                      for r in flat]}
    p = out_dir / "results.json"
    p.write_text(json.dumps(json_safe(doc), indent=1, default=str))
    paths["json"] = p

    if plots:
        try:
            paths.update(write_plots(out_dir, flat, workload, ref_metric, metric_names))
        except Exception as exc:  # noqa: BLE001 - plots are a convenience
            paths["plot_error"] = str(exc)

    p = out_dir / "report.md"
    p.write_text(report_markdown(workload, flat, ref, ref_fid, metric_names, pairs, named, notes,
                                 stats, paths))
    paths["md"] = p
    return paths


def _quantised_count(have) -> str:
    """The count without FP32 points (they differ from the float64 reference only by FP32
    rounding), when there are any."""
    q = [r for r in have if split_format(r["format"])[:2] != ("fp32", "fp32")]
    if len(q) == len(have) or not q:
        return ""
    return (f" Quantised formats only (FP32 excluded): {sum(bool(r['distinguishable']) for r in q)}"
            f" of {len(q)} differ ({sum(bool(r['distinguishable_holm']) for r in q)} after Holm).")


def _significance_lines(flat, mname, higher, pairs, named) -> list[str]:
    have = [r for r in flat if r["distinguishable"] is not None]
    if not have:
        return []
    dist = [r for r in have if r["distinguishable"]]
    dist_h = [r for r in have if r["distinguishable_holm"]]
    same = [compare.label(r) for r in have if not r["distinguishable"]]
    L = ["## What is significant", "",
         f"- **{len(dist)} of {len(have)}** points differ from the float model on {mname} "
         f"(paired 95% interval of the difference excludes 0; {len(dist_h)} after Holm "
         f"correction over the {len(have)} comparisons)."
         + _quantised_count(have)
         + (f" Not distinguishable from float: {', '.join(same)}." if same else "")]
    for x in named:
        if x["metric"] != mname:
            continue
        better = (x["diff"] > 0) == higher
        L.append(f"- {x['a_format']} vs {x['b_format']} ({x['accum']}, {x['quantizer']}): "
                 f"{mname} {fmt_num(x['a'])} vs {fmt_num(x['b'])}, difference "
                 f"{with_ci(x['diff'], x['lo'], x['hi'])}, {p_text(x['p'])}: "
                 + (f"**{'significant' if x['significant'] else 'not significant'}**"
                    + (f" ({x['a_format'] if better else x['b_format']} better)"
                       if x["significant"] else "")))
    if pairs:
        ns = [f"{p['a']} ~ {p['b']}" for p in pairs if not p["holm"]]
        L.append(f"- Pairwise ({len(pairs)} pairs, Holm-corrected, `pairwise.csv`): "
                 f"{len(pairs) - len(ns)} significant"
                 + (f"; not separable: {'; '.join(ns[:12])}" + (" ..." if len(ns) > 12 else "")
                    if ns else "") + ".")
    return L + [""]


def report_markdown(workload, flat, ref, ref_fid, metric_names, pairs, named, notes, stats,
                    paths) -> str:
    mname = workload.metric_name
    higher = getattr(workload, "higher_is_better", True)
    rm = ref_fid.get(mname)
    ref_txt = (with_ci(rm.value, *rm.ci()) if isinstance(rm, SampleMetric)
               else fmt_num(ref["metric"].get("metric")))
    L = [f"# Format sweep: {workload.name}", "",
         f"Float reference (float weights, float64 arithmetic): {mname} = {ref_txt} "
         f"({'higher' if higher else 'lower'} is better).", ""]
    if stats:
        extra = "".join(f", {stats[k]} {what}" for k, what in (
            ("by_others", "computed by another sweep on this store"),
            ("overflow", "overflowed (Inf/NaN)")) if stats.get(k))
        L += [f"Points: {stats.get('total')} ({stats.get('computed')} computed now, "
              f"{stats.get('skipped')} reused from results.sqlite, {stats.get('failed')} "
              f"failed{extra}); wall time {stats.get('seconds', 0):.1f} s.", ""]
    others = [m for m in metric_names if m != mname]
    head = ["format", "bits/elem", "accum", "quantizer", f"{mname} [95% CI]",
            "Δ vs float [95% CI]", "≠ float"] + [f"{m} [95% CI]" for m in others] + \
        ["min layer SQNR (dB)", "status"]
    body = []
    for r in flat:
        status = {"ok": "ok", "overflow": "**overflow** (Inf/NaN)"}.get(
            r["status"], f"error: {r['error'][:80]}")
        mt = r["metrics"]
        body.append([r["format"], fmt_num(r["bits_per_element"], 2), r["accum"], r["quantizer"],
                     with_ci(r["metric"], r["metric_lo"], r["metric_hi"]) if r["metric_lo"]
                     is not None else fmt_num(r["metric"]),
                     with_ci(r["delta_vs_fp32"], r["delta_lo"], r["delta_hi"])
                     if r["delta_lo"] is not None else fmt_num(r["delta_vs_fp32"]),
                     fmt_num(r["distinguishable"])]
                    + [with_ci(mt[m]["value"], mt[m]["lo"], mt[m]["hi"],
                               2 if m == "sqnr" else 4) if m in mt else "" for m in others]
                    + [fmt_num(r["min_layer_sqnr_db"], 1), status])
    L += [markdown_grid(head, body, "lrll" + "rrl" + "r" * len(others) + "rl"), ""]
    over = [r for r in flat if r["status"] == "overflow"]
    if over:
        L += [f"**Overflow:** {len(over)} point(s) produced Inf/NaN outputs, so their metrics "
              "describe a broken network, not a rounding error: "
              + "; ".join(f"{r['format']} / {r['accum']} / {r['quantizer']}: {r['error']}"
                          for r in over) + ".", ""]
    L += _significance_lines(flat, mname, higher, pairs, named)
    qn = sorted({n for r in flat for n in (r["result"].get("quantizer_notes") or [])})
    L += ["## Assumptions", ""] + [f"- {n}" for n in notes + qn] + [""]
    for key, title in (("plot_fidelity", "Every metric with its 95% interval"),
                       ("plot_metric", f"{mname} vs bits per element"),
                       ("plot_heatmap", "Per-layer output SQNR")):
        if key in paths:
            L += [f"![{title}]({paths[key].name})", ""]
    if "plot_error" in paths:
        L += [f"(plots skipped: {paths['plot_error']})", ""]
    return "\n".join(L)
