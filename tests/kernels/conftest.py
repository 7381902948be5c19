"""Shared edge-vector generators and independent oracles for the kernel tests.

Oracles used (none of them is the kernel code):
- ``lowbit.formats`` (the emulator the kernels must match bit for bit);
- ml_dtypes casts from float32 (single RNE rounding; saturation applied by an exact clip first);
- exact ``fractions.Fraction`` arithmetic for scale selection and NVFP4 rounding.
"""
from __future__ import annotations

import os
from dataclasses import replace
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

# Triton's interpreter must be selected before triton is first imported (its standard library
# functions such as tl.max are decorated at import time): do it here, at collection.
try:
    import torch as _torch_mod

    if not _torch_mod.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")
except ImportError:  # pragma: no cover
    pass

MLD = {"fp8_e4m3": ml_dtypes.float8_e4m3fn, "fp8_e5m2": ml_dtypes.float8_e5m2,
       "fp4_e2m1": ml_dtypes.float4_e2m1fn}
ELEM_MAX = {"fp8_e4m3": 448.0, "fp8_e5m2": 57344.0, "fp4_e2m1": 6.0}
MX_ELEM = {"mxfp8": "fp8_e4m3", "mxfp8_e5m2": "fp8_e5m2", "mxfp4": "fp4_e2m1"}


def pos_values(elem):
    """Sorted distinct non-negative finite values of an element format (float64)."""
    n = 16 if elem == "fp4_e2m1" else 256
    v = np.arange(n, dtype=np.uint8).view(MLD[elem]).astype(np.float64)
    return np.unique(v[np.isfinite(v) & (v >= 0)])


def boundary_values(elem, scale_exp=0):
    """Every representable value, every rounding midpoint and the float32 neighbours of each
    midpoint, plus values beyond the max, all times 2^scale_exp, both signs (float32)."""
    v = pos_values(elem)
    mids = (v[1:] + v[:-1]) / 2
    mx = v[-1]
    top = v[-1] - v[-2]
    extra = np.array([mx + top / 2, mx + top / 2 + top / 8, mx + top, 2 * mx, 4 * mx])
    base = np.concatenate([v, mids, extra])
    x = np.ldexp(base, scale_exp).astype(np.float32)
    m32 = np.ldexp(mids, scale_exp).astype(np.float32)
    nb = np.concatenate([np.nextafter(m32, np.float32(np.inf)), np.nextafter(m32, np.float32(0))])
    x = np.concatenate([x, nb])
    return np.concatenate([x, -x]).astype(np.float32)


def fp8_edge_vector(elem):
    """boundary_values + NaN/Inf/huge/tiny/subnormal float32 inputs."""
    specials = np.array([np.nan, np.inf, 1e38, 3.4028235e38, 1e-45, 1e-40, 1.1754942e-38,
                         2.0 ** -126, 0.0], np.float32)
    return np.concatenate([boundary_values(elem), specials, -specials]).astype(np.float32)


def mx_edge_matrix(fmt, scale_exps=(-127, -100, -3, 0, 17, 100)):
    """Rows of MX blocks: each block = [max_elem * 2^t, 31 edge values at scale 2^t], so both
    FLOOR and RCEIL give X = 2^t and every element lands on or next to a rounding boundary;
    plus special blocks (zero, NaN, ±Inf, all-subnormal, clipping maxima, huge)."""
    elem = MX_ELEM[fmt]
    mx = ELEM_MAX[elem]
    blocks = []
    for t in scale_exps:
        if mx * 2.0 ** t > 3.4e38:
            continue
        vals = boundary_values(elem, t)
        vals = vals[np.abs(vals) <= mx * 2.0 ** t * 1.0]  # keep the pinned amax the block max
        pad = (-len(vals)) % 31
        vals = np.concatenate([vals, np.zeros(pad, np.float32)]).reshape(-1, 31)
        pin = np.full((len(vals), 1), mx * 2.0 ** t, np.float32)
        pin[1::2] *= -1
        blocks.append(np.concatenate([pin, vals], axis=1))
        # clipping block: amax in (max, 2^(emax+1)) * X under FLOOR
        emax = {"fp8_e4m3": 8, "fp8_e5m2": 15, "fp4_e2m1": 2}[elem]
        clip = np.linspace(mx, 2.0 ** (emax + 1) * 0.999, 32) * 2.0 ** t
        blocks.append(clip.astype(np.float32)[None, :])
    rng = np.random.default_rng(7)
    sp = np.zeros((8, 32), np.float32)
    sp[1] = rng.standard_normal(32)
    sp[1, 5] = np.nan
    sp[2] = rng.standard_normal(32)
    sp[2, 9] = np.inf
    sp[3] = rng.standard_normal(32)
    sp[3, 0] = -np.inf
    sp[4] = np.float32(1e-45) * np.arange(32)  # all float32 subnormal
    sp[5] = rng.standard_normal(32) * np.float32(1e-39)
    sp[6] = np.clip(rng.standard_normal(32), -1, 1) * np.float32(3e38)
    sp[6, 0] = np.float32(3.4028235e38)
    sp[7] = rng.standard_normal(32) * 1000
    blocks.append(sp)
    return np.concatenate(blocks).astype(np.float32)


