"""Fast paths of the GEMM engine, each provably bit-identical to the reference kernels.

:func:`choose` returns a path only when its proof obligation (:mod:`lowbit.sim.exactness`)
holds for the given operands, checked from the formats and from statistics of the actual data
(:class:`~lowbit.sim.operands.GridStats`, computed once per operand in O(R*K)); otherwise the
engine runs the reference kernels.  ``LOWBIT_SLOW_GEMM=1`` in the environment disables every
fast path (:func:`slow_forced`).  Paths (name: model -> obligation):

* ``blas`` (Exact, element): the exact-BLAS lemma for the whole K.
* ``blas-chunked`` (Exact, element): one product fits 53 bits but K does not: K chunks, each
  exact, added as exact pairs (running sum below ``2**104`` grid units); ``hi`` is the correctly
  rounded exact sum.
* ``blas-split`` (Exact, element, when a single product needs more than 53 bits, e.g. FP32
  activations times FP32-scaled INT4 weights): the operand with the wider range split into
  at most ``MAX_SLICES`` exact slices (Ozaki's scheme, :func:`~lowbit.sim.exactness.
  split_exponents`), each slice times the other operand exact by the lemma, the slice results
  added as an exact pair; ``hi`` is the correctly rounded exact sum.
* ``blas-int`` (IntAccum, element): the values are integers on the formats' grids and the
  register can never leave its range (``B <= 2**(bits-1) - 1`` and ``< 2**53`` register units):
  wrap and saturate never act, the register holds the exact integer dot product.
* ``blas-block-single`` (any model, block path with ONE block along K: per-channel /
  per-tensor scales): the reference rounds the exact term ``(s_a s_w) * inner`` once (to
  float64, or to the float accumulator from 0); the inner sum is exact (lemma, register), the
  scale product exact, the term an exact Dekker pair.
* ``blas-block-exact`` (Exact or IntAccum, block): the exact dot product of the dequantised
  values ``elements * scales`` (exact products; per-tensor scale applied afterwards as in the
  reference), by the lemma or its chunked form; IntAccum: every block's register in range.
* ``blas-block-pairs`` (Exact or IntAccum, block, when the above needs > 53 bits per product,
  e.g. an outlier block next to small ones): per block the exact inner sum by BLAS and the
  exact term, terms added as exact pairs.
* ``blas-block-pairs-dekker``: the same with terms that need more than 53 bits (FP32 group
  scales: int4_g128), each added as its exact Dekker pair (both parts on the terms' grid, the
  same bound).
* ``blas-block-round`` (sequential FloatAccum, block) and ``blas-chunk-round`` (chunked
  FloatAccum, element: a chunk is a block with unit scales): per block the exact inner sum by
  BLAS and the term exact in float64, then ``acc = RNE(acc + term)`` once per block.
  ``-dekker`` variants: the term needs more than 53 bits (FP32 group scales), carried as an
  exact Dekker pair; ``-split`` variants: the inner sum needs more than 53 bits (wide element
  ranges, fp16 / bf16 chunks), computed as two exact slices (power-of-two scales only); both
  round ``acc + hi + lo`` once.
* ``seq`` / ``pairwise`` (FloatAccum, element): the reference's own products and additions in
  the reference's order per output, vectorised over output columns
  (:mod:`lowbit.sim.fast_kernels`); applies whenever the reference uses plain float64 products
  (``sig_bits_a + sig_bits_w <= 53``), or the data's significant bits prove the products exact.

Evidence: the BLAS paths try their proof first from the FORMATS' bounds (every element on the
element grid, ``|e| <= pmax``: :attr:`~lowbit.sim.operands.Operand.element_bounds`, which costs
one vectorised finiteness pass) and only then from the data's statistics (a pass over both
operands); paths are tried fastest first, each with both.  Options of the block-rounding paths,
each with its own obligation: ``bounded`` (:func:`~lowbit.sim.exactness.block_sums_bounded`:
every accumulator sum finite and below the overflow threshold, so the rounding kernel compiled
without the overflow / Inf-NaN checks runs) and ``float32_inner``
(:func:`~lowbit.sim.exactness.float32_inner_ok`: the elements are float32 values and every
partial inner sum is a float32 integer multiple of the product grid, so float32 BLAS is exact:
FP4 / INT4 elements).
"""

from __future__ import annotations

import os
from typing import Callable, NamedTuple

import numpy as np

from lowbit.formats.accum import Exact, FloatAccum, IntAccum

