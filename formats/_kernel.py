"""numba kernels: one correctly rounded conversion from float32/float64 bit patterns to codes.

The input value is decomposed exactly as ``sig * 2**E`` (integers) from its IEEE bit pattern, an
optional per-row power-of-two scale exponent is subtracted from ``E`` (exact block scaling), and
the value is rounded ONCE to the target grid with integer arithmetic - no intermediate float
rounding, so float64 inputs are never double-rounded through float32.

Parameters travel as one int64 vector ``P`` (see ``P_*`` indices) built by
:func:`lowbit.formats._codec.kernel_params`.

Stochastic rounding draws its random integer for element ``i`` from a counter-based generator,
:func:`random_bits`: the top ``sr_bits`` bits of SplitMix64 (Steele, Lea & Flood, OOPSLA 2014)
of ``key + (i + 1) * 0x9E3779B97F4A7C15``, ``key`` a 64-bit integer drawn once per conversion
from the user's seed. The stream is a function of the element's index only, so it does not
depend on how the input is split into chunks or threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from lowbit.formats._jit import dual_kernel

# ---- parameter vector layout --------------------------------------------------------------------
P_KIND = 0       # KIND_FLOAT or KIND_INT
P_EBITS = 1
P_MBITS = 2
P_BIAS = 3
P_SIGNED = 4
P_SUBN = 5       # format has subnormals
P_ZERO = 6       # format has a zero
P_NANK = 7       # NaN scheme: NK_NONE, NK_IEEE, NK_FN, NK_FNUZ
P_INF = 8        # has inf
P_EMIN = 9
P_MAXF = 10      # max exponent field
P_MAXM = 11      # max mantissa at max field
P_ROUND = 12     # rounding mode index (ROUNDING)
P_OVF = 13       # overflow policy: index into OVERFLOW (O_*)
P_NANPOL = 14    # NaN-input policy: index into NAN_INPUT (NI_*)
P_FLUSH = 15     # flush subnormal outputs to zero
P_SRBITS = 16
P_QMIN = 17      # int formats
P_QMAX = 18
P_FRAC = 19
P_NANCODE = 20
P_INFCODE = 21
P_MAXCODE = 22
P_LEN = 23

ROUNDING = ("rne", "rna", "rtz", "rup", "rdown", "rto", "rnz", "rno", "rnp", "rnm",
            "stochastic", "stochastic_fast", "stochastic_rne", "stochastic_rno", "sr_half")
(R_RNE, R_RNA, R_RTZ, R_RUP, R_RDOWN, R_RTO, R_RNZ, R_RNO, R_RNP, R_RNM,
 R_SR, R_SR_FAST, R_SR_RNE, R_SR_RNO, R_SR_HALF) = range(len(ROUNDING))
STOCHASTIC_ROUNDING = ROUNDING[R_SR:]
"""Modes that consume random bits (index >= ``R_SR``)."""
OVERFLOW = ("saturate", "nonsat", "error", "propagate", "wrap", "sat_zero", "sat_sym")
O_SATURATE, O_NONSAT, O_ERROR, O_PROPAGATE, O_WRAP, O_SAT_ZERO, O_SAT_SYM = range(len(OVERFLOW))
INT_ONLY_OVERFLOW = ("wrap", "sat_zero", "sat_sym")
"""Policies defined for integer / fixed-point formats only (HLS AP_WRAP, AP_SAT_ZERO,
AP_SAT_SYM)."""
NAN_INPUT = ("error", "zero", "max")
"""What a NaN input becomes in a format without NaN (``nan_input=``)."""
NI_ERROR, NI_ZERO, NI_MAX = range(len(NAN_INPUT))
SUBNORMAL_OUTPUT = ("keep", "flush")
"""What a result in the subnormal range becomes (``subnormal_output=``)."""

KIND_FLOAT, KIND_INT = 0, 1
NK_NONE, NK_IEEE, NK_FN, NK_FNUZ = range(4)
NANK_OF_SCHEME = {None: NK_NONE, "ieee": NK_IEEE, "fn": NK_FN, "fnuz": NK_FNUZ}
"""``P_NANK`` code of each ``FloatFormat.nan`` scheme."""

ERR_OVERFLOW = np.int64(-1)
ERR_NAN = np.int64(-2)
ERR_NEG = np.int64(-3)
"""Error sentinels returned by :func:`encode_one` (codes are int64; every code of a format of up
to 32 bits is non-negative, so no sentinel is a code)."""
TABLE_ERR_MIN = np.int64(0xFFFFFFFD)
"""Lookup tables store codes as uint32 (formats of at most 8 bits): the sentinels wrap to
0xFFFFFFFF / 0xFFFFFFFE / 0xFFFFFFFD, so an entry ``>= TABLE_ERR_MIN`` is an error."""


@njit(cache=True, inline="always")
def _sr_up(rem, sh, rnd, srbits, mode):
    """Stochastic decision for the discarded fraction ``f = rem / 2**sh`` (``0 <= f < 1``) and
    the uniform random integer ``rnd`` in ``[0, 2**srbits)``; P3109 / gfloat definitions:

    * ``stochastic``      (gfloat StochasticFastest): ``floor(f * 2**r) + rnd >= 2**r``
    * ``stochastic_fast`` (gfloat StochasticFast): ``floor(f * 2**(r+1)) + 2*rnd + 1 >= 2**(r+1)``
    * ``stochastic_rne``  (gfloat Stochastic): ``RNE(f * 2**r) + rnd >= 2**r``
    * ``stochastic_rno``  (gfloat StochasticOdd): ties of ``f * 2**r`` to odd
    * ``sr_half``         (pychop rmode 6, "SR-50"): up with probability 1/2 when ``f > 0``,
      decided by the top random bit.
    """
    if mode == R_SR_HALF:
        return rem != 0 and ((rnd >> np.uint64(srbits - 1)) & np.uint64(1)) == 1
    nb = srbits + 1 if mode == R_SR_FAST else srbits
    above = False
    tie = False
    if sh <= nb:
        t = rem << np.uint64(nb - sh)
    elif sh - nb >= 64:
        t = np.uint64(0)  # rem < 2**63 <= half of 2**(sh - nb): below the half
    else:
        d = np.uint64(sh - nb)
        t = rem >> d
        low = rem & ((np.uint64(1) << d) - np.uint64(1))
        half = np.uint64(1) << (d - np.uint64(1))
        above = low > half
        tie = low == half
    if mode == R_SR_RNE:
        if above or (tie and (t & np.uint64(1)) == 1):
            t += np.uint64(1)
    elif mode == R_SR_RNO:
        if above or (tie and (t & np.uint64(1)) == 0):
            t += np.uint64(1)
    if mode == R_SR_FAST:
        return t + np.uint64(2) * rnd + np.uint64(1) >= (np.uint64(1) << np.uint64(nb))
    return t + rnd >= (np.uint64(1) << np.uint64(nb))


@njit(cache=True, inline="always")
def _round_sig(sig, sh, neg, mode, rnd, srbits, lsb_flip=0):
    """Round the non-negative integer ``sig * 2**-sh`` to an integer under ``mode``.

    ``lsb_flip`` inverts the code parity seen by the ties-to-even / ties-to-odd / round-to-odd
    modes (exponent-only formats, where the code's last bit is the exponent's, not ``n``'s)."""
    if sh <= 0:
        return sig << np.uint64(-sh)
    if sh >= 64:
        n = np.uint64(0)
        rem = sig
        rem_nonzero = sig != 0
        above = False
        tie = False
    else:
        ush = np.uint64(sh)
        n = sig >> ush
        rem = sig & ((np.uint64(1) << ush) - np.uint64(1))
        half = np.uint64(1) << np.uint64(sh - 1)
        rem_nonzero = rem != 0
        above = rem > half
        tie = rem == half
    if mode >= R_SR:
        if _sr_up(rem, sh, rnd, srbits, mode):
            n += np.uint64(1)
        return n
    odd = ((n & np.uint64(1)) ^ np.uint64(lsb_flip)) == 1
    if mode == R_RNE:
        up = above or (tie and odd)
    elif mode == R_RNA:
        up = above or tie
    elif mode == R_RNZ:
        up = above
    elif mode == R_RNO:
        up = above or (tie and not odd)
    elif mode == R_RNP:  # ties toward +Inf: away for a positive value, toward 0 for a negative
        up = above or (tie and not neg)
    elif mode == R_RNM:  # ties toward -Inf
        up = above or (tie and neg)
    elif mode == R_RUP:
        up = rem_nonzero and not neg
    elif mode == R_RDOWN:
        up = rem_nonzero and neg
    elif mode == R_RTO:
        up = rem_nonzero and not odd
    else:  # R_RTZ
        up = False
    if up:
        n += np.uint64(1)
    return n


@njit(cache=True)
def _overflow_code(P, neg, mode):
    ovf = P[P_OVF]
    sbit = np.int64(1) << np.int64(P[P_EBITS] + P[P_MBITS]) if P[P_SIGNED] else np.int64(0)
    sgn = sbit if neg else np.int64(0)
    if ovf == O_ERROR:
        return ERR_OVERFLOW
    if ovf == O_NONSAT:
        # IEEE 754 7.4: directed roundings toward zero deliver the largest finite number
        to_max = mode == R_RTZ or (mode == R_RUP and neg) or (mode == R_RDOWN and not neg)
        if not to_max:
            if P[P_INF]:
                return sgn | np.int64(P[P_INFCODE])
            if P[P_NANK] == NK_FNUZ:
                return np.int64(P[P_NANCODE])
            if P[P_NANK] != NK_NONE:
                return sgn | np.int64(P[P_NANCODE])
    if not P[P_SIGNED] and neg:
        return np.int64(0)  # +0, or 2^emin (code 0) for a format without zero
    return sgn | np.int64(P[P_MAXCODE])


@njit(cache=True)
def _negative_unsigned_code(P, mode):
    """Code for a negative input to an unsigned float format (with a zero) whose magnitude does
    not round to 0 (pychop's P3109 rule): the inward directed roundings (rtz, rup) give +0;
    otherwise ``"error"`` raises, ``"nonsat"`` gives NaN where the format has one, and
    ``"saturate"`` / ``"propagate"`` give +0."""
    if mode == R_RTZ or mode == R_RUP:
        return np.int64(0)
    if P[P_OVF] == O_ERROR:
        return ERR_NEG
    if P[P_OVF] == O_NONSAT and P[P_NANK] != NK_NONE:
        return np.int64(P[P_NANCODE])
    return np.int64(0)


@njit(cache=True)
def _nan_code(P, neg):
    nk = P[P_NANK]
    if nk == NK_NONE:
        pol = P[P_NANPOL]
        if pol == NI_ERROR:
            return ERR_NAN
        if pol == NI_ZERO:
            return np.int64(0)
        return np.int64(P[P_MAXCODE])
    if nk == NK_FNUZ or not P[P_SIGNED]:
        return np.int64(P[P_NANCODE])
    sbit = np.int64(1) << np.int64(P[P_EBITS] + P[P_MBITS])
    return (sbit if neg else np.int64(0)) | np.int64(P[P_NANCODE])


@njit(cache=True)
def encode_one(u, SM, SE, shift, P, rnd):
    """Code of the value with IEEE bit pattern ``u`` (``SE`` exponent / ``SM`` mantissa bits)
    divided by ``2**shift``."""
    sbias = (1 << (SE - 1)) - 1
    neg = ((u >> np.uint64(SE + SM)) & np.uint64(1)) == 1
    ef = np.int64((u >> np.uint64(SM)) & np.uint64((1 << SE) - 1))
    f = u & np.uint64((1 << SM) - 1)
    mode = P[P_ROUND]
    signed = P[P_SIGNED] == 1
    ebits = P[P_EBITS]
    mbits = P[P_MBITS]
    if ef == (1 << SE) - 1:
        if f != 0:
            return _nan_code(P, neg)
        # +-Inf
        if P[P_KIND] == KIND_INT:
            if P[P_OVF] == O_ERROR:
                return ERR_OVERFLOW
            if P[P_OVF] == O_WRAP or P[P_OVF] == O_SAT_ZERO:
                return np.int64(0)  # AP_WRAP: Inf = 2^1024 has no low bits; AP_SAT_ZERO: 0
            q = P[P_QMIN] if neg else P[P_QMAX]
            if neg and P[P_OVF] == O_SAT_SYM and P[P_SIGNED]:
                q = -P[P_QMAX]
            return np.int64(q & ((1 << ebits) - 1))
        if P[P_INF] and (signed or not neg) and P[P_OVF] != O_SATURATE:
            sbit = np.int64(1) << np.int64(ebits + mbits) if signed else np.int64(0)
            return (sbit if neg else np.int64(0)) | np.int64(P[P_INFCODE])
        if P[P_OVF] == O_ERROR:
            return ERR_OVERFLOW
        if P[P_OVF] == O_NONSAT and P[P_NANK] != NK_NONE:
            return _nan_code(P, neg)
        return _overflow_code(P, neg, R_RNE)
    if ef == 0 and f == 0:
        return _zero_code(P, neg)
    if ef == 0:
        sig = f
        E = 1 - sbias - SM
        lb = E
        t = f
        while t > np.uint64(1):
            t >>= np.uint64(1)
            lb += 1
    else:
        sig = f | (np.uint64(1) << np.uint64(SM))
        E = ef - sbias - SM
        lb = ef - sbias
    E -= shift
    lb -= shift
    neg_unsigned = neg and not signed and P[P_KIND] == KIND_FLOAT
    if neg_unsigned and not P[P_ZERO]:
        # negative input to a format without zero (E8M0): ml_dtypes' rule
        if P[P_OVF] == O_ERROR:
            return ERR_NEG
        if P[P_OVF] == O_NONSAT and P[P_NANK] != NK_NONE:
            return np.int64(P[P_NANCODE])
        return np.int64(0)  # 2^emin (code 0)
    if P[P_KIND] == KIND_INT:
        return _encode_int(sig, E, lb, neg, P, rnd)
    emin = P[P_EMIN]
    if lb >= emin:
        qexp = lb - mbits
    elif P[P_SUBN] and P[P_ZERO]:
        qexp = emin - mbits
    else:
        qexp = emin  # no subnormals: the grid below min_normal is {0, min_normal}
    # guard against absurd exponents (far beyond the format): decide overflow early
    if lb > P[P_MAXF] - P[P_BIAS] + 2:
        if neg_unsigned:
            return _negative_unsigned_code(P, mode)
        return _overflow_code(P, neg, mode)
    flip = 0
    if mbits == 0 and lb >= emin:
        flip = 1 ^ ((lb + P[P_BIAS]) & 1)  # n == 1 here: the code parity is the exponent's
    n = _round_sig(sig, qexp - E, neg, mode, rnd, P[P_SRBITS], flip)
    if n == 0:
        if not P[P_ZERO]:
            return np.int64(0)
        return _zero_code(P, neg)
    one = np.uint64(1) << np.uint64(mbits)
    if lb < emin and not (P[P_SUBN] and P[P_ZERO]):
        # rounded to min_normal (n == 1 at quantum 2**emin)
        field = emin + P[P_BIAS]
        mant = np.int64(0)
    elif n >= one:
        if n >= (one << np.uint64(1)):
            n >>= np.uint64(1)
            qexp += 1
        field = qexp + mbits + P[P_BIAS]
        mant = np.int64(n - one)
    else:
        field = 0
        mant = np.int64(n)
    over = field > P[P_MAXF] or (field == P[P_MAXF] and mant > P[P_MAXM])
    if P[P_FLUSH] and field == 0 and P[P_ZERO] and not over:
        return _zero_code(P, neg)
    if neg_unsigned:
        return _negative_unsigned_code(P, mode)
    if over:
        return _overflow_code(P, neg, mode)
    code = np.int64((field << mbits) | mant)
    if signed and neg:
        code |= np.int64(1) << np.int64(ebits + mbits)
    return code


@njit(cache=True, inline="always")
def _zero_code(P, neg):
    if not P[P_ZERO]:
        # no zero (E8M0): a zero input is NaN under nonsat (ml_dtypes), min under saturate
        if P[P_OVF] == O_NONSAT and P[P_NANK] != NK_NONE:
            return np.int64(P[P_NANCODE])
        if P[P_OVF] == O_ERROR:
            return ERR_OVERFLOW
        return np.int64(0)
    if neg and P[P_SIGNED] and P[P_NANK] != NK_FNUZ and P[P_KIND] == KIND_FLOAT:
        return np.int64(1) << np.int64(P[P_EBITS] + P[P_MBITS])
    return np.int64(0)


@njit(cache=True)
def _encode_int(sig, E, lb, neg, P, rnd):
    """Two's-complement code of the rounded ``q = round(x * 2**frac)``. Out of ``[qmin, qmax]``:
    saturate / error / ``"sat_zero"`` (0, HLS AP_SAT_ZERO) / ``"wrap"`` (``q mod 2**bits``, HLS
    AP_WRAP: the low bits of the exactly rounded integer, also for huge inputs) /
    ``"sat_sym"`` (saturate to ``[-qmax, qmax]``: ``qmin`` itself becomes ``-qmax``, HLS
    AP_SAT_SYM)."""
    bits = P[P_EBITS]  # int formats store their width here
    qexp = -P[P_FRAC]
    sh = qexp - E
    if P[P_OVF] == O_WRAP:
        # only q mod 2**bits matters: uint64 arithmetic is exact modulo 2**64
        n = np.uint64(0) if sh <= -64 else _round_sig(sig, sh, neg, P[P_ROUND], rnd,
                                                       P[P_SRBITS])
        if neg:
            n = ~n + np.uint64(1)
        return np.int64(n & np.uint64((1 << bits) - 1))
    if lb - qexp > 40:
        n = np.uint64(1) << np.uint64(41)
    else:
        n = _round_sig(sig, sh, neg, P[P_ROUND], rnd, P[P_SRBITS])
    q = -np.int64(n) if neg else np.int64(n)
    qmin = P[P_QMIN]
    if P[P_OVF] == O_SAT_SYM and P[P_SIGNED]:
        qmin = -P[P_QMAX]
    if q > P[P_QMAX] or q < qmin:
        if P[P_OVF] == O_ERROR:
            return ERR_OVERFLOW
        if P[P_OVF] == O_SAT_ZERO:
            return np.int64(0)
        q = P[P_QMAX] if q > P[P_QMAX] else qmin
    return np.int64(q & ((1 << bits) - 1))


GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, inline="always")
def random_bits(key, index, srbits):
    """Uniform random integer in ``[0, 2**srbits)`` for element ``index`` (see the module
    docstring): the top ``srbits`` bits of SplitMix64's output for counter ``index``."""
    z = key + (np.uint64(index) + np.uint64(1)) * GOLDEN_GAMMA
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return z >> np.uint64(64 - srbits)


