"""Branch-free rounding of the float64 quotients of block formats with general (non-power-of-two)
scales, such as NVFP4.

The block engine defines an element of a block with scale ``s`` (tensor scale ``ts``, 1 when
absent) as the element-format code of ``y = fl64(x / div)``, ``div = s * ts`` as the plan holds
it, and its value as ``fl(values[code] * s * ts)`` computed in float64 and stored in the output
dtype (:func:`lowbit.formats._lut.lut_scaled_encode`, the exact kernel through a table).
:func:`scaled_encode` computes ``y`` the same way and rounds it with the formula of
:mod:`lowbit.formats._arith` on the float64 bit pattern instead of a table: with ``m`` mantissa
bits, bias ``b``, ``emin = 1 - b`` and ``a`` the magnitude pattern of ``y`` (52 mantissa bits):

* ``|y| >= 2**emin`` (``a >= T = (1023 + emin) << 52``): ``r = a + (2**(sh-1) - 1) + ((a >> sh)
  & 1)``, ``sh = 52 - m``, is the add-and-shift round-to-nearest-even (a carry out of the
  mantissa moves to the next binade by the same addition); magnitude code ``(r >> sh) - ((1023 -
  b) << m)``, float64 value ``r`` with the low ``sh`` bits cleared;
* below: ``t = fl64(|y| + C)``, ``C = 2**(emin - m + 52)``, lies in ``[C, 2C)`` whose spacing is
  the subnormal quantum ``q = 2**(emin - m)``, and IEEE addition rounds to nearest-even, so
  ``t = C + n*q``, ``n = RNE(|y| / q)``: code ``bits(t) - bits(C)``, value ``t - C = n*q``
  (exact); ``n = 2**m`` is the smallest normal number, code ``2**m`` too;
* the code and value increase with ``a``; a result above the largest finite one is clamped to
  it, which is the exact kernel's answer exactly when its overflow answer is the largest finite
  code with the input's sign and no error (``saturate``, ``propagate``; also ``nonsat`` for a
  format without Inf and NaN such as E2M1): :func:`scaled_params` requires that
  (``arith_params(...)[A_CLAMP]`` is the maximum code);
* the sign of ``y`` (that of ``x``: ``div > 0``) is OR-ed into the code's sign bit and the
  value's, so ``-0.0`` and negative values that round to zero keep the sign, as the exact kernel
  does.

Proof obligation: this is the formula of :mod:`lowbit.formats._arith` (proved there for a
float32 source) with float64's 52 mantissa bits, for the formats that module takes (float, RNE,
``subnormal_output="keep"``, subnormal quantum ``>= 2**-125``). ``C`` and ``T`` are normal
float64 numbers; a ``y`` below float64's normal range is far below ``q / 2`` and rounds to a
signed zero whether the addition sees it or (denormals-are-zero) a zero. Every ``y`` of a block
without NaN / Inf is finite (those blocks get code 0 / NaN; ``div`` is a positive normal). The value is the float64 value of the code (the table's
``values[code]``), times ``s`` then ``ts`` in float64, stored like the table path stores it.
``tests/formats/test_arith_scaled.py`` compares the codes, scales and values with the exact
kernel (``LOWBIT_SLOW_FORMATS=1``) on NVFP4 blocks built around exact ties of every E2M1
boundary, float32 subnormals, saturating values and signed zeros.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit
from numba.core import types

from lowbit.formats._arith import A_CLAMP, ALL, _binop, _bitcast, arith_params

_f64_bits = _bitcast(types.float64, types.uint64)
_bits_f64 = _bitcast(types.uint64, types.float64)


_shr64 = _binop("lshr", types.uint64)  # shift counts here are < 64 (numba's own >> checks)
_shl64 = _binop("shl", types.uint64)

S_SH, S_RND, S_BASE, S_T, S_C, S_HI, S_MAXC, S_MAXV, S_SIGN_SH = range(9)
S_LEN = 9
GROUP_ELEMS = 2048
"""Elements per group: each element's divisor and scale are read from a group buffer, so the
rounding loop runs flat over the group (vectorised) whatever the block length."""


@lru_cache(maxsize=128)
def scaled_params(fmt, P_bytes: bytes) -> np.ndarray | None:
    """uint64 parameter vector of :func:`scaled_encode` for element format ``fmt`` under the
    exact kernel's parameter vector ``P`` (its bytes), or None when the formula does not apply
    (the format or policy is outside :mod:`lowbit.formats._arith`, or an overflow is not
    answered by the largest finite code)."""
    Q = arith_params(fmt, P_bytes, False)
    if Q is None or Q[A_CLAMP] == ALL:
        return None
    m, b = fmt.mbits, fmt.bias
    emin = 1 - b
    q = np.zeros(S_LEN, np.uint64)
    q[S_SH] = 52 - m
    q[S_RND] = (1 << (51 - m)) - 1
    q[S_BASE] = (1023 - b) << m
    q[S_T] = (1023 + emin) << 52
    q[S_C] = (1023 + emin - m + 52) << 52
    q[S_HI] = ~np.uint64((1 << (52 - m)) - 1)
    q[S_MAXC] = int(Q[A_CLAMP])
    q[S_MAXV] = int(np.array(float(fmt.max)).view(np.uint64))
    q[S_SIGN_SH] = fmt.bits - 1
    q.setflags(write=False)
    return q


@njit(cache=True, nogil=True)
def scaled_encode(x, nrows, k, div, s, ts, bad, q, codes_out, vals_out, dbuf, sbuf):
    """Codes (``codes_out``, any unsigned dtype, or empty) and values (``vals_out`` float32 /
    float64, or empty) of the ``nrows`` blocks of ``k`` elements of ``x`` (float32 / float64),
    block ``r`` divided by ``div[r]`` (module docstring); values ``(value * s[r]) * ts``. A
    ``bad`` block gets codes 0 and values NaN. ``dbuf`` / ``sbuf``: float64 scratch of
    :data:`GROUP_ELEMS` (at least ``k``) elements."""
    want_codes = codes_out.shape[0] == x.shape[0]
    want_vals = vals_out.shape[0] == x.shape[0]
    G = max(1, dbuf.shape[0] // max(k, 1))
    uk = np.uint64(k)
    for g0 in range(0, nrows, G):
        ng = min(g0 + G, nrows) - g0
        for rr in range(ng):
            b0 = np.uint64(rr) * uk
            d, sr = div[g0 + rr], s[g0 + rr]
            for j in range(uk):
                dbuf[b0 + j] = d
                sbuf[b0 + j] = sr
        n0, n1 = g0 * k, (g0 + ng) * k
        if want_codes:
            _codes(x[n0:n1], dbuf, q, codes_out[n0:n1])
        if want_vals:
            _values(x[n0:n1], dbuf, sbuf, ts, q, vals_out[n0:n1])
        for rr in range(ng):
            if bad[g0 + rr]:
                for j in range((g0 + rr) * k, (g0 + rr + 1) * k):
                    if want_codes:
                        codes_out[j] = 0
                    if want_vals:
                        vals_out[j] = np.nan


SIGN64 = np.uint64(1 << 63)


@njit(cache=True, nogil=True, error_model="numpy")  # no ZeroDivisionError check: vectorises
def _quotient(xi, d, rnd, sh):
    """``y = fl64(xi / d)``, its bits, its magnitude bits ``a`` and the add-and-shift sum ``r``
    (module docstring)."""
    y = np.float64(xi) / d
    yb = _f64_bits(y)
    a = yb & ~SIGN64
    return y, yb, a, a + rnd + (_shr64(a, sh) & np.uint64(1))


@njit(cache=True, nogil=True, error_model="numpy")
def _codes(x, dbuf, q, out):
    sh, rnd, base, T, cb = q[S_SH], q[S_RND], q[S_BASE], q[S_T], q[S_C]
    c = _bits_f64(cb)
    maxc, sign_sh = q[S_MAXC], q[S_SIGN_SH]
    for i in range(x.shape[0]):
        y, yb, a, r = _quotient(x[i], dbuf[i], rnd, sh)
        normal = _shr64(r, sh) - base
        small = _f64_bits(abs(y) + c) - cb
        mag = small if a < T else normal
        mag = mag if mag < maxc else maxc
        out[i] = mag | _shl64(_shr64(yb, np.uint64(63)), sign_sh)


@njit(cache=True, nogil=True, error_model="numpy")
def _values(x, dbuf, sbuf, ts, q, out):
    sh, rnd, hi, T, cb, maxv = q[S_SH], q[S_RND], q[S_HI], q[S_T], q[S_C], q[S_MAXV]
    c = _bits_f64(cb)
    for i in range(x.shape[0]):
        y, yb, a, r = _quotient(x[i], dbuf[i], rnd, sh)
        normal = r & hi
        small = _f64_bits((abs(y) + c) - c)
        mag = small if a < T else normal
        mag = mag if mag < maxv else maxv
        out[i] = (_bits_f64(mag | (yb & SIGN64)) * sbuf[i]) * ts
