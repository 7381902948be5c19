"""Seeded bootstrap confidence intervals and paired bootstrap tests for ratio statistics.

Every fidelity / task metric of a workload is a *ratio statistic* over its evaluation samples
(:class:`lowbit.sim.fidelity.SampleMetric`): per sample ``i`` a numerator ``a_i`` and a
denominator ``b_i``, and the metric is ``T(sum_i a_i / sum_i b_i)`` with ``T`` the identity
(means, rates), ``exp`` (perplexity = exp of the mean NLL per token) or ``10 log10`` (SQNR =
signal energy over noise energy, in dB). A sample is the unit that is resampled: one image, one
sentence, one 128-byte text window (tokens inside a window are correlated, so the window is
the unit: a cluster bootstrap).

Method (Efron & Tibshirani 1993, ch. 13 and 16):

* Resamples: ``B`` (default 2000) multinomial count vectors ``c_b`` over the ``n`` samples from
  ``numpy.random.default_rng(seed)`` (default seed 0); the b-th replicate of a metric is
  ``T(c_b . a / c_b . b)``. The counts depend only on ``(n, B, seed)``, so every format of a
  sweep is resampled on the same samples: differences between formats are *paired*.
* 95% interval: percentile interval, the order statistics just below the 2.5% and just above
  the 97.5% quantile of the replicates (``numpy.quantile`` methods "lower" / "higher",
  conservative, and defined when replicates are infinite, e.g. an exact SQNR).
* Paired difference of two metrics on the same samples: replicates ``d_b = m_A(c_b) -
  m_B(c_b)``, percentile interval of ``d_b``, two-sided p-value ``min(1, 2 min(P(d_b <= 0),
  P(d_b >= 0)))`` (the smallest level at which the percentile interval excludes 0). A
  difference is *significant* when that interval excludes 0; several comparisons are corrected
  with Holm's step-down method (:func:`holm`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

N_BOOT = 2000
SEED = 0
LEVEL = 0.95
TRANSFORMS = ("ratio", "exp", "db")


@lru_cache(maxsize=16)
def bootstrap_counts(n: int, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(n_boot, n) float64 multinomial resample counts (each row sums to n); read-only."""
    if n < 1 or n_boot < 1:
        raise ValueError(f"bootstrap_counts: need n >= 1 and n_boot >= 1, got {n}, {n_boot}")
    rng = np.random.default_rng(seed)
    c = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    c.setflags(write=False)
    return c


def apply_transform(ratio, transform: str):
    """``T(ratio)`` elementwise: identity, ``exp`` or ``10 log10`` (dB; 0 noise -> +inf)."""
    r = np.asarray(ratio, dtype=np.float64)
    if transform == "ratio":
        return r
    if transform == "exp":
        return np.exp(r)
    if transform == "db":
        with np.errstate(divide="ignore"):
            return 10.0 * np.log10(r)
    raise ValueError(f"transform={transform!r}; allowed: {', '.join(TRANSFORMS)}")


def _ratio(num, den):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / np.where(den != 0, den, 1.0),
                        np.where(num > 0, np.inf, np.nan))


def point_value(num, den, transform: str) -> float:
    """``T(sum num / sum den)`` (float)."""
    return float(apply_transform(_ratio(np.sum(num), np.sum(den)), transform))


def replicates(num, den, transform: str, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(n_boot,) bootstrap replicates of ``T(sum num / sum den)``."""
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    if num.shape != den.shape or num.ndim != 1:
        raise ValueError(f"num {num.shape} and den {den.shape} must be equal 1-D shapes")
    c = bootstrap_counts(len(num), n_boot, seed)
    return apply_transform(_ratio(c @ num, c @ den), transform)


def percentile_interval(reps, level: float = LEVEL) -> tuple[float, float]:
    """Conservative percentile interval of replicates (NaN replicates dropped)."""
    r = np.asarray(reps, np.float64)
    r = r[~np.isnan(r)]
    if r.size == 0:
        return float("nan"), float("nan")
    a = (1.0 - level) / 2.0
    return (float(np.quantile(r, a, method="lower")),
            float(np.quantile(r, 1.0 - a, method="higher")))


def ci(num, den, transform: str, level: float = LEVEL, n_boot: int = N_BOOT,
       seed: int = SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of ``T(sum num / sum den)``."""
    return percentile_interval(replicates(num, den, transform, n_boot, seed), level)


def _diff(ra, rb):
    with np.errstate(invalid="ignore"):
        d = ra - rb
    return np.where((ra == rb), 0.0, d)  # inf - inf of two exact results is no difference


def paired_difference(a: tuple, b: tuple, transform: str, level: float = LEVEL,
                      n_boot: int = N_BOOT, seed: int = SEED) -> dict:
    """Paired bootstrap of ``metric(a) - metric(b)`` with ``a = (num, den)`` and ``b`` on the
    same samples. Returns ``{"diff", "lo", "hi", "p", "significant"}``."""
    if len(a[0]) != len(b[0]):
        raise ValueError(f"paired_difference: {len(a[0])} vs {len(b[0])} samples; the two "
                         "metrics must be measured on the same samples")
    ra = replicates(a[0], a[1], transform, n_boot, seed)
    rb = replicates(b[0], b[1], transform, n_boot, seed)
    d = _diff(ra, rb)
    d = d[~np.isnan(d)]
    point = float(_diff(np.array([point_value(*a, transform)]),
                        np.array([point_value(*b, transform)]))[0])
    lo, hi = percentile_interval(d, level)
    if d.size == 0:
        p = float("nan")
    else:
        p = float(min(1.0, 2.0 * min(np.mean(d <= 0), np.mean(d >= 0))))
    return {"diff": point, "lo": lo, "hi": hi, "p": p,
            "significant": bool(d.size and (lo > 0 or hi < 0))}


def holm(pvalues, alpha: float = 1.0 - LEVEL) -> list[bool]:
    """Holm (1979) step-down rejections for a family of p-values at family-wise level
    ``alpha``; NaN p-values are never rejected."""
    p = np.asarray(pvalues, np.float64)
    order = np.argsort(np.where(np.isnan(p), np.inf, p), kind="stable")
    m = len(p)
    reject = np.zeros(m, bool)
    for rank, i in enumerate(order):
        if np.isnan(p[i]) or p[i] > alpha / (m - rank):
            break
        reject[i] = True
    return reject.tolist()
