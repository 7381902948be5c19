"""Which sweep results differ beyond their confidence intervals (paired bootstrap).

Every point's result carries per-sample numerators / denominators of each metric
(:class:`lowbit.sim.fidelity.SampleMetric`); all points of a workload are evaluated on the same
samples and resampled with the same seeded counts, so differences are paired
(:mod:`lowbit.sim.stats`). Three questions:

* vs float: ``metric(point) - metric(float reference)`` with its 95% interval; *distinguishable*
  when the interval excludes 0. The float reference's KL is 0, agreement 1 and SQNR +inf by
  definition, so only the task metric (top-1, perplexity, cosine ...) is compared this way; the
  family of comparisons (one per point) is also reported Holm-corrected.
* pairwise: every pair of points on the task metric; significant pairs after Holm correction
  over all pairs.
* a named pair (e.g. mxfp4 vs nvfp4) on every metric.
"""

from __future__ import annotations

import itertools

from ..fidelity import SampleMetric
from ..stats import holm


def sample_metrics(result: dict) -> dict:
    """``{name: SampleMetric}`` from a stored point result (empty if it has none)."""
    return {k: SampleMetric.from_json(v) for k, v in (result.get("samples") or {}).items()}


def label(row: dict) -> str:
    """``format / accum / quantizer`` (only the parts that vary are worth showing, but the
    label is unique)."""
    return f"{row['format']} / {row['accum']} / {row['quantizer']}"


def vs_reference(rows: list[dict], reference: dict, metric: str) -> list[dict]:
    """Per row: ``{"label", "diff", "lo", "hi", "p", "significant", "holm"}`` of ``metric``
    against the float reference's per-sample values (``reference[metric]`` SampleMetric);
    rows without samples get None."""
    ref = reference.get(metric)
    out = []
    for r in rows:
        m = sample_metrics(r.get("result") or {}).get(metric)
        if ref is None or m is None or m.n != ref.n:
            out.append(None)
            continue
        out.append({"label": label(r), **m.compare(ref)})
    ps = [o["p"] for o in out if o is not None]
    rej = iter(holm(ps))
    for o in out:
        if o is not None:
            o["holm"] = next(rej)
    return out


def pairwise(rows: list[dict], metric: str) -> list[dict]:
    """All pairs (i < j) of rows with samples: ``{"a", "b", "diff" (a - b), "lo", "hi", "p",
    "significant", "holm"}``."""
    ms = [(label(r), sample_metrics(r.get("result") or {}).get(metric)) for r in rows]
    ms = [(lab, m) for lab, m in ms if m is not None]
    out = []
    for (la, ma), (lb, mb) in itertools.combinations(ms, 2):
        if ma.n == mb.n:
            out.append({"a": la, "b": lb, **ma.compare(mb)})
    for o, rej in zip(out, holm([o["p"] for o in out])):
        o["holm"] = rej
    return out


def named_pair(rows: list[dict], fmt_a: str, fmt_b: str) -> list[dict]:
    """``fmt_a`` vs ``fmt_b`` on every metric, for each (accum, quantizer) both appear with."""
    by = {(r["format"], r["accum"], r["quantizer"]): r for r in rows}
    out = []
    for (f, acc, q), ra in by.items():
        rb = by.get((fmt_b, acc, q))
        if f != fmt_a or rb is None:
            continue
        ma, mb = sample_metrics(ra.get("result") or {}), sample_metrics(rb.get("result") or {})
        for name in ma:
            if name in mb and ma[name].n == mb[name].n:
                out.append({"accum": acc, "quantizer": q, "metric": name,
                            "a": ma[name].value, "b": mb[name].value, **ma[name].compare(mb[name])})
    return out
