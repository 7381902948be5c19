"""numba scalar primitives for bit-exact accumulator emulation.

* :func:`two_sum` - Knuth's error-free transformation: ``s + e == a + b`` exactly, with
  ``s = RN64(a + b)``.
* :func:`two_prod` - Dekker/Veltkamp error-free product: ``p + e == a * b`` exactly (no FMA needed).
* :func:`round_fmt` - ONE correct rounding (round-to-nearest, ties-to-even) of an exact value
  given as ``s + r`` to a binary float format described by ``(mbits, emin, maxv, ovf, minnorm,
  ftz)``.  ``s`` must be ``RN64(exact)`` and ``r = exact - s`` (only the sign of ``r`` is used).
  Never rounds the float64 sum "as is" when it is inexact (that would double-round, e.g.
  fp16 acc 1+2^-10 plus 2^-11-2^-64: the float64 sum is an fp16 midpoint, the exact sum is
  below it).  Method: if ``r != 0``, ``s`` is replaced by the float64 round-to-odd of the exact
  value (the neighbour of ``s`` toward ``r`` if ``s`` has an even last bit); RNE of a
  round-to-odd result with >= p + 2 bits is the correctly rounded result (Boldo & Melquiond,
  IEEE TC 2008) - hence targets with <= 50 stored mantissa bits.  The final RNE to the target
  quantum uses the branch-free magic-constant trick (>100M roundings/s per core).
* :func:`msum_add` / :func:`msum_finalize` - Shewchuk's exact floating-point expansion sum (the
  algorithm of CPython's ``math.fsum``) in a caller-provided partials buffer; finalisation
  returns ``(RN64(exact), sign(exact - RN64(exact)))``, i.e. exactly what :func:`round_fmt` needs.

Format parameters: one :class:`FloatParams` value (from :func:`float_params`), passed to the
numba kernels as a named tuple: ``mbits`` stored mantissa bits, ``emin`` exponent of the
smallest normal binade (1 - bias), ``maxv`` largest finite value, ``ovf`` value returned on
overflow (``inf``, ``nan`` or ``maxv``), ``minnorm = 2**emin``, ``ftz`` (1: the format has no
subnormals; results below ``minnorm`` flush to signed zero after rounding with an unbounded
exponent range), ``emax = floor(log2(maxv))``.  Overflow is decided IEEE-style: round with an
unbounded exponent, overflow if the rounded magnitude exceeds ``maxv`` (so E4M3 464 -> 448,
465 -> overflow).  Non-finite ``s`` is returned unchanged.

Note: the kernels of :mod:`lowbit.sim.accum_kernels` inline these functions and are cached on
disk by numba, whose cache only tracks the kernel's own file: after editing THIS file delete
``sim/__pycache__/accum_kernels.*.nb[ic]`` (or touch accum_kernels.py).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

MSUM_CAP = 96  # partials buffer length: > (2098 exponent span / 53) + slack
FLOAT_OVERFLOW_POLICIES = ("ieee", "saturate")


class FloatParams(NamedTuple):
    """Rounding parameters of a float accumulator format (see module docstring)."""

    mbits: int
    emin: int
    maxv: float
    ovf: float
    minnorm: float
    ftz: int
    emax: int


FLOAT64_PARAMS = FloatParams(mbits=52, emin=-1022, maxv=float(np.finfo(np.float64).max),
                             ovf=np.inf, minnorm=2.0**-1022, ftz=0, emax=1023)
"""float64's own rounding parameters (rounding a float64 value to them is the identity): the
``fp`` argument of the kernels' modes that do not round to a narrower format (exact and
integer accumulation)."""


def float_params(fmt, overflow: str = "ieee") -> FloatParams:
    """:class:`FloatParams` of float format ``fmt`` for the accumulator rounding kernels.
    overflow: ``"ieee"`` -> Inf if the format has Inf, else NaN if it has NaN, else saturate;
    ``"saturate"`` -> +-max."""
    maxv = float(fmt.max)
    minnorm = float(fmt.min_normal)
    if overflow == "saturate":
        ovf = maxv
    elif overflow == "ieee":
        ovf = np.inf if fmt.has_inf else (np.nan if fmt.has_nan else maxv)
    else:
        raise ValueError(f"overflow={overflow!r}; allowed: {', '.join(FLOAT_OVERFLOW_POLICIES)}")
    return FloatParams(mbits=int(fmt.mbits), emin=int(round(math.log2(minnorm))), maxv=maxv,
                       ovf=float(ovf), minnorm=minnorm, ftz=0 if fmt.subnormals else 1,
                       emax=math.floor(math.log2(maxv)))


@intrinsic
def f64_bits(typingctx, x):
    """Bit pattern of a float64 as int64 (LLVM bitcast)."""
    if not isinstance(x, types.Float):
        return None
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def bits_f64(typingctx, x):
    """float64 with the given int64 bit pattern (LLVM bitcast)."""
    if not isinstance(x, types.Integer):
        return None
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def prefer_wide_vectors(typingctx):
    """Call first thing in a numba function whose loops should vectorise with the widest
    vectors the CPU has (512-bit on AVX-512 machines; LLVM's default preference for such CPUs
    is 256-bit).  Adds the LLVM function attribute ``"prefer-vector-width"="512"`` to the
    enclosing function - a tuning hint only: it never changes results and is ignored by CPUs
    without 512-bit vectors.  (llvmlite validates attribute names against a fixed list that
    lacks string attributes, so the set is extended directly; if that ever fails, the hint is
    skipped.)"""
    sig = types.int64()

    def codegen(context, builder, signature, args):
        try:
            set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        except Exception:  # noqa: BLE001 - a tuning hint must never break compilation
            pass
        return ir.Constant(ir.IntType(64), 0)

    return sig, codegen


@njit(cache=True, inline="always")
def two_sum(a, b):
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


@njit(cache=True, inline="always")
def two_prod(a, b):
    p = a * b
    c = 134217729.0  # 2**27 + 1
    t = c * a
    ah = t - (t - a)
    al = a - ah
    t = c * b
    bh = t - (t - b)
    bl = b - bh
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


@njit(cache=True, inline="always")
def round_fmt(s, r, fp):
    """Correct RNE rounding of the exact value ``s + r`` (``s = RN64``) to the target format
    ``fp`` (:class:`FloatParams`).

    Branch-light: (1) if ``r != 0`` replace ``s`` by the float64 round-to-ODD of the exact value
    (the neighbour of ``s`` toward ``r`` when ``s`` has an even last bit) - round-to-odd to
    53 >= p + 2 bits followed by one RNE to p bits equals one RNE of the exact value (Boldo &
    Melquiond 2008); (2) RNE to a multiple of the target quantum ``q`` with the magic-constant
    trick ``(s + 1.5*2**52*q) - 1.5*2**52*q``, ``q = 2**(max(E, emin) - mbits)`` built from the
    exponent bits (subnormal targets clamp E at emin; ``ftz`` formats do not clamp and flush).
    E is capped at ``emax + 1``: every magnitude >= 2**(emax+1) overflows, and the cap keeps
    ``1.5*2**52*q`` finite for float64 sums near the top of the float64 range.
    """
    bits = f64_bits(s)
    expo = bits & 0x7FF0000000000000
    if expo == 0x7FF0000000000000 or s == 0.0:  # Inf / NaN / exact zero
        return s
    if r != 0.0 and (bits & 1) == 0:
        if (r > 0.0) == (s > 0.0):
            bits += 1
        else:
            bits -= 1
        s = bits_f64(bits)
    emin_f = np.int64(fp.emin + 1023) << 52
    if fp.ftz != 0:
        if expo < emin_f - (np.int64(1) << 52):
            return math.copysign(0.0, s)
    elif expo < emin_f:
        expo = emin_f
    cap_f = np.int64(fp.emax + 1 + 1023) << 52
    if expo > cap_f:
        expo = cap_f
    q = bits_f64(expo - (np.int64(fp.mbits) << 52))
    c = q * 6755399441055744.0  # 1.5 * 2**52 * q
    mag = (abs(s) + c) - c
    if mag > fp.maxv:
        mag = fp.ovf
    elif fp.ftz != 0 and mag < fp.minnorm:
        mag = 0.0
    return math.copysign(mag, s)


@njit(cache=True, inline="always")
def msum_add(partials, n, x):
    """Add float64 ``x`` exactly into the non-overlapping expansion ``partials[:n]``; returns
    the new length (Shewchuk / CPython ``math.fsum``)."""
    i = 0
    for k in range(n):
        y = partials[k]
        if abs(x) < abs(y):
            t = x
            x = y
            y = t
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            partials[i] = lo
            i += 1
        x = hi
    if x != 0.0:
        partials[i] = x
        i += 1
    return i


@njit(cache=True)
def msum_finalize(partials, n):
    """``(hi, rsign)``: ``hi`` = exact sum of ``partials[:n]`` correctly rounded to float64
    (CPython fsum's half-way correction), ``rsign`` = sign of (exact - hi) as -1.0/0.0/1.0.
    Destroys ``partials``."""
    if n == 0:
        return 0.0, 0.0
    hi = 0.0
    lo = 0.0
    m = n - 1
    hi = partials[m]
    while m > 0:
        x = hi
        m -= 1
        y = partials[m]
        hi = x + y
        yr = hi - x
        lo = y - yr
        if lo != 0.0:
            break
    if m > 0 and ((lo < 0.0 and partials[m - 1] < 0.0) or (lo > 0.0 and partials[m - 1] > 0.0)):
        y = lo * 2.0
        x = hi + y
        yr = x - hi
        if y == yr:
            hi = x
    k = msum_add(partials, n, -hi)
    if k == 0:
        return hi, 0.0
    return hi, (1.0 if partials[k - 1] > 0.0 else -1.0)
