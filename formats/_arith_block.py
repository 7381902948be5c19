"""Fused MX block path: statistics, power-of-two scale and element rounding in one pass per row.

For float32 input, a block format with a power-of-two scale rule (``floor`` / ``ceil`` /
``rceil`` / ``even``, :mod:`lowbit.formats.scale_rules`) and an element format the branch-free
path of :mod:`lowbit.formats._arith` takes, :func:`mx_encode_rows` computes, per block (row of
``k`` elements, L1-resident):

1. ``amax`` = the largest magnitude bit pattern ``u & 0x7FFFFFFF`` (float32 magnitudes order
   like their patterns); ``amax >= 0x7F800000``: the block holds NaN / Inf (codes 0, values
   NaN, flagged ``bad``, as the block engine's rule says).
2. the scale exponent ``e`` from ``amax``'s bits (:func:`rule_exponent`), clamped to the scale
   format's exponent range: the same integer :func:`lowbit.formats.scale_rules.pow2_exponent`
   and :func:`lowbit.formats.block_scales.clamp_exp` compute from the float64 amax (frexp);
   ``tests/formats/test_arith_block.py`` compares them on every float32 exponent with the
   mantissas at each rule's decision points.
3. the elements, each divided by ``2**e`` (exact) and rounded. The division is the exponent
   subtraction ``a - (e << 23)`` on the magnitude pattern ``a``, exact where the quotient is a
   normal float32; the rounding is the fast formula of :mod:`lowbit.formats._arith`
   (``_code_mag`` / ``_value_mag``), clamped by ``Q[A_CLAMP]``; the value is multiplied back
   by ``2**e`` by adding ``e << 23`` to the float32 bits of a nonzero value.

Proof obligation (equality with the exact kernel, ``_kernel.encode_one`` with shift ``e``, and
the value ``values[code] * 2**e`` rounded once to float32, as :func:`lowbit.formats._lut.
lut_block_encode` computes). A block takes the formula above only when all of these hold, and
goes element by element through the exact kernel otherwise:

* ``(amax >> 23) - e <= 254``: every quotient is below ``2**128`` (finite);
* ``e >= 0``, or the block holds no nonzero float32 subnormal (its quotient by a scale below
  one would need a renormalisation the exponent subtraction does not do);
* the quotient of ``amax`` is below ``Q[A_ALIM]`` (no element overflows, except where the
  overflow answer is the clamp: see :mod:`lowbit.formats._arith`);
* values only: every nonzero result ``v`` (``q <= v <= max``, ``q`` the subnormal quantum) times
  ``2**e`` is a normal float32, i.e. ``exp(q) + e >= 1`` and ``exp(max) + e <= 254``
  (biased exponents), or the block is all zero.

(For the power-of-two rules over E8M0 / FP32 scales the first and last conditions follow from
the others and the rule; they stay as checks, so the proof does not depend on the rule.)
Under these, an element with biased exponent ``ex >= e + 1`` has the normal float32 quotient
``a - (e << 23)`` (same mantissa, exponent ``ex - e`` in ``1..254``); one with ``ex <= e`` (zero
and float32 subnormals included, ``e >= 0``) or zero has a quotient below ``2**-126 <= q / 2``
(the path needs ``q >= 2**-125``), which rounds to a signed zero, and the formula is given the
pattern 0, whose result is 0: so the formula sees the exact quotient or one with the same
result, and its equality with the exact kernel is that of :mod:`lowbit.formats._arith`.
A value ``v`` times ``2**e`` is exact in float32 (normal result), which is the float64
product rounded to float32; a zero stays a signed zero.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from lowbit.formats import _kernel as K
from lowbit.formats._arith import (
    A_ALIM,
    A_BASE,
    A_C,
    A_CLAMP,
    A_HI,
    A_RND,
    A_SH,
    A_SSH,
    A_T,
    _add32,
    _bits_f32,
    _code_mag,
    _f32_bits,
    _shl32,
    _shr32,
    _sub32,
    _umax32,
    _umin32,
    _value_mag,
)
from lowbit.formats.scale_rules import POW2_RULES, exponent_range

R_RULE, R_EMAX, R_KMAX, R_MMAX, R_EVEN_SH, R_ELO, R_EHI, R_QEXP, R_VEXP = range(9)
R_LEN = 9
ZERO_EXP = -(10 ** 6)
"""The unclamped exponent of an all-zero block (as :func:`pow2_exponent` gives it)."""
F32_INF = 0x7F800000
F32_NAN = 0x7FC00000
F32_MIN_NORMAL = 0x800000


def rule_params(fmt) -> np.ndarray | None:
    """The int64 parameter vector of :func:`rule_exponent` for a block format whose scale
    rule is a power-of-two rule over a float element format, else None."""
    el, rule = fmt.element, fmt.scale_rule
    if not isinstance(rule, str) or rule not in POW2_RULES or not fmt.symmetric:
        return None
    if el.kind != "float" or not 1 <= el.mbits <= 22 or fmt.tensor_scale:
        return None
    if fmt.scale is not None and (fmt.scale.kind != "float" or fmt.scale.mbits != 0):
        return None
    mx = np.float32(el.max)
    if float(mx) != float(el.max) or not np.isfinite(mx):
        return None
    mbits_f32 = int(np.array(mx).view(np.uint32))
    lo, hi = exponent_range(fmt.scale)
    R = np.zeros(R_LEN, np.int64)
    R[R_RULE] = POW2_RULES.index(rule)
    R[R_EMAX] = el.emax
    R[R_KMAX] = ((mbits_f32 >> 23) & 0xFF) - 127
    R[R_MMAX] = mbits_f32 & 0x7FFFFF
    R[R_EVEN_SH] = 23 - el.mbits
    R[R_ELO], R[R_EHI] = lo, hi
    R[R_QEXP] = 127 + 1 - el.bias - el.mbits
    R[R_VEXP] = R[R_KMAX] + 127
    R.setflags(write=False)
    return R


def scale_table(fmt) -> np.ndarray:
    """``2.0 ** e`` (float64) for ``e`` in the scale format's exponent range ``lo..hi``."""
    lo, hi = exponent_range(fmt.scale)
    return np.ldexp(1.0, np.arange(lo, hi + 1))


