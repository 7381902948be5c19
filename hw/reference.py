"""Bit-exact reference models for the hardware units (exact integer arithmetic).

Values are decoded with :func:`lowbit.formats.decode` (exact in float64 for every format up to
fp32), sums are formed with Python integers (no float64 double rounding), and the single final
rounding to a float format is done by :func:`lowbit.formats.encode` (``rounding="rne"``,
``overflow="nonsat"``) applied to the exact value rounded-to-odd to 53 bits, which is innocuous
for targets with <= 51 mantissa bits (round-to-odd then RNE == RNE of the exact value).
"""

from __future__ import annotations

import math

import numpy as np

from lowbit.formats import IntFormat, decode, encode, resolve
from lowbit.formats.multiplier import parse_multiplier
from lowbit.hw.widths import product_frac_bits


def _fmt(f):
    return resolve(f)


def int_values(codes, fmt: IntFormat) -> np.ndarray:
    """Integer codes (unsigned bit patterns) -> their integer values (two's complement when
    ``fmt.signed``; every code, the narrow format's -2**(bits-1) included)."""
    c = np.asarray(codes, dtype=np.int64)
    if fmt.signed:
        return np.where(c >= (1 << (fmt.bits - 1)), c - (1 << fmt.bits), c)
    return c


def int_acc_trace(products, clr, en, width: int, overflow: str = "wrap") -> list:
    """Register trace of ``acc <= wrap_or_saturate((clr ? 0 : acc) + (en ? p : 0))`` with a
    ``width``-bit two's-complement register (``IntAccum`` semantics); entry t is the register
    value during cycle t (before that cycle's update), starting from 0."""
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    res, acc = [], 0
    for p, c, e in zip(np.asarray(products, dtype=object).tolist(), clr.tolist(), en.tolist()):
        res.append(acc)
        acc = (0 if c else acc) + (int(p) if e else 0)
        if overflow == "saturate":
            acc = min(max(acc, lo), hi)
        else:
            acc = ((acc - lo) % (1 << width)) + lo
    return res


def to_signed(u, w: int):
    """Unsigned w-bit pattern(s) -> signed Python ints (object array when w > 62)."""
    u = np.asarray(u, dtype=object)
    half, full = 1 << (w - 1), 1 << w
    return np.array([int(x) - full if int(x) >= half else int(x) for x in u.ravel()],
                    dtype=object).reshape(u.shape)


def exact_int(values, S: int):
    """float64 values -> exact Python ints ``v * 2**S`` (must be integral, finite)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    out = []
    for x in v.tolist():
        m, e = math.frexp(x)
        n = int(m * (1 << 53))          # exact
        e = e - 53 + S
        out.append(n << e if e >= 0 else _exact_shift(n, e))
    return np.array(out, dtype=object)


def _exact_shift(n, e):
    q, r = divmod(n, 1 << -e)
    if r:
        raise ValueError("value is not an integer multiple of 2**-S; increase S")
    return q


def rto_float64(n: int, S: int) -> float:
    """Exact ``n * 2**-S`` rounded to odd at 53 bits (an exact float64 when it fits)."""
    m = abs(n)
    bl = m.bit_length()
    if bl > 53:
        sh = bl - 53
        t = m >> sh
        if m & ((1 << sh) - 1):
            t |= 1
        v = math.ldexp(t, sh - S)
    else:
        v = math.ldexp(m, -S)
    return -v if n < 0 else v


def round_ints(ns, S: int, fmt, zero_sign=None, overflow: str = "ieee"):
    """RNE codes of the exact values ``ns * 2**-S`` in ``fmt``; ``overflow="ieee"``: Inf / NaN
    (``encode(overflow="nonsat")``), ``"saturate"``: +-max. ``zero_sign``: bool array, sign for
    exact-zero values (default +0)."""
    f = _fmt(fmt)
    x = np.array([rto_float64(int(n), S) for n in ns], dtype=np.float64)
    if zero_sign is not None:
        x = np.where((x == 0) & np.asarray(zero_sign, bool), -0.0, x)
    return encode(x, f, rounding="rne",
                  overflow="saturate" if overflow == "saturate" else "nonsat").astype(np.int64)


def product_fixed(a, b, fa, fb, mul=None):
    """(fixed, nan, inf): products ``a*b * 2**F`` as Python ints (0 for NaN/Inf); ``mul``: a
    multiplier model of :mod:`lowbit.formats.multiplier` (default exact)."""
    fa, fb = _fmt(fa), _fmt(fb)
    p = parse_multiplier(mul).products(np.asarray(a), fa, np.asarray(b), fb)  # exact values
    nan = np.isnan(p)
    inf = np.isinf(p)
    F = product_frac_bits(fa, fb)
    fixed = exact_int(np.where(nan | inf, 0.0, p), F)
    return fixed, nan, inf, p


def fma_codes(a, b, c, fa, fb, fc, overflow: str = "ieee", mul=None):
    """Reference of :func:`lowbit.hw.fpmac.fp_fma_step`: codes of RNE(c + a*b) in ``fc``
    (``overflow`` of a finite sum: "ieee" or "saturate", as ``FloatAccum.overflow``); ``mul``:
    the multiplier model giving ``a*b`` (default exact)."""
    fa, fb, fc = _fmt(fa), _fmt(fb), _fmt(fc)
    vc = decode(np.asarray(c), fc)
    p = parse_multiplier(mul).products(np.asarray(a), fa, np.asarray(b), fb)
    with np.errstate(invalid="ignore"):
        s = vc + p                      # only used for the special cases
    special = ~np.isfinite(p) | ~np.isfinite(vc)
    S = 1100
    pf = exact_int(np.where(special, 0.0, p), S)
    cf = exact_int(np.where(special, 0.0, vc), S)
    tot = pf + cf
    zsign = np.signbit(np.where(special, 0.0, p)) & np.signbit(np.where(special, 0.0, vc))
    codes = round_ints(tot, S, fc, zero_sign=zsign, overflow=overflow)
    if special.any():
        sp = encode(np.where(special, s, 0.0), fc, rounding="rne", overflow="nonsat",
                    nan_input="zero" if not fc.has_nan else "error").astype(np.int64)
        codes = np.where(special, sp, codes)
        if fc.has_nan:
            codes = np.where(special & np.isnan(s), fc.nan_code, codes)
    return codes


def fma_sequence(a, b, fa, fb, fc, overflow: str = "ieee"):
    """Sequential FloatAccum(fc) from +0: ``acc = RNE(acc + a[:, k]*b[:, k])`` for each row;
    a, b: (n, K) code arrays -> (n, K) accumulator codes after each step."""
    a, b = np.asarray(a), np.asarray(b)
    n, K = a.shape
    acc = np.zeros(n, dtype=np.int64)
    out = np.zeros((n, K), dtype=np.int64)
    for k in range(K):
        acc = fma_codes(a[:, k], b[:, k], acc, fa, fb, fc, overflow)
        out[:, k] = acc
    return out
