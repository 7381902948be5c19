"""Per-format and per-tensor tables of the NVFP4 amax pass (:mod:`lowbit.formats._arith_amax`,
whose docstring states the proof obligation): the element format's rounding boundaries and tie
directions, read from the exact kernel; the scale format's boundaries, read from the engine's
``store_scale``; per tensor, the float32 amax pattern where each scale code starts (certified
against the engine's ``amax_quotient``), the float32 patterns where each element code starts
under each scale code, the values, and the periodic form of the scale rule."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit

from lowbit.formats._arith import _bits_f32, _f32_bits
from lowbit.formats._arith_scaled import scaled_params
from lowbit.formats._codec import value_table
from lowbit.formats._simd import LANES, ROW
from lowbit.formats.block_scales import amax_quotient, scale_codes, store_scale
from lowbit.formats.convert import run_encode

F32_INF = 0x7F800000
F32_NAN = 0x7FC00000
F32_MAX = 0x7F7FFFFF
F32_MAX_VALUE = float(np.finfo(np.float32).max)
UNREACHED = 0xFFFFFFFF
"""Threshold of a scale code no finite amax reaches (padding of ``B``)."""
MAX_SCALE_BITS = 8
MAX_ELEMENT_BITS = 4
WALK_STEPS = 8
"""Steps from a threshold's estimate before a bisection takes over."""
K_SIGN_SH, K_SIGN_BIT, K_WINDOW, K_TOP, K_SCODE_NAN, K_TILE = range(6)
K_LEN = 6
P_SHIFT, P_OFFSET, P_CMAX, P_ELO, P_EHI = range(5)
P_LEN = 5
@dataclass(frozen=True)
class AmaxParams:
    """Per format and policy: the element's rounding boundaries and the scale format's values."""

    mids: np.ndarray    # float64 t_j (padded with inf up to ROW - 1 boundaries)
    strict: np.ndarray  # bool: magnitude >= j + 1 needs |y| > t_j (the tie at t_j rounds down)
    mags: np.ndarray    # float64 value of magnitude code n (ROW entries)
    svals: np.ndarray   # float64 value of scale codes 0..cmax (increasing from 0)
    sbeta: np.ndarray   # float64 scale boundaries beta_c, c = 2..cmax
    sup: np.ndarray     # bool: the raw scale beta_c itself rounds up to code c
    K: np.ndarray       # uint32 kernel constants (K_*; K_WINDOW set per tensor)


def amax_params(fmt, P, kw: dict) -> AmaxParams | None:
    """The element / scale constants of the fused pass for ``fmt`` under the conversion policies
    ``kw`` (kernel parameter vector ``P``), or None when the pass does not apply."""
    return _params(fmt, P.tobytes(), tuple(sorted((k, v) for k, v in kw.items() if k != "key")))


@lru_cache(maxsize=64)
def _params(fmt, P_bytes, kw_items):
    el, sf, bs = fmt.element, fmt.scale, fmt.block_size
    if fmt.scale_rule != "amax" or not fmt.symmetric or not isinstance(bs, int):
        return None
    if bs % LANES or sf is None or sf.kind != "float" or sf.bits > MAX_SCALE_BITS:
        return None
    if el.kind != "float" or not el.signed or el.bits > MAX_ELEMENT_BITS:
        return None
    if scaled_params(el, P_bytes) is None:
        return None
    kw = dict(kw_items)
    nmag = 1 << (el.bits - 1)
    mags = value_table(el)[:nmag].astype(np.float64)
    if not (mags[0] == 0 and np.all(np.diff(mags) > 0)):
        return None
    mids = (mags[:-1] + mags[1:]) / 2
    sign = 1 << (el.bits - 1)
    pts = np.concatenate([mids, np.nextafter(mids, -np.inf), np.nextafter(mids, np.inf), mags,
                          [2 * mags[-1], 1e300]])
    codes, _ = run_encode(np.concatenate([pts, -pts]), el, check=False, **kw)
    pos, neg = codes[:pts.size], codes[pts.size:]
    n = mids.size
    j = np.arange(n)
    tie, below, above = pos[:n], pos[n:2 * n], pos[2 * n:3 * n]
    if not (np.all(below == j) and np.all(above == j + 1) and np.all((tie == j) | (tie == j + 1))
            and np.all(pos[3 * n:3 * n + nmag] == np.arange(nmag))
            and np.all(pos[-2:] == nmag - 1) and np.all(neg == (pos | sign))):
        return None
    sc = _scale_boundaries(fmt)
    if sc is None:
        return None
    svals, sbeta, sup = sc
    K = np.zeros(K_LEN, np.uint32)
    K[K_SIGN_SH] = 31 - (el.bits - 1)
    K[K_SIGN_BIT] = sign
    K[K_TOP] = 1 << (sf.bits - 1)
    K[K_SCODE_NAN] = scale_codes(np.zeros(1), np.ones(1, bool), sf)[0]
    pad = ROW - 1 - n
    return AmaxParams(np.concatenate([mids, np.full(pad, np.inf)]),
                      np.concatenate([tie == j, np.zeros(pad, bool)]),
                      np.concatenate([mags, np.zeros(ROW - nmag)]), svals, sbeta, sup, K)


