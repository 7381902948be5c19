"""Fused MX block path: statistics, power-of-two scale and element rounding in one pass per row.

For float32 input, a block format with a power-of-two scale rule (``floor`` / ``ceil`` /
``rceil`` / ``even``, :mod:`lowbit.formats.scale_rules`) and an element format the branch-free
path of :mod:`lowbit.formats._arith` takes, :func:`mx_encode_rows` computes, per group of
blocks (rows of ``k`` elements, :data:`GROUP_ELEMS` elements in all, L1-resident):

1. per block, ``amax`` = the largest magnitude bit pattern ``u & 0x7FFFFFFF`` (float32
   magnitudes order like their patterns); ``amax >= 0x7F800000``: the block holds NaN / Inf
   (codes 0, values NaN, flagged ``bad``, as the block engine's rule says).
2. per block, the scale exponent ``e`` from ``amax``'s bits (:func:`rule_exponents`, one
   branch-free loop over the group's blocks), clamped to the scale format's exponent range: the
   same integer :func:`lowbit.formats.scale_rules.pow2_exponent` and
   :func:`lowbit.formats.block_scales.clamp_exp` compute from the float64 amax (frexp);
   ``tests/formats/test_arith_block.py`` compares them on every float32 exponent with the
   mantissas at each rule's decision points. Then, per block, which path it takes (below), the
   scale ``2**e`` (built from its float64 bits) and the scale code.
3. per block, its elements with the block's ``e`` broadcast (a loop of ``k`` iterations, no
   per-element scale buffer): each divided by ``2**e`` (exact) and rounded. The division is the
   exponent subtraction ``a - (e << 23)`` on the magnitude pattern ``a``, exact where the
   quotient is a normal float32; the rounding is the fast formula of :mod:`lowbit.formats._arith`
   (``_code_mag`` / ``_value_mag``), clamped by ``Q[A_CLAMP]``; the value is multiplied back
   by ``2**e`` by adding ``e << 23`` to the float32 bits of a nonzero value. The next group's
   input is prefetched meanwhile (step 1 would otherwise wait on memory).

Proof obligation (equality with the exact kernel, ``_kernel.encode_one`` with shift ``e``, and
the value ``values[code] * 2**e`` rounded once to float32, as :func:`lowbit.formats._lut.
lut_block_encode` computes). ``q = 2**qe`` is the element's subnormal quantum (the path needs
``qe >= -125``). A block takes the formula above only when all of these hold, and goes element
by element through the exact kernel otherwise:

* ``(amax >> 23) - e <= 254``: every quotient is below ``2**128`` (finite);
* ``e >= esub = -125 - qe``, or the block holds no nonzero float32 subnormal (a float32
  subnormal's quotient by a smaller scale may be a nonzero element, and would need a
  renormalisation the exponent subtraction does not do);
* the quotient of ``amax`` is below ``Q[A_ALIM]`` (no element overflows, except where the
  overflow answer is the clamp: see :mod:`lowbit.formats._arith`);
* values only: every nonzero result ``v`` (``q <= v <= max``) times ``2**e`` is a normal
  float32, i.e. ``exp(q) + e >= 1`` and ``exp(max) + e <= 254`` (biased exponents), or the
  block is all zero.

(For the power-of-two rules over E8M0 / FP32 scales the first and last conditions follow from
the others and the rule; they stay as checks, so the proof does not depend on the rule.)
Under these, with ``thr = max(e + 1, 1) << 23``: an element with biased exponent
``ex >= max(e + 1, 1)`` (``a >= thr``) has the normal float32 quotient ``a - (e << 23)`` (same
mantissa, exponent ``ex - e`` in ``1..254``). Every other element (``a < thr``) gets the
pattern 0, whose result is 0, and its exact quotient rounds to a signed zero too: a zero; one
with ``1 <= ex <= e`` (``e >= 0``) has a quotient below ``2**-126 <= q / 2``; a float32
subnormal (``ex = 0``, ``|x| < 2**-126``) has one below ``2**(-126 - e)``, which is at most
``2**-126`` for ``e >= 0`` and ``2**(qe - 1) = q / 2`` for ``esub <= e < 0``, and there is none
for ``e < esub``; a quotient below ``q / 2`` rounds to zero. So the formula sees the exact
quotient or one with the same result, and its equality with the exact kernel is that of
:mod:`lowbit.formats._arith`. A value ``v`` times ``2**e`` is exact in float32 (normal result),
which is the float64 product rounded to float32; a zero stays a signed zero.
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
    _bits_f64,
    _code_mag,
    _f32_bits,
    _prefetch,
    _prefetch_w,
    _shl32,
    _shr32,
    _sub32,
    _sub_if_ge32,
    _umin32,
    _value_mag,
)
from lowbit.formats._simd import block_maxima
from lowbit.formats.scale_rules import POW2_RULES, exponent_range

R_RULE, R_EMAX, R_KMAX, R_MMAX, R_EVEN_SH, R_ELO, R_EHI, R_QEXP, R_VEXP = range(9)
R_LEN = 9
ZERO_EXP = -(10 ** 6)
"""The unclamped exponent of an all-zero block (as :func:`pow2_exponent` gives it)."""
F32_INF = 0x7F800000
F32_NAN = 0x7FC00000
F32_MIN_NORMAL = 0x800000


def rule_params(fmt) -> np.ndarray | None:
    """The int64 parameter vector of :func:`rule_exponents` for a block format whose scale
    rule is a power-of-two rule over a float element format, else None. The scale format's
    smallest exponent ``lo`` must lie in ``[-1022, 0]`` (every scale exponent is then at most
    ``128``, so ``(e + 1) << 23`` fits in 32 bits, and ``2**e`` is a normal float64)."""
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
    if not -1022 <= lo <= 0 or el.emax < 0:
        return None
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


def scale_code_table(fmt, scale_codes) -> np.ndarray | None:
    """Code of every scale ``2**e``, ``e`` in the scale format's exponent range ``lo..hi``,
    then the code of a NaN / Inf block: ``scale_codes(scales, bad, fmt.scale)`` (the block
    engine's function) of those scales, a NaN / Inf block having amax 0 (so ``e = lo``). None
    unless the codes of ``lo..hi`` are consecutive (E8M0: ``e + 127``), which
    :func:`mx_encode_rows` relies on."""
    lo, hi = exponent_range(fmt.scale)
    e = np.arange(lo, hi + 2)
    bad = e > hi
    e[bad] = lo
    tab = np.ascontiguousarray(scale_codes(np.ldexp(1.0, e), bad, fmt.scale))
    step = tab[:-1].astype(np.int64) - int(tab[0])
    return tab if np.array_equal(step, np.arange(hi - lo + 1)) else None


@njit(cache=True, nogil=True, inline="always")
def _exp_mant(a):
    """``(floor(log2 x), mantissa field)`` of the float32 magnitude pattern ``a`` (nonzero,
    finite): a float32 subnormal is normalised through the (exact) integer -> float32
    conversion of its pattern, ``x = a * 2**-149``. Branch-free, so a loop over blocks
    vectorises."""
    sub = a < np.uint32(F32_MIN_NORMAL)
    fb = _f32_bits(np.float32(a)) if sub else a
    fl = np.int64(_shr32(fb, np.uint32(23))) - (127 + 149 if sub else 127)
    return fl, fb & np.uint32(0x7FFFFF)


@njit(cache=True, nogil=True, inline="always")
def _clamped(e, a, lo, hi):
    """``e`` clamped to ``[lo, hi]``; ``lo`` for an all-zero block (``a == 0``: ``pow2_exponent``
    gives it :data:`ZERO_EXP`, which the clamp raises to ``lo``)."""
    return lo if a == np.uint32(0) else min(max(e, lo), hi)


@njit(cache=True, nogil=True)
def rule_exponents(amax_bits, R, out):
    """Clamped scale exponent ``out[i]`` (int64) of a block whose largest magnitude has the
    finite float32 bit pattern ``amax_bits[i]`` (module docstring, step 2; a pattern >= Inf
    gives a meaningless exponent). One loop per rule, branch-free, vectorised across blocks:

    * ``floor``: ``floor(log2 amax) - emax``;
    * ``ceil``: ``ceil(log2 amax) - emax`` (one more unless the mantissa field is 0);
    * ``rceil``: the smallest ``e`` with ``amax <= max * 2**e``: ``amax <= max * 2**(fl - kmax)``
      exactly when its mantissa field is at most that of ``max`` (same binade);
    * ``even``: ``floor(log2 RNE(amax))`` (amax rounded to the element's mantissa width, which
      may carry into the next binade) ``- emax``."""
    n = amax_bits.shape[0]
    rule, emax, kmax = R[R_RULE], R[R_EMAX], R[R_KMAX]
    mmax = np.uint32(R[R_MMAX])
    lo, hi = R[R_ELO], R[R_EHI]
    sh = np.uint32(R[R_EVEN_SH])
    rnd = _sub32(_shl32(np.uint32(1), _sub32(sh, np.uint32(1))), np.uint32(1))
    if rule == 0:
        for i in range(n):
            a = amax_bits[i]
            fl, mant = _exp_mant(a)
            out[i] = _clamped(fl - emax, a, lo, hi)
    elif rule == 1:
        for i in range(n):
            a = amax_bits[i]
            fl, mant = _exp_mant(a)
            out[i] = _clamped(fl + np.int64(mant != np.uint32(0)) - emax, a, lo, hi)
    elif rule == 2:
        for i in range(n):
            a = amax_bits[i]
            fl, mant = _exp_mant(a)
            out[i] = _clamped(fl - kmax + np.int64(mant > mmax), a, lo, hi)
    else:
        for i in range(n):
            a = amax_bits[i]
            fl, mant = _exp_mant(a)
            r = _add32(_add32(mant, rnd), _shr32(mant, sh) & np.uint32(1))
            out[i] = _clamped(fl + np.int64(_shr32(r, np.uint32(23))) - emax, a, lo, hi)


GROUP_ELEMS = 2048
"""Elements per group of blocks (L1-resident): the group's block maxima are computed first,
then its scale exponents (one vectorised loop over the blocks), then each block's elements in a
loop with the block's exponent broadcast."""
PREFETCH_ELEMS = GROUP_ELEMS
"""How far ahead (elements) the element loops prefetch the input (one group; the values
output half as far)."""
LINE_ELEMS = 16
"""float32 elements per 64-byte cache line."""
FAST, EXACT, BAD, CHECK = 0, 1, 2, 3


@njit(cache=True, nogil=True)
def mx_encode_rows(u, nrows, k, R, Qc, Qv, P, vtab, stab, ptab, codes_out, vals_out, e_out,
                   scale_out, scode_out, bad_out):
    """Encode ``nrows`` blocks of ``k`` float32 bit patterns ``u`` (row-major). Writes codes
    (``codes_out``, any unsigned dtype, or empty), float32 value bits (``vals_out`` uint32, or
    empty), the clamped scale exponent ``e_out`` (int64; the smallest one for a block with NaN
    / Inf) and ``bad_out`` (the block held NaN / Inf); unless empty, the scale ``scale_out``
    (float64 ``2**e``, NaN for a NaN / Inf block) and its code ``scode_out = stab[e - lo]``
    (``stab[-1]`` for a NaN / Inf block, :func:`scale_code_table`, whose codes are
    consecutive; ``ptab[e - lo] = 2**e``, :func:`scale_table`). ``Qc`` / ``Qv`` are the
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
    qexp, vexp = R[R_QEXP], R[R_VEXP]
    esub = 2 - qexp  # = -125 - qe (qexp is biased): from 2**esub up, every float32 subnormal
    # quotient rounds to zero
    G = max(1, GROUP_ELEMS // max(k, 1))
    uk = np.uint64(k)
    n = np.uint64(u.shape[0])
    amaxs = np.empty(G, np.uint32)
    E23s = np.empty(G, np.uint32)  # e << 23 (mod 2**32)
    thrs = np.empty(G, np.uint32)  # smallest pattern whose quotient is a normal float32
    status = np.empty(G, np.int8)
    mask = np.uint32(0x7FFFFFFF)
    alim = _umin32(Qc[A_ALIM], Qv[A_ALIM])
    sh, rnd, base, T, cb = Qc[A_SH], Qc[A_RND], Qc[A_BASE], Qc[A_T], Qc[A_C]
    c = _bits_f32(cb)
    cclamp, vclamp, hi_bits = Qc[A_CLAMP], Qv[A_CLAMP], Qv[A_HI]
    sign_sh = _sub32(np.uint32(31), Qc[A_SSH])
    sign_bit = _shl32(np.uint32(1), Qc[A_SSH])
    scode_bad = stab[stab.shape[0] - 1] if want_scodes else 0
    scode_lo = np.uint64(stab[0]) if want_scodes else np.uint64(0)
    nbad = 0
    for g0 in range(0, nrows, G):
        g1 = min(g0 + G, nrows)
        ng = g1 - g0
        block_maxima(u, np.uint64(g0) * uk, np.uint64(ng), uk, amaxs, np.uint64(0))  # 1.
        eg = e_out[g0:g1]  # 2. scale exponents, then what each block takes
        rule_exponents(amaxs[:ng], R, eg)
        for b in range(ng):  # (stores to one kind of array per loop: they vectorise)
            amax = amaxs[b]
            bad = amax >= np.uint32(F32_INF)
            e = lo if bad else eg[b]
            E23 = _shl32(np.uint32(e & 0xFFFFFFFF), np.uint32(23))
            thr = _shl32(np.uint32(max(e + 1, 1)), np.uint32(23))
            ok = (np.int64(_shr32(amax, np.uint32(23))) - e <= 254) & (
                (amax < thr) | (_sub32(amax, E23) < alim))
            if want_vals:
                ok = ok & (((qexp + e >= 1) & (vexp + e <= 254)) | (amax == np.uint32(0)))
            E23s[b], thrs[b] = E23, thr
            st = CHECK if e < esub else FAST
            st = st if ok else EXACT
            status[b] = BAD if bad else st
        for b in range(ng):
            eg[b] = lo if amaxs[b] >= np.uint32(F32_INF) else eg[b]
        bg = bad_out[g0:g1]
        for b in range(ng):
            bg[b] = amaxs[b] >= np.uint32(F32_INF)
        if want_scales:  # 2**e from its float64 bits (lo >= -149)
            for b in range(ng):
                scale_out[g0 + b] = np.nan if status[b] == BAD else _bits_f64(
                    np.uint64(eg[b] + 1023) << np.uint64(52))
        if want_scodes:  # stab[e - lo] = stab[0] + (e - lo) (scale_code_table)
            for b in range(ng):
                scode_out[g0 + b] = scode_bad if status[b] == BAD else (
                    scode_lo + np.uint64(eg[b] - lo))
        for b in range(ng):  # 3. elements, block by block
            i0 = np.uint64(g0 + b) * uk
            for p in range(0, uk, LINE_ELEMS):
                if i0 + p + PREFETCH_ELEMS < n:
                    _prefetch(u, i0 + p + PREFETCH_ELEMS)
                    if want_vals:  # 4-byte values: their lines fetched for writing
                        _prefetch_w(vals_out, i0 + p + PREFETCH_ELEMS // 2)
            st = status[b]
            if st == CHECK:  # scale below 2**esub: no nonzero float32 subnormal allowed
                low = mask
                for j in range(uk):
                    low = _umin32(_sub32(u[i0 + j] & mask, np.uint32(1)), low)
                st = FAST if low >= np.uint32(F32_MIN_NORMAL - 1) else EXACT
            if st == FAST:
                E23, thr = E23s[b], thrs[b]
                if want_codes:
                    for j in range(uk):
                        v = u[i0 + j]
                        aq = _sub_if_ge32(v & mask, thr, E23)
                        m = _umin32(_code_mag(aq, sh, rnd, base, T, c, cb), cclamp)
                        codes_out[i0 + j] = m | (_shr32(v, sign_sh) & sign_bit)
                if want_vals:
                    for j in range(uk):
                        v = u[i0 + j]
                        aq = _sub_if_ge32(v & mask, thr, E23)
                        m = _umin32(_value_mag(aq, sh, rnd, hi_bits, T, c), vclamp)
                        m = _add32(m, E23) if m != np.uint32(0) else m
                        vals_out[i0 + j] = m | (v & ~mask)
            elif st == BAD:
                for j in range(uk):
                    if want_codes:
                        codes_out[i0 + j] = 0
                    if want_vals:
                        vals_out[i0 + j] = np.uint32(F32_NAN)
            else:
                e = eg[b]
                scale = ptab[e - lo]
                for j in range(uk):
                    cd = K.encode_one(np.uint64(u[i0 + j]), 23, 8, e, P, np.uint64(0))
                    ok = 0 <= cd < vtab.shape[0]
                    if not ok:
                        nbad += 1
                    if want_codes:
                        codes_out[i0 + j] = cd if ok else 0
                    if want_vals:
                        vals_out[i0 + j] = _f32_bits(np.float32(vtab[cd] * scale)) if ok else (
                            np.uint32(F32_NAN))
    return nbad