def random_matrix(rng, M, K, spread=12):
    """Gaussian rows with per-row magnitudes 2^[-spread, spread]."""
    return (rng.standard_normal((M, K)) * np.exp2(rng.integers(-spread, spread, (M, 1)))
            ).astype(np.float32)


def pack_low_first(codes):
    """(M, K) 4-bit codes -> (M, ceil(K/2)) bytes, element 2j in the low nibble (test-local)."""
    c = np.asarray(codes, np.uint8)
    if c.shape[1] % 2:
        c = np.pad(c, ((0, 0), (0, 1)))
    return (c[:, 0::2] | (c[:, 1::2] << 4)).astype(np.uint8)


def unpack_low_first(packed, K):
    p = np.asarray(packed, np.uint8)
    return np.stack([p & 0xF, p >> 4], axis=-1).reshape(p.shape[0], -1)[:, :K]


def mx_format(fmt, rule):
    from lowbit.formats import get_format
    return replace(get_format(fmt), scale_rule=rule, name=None)


def formats_mx(x, fmt, rule):
    """lowbit.formats reference for an MX quantize: (codes (packed for FP4), scale bytes, deq f32)."""
    from lowbit.formats import encode
    qt = encode(x, mx_format(fmt, rule))
    codes = qt.codes
    if MX_ELEM[fmt] == "fp4_e2m1":
        codes = pack_low_first(codes)
    return codes, np.asarray(qt.scale_codes, np.uint8), qt.dequantize().astype(np.float32)


def formats_nvfp4(x):
    from lowbit.formats import encode
    qt = encode(x, "nvfp4")
    return (pack_low_first(qt.codes), np.asarray(qt.scale_codes, np.uint8), qt.tensor_scale,
            qt.dequantize().astype(np.float32))


def mld_saturating_codes(x32, elem):
    """ml_dtypes codes of float32 values with saturation (exact clip to ±max first)."""
    mx = ELEM_MAX[elem]
    x = np.where(np.isinf(x32), np.sign(x32) * mx, x32)
    return np.clip(x, -mx, mx).astype(np.float32).astype(MLD[elem]).view(np.uint8)


def mx_scale_exp_exact(amax, elem, rule):
    """Exact E8M0 exponent (Fraction arithmetic) for a finite float amax."""
    emax = {"fp8_e4m3": 8, "fp8_e5m2": 15, "fp4_e2m1": 2}[elem]
    a = Fraction(float(amax))
    if a == 0:
        return -127
    e = 0
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    while Fraction(2) ** e > a:
        e -= 1
    if rule == "floor":
        s = e - emax
    else:
        mx = Fraction(ELEM_MAX[elem])
        s = e - emax - 2
        while a > mx * Fraction(2) ** s:
            s += 1
    return max(min(s, 127), -127)


def rne_fraction(v, grid):
    """Index of RNE(v) on an increasing grid of Fractions starting at 0, saturating (v >= 0);
    ties go to the even index (= even code for codes in value order)."""
    import bisect
    if v >= grid[-1]:
        return len(grid) - 1
    i = bisect.bisect_right(grid, v) - 1
    lo, hi = grid[i], grid[i + 1]
    d_lo, d_hi = v - lo, hi - v
    if d_lo < d_hi:
        return i
    if d_hi < d_lo:
        return i + 1
    return i if i % 2 == 0 else i + 1