@lru_cache(maxsize=64)
def _scale_boundaries(fmt):
    """``(values of scale codes 0..cmax, boundaries beta_c and tie directions, c = 2..cmax)``
    of the engine's scale rounding (:func:`lowbit.formats.block_scales.store_scale`), read from
    that function itself and certified (module docstring), or None."""
    sf = fmt.scale
    svals = value_table(sf).astype(np.float64)
    with np.errstate(invalid="ignore"):
        cmax = int(np.nanargmax(np.where(np.isfinite(svals), svals, np.nan)))
    svals = svals[:cmax + 1]
    if cmax < 1 or svals[0] != 0 or not np.all(np.diff(svals) > 0):
        return None
    beta = (svals[1:-1] + svals[2:]) / 2  # between codes c - 1 and c, c = 2..cmax
    n = beta.size
    pts = np.concatenate([beta, np.nextafter(beta, -np.inf), np.nextafter(beta, np.inf),
                          svals[1:], [2 * svals[-1], 1e300, svals[1] / 4, 1e-300]])
    R = store_scale(pts, fmt, np.ones(pts.size))
    tie, below, above = R[:n], R[n:2 * n], R[2 * n:3 * n]
    codes = scale_codes(svals, np.zeros(svals.size, bool), sf)
    if not (np.array_equal(below, svals[1:-1]) and np.array_equal(above, svals[2:])
            and np.all((tie == svals[1:-1]) | (tie == svals[2:]))
            and np.array_equal(R[3 * n:3 * n + cmax], svals[1:])
            and np.all(R[-4:-2] == svals[-1]) and np.all(R[-2:] == svals[1])
            and np.array_equal(codes, np.arange(cmax + 1))):
        return None
    return svals, beta, tie == svals[2:]


@dataclass(frozen=True)
class AmaxTables:
    """Per tensor: scale thresholds ``B`` / ``BIN``, element thresholds ``thr`` and values
    ``vals`` (rows of :data:`ROW` per scale code), scale values, kernel constants."""

    B: np.ndarray
    BIN: np.ndarray
    thr: np.ndarray
    vals: np.ndarray
    svals: np.ndarray
    K: np.ndarray
    M: np.ndarray    # uint32 mantissa thresholds of the periodic rule (ROW, padded)
    PAR: np.ndarray  # uint32 P_* constants of the periodic rule


