"""Fast paths of the GEMM engine, each provably bit-identical to the reference kernels.

:func:`choose` returns a path only when its proof obligation holds for the given operands; the
obligations are checked from the formats and from statistics of the actual data
(:class:`~lowbit.sim.operands.GridStats`: finiteness, max |v|, the exponent ``lsb`` of the
finest power-of-two grid holding all values, max row L1 norm, max significant bits), computed
once per operand in O(R*K).  ``LOWBIT_SLOW_GEMM=1`` in the environment disables every fast path
(:func:`slow_forced`).

The one lemma all BLAS paths use (``exact BLAS``): if every value of X is a multiple of
``2**ex`` and every value of Y a multiple of ``2**ey`` (``ex + ey >= -1074``), all finite, then
every product and every sum of a subset of products is a multiple of ``2**u``, ``u = ex + ey``,
and bounded in magnitude by ``B = min(max_r L1(X_r) * max|Y|, max|X| * max_r L1(Y_r))``.  If
``B < 2**(53 + u)`` each such number ``n * 2**u`` has ``|n| < 2**53`` and is a float64, so every
operation a BLAS may perform (any order, blocking, FMA) is exact, and ``X @ Y.T`` is the exact
dot product.  (``B`` is computed in float64 with a relative margin of ``2**-20``, far above its
rounding error for K < 2**30.)  An exact zero comes out as ``+0.0`` from the reference kernels'
expansion sums; the fast paths add ``+0.0`` to map ``-0.0`` to ``+0.0``.

Paths (name: model -> obligation):

* ``blas`` (Exact, element): the lemma for the whole K.
* ``blas-chunked`` (Exact, element): one product fits (``max|X| max|Y| < 2**(53+u)``) but K does
  not: K is split into chunks that fit, each chunk product is exact, and chunk results are
  added exactly as an unevaluated pair ``hi + lo`` (TwoSum; exact while the running sum is
  below ``2**(104+u)``, checked), whose ``hi`` is the correctly rounded exact sum.
* ``blas-int`` (IntAccum, element): the values are integers on the formats' grids and the
  register can never leave its range: ``B / (unit_a * unit_w) <= 2**(bits-1) - 1`` and
  ``< 2**53`` - then wrap and saturate never act and the register holds the exact integer dot
  product, which the lemma computes.
* ``blas-block-exact`` (Exact or IntAccum, block): the exact dot product of the block
  dequantised values ``elements * scales`` (the per-tensor scale applied afterwards, as in the
  reference); exact when ``elements * scales`` is exact (significant bits add up to <= 53) and
  the lemma (or its chunked form) holds for them; for IntAccum in addition every block's
  register stays in range (``block_len * max|Pa| * max|Pw|`` in grid units).
* ``blas-block-pairs`` (Exact or IntAccum, block, when the above needs > 53 bits per product,
  e.g. an outlier block next to small ones): per block the exact inner sum by BLAS and the
  exact term (as for ``blas-block-round``), terms added as exact ``hi + lo`` pairs (all terms
  on the common grid of the scales' and elements' lsb, their sum below ``2**104`` grid units).
* ``blas-block-round`` (sequential FloatAccum, block) and ``blas-chunk-round`` (chunked
  FloatAccum, element - a chunk is a block with unit scales): per block, the exact inner sum by
  BLAS (the lemma for one block) and the exact term ``(s_a s_w) * inner`` (significant bits of
  the two scales and of the inner sum add up to <= 53, no under/overflow), then one rounding
  per block, ``acc = RNE(acc + term)`` (:func:`~lowbit.sim.fast_kernels.block_round_tile`),
  tiles of outputs on all cores.
* ``blas-block-single`` (any model, block path with ONE block along K: per-channel /
  per-tensor scales): the reference rounds the exact term ``(s_a s_w) * inner`` once (to
  float64, or to the float accumulator from 0); the inner sum is exact by the lemma (for
  IntAccum also within the register), ``s_a s_w`` is exact and the term is an exact Dekker
  pair, rounded once (:func:`~lowbit.sim.fast_kernels.scale_gemm_result`).
* ``seq`` / ``pairwise`` (FloatAccum, element): the reference's own products and additions in
  the reference's order per output, vectorised over output columns
  (:mod:`lowbit.sim.fast_kernels`); applies whenever the reference uses plain float64 products
  (``sig_bits_a + sig_bits_w <= 53``), or the data's significant bits prove the products exact.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from lowbit.formats.accum import Exact, FloatAccum, IntAccum

from . import fast_kernels as FK
from .accum_round import FloatParams, float_params
from .operands import GridStats, Operand, align_blocks, common_blocks, grid_stats

SLOW_GEMM_ENV = "LOWBIT_SLOW_GEMM"
BOUND_MARGIN = 1.0 + 2.0**-20
FLOAT64_MANT = 53
PAIR_SUM_BITS = 104  # exact hi + lo accumulation bound (see blas-chunked)
MIN_EXP = -1074  # exponent of the smallest float64 subnormal
MAX_EXP = 1023
DEKKER_MAX_EXP = 995  # Dekker's product splits its operands with 2**27 + 1: keep |x| < 2**995
ROW_TILE, COL_TILE = 8, 128  # per-add kernels: outputs per tile (rows x columns)
BLOCK_ROW_TILE, BLOCK_COL_TILE = 128, 512  # block paths: accumulator tile (fits in L2)


_FP64 = FloatParams(mbits=52, emin=-1022, maxv=float(np.finfo(np.float64).max), ovf=np.inf,
                   minnorm=2.0**-1022, ftz=0, emax=1023)  # placeholder: do_round=False


def slow_forced() -> bool:
    """True when ``LOWBIT_SLOW_GEMM`` is set to anything but ``""`` / ``"0"``."""
    return os.environ.get(SLOW_GEMM_ENV, "") not in ("", "0")


class FastPath(NamedTuple):
    name: str
    run: Callable[[], np.ndarray]


# ------------------------------------------------------------------------------ proof helpers


def _fits(bound: float, unit_exp: int, bits: int) -> bool:
    """``bound < 2**(bits + unit_exp)`` (bound >= 0), without overflow."""
    if bound == 0.0:
        return True
    if not math.isfinite(bound):
        return False
    return math.frexp(bound)[1] <= bits + unit_exp


def _dot_bound(sx: GridStats, sy: GridStats, k_len: int) -> float:
    """Upper bound of |any sum of a subset of products| of an X row and a Y row."""
    return min(sx.l1max * sy.amax, sx.amax * sy.l1max, k_len * sx.amax * sy.amax) * BOUND_MARGIN


def _unit(sx: GridStats, sy: GridStats) -> int:
    return sx.lsb + sy.lsb


def _sig_of(bound: float, unit_exp: int) -> int:
    """Significant bits of an integer multiple n of 2**unit_exp with |n * 2**unit_exp| <= bound."""
    if bound == 0.0:
        return 0
    return max(math.frexp(bound)[1] - unit_exp, 0)


def _zero_sign(out: np.ndarray) -> np.ndarray:
    out += 0.0  # -0.0 -> +0.0 (the reference's empty expansion sum)
    return out


def _threads() -> int:
    return max(int(numba.get_num_threads()), 1)


# ------------------------------------------------------------------------------ exact GEMM


def exact_gemm_plan(sx: GridStats, sy: GridStats, K: int):
    """``None`` if no exact BLAS evaluation is proven, else the chunk length (``K``: one BLAS
    call) for :func:`exact_gemm`."""
    if not (sx.finite and sy.finite):
        return None
    if sx.amax == 0.0 or sy.amax == 0.0:
        return K
    u = _unit(sx, sy)
    if u < MIN_EXP:
        return None
    total = _dot_bound(sx, sy, K)
    if _fits(total, u, FLOAT64_MANT):
        return K
    one = sx.amax * sy.amax * BOUND_MARGIN
    if not _fits(one, u, FLOAT64_MANT) or not _fits(total, u, PAIR_SUM_BITS):
        return None
    kc = int(math.ldexp(1.0, FLOAT64_MANT + u) // one) if FLOAT64_MANT + u <= MAX_EXP else K
    while kc > 1 and not _fits(kc * one, u, FLOAT64_MANT):
        kc -= 1
    return max(min(kc, K), 1)


def exact_gemm(X: np.ndarray, Y: np.ndarray, chunk: int) -> np.ndarray:
    """Exact ``X @ Y.T`` correctly rounded to float64, for a plan from :func:`exact_gemm_plan`:
    one BLAS call, or K chunks of BLAS added exactly as ``hi + lo`` pairs."""
    K = X.shape[1]
    if chunk >= K:
        return _zero_sign(X @ Y.T)
    hi = np.ascontiguousarray(X[:, :chunk] @ Y[:, :chunk].T)
    lo = np.zeros_like(hi)
    for k0 in range(chunk, K, chunk):
        c = np.ascontiguousarray(X[:, k0:k0 + chunk] @ Y[:, k0:k0 + chunk].T)
        FK.exact_pair_add(hi, lo, c)
    return _zero_sign(hi)


def _grid_ok(op: Operand, st: GridStats) -> bool:
    """Values are integers < 2**31 on the operand's format grid (what the reference's integer
    register requires; otherwise the reference raises its error)."""
    lsb = 0 if op.lsb is None else op.lsb
    if not st.finite:
        return False
    if st.amax == 0.0:
        return True
    return st.lsb >= lsb and _fits(st.amax, lsb, 31)


def _int_register_ok(A: Operand, W: Operand, sa: GridStats, sw: GridStats, bound: float,
                     bits: int) -> bool:
    """The integer-register obligation: both operands' values are integers (< 2**31) on their
    format grids, and ``bound`` (the largest |partial sum| in value units) keeps a ``bits``-bit
    register in range and its value a float64."""
    if not (_grid_ok(A, sa) and _grid_ok(W, sw)):
        return False
    reg_exp = (0 if A.lsb is None else A.lsb) + (0 if W.lsb is None else W.lsb)
    return _reg_ok(bound, reg_exp, bits)


def _reg_ok(bound: float, unit_exp: int, bits: int) -> bool:
    """Integer register of ``bits`` bits never wraps / saturates and its value is a float64."""
    if bound == 0.0:
        return True
    if not math.isfinite(bound):
        return False
    return bound <= math.ldexp(2.0 ** (bits - 1) - 1, unit_exp) and _fits(bound, unit_exp, 53)


# ------------------------------------------------------------------------------ path choice


def choose(A: Operand, W: Operand, acc, use_block: bool) -> FastPath | None:
    """The fast path proven to reproduce the reference for these operands, or ``None``."""
    if use_block:
        return _choose_block(A, W, acc)
    return _choose_element(A, W, acc)


def _choose_element(A: Operand, W: Operand, acc) -> FastPath | None:
    sa, sw = A.value_stats, W.value_stats
    K = A.values.shape[1]
    if isinstance(acc, IntAccum):
        if not _int_register_ok(A, W, sa, sw, _dot_bound(sa, sw, K), acc.bits):
            return None
        plan = exact_gemm_plan(sa, sw, K)
        if plan is None:
            return None
        return FastPath("blas-int", lambda: exact_gemm(A.values, W.values, plan))
    if isinstance(acc, Exact):
        plan = exact_gemm_plan(sa, sw, K)
        if plan is None:
            return None
        name = "blas" if plan >= K else "blas-chunked"
        return FastPath(name, lambda: exact_gemm(A.values, W.values, plan))
    fp = float_params(acc.fmt, acc.overflow)
    if acc.chunk is not None:
        return _chunk_round(A, W, sa, sw, acc.chunk, fp)
    if acc.order == "pairwise":
        vp = FK.vec_params(fp)
        return FastPath("pairwise", lambda: FK.pairwise_gemm(
            A.values, np.ascontiguousarray(W.values.T), vp, ROW_TILE, COL_TILE))
    plain = A.sig_bits + W.sig_bits <= FLOAT64_MANT
    if not plain:  # the reference carries Dekker pairs; equal if the data's products are exact
        plain = (sa.finite and sw.finite and sa.sig_bits + sw.sig_bits <= FLOAT64_MANT
                 and (sa.amax == 0.0 or sw.amax == 0.0 or _unit(sa, sw) >= MIN_EXP))
    if not plain:
        return None
    vp = FK.vec_params(fp)
    return FastPath("seq", lambda: FK.seq_gemm(
        A.values, np.ascontiguousarray(W.values.T), vp, ROW_TILE, COL_TILE))


def block_terms_exact(se_a: GridStats, se_w: GridStats, ss_a: GridStats, ss_w: GridStats,
                      bs: int) -> bool:
    """Obligation of the block-rounding paths: per block the inner sum of element products is
    exact in float64 (the lemma for ``bs`` products) and the term ``(s_a * s_w) * inner`` is
    exact (the significant bits of the two scales and of the inner sum add up to <= 53 and
    no intermediate leaves the normal float64 range or drops below ``2**-1074``)."""
    if not (se_a.finite and se_w.finite and ss_a.finite and ss_w.finite):
        return False
    if se_a.amax == 0.0 or se_w.amax == 0.0 or ss_a.amax == 0.0 or ss_w.amax == 0.0:
        return True
    u = _unit(se_a, se_w)
    inner = bs * se_a.amax * se_w.amax * BOUND_MARGIN
    if u < MIN_EXP or not _fits(inner, u, FLOAT64_MANT):
        return False
    s_lsb = ss_a.lsb + ss_w.lsb
    if s_lsb < MIN_EXP or s_lsb + u < MIN_EXP:
        return False
    if ss_a.sig_bits + ss_w.sig_bits + _sig_of(inner, u) > FLOAT64_MANT:
        return False
    top = math.frexp(ss_a.amax)[1] + math.frexp(ss_w.amax)[1] + math.frexp(inner)[1]
    return top <= MAX_EXP


def _chunk_round(A: Operand, W: Operand, sa: GridStats, sw: GridStats, chunk: int, fp):
    ones = GridStats(True, 1.0, 0, 1.0, 1)
    if not block_terms_exact(sa, sw, ones, ones, chunk):
        return None
    N, K = A.values.shape
    M = W.values.shape[0]
    return FastPath("blas-chunk-round", lambda: block_round_gemm(
        A.values, np.ones((N, 1)), W.values, np.ones((M, 1)), chunk, fp, scale_blocks=K))


def _choose_block(A: Operand, W: Operand, acc) -> FastPath | None:
    bs, Kp = common_blocks(A, W)
    ea, ew = A.element_stats, W.element_stats
    ca, cw = A.scale_stats, W.scale_stats
    t = A.tensor_scale * W.tensor_scale
    if Kp == bs:
        return _single_block(A, W, acc, ea, ew, ca, cw, t)
    if isinstance(acc, FloatAccum):
        if not block_terms_exact(ea, ew, ca, cw, bs):
            return None
        fp = float_params(acc.fmt, acc.overflow)

        def run():
            Pa, Sa = align_blocks(A, bs, Kp)
            Pw, Sw = align_blocks(W, bs, Kp)
            out = block_round_gemm(Pa, Sa, Pw, Sw, bs, fp)
            return out * t if t != 1.0 else out

        return FastPath("blas-block-round", run)
    # Exact / IntAccum: exact dot product of elements * scales
    if isinstance(acc, IntAccum) and not _int_register_ok(
            A, W, ea, ew, bs * ea.amax * ew.amax * BOUND_MARGIN, acc.bits):
        return None
    if not (ca.finite and cw.finite and ea.finite and ew.finite):
        return None
    if ca.amax != 0.0 and ea.amax != 0.0 and (
            ca.sig_bits + ea.sig_bits > FLOAT64_MANT or ca.lsb + ea.lsb < MIN_EXP):
        return None
    if cw.amax != 0.0 and ew.amax != 0.0 and (
            cw.sig_bits + ew.sig_bits > FLOAT64_MANT or cw.lsb + ew.lsb < MIN_EXP):
        return None
    if ca.amax != 0.0 and cw.amax != 0.0 and (
            ca.sig_bits + cw.sig_bits > FLOAT64_MANT or ca.lsb + cw.lsb < MIN_EXP):
        return None  # the reference forms s_a * s_w in float64 first
    Va = _scaled(A, bs, Kp)
    Vw = _scaled(W, bs, Kp)
    plan = exact_gemm_plan(grid_stats(Va), grid_stats(Vw), Kp)
    if plan is not None:
        def run_exact():
            out = exact_gemm(Va, Vw, plan)
            return out * t if t != 1.0 else out

        return FastPath("blas-block-exact", run_exact)
    if not (block_terms_exact(ea, ew, ca, cw, bs) and _pair_sum_ok(ea, ew, ca, cw, bs, Kp // bs)):
        return None

    def run_blocks():
        Pa, Sa = align_blocks(A, bs, Kp)
        Pw, Sw = align_blocks(W, bs, Kp)
        out = block_exact_gemm(Pa, Sa, Pw, Sw, bs)
        return out * t if t != 1.0 else out

    return FastPath("blas-block-pairs", run_blocks)


def _single_block(A, W, acc, ea, ew, ca, cw, t) -> FastPath | None:
    """One block along K (per-channel / per-tensor scales, or element operands): the
    reference's result is one rounding of the exact term ``(s_a * s_w) * inner`` (to float64
    for Exact / IntAccum, to the accumulator format for FloatAccum, from 0); the inner sum is
    exact by the lemma, ``s_a * s_w`` is exact (significant bits <= 53, in range) and the term
    is carried as an exact Dekker pair (no overflow, error term above 2**-1074)."""
    Kp = A.elements.shape[1]
    if not (ca.finite and cw.finite):
        return None
    if isinstance(acc, IntAccum) and not _int_register_ok(A, W, ea, ew, _dot_bound(ea, ew, Kp),
                                                          acc.bits):
        return None
    plan = exact_gemm_plan(ea, ew, Kp)
    if plan is None:
        return None
    zero = ea.amax == 0.0 or ew.amax == 0.0 or ca.amax == 0.0 or cw.amax == 0.0
    if not zero:
        s_lsb = ca.lsb + cw.lsb
        inner_top = math.frexp(_dot_bound(ea, ew, Kp))[1]
        top = math.frexp(ca.amax)[1] + math.frexp(cw.amax)[1] + inner_top
        if (ca.sig_bits + cw.sig_bits > FLOAT64_MANT or s_lsb < MIN_EXP
                or s_lsb + _unit(ea, ew) < MIN_EXP or top > DEKKER_MAX_EXP):
            return None
    do_round = isinstance(acc, FloatAccum)
    vp = FK.vec_params(float_params(acc.fmt, acc.overflow) if do_round else _FP64)

    def run():
        Pa, Sa = align_blocks(A, Kp, Kp)
        Pw, Sw = align_blocks(W, Kp, Kp)
        inner = np.ascontiguousarray(exact_gemm(Pa, Pw, plan))
        out = FK.scale_gemm_result(inner, Sa[:, 0].copy(), Sw[:, 0].copy(), vp, do_round)
        return out * t if t != 1.0 else out

    return FastPath("blas-block-single", run)


def _scaled(op: Operand, bs: int, Kp: int) -> np.ndarray:
    """``elements * scales`` (per-tensor scale excluded), block-aligned to ``bs``: exact when
    the caller checked the significant bits."""
    P, S = align_blocks(op, bs, Kp)
    R = P.shape[0]
    return (P.reshape(R, -1, bs) * S[:, :, None]).reshape(R, -1)


# ------------------------------------------------------------------------------ block rounding


def block_round_gemm(Pa, Sa, Pw, Sw, bs: int, fp, scale_blocks: int | None = None):
    """``acc = RNE_fp(acc + (Sa*Sw) * inner_b)`` over blocks b in K order, inner sums by BLAS.

    Pa (N, K), Pw (M, K) with K a multiple of ``bs`` except that the last block may be short;
    Sa (N, nb), Sw (M, nb) scales per block (``scale_blocks``: columns covered by one scale
    column, default ``bs``).  The caller has checked :func:`block_terms_exact`."""
    vp = FK.vec_params(fp)

    def step(state, inner, sa, sw):
        FK.block_round_tile(state[0], inner, sa, sw, vp)

    return _tiled_blocks(Pa, Sa, Pw, Sw, bs, step, 1, scale_blocks)


def block_exact_gemm(Pa, Sa, Pw, Sw, bs: int):
    """The exact sum over blocks of ``(Sa*Sw) * inner_b``, correctly rounded to float64, inner
    sums by BLAS, terms added as exact ``hi + lo`` pairs (the caller has checked
    :func:`block_terms_exact` and :func:`_pair_sum_ok`)."""

    def step(state, inner, sa, sw):
        FK.block_exact_tile(state[0], state[1], inner, sa, sw)

    return _zero_sign(_tiled_blocks(Pa, Sa, Pw, Sw, bs, step, 2, None))


def _tiled_blocks(Pa, Sa, Pw, Sw, bs, step, n_state, scale_blocks):
    """Drive ``step(state, inner_tile, sa, sw)`` over the blocks of every output tile of
    (BLOCK_ROW_TILE x BLOCK_COL_TILE); ``state[0]`` (initially 0) is the result.  Tiles run on
    ``numba.get_num_threads()`` threads with single-threaded BLAS inside them; each output
    belongs to one tile, so the result does not depend on the thread count."""
    N, K = Pa.shape
    M = Pw.shape[0]
    sb = bs if scale_blocks is None else scale_blocks
    SaT = np.ascontiguousarray(Sa.T)
    SwT = np.ascontiguousarray(Sw.T)
    out = np.empty((N, M))
    tiles = [(i0, min(i0 + BLOCK_ROW_TILE, N), j0, min(j0 + BLOCK_COL_TILE, M))
             for i0 in range(0, N, BLOCK_ROW_TILE) for j0 in range(0, M, BLOCK_COL_TILE)]

    def work(tile):
        i0, i1, j0, j1 = tile
        state = [np.zeros((i1 - i0, j1 - j0)) for _ in range(n_state)]
        buf = np.empty_like(state[0])
        for k0 in range(0, K, bs):
            k1 = min(k0 + bs, K)
            np.matmul(Pa[i0:i1, k0:k1], Pw[j0:j1, k0:k1].T, out=buf)
            c = k0 // sb
            step(state, buf, SaT[c, i0:i1], SwT[c, j0:j1])
        out[i0:i1, j0:j1] = state[0]

    nthreads = min(_threads(), len(tiles))
    with threadpool_limits(limits=1, user_api="blas"):
        if nthreads <= 1:
            for tile in tiles:
                work(tile)
        else:
            with ThreadPoolExecutor(max_workers=nthreads) as ex:
                list(ex.map(work, tiles))
    return out


def _pair_sum_ok(se_a, se_w, ss_a, ss_w, bs: int, nb: int) -> bool:
    """All block terms are multiples of ``2**g`` (``g`` = the scales' and elements' lsb) and
    ``nb`` of them sum to less than ``2**(104 + g)``: the exact pair sum applies."""
    if se_a.amax == 0.0 or se_w.amax == 0.0 or ss_a.amax == 0.0 or ss_w.amax == 0.0:
        return True
    g = ss_a.lsb + ss_w.lsb + _unit(se_a, se_w)
    total = nb * ss_a.amax * ss_w.amax * bs * se_a.amax * se_w.amax * BOUND_MARGIN
    return _fits(total, g, PAIR_SUM_BITS)


__all__ = ["choose", "slow_forced", "FastPath", "SLOW_GEMM_ENV", "exact_gemm", "exact_gemm_plan",
           "block_round_gemm", "block_exact_gemm", "block_terms_exact"]