def scale_code_table(fmt, scale_codes) -> np.ndarray:
    """Code of every scale ``2**e``, ``e`` in the scale format's exponent range ``lo..hi``,
    then the code of a NaN / Inf block: ``scale_codes(scales, bad, fmt.scale)`` (the block
    engine's function) of those scales, a NaN / Inf block having amax 0 (so ``e = lo``)."""
    lo, hi = exponent_range(fmt.scale)
    e = np.arange(lo, hi + 2)
    bad = e > hi
    e[bad] = lo
    return np.ascontiguousarray(scale_codes(np.ldexp(1.0, e), bad, fmt.scale))


@njit(cache=True, nogil=True)
def rule_exponent(amax, R):
    """Clamped scale exponent of a block whose largest magnitude has the finite float32 bit
    pattern ``amax`` (see the module docstring)."""
    if amax == 0:
        e = np.int64(ZERO_EXP)
    else:
        if amax >= np.uint32(F32_MIN_NORMAL):
            fl = np.int64(amax >> np.uint32(23)) - 127
            mant = amax & np.uint32(0x7FFFFF)
        else:  # subnormal: normalise through the (exact) integer -> float32 conversion
            fb = _f32_bits(np.float32(amax))
            fl = np.int64(fb >> np.uint32(23)) - 127 - 149
            mant = fb & np.uint32(0x7FFFFF)
        rule = R[R_RULE]
        if rule == 0:  # floor
            e = fl - R[R_EMAX]
        elif rule == 1:  # ceil
            e = fl + np.int64(mant != 0) - R[R_EMAX]
        elif rule == 2:  # rceil: amax <= max * 2**(fl - kmax) iff mant <= mant(max)
            e = fl - R[R_KMAX] + np.int64(mant > np.uint32(R[R_MMAX]))
        else:  # even: RNE of amax to the element's mantissa width carries into the next binade
            sh = np.uint32(R[R_EVEN_SH])
            rnd = _sub32(_shl32(np.uint32(1), _sub32(sh, np.uint32(1))), np.uint32(1))
            r = mant + rnd + (_shr32(mant, sh) & np.uint32(1))
            e = fl + np.int64(r >> np.uint32(23)) - R[R_EMAX]
    return min(max(e, R[R_ELO]), R[R_EHI])