def amax_tables(fmt, prm: AmaxParams, ts) -> AmaxTables | None:
    """The tables of a tensor with tensor scale ``ts`` (None: no tensor scale), built by
    :func:`_build`; None when a scale threshold fails its certificate (never seen; the caller
    then takes the exact path)."""
    cmax = prm.svals.size - 1
    top = int(prm.K[K_TOP])
    tsv = 1.0 if ts is None else float(ts)
    B = np.full(2 * top + LANES + 1, UNREACHED, np.uint32)
    BIN = np.zeros(256, np.uint32)
    thr = np.full((cmax + 1) * ROW, UNREACHED, np.uint32)
    vals = np.zeros((cmax + 1) * ROW, np.uint32)
    M = np.full(ROW, UNREACHED, np.uint32)
    PAR = np.zeros(P_LEN, np.uint32)
    K = prm.K.copy()
    _build(prm.sbeta, prm.sup, float(fmt.element.max), tsv, ts is not None, prm.svals, prm.mids,
           prm.strict, prm.mags, fmt.scale.mbits, B, BIN, thr, vals, M, PAR, K)
    if not _certified(B[1:cmax + 1], prm, fmt, ts):
        return None
    return AmaxTables(B, BIN, thr, vals, prm.svals, K, M, PAR)


def _certified(B, prm: AmaxParams, fmt, ts) -> bool:
    """Every ``B[c]`` (c >= 2) reaches ``beta_c`` under the engine's raw scale
    (:func:`lowbit.formats.block_scales.amax_quotient`) and the pattern below it does not; an
    unreached ``B[c]`` means the largest finite float32 does not reach it; ``B[1] = 1``."""
    Bc = B[1:].astype(np.int64)
    fin = Bc < F32_INF
    pts = np.concatenate([Bc[fin], Bc[fin] - 1, [F32_MAX]])
    g = amax_quotient(pts.astype(np.uint32).view(np.float32).astype(np.float64), fmt, ts)
    n = int(fin.sum())
    beta, up = prm.sbeta, prm.sup

    def reaches(gv, b, u):
        return (gv > b) | (u & (gv == b))
    return bool(B[0] == 1 and np.all(reaches(g[:n], beta[fin], up[fin]))
                and not np.any(reaches(g[n:2 * n], beta[fin], up[fin]))
                and not np.any(reaches(g[-1], beta[~fin], up[~fin])))


@njit(cache=True)
def _f32_bits_at_or_above(m, strict):
    """Pattern of the smallest float32 ``> m`` (``strict``) or ``>= m``, ``m >= 0`` float64;
    ``0x7F800000`` when no finite float32 qualifies."""
    if m > F32_MAX_VALUE:
        return np.uint32(F32_INF)
    f = np.float32(m)  # round to nearest even
    b = _f32_bits(f)
    f64 = np.float64(f)
    if f64 < m or (strict and f64 == m):
        b += np.uint32(1)
    return b


@njit(cache=True)
def _raw_scale(bits, el_max, tsv, has_ts):
    """The engine's raw scale of the float32 amax pattern ``bits`` (the same two IEEE
    divisions as :func:`lowbit.formats.block_scales.amax_quotient`; certified after)."""
    a = np.float64(_bits_f32(np.uint32(bits)))
    q = a / el_max
    return q / tsv if has_ts else q


