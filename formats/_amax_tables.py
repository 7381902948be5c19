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

from lowbit.formats._arith_scaled import scaled_params
from lowbit.formats._codec import value_table
from lowbit.formats._simd import LANES, ROW
from lowbit.formats.block_scales import amax_quotient, scale_codes, store_scale
from lowbit.formats.convert import run_encode

F32_INF = 0x7F800000
F32_NAN = 0x7FC00000
F32_MAX = 0x7F7FFFFF
UNREACHED = 0xFFFFFFFF
"""Threshold of a scale code no finite amax reaches (padding of ``B``)."""
MAX_SCALE_BITS = 8
MAX_ELEMENT_BITS = 4
ESTIMATE_STEPS = 2
"""Float32 patterns either side of a threshold's estimate evaluated by the engine's function."""
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


def f32_at_or_above(m: np.ndarray, strict: np.ndarray) -> np.ndarray:
    """uint32 pattern of the smallest float32 ``> m`` (``strict``) or ``>= m`` (``m >= 0``
    float64); ``0x7F800000`` when no finite float32 qualifies."""
    f = np.minimum(m, np.finfo(np.float32).max).astype(np.float32)
    f64 = f.astype(np.float64)
    up = (f64 < m) | (strict & (f64 == m))
    return f.view(np.uint32) + up.astype(np.uint32)


def amax_tables(fmt, prm: AmaxParams, ts) -> AmaxTables | None:
    """The tables of a tensor with tensor scale ``ts`` (None: no tensor scale); None when a
    scale threshold cannot be certified (never seen; the caller takes the exact path)."""
    B = _scale_thresholds(fmt, prm, ts)
    if B is None:
        return None
    cmax = prm.svals.size - 1
    top = int(prm.K[K_TOP])
    Bt = np.full(2 * top + LANES + 1, UNREACHED, np.uint32)
    Bt[0] = 0
    Bt[1:cmax + 1] = B
    binade = np.arange(256, dtype=np.uint64) << np.uint64(23)
    BIN = np.searchsorted(B, binade, side="left").astype(np.uint32)
    K = prm.K.copy()
    K[K_WINDOW] = int(np.diff(BIN[1:]).max(initial=0)) <= LANES
    s = prm.svals
    d = s * (1.0 if ts is None else ts)
    div = np.where(d == 0, 1.0, d)
    thr = np.full((s.size, ROW), UNREACHED, np.uint32)
    thr[:, :ROW - 1] = f32_at_or_above(prm.mids[None, :] * div[:, None], prm.strict[None, :])
    v = prm.mags[None, :] * s[:, None]
    if ts is not None:
        v = v * ts
    vals = np.ascontiguousarray(v.astype(np.float32)).view(np.uint32)
    M, PAR = _periodic_rule(B, BIN, cmax, fmt.scale.mbits)
    K[K_TILE] = PAR[P_ELO] <= PAR[P_EHI]
    return AmaxTables(Bt, BIN, thr.reshape(-1), vals.reshape(-1), s, K, M, PAR)


