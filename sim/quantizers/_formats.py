"""Format access for the simulator: thin helpers over :mod:`lowbit.formats` (formats-api.md).

Format objects are ``lowbit.formats`` descriptors (``FloatFormat``, ``IntFormat``,
``BlockFormat``); every conversion is done by ``lowbit.formats`` itself.

Block decomposition (:func:`block_decompose`) returns element values ``P`` (before scaling),
per-block scales ``S`` and the per-tensor scale ``T`` so that ``x_q = P * S * T``, read from
the ``QuantizedTensor`` of ``lowbit.formats.encode(x, fmt, axis=-1)``.
"""

from __future__ import annotations

import math

import numpy as np

import lowbit.formats as lf


def resolve(spec):
    """``lowbit.formats.resolve(spec, optional=True)``: ``None`` stays ``None`` (unquantised)."""
    return lf.resolve(spec, optional=True)


def kind(fmt) -> str:
    """'block' | 'float' | 'int'."""
    return fmt.kind


def fmt_name(fmt) -> str:
    return "none" if fmt is None else str(getattr(fmt, "name", fmt))


def float_params(fmt, overflow: str = "ieee"):
    """``(mbits, emin, maxv, ovf, minnorm, ftz)`` of float format ``fmt`` for the accumulator
    rounding kernels (:func:`lowbit.sim.accum_round.round_fmt`).
    overflow: 'ieee' -> Inf if the format has Inf, else NaN if it has NaN, else saturate;
    'saturate' -> +-max."""
    maxv = float(fmt.max)
    minnorm = float(fmt.min_normal)
    emin = int(round(math.log2(minnorm)))
    if overflow == "saturate":
        ovf = maxv
    elif overflow == "ieee":
        ovf = np.inf if fmt.has_inf else (np.nan if fmt.has_nan else maxv)
    else:
        raise ValueError(f"overflow={overflow!r}; allowed: 'ieee', 'saturate'")
    ftz = 0 if fmt.subnormals else 1
    return int(fmt.mbits), emin, maxv, float(ovf), minnorm, ftz


def quantize_elem(x, fmt):
    """Element conversion (RNE, saturating) to a float or int format; float64 values.
    ``lowbit.formats.quantize(x, fmt, overflow="saturate")``, except that a NaN input stays NaN
    also for formats without NaN."""
    x = np.asarray(x, dtype=np.float64)
    if fmt.has_nan:
        return lf.quantize(x, fmt, overflow="saturate")
    nan = np.isnan(x)
    q = lf.quantize(x, fmt, overflow="saturate", nan_input="zero")
    return np.where(nan, np.nan, q) if nan.any() else q


def block_len_along_k(fmt, K, user="the GEMM engine"):
    """Elements per scale block along the reduction axis K (K for per-channel / per-tensor);
    2-D tile formats raise ValueError naming ``user``."""
    bs = fmt.block_size
    if bs is None or bs == -1:
        return K
    if isinstance(bs, tuple):
        raise ValueError(f"{fmt_name(fmt)}: 2-D tile formats are not supported by {user}")
    return int(bs)


def block_decompose(x2d, fmt):
    """Quantise (R, K) ``x2d`` along K with block format ``fmt`` (``lowbit.formats.encode``).

    Returns ``(P, S, T, bs)``: ``P`` (R, Kp) element values (Kp = K rounded up to a multiple of
    ``bs``, zero-padded), ``S`` (R, Kp // bs) block scales, ``T`` per-tensor scale (1.0 if none),
    ``bs`` block length along K (K for per-channel / per-tensor).  Dequantised = P * S * T.
    Raises ValueError for asymmetric (zero-point) formats.
    """
    x2d = np.ascontiguousarray(x2d, dtype=np.float64)
    R, K = x2d.shape
    if not fmt.symmetric:
        raise ValueError(f"{fmt_name(fmt)}: zero-point formats have no block-dot form")
    bs = block_len_along_k(fmt, K)
    nb = -(-K // bs)
    qt = lf.encode(x2d, fmt, axis=-1)
    P = np.asarray(qt.element_values(), dtype=np.float64)
    S = np.asarray(qt.scales, dtype=np.float64)
    T = 1.0 if qt.tensor_scale is None else float(qt.tensor_scale)
    if S.size == 1 and (fmt.block_size is None or R == 1):
        S = np.full((R, nb), float(S.ravel()[0]))
    S = S.reshape(R, -1)
    if S.shape[1] != nb:
        raise ValueError(f"{fmt_name(fmt)}: unexpected scale shape {S.shape} for K={K}")
    Pp = np.zeros((R, nb * bs))
    Pp[:, :K] = P
    return Pp, np.ascontiguousarray(S), T, bs
