"""Round-to-nearest quantisation with scale search, for any lowbit format.

``rtn_quantize(x, fmt, axis=-1, method="amax", granularity="channel", percentile=99.9,
grid=None)`` returns the dequantised float64 array (same shape as ``x``).

Scale = ``c * amax / max_elem`` where ``amax`` is taken over a scale group and the clip ratio
``c`` is chosen by ``method``:

* ``"amax"``: ``c = 1`` (no clipping).  For block formats this is exactly the format's own rule
  (OCP FLOOR for MX, NVFP4 two-level, fp32 amax for INT groups).
* ``"percentile"``: ``c = percentile(|x_group|, p) / amax``.
* ``"mse"``: per group, the ``c`` of ``grid`` minimising the squared error (default grid:
  ``{1/2, 1, 2}`` for power-of-two scale formats - one binade down / the rule / one up -, and
  ``0.50, 0.55, ..., 1.00`` otherwise).

Scale groups: block formats - their blocks along ``axis`` (the scale is then rounded into the
format's scale format by the format's rule applied to ``c * x``); element formats - one fp32
scale per ``granularity`` ("tensor" or "channel" = per index of the other axes), or no scale at
all with ``method="none"`` (plain element rounding).
"""

from __future__ import annotations

import numpy as np

from ..operands import prepare, quantize_elem, resolve
from .scales import (
    block_scales,
    quantize_with_scales,
    scale_grid_for,
    select_min,
    tensor_scale,
)

METHODS = ("none", "amax", "percentile", "mse")


def _block_rtn(x2d, fmt, method, percentile, grid):
    R, K = x2d.shape
    T = tensor_scale(x2d, fmt)
    elem = fmt.element
    S1 = block_scales(x2d, fmt, T)  # (R, nb)
    nb = S1.shape[1]
    bs = -(-K // nb)
    xp = np.zeros((R, nb * bs))
    xp[:, :K] = x2d
    xb = xp.reshape(R, nb, bs)

    def quant_with(c):  # c: scalar or (R, nb)
        cc = np.broadcast_to(np.asarray(c, dtype=np.float64), (R, nb))
        S = block_scales((xb * cc[:, :, None]).reshape(R, nb * bs)[:, :K], fmt, T)
        return quantize_with_scales(xb, (S * T)[:, :, None], elem)

    if method == "amax":
        q = quant_with(1.0)
    elif method == "percentile":
        amax = np.abs(xb).max(axis=2)
        p = np.percentile(np.abs(xb), percentile, axis=2)
        q = quant_with(np.where(amax > 0, p / np.where(amax > 0, amax, 1.0), 1.0))
    else:
        q = select_min((qc, ((qc - xb) ** 2).sum(axis=2))
                       for qc in map(quant_with, scale_grid_for(fmt, grid)))[0]
    return q.reshape(R, nb * bs)[:, :K]


def _element_rtn(x2d, fmt, method, granularity, percentile, grid):
    if method == "none":
        return quantize_elem(x2d, fmt)
    if granularity not in ("tensor", "channel"):
        raise ValueError(f"granularity={granularity!r}; allowed: 'tensor', 'channel'")
    ax = None if granularity == "tensor" else 1
    mx = float(fmt.max)
    amax = np.abs(x2d).max(axis=ax, keepdims=True) if x2d.size else np.zeros((1, 1))

    def q_of(c):
        s = (c * amax / mx).astype(np.float32).astype(np.float64)
        return quantize_with_scales(x2d, s, fmt)

    if method == "amax":
        return q_of(1.0)
    if method == "percentile":
        p = np.percentile(np.abs(x2d), percentile, axis=ax, keepdims=True)
        return q_of(np.where(amax > 0, p / np.where(amax > 0, amax, 1.0), 1.0))
    return select_min((qc, ((qc - x2d) ** 2).sum(axis=ax, keepdims=True))
                      for qc in map(q_of, scale_grid_for(fmt, grid)))[0]


def rtn_quantize(x, fmt, axis=-1, method="amax", granularity="channel", percentile=99.9,
                 grid=None) -> np.ndarray:
    """RTN quantise-dequantise ``x`` to ``fmt`` (blocks / channels along ``axis``); see module
    docstring.  Returns float64 of ``x.shape``."""
    if method not in METHODS:
        raise ValueError(f"method={method!r}; allowed: {', '.join(METHODS)}")
    f = resolve(fmt)
    x = np.asarray(x, dtype=np.float64)
    if f is None:
        return x.copy()
    xm = np.moveaxis(x, axis, -1)
    shp = xm.shape
    x2d = xm.reshape(-1, shp[-1])
    if f.kind == "block":
        if not f.symmetric:
            if method != "amax":
                raise ValueError(f"{f.name}: scale search needs a symmetric block format")
            q = prepare(x2d, f).values
        elif method == "none":
            q = _block_rtn(x2d, f, "amax", percentile, grid)
        else:
            q = _block_rtn(x2d, f, method, percentile, grid)
    else:
        q = _element_rtn(x2d, f, method, granularity, percentile, grid)
    return np.moveaxis(q.reshape(shp), -1, axis)
