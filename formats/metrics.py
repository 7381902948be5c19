"""Quantization error metrics."""

from __future__ import annotations

import numpy as np

from lowbit.formats.api import encode
from lowbit.formats.layout import BlockLayout
from lowbit.formats.qtensor import QuantizedTensor
from lowbit.formats.registry import resolve


def mse(x, y) -> float:
    """Mean squared error (float64), NaN-propagating."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
    return float(np.mean((x - y) ** 2)) if x.size else 0.0


def sqnr_db(x, y) -> float:
    """Signal-to-quantization-noise ratio ``10 log10(sum x^2 / sum (x-y)^2)`` in dB of reference
    ``x`` against its quantized version ``y`` (+inf when exact)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
    noise = float(np.sum((x - y) ** 2))
    sig = float(np.sum(x ** 2))
    if noise == 0:
        return float("inf")
    if sig == 0:
        return float("-inf")
    return 10.0 * np.log10(sig / noise)


def clipped_fraction(x, fmt, axis=-1, **kw) -> float:
    """Share of finite elements whose magnitude exceeds what the format represents after scaling
    (element saturated: |x| > largest representable magnitude of its block)."""
    fmt = resolve(fmt)
    x = np.asarray(x)
    fin = np.isfinite(x)
    if fmt.kind == "block":
        qt = encode(x, fmt, axis=axis, **kw)
        lay = BlockLayout.make(qt.shape, fmt.block_size, qt.axis)
        s = lay.scales_to_rows(qt.scales) * (qt.tensor_scale or 1.0)
        rows = lay.to_rows(np.abs(x).astype(np.float64))
        lim = np.where(np.isnan(s), np.inf, s)[:, None]
        hi = rows > lim * fmt.element.max
        if qt.zero_point is not None:
            return float("nan")
        clipped = lay.from_rows(hi)
    else:
        clipped = np.abs(x) > fmt.max
    n = int(fin.sum())
    return float(np.count_nonzero(clipped & fin)) / n if n else 0.0


def code_histogram(codes, fmt) -> np.ndarray:
    """Count of each code (length ``2**bits``)."""
    fmt = resolve(fmt)
    el = fmt.element if fmt.kind == "block" else fmt
    if isinstance(codes, QuantizedTensor):
        codes = codes.codes
    c = np.asarray(codes).reshape(-1).astype(np.int64)
    return np.bincount(c, minlength=1 << el.bits)
