"""Block statistics and scale selection of the block engine (one row = one block).

:class:`RowStats` holds, per block, the largest finite magnitude and whether the block holds a NaN
or Inf (and the min / max for asymmetric INT); they combine exactly across column pieces of one
row (max / min), so the scales do not depend on how a tensor is traversed.
:func:`block_plan` turns them into a :class:`ScalePlan`: power-of-two exponents, general scale
values (and the tensor scale), or scales and zero points, by the format's ``scale_rule``:

* power-of-two rules (``floor`` / ``ceil`` / ``rceil`` / ``even``,
  :mod:`lowbit.formats.scale_rules`) -> exponent clamped to the scale format's range;
* ``"amax"`` -> ``s = amax / element.max`` (``/ tensor_scale``) rounded RNE (saturating) into the
  scale format; a nonzero block never gets scale 0 (raised to the smallest positive scale);
* ``"mse"`` -> the candidate (power-of-two exponents floor-1..floor+2, or amax scales times 1,
  0.95, ..., 0.5) with the least block squared error (needs the block's elements);
* a callable gets ``(amax, element)`` for every block of the tensor and returns scale values;
* asymmetric INT: ``s = fp32((hi - lo) / (qmax - qmin))`` with ``lo = min(x, 0)``,
  ``hi = max(x, 0)`` and zero point ``clip(rint(qmin - lo / s))``.

NVFP4 two-level scaling (``tensor_scale=True``, :func:`tensor_scale`): ``S = fp32(amax_tensor /
(element.max * scale.max))`` (6 * 448 for NVFP4) over the blocks without NaN / Inf, 1.0 for an
all-zero tensor, the smallest float32 subnormal if that underflows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lowbit.formats._lut import row_amax_f32
from lowbit.formats.convert import encode_element, quantize_element, run_encode
from lowbit.formats.scale_rules import POW2_RULES, exponent_range, pow2_exponent

MSE_FACTORS = np.linspace(1.0, 0.5, 11)
MSE_POW2_OFFSETS = (-1, 0, 1, 2)


@dataclass
class RowStats:
    """Per-block statistics of rows ``r0:r0 + len``: finite amax (0 for a bad block), bad flag,
    and the min / max (asymmetric formats)."""

    amax: np.ndarray
    bad: np.ndarray
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None

    @staticmethod
    def empty(n: int, asym: bool) -> "RowStats":
        return RowStats(np.zeros(n), np.zeros(n, bool), np.full(n, np.inf) if asym else None,
                        np.full(n, -np.inf) if asym else None)

    @staticmethod
    def of(rows: np.ndarray, asym: bool) -> "RowStats":
        """Statistics of the rows of a native float32 / float64 2-D array."""
        nr, k = rows.shape
        if rows.dtype == np.float32 and rows.size:
            bits = np.empty(nr, np.uint32)
            row_amax_f32.serial(rows.reshape(-1).view(np.uint32), nr, k, bits)
            bad = bits >= 0x7F800000
            amax = bits.view(np.float32).astype(np.float64)
        else:
            fin = np.isfinite(rows)
            bad = ~fin.all(axis=1) if k else np.zeros(nr, bool)
            amax = (np.abs(np.where(fin, rows, 0)).max(axis=1).astype(np.float64) if k
                    else np.zeros(nr))
        amax = np.where(bad, 0.0, amax)
        lo = hi = None
        if asym:
            z = np.where(bad[:, None], 0, rows)
            lo = (z.min(axis=1) if k else np.zeros(nr)).astype(np.float64)
            hi = (z.max(axis=1) if k else np.zeros(nr)).astype(np.float64)
        return RowStats(amax, bad, lo, hi)

    def merge(self, r0: int, other: "RowStats") -> None:
        """Combine ``other`` (rows ``r0:``, possibly a column piece) into these rows."""
        s = slice(r0, r0 + other.amax.shape[0])
        self.bad[s] |= other.bad
        self.amax[s] = np.where(self.bad[s], 0.0, np.maximum(self.amax[s], other.amax))
        if self.lo is not None:
            self.lo[s] = np.minimum(self.lo[s], other.lo)
            self.hi[s] = np.maximum(self.hi[s], other.hi)

    def rows(self, r0: int, r1: int) -> "RowStats":
        sl = slice(r0, r1)
        return RowStats(self.amax[sl], self.bad[sl],
                        None if self.lo is None else self.lo[sl],
                        None if self.hi is None else self.hi[sl])


@dataclass
class ScalePlan:
    """How the elements of some rows are scaled: ``e`` (power-of-two exponents), or ``s`` (scale
    values) with the tensor scale ``ts`` and, asymmetric, zero points ``zp``."""

    e: np.ndarray | None = None
    s: np.ndarray | None = None
    zp: np.ndarray | None = None
    ts: float | None = None

    @property
    def scales(self) -> np.ndarray:
        """Decoded block scales (float64)."""
        return np.ldexp(1.0, self.e) if self.e is not None else self.s

    @property
    def div(self) -> np.ndarray:
        """The float64 divisor of each row's elements (``s * ts``, 1 where that is 0)."""
        d = self.s * (self.ts if self.ts is not None else 1.0)
        return np.where(d == 0, 1.0, d)

    def rows(self, r0: int, r1: int) -> "ScalePlan":
        sl = slice(r0, r1)
        return ScalePlan(None if self.e is None else self.e[sl],
                         None if self.s is None else self.s[sl],
                         None if self.zp is None else self.zp[sl], self.ts)


def is_pow2(fmt) -> bool:
    """Whether the format's scales are powers of two chosen by a power-of-two rule (or mse over
    an exponent-only scale format)."""
    rule = fmt.scale_rule
    if not fmt.symmetric or not isinstance(rule, str):
        return False
    return rule in POW2_RULES or (rule == "mse" and fmt.scale is not None and fmt.scale.mbits == 0)


