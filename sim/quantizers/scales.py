"""Scale helpers shared by the quantisers: block scales of a group computed with the format's own
scale rule, and element rounding under a given scale.

Layout: ``x2d`` is (R, K) with blocks along K (axis -1).  For block formats the per-block scale
is the format's rule applied to the given values (``lowbit.formats.encode`` on a copy of the
format without its per-tensor scale, after dividing by the per-tensor scale ``T``), so
``quantize_with_scales(x, S*T)`` reproduces the format's RTN result up to the last-ulp
difference between ``x / s`` and ``x * (1/s)`` for non-power-of-two scales.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..operands import block_decompose, quantize_elem, resolve


def element_format(fmt):
    """Element format of a block format, or the format itself."""
    return fmt.element if fmt.kind == "block" else fmt


def tensor_scale(x2d, fmt) -> float:
    """The per-tensor (second-level) scale the format assigns to ``x2d`` (1.0 if none)."""
    if fmt.kind != "block" or not fmt.tensor_scale:
        return 1.0
    return float(block_decompose(np.asarray(x2d, dtype=np.float64), fmt)[2])


def _without_tensor_scale(fmt):
    if not fmt.tensor_scale:
        return fmt
    return dataclasses.replace(fmt, tensor_scale=False, name=f"{fmt.name}_nots")


def block_scales(x2d, fmt, T: float = 1.0) -> np.ndarray:
    """(R, nb) block scales the format's rule gives to ``x2d / T`` (per-tensor scale excluded)."""
    x = np.asarray(x2d, dtype=np.float64)
    f = _without_tensor_scale(resolve(fmt))
    return block_decompose(x / T if T != 1.0 else x, f)[1]


def quantize_with_scales(x, s, elem) -> np.ndarray:
    """``s * Q_elem(x / s)`` elementwise (RNE, saturating); ``s == 0`` gives 0.
    ``x`` and ``s`` broadcast."""
    x = np.asarray(x, dtype=np.float64)
    s = np.broadcast_to(np.asarray(s, dtype=np.float64), x.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(s != 0, x / s, 0.0)
    return np.where(s != 0, s * quantize_elem(v, elem), 0.0)


def scale_grid_for(fmt, grid=None) -> np.ndarray:
    """Candidate multipliers of the rule's block scale for a scale search: ``grid`` if given,
    else {1/2, 1, 2} for power-of-two scale formats (E8M0: one binade down / the rule / one
    up) and 0.50, 0.55, ..., 1.00 otherwise (clipping ratios)."""
    if grid is not None:
        return np.asarray(grid, dtype=np.float64)
    f = resolve(fmt)
    sc = f.scale if f is not None and f.kind == "block" else None
    pow2 = sc is not None and sc.mbits == 0
    return np.array([0.5, 1.0, 2.0]) if pow2 else np.linspace(0.5, 1.0, 11)


def select_min(candidates):
    """Elementwise arg-min over ``(value, loss)`` pairs: for every position of ``loss`` the
    value of the candidate with the smallest loss (the first on ties); ``value`` may have extra
    trailing axes (broadcast over them). Returns ``(value, loss)`` of the winners."""
    best_v = best_l = None
    for v, loss in candidates:
        v, loss = np.asarray(v), np.asarray(loss)
        if best_v is None:
            best_v, best_l = v, loss
            continue
        m = loss < best_l
        best_v = np.where(m.reshape(m.shape + (1,) * (v.ndim - m.ndim)), v, best_v)
        best_l = np.where(m, loss, best_l)
    return best_v, best_l
