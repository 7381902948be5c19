"""PNG plots of a sweep (matplotlib, Agg): a forest plot of every metric with its 95% interval,
the task metric vs bits per element, and the per-layer SQNR heatmap.

Readability rules: one row per point with its label on the y axis (no overlapping labels),
axes fitted to the data (log scales for perplexity / KL when they span more than a decade, an
inset zoom when most points crowd near the reference), values printed as they are (a finite
SQNR is never shown as "inf")."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TITLES = {"kl": "KL(float || quantised) (nats/prediction)", "agreement": "top-1 agreement",
          "sqnr": "output SQNR (dB)", "perplexity": "perplexity", "top1": "top-1 accuracy",
          "cosine": "cosine to float", "accuracy": "next-byte accuracy"}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path, dpi: int = 110) -> Path:
    """Tight layout, write the PNG, close the figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    _plt().close(fig)
    return path


def _short(r, flat) -> str:
    """Label with only the parts that vary across points."""
    parts = [r["format"]]
    if len({x["accum"] for x in flat}) > 1:
        parts.append(r["accum"])
    if len({x["quantizer"] for x in flat}) > 1:
        parts.append(r["quantizer"])
    return " / ".join(parts)


def _log_ok(vals) -> bool:
    v = np.asarray([x for x in vals if x is not None and np.isfinite(x) and x > 0])
    return v.size > 1 and v.max() / v.min() > 10


def core_range(v, log: bool = False, rounds: int = 3):
    """Axis range that shows the differences among most points: while the largest gap between
    sorted values covers more than half of the span (up to ``rounds`` times), the points
    beyond it (the smaller side) are outliers drawn at the axis edge. Returns (lo, hi,
    outlier mask); (None, None, no outliers) when the values are spread evenly."""
    v = np.asarray(v, float)
    lo = hi = None
    out = np.zeros(len(v), bool)
    for _ in range(rounds):
        lo2, hi2, o2 = _core_once(np.where(out, np.nan, v), log)
        if lo2 is None:
            break
        lo, hi, out = lo2, hi2, out | o2
    return lo, hi, out


def _core_once(v, log: bool):
    fin = np.isfinite(v) & ((v > 0) if log else True)
    out = np.zeros(len(v), bool)
    if fin.sum() < 3:
        return None, None, out
    t = np.log10(v[fin]) if log else v[fin]
    order = np.sort(t)
    gaps = np.diff(order)
    k = int(np.argmax(gaps))
    span = order[-1] - order[0]
    if span <= 0 or gaps[k] <= 0.5 * span:
        return None, None, out
    cut = order[k] + gaps[k] / 2
    low_side = k + 1 <= len(order) - (k + 1)  # fewer points below the gap
    core = order[k + 1:] if low_side else order[:k + 1]
    tt = np.full(len(v), np.nan)
    tt[fin] = t
    out = fin & ((tt < cut) if low_side else (tt > cut))
    cs = core[-1] - core[0]
    pad = 0.1 * cs if cs > 0 else max(0.05 * abs(core[0]), 0.01 * span, 1e-12)
    lo, hi = core[0] - pad, core[-1] + pad
    return (10 ** lo, 10 ** hi, out) if log else (lo, hi, out)


def _mark_outliers(ax, vals, ys, out, lim, axis: str, labels=None):
    """Outliers drawn as arrows at the axis limit ``lim`` = (lo, hi) with their value."""
    lo, hi = lim
    labels = labels or [""] * len(vals)
    for v, y, lab in zip(np.asarray(vals)[out], np.asarray(ys)[out],
                         [x for x, o in zip(labels, out) if o]):
        at_low = v < lo
        edge = lo if at_low else hi
        if axis == "x":
            ax.plot([edge], [y], "<" if at_low else ">", color="C3", ms=7, clip_on=False)
            ax.annotate(f"{v:.3g}", (edge, y), xytext=(6 if at_low else -6, 5),
                        textcoords="offset points", fontsize=7, color="C3",
                        ha="left" if at_low else "right")
        else:
            ax.plot([y], [edge], "v" if at_low else "^", color="C3", ms=7, clip_on=False)
            ax.annotate(f"{lab}: {v:.3g}" if lab else f"{v:.3g}", (y, edge),
                        xytext=(6, 4 if at_low else -10),
                        textcoords="offset points", fontsize=7, color="C3")


