"""Argument checks of the public sim entry points (qlinear, qmatmul, qconv2d, mx_matmul, ...).

Every check either returns the converted argument or raises a ``TypeError`` (wrong kind of
value) / ``ValueError`` (right kind, bad value) whose message names the function, the argument
and what is allowed.  Nothing is clamped or silently converted except what NumPy's own
``astype(float64)`` does exactly: bool / int / float arrays of any byte order, and the
ml_dtypes float types, become float64 (exact for every such input up to 2**53 in magnitude,
ints beyond that are rounded to nearest like ``np.matmul`` does).

Rejected on purpose (a silent answer would be wrong): complex input (the imaginary part would
be dropped), strings (``np.asarray(["1.5"], float)`` parses them), ``object`` arrays
(``None`` would become NaN), datetimes, structured dtypes.
"""

from __future__ import annotations

import numbers

import ml_dtypes
import numpy as np

REAL_KINDS = "biuf"  # numpy dtype kinds accepted as real numbers


def _is_ml_dtypes_real(dtype: np.dtype) -> bool:
    if dtype.kind != "V" or dtype.names is not None:
        return False
    for info in (ml_dtypes.finfo, ml_dtypes.iinfo):
        try:
            info(dtype)
            return True
        except (ValueError, TypeError):
            continue
    return False


def real_array(x, where: str, name: str, *, min_ndim: int = 0) -> np.ndarray:
    """``x`` as a float64 array with at least ``min_ndim`` dimensions.

    TypeError for complex / str / bytes / object / datetime / structured input; ValueError for
    too few dimensions.  ``where`` is the function name used in the message (``"qlinear"``).
    """
    a = x if isinstance(x, np.ndarray) else np.asarray(x)
    dt = a.dtype
    if not (dt.kind in REAL_KINDS or _is_ml_dtypes_real(dt)):
        what = {"c": "complex numbers (the imaginary part would be dropped)",
                "U": "strings", "S": "bytes", "O": "Python objects", "M": "datetimes",
                "m": "timedeltas"}.get(dt.kind, f"dtype {dt}")
        raise TypeError(f"{where}: {name} holds {what}; allowed: a real array "
                        "(bool, int, float, or an ml_dtypes float type)")
    if a.ndim < min_ndim:
        raise ValueError(f"{where}: {name} must have at least {min_ndim} dimension(s), got "
                         f"shape {a.shape}")
    return a.astype(np.float64, copy=False)


def check_bias(bias, n_out: int, where: str) -> np.ndarray | None:
    """``None`` or a real (n_out,) vector (one value per output feature / channel)."""
    if bias is None:
        return None
    b = real_array(bias, where, "bias")
    if b.shape != (n_out,):
        raise ValueError(f"{where}: bias must have shape ({n_out},) (one value per output), "
                         f"got shape {b.shape}")
    return b


def int_arg(v, where: str, name: str, lo: int) -> int:
    """An int (numpy ints accepted; bool / float / str TypeError) >= ``lo`` (ValueError)."""
    msg = f"{where}: {name}={v!r}; allowed: an int >= {lo}"
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
        raise TypeError(msg)
    if v < lo:
        raise ValueError(msg)
    return int(v)


def int_pair(v, where: str, name: str, lo: int) -> tuple[int, int]:
    """``v`` (an int, or a pair ``(h, w)`` of ints) as ``(h, w)``, each >= ``lo``; numpy ints
    accepted, bool / float / str rejected (TypeError), values < ``lo`` ValueError."""
    items = list(v) if isinstance(v, (tuple, list, np.ndarray)) else [v, v]
    msg = f"{where}: {name}={v!r}; allowed: an int >= {lo} or a pair (h, w) of them"
    if len(items) != 2:
        raise ValueError(msg)
    for i in items:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, numbers.Integral):
            raise TypeError(msg)
    if min(items) < lo:
        raise ValueError(msg)
    return int(items[0]), int(items[1])


def check_block_axis(fmt, operand_shape, blocked_dim: int, where: str, name: str,
                     axis_text: str) -> None:
    """ValueError when ``fmt`` scales blocks of more than one element and its blocks would run
    along a length-1 dimension: every block would then hold ONE element with a scale of its own
    (MXFP4: 12 bits per element instead of 4.25), almost surely an axis pointing at the wrong
    dimension (or a layer with one input feature, K = 1).

    ``operand_shape``: the (R, K) operand as quantised, ``blocked_dim`` its dimension the blocks
    run along; ``name`` / ``axis_text`` name the caller's argument and axis in the message
    (``"x"``, ``"act_axis=0"``).  Per-tensor and element formats are never affected (the same
    rule as the formats' own check, :mod:`lowbit.formats`' block engine, with the caller's
    names).  ``fmt``: a resolved format object or ``None``."""
    if fmt is None or fmt.kind != "block":
        return
    bs = fmt.block_size
    if not isinstance(bs, int) or bs == 1 or operand_shape[blocked_dim] != 1:
        return
    if int(np.prod(operand_shape)) <= 1:
        return
    bits = fmt.element.bits + fmt.scale_bits
    raise ValueError(f"{where}: {axis_text} runs along a dimension of length 1 of {name}: "
                     f"{fmt.name} {f'blocks of {bs}' if bs > 0 else 'per-row scales'} would hold one "
                     f"element each ({bits} bits per "
                     f"element instead of {fmt.bits_per_element:g}); allowed: an axis of length "
                     "> 1")


def axis_arg(axis, name: str):
    """``None`` or an int axis (numpy ints accepted; bool, float, str rejected)."""
    if axis is None:
        return None
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{name}={axis!r}; allowed: None or an int axis")
    return int(axis)


__all__ = ["REAL_KINDS", "axis_arg", "check_bias", "check_block_axis", "int_arg", "int_pair", "real_array"]
