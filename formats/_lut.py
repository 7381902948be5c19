"""Lookup-table fast path: float32 -> <= 8-bit formats for the deterministic rounding modes.

The code of a float32 ``x`` in a small target format depends only on its sign, its exponent, the
top ``K`` mantissa bits and whether any lower bit is set (sticky), with ``K = 2*mbits + 2`` for
floats (covers the guard bit at every exponent down to half the smallest subnormal) and
``bits + 1`` for integers. The table is built once per (format, policy) by running the exact
generic kernel on one representative float32 per index, so the fast path is bit-identical to it.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from lowbit.formats import _kernel as K
from numba import njit, prange


def lut_width(fmt) -> int | None:
    """Mantissa bits the table keeps, or None when the format is not table-friendly."""
    if fmt.bits > 8:
        return None
    if fmt.kind == "float":
        k = 2 * fmt.mbits + 2
    else:
        k = fmt.bits + 1
    return k if k <= 12 else None


@lru_cache(maxsize=128)
def code_table(fmt, P_bytes: bytes) -> tuple[int, np.ndarray]:
    """(K, uint32 table indexed by ``(u >> (23-K)) << 1 | sticky``) for parameter vector P."""
    P = np.frombuffer(P_bytes, dtype=np.int64)
    k = lut_width(fmt)
    idx = np.arange(1 << (9 + k + 1), dtype=np.uint32)
    hi = idx >> 1
    sticky = idx & 1
    low_mask = (1 << (23 - k)) - 1
    u = (hi << (23 - k)) | sticky  # the lowest bit stands in for "any lower bit set"
    if k == 23:
        raise AssertionError
    del low_mask
    codes = np.empty(u.shape[0], dtype=np.uint32)
    K.encode_kernel(u, 23, 8, np.zeros(1, np.int64), u.shape[0], P, np.zeros(0, np.uint64), codes)
    codes.setflags(write=False)
    return k, codes


@njit(cache=True, parallel=True)
def lut_encode(u, k, table, out):
    sh = np.uint32(23 - k)
    mask = np.uint32((1 << (23 - k)) - 1)
    for i in prange(u.shape[0]):
        v = u[i]
        idx = ((v >> sh) << np.uint32(1)) | np.uint32((v & mask) != 0)
        out[i] = table[idx]


@njit(cache=True, parallel=True)
def lut_quantize(u, k, table, values, codes_out, out):
    sh = np.uint32(23 - k)
    mask = np.uint32((1 << (23 - k)) - 1)
    nv = values.shape[0]
    for i in prange(u.shape[0]):
        v = u[i]
        idx = ((v >> sh) << np.uint32(1)) | np.uint32((v & mask) != 0)
        c = table[idx]
        codes_out[i] = c
        out[i] = values[c] if c < nv else np.nan
