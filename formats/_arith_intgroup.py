"""Branch-free rounding of the float64 quotients of integer block formats with general scales
(INT group / channel formats such as ``int4_g128``, ``int8_pc``).

The block engine defines an element of a symmetric integer block with scale ``s`` (tensor scale
``ts``, 1 when absent) as the integer-format code of ``y = fl64(x / div)``, ``div = s * ts`` as
the plan holds it, and its value as ``fl((values[code] * s) * ts)`` computed in float64 and
stored in the output dtype (:func:`lowbit.formats._lut.lut_scaled_encode`: the exact kernel
through a table). :func:`int_scaled_encode` computes the same ``y`` and rounds it without a
table, for formats and policies that :func:`int_params` accepts: integers (``frac_bits`` 0),
round-to-nearest-even, ``overflow="saturate"`` (the result is clamped to ``[qmin, qmax]``):

* ``c = min(max(y, qmin), qmax)``: clamping before rounding gives the rounded-then-clamped
  integer, because ``qmin`` and ``qmax`` are integers and rounding to integers is monotone;
* ``q = (c + M) - M`` with ``M = 1.5 * 2**52``: ``|c| <= 2**31``, so ``c + M`` lies in
  ``[2**52, 2**53)`` where the float64 spacing is 1 and IEEE addition rounds to nearest-even:
  ``c + M = M + RNE(c)`` exactly, and the subtraction is exact (Sterbenz). ``q`` is the integer
  RNE(c) as a float64, and ``+0.0`` when it is zero (``M - M = +0``), which is the value the
  table holds for code 0 (the integer formats have one zero);
* the code is ``q``'s two's-complement pattern in ``bits`` bits (``int(q) & (2**bits - 1)``),
  the code ``IntFormat`` defines; its value ``values[code]`` is ``q`` itself (``frac_bits``
  0), so the value is ``(q * s) * ts`` in float64, then stored like the table path stores it.

Proof obligation: ``y`` is finite because the caller passes only finite ``x`` (a block holding
NaN / Inf is ``bad``: codes 0, values NaN, as the table path writes) and only blocks whose
``div`` is a positive finite number (:func:`divisors_ok`; otherwise the table path runs), and
``y`` may be +-Inf only by overflow of the quotient, which the clamp maps to ``qmax`` / ``qmin``
as saturation does. ``tests/formats/test_arith_intgroup.py`` compares codes, scales and values
with the exact kernel (``LOWBIT_SLOW_FORMATS=1``) on blocks built around exact ties ``k + 1/2``
of every integer of the range, +-1 float64 ulp around them, saturating values, signed zeros,
float32 subnormals and NaN / Inf blocks.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import njit

from lowbit.formats import _kernel as K

RNE_MAGIC = 1.5 * 2.0**52
"""``M``: adding and subtracting it rounds a float64 of magnitude <= 2**51 to an integer, ties
to even (module docstring)."""
MAX_INT_BITS = 32
"""Widest integer element the path takes (``|qmin|, qmax <= 2**31``: far below 2**51)."""
I_LO, I_HI, I_MASK = range(3)


@lru_cache(maxsize=128)
def int_params(P_bytes: bytes) -> np.ndarray | None:
    """int64 ``[qmin, qmax, code mask]`` of :func:`int_scaled_encode` for the exact kernel's
    parameter vector ``P`` (its bytes), or None when the path does not apply (not an integer
    format, fraction bits, a rounding other than RNE, an overflow policy other than saturate)."""
    P = np.frombuffer(P_bytes, dtype=np.int64)
    bits = int(P[K.P_EBITS])
    if (P[K.P_KIND] != K.KIND_INT or P[K.P_FRAC] != 0 or P[K.P_ROUND] != K.R_RNE
            or P[K.P_OVF] != K.O_SATURATE or bits > MAX_INT_BITS):
        return None
    q = np.array([P[K.P_QMIN], P[K.P_QMAX], (1 << bits) - 1], np.int64)
    q.setflags(write=False)
    return q


def divisors_ok(div: np.ndarray) -> bool:
    """Whether every block divisor is a positive finite number (the path's precondition)."""
    return bool(div.size == 0 or (np.isfinite(div).all() and (div > 0).all()))


@njit(cache=True, nogil=True, error_model="numpy")  # no ZeroDivisionError check: vectorises
def int_scaled_encode(x, nrows, k, div, s, ts, bad, q, codes_out, vals_out):
    """Codes (``codes_out``, any unsigned dtype, or empty) and values (``vals_out`` float32 /
    float64, or empty) of the ``nrows`` blocks of ``k`` elements of ``x`` (float32 / float64):
    block ``r`` divided by ``div[r]``, rounded to the integers ``[q[I_LO], q[I_HI]]`` (module
    docstring); values ``(code value * s[r]) * ts``. A ``bad`` block gets codes 0 and values
    NaN."""
    want_codes = codes_out.shape[0] == x.shape[0]
    want_vals = vals_out.shape[0] == x.shape[0]
    lo, hi = np.float64(q[I_LO]), np.float64(q[I_HI])
    mask = q[I_MASK]
    for r in range(nrows):
        xr = x[r * k:(r + 1) * k]  # per-block slices: indices from 0, so the loops vectorise
        cr = codes_out[r * k:(r + 1) * k] if want_codes else codes_out
        vr = vals_out[r * k:(r + 1) * k] if want_vals else vals_out
        if bad[r]:
            if want_codes:
                cr[:] = 0
            if want_vals:
                vr[:] = np.nan
            continue
        d, sr = div[r], s[r]
        if want_codes:
            for j in range(k):
                c = min(max(np.float64(xr[j]) / d, lo), hi)
                cr[j] = np.int64((c + RNE_MAGIC) - RNE_MAGIC) & mask
        if want_vals:
            for j in range(k):
                c = min(max(np.float64(xr[j]) / d, lo), hi)
                vr[j] = (((c + RNE_MAGIC) - RNE_MAGIC) * sr) * ts