def same_bits_or_both_nan(a, b):
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    an, bn = np.isnan(a), np.isnan(b)
    return bool(np.array_equal(an, bn) and np.array_equal(a.view(np.uint32)[~an],
                                                          b.view(np.uint32)[~bn]))


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(20261123)


# ---------------------------------------------------------------- backends (numpy in/out)


def _torch():
    torch = pytest.importorskip("torch")
    from lowbit.kernels import _triton
    if not _triton.AVAILABLE:
        pytest.skip("triton is not installed")
    return torch


class Numba:
    name = "numba"

    def __init__(self):
        from lowbit.kernels import numba_gemm, numba_quant
        self.q, self.g = numba_quant, numba_gemm

    def fp8_quantize(self, x, fmt):
        return self.q.fp8_quantize(x, fmt)

    def fp8_dequantize(self, c, fmt):
        return self.q.fp8_dequantize(c, fmt)

    def mx_quantize(self, x, fmt, rule):
        return self.q.mx_quantize(x, fmt, rule)

    def mx_dequantize(self, c, s, K, fmt):
        return self.q.mx_dequantize(c, s, K, fmt)

    def nvfp4_quantize(self, x, profile="lowbit"):
        c, s, ts = self.q.nvfp4_quantize(x, profile=profile)
        return c, s, np.float32(ts)

    def nvfp4_dequantize(self, c, s, K, ts):
        return self.q.nvfp4_dequantize(c, s, K, ts)

    def mxfp4_gemm(self, ca, sa, cb, sb, K, variant=None):
        return self.g.mxfp4_gemm(ca, sa, cb, sb, K)

    def nvfp4_gemm(self, ca, sa, ta, cb, sb, tb, K):
        return self.g.nvfp4_gemm(ca, sa, ta, cb, sb, tb, K)


class Triton:
    name = "triton"

    def __init__(self):
        self.torch = _torch()
        from lowbit.kernels import triton_gemm, triton_quant
        self.q, self.g = triton_quant, triton_gemm

    def _t(self, a):
        return self.torch.from_numpy(np.ascontiguousarray(a))

    def fp8_quantize(self, x, fmt):
        return self.q.fp8_quantize(self._t(x), fmt).numpy()

    def fp8_dequantize(self, c, fmt):
        return self.q.fp8_dequantize(self._t(c), fmt).numpy()

    def mx_quantize(self, x, fmt, rule):
        c, s = self.q.mx_quantize(self._t(x), fmt, rule)
        return c.numpy(), s.numpy()

    def mx_dequantize(self, c, s, K, fmt):
        return self.q.mx_dequantize(self._t(c), self._t(s), K, fmt).numpy()

    def nvfp4_quantize(self, x, profile="lowbit"):
        c, s, ts = self.q.nvfp4_quantize(self._t(x), profile=profile)
        return c.numpy(), s.numpy(), np.float32(ts)

    def nvfp4_dequantize(self, c, s, K, ts):
        return self.q.nvfp4_dequantize(self._t(c), self._t(s), K, ts).numpy()

    def mxfp4_gemm(self, ca, sa, cb, sb, K, variant="dot_scaled"):
        return self.g.mxfp4_gemm(self._t(ca), self._t(sa), self._t(cb), self._t(sb), K,
                                 variant=variant).numpy()

    def nvfp4_gemm(self, ca, sa, ta, cb, sb, tb, K):
        return self.g.nvfp4_gemm(self._t(ca), self._t(sa), ta, self._t(cb), self._t(sb), tb,
                                 K).numpy()


_CACHE = {}


def get(name):
    if name not in _CACHE:
        _CACHE[name] = Numba() if name == "numba" else Triton()
    return _CACHE[name]


@pytest.fixture(params=["numba", "triton"])
def backend(request):
    return get(request.param)


@pytest.fixture(scope="session")
def H():
    """This module: the edge-vector generators and oracles above, for the test files."""
    import sys
    return sys.modules[__name__]