@njit(cache=True)
def _build(beta, up, el_max, tsv, has_ts, svals, mids, strict, mags, mbits, B, BIN, thr, vals,
           M, PAR, K):
    """Fill ``B`` (scale thresholds, ``B[0] = 0``, ``B[1] = 1``), ``BIN``, ``thr`` / ``vals``
    (rows of :data:`ROW` per scale code), ``K[K_WINDOW]`` and the periodic rule ``M`` /
    ``PAR`` / ``K[K_TILE]`` of :class:`AmaxTables` (module docstring)."""
    cmax = svals.shape[0] - 1
    B[0] = 0
    B[1] = 1
    for i in range(beta.shape[0]):  # B[c], c = i + 2: smallest pattern reaching beta_c
        a = np.int64(_f32_bits_at_or_above(beta[i] * el_max * tsv, False))
        a = min(max(a, 1), F32_MAX + 1)
        found = False
        for _ in range(WALK_STEPS):  # the estimate is within a step or two
            if a > 1 and _reaches(_raw_scale(a - 1, el_max, tsv, has_ts), beta[i], up[i]):
                a -= 1
            elif a <= F32_MAX and not _reaches(_raw_scale(a, el_max, tsv, has_ts), beta[i],
                                               up[i]):
                a += 1
            else:
                found = True
                break
        if not found:  # bisection between 0 (never reaches) and one past the largest finite
            lo, a = np.int64(0), np.int64(F32_MAX + 1)
            while a - lo > 1:
                mid = (lo + a) // 2
                if _reaches(_raw_scale(mid, el_max, tsv, has_ts), beta[i], up[i]):
                    a = mid
                else:
                    lo = mid
        B[i + 2] = np.uint32(min(a, F32_INF))
    Bs = B[1:cmax + 1]
    window = 0
    for e in range(256):
        BIN[e] = np.searchsorted(Bs, np.uint32(e << 23))
        if e >= 2:
            window = max(window, np.int64(BIN[e]) - np.int64(BIN[e - 1]))
    K[K_WINDOW] = window <= LANES
    for c in range(cmax + 1):
        d = svals[c] * tsv
        div = 1.0 if d == 0 else d
        for j in range(ROW - 1):
            thr[c * ROW + j] = _f32_bits_at_or_above(mids[j] * div, strict[j])
        for n in range(ROW):
            v = mags[n] * svals[c]
            if has_ts:
                v = v * tsv
            vals[c * ROW + n] = _f32_bits(np.float32(v))
    _periodic(Bs, BIN, cmax, mbits, M, PAR)
    K[K_TILE] = PAR[P_ELO] <= PAR[P_EHI]


@njit(cache=True)
def _reaches(g, b, u):
    return g > b or (u and g == b)


@njit(cache=True)
def _periodic(Bs, BIN, cmax, mbits, M, PAR):
    """The periodic rule of :func:`lowbit.formats._simd.vperiodic_codes16`: over the float32
    binades ``e`` in ``[PAR[P_ELO], PAR[P_EHI]]`` the scale code of an amax is ``min((e <<
    mbits) + offset + #{j : mant >= M[j]}, cmax)`` (a scale format has ``2**mbits`` codes per
    binade and its thresholds repeat one float32 binade apart). Checked against ``Bs`` on every
    binade at its start, at every ``M[j]`` and at every threshold in it (both are step
    functions that change only there); the range is the run of binades around a reference
    binade where it holds (empty, ``ELO > EHI``, when none does)."""
    PAR[P_ELO], PAR[P_EHI] = 1, 0
    period = 1 << mbits
    if period > ROW or cmax <= 2 * period:
        return
    e_ref = np.int64(Bs[cmax - 1 - period]) >> 23
    if not 1 <= e_ref <= 254:
        return
    lo = np.searchsorted(Bs, np.uint32(e_ref << 23))
    hi = np.searchsorted(Bs, np.uint32((e_ref + 1) << 23))
    if hi - lo != period:
        return
    for j in range(period):
        M[j] = Bs[lo + j] & np.uint32(0x7FFFFF)
    offset = np.int64(BIN[e_ref]) - (e_ref << mbits)
    ok = np.zeros(256, np.bool_)
    for e in range(1, 255):
        good = True
        b0 = np.searchsorted(Bs, np.uint32(e << 23))
        b1 = np.searchsorted(Bs, np.uint32((e + 1) << 23))
        for t in range(-1, period + b1 - b0):
            if t < 0:
                p = np.int64(e) << 23
            elif t < period:
                p = (np.int64(e) << 23) + np.int64(M[t])
            else:
                p = np.int64(Bs[b0 + t - period])
            true = np.searchsorted(Bs, np.uint32(p), side="right")
            cnt = np.searchsorted(M[:period], np.uint32(p & 0x7FFFFF), side="right")
            if min((np.int64(e) << mbits) + offset + cnt, cmax) != true:
                good = False
                break
        ok[e] = good
    if not ok[e_ref]:
        return
    e_lo, e_hi = e_ref, e_ref
    while ok[e_lo - 1]:
        e_lo -= 1
    while ok[e_hi + 1]:
        e_hi += 1
    PAR[P_SHIFT], PAR[P_OFFSET], PAR[P_CMAX] = mbits, offset & 0xFFFFFFFF, cmax
    PAR[P_ELO], PAR[P_EHI] = e_lo, e_hi