from . import exactness as X
from . import fast_kernels as FK
from .accum_round import FLOAT64_PARAMS, float_params
from .blas_paths import block_exact_gemm, block_round_gemm, exact_gemm, split_exact_gemm
from .operands import GridStats, Operand, align_blocks, common_blocks

SLOW_GEMM_ENV = "LOWBIT_SLOW_GEMM"
ROW_TILE, COL_TILE = 8, 256  # per-add kernels: outputs per tile (rows x columns)


def slow_forced() -> bool:
    """True when ``LOWBIT_SLOW_GEMM`` is set to anything but ``""`` / ``"0"``."""
    return os.environ.get(SLOW_GEMM_ENV, "") not in ("", "0")


class FastPath(NamedTuple):
    name: str
    run: Callable[[], np.ndarray]


def choose(A: Operand, W: Operand, acc, use_block: bool) -> FastPath | None:
    """The fast path proven to reproduce the reference for these operands, or ``None``."""
    if use_block:
        return _choose_block(A, W, acc)
    return _choose_element(A, W, acc)


def _lsb(op: Operand) -> int:
    return 0 if op.lsb is None else op.lsb


def _register_ok(A: Operand, W: Operand, sa: GridStats, sw: GridStats, bound: float,
                 bits: int) -> bool:
    """The integer-register obligation for operands A, W (value statistics ``sa``, ``sw``)."""
    return (X.grid_ok(_lsb(A), sa) and X.grid_ok(_lsb(W), sw)
            and X.register_ok(bound, _lsb(A) + _lsb(W), bits))


def _evidence(bounds: Callable, data: Callable):
    """The statistics a BLAS path's proof is tried with, cheapest first: the formats' bounds
    (:attr:`~lowbit.sim.operands.Operand.element_bounds`: no pass over the data but a
    finiteness test; skipped when a format has none), then the data's own statistics (a pass
    over both operands, made only when the bounds do not prove the path).  Both are valid
    statistics of the same data, so a proof from either holds."""
    ba, bw = bounds()
    if ba is not None and bw is not None:
        yield ba, bw
    yield data()


def _first(evidence, prove):
    """The first non-``None`` ``prove(sa, sw)`` over :func:`_evidence`, or ``None``."""
    for sa, sw in evidence():
        found = prove(sa, sw)
        if found is not None:
            return found
    return None


# ------------------------------------------------------------------------------ element path


def _choose_element(A: Operand, W: Operand, acc) -> FastPath | None:
    K = A.values.shape[1]
    values = lambda: _evidence(lambda: (A.value_bounds, W.value_bounds),  # noqa: E731
                               lambda: (A.value_stats, W.value_stats))
    if isinstance(acc, IntAccum):
        def prove_int(sa, sw):
            if not _register_ok(A, W, sa, sw, X.dot_bound(sa, sw, K), acc.bits):
                return None
            plan = X.exact_gemm_plan(sa, sw, K)
            return None if plan is None else FastPath(
                "blas-int", lambda: exact_gemm(A.values, W.values, plan))
        return _first(values, prove_int)
    if isinstance(acc, Exact):
        def prove_exact(sa, sw):
            plan = X.exact_gemm_plan(sa, sw, K)
            if plan is None:
                return None
            return FastPath("blas" if plan >= K else "blas-chunked",
                            lambda: exact_gemm(A.values, W.values, plan))

        def prove_split(sa, sw):
            s_a, s_w = X.split_exponents(sa, sw, K), X.split_exponents(sw, sa, K)
            if s_a is not None and (s_w is None or len(s_a) <= len(s_w)):
                return FastPath("blas-split", lambda: split_exact_gemm(A.values, W.values, s_a))
            if s_w is not None:  # slices of W: (W @ A.T).T
                return FastPath("blas-split", lambda: np.ascontiguousarray(
                    split_exact_gemm(W.values, A.values, s_w).T))
            return None
        return _first(values, prove_exact) or _first(values, prove_split)
    fp = float_params(acc.fmt, acc.overflow)
    if acc.chunk is not None:
        return _chunk_round(A, W, values, acc.chunk, fp)
    # per-add kernels; the kernel without overflow checks needs every sum bounded (from the
    # formats' bounds, else from the data)
    vp = FK.vec_params(fp)
    bounded = _first(values, lambda sa, sw: X.sums_bounded(sa, sw, K, fp, vp.thr) or None)
    bounded = bool(bounded)
    if acc.order == "pairwise":
        return FastPath("pairwise", lambda: FK.per_add_gemm(
            A.values, np.ascontiguousarray(W.values.T), vp, pairwise=True, bounded=bounded,
            row_tile=ROW_TILE, col_tile=COL_TILE))
    plain = A.sig_bits + W.sig_bits <= X.FLOAT64_MANT
    if not plain:  # the reference carries Dekker pairs; equal if the data's products are exact
        sa, sw = A.value_stats, W.value_stats
        plain = (sa.finite and sw.finite and sa.sig_bits + sw.sig_bits <= X.FLOAT64_MANT
                 and (X.zero(sa, sw) or X.unit(sa, sw) >= X.MIN_EXP))
    if not plain:
        return None
    return FastPath("seq", lambda: FK.per_add_gemm(
        A.values, np.ascontiguousarray(W.values.T), vp, pairwise=False, bounded=bounded,
        row_tile=ROW_TILE, col_tile=COL_TILE))