def _delta_panel(ax, ok, y, mname):
    """Task metric minus the float model's, with the paired 95% interval (an interval that
    misses the 0 line = distinguishable from float); filled markers = significant."""
    d = np.array([r["delta_vs_fp32"] for r in ok], float)
    lo = np.array([r["delta_lo"] for r in ok], float)
    hi = np.array([r["delta_hi"] for r in ok], float)
    sig = np.array([bool(r["distinguishable"]) for r in ok])
    err = np.vstack([np.clip(d - lo, 0, None), np.clip(hi - d, 0, None)])
    for mask, face, lab in ((sig, "C0", "significant"), (~sig, "white", "not significant")):
        if mask.any():
            ax.errorbar(d[mask], y[mask], xerr=err[:, mask], fmt="o", ms=5, capsize=2,
                        color="C0", mfc=face, label=lab)
    ax.axvline(0.0, color="grey", ls="--", lw=0.8)
    lo_, hi_, outl = core_range(d)
    if lo_ is not None:
        lo_, hi_ = min(lo_, -0.05 * (hi_ - lo_)), max(hi_, 0.05 * (hi_ - lo_))
        ax.set_xlim(lo_, hi_)
        _mark_outliers(ax, d, y, outl, (lo_, hi_), "x")
    ax.set_title(f"Δ {mname} vs float (task; paired)", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    ax.grid(axis="x", alpha=0.3)
    ax.tick_params(axis="x", labelsize=8)


def forest(out: Path, flat, workload, metric_names) -> Path:
    """One panel per metric, one row per point, value with its 95% interval."""
    plt = _plt()
    ok = [r for r in flat if r["status"] == "ok" and r["metrics"]]
    mname = workload.metric_name
    higher = getattr(workload, "higher_is_better", True)
    key = (lambda r: -r["metric"]) if higher else (lambda r: r["metric"])
    ok = sorted(ok, key=key)
    names = [m for m in metric_names if any(m in r["metrics"] for r in ok)]
    names = sorted(names, key=lambda m: m != mname)  # task metric first
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names) + 2.2,
                                                     0.32 * len(ok) + 1.6), sharey=True,
                             squeeze=False)
    y = np.arange(len(ok))[::-1]
    ref = workload.reference().get("fidelity") or {}
    paired = all(r.get("delta_lo") is not None for r in ok)
    for ax, m in zip(axes[0], names):
        if m == mname and paired:  # the task metric as its paired difference to float
            _delta_panel(ax, ok, y, mname)
            continue
        v = np.array([r["metrics"].get(m, {}).get("value", np.nan) for r in ok], float)
        lo = np.array([r["metrics"].get(m, {}).get("lo", np.nan) for r in ok], float)
        hi = np.array([r["metrics"].get(m, {}).get("hi", np.nan) for r in ok], float)
        fin = np.isfinite(v)
        cap = np.nanmax(np.where(np.isfinite(hi), hi, np.nan)) if np.isfinite(hi).any() else 1.0
        vv = np.where(fin, v, cap)
        err = np.vstack([np.clip(vv - np.where(np.isfinite(lo), lo, vv), 0, None),
                         np.clip(np.where(np.isfinite(hi), hi, vv) - vv, 0, None)])
        ax.errorbar(vv[fin], y[fin], xerr=err[:, fin], fmt="o", ms=4, capsize=2, color="C0")
        if (~fin).any():  # +inf SQNR (identical output): an arrow at the right edge
            ax.plot(vv[~fin], y[~fin], ">", color="C2", ms=6, label="+inf (identical)")
            ax.legend(fontsize=7, loc="lower right")
        if m in ref and np.isfinite(ref[m].value):
            ax.axvline(ref[m].value, color="grey", ls="--", lw=0.8)
        log = m in ("kl", "perplexity") and _log_ok(vv)
        if log:
            ax.set_xscale("log")
        lo_, hi_, outl = core_range(np.where(fin, v, np.nan), log)
        if lo_ is not None:
            core = fin & ~outl & np.isfinite(lo) & np.isfinite(hi) & ((lo > 0) if log else True)
            if core.any():  # keep the core points' intervals inside the axis
                lo_, hi_ = min(lo_, float(lo[core].min())), max(hi_, float(hi[core].max()))
            ax.set_xlim(lo_, hi_)
            _mark_outliers(ax, v, y, outl, (lo_, hi_), "x")
        ax.set_title(TITLES.get(m, m) + ("  (task)" if m == mname else ""), fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=8)
    axes[0][0].set_yticks(y, [_short(r, flat) for r in ok], fontsize=8)
    fig.suptitle(f"{workload.name}: metrics with 95% bootstrap intervals (grey: float model)",
                 fontsize=10)
    return save(fig, out / "fidelity.png")


