"""Recycled memory for tensor-sized results (``quantize`` / ``encode`` / ``decode`` outputs).

Why: a fresh array of at least 32 MiB comes from the operating system on every call under
glibc's malloc (its mmap threshold never exceeds ``4 MiB * sizeof(long)`` = 32 MiB on 64-bit
Linux, ``mallopt(3)``), and the kernel zero-fills every new page before the conversion writes
it. Smaller arrays are recycled by malloc itself once freed. Quantizing the same activations or
weights in a loop (QAT, a sweep, calibration) therefore paid a page-fault and zero-fill pass
per call that doubled the cost of a float32 fake-quantization. This module keeps a bounded set
of large buffers and hands one out again once no array uses it, like a caching allocator.

Rules:

* only results of at least :data:`MIN_CACHED_BYTES` go through the cache; smaller ones are a
  plain ``np.empty``;
* a cached buffer is handed out again only when no array refers to it: every array returned by
  :func:`empty` is a view whose ``base`` is the buffer (so are the views of that array), and
  the buffer is free when the cache's own reference is the only one left
  (``sys.getrefcount``). Memory that is still reachable from Python is never reused;
* the cache holds at most :func:`cache_limit_bytes` bytes (in-use and free buffers together;
  environment variable :data:`CACHE_ENV` in MiB, default :data:`DEFAULT_CACHE_MB`, ``0`` turns
  the cache off); to make room the least recently used free buffers are dropped, and a result
  that does not fit is a plain ``np.empty``;
* :func:`release_buffers` drops every cached buffer (arrays in use keep theirs alive as their
  ``base`` and free it with themselves).

Like ``np.empty``, the contents of a returned array are undefined: every caller in
:mod:`lowbit.formats` writes every element. A returned array does not own its data
(``flags.owndata`` is False, ``ndarray.resize`` refuses it), as with any view.
"""

from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np

CACHE_ENV = "LOWBIT_BUFFER_CACHE_MB"
DEFAULT_CACHE_MB = 512
MIN_CACHED_BYTES = 32 << 20
"""Smallest result (bytes) that goes through the cache: glibc recycles smaller blocks itself."""

_FREE_REFCOUNT = 2  # the cache's list slot + getrefcount's own argument
_lock = threading.Lock()
_buffers: list[np.ndarray] = []  # uint8 owners, least recently handed out first


def cache_limit_bytes() -> int:
    """Bytes the cache may hold (:data:`CACHE_ENV` in MiB, a number >= 0; default
    :data:`DEFAULT_CACHE_MB`)."""
    raw = os.environ.get(CACHE_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_CACHE_MB << 20
    try:
        mib = float(raw)
    except ValueError:
        mib = -1.0
    if not (math.isfinite(mib) and mib >= 0):
        raise ValueError(f"{CACHE_ENV}={raw!r}: allowed values are a number of MiB >= 0 "
                         f"(0 turns the output-buffer cache off; default {DEFAULT_CACHE_MB})")
    return int(mib * (1 << 20))


def _is_free(i: int) -> bool:
    return sys.getrefcount(_buffers[i]) <= _FREE_REFCOUNT


def _free_bytes() -> int:
    """Bytes of the cached buffers no array refers to (caller holds ``_lock``)."""
    return sum(_buffers[i].nbytes for i in range(len(_buffers)) if _is_free(i))


def empty(shape, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape`` and ``dtype`` (as ``np.empty``), taken
    from the cache when at least :data:`MIN_CACHED_BYTES` and it fits (see the module
    docstring)."""
    dtype = np.dtype(dtype)
    shape = tuple(int(d) for d in np.atleast_1d(shape))
    nbytes = math.prod(shape) * dtype.itemsize
    limit = cache_limit_bytes()
    if nbytes < MIN_CACHED_BYTES or nbytes > limit:
        return np.empty(shape, dtype)
    with _lock:
        for i in range(len(_buffers)):
            if _buffers[i].nbytes == nbytes and _is_free(i):
                buf = _buffers.pop(i)
                _buffers.append(buf)
                return buf.view(dtype).reshape(shape)
        held = sum(b.nbytes for b in _buffers)
        i = 0
        while held + nbytes > limit and i < len(_buffers):
            if _is_free(i):
                held -= _buffers.pop(i).nbytes
            else:
                i += 1
        if held + nbytes > limit:
            return np.empty(shape, dtype)
        buf = np.empty(nbytes, np.uint8)
        _buffers.append(buf)
        return buf.view(dtype).reshape(shape)


def release_buffers() -> int:
    """Drop every cached buffer; returns the bytes that were free (given back to the system
    now; buffers still in use go with the arrays that use them)."""
    with _lock:
        free = _free_bytes()
        _buffers.clear()
    return free


def cached_bytes() -> tuple[int, int]:
    """``(in use, free)`` bytes held by the cache."""
    with _lock:
        free = _free_bytes()
        return sum(b.nbytes for b in _buffers) - free, free
