"""The public conversions ``quantize`` / ``encode`` / ``decode`` for every format.

A name or format object is resolved once (:func:`lowbit.formats.registry.resolve`); element
formats go to the rounding core (:mod:`lowbit.formats.convert`, which documents every rounding
mode and policy), block formats to the block engine (:mod:`lowbit.formats.block_engine`).
"""

from __future__ import annotations

import numpy as np

from lowbit.formats._codec import decode_codes, default_policies
from lowbit.formats.block_engine import encode_blocks, quantize_blocks
from lowbit.formats.convert import (
    check_out,
    check_renamed,
    encode_element,
    quantize_element,
    value_dtype,
)
from lowbit.formats.qtensor import QuantizedTensor
from lowbit.formats.registry import resolve


def _element_only(block_kw: dict) -> None:
    check_renamed(block_kw)
    if block_kw:
        raise TypeError(f"unexpected arguments for an element format: {sorted(block_kw)}")


def encode(x, fmt, rounding=None, overflow=None, nan_input="error",
           subnormal_output="keep", seed=None, sr_bits=32, axis=-1, **block_kw):
    """Codes of ``x`` in ``fmt`` (uint8 / uint16 / uint32 array of ``x``'s shape).

    ``rounding`` / ``overflow`` default to the format's own policies
    (:func:`~lowbit.formats._codec.default_policies`): ``"rne"`` / ``"saturate"`` unless the
    format carries others (an HLS ``ap_fixed`` type).

    For a :class:`~lowbit.formats.block_format.BlockFormat` returns a
    :class:`~lowbit.formats.qtensor.QuantizedTensor` (blocks along ``axis``).
    """
    check_renamed(block_kw)
    fmt = resolve(fmt)
    rounding, overflow = default_policies(fmt, rounding, overflow)
    policies = dict(rounding=rounding, overflow=overflow, nan_input=nan_input,
                    subnormal_output=subnormal_output, seed=seed, sr_bits=sr_bits)
    if fmt.kind == "block":
        return encode_blocks(x, fmt, axis=axis, **policies, **block_kw)
    _element_only(block_kw)
    return encode_element(x, fmt, **policies)


def quantize(x, fmt, rounding=None, overflow=None, nan_input="error",
             subnormal_output="keep", seed=None, sr_bits=32, axis=-1, out=None, **block_kw):
    """Round ``x`` to ``fmt`` and return the represented values (fake quantization).

    Shape is preserved; float32 in gives float32 out, float64 gives float64, float16 gives
    float32. Block formats quantize blocks along ``axis`` (see ``encode``).

    ``out``: a writeable C-contiguous array of that dtype and ``x``'s shape to write the values
    into (returned); it may be ``x`` itself (in-place quantization of a float32 / float64
    array: no second tensor-sized allocation for element formats). Block formats compute the
    values first and copy them into ``out``.
    """
    check_renamed(block_kw)
    fmt = resolve(fmt)
    rounding, overflow = default_policies(fmt, rounding, overflow)
    xa = np.asarray(x)
    if xa.dtype.kind in "iub":
        raise TypeError(f"x must be a float16, float32 or float64 array, got dtype {xa.dtype}")
    policies = dict(rounding=rounding, overflow=overflow, nan_input=nan_input,
                    subnormal_output=subnormal_output, seed=seed, sr_bits=sr_bits)
    if fmt.kind != "block":
        _element_only(block_kw)
        return quantize_element(xa, fmt, out=out, **policies)  # checks out; value_dtype
    if out is not None:
        check_out(out, xa)
    vals = quantize_blocks(xa, fmt, axis=axis, **policies, **block_kw)
    if out is None:
        return vals.astype(value_dtype(xa.dtype), copy=False)
    np.copyto(out, vals, casting="same_kind")
    return out


def decode(codes, fmt=None, dtype=np.float64):
    """Values of ``codes`` (NaN codes -> NaN) as float64 (default) or float32 (``dtype``; each
    value rounded once). Accepts a QuantizedTensor too (its :meth:`dequantize`)."""
    if isinstance(codes, QuantizedTensor):
        return codes.dequantize(dtype)
    if fmt is None:
        raise TypeError("decode(codes, fmt) needs fmt (a format or its name) unless codes is a "
                        "QuantizedTensor")
    fmt = resolve(fmt)
    if fmt.kind == "block":
        raise TypeError("decode(codes, block_format) needs a QuantizedTensor; "
                        "use encode(x, fmt).dequantize()")
    return decode_codes(codes, fmt, dtype)