def _periodic_rule(B, BIN, cmax, mbits):
    """``(M, PAR)`` of :func:`lowbit.formats._simd.vperiodic_codes16`: over the float32 binades
    ``e`` in ``[PAR[P_ELO], PAR[P_EHI]]`` the scale code of an amax is ``min((e << mbits) +
    offset + #{j : mant >= M[j]}, cmax)`` (a scale format has ``2**mbits`` codes per binade
    and its thresholds repeat one float32 binade apart). Checked against the thresholds ``B``
    on every binade at its start, at every ``M[j]`` and at every threshold in it (both are
    step functions that only change there); the range is the longest run of binades where the
    rule holds around a reference binade (empty, ``ELO > EHI``, when none does)."""
    M = np.full(ROW, UNREACHED, np.uint32)
    PAR = np.zeros(P_LEN, np.uint32)
    PAR[P_ELO], PAR[P_EHI] = 1, 0
    period = 1 << mbits
    Bi = B.astype(np.int64)
    if period > ROW or cmax <= 2 * period:
        return M, PAR
    e_ref = int(Bi[cmax - 1 - period] >> 23)
    inside = Bi[(Bi >> 23) == e_ref]
    if not 1 <= e_ref <= 254 or inside.size != period:
        return M, PAR
    M[:period] = inside & 0x7FFFFF
    offset = int(BIN[e_ref]) - (e_ref << mbits)
    e = np.arange(1, 255)
    Mi = M[:period].astype(np.int64)
    pts = [(e << 23)[:, None], (e << 23)[:, None] + Mi[None, :]]
    lo = np.searchsorted(Bi, e << 23, side="left")
    hi = np.searchsorted(Bi, (e + 1) << 23, side="left")
    width = int((hi - lo).max(initial=0))
    if width:  # the thresholds inside each binade (its start where it has fewer)
        j = lo[:, None] + np.arange(width)[None, :]
        pts.append(np.where(j < hi[:, None], Bi[np.minimum(j, Bi.size - 1)], (e << 23)[:, None]))
    pts = np.concatenate(pts, axis=1)
    true = np.searchsorted(Bi, pts, side="right")
    cnt = np.searchsorted(Mi, pts & 0x7FFFFF, side="right")
    rule = np.minimum((e[:, None] << mbits) + offset + cnt, cmax)
    ok = np.concatenate([[False], np.all(rule == true, axis=1), [False]])  # binades 0..255
    if not ok[e_ref]:
        return M, PAR
    e_lo, e_hi = e_ref, e_ref
    while ok[e_lo - 1]:
        e_lo -= 1
    while ok[e_hi + 1]:
        e_hi += 1
    PAR[P_SHIFT], PAR[P_OFFSET], PAR[P_CMAX] = mbits, offset & 0xFFFFFFFF, cmax
    PAR[P_ELO], PAR[P_EHI] = e_lo, e_hi
    return M, PAR


def _scale_thresholds(fmt, prm: AmaxParams, ts):
    """``B[c]`` (uint32) for c = 1..cmax, certified as the module docstring says, or None."""
    beta, up = prm.sbeta, prm.sup
    g_of = _quotient_of(fmt, ts)
    est = f32_at_or_above(beta * float(fmt.element.max) * (1.0 if ts is None else ts),
                          np.zeros(beta.size, bool)).astype(np.int64)
    steps = np.arange(-ESTIMATE_STEPS, ESTIMATE_STEPS + 1)
    pts = np.unique(np.concatenate([(est[:, None] + steps).ravel(), [0, 1, F32_MAX]]))
    pts = pts[(pts >= 0) & (pts <= F32_MAX)]
    g = g_of(pts)
    if np.any(np.diff(g) < 0) or g[0] != 0:
        return None
    idx = np.where(up, np.searchsorted(g, beta, side="left"),
                   np.searchsorted(g, beta, side="right"))  # first point that reaches beta_c
    hit = idx < pts.size
    hi = np.full(beta.size, F32_INF, np.int64)  # no finite pattern reaches c (F32_MAX fails)
    hi[hit] = pts[idx[hit]]
    lo = np.where(hit, pts[np.maximum(idx - 1, 0)], 0)
    open_ = hit & (hi - lo > 1)
    while open_.any():  # bisection between a point that fails and one that reaches beta_c
        mid = (lo[open_] + hi[open_]) // 2
        gm, b = g_of(mid), beta[open_]
        ok = (gm > b) | (up[open_] & (gm == b))
        hi[open_] = np.where(ok, mid, hi[open_])
        lo[open_] = np.where(ok, lo[open_], mid)
        open_ = hit & (hi - lo > 1)
    return np.concatenate([[1], hi]).astype(np.uint32)  # B[1]: every nonzero amax


def _quotient_of(fmt, ts):
    """float32 patterns -> the engine's raw scale of that amax (:func:`amax_quotient`)."""
    def g(bits):
        return amax_quotient(bits.astype(np.uint32).view(np.float32).astype(np.float64), fmt, ts)
    return g