LABEL_CHAR_WIDTH = 0.62
"""Estimated width of one label character, in units of the font size (DejaVu Sans average)."""


def spread_labels(xs, ys, texts, ax, fontsize=7):
    """Annotate points, nudging labels vertically (in points) so that no two labels' boxes
    overlap (a label's width is estimated as ``LABEL_CHAR_WIDTH * fontsize`` per character)."""
    placed: list[tuple[float, float, float]] = []
    ax.autoscale_view()  # apply pending autoscaling: the pixel positions below depend on it
    trans = ax.transData
    for x, y, t in sorted(zip(xs, ys, texts), key=lambda p: (p[1], p[0])):
        px, py = trans.transform((x, y))
        x0, x1 = px + 5, px + 5 + LABEL_CHAR_WIDTH * fontsize * len(str(t))
        dy = 0.0
        while any(x0 < q1 and q0 < x1 and abs(py + dy - qy) < fontsize + 3
                  for q0, q1, qy in placed):
            dy += fontsize + 3
        placed.append((x0, x1, py + dy))
        ax.annotate(t, (x, y), xytext=(5, dy - 3), textcoords="offset points", fontsize=fontsize,
                    arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.5"} if dy else None)


SYMLOG_SPAN = 100.0  # paired differences spanning more than this ratio get a symlog y axis


def symlog_axis(ax, values, lows, highs) -> None:
    """Symmetric-log y axis for ``values`` (e.g. paired differences to a reference) whose
    magnitudes span decades: linear below the smallest non-zero magnitude (at most 2.5 decades
    of ``SYMLOG_SPAN`` below the largest), decade ticks labelled as plain numbers, limits from
    the interval ends ``lows`` / ``highs``."""
    from matplotlib.ticker import FixedLocator, FuncFormatter

    mags = [abs(v) for v in values if v is not None and np.isfinite(v) and v != 0]
    largest = max(mags) if mags else 1.0
    lin = max(min(mags) if mags else 1.0, largest / SYMLOG_SPAN ** 2.5)
    ax.set_yscale("symlog", linthresh=lin, linscale=0.5)
    lo = min([*lows, 0.0])
    hi = max([*highs, lin])
    bottom = -lin if lo > -lin else lo * 2.0
    top = hi * 2.0 if hi > lin else lin
    ax.set_ylim(bottom, top)
    d0 = int(np.floor(np.log10(lin)))
    if 10.0 ** d0 < 0.3 * lin:  # a tick this deep in the linear part would crowd the 0 tick
        d0 += 1
    dec = [10.0 ** k for k in range(d0, int(np.floor(np.log10(top))) + 1)]
    neg = [-v for v in dec if -v >= bottom]
    ax.yaxis.set_major_locator(FixedLocator(sorted(neg) + [0.0] + dec))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_locator(FixedLocator([]))


def metric_vs_bits(out: Path, flat, workload, ref_metric) -> Path:
    """Task metric vs weight bits per element. With per-sample results the y axis is the
    paired difference to the float model (its interval is what decides significance; the
    absolute intervals mostly show how much the evaluation samples differ)."""
    plt = _plt()
    ok = [r for r in flat if r["status"] == "ok" and r["metric"] is not None]
    higher = getattr(workload, "higher_is_better", True)
    paired = bool(ok) and all(r.get("delta_lo") is not None for r in ok)
    key, lok, hik = (("delta_vs_fp32", "delta_lo", "delta_hi") if paired
                     else ("metric", "metric_lo", "metric_hi"))
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    groups = sorted({(r["accum"], r["quantizer"]) for r in ok})
    markers = "osD^v<>"
    for i, g in enumerate(groups):
        pts = [r for r in ok if (r["accum"], r["quantizer"]) == g]
        x = np.array([r["bits_per_element"] for r in pts], float)
        x = x * (1 + 0.012 * (i - (len(groups) - 1) / 2))  # dodge groups horizontally
        yv = np.array([r[key] for r in pts], float)
        lo = np.array([r[lok] if r[lok] is not None else r[key] for r in pts], float)
        hi = np.array([r[hik] if r[hik] is not None else r[key] for r in pts], float)
        ax.errorbar(x, yv, yerr=[np.clip(yv - lo, 0, None), np.clip(hi - yv, 0, None)],
                    fmt=markers[i % len(markers)], ms=5, capsize=2, alpha=0.85,
                    label=f"accum {g[0]}, {g[1]}")
    if paired:
        ax.axhline(0.0, color="grey", ls="--", lw=0.8, label="float model")
    elif ref_metric is not None:
        ax.axhline(ref_metric, color="grey", ls="--", lw=0.8, label="float model")
    vals = [r[key] for r in ok]
    if not paired and not higher and _log_ok(vals):
        ax.set_yscale("log")
    ax.set_xscale("log", base=2)
    xt, last = [], None
    for v in sorted({r["bits_per_element"] for r in ok}):  # no two tick labels closer than 12%
        if last is None or v / last > 1.12:
            xt.append(v)
            last = v
    ax.set_xticks(xt, [f"{v:g}" for v in xt])
    ax.minorticks_off()
    log = ax.get_yscale() == "log"
    pos = [abs(v) for v in vals if v is not None and np.isfinite(v) and v != 0]
    symlog = paired and bool(pos) and max(pos) / min(pos) > SYMLOG_SPAN
    if symlog:  # differences over many decades: all points on a symmetric-log axis
        symlog_axis(ax, vals, [r[lok] for r in ok if r[lok] is not None] + vals,
                    [r[hik] for r in ok if r[hik] is not None] + vals)
        lo_, hi_, outl = None, None, [False] * len(vals)
    else:
        lo_, hi_, outl = core_range(vals, log)
    if lo_ is not None:
        ax.set_ylim(lo_, hi_)
        _mark_outliers(ax, vals, [r["bits_per_element"] for r in ok], outl, (lo_, hi_), "y",
                       [_short(r, flat) for r in ok])
    fig.canvas.draw()
    keep = [i for i in range(len(ok)) if not outl[i]]
    spread_labels([ok[i]["bits_per_element"] for i in keep], [ok[i][key] for i in keep],
                   [_short(ok[i], flat) for i in keep], ax)
    ax.set_xlabel("weight bits per element (incl. block scales)")
    better = "higher" if higher else "lower"
    ax.set_ylabel(f"Δ {workload.metric_name} vs float, paired 95% CI ({better} is better"
                  + ("; symlog)" if symlog else ")")
                  if paired else f"{workload.metric_name} ({better} is better)")
    ax.set_title(f"{workload.name}: {workload.metric_name} vs bits per element (95% intervals)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return save(fig, out / "metric_vs_bits.png")


def heatmap(out: Path, flat, workload) -> Path | None:
    plt = _plt()
    ok = [r for r in flat if r["status"] == "ok" and r["metric"] is not None]
    layers = [s.name for s in workload.layers()]
    if not ok or not layers:
        return None
    mat = np.array([[r["per_layer_sqnr"].get(n, np.nan) for n in layers] for r in ok], float)
    vmax = 60.0
    h = max(3.0, 0.3 * len(ok) + 1.8)
    w = max(5.0, 0.32 * len(layers) + 4.0)
    fig, ax = plt.subplots(figsize=(w, h))
    im = ax.imshow(np.clip(np.where(np.isposinf(mat), vmax, mat), 0, vmax), aspect="auto",
                   cmap="viridis", vmin=0, vmax=vmax)
    if mat.size <= 600:
        for (i, j), v in np.ndenumerate(mat):
            txt = "∞" if np.isposinf(v) else ("" if np.isnan(v) else f"{v:.0f}")
            ax.text(j, i, txt, ha="center", va="center", fontsize=6,
                    color="white" if (np.isfinite(v) and v < 35) else "black")
    ax.set_yticks(range(len(ok)), [_short(r, flat) for r in ok], fontsize=7)
    ax.set_xticks(range(len(layers)), layers, rotation=90, fontsize=7)
    fig.colorbar(im, ax=ax, label=f"dB (colour clipped at {vmax:g})")
    ax.set_title(f"{workload.name}: per-layer output SQNR vs float, dB (∞ = identical)",
                 fontsize=10)
    return save(fig, out / "sqnr_heatmap.png")


def write_plots(out_dir: Path, flat, workload, ref_metric, metric_names) -> dict[str, Path]:
    paths = {}
    if any(r["metrics"] for r in flat):
        paths["plot_fidelity"] = forest(out_dir, flat, workload, metric_names)
    paths["plot_metric"] = metric_vs_bits(out_dir, flat, workload, ref_metric)
    hm = heatmap(out_dir, flat, workload)
    if hm is not None:
        paths["plot_heatmap"] = hm
    return paths


__all__ = ["forest", "heatmap", "metric_vs_bits", "symlog_axis", "write_plots"]
