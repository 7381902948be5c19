"""Executors of the GEMM engine's BLAS fast paths (their proofs: :mod:`lowbit.sim.exactness`,
their choice: :mod:`lowbit.sim.fastpath`).

* :func:`exact_gemm` - ``X @ Y.T`` exactly, in one BLAS call or in K chunks added as exact pairs.
* :func:`split_exact_gemm` - ``X @ Y.T`` exactly from exact slices of X (Ozaki's scheme).
* :func:`block_round_gemm` - block dot products with one accumulator rounding per block: per
  output tile and block, the inner sums by BLAS (one call, or two for a two-slice split), then
  a vectorised rounding kernel of :mod:`lowbit.sim.fast_kernels`.
* :func:`block_exact_gemm` - the exact sum over blocks of the block terms, as exact pairs.

Tiles of (``BLOCK_ROW_TILE`` x ``BLOCK_COL_TILE``) accumulators run on
``numba.get_num_threads()`` threads with single-threaded BLAS inside them; each output belongs
to one tile and its blocks are visited in K order, so results do not depend on the thread
count.  Every result is normalised with ``+ 0.0`` where the reference's expansion sums give
``+0.0`` for an exact zero.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

from . import fast_kernels as FK
from .accum_round import FLOAT64_PARAMS

BLOCK_ROW_TILE, BLOCK_COL_TILE = 128, 512  # accumulator tile (fits in L2 with its inner sums)
MIN_ROW_TILE = 16  # rows of a tile when small outputs are split to give every thread a tile
GROUP_SUMS = 1 << 16  # inner sums per tile and step (blocks x rows x cols): small tiles take
# several blocks per BLAS / kernel call, so that Python (holding the GIL) runs less per block
_BLAS = ThreadpoolController()  # made once: threadpool_limits() re-scans the libraries per call
_POOLS: dict = {}  # worker threads per thread count, started once (not per GEMM)


def _pool(nthreads: int) -> ThreadPoolExecutor:
    if nthreads not in _POOLS:
        _POOLS[nthreads] = ThreadPoolExecutor(max_workers=nthreads,
                                              thread_name_prefix="lowbit-blocks")
    return _POOLS[nthreads]
SPLIT_MAGIC = 1.5 * 2.0**52  # (x + c) - c rounds x to a multiple of c / 1.5 / 2**52
_NO_ROUNDING = FK.vec_params(FLOAT64_PARAMS)  # TERM_PAIRS never rounds


def zero_sign(out: np.ndarray) -> np.ndarray:
    out += 0.0  # -0.0 -> +0.0 (the reference's empty expansion sum)
    return out


def exact_gemm(X: np.ndarray, Y: np.ndarray, chunk: int) -> np.ndarray:
    """Exact ``X @ Y.T`` correctly rounded to float64, for a plan from
    :func:`~lowbit.sim.exactness.exact_gemm_plan`: one BLAS call, or K chunks of BLAS added
    exactly as ``hi + lo`` pairs."""
    K = X.shape[1]
    if chunk >= K:
        return zero_sign(X @ Y.T)
    hi = np.ascontiguousarray(X[:, :chunk] @ Y[:, :chunk].T)
    lo = np.zeros_like(hi)
    for k0 in range(chunk, K, chunk):
        c = np.ascontiguousarray(X[:, k0:k0 + chunk] @ Y[:, k0:k0 + chunk].T)
        FK.exact_pair_add(hi, lo, c)
    return zero_sign(hi)


def split_exact_gemm(X: np.ndarray, Y: np.ndarray, exps) -> np.ndarray:
    """Exact ``X @ Y.T`` correctly rounded to float64 from exact slices of X (split exponents
    ``exps`` of :func:`~lowbit.sim.exactness.split_exponents`, which proved every slice times
    Y exact over K and the slice results summable as an exact pair): one BLAS call per slice,
    the results added as ``hi + lo``; ``hi`` is the correctly rounded exact sum."""
    parts = split_slices(X, exps)
    hi = np.ascontiguousarray(parts[0] @ Y.T)
    lo = np.zeros_like(hi)
    for P in parts[1:]:
        FK.exact_pair_add(hi, lo, np.ascontiguousarray(P @ Y.T))
    return zero_sign(hi)


def split_slices(X: np.ndarray, exps) -> list:
    """Slices ``[X_1, ..., X_n, R]`` of X (sum exactly X): ``X_i`` = the remainder rounded (RNE)
    to a multiple of ``2**exps[i]`` as ``(R + c) - c``, ``R`` what is left; every step exact
    (:func:`~lowbit.sim.exactness.split_exponents` checked the magnitudes)."""
    out, rem = [], X
    for s in exps:
        c = np.ldexp(SPLIT_MAGIC, s)
        part = (rem + c) - c
        out.append(part)
        rem = rem - part
    out.append(rem)
    return out


def block_round_gemm(Pa, Sa, Pw, Sw, bs: int, fp, *, term: str = "exact",
                     split: tuple = (), scale_blocks: int | None = None,
                     bounded: bool = False, float32_inner: bool = False):
    """``acc = RNE_fp(acc + (Sa*Sw) * inner_b)`` over blocks b in K order, inner sums by BLAS.

    Pa (N, K), Pw (M, K) with K a multiple of ``bs`` except that the last block may be short;
    Sa (N, nb), Sw (M, nb) scales per block (``scale_blocks``: columns covered by one scale
    column, default ``bs``).  ``term``: ``"exact"`` - the term is exact in float64
    (:func:`~lowbit.sim.exactness.block_terms_exact`); ``"dekker"`` - an exact Dekker pair
    (:func:`~lowbit.sim.exactness.block_terms_dekker`); ``"split"`` - the inner sum from exact
    slices of ``Pa`` (split exponents ``split``), added as an exact pair, power-of-two scales
    (:func:`~lowbit.sim.exactness.block_split_plan`).  ``bounded``: every accumulator sum is
    proven finite and in range (:func:`~lowbit.sim.exactness.block_sums_bounded`: the rounding
    kernel without the overflow checks runs); ``float32_inner``: the inner sums are proven exact
    in float32 (:func:`~lowbit.sim.exactness.float32_inner_ok`: float32 BLAS)."""
    codes = {"exact": FK.TERM_EXACT, "dekker": FK.TERM_DEKKER, "split": FK.TERM_SLICES}
    lefts = split_slices(Pa, split) if term == "split" else [Pa]
    return _tiled_blocks(lefts, Sa, Pw, Sw, bs, term=codes[term], vp=FK.vec_params(fp),
                         scale_blocks=scale_blocks, bounded=bounded,
                         dtype=np.float32 if float32_inner else np.float64)


def block_exact_gemm(Pa, Sa, Pw, Sw, bs: int, *, dekker: bool = False):
    """The exact sum over blocks of ``(Sa*Sw) * inner_b``, correctly rounded to float64, inner
    sums by BLAS, terms added as exact ``hi + lo`` pairs (the caller has checked
    :func:`~lowbit.sim.exactness.pair_sum_ok` and :func:`~lowbit.sim.exactness.
    block_terms_exact`, or with ``dekker=True`` :func:`~lowbit.sim.exactness.
    block_terms_dekker`: each term is then added as its exact Dekker pair)."""
    term = FK.TERM_DEKKER_PAIRS if dekker else FK.TERM_PAIRS
    return zero_sign(_tiled_blocks([Pa], Sa, Pw, Sw, bs, term=term, vp=_NO_ROUNDING,
                                   scale_blocks=None, bounded=True, dtype=np.float64))


def block_major(X: np.ndarray, nfull: int, bs: int, dtype) -> np.ndarray:
    """The first ``nfull`` blocks of (R, K) ``X`` as one contiguous (nfull, R, bs) ``dtype``
    array, block index first: one cast-and-copy pass, after which every block's (R, bs) matrix
    is contiguous (a strided (R, bs) slice of a wide row-major array is slower in BLAS: every
    row is another cache line and page)."""
    R = X.shape[0]
    out = np.empty((nfull, R, bs), dtype=dtype)
    np.copyto(out, X[:, :nfull * bs].reshape(R, nfull, bs).transpose(1, 0, 2),
              casting="same_kind")
    return out


def _tiled_blocks(lefts, Sa, Pw, Sw, bs, *, term, vp, scale_blocks, bounded, dtype):
    """Run :func:`~lowbit.sim.fast_kernels.block_tile` over the blocks of every output tile,
    the tile's inner sums of each of ``lefts`` (the left operand or its slices) with ``Pw`` by
    BLAS in ``dtype`` (float32 only where proven exact: the operands are then cast into
    :func:`block_major` copies, ``Pw`` once, each row tile of ``lefts`` by the thread that
    runs it; float64 operands are read in place, no copy)."""
    N, K = lefts[0].shape
    M = Pw.shape[0]
    nfull = K // bs  # full blocks; a short last block (chunked accumulation) runs alone
    k0 = nfull * bs
    cast = dtype != np.float64
    if cast:  # (blocks, bs, M): each block's matrix transposed, contiguous underneath
        ws_all = block_major(Pw, nfull, bs, dtype).transpose(0, 2, 1)
    else:
        ws_all = Pw[:, :k0].reshape(M, nfull, bs).transpose(1, 2, 0)
    w_tail = Pw[:, k0:].astype(dtype, copy=False)  # a short last block
    sb = bs if scale_blocks is None else scale_blocks
    SaT = np.ascontiguousarray(Sa.T)
    SwT = np.ascontiguousarray(Sw.T)
    out = np.empty((N, M))
    threads = max(int(numba.get_num_threads()), 1)
    rt = BLOCK_ROW_TILE
    while rt > MIN_ROW_TILE and -(-N // rt) * -(-M // BLOCK_COL_TILE) < threads:
        rt //= 2  # small outputs: smaller tiles, so that every thread has one
    tiles = [(i0, min(i0 + rt, N), j0, min(j0 + BLOCK_COL_TILE, M))
             for i0 in range(0, N, rt) for j0 in range(0, M, BLOCK_COL_TILE)]

    block_cols = np.arange(-(-K // bs)) * bs // sb  # scale column of every block

    def work(tile):
        i0, i1, j0, j1 = tile
        r, c = i1 - i0, j1 - j0
        acc = np.zeros((r, c))
        low = np.zeros_like(acc)
        g = max(1, min(nfull, GROUP_SUMS // (r * c)))
        inner = np.empty((g, len(lefts), r, c), dtype=dtype)
        # (blocks, rows, bs) and (blocks, bs, cols): one BLAS call per block, in C
        if cast:
            xs = [block_major(X[i0:i1], nfull, bs, dtype) for X in lefts]
        else:
            xs = [X[i0:i1, :k0].reshape(r, nfull, bs).transpose(1, 0, 2) for X in lefts]
        ws = ws_all[:, :, j0:j1]
        for b0 in range(0, nfull, g):
            b1 = min(b0 + g, nfull)
            for s, X in enumerate(xs):
                np.matmul(X[b0:b1], ws[b0:b1], out=inner[:b1 - b0, s])
            cols = block_cols[b0:b1]
            FK.block_tile(acc, low, inner[:b1 - b0], SaT[cols, i0:i1], SwT[cols, j0:j1], vp,
                          term=term, bounded=bounded)
        if k0 < K:
            for s, X in enumerate(lefts):
                np.matmul(X[i0:i1, k0:].astype(dtype, copy=False), w_tail[j0:j1].T,
                          out=inner[0, s])
            cols = block_cols[nfull:]
            FK.block_tile(acc, low, inner[:1], SaT[cols, i0:i1], SwT[cols, j0:j1], vp,
                          term=term, bounded=bounded)
        out[i0:i1, j0:j1] = acc

    with _BLAS.limit(limits=1, user_api="blas"):
        run_tiles(work, tiles, min(threads, len(tiles)))
    return out


def run_tiles(work, tiles: list, nthreads: int) -> None:
    """``work(tile)`` for every tile on ``nthreads`` threads: the calling thread and
    ``nthreads - 1`` pool threads take tiles from one shared iterator (``next`` on a list
    iterator is atomic under the GIL, so each tile runs once) until none is left.  The caller
    works too instead of waiting: no wake-up latency before the first tile."""
    tiles = iter(tiles)

    def drain():
        for tile in tiles:
            work(tile)

    futures = [_pool(nthreads - 1).submit(drain) for _ in range(nthreads - 1)]
    drain()
    for f in futures:
        f.result()