def tensor_scale(amax: np.ndarray, fmt) -> float:
    el = fmt.element
    t_amax = float(amax.max()) if amax.size else 0.0
    denom = float(el.max) * float(fmt.scale.max if fmt.scale is not None else 1.0)
    ts = float(np.float32(t_amax / denom)) if t_amax > 0 else 1.0
    return ts if ts != 0.0 else float(np.finfo(np.float32).smallest_subnormal)


def block_plan(stats: RowStats, fmt, ts, rows=None, kw=None, offset=0, k=None) -> ScalePlan:
    """The scales of the blocks described by ``stats``. ``rows`` (the blocks' elements, whole
    rows, bad rows zeroed), ``kw`` (conversion policies), ``offset`` (random index of the first
    element) and ``k`` (row length) are needed by the ``mse`` rule only."""
    el = fmt.element
    rule = fmt.scale_rule
    if not fmt.symmetric:
        return _asym(stats, el)
    if is_pow2(fmt):
        if rule == "mse":
            return ScalePlan(e=_mse_pow2(rows, stats.amax, fmt, kw, offset))
        return ScalePlan(e=clamp_exp(pow2_exponent(stats.amax, rule, el), fmt))
    if rule == "amax":
        return ScalePlan(s=_amax_scale(stats.amax, fmt, ts), ts=ts)
    if rule == "mse":
        return ScalePlan(s=_mse_amax(rows, stats.amax, fmt, ts, kw, offset), ts=ts)
    if callable(rule):
        raw = np.asarray(rule(stats.amax, el), dtype=np.float64).reshape(stats.amax.shape)
        return ScalePlan(s=store_scale(raw, fmt, stats.amax), ts=ts)
    raise ValueError(f"scale_rule {rule!r} needs a power-of-two scale format")


def clamp_exp(e, fmt):
    lo, hi = exponent_range(fmt.scale)
    return np.clip(e, lo, hi)


def scale_codes(scales, bad, scale_fmt):
    """Codes of the block scales in the scale format (its NaN code for a bad block)."""
    codes = encode_element(np.asarray(scales, dtype=np.float64), scale_fmt,
                           overflow="saturate", nan_input="zero")
    if scale_fmt.has_nan:
        codes = np.where(bad, scale_fmt.nan_code, codes).astype(codes.dtype)
    return codes


def _least_error(candidates):
    """Per block, the candidate scale of least squared error (the first one on a tie), from
    ``(scales, errors)`` pairs of arrays over the blocks."""
    best, best_err = None, None
    for cand, err in candidates:
        if best_err is None:
            best, best_err = cand, err
        else:
            better = err < best_err
            best_err = np.where(better, err, best_err)
            best = np.where(better, cand, best)
    return best


def _mse_pow2(rows, amax, fmt, kw, offset):
    base = pow2_exponent(amax, "floor", fmt.element)
    k = rows.shape[1]

    def candidates():
        for d in MSE_POW2_OFFSETS:
            e = clamp_exp(base + d, fmt)
            _, vals = run_encode(rows.reshape(-1), fmt.element, shift=e, rowlen=max(k, 1),
                                 want_values=True, offset=offset, **kw)
            yield e, ((np.ldexp(vals.reshape(rows.shape), e[:, None]) - rows) ** 2).sum(axis=1)
    return _least_error(candidates())


def store_scale(s, fmt, amax):
    """Round raw scales into the scale format (RNE, saturating); keep nonzero blocks nonzero."""
    if fmt.scale is None:
        q = s.astype(np.float32).astype(np.float64)
        tiny = float(np.finfo(np.float32).smallest_subnormal)
    else:
        q = quantize_element(np.asarray(s, dtype=np.float64), fmt.scale, rounding="rne",
                             overflow="saturate", nan_input="zero")
        tiny = fmt.scale.min_subnormal
    return np.where((q == 0) & (amax > 0), tiny, q)


def amax_quotient(amax, fmt, ts):
    """The raw ``"amax"`` scale ``fl64(fl64(amax / element.max) / ts)`` (float64; no division
    without a tensor scale), before :func:`store_scale` rounds it into the scale format."""
    s = np.asarray(amax, dtype=np.float64) / float(fmt.element.max)
    if ts is not None:
        s = s / ts
    return s


def _amax_scale(amax, fmt, ts):
    s = store_scale(amax_quotient(amax, fmt, ts), fmt, amax)
    if fmt.scale is None:
        s = np.where(amax > 0, s, 1.0)
    return s


def _mse_amax(rows, amax, fmt, ts, kw, offset):
    t = ts if ts is not None else 1.0

    def candidates():
        for f in MSE_FACTORS:
            s = store_scale(amax * f / float(fmt.element.max) / t, fmt, amax)
            if fmt.scale is None:
                s = np.where(amax > 0, s, 1.0)
            div = np.where(s == 0, 1.0, s) * t
            y = rows.astype(np.float64) / div[:, None]
            _, vals = run_encode(y.reshape(-1), fmt.element, want_values=True, offset=offset,
                                 **kw)
            yield s, ((vals.reshape(rows.shape) * div[:, None] - rows) ** 2).sum(axis=1)
    return _least_error(candidates())


def _asym(stats, el) -> ScalePlan:
    lo = np.minimum(stats.lo, 0.0)
    hi = np.maximum(stats.hi, 0.0)
    span = el.qmax - el.qmin
    s = ((hi - lo) / span).astype(np.float32).astype(np.float64)
    s = np.where(s > 0, s, 1.0)
    zp = np.clip(np.rint(el.qmin - lo / s), el.qmin, el.qmax).astype(np.int64)
    return ScalePlan(s=s, zp=zp)
