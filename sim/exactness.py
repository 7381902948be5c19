"""The proof obligations of the GEMM engine's fast paths, checked from data statistics.

Every check takes :class:`~lowbit.sim.operands.GridStats` (finiteness, max |v|, the exponent
``lsb`` of the finest power-of-two grid holding all values, max row L1 norm, max significant
bits) and answers whether an evaluation in float64 is provably exact.  The arguments:

Lemma (exact BLAS).  If every value of X is a multiple of ``2**ex`` and every value of Y a
multiple of ``2**ey`` (``u = ex + ey >= -1074``), all finite, then every product and every sum
of a subset of products is a multiple of ``2**u`` and bounded in magnitude by
``B = min(max_r L1(X_r) * max|Y|, max|X| * max_r L1(Y_r), K max|X| max|Y|)``.  If
``B < 2**(53 + u)`` each such number ``n * 2**u`` has ``|n| < 2**53`` and is a float64, so every
operation a BLAS may perform (any order, blocking, FMA) is exact and ``X @ Y.T`` is the exact
dot product.  ``B`` is computed in float64 with a relative margin of ``2**-20`` (``BOUND_MARGIN``),
far above its rounding error for K < 2**30.

Products.  A product of two floats with ``s1`` and ``s2`` significant bits has at most
``s1 + s2`` significant bits: it is exact in float64 when ``s1 + s2 <= 53`` and its exponent
stays in the normal range.  Dekker's product (``two_prod``) is exact (``p + e == a * b``) when
no operand exceeds ``2**995`` and ``lsb(a) + lsb(b) >= -969`` (no underflow in its pieces).

Pair sums.  Values on a common grid ``2**g`` whose partial sums stay below ``2**(104 + g)`` are
summed exactly as an unevaluated pair ``hi + lo`` (TwoSum of ``hi`` and the new value, then
TwoSum of the sum and ``lo + error``: every intermediate is a multiple of ``2**g`` below
``2**(53 + g)`` where it must be exact); ``hi`` is then the correctly rounded exact sum.

Splitting (Ozaki's scheme).  ``X = X_1 + X_2 + ...`` with ``X_1`` = X rounded to a multiple of
``2**s_1`` (exact), ``X_2`` the remainder rounded to ``2**s_2``, ...: each remainder is at most
half the previous grid step and stays on the grid of X.  When every ``X_i @ Y.T`` satisfies the
lemma, the slice results are exact and, added as a pair, give ``X @ Y.T`` exactly as
``hi + lo``.
"""

from __future__ import annotations

import math

from .operands import GridStats

BOUND_MARGIN = 1.0 + 2.0**-20
FLOAT64_MANT = 53
PAIR_SUM_BITS = 104
MIN_EXP = -1074  # exponent of the smallest float64 subnormal
MAX_EXP = 1023
DEKKER_MAX_EXP = 995
DEKKER_MIN_EXP = -969
INT_GRID_BITS = 31  # the reference integer register takes grid integers below 2**31
SPLIT_MAGIC_BITS = 52  # slice i is formed with c = 1.5 * 2**(52 + s_i) ...
SPLIT_EXACT_BITS = 51  # ... exactly for |R| < 2**(51 + s_i)
ONE = GridStats(finite=True, amax=1.0, lsb=0, l1max=1.0, sig_bits=1)  # unit scales


def fits(bound: float, unit_exp: int, bits: int) -> bool:
    """``bound < 2**(bits + unit_exp)`` (bound >= 0), without overflow."""
    if bound == 0.0:
        return True
    if not math.isfinite(bound):
        return False
    return math.frexp(bound)[1] <= bits + unit_exp


def dot_bound(sx: GridStats, sy: GridStats, k_len: int) -> float:
    """Upper bound of |any sum of a subset of products| of an X row and a Y row (the lemma's
    ``B``, margin included)."""
    return min(sx.l1max * sy.amax, sx.amax * sy.l1max, k_len * sx.amax * sy.amax) * BOUND_MARGIN


def unit(sx: GridStats, sy: GridStats) -> int:
    """Exponent of the grid holding every product of an X value and a Y value."""
    return sx.lsb + sy.lsb


def sig_of(bound: float, unit_exp: int) -> int:
    """Significant bits of a multiple of ``2**unit_exp`` of magnitude <= ``bound``."""
    if bound == 0.0:
        return 0
    return max(math.frexp(bound)[1] - unit_exp, 0)


