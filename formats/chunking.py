"""Bounded-memory traversal of input arrays and the random stream of stochastic rounding.

Every conversion reads its input in pieces of at most :data:`CHUNK_ELEMS` elements (the element
path in C order, :func:`c_order_chunks`; the block engine in whole rows,
:meth:`lowbit.formats.layout.BlockLayout.row_chunks`) and writes each piece's result straight
into the output array, so the working memory beyond input and output is a few chunks whatever
the tensor size. Results do not depend on the chunking: every element is converted by itself
(its row's scale comes from the whole row), and the random integer of a stochastic rounding is a
function of the element's index (:func:`lowbit.formats._kernel.random_bits`), not of the order
of draws. ``tests/formats/test_chunking.py`` checks both with tiny chunks.
"""

from __future__ import annotations

import atexit
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

import numba
import numpy as np
from numba import njit

from lowbit.formats._kernel import random_bits

CHUNK_ELEMS = 1 << 20
"""Elements per piece (4 MiB of float32); tests lower it to exercise the chunk boundaries."""

DIRECT_PIECES = 4
"""A pass that reads native input and writes straight into its outputs (no per-piece
buffers) takes pieces of up to this many :data:`CHUNK_ELEMS` (:func:`direct_piece`)."""

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def as_float_array(x, argname: str = "x") -> np.ndarray:
    """``x`` as an array of float16 / float32 / float64 (any byte order, any strides); TypeError
    naming the dtype otherwise (integers, bool, complex, strings, objects)."""
    xa = np.asarray(x)
    if xa.dtype.kind != "f" or xa.dtype.newbyteorder("=") not in FLOAT_DTYPES:
        raise TypeError(f"{argname} must be a float16, float32 or float64 array, got dtype "
                        f"{xa.dtype}")
    return xa


def work_dtype(dtype) -> np.dtype:
    """The native dtype an input dtype is converted in: float16 -> float32 (exact), other byte
    orders -> native."""
    d = np.dtype(dtype).newbyteorder("=")
    return np.dtype(np.float32) if d == np.float16 else d


def native(a: np.ndarray) -> np.ndarray:
    """``a`` in :func:`work_dtype` and C order (a copy only when needed)."""
    w = work_dtype(a.dtype)
    if a.dtype != w:
        return np.ascontiguousarray(a, dtype=w)
    return np.ascontiguousarray(a)


