"""Edge-heavy input generators for kernel validation (used by ``lowbit.kernels.validate`` and the
benchmarks; the tests carry their own copy built from ml_dtypes).

Every generator returns float32 arrays covering: every representable value of the element
format, every rounding midpoint and its two float32 neighbours (at several block scales),
values beyond the max, NaN, ±Inf, zeros and float32 subnormals.
"""
from __future__ import annotations

import numpy as np

_EMAX = {"fp8_e4m3": 8, "fp8_e5m2": 15, "fp4_e2m1": 2}
_MX_ELEM = {"mxfp8": "fp8_e4m3", "mxfp8_e4m3": "fp8_e4m3", "mxfp8_e5m2": "fp8_e5m2",
            "mxfp4": "fp4_e2m1"}


def pos_values(elem: str) -> np.ndarray:
    """Distinct non-negative finite values of the element format (from lowbit.formats)."""
    from lowbit.formats import get_format
    v = np.asarray(get_format(elem).values(), dtype=np.float64)
    return np.unique(v[np.isfinite(v) & (v >= 0)])


def boundary_values(elem: str, scale_exp: int = 0) -> np.ndarray:
    v = pos_values(elem)
    mids = (v[1:] + v[:-1]) / 2
    top = v[-1] - v[-2]
    extra = v[-1] + np.array([top / 2, top / 2 + top / 8, top, v[-1], 3 * v[-1]])
    x = np.ldexp(np.concatenate([v, mids, extra]), scale_exp).astype(np.float32)
    m32 = np.ldexp(mids, scale_exp).astype(np.float32)
    nb = np.concatenate([np.nextafter(m32, np.float32(np.inf)), np.nextafter(m32, np.float32(0))])
    x = np.concatenate([x, nb])
    return np.concatenate([x, -x]).astype(np.float32)


def fp8_vector(elem: str) -> np.ndarray:
    sp = np.array([np.nan, np.inf, 1e38, 3.4028235e38, 1e-45, 1e-40, 2.0 ** -126, 0.0],
                  np.float32)
    return np.concatenate([boundary_values(elem), sp, -sp]).astype(np.float32)


def mx_matrix(fmt: str, scale_exps=(-127, -100, -3, 0, 17, 100), seed=7) -> np.ndarray:
    """(rows, 32) blocks: [max_elem * 2^t, 31 edge values at scale 2^t] (FLOOR and RCEIL both
    give X = 2^t), FLOOR-clipping blocks, and special blocks (zero, NaN, ±Inf, subnormal)."""
    elem = _MX_ELEM[fmt]
    mx = pos_values(elem)[-1]
    blocks = []
    for t in scale_exps:
        if mx * 2.0 ** t > 3.4e38:
            continue
        vals = boundary_values(elem, t)
        vals = vals[np.abs(vals) <= mx * 2.0 ** t]
        vals = np.concatenate([vals, np.zeros((-len(vals)) % 31, np.float32)]).reshape(-1, 31)
        pin = np.full((len(vals), 1), mx * 2.0 ** t, np.float32)
        blocks.append(np.concatenate([pin, vals], axis=1))
        clip = np.linspace(mx, 2.0 ** (_EMAX[elem] + 1) * 0.999, 32) * 2.0 ** t
        blocks.append(clip.astype(np.float32)[None, :])
    rng = np.random.default_rng(seed)
    sp = rng.standard_normal((6, 32)).astype(np.float32)
    sp[0] = 0
    sp[1, 5] = np.nan
    sp[2, 9] = np.inf
    sp[3, 0] = -np.inf
    sp[4] = np.float32(1e-45) * np.arange(32)
    sp[5] *= np.float32(1e-39)
    blocks.append(sp)
    return np.concatenate(blocks).astype(np.float32)


def nvfp4_matrix(seed=7) -> np.ndarray:
    """(rows, 16) NVFP4 blocks with tensor amax 2688 (S = 1): block maxima 6*s_b for several
    UE4M3 scales, elements at every E2M1 value / midpoint / float32 neighbour of it."""
    v = pos_values("fp4_e2m1")
    mids = (v[1:] + v[:-1]) / 2
    rows = []
    for sb in (448.0, 1.0, 0.0625, 2.0 ** -9, 13.0):
        vals = (np.concatenate([v, mids]) * sb).astype(np.float32)
        allv = np.concatenate([vals, np.nextafter(vals, np.float32(np.inf)),
                               np.nextafter(vals, np.float32(0)), -vals])
        allv = allv[np.abs(allv) <= 6 * sb]
        allv = np.concatenate([allv, np.zeros((-len(allv)) % 15, np.float32)]).reshape(-1, 15)
        rows.append(np.concatenate([np.full((len(allv), 1), 6 * sb, np.float32), allv], axis=1))
    rng = np.random.default_rng(seed)
    sp = rng.standard_normal((4, 16)).astype(np.float32)
    sp[0, 3] = np.nan
    sp[1] = 0
    sp[2] *= np.float32(1e-40)
    sp[3, 0] = -np.inf
    x = np.concatenate(rows + [sp])
    x[0, 0] = 2688.0
    return x.astype(np.float32)
