"""Vectorised numba kernels of the fast GEMM paths (:mod:`lowbit.sim.fastpath`).

They compute exactly what the reference kernels of :mod:`lowbit.sim.accum_kernels` compute -
the same products, the same additions in the same order per output, one correct rounding per
add - but laid out for SIMD: the innermost loop runs over output columns (independent
accumulators), so LLVM vectorises it, and the rounding is branch-free (:func:`round_vec`).
Outputs are computed in cache-sized tiles of rows x columns; tiles run in parallel
(``prange``) and each output is owned by one tile, so results do not depend on the thread
count.

:func:`round_vec` equals :func:`lowbit.sim.accum_round.round_fmt` for every float64 input pair
``(s, r)`` with ``s = RN64(s + r)`` (proof in its docstring; tested on adversarial and random
inputs in tests/sim/test_fastpath.py).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from .accum_round import (
    FloatParams,
    bits_f64,
    f64_bits,
    prefer_wide_vectors,
    two_prod,
    two_sum,
)

EXP_MASK = np.int64(0x7FF0000000000000)
ONE_EXP = np.int64(1) << 52  # one binade in the exponent field
MAGIC = 6755399441055744.0  # 1.5 * 2**52: (x + MAGIC*q) - MAGIC*q rounds x to a multiple of q


class VecRoundParams(NamedTuple):
    """:class:`~lowbit.sim.accum_round.FloatParams` recast for :func:`round_vec`.

    ``mshift``: ``mbits << 52``; ``lo_exp`` / ``hi_exp``: clamp of the exponent field that sets
    the quantum (``emin`` for formats with subnormals, ``emin - 1`` for flush-to-zero formats;
    ``emax + 1``); ``thr``: overflow threshold - an exact value ``x >= 0`` overflows iff
    ``RO(x) > thr`` (see :func:`vec_params`); ``ovf``, ``minnorm``, ``ftz`` as in FloatParams.
    """

    mshift: np.int64
    lo_exp: np.int64
    hi_exp: np.int64
    thr: float
    ovf: float
    minnorm: float
    ftz: int


def vec_params(fp: FloatParams) -> VecRoundParams:
    """Parameters of :func:`round_vec` for a float format.

    Overflow threshold: with ``q_e = 2**(emax - mbits)`` (the quantum of maxv's binade) and
    ``mid = maxv + q_e/2``, RNE with an unbounded exponent exceeds ``maxv`` iff ``x > mid``, or
    ``x == mid`` and the tie goes to ``maxv + q_e`` (``maxv / q_e`` odd).  So ``thr = mid`` or
    the float64 predecessor of ``mid`` (``x > pred(mid)`` iff ``x >= mid`` for float64 x); both
    are below ``2**(emax+1)``.
    """
    q_e = math.ldexp(1.0, fp.emax - fp.mbits)
    mid = fp.maxv + q_e / 2
    odd = int(round(fp.maxv / q_e)) % 2 == 1
    thr = float(np.nextafter(mid, 0.0)) if odd else mid
    emin_f = (fp.emin + 1023) << 52
    lo = emin_f - (1 << 52) if fp.ftz else emin_f
    return VecRoundParams(mshift=np.int64(fp.mbits << 52), lo_exp=np.int64(lo),
                          hi_exp=np.int64((fp.emax + 1 + 1023) << 52), thr=thr,
                          ovf=fp.ovf, minnorm=fp.minnorm, ftz=fp.ftz)


ROUND_OVERFLOW = 1  # sums may exceed the format's range: test overflow, cap the exponent
ROUND_SPECIAL = 2  # sums may be Inf / NaN: return them unchanged
ROUND_FLUSH = 4  # flush-to-zero format (also tested at run time: vp.ftz)
ROUND_ALL = ROUND_OVERFLOW | ROUND_SPECIAL  # no knowledge about the data: every check


@njit(cache=True, inline="always")
def round_vec(s, r, vp, mode=ROUND_ALL | ROUND_FLUSH):
    """Branch-free :func:`~lowbit.sim.accum_round.round_fmt`: RNE of the exact value ``s + r``
    (``s = RN64``, only the sign of ``r`` is used) to the format of ``vp``.

    Equal to ``round_fmt`` for all float64 ``(s, r)``:

    * Inf / NaN ``s``: both return ``s`` (final select).
    * round-to-odd step: identical bit operation (the exponent used afterwards is read from
      the bits BEFORE the step in both); "r has the sign of s" is read from the sign bits here
      and from ``(r > 0) == (s > 0)`` there - the same for every non-zero, non-NaN ``r`` (a NaN
      ``r`` comes only with a non-finite ``s``, returned unchanged by both).
    * quantum: ``round_fmt`` clamps the exponent to ``>= emin`` (subnormal formats) or flushes
      exponents ``< emin - 1`` to a signed zero (ftz formats).  Here ftz formats clamp to
      ``emin - 1``: such values are ``< 2**(emin-1)``, round to at most ``2**(emin-1) <
      minnorm`` and are flushed by the ``mag < minnorm`` select to ``copysign(0, s)`` - the same
      signed zero.  Exponents above ``emax + 1`` are capped in both.
    * overflow: ``round_fmt`` tests ``mag > maxv`` on the rounded magnitude; here ``|s| > thr``
      on the round-to-odd value (see :func:`vec_params`): for exponents ``< emax`` neither
      fires (``mag <= 2**emax <= maxv``, ``|s| < 2**emax <= thr``), at ``emax`` they agree by
      the definition of ``thr``, above it both fire.
    * zero: ``s = +-0`` has ``r = 0``, rounds to ``0`` and keeps its sign via ``copysign``.

    ``mode`` (a compile-time constant in the kernels) drops checks that cannot fire:
    ``ROUND_OVERFLOW`` / ``ROUND_SPECIAL`` only when the caller proved every sum finite and
    ``<= thr`` (then the cap, the overflow select and the Inf/NaN select are identities),
    ``ROUND_FLUSH`` for flush-to-zero formats only (else ``mag < minnorm`` never replaces a
    value: formats with subnormals round to their own grid; the bit also reads ``vp.ftz``).
    """
    bits = f64_bits(s)
    expo = bits & EXP_MASK
    fix = (r != 0.0) & ((bits & 1) == 0)
    # one float64 step toward r: +1 on the bit pattern if r has the sign of s, else -1
    toward = np.int64(1) + 2 * ((f64_bits(r) ^ bits) >> 63)
    t = bits_f64(bits + (toward if fix else np.int64(0)))
    ec = max(expo, vp.lo_exp)
    if mode & ROUND_OVERFLOW:
        ec = min(ec, vp.hi_exp)
    c = bits_f64(ec - vp.mshift) * MAGIC
    a = abs(t)
    mag = (a + c) - c
    if mode & ROUND_OVERFLOW:
        mag = vp.ovf if a > vp.thr else mag
    if mode & ROUND_FLUSH and vp.ftz != 0:
        mag = 0.0 if mag < vp.minnorm else mag
    res = math.copysign(mag, t)
    if mode & ROUND_SPECIAL:
        return s if expo == EXP_MASK else res
    return res


@njit(cache=True, inline="always")
def _add_round(acc, p, vp, mode=ROUND_ALL | ROUND_FLUSH):
    """``round_vec`` of the exact ``acc + p`` (TwoSum: ``s + e == acc + p`` exactly)."""
    s, e = two_sum(acc, p)
    return round_vec(s, e, vp, mode)


# ------------------------------------------------------------------------------ element paths


@njit(cache=True, inline="always")
def _seq_tile(A, B, out, i0, i1, j0, j1, vp, mode):
    """Sequential FMA accumulation for out[i0:i1, j0:j1]; ``B`` is (K, M) (W transposed)."""
    prefer_wide_vectors()
    K = A.shape[1]
    w = j1 - j0
    acc = np.zeros((i1 - i0, w))
    for k in range(K):
        brow = B[k, j0:j1]
        for ii in range(i1 - i0):
            a = A[i0 + ii, k]
            row = acc[ii]
            for jj in range(w):
                row[jj] = _add_round(row[jj], a * brow[jj], vp, mode)
    out[i0:i1, j0:j1] = acc


@njit(cache=True, inline="always")
def _pairwise_tile(A, B, out, i0, i1, j0, j1, vp, stack, mode):
    """Adder tree over the K products of rows i0:i1, columns j0:j1, as a binary counter:
    product k becomes a level-0 entry and is merged with the entry of the same level below it
    (``RNE(earlier + later)``) while one exists; at the end the remaining entries (one per set
    bit of K, largest block first) are merged from the smallest up.  This is the same tree as
    the reference's level-by-level pairing with the odd last entry moving up (an entry of
    level L covers products [t*2**L, min((t+1)*2**L, K)); the partial last entry of each level
    is the sum of the full blocks of the lower set bits of K, merged smallest first), so
    every add has the same two exact operands and the same single rounding.  K == 1 returns
    ``RNE(p_0)``.  ``stack``: (rows, levels + 1, columns) scratch."""
    prefer_wide_vectors()
    K = A.shape[1]
    w = j1 - j0
    for k in range(K):
        brow = B[k, j0:j1]
        top = 0  # level the merged entry of product k lands on = trailing ones of k
        cnt = k
        while cnt & 1:
            cnt >>= 1
            top += 1
        for ii in range(i1 - i0):
            a = A[i0 + ii, k]
            dest = stack[ii, top]
            if top == 0:
                for jj in range(w):
                    dest[jj] = a * brow[jj]
            else:
                first = stack[ii, 0]
                for jj in range(w):
                    dest[jj] = _add_round(first[jj], a * brow[jj], vp, mode)
                for lvl in range(1, top):
                    srow = stack[ii, lvl]
                    for jj in range(w):
                        dest[jj] = _add_round(srow[jj], dest[jj], vp, mode)
    for ii in range(i1 - i0):
        orow = out[i0 + ii, j0:j1]
        if K == 1:
            first = stack[ii, 0]
            for jj in range(w):
                orow[jj] = round_vec(first[jj], 0.0, vp, mode)
            continue
        started = False
        lvl = 0
        cnt = K
        while cnt > 0:
            if cnt & 1:
                srow = stack[ii, lvl]
                if not started:
                    orow[:] = srow[:w]
                    started = True
                else:
                    for jj in range(w):
                        orow[jj] = _add_round(srow[jj], orow[jj], vp, mode)
            cnt >>= 1
            lvl += 1


ORDER_SEQUENTIAL = 0
ORDER_PAIRWISE = 1


@njit(cache=True, inline="always")
def _per_add_gemm(A, B, vp, row_tile, col_tile, order, mode):
    """Tiles of ``row_tile x col_tile`` outputs in parallel; ``order`` and ``mode`` are
    compile-time constants of the entry points below (inlined: the unused checks and order
    vanish from the machine code)."""
    N, K = A.shape
    M = B.shape[1]
    out = np.zeros((N, M))
    levels = 1
    while (1 << levels) <= K:
        levels += 1
    nti = (N + row_tile - 1) // row_tile
    ntj = (M + col_tile - 1) // col_tile
    for t in prange(nti * ntj):
        i0 = (t // ntj) * row_tile
        j0 = (t % ntj) * col_tile
        i1 = min(i0 + row_tile, N)
        j1 = min(j0 + col_tile, M)
        if order == ORDER_SEQUENTIAL:
            _seq_tile(A, B, out, i0, i1, j0, j1, vp, mode)
        else:
            stack = np.empty((row_tile, levels + 1, col_tile))
            _pairwise_tile(A, B, out, i0, i1, j0, j1, vp, stack, mode)
    return out


def _per_add_entry(order: int, mode: int):
    """A compiled entry point with ``order`` and ``mode`` frozen in as constants (numba treats
    closure variables as compile-time constants and keys its disk cache on them)."""

    @njit(parallel=True, cache=True, nogil=True)
    def kernel(A, B, vp, row_tile, col_tile):
        return _per_add_gemm(A, B, vp, row_tile, col_tile, order, mode)

    return kernel


_PER_ADD = {(order, bounded): _per_add_entry(order, ROUND_FLUSH if bounded else
                                             ROUND_ALL | ROUND_FLUSH)
            for order in (ORDER_SEQUENTIAL, ORDER_PAIRWISE) for bounded in (False, True)}


def per_add_gemm(A, B, vp, *, pairwise: bool, bounded: bool, row_tile: int, col_tile: int):
    """Per-add float accumulation ``out = A @ B`` (B is (K, M), W transposed), one rounding per
    add: sequential (= :func:`~lowbit.sim.accum_kernels.gemm_seq`: ``acc = RNE(acc + a_k b_k)``
    in K order) or pairwise (= :func:`~lowbit.sim.accum_kernels.gemm_pairwise`, the adder tree
    of :func:`_pairwise_tile`).  ``bounded``: the caller proved every sum finite and below the
    overflow threshold (:func:`lowbit.sim.exactness.sums_bounded`), so the kernel compiled
    without the overflow and Inf/NaN checks runs."""
    kernel = _PER_ADD[(ORDER_PAIRWISE if pairwise else ORDER_SEQUENTIAL, bool(bounded))]
    return kernel(A, B, vp, row_tile, col_tile)


# ------------------------------------------------------------------------------ block rounding


TERM_EXACT = 0  # the block term (s_a s_w) * inner is exact in float64
TERM_DEKKER = 1  # ... needs more than 53 bits: an exact Dekker pair
TERM_SLICES = 2  # the inner sum is given as exact slices, added as an exact pair
TERM_PAIRS = 3  # exact block dot product: terms added as exact pairs, no rounding
TERM_DEKKER_PAIRS = 4  # ... with the terms as Dekker pairs (both parts added exactly)


@njit(cache=True, inline="always")
def _pair_add(hi, lo, b):
    """``(hi, lo) + b`` as a new pair ``(RN64(hi + lo + b), rest)``: TwoSum of ``hi`` and ``b``,
    then TwoSum of the sum and ``lo + error`` (exact under the callers' grid bounds)."""
    s, e = two_sum(hi, b)
    return two_sum(s, lo + e)


@njit(cache=True, inline="always")
def _add3_round(acc, hi, lo, vp, mode=ROUND_ALL | ROUND_FLUSH):
    """``round_vec`` of the exact ``acc + hi + lo`` for a normalised pair ``|lo| <= ulp(hi)/2``:
    ``(s1, e1) = TwoSum(acc, hi)``, ``(t, e2) = TwoSum(e1, lo)``, ``(s, e3) = TwoSum(s1, t)``,
    so ``acc + hi + lo == s + e3 + e2`` exactly.  ``|e2|`` is below a float64 ulp of ``e1``, far
    below half a float64 step of ``s``, so ``s`` is a neighbour of the exact sum (a faithful
    rounding) and ``r = RN(e3 + e2)`` has the sign of ``exact - s``.  That is all the
    round-to-odd step needs: it yields RO(exact), and the result equals ``round_fmt`` of
    ``RN64(exact)`` (both round RO(exact); reading the quantum from a neighbouring float64
    changes nothing, see :func:`round_vec`).  A non-finite ``acc`` (an earlier overflow) is
    kept, as the reference does."""
    s1, e1 = two_sum(acc, hi)
    t, e2 = two_sum(e1, lo)
    s, e3 = two_sum(s1, t)
    res = round_vec(s, e3 + e2, vp, mode)
    if mode & ROUND_SPECIAL:
        return res if abs(acc) < np.inf else acc
    return res


@njit(cache=True, inline="always")
def _block_tile(acc, low, inner, sa, sw, vp, term, mode):
    """One block step of a block dot product for a tile of outputs.

    ``inner`` (n, rows, cols): the block's exact inner sums (``n > 1``: exact slices of them),
    ``sa`` / ``sw`` the block scales of the tile's rows / columns.  ``term``:

    * ``TERM_EXACT``: ``acc = RNE(acc + (sa_i sw_j) inner)``, the term exact in float64 (the
      reference carries it as ``hi + lo`` with ``lo == 0``).  ``+ 0.0`` turns a ``-0.0`` term into
      ``+0.0``: the reference's expansion sum drops zero terms.
    * ``TERM_DEKKER``: the term is the Dekker pair of ``(sa_i sw_j) * inner``; ``acc + hi + lo``
      rounded once (:func:`_add3_round`).
    * ``TERM_SLICES``: the slices are added as an exact pair, scaled by power-of-two scales, and
      ``acc + hi + lo`` rounded once.
    * ``TERM_PAIRS``: no rounding: ``(acc, low) += (sa_i sw_j) * inner`` as an exact pair (the
      exact block dot product; ``acc`` ends as the correctly rounded exact sum).
    * ``TERM_DEKKER_PAIRS``: as ``TERM_PAIRS`` with the term's Dekker pair ``hi + lo`` (both
      multiples of the terms' grid ``2**g``, so both pair adds stay exact under the same bound).

    ``mode``: the :func:`round_vec` checks (compile-time constant of the entry points).
    """
    prefer_wide_vectors()
    n = inner.shape[0]
    for i in range(acc.shape[0]):
        s_i = sa[i]
        arow = acc[i]
        lrow = low[i]
        for j in range(acc.shape[1]):
            sc = s_i * sw[j]
            if term == TERM_EXACT:
                arow[j] = _add_round(arow[j], sc * inner[0, i, j] + 0.0, vp, mode)
            elif term == TERM_DEKKER:
                hi, lo = two_prod(sc, inner[0, i, j])
                arow[j] = _add3_round(arow[j], hi + 0.0, lo, vp, mode)
            elif term == TERM_SLICES:
                hi = inner[0, i, j]
                lo = 0.0
                for k in range(1, n):
                    hi, lo = _pair_add(hi, lo, inner[k, i, j])
                arow[j] = _add3_round(arow[j], sc * hi + 0.0, sc * lo, vp, mode)
            elif term == TERM_PAIRS:
                arow[j], lrow[j] = _pair_add(arow[j], lrow[j], sc * inner[0, i, j])
            else:
                hi, lo = two_prod(sc, inner[0, i, j])
                a, r = _pair_add(arow[j], lrow[j], hi)
                arow[j], lrow[j] = _pair_add(a, r, lo)


def _block_entry(term: int, mode: int):
    """A compiled loop of :func:`_block_tile` over consecutive blocks, with ``term`` and
    ``mode`` frozen in as constants."""

    @njit(cache=True, nogil=True)
    def kernel(acc, low, inner, sa, sw, vp):
        for b in range(inner.shape[0]):
            _block_tile(acc, low, inner[b], sa[b], sw[b], vp, term, mode)

    return kernel


_BLOCK = {(term, bounded): _block_entry(term, ROUND_FLUSH if bounded else ROUND_ALL | ROUND_FLUSH)
          for term in (TERM_EXACT, TERM_DEKKER, TERM_SLICES, TERM_PAIRS, TERM_DEKKER_PAIRS)
          for bounded in (False, True)}


def block_tile(acc, low, inner, sa, sw, vp, *, term: int, bounded: bool):
    """Block steps for a tile of outputs, blocks in K order (:func:`_block_tile` per block):
    ``inner`` (blocks, n, rows, cols), ``sa`` (blocks, rows), ``sw`` (blocks, cols).
    ``bounded``: the caller proved every accumulator sum finite and below the overflow
    threshold (:func:`lowbit.sim.exactness.block_sums_bounded`), so the checks are compiled
    out."""
    _BLOCK[(term, bool(bounded))](acc, low, inner, sa, sw, vp)


@njit(cache=True, nogil=True)
def _scale_row(orow, irow, s_i, sw, vp, do_round):
    prefer_wide_vectors()
    for j in range(orow.shape[0]):
        p, e = two_prod(s_i * sw[j], irow[j])
        if do_round:
            orow[j] = round_vec(p + 0.0, e, vp)
        else:
            orow[j] = p + 0.0


@njit(cache=True, nogil=True)
def scale_gemm_result(inner, sa, sw, vp, do_round):
    """One-block dot products: ``RN64((sa[i] * sw[j]) * inner[i, j])`` (``do_round=False``:
    the Exact and integer models, whose reference rounds the exact term once to float64) or
    ``RNE_fmt`` of the exact term (``do_round=True``: a float accumulator starting at 0, one
    add), the exact term being the Dekker pair ``p + e``.  The caller proves ``sa * sw`` exact
    and the Dekker product valid (no overflow, error term above 2**-1074).

    Single-threaded (O(N M) next to the O(N M K) BLAS call before it): a numba thread team
    started right after a multi-threaded BLAS call competes with BLAS threads still spinning
    for work, which made this step slower than the GEMM on 2 cores."""
    N, M = inner.shape
    out = np.empty((N, M))
    for i in range(N):
        _scale_row(out[i], inner[i], sa[i], sw, vp, do_round)
    return out


@njit(cache=True, nogil=True)
def exact_pair_add(hi, lo, c):
    """``(hi, lo) += c`` exactly, in place: ``hi + lo`` is an unevaluated exact sum with
    ``hi = RN64(hi + lo)`` (TwoSum, then TwoSum of the two parts).  Exact while every
    operand is a multiple of a common power of two ``2**u`` and the running sum stays below
    ``2**104 * 2**u`` (see :func:`lowbit.sim.fastpath.exact_gemm`).  Single-threaded, like
    :func:`scale_gemm_result`: it runs between multi-threaded BLAS calls."""
    h = hi.reshape(-1)
    lw = lo.reshape(-1)
    cc = c.reshape(-1)
    for t in range(h.size):
        h[t], lw[t] = _pair_add(h[t], lw[t], cc[t])