def zero(*stats: GridStats) -> bool:
    """One of the arrays is all zero (every product is zero)."""
    return any(st.amax == 0.0 for st in stats)


# ------------------------------------------------------------------------------ exact GEMM


def exact_gemm_plan(sx: GridStats, sy: GridStats, K: int):
    """``None`` if no exact BLAS evaluation of ``X @ Y.T`` is proven, else the chunk length
    (``K``: one BLAS call; less: K chunks whose results are added as exact pairs)."""
    if not (sx.finite and sy.finite):
        return None
    if zero(sx, sy):
        return K
    u = unit(sx, sy)
    if u < MIN_EXP:
        return None
    total = dot_bound(sx, sy, K)
    if fits(total, u, FLOAT64_MANT):
        return K
    one = sx.amax * sy.amax * BOUND_MARGIN
    if not fits(one, u, FLOAT64_MANT) or not fits(total, u, PAIR_SUM_BITS):
        return None
    kc = int(math.ldexp(1.0, FLOAT64_MANT + u) // one) if FLOAT64_MANT + u <= MAX_EXP else K
    while kc > 1 and not fits(kc * one, u, FLOAT64_MANT):
        kc -= 1
    return max(min(kc, K), 1)


MAX_SLICES = 4


def split_exponents(sx: GridStats, sy: GridStats, k_len: int):
    """Exponents ``(s_1 > s_2 > ...)`` of a split of X into slices (module docstring:
    ``X_1`` = X rounded to a multiple of ``2**s_1``, ``X_2`` = the remainder rounded to
    ``2**s_2``, ..., the last slice the final remainder on X's own grid) such that every slice
    times Y is exact over ``k_len`` products and the slice results add up exactly as a pair
    (below ``2**(104 + u)``); ``None`` if no such split of at most ``MAX_SLICES`` slices exists.
    Slice i is formed as ``(R + c) - c``, ``c = 1.5 * 2**(52 + s_i)``, exact for
    ``|R| < 2**(51 + s_i)``; it holds multiples of ``2**s_i`` up to ``|R| + 2**(s_i - 1)`` and
    leaves a remainder of at most ``2**(s_i - 1)``."""
    if not (sx.finite and sy.finite) or zero(sx, sy):
        return None
    u = unit(sx, sy)
    # partial sums of the slice results stay below 4 * K max|X| max|Y|
    if u < MIN_EXP or not fits(4 * k_len * sx.amax * sy.amax * BOUND_MARGIN, u, PAIR_SUM_BITS):
        return None
    exps = []
    rem = sx.amax  # bound on the remainder still to split
    while True:
        if fits(k_len * rem * sy.amax * BOUND_MARGIN, u, FLOAT64_MANT):
            return tuple(exps) if exps else None  # the remainder is exact on X's grid
        if len(exps) == MAX_SLICES - 1:
            return None
        s = math.frexp(k_len * rem * sy.amax * BOUND_MARGIN)[1] - FLOAT64_MANT - sy.lsb + 1
        half = math.ldexp(1.0, s - 1)
        if (s <= sx.lsb or s + SPLIT_MAGIC_BITS > MAX_EXP or not fits(rem, s, SPLIT_EXACT_BITS)
                or not fits(k_len * (rem + half) * sy.amax * BOUND_MARGIN, s + sy.lsb,
                            FLOAT64_MANT)):
            return None
        exps.append(s)
        rem = half


def sums_bounded(sx: GridStats, sy: GridStats, K: int, fp, thr: float) -> bool:
    """Every sum a per-add float accumulator (sequential or pairwise) forms from K products
    of an X row and a Y row is finite and below the overflow threshold ``thr``.

    An accumulated value is a rounded sum of a subset of products; each rounding to the format
    (``mbits`` stored bits) grows a magnitude by at most a factor ``1 + 2**-(mbits+1)`` (normal
    range) or adds at most half the smallest quantum ``2**(emin - mbits - 1)`` (subnormal range),
    so every accumulator value is at most ``(B + K 2**(emin-mbits)) (1 + 2**-(mbits+1))**K``
    (``B`` the lemma's bound) and every sum at most that plus ``max|x| max|y|``; a float64 step
    above it (``BOUND_MARGIN``) covers the round-to-odd value the overflow test reads."""
    if not (sx.finite and sy.finite):
        return False
    acc = (dot_bound(sx, sy, K) + K * math.ldexp(1.0, fp.emin - fp.mbits))
    growth = K * math.log1p(math.ldexp(1.0, -(fp.mbits + 1)))
    if growth > 700:
        return False
    bound = (acc * math.exp(growth) + sx.amax * sy.amax) * BOUND_MARGIN
    return bound < thr


def block_sums_bounded(se_a: GridStats, se_w: GridStats, ss_a: GridStats, ss_w: GridStats,
                       Kp: int, bs: int, fp, thr: float) -> bool:
    """:func:`sums_bounded` for block dot products: the block terms sum in absolute value to
    at most ``max|s_a| max|s_w| B`` (``B`` the lemma's bound of the elements over K), the
    accumulator rounds ``Kp / bs`` times, and one term is at most
    ``max|s_a| max|s_w| bs max|P_a| max|P_w|``."""
    if not (se_a.finite and se_w.finite and ss_a.finite and ss_w.finite):
        return False
    nb = max(Kp // max(bs, 1), 1)
    sc = ss_a.amax * ss_w.amax
    acc = sc * dot_bound(se_a, se_w, Kp) + nb * math.ldexp(1.0, fp.emin - fp.mbits)
    growth = nb * math.log1p(math.ldexp(1.0, -(fp.mbits + 1)))
    if growth > 700:
        return False
    bound = (acc * math.exp(growth) + sc * inner_bound(se_a, se_w, bs)) * BOUND_MARGIN
    return bound < thr


FLOAT32_MANT, FLOAT32_MIN_EXP, FLOAT32_MAX_EXP = 24, -149, 127


def float32_inner_ok(se_a: GridStats, se_w: GridStats, bs: int) -> bool:
    """The block inner sums can run in float32 BLAS: the elements are float32 values and every
    partial inner sum is a multiple of ``2**u`` below ``2**(24 + u)`` (the lemma for float32)."""
    if not (se_a.finite and se_w.finite):
        return False
    if zero(se_a, se_w):
        return True
    for st in (se_a, se_w):
        if (st.sig_bits > FLOAT32_MANT or st.lsb < FLOAT32_MIN_EXP
                or math.frexp(st.amax)[1] > FLOAT32_MAX_EXP):
            return False
    u = unit(se_a, se_w)
    return u >= FLOAT32_MIN_EXP and fits(inner_bound(se_a, se_w, bs), u, FLOAT32_MANT)


# ------------------------------------------------------------------------------ registers


def grid_ok(lsb_fmt: int, st: GridStats) -> bool:
    """Values are integers (< 2**31) on the grid ``2**lsb_fmt`` (what the reference's integer
    register requires; otherwise the reference raises its error)."""
    if not st.finite:
        return False
    if st.amax == 0.0:
        return True
    return st.lsb >= lsb_fmt and fits(st.amax, lsb_fmt, INT_GRID_BITS)


def register_ok(bound: float, unit_exp: int, bits: int) -> bool:
    """A ``bits``-bit two's-complement register holding partial sums of magnitude <= ``bound``
    (value units; register units ``2**unit_exp``) never wraps or saturates, and its value is a
    float64."""
    if bound == 0.0:
        return True
    if not math.isfinite(bound):
        return False
    return bound <= math.ldexp(2.0 ** (bits - 1) - 1, unit_exp) and fits(bound, unit_exp, 53)


# ------------------------------------------------------------------------------ block terms


def scales_product_exact(ss_a: GridStats, ss_w: GridStats) -> bool:
    """``s_a * s_w`` is exact in float64 for every pair of (live) scales."""
    if not (ss_a.finite and ss_w.finite):
        return False
    if zero(ss_a, ss_w):
        return True
    top = math.frexp(ss_a.amax)[1] + math.frexp(ss_w.amax)[1]
    return (ss_a.sig_bits + ss_w.sig_bits <= FLOAT64_MANT and ss_a.lsb + ss_w.lsb >= MIN_EXP
            and top <= MAX_EXP)


def inner_bound(se_a: GridStats, se_w: GridStats, bs: int) -> float:
    return bs * se_a.amax * se_w.amax * BOUND_MARGIN


def _exact_inner(se_a: GridStats, se_w: GridStats, ss_a: GridStats, ss_w: GridStats, bs: int):
    """Shared part of the block-term checks: ``False`` (inner sum not exact, non-finite data or
    an inexact scale product), ``True`` (every term is zero) or ``(u, inner, top)``: the grid
    exponent of the inner sums, their bound and the exponent bound of the terms."""
    if not (se_a.finite and se_w.finite and scales_product_exact(ss_a, ss_w)):
        return False
    if zero(se_a, se_w, ss_a, ss_w):
        return True
    u = unit(se_a, se_w)
    inner = inner_bound(se_a, se_w, bs)
    if u < MIN_EXP or not fits(inner, u, FLOAT64_MANT):
        return False
    return u, inner, math.frexp(ss_a.amax)[1] + math.frexp(ss_w.amax)[1] + math.frexp(inner)[1]


def block_terms_exact(se_a: GridStats, se_w: GridStats, ss_a: GridStats, ss_w: GridStats,
                      bs: int) -> bool:
    """Per block, the inner sum of element products is exact in float64 (the lemma for ``bs``
    products) and the term ``(s_a * s_w) * inner`` is exact (significant bits of the two scales
    and of the inner sum add up to <= 53, no intermediate leaves the float64 range)."""
    ok = _exact_inner(se_a, se_w, ss_a, ss_w, bs)
    if ok is not True and ok is not False:
        u, inner, top = ok
        ok = (ss_a.lsb + ss_w.lsb + u >= MIN_EXP and top <= MAX_EXP
              and ss_a.sig_bits + ss_w.sig_bits + sig_of(inner, u) <= FLOAT64_MANT)
    return ok


def block_terms_dekker(se_a: GridStats, se_w: GridStats, ss_a: GridStats, ss_w: GridStats,
                       bs: int) -> bool:
    """Per block the inner sum is exact (the lemma), ``s_a * s_w`` is exact, and the term
    ``(s_a * s_w) * inner`` is an exact Dekker pair (no overflow, no underflow in its
    pieces)."""
    ok = _exact_inner(se_a, se_w, ss_a, ss_w, bs)
    if ok is not True and ok is not False:
        u, _, top = ok
        ok = ss_a.lsb + ss_w.lsb + u >= DEKKER_MIN_EXP and top <= DEKKER_MAX_EXP
    return ok


def pow2_scales(ss_a: GridStats, ss_w: GridStats) -> bool:
    """All live scales are powers of two (a scaled exact value stays exact)."""
    return (ss_a.finite and ss_w.finite and ss_a.sig_bits <= 1 and ss_w.sig_bits <= 1
            and scales_product_exact(ss_a, ss_w))


def block_split_plan(se_a: GridStats, se_w: GridStats, ss_a: GridStats, ss_w: GridStats,
                     bs: int):
    """Split exponents for blocks whose inner sum needs more than 53 bits: exact slices
    (:func:`split_exponents`) whose results add up to an exact pair, power-of-two scales (the
    scaled pair stays exact) and terms in range; ``None`` otherwise."""
    if not pow2_scales(ss_a, ss_w) or zero(se_a, se_w, ss_a, ss_w):
        return None
    s = split_exponents(se_a, se_w, bs)
    if s is None:
        return None
    u = unit(se_a, se_w)
    top = math.frexp(ss_a.amax)[1] + math.frexp(ss_w.amax)[1] + math.frexp(
        inner_bound(se_a, se_w, bs))[1]
    if ss_a.lsb + ss_w.lsb + u < MIN_EXP or top > MAX_EXP:
        return None
    return s


def pair_sum_ok(se_a: GridStats, se_w: GridStats, ss_a: GridStats, ss_w: GridStats, bs: int,
                nb: int) -> bool:
    """All block terms are multiples of ``2**g`` (``g`` = the scales' and elements' lsb) and
    ``nb`` of them sum to less than ``2**(104 + g)``: the exact pair sum applies."""
    if zero(se_a, se_w, ss_a, ss_w):
        return True
    g = ss_a.lsb + ss_w.lsb + unit(se_a, se_w)
    total = nb * ss_a.amax * ss_w.amax * inner_bound(se_a, se_w, bs)
    return g >= MIN_EXP and fits(total, g, PAIR_SUM_BITS)
