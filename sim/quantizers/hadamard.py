"""Orthonormal (block-wise) Walsh-Hadamard rotations.

* :func:`fwht` - fast Walsh-Hadamard transform along one axis in O(n log n) (radix-2
  butterflies, vectorised over all other axes), Sylvester (natural) order, scaled by
  ``1/sqrt(n)`` so that ``fwht(x) == x @ H_n.T / sqrt(n)`` with ``H_n = scipy.linalg.hadamard(n)``;
  the transform is orthonormal, symmetric and its own inverse.
* :func:`block_hadamard` - the same transform applied independently to consecutive blocks of
  ``block`` elements along ``axis`` (a block-diagonal rotation ``R = diag(H_b, ..., H_b)/sqrt(b)``),
  block = the quantisation group size (32 for MXFP4, 16 for NVFP4) as in MR-GPTQ / QuaRot-style
  block rotations.  ``axis`` length must be a multiple of ``block``; ``block`` a power of two.
* :func:`rotate_linear` - rotate a linear layer's input features: ``x' = x R``, ``w' = w R``, so
  ``x' @ w'.T == x @ w.T`` in exact arithmetic (R orthonormal); quantise ``x'`` and ``w'``.
"""

from __future__ import annotations

import numpy as np


def _is_pow2(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


def fwht(x, axis=-1, normalize=True) -> np.ndarray:
    """Walsh-Hadamard transform of ``x`` along ``axis`` (length a power of two); float64."""
    x = np.asarray(x, dtype=np.float64)
    xm = np.moveaxis(x, axis, -1)
    n = xm.shape[-1]
    if not _is_pow2(n):
        raise ValueError(f"fwht: length {n} along axis {axis} is not a power of two")
    shp = xm.shape
    y = np.ascontiguousarray(xm).reshape(-1, n)
    h = 1
    while h < n:
        y = y.reshape(-1, n // (2 * h), 2, h)
        a = y[:, :, 0, :]
        b = y[:, :, 1, :]
        y = np.stack((a + b, a - b), axis=2)
        h *= 2
    y = y.reshape(shp)
    if normalize:
        y = y / np.sqrt(n)
    return np.moveaxis(y, -1, axis)


def block_hadamard(x, block, axis=-1) -> np.ndarray:
    """Orthonormal Hadamard rotation of consecutive ``block``-element blocks along ``axis``."""
    x = np.asarray(x, dtype=np.float64)
    if not _is_pow2(int(block)):
        raise ValueError(f"block_hadamard: block={block} must be a power of two")
    xm = np.moveaxis(x, axis, -1)
    n = xm.shape[-1]
    if n % block:
        raise ValueError(f"block_hadamard: axis length {n} is not a multiple of block={block}")
    shp = xm.shape
    y = fwht(xm.reshape(*shp[:-1], n // block, block), axis=-1).reshape(shp)
    return np.moveaxis(y, -1, axis)


def rotate_linear(x, w, block):
    """``(x R, w R)`` for x (..., in), w (out, in) with the block-diagonal Hadamard ``R``."""
    return block_hadamard(x, block, axis=-1), block_hadamard(w, block, axis=-1)
