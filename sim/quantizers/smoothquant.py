"""SmoothQuant activation-to-weight scale migration (Xiao et al., 2023).

For a linear layer ``y = x @ w.T`` with x (N, in), w (out, in), per input channel j:
``s_j = max|X_j|**alpha / max|W_j|**(1 - alpha)`` (``alpha`` in [0, 1] - the migration
strength, 0.5 by default), and ``x' = x / s``, ``w' = w * s`` leave ``x' @ w'.T == x @ w.T``
(exact arithmetic) while flattening activation outliers.  Channels with a zero max on either
side get ``s_j = 1``; ``s`` is clamped to ``>= min_scale``.
"""

from __future__ import annotations

import numpy as np


def smoothquant_scales(act_absmax, w, alpha=0.5, min_scale=1e-5) -> np.ndarray:
    """Per-input-channel smoothing factors ``s`` (in,) from calibration ``act_absmax`` (in,)
    (max |x| per channel) and weights w (out, in)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha!r}; must lie in [0, 1]")
    a = np.asarray(act_absmax, dtype=np.float64)
    wmax = np.abs(np.asarray(w, dtype=np.float64)).max(axis=0)
    if a.shape != wmax.shape:
        raise ValueError(f"act_absmax shape {a.shape} != weight in-features {wmax.shape}")
    ok = (a > 0) & (wmax > 0)
    s = np.ones_like(a)
    s[ok] = a[ok] ** alpha / wmax[ok] ** (1.0 - alpha)
    return np.maximum(s, min_scale)


def smoothquant(x_calib, w, alpha=0.5):
    """``(s, w * s)``: factors from calibration inputs x_calib (..., in) and smoothed weights;
    apply ``x / s`` to the layer's inputs at run time."""
    x = np.asarray(x_calib, dtype=np.float64)
    s = smoothquant_scales(np.abs(x.reshape(-1, x.shape[-1])).max(axis=0), w, alpha)
    return s, np.asarray(w, dtype=np.float64) * s