def _chunk_round(A: Operand, W: Operand, values, chunk: int, fp) -> FastPath | None:
    """Chunked float accumulation as block rounding with unit scales (one chunk = one block):
    exact chunk sums by BLAS if proven (from ``values``: :func:`_evidence`), else as two exact
    slices."""
    N, K = A.values.shape
    M = W.values.shape[0]
    ones_a, ones_w = np.ones((N, 1)), np.ones((M, 1))

    def prove_exact(sa, sw):
        if not X.block_terms_exact(sa, sw, X.ONE, X.ONE, chunk):
            return None
        kw = _block_options(sa, sw, X.ONE, X.ONE, K, chunk, fp)
        return FastPath("blas-chunk-round", lambda: block_round_gemm(
            A.values, ones_a, W.values, ones_w, chunk, fp, scale_blocks=K, **kw))

    def prove_split(sa, sw):
        s = X.block_split_plan(sa, sw, X.ONE, X.ONE, chunk)  # split exponents
        if s is None:
            return None
        bounded = _block_options(sa, sw, X.ONE, X.ONE, K, chunk, fp)["bounded"]
        return FastPath("blas-chunk-round-split", lambda: block_round_gemm(
            A.values, ones_a, W.values, ones_w, chunk, fp, term="split", split=s,
            scale_blocks=K, bounded=bounded))

    return _first(values, prove_exact) or _first(values, prove_split)


def _block_options(ea, ew, ca, cw, Kp, bs, fp) -> dict:
    """Optional speed-ups of the block-rounding paths, each with its own proof: the rounding
    kernel without overflow checks and float32 BLAS for the inner sums."""
    return {"bounded": X.block_sums_bounded(ea, ew, ca, cw, Kp, bs, fp,
                                            FK.vec_params(fp).thr),
            "float32_inner": X.float32_inner_ok(ea, ew, bs)}


# ------------------------------------------------------------------------------ block path