@dual_kernel
def encode_kernel(u, SM, SE, shift, rowlen, P, key, offset, out):
    """Encode a flat array of bit patterns ``u``: element ``i`` is divided by
    ``2**shift[i // rowlen]`` and, under a stochastic rounding, draws the random integer of
    index ``offset + i`` (:func:`random_bits` with ``key``)."""
    n = u.shape[0]
    stochastic = P[P_ROUND] >= R_SR
    srbits = P[P_SRBITS]
    for i in prange(n):
        r = random_bits(key, offset + i, srbits) if stochastic else np.uint64(0)
        out[i] = encode_one(np.uint64(u[i]), SM, SE, shift[i // rowlen], P, r)


@dual_kernel
def quantize_kernel(u, SM, SE, shift, rowlen, P, key, offset, lut, codes_out, vals_out):
    """:func:`encode_kernel` and decode through ``lut`` in one pass; errors keep their
    sentinel code (value NaN)."""
    n = u.shape[0]
    stochastic = P[P_ROUND] >= R_SR
    srbits = P[P_SRBITS]
    nl = lut.shape[0]
    for i in prange(n):
        r = random_bits(key, offset + i, srbits) if stochastic else np.uint64(0)
        c = encode_one(np.uint64(u[i]), SM, SE, shift[i // rowlen], P, r)
        codes_out[i] = c
        if 0 <= c < nl:
            vals_out[i] = lut[c]
        else:
            vals_out[i] = np.nan


@dual_kernel
def decode_kernel(codes, P, out):
    """Decode float-format codes to float64 (formats too wide for a lookup table)."""
    ebits = P[P_EBITS]
    mbits = P[P_MBITS]
    bias = P[P_BIAS]
    nk = P[P_NANK]
    mmask = (1 << mbits) - 1
    emask = (1 << ebits) - 1
    for i in prange(codes.shape[0]):
        c = np.int64(codes[i])
        m = c & mmask
        e = (c >> mbits) & emask
        s = (c >> (mbits + ebits)) & 1 if P[P_SIGNED] else 0
        if nk == NK_FNUZ and c == P[P_NANCODE]:
            out[i] = np.nan
            continue
        if nk == NK_IEEE and e == emask:
            out[i] = (-np.inf if s else np.inf) if (m == 0 and P[P_INF]) else np.nan
            continue
        if nk == NK_FN and e == emask and m == mmask:
            out[i] = np.nan
            continue
        if nk != NK_IEEE and P[P_INF] and ((e << mbits) | m) == P[P_INFCODE]:
            out[i] = -np.inf if s else np.inf  # Inf below the top NaN (P3109 extended)
            continue
        if e == 0 and P[P_ZERO]:
            v = np.ldexp(np.float64(m), 1 - bias - mbits) if P[P_SUBN] else 0.0
        else:
            v = np.ldexp(np.float64((1 << mbits) + m), e - bias - mbits)
        out[i] = -v if s else v