def direct_piece(n_elems: int) -> int:
    """Elements per piece of a pass over ``n_elems`` elements that allocates nothing per piece:
    up to :data:`DIRECT_PIECES` times :data:`CHUNK_ELEMS` (fewer pieces, less per-piece work:
    2**22-element pieces ran the element and MX casts 5-11% faster than 2**20 on 2**24
    values), but never below :data:`CHUNK_ELEMS` nor so large that a thread gets fewer than
    two pieces."""
    per_thread = -(-int(n_elems) // (2 * max(numba.get_num_threads(), 1)))
    return max(CHUNK_ELEMS, min(DIRECT_PIECES * CHUNK_ELEMS, per_thread))


def c_order_chunks(x: np.ndarray, max_elems: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(flat offset, 1-D native chunk)`` covering ``x`` in C order, each of at most
    ``max_elems`` elements (default :data:`CHUNK_ELEMS`); only a chunk is ever copied (for
    strided, float16 or non-native byte order input)."""
    max_elems = max(int(max_elems or CHUNK_ELEMS), 1)
    if x.ndim == 0:
        yield 0, native(x.reshape(1))
        return
    if x.flags.c_contiguous:
        flat = x.reshape(-1)
        for s in range(0, flat.shape[0], max_elems):
            yield s, native(flat[s:s + max_elems])
        return
    yield from _strided(x, 0, max_elems)


def _strided(x, offset, max_elems):
    if x.ndim == 1:
        for s in range(0, x.shape[0], max_elems):
            yield offset + s, native(x[s:s + max_elems])
        return
    inner = int(np.prod(x.shape[1:], dtype=np.int64))
    if inner <= max_elems:
        step = max(max_elems // max(inner, 1), 1)
        for i in range(0, x.shape[0], step):
            yield offset + i * inner, native(x[i:i + step]).reshape(-1)
        return
    for i in range(x.shape[0]):
        yield from _strided(x[i], offset + i * inner, max_elems)


_PREFIX = "lowbit-formats"
_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0


def _pool(n: int) -> ThreadPoolExecutor:
    global _POOL, _POOL_SIZE
    if _POOL is None or _POOL_SIZE != n:
        if _POOL is not None:
            _POOL.shutdown(wait=False)
        _POOL = ThreadPoolExecutor(max_workers=n, thread_name_prefix=_PREFIX)
        _POOL_SIZE = n
    return _POOL


@atexit.register
def _shutdown():  # pragma: no cover - interpreter exit
    if _POOL is not None:
        _POOL.shutdown(wait=False)


_INSIDE = threading.local()
"""``_INSIDE.active``: this thread is running pieces of :func:`run_pieces`."""


def run_pieces(fn: Callable, pieces: Iterable) -> list:
    """``[fn(p) for p in pieces]``, the pieces running concurrently on ``numba.get_num_threads()``
    threads (the numba kernels they call release the GIL): the calling thread and pool threads
    each take the next piece from ``pieces`` as they finish one, so at most that many pieces
    are in flight (memory stays bounded) and no piece waits on a hand-over between threads
    (waking a pool thread for every piece cost ~0.07 ms per piece, a fifth of a 2**20-element
    conversion). Results come back in piece order; the first exception in piece order is
    raised (pieces after a failed one may not run); each piece writes its own disjoint part
    of the output, so the result does not depend on the thread count. A piece's own
    conversions run inline (no waiting on the pool from inside it)."""
    n = numba.get_num_threads()
    if getattr(_INSIDE, "active", False) or threading.current_thread().name.startswith(_PREFIX):
        n = 1
    it = iter(pieces)
    first = next(it, None)
    if first is None:
        return []
    second = next(it, None)
    if second is None or n <= 1:
        out = [fn(first)]
        if second is not None:
            out.append(fn(second))
            out.extend(fn(p) for p in it)
        return out
    feed = _chain_two(first, second, it)
    lock = threading.Lock()
    results: list = []
    errors: list = []  # (piece index, exception), re-raised by the caller in piece order

    def work():
        _INSIDE.active = True
        try:
            while True:
                with lock:
                    if errors:
                        return
                    i = len(results)
                    try:
                        p = next(feed)
                    except StopIteration:
                        return
                    except BaseException as exc:  # making the piece failed
                        errors.append((i, exc))
                        return
                    results.append(None)
                try:
                    results[i] = fn(p)
                except BaseException as exc:
                    with lock:
                        errors.append((i, exc))
                    return
        finally:
            _INSIDE.active = False

    helpers = [_pool(n).submit(work) for _ in range(n - 1)]
    try:
        work()
    finally:
        for h in helpers:
            h.result()
    if errors:
        raise min(errors, key=lambda e: e[0])[1]
    return results


def _chain_two(first, second, rest: Iterator):
    yield first
    yield second
    yield from rest


def check_seed(seed):
    """``seed`` if it is None, a non-negative int or a ``numpy.random.Generator``; a TypeError
    or ValueError naming ``seed`` otherwise."""
    if seed is None or isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be a non-negative int or a numpy.random.Generator, got "
                        f"{seed!r} ({type(seed).__name__})")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative int or a numpy.random.Generator, got "
                         f"{seed}")
    return seed


def stochastic_key(seed) -> np.uint64:
    """The 64-bit key of one stochastic conversion: drawn from ``numpy.random.default_rng(seed)``
    for an int (the same key every time), or from the Generator itself (advancing it by one
    draw, so successive calls differ)."""
    seed = check_seed(seed)
    if seed is None:
        raise ValueError("stochastic rounding needs seed= (a non-negative int or a "
                         "numpy.random.Generator)")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return np.uint64(rng.integers(0, np.iinfo(np.uint64).max, dtype=np.uint64, endpoint=True))


def stochastic_bits(seed, n: int, sr_bits: int = 32, offset: int = 0) -> np.ndarray:
    """The random integers ``r_i`` (uint64, in ``[0, 2**sr_bits)``) that a stochastic conversion
    seeded with ``seed`` uses for elements ``offset .. offset + n - 1``: reproduce or audit a
    stochastic rounding (an int seed gives the same key as the conversion)."""
    from_seed = stochastic_key(seed)
    out = np.empty(int(n), np.uint64)
    _fill_random(np.uint64(from_seed), int(offset), int(sr_bits), out)
    return out


@njit(cache=True)
def _fill_random(key, offset, srbits, out):
    for i in range(out.shape[0]):
        out[i] = random_bits(key, offset + i, srbits)
