"""Edge-heavy input generators for kernel validation (used by ``lowbit.kernels.validate`` and the
benchmarks; the tests carry their own copy built from ml_dtypes).

Every generator returns float32 arrays covering: every representable value of the element
format, every rounding midpoint and its two float32 neighbours (at several block scales),
values beyond the max, NaN, ±Inf, zeros and float32 subnormals.
"""
from __future__ import annotations

import numpy as np

from lowbit.formats import resolve

from . import spec as S


def pos_values(elem) -> np.ndarray:
    """Distinct non-negative finite values of the element format (from lowbit.formats)."""
    v = np.asarray(resolve(elem, kind="float").values(), dtype=np.float64)
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


def mx_matrix(fmt, scale_exps=(-127, -100, -3, 0, 17, 100), seed=7) -> np.ndarray:
    """(rows, block) blocks: [max_elem * 2^t, block-1 edge values at scale 2^t] (FLOOR and RCEIL
    both give X = 2^t), FLOOR-clipping blocks, and special blocks (zero, NaN, ±Inf,
    subnormal)."""
    m = S.mx_spec(fmt)
    elem, bs = m.elem.fmt, m.block
    mx = pos_values(elem)[-1]
    blocks = []
    for t in scale_exps:
        if mx * 2.0 ** t > 3.4e38:
            continue
        vals = boundary_values(elem, t)
        vals = vals[np.abs(vals) <= mx * 2.0 ** t]
        vals = np.concatenate([vals, np.zeros((-len(vals)) % (bs - 1), np.float32)])
        vals = vals.reshape(-1, bs - 1)
        pin = np.full((len(vals), 1), mx * 2.0 ** t, np.float32)
        blocks.append(np.concatenate([pin, vals], axis=1))
        clip = np.linspace(mx, 2.0 ** (elem.emax + 1) * 0.999, bs) * 2.0 ** t
        blocks.append(clip.astype(np.float32)[None, :])
    rng = np.random.default_rng(seed)
    sp = rng.standard_normal((6, bs)).astype(np.float32)
    sp[0] = 0
    sp[1, 5] = np.nan
    sp[2, 9] = np.inf
    sp[3, 0] = -np.inf
    sp[4] = np.float32(1e-45) * np.arange(bs)
    sp[5] *= np.float32(1e-39)
    blocks.append(sp)
    return np.concatenate(blocks).astype(np.float32)


def nvfp4_matrix(seed=7, fmt="nvfp4") -> np.ndarray:
    """(rows, block) NVFP4 blocks with tensor amax elem.max*scale.max (2688: S = 1): block
    maxima elem.max*s_b for several block scales (the scale's max, 1, 2^-4, its smallest
    subnormal, 13), elements at every element value / midpoint / float32 neighbour of it."""
    sp_ = S.nvfp4_spec(fmt)
    bs, emax = sp_.block, sp_.elem.max
    v = pos_values(sp_.elem.fmt)
    mids = (v[1:] + v[:-1]) / 2
    rows = []
    for sb in (sp_.scale.max, 1.0, 0.0625, sp_.scale.fmt.min_subnormal, 13.0):
        vals = (np.concatenate([v, mids]) * sb).astype(np.float32)
        allv = np.concatenate([vals, np.nextafter(vals, np.float32(np.inf)),
                               np.nextafter(vals, np.float32(0)), -vals])
        allv = allv[np.abs(allv) <= emax * sb]
        allv = np.concatenate([allv, np.zeros((-len(allv)) % (bs - 1), np.float32)])
        allv = allv.reshape(-1, bs - 1)
        rows.append(np.concatenate([np.full((len(allv), 1), emax * sb, np.float32), allv],
                                   axis=1))
    rng = np.random.default_rng(seed)
    sp = rng.standard_normal((4, bs)).astype(np.float32)
    sp[0, 3] = np.nan
    sp[1] = 0
    sp[2] *= np.float32(1e-40)
    sp[3, 0] = -np.inf
    x = np.concatenate(rows + [sp])
    x[0, 0] = sp_.tensor_divisor
    return x.astype(np.float32)