@njit(cache=True, nogil=True)
def rule_exponents(amax_bits, R, out):
    """:func:`rule_exponent` of every pattern of ``amax_bits`` (for tests)."""
    for i in range(amax_bits.shape[0]):
        out[i] = rule_exponent(amax_bits[i], R)


GROUP_ELEMS = 2048
"""Elements per group of blocks: the statistics and scales of a group's blocks are computed
first, then its elements in one flat (vectorised) loop that reads each element's scale from a
group buffer, then its exact-kernel and NaN blocks."""
FAST, EXACT, BAD = 0, 1, 2


@njit(cache=True, nogil=True)
def mx_encode_rows(u, nrows, k, R, Qc, Qv, P, vtab, stab, ptab, codes_out, vals_out, e_out,
                   scale_out, scode_out, bad_out):
    """Encode ``nrows`` blocks of ``k`` float32 bit patterns ``u`` (row-major). Writes codes
    (``codes_out``, any unsigned dtype, or empty), float32 value bits (``vals_out`` uint32, or
    empty), the clamped scale exponent ``e_out`` (int64; the smallest one for a block with NaN
    / Inf) and ``bad_out`` (the block held NaN / Inf); unless empty, the scale ``scale_out``
    (float64 ``2**e``, NaN for a NaN / Inf block) and its code ``scode_out = stab[e - lo]``
    (``stab[-1]`` for a NaN / Inf block, :func:`scale_code_table`; ``ptab[e - lo] = 2**e``,
    :func:`scale_table`). ``Qc`` / ``Qv`` are the
    :func:`lowbit.formats._arith.arith_params` of codes / values, ``P`` / ``vtab`` the exact
    kernel's parameter vector and value table. Returns the number of error sentinels met in
    blocks that went through the exact kernel.

    Unsigned indices in the per-block loops: numba adds a negative-index wraparound to signed
    ones, which keeps these short loops from vectorising."""
    want_codes = codes_out.shape[0] == u.shape[0]
    want_vals = vals_out.shape[0] == u.shape[0]
    want_scales = scale_out.shape[0] == nrows
    want_scodes = scode_out.shape[0] == nrows
    lo = R[R_ELO]
    G = max(1, GROUP_ELEMS // max(k, 1))
    uk = np.uint64(k)
    ebuf = np.empty(G * k, np.uint32)  # per element: e << 23 (mod 2**32)
    tbuf = np.empty(G * k, np.uint32)  # per element: smallest pattern with a normal quotient
    status = np.empty(G, np.int8)
    mask = np.uint32(0x7FFFFFFF)
    alim = _umin32(Qc[A_ALIM], Qv[A_ALIM])
    nbad = 0
    for g0 in range(0, nrows, G):
        g1 = min(g0 + G, nrows)
        for r in range(g0, g1):
            i0 = np.uint64(r) * uk
            b0 = np.uint64(r - g0) * uk
            amax = np.uint32(0)
            for j in range(uk):
                amax = _umax32(u[i0 + j] & mask, amax)
            if amax >= np.uint32(F32_INF):
                status[r - g0] = BAD
                bad_out[r] = True
                e_out[r] = lo
                if want_scales:
                    scale_out[r] = np.nan
                if want_scodes:
                    scode_out[r] = stab[stab.shape[0] - 1]
                for j in range(uk):
                    ebuf[b0 + j] = 0
                    tbuf[b0 + j] = 0
                continue
            bad_out[r] = False
            e = rule_exponent(amax, R)
            e_out[r] = e
            if want_scales:
                scale_out[r] = ptab[e - lo]
            if want_scodes:
                scode_out[r] = stab[e - lo]
            E23 = _shl32(np.uint32(e & 0xFFFFFFFF), np.uint32(23))
            thr = np.uint32(((e + 1) << 23) if e >= 0 else 1)
            fast = np.int64(amax >> np.uint32(23)) - e <= 254
            if fast and amax >= thr and _sub32(amax, E23) >= alim:
                fast = False
            if fast and e < 0:
                low = mask
                for j in range(uk):
                    low = _umin32(_sub32(u[i0 + j] & mask, np.uint32(1)), low)
                fast = low >= np.uint32(F32_MIN_NORMAL - 1)
            if fast and want_vals and amax != 0:
                fast = R[R_QEXP] + e >= 1 and R[R_VEXP] + e <= 254
            status[r - g0] = FAST if fast else EXACT
            for j in range(uk):
                ebuf[b0 + j] = E23
                tbuf[b0 + j] = thr
        n0, n1 = g0 * k, g1 * k
        if want_codes:
            _codes_loop(u[n0:n1], Qc, ebuf, tbuf, codes_out[n0:n1])
        if want_vals:
            _values_loop(u[n0:n1], Qv, ebuf, tbuf, vals_out[n0:n1])
        for r in range(g0, g1):
            st = status[r - g0]
            if st == FAST:
                continue
            i0 = r * k
            if st == BAD:
                for j in range(i0, i0 + k):
                    if want_codes:
                        codes_out[j] = 0
                    if want_vals:
                        vals_out[j] = np.uint32(F32_NAN)
                continue
            e = e_out[r]
            scale = ptab[e - lo]
            for j in range(i0, i0 + k):
                c = K.encode_one(np.uint64(u[j]), 23, 8, e, P, np.uint64(0))
                ok = 0 <= c < vtab.shape[0]
                if not ok:
                    nbad += 1
                if want_codes:
                    codes_out[j] = c if ok else 0
                if want_vals:
                    vals_out[j] = _f32_bits(np.float32(vtab[c] * scale)) if ok else np.uint32(
                        F32_NAN)
    return nbad


@njit(cache=True, nogil=True)
def _codes_loop(u, Q, ebuf, tbuf, out):
    sh, rnd, base, T, cb = Q[A_SH], Q[A_RND], Q[A_BASE], Q[A_T], Q[A_C]
    c = _bits_f32(cb)
    clamp = Q[A_CLAMP]
    sign_sh = _sub32(np.uint32(31), Q[A_SSH])
    sign_bit = _shl32(np.uint32(1), Q[A_SSH])
    mask = np.uint32(0x7FFFFFFF)
    for i in range(u.shape[0]):
        v = u[i]
        a = v & mask
        aq = _sub32(a, ebuf[i]) if a >= tbuf[i] else np.uint32(0)
        m = _umin32(_code_mag(aq, sh, rnd, base, T, c, cb), clamp)
        out[i] = m | (_shr32(v, sign_sh) & sign_bit)


@njit(cache=True, nogil=True)
def _values_loop(u, Q, ebuf, tbuf, out):
    sh, rnd, hi, T = Q[A_SH], Q[A_RND], Q[A_HI], Q[A_T]
    c = _bits_f32(Q[A_C])
    clamp = Q[A_CLAMP]
    mask = np.uint32(0x7FFFFFFF)
    for i in range(u.shape[0]):
        v = u[i]
        a = v & mask
        E = ebuf[i]
        aq = _sub32(a, E) if a >= tbuf[i] else np.uint32(0)
        m = _umin32(_value_mag(aq, sh, rnd, hi, T, c), clamp)
        m = _add32(m, E) if m != np.uint32(0) else m
        out[i] = m | (v & ~mask)