def _choose_block(A: Operand, W: Operand, acc) -> FastPath | None:
    bs, Kp = common_blocks(A, W)
    ca, cw = A.scale_stats, W.scale_stats
    t = A.tensor_scale * W.tensor_scale
    elements = lambda: _evidence(lambda: (A.element_bounds, W.element_bounds),  # noqa: E731
                                 lambda: (A.element_stats, W.element_stats))
    if Kp == bs:
        return _first(elements, lambda ea, ew: _single_block(A, W, acc, ea, ew, ca, cw, t))

    def blocks(fn):
        def run():
            Pa, Sa = align_blocks(A, bs, Kp)
            Pw, Sw = align_blocks(W, bs, Kp)
            out = fn(Pa, Sa, Pw, Sw)
            return out * t if t != 1.0 else out
        return run

    if isinstance(acc, FloatAccum):
        fp = float_params(acc.fmt, acc.overflow)

        def round_path(name, term, ok):
            """The path ``name`` if ``ok(ea, ew)`` holds (its block terms are exact as
            ``term``)."""
            def prove(ea, ew):
                if not ok(ea, ew):
                    return None
                kw = _block_options(ea, ew, ca, cw, Kp, bs, fp)
                return FastPath(name, blocks(
                    lambda Pa, Sa, Pw, Sw: block_round_gemm(Pa, Sa, Pw, Sw, bs, fp, term=term,
                                                            **kw)))
            return _first(elements, prove)

        def prove_split(ea, ew):
            s = X.block_split_plan(ea, ew, ca, cw, bs)
            if s is None:
                return None
            bounded = _block_options(ea, ew, ca, cw, Kp, bs, fp)["bounded"]
            return FastPath("blas-block-round-split", blocks(
                lambda Pa, Sa, Pw, Sw: block_round_gemm(Pa, Sa, Pw, Sw, bs, fp, term="split",
                                                        split=s, bounded=bounded)))

        # fastest first, each from the formats' bounds, then from the data
        return (round_path("blas-block-round", "exact",
                           lambda ea, ew: X.block_terms_exact(ea, ew, ca, cw, bs))
                or round_path("blas-block-round-dekker", "dekker",
                              lambda ea, ew: X.block_terms_dekker(ea, ew, ca, cw, bs))
                or _first(elements, prove_split))
    # Exact / IntAccum: the exact sum of the block terms
    if not X.scales_product_exact(ca, cw):
        return None  # the reference forms s_a * s_w in float64 first

    def prove_exact(ea, ew):
        if not (ea.finite and ew.finite):
            return None
        if isinstance(acc, IntAccum) and not _register_ok(A, W, ea, ew,
                                                          X.inner_bound(ea, ew, bs), acc.bits):
            return None
        va, vw = _scaled_stats(ea, ca), _scaled_stats(ew, cw)
        plan = None if va is None or vw is None else X.exact_gemm_plan(va, vw, Kp)
        if plan is not None:
            return FastPath("blas-block-exact", blocks(
                lambda Pa, Sa, Pw, Sw: exact_gemm(_scaled(Pa, Sa, bs), _scaled(Pw, Sw, bs),
                                                  plan)))
        return None

    def prove_pairs(ea, ew):
        if isinstance(acc, IntAccum) and not _register_ok(A, W, ea, ew,
                                                          X.inner_bound(ea, ew, bs), acc.bits):
            return None
        if not X.pair_sum_ok(ea, ew, ca, cw, bs, Kp // bs):
            return None
        if X.block_terms_exact(ea, ew, ca, cw, bs):
            return FastPath("blas-block-pairs", blocks(
                lambda Pa, Sa, Pw, Sw: block_exact_gemm(Pa, Sa, Pw, Sw, bs)))
        if X.block_terms_dekker(ea, ew, ca, cw, bs):  # FP32 group scales (int4_g128)
            return FastPath("blas-block-pairs-dekker", blocks(
                lambda Pa, Sa, Pw, Sw: block_exact_gemm(Pa, Sa, Pw, Sw, bs, dekker=True)))
        return None

    return _first(elements, prove_exact) or _first(elements, prove_pairs)


def _scaled_stats(se: GridStats, ss: GridStats) -> GridStats | None:
    """Bounds on the statistics of ``elements * scales`` (``None`` unless every such product
    is exact in float64)."""
    if X.zero(se, ss):
        return GridStats(finite=True, amax=0.0, lsb=se.lsb, l1max=0.0, sig_bits=0)
    if se.sig_bits + ss.sig_bits > X.FLOAT64_MANT or se.lsb + ss.lsb < X.MIN_EXP:
        return None
    return GridStats(finite=se.finite and ss.finite, amax=se.amax * ss.amax,
                     lsb=se.lsb + ss.lsb, l1max=se.l1max * ss.amax,
                     sig_bits=se.sig_bits + ss.sig_bits)


def _scaled(P: np.ndarray, S: np.ndarray, bs: int) -> np.ndarray:
    """``elements * scales`` per block (exact when :func:`_scaled_stats` allowed it)."""
    R = P.shape[0]
    return (P.reshape(R, -1, bs) * S[:, :, None]).reshape(R, -1)


def _single_block(A, W, acc, ea, ew, ca, cw, t) -> FastPath | None:
    """One block along K: the inner sum is exact (lemma; IntAccum: register in range), the
    scale product exact and the term an exact Dekker pair, rounded once."""
    Kp = A.elements.shape[1]
    if isinstance(acc, IntAccum) and not _register_ok(A, W, ea, ew, X.dot_bound(ea, ew, Kp),
                                                      acc.bits):
        return None
    plan = X.exact_gemm_plan(ea, ew, Kp)
    if plan is None or not X.block_terms_dekker(ea, ew, ca, cw, Kp):
        return None
    do_round = isinstance(acc, FloatAccum)
    vp = FK.vec_params(float_params(acc.fmt, acc.overflow) if do_round else FLOAT64_PARAMS)

    def run():
        Pa, Sa = align_blocks(A, Kp, Kp)
        Pw, Sw = align_blocks(W, Kp, Kp)
        inner = np.ascontiguousarray(exact_gemm(Pa, Pw, plan))
        out = FK.scale_gemm_result(inner, Sa[:, 0].copy(), Sw[:, 0].copy(), vp,
                                   do_round=do_round)
        return out * t if t != 1.0 else out

    return FastPath("blas-block-single", run)


__all__ = ["choose", "slow_forced", "FastPath", "SLOW_GEMM_ENV"]
