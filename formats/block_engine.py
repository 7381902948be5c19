"""The generic block engine: quantize a tensor to any :class:`BlockFormat`.

Steps (OCP MX v1.0 section 6.3 for the MX formats; NVFP4 per the TE / torchao recipe):

1. Lay the tensor out as ``(n_blocks, k)`` rows (:class:`BlockLayout`), zero-padding a ragged tail.
2. Per block: NaN or Inf anywhere -> the block's scale is NaN (torchao: non-finite amax gives
   scale 0xFF) and its element codes are 0; the whole block decodes to NaN.
3. Scale from the finite amax by ``scale_rule``:
   power-of-two rules (floor / ceil / rceil / even) -> exponent clamped to the scale format;
   ``"amax"`` -> ``s = amax / element.max`` (``/ tensor_scale``) rounded RNE (saturating) into the
   scale format (UE4M3 for NVFP4; a nonzero block never gets scale 0: it is raised to the
   smallest positive scale); ``"mse"`` -> the candidate (power-of-two exponents floor-1..floor+2,
   or amax scales times 1, 0.95, ..., 0.5) with the least block MSE; a callable gets
   ``(amax, element)`` and returns scale values.
4. Elements: ``P_i = round(V_i / X)`` with one rounding. Power-of-two scales are applied exactly
   inside the rounding kernel (exponent shift); other scales divide in float64 first (exact to
   well below the element grid for float32 inputs). Values beyond the element max saturate
   (OCP MX 6.3: "clamped to +-max"), unless ``overflow`` says otherwise.
5. NVFP4 two-level scaling (``tensor_scale=True``): ``S = amax_tensor / (element.max *
   scale.max)`` in FP32 (6 * 448 for NVFP4), 1.0 when the tensor is all zero; block scales are
   computed from ``amax_block / element.max / S``.
"""

from __future__ import annotations

import numpy as np

from lowbit.formats._codec import kernel_params, value_table
from lowbit.formats._kernel import STOCHASTIC_ROUNDING
from lowbit.formats._lut import code_table, lut_block_encode, lut_width, row_amax_f32
from lowbit.formats.block_format import BlockFormat
from lowbit.formats.convert import (
    as_float_bits,
    check_errors,
    code_dtype,
    encode_element,
    quantize_element,
    rounding_mode,
    run_encode,
)
from lowbit.formats.layout import BlockLayout
from lowbit.formats.qtensor import QuantizedTensor
from lowbit.formats.scale_rules import POW2_RULES, exponent_range, pow2_exponent

_MSE_FACTORS = np.linspace(1.0, 0.5, 11)


def encode_blocks(x, fmt: BlockFormat, axis=-1, rounding="rne", overflow="saturate",
                  nan_input="error", subnormal_output="keep", seed=None, sr_bits=32,
                  _values_out=None) -> QuantizedTensor:
    """Quantize ``x`` to the block format; see the module docstring for the algorithm.

    ``_values_out`` (internal): a list that receives the dequantized values as rows when the
    table-driven fast path ran (saves a decode pass in ``quantize``).
    """
    rounding = rounding_mode(rounding)
    xa = np.asarray(x)
    as_float_bits(xa[:0] if xa.ndim else xa)  # dtype check with a clear error
    if xa.dtype == np.float16:
        xa = xa.astype(np.float32)
    layout = BlockLayout.make(xa.shape, fmt.block_size, axis)
    rows = layout.to_rows(xa)
    nb, k = rows.shape
    el = fmt.element
    if rows.dtype == np.float32 and rows.size:
        amax = np.empty(nb, np.float64)
        bad_block = np.empty(nb, np.bool_)
        row_amax_f32(rows.reshape(-1).view(np.uint32), nb, k, amax, bad_block)
    else:
        bad_block = ~np.isfinite(rows).all(axis=1)
        amax = (np.abs(np.where(bad_block[:, None], 0, rows)).max(axis=1).astype(np.float64)
                if k else np.zeros(nb))
    if bad_block.any():
        rows = np.where(bad_block[:, None], 0, rows).astype(rows.dtype)
    kw = dict(rounding=rounding, overflow=overflow, nan_input=nan_input,
              subnormal_output=subnormal_output, seed=seed, sr_bits=sr_bits)

    tensor_scale = None
    if fmt.tensor_scale:
        t_amax = float(amax.max()) if nb else 0.0
        denom = float(el.max) * float(fmt.scale.max if fmt.scale is not None else 1.0)
        tensor_scale = float(np.float32(t_amax / denom)) if t_amax > 0 else 1.0
        if tensor_scale == 0.0:
            tensor_scale = float(np.finfo(np.float32).smallest_subnormal)

    zero_point = None
    rule = fmt.scale_rule
    if not fmt.symmetric:
        codes, scales, zero_point = _encode_asym(rows, fmt, kw)
        scale_codes = None
    elif isinstance(rule, str) and (rule in POW2_RULES or (rule == "mse" and _pow2_scale(fmt))):
        if rule == "mse":
            e = _mse_pow2(rows, amax, fmt, kw)
        else:
            e = _clamp_exp(pow2_exponent(amax, rule, el), fmt)
        if rows.dtype == np.float32 and rounding not in STOCHASTIC_ROUNDING and lut_width(el, 32, overflow) is not None:
            codes = _lut_blocks(rows, e, el, kw, _values_out)
        else:
            codes, _ = run_encode(rows, el, shift=e, rowlen=max(k, 1), **kw)
        scales = np.ldexp(1.0, e)
        scale_codes = None
    else:
        if rule == "amax":
            s = _amax_scale(amax, fmt, tensor_scale)
        elif rule == "mse":
            s = _mse_amax(rows, amax, fmt, tensor_scale, kw)
        elif callable(rule):
            s = _store_scale(np.asarray(rule(amax, el), dtype=np.float64).reshape(nb), fmt, amax)
        else:
            raise ValueError(f"scale_rule {rule!r} needs a power-of-two scale format")
        codes = _encode_scaled(rows, s, tensor_scale, el, kw)
        scales = s
        scale_codes = None
    if fmt.scale is not None:
        scale_codes = _scale_codes(scales, fmt.scale)
    if bad_block.any():
        scales = np.where(bad_block, np.nan, scales)
        codes = codes.reshape(nb, k)
        codes[bad_block] = 0
        if scale_codes is not None:
            scale_codes = np.where(bad_block, fmt.scale.nan_code if fmt.scale.has_nan
                                   else scale_codes, scale_codes)
    code_rows = np.asarray(codes).reshape(nb, k)
    return QuantizedTensor(
        codes=layout.from_rows(code_rows.astype(code_dtype(el))),
        scales=layout.scales_from_rows(scales.astype(np.float64)),
        scale_codes=None if scale_codes is None else layout.scales_from_rows(
            np.asarray(scale_codes).astype(np.uint8 if fmt.scale.bits <= 8 else np.uint16)),
        tensor_scale=tensor_scale,
        zero_point=None if zero_point is None else layout.scales_from_rows(zero_point),
        format=fmt, axis=layout.axis)


# ---- power-of-two scales --------------------------------------------------------------------
def _lut_blocks(rows, e, el, kw, values_out):
    """Table-driven element rounding with exact power-of-two block scaling (float32 rows)."""
    P = kernel_params(el, kw["rounding"], kw["overflow"], kw["nan_input"],
                      kw["subnormal_output"], kw["sr_bits"])
    kk, table = code_table(el, P.tobytes())
    nb, k = rows.shape
    codes = np.empty(nb * k, np.uint32)
    vals = np.empty(nb * k if values_out is not None else 0, np.float32)
    lut_block_encode(rows.reshape(-1).view(np.uint32), nb, k, e.astype(np.int64), kk, table, P,
                     value_table(el), codes, vals)
    check_errors(codes, rows, el, kw["overflow"], kw["nan_input"])
    if values_out is not None:
        values_out.append(vals.reshape(nb, k))
    return codes


def _pow2_scale(fmt):
    s = fmt.scale
    return s is not None and s.mbits == 0


def _clamp_exp(e, fmt):
    lo, hi = exponent_range(fmt.scale)
    return np.clip(e, lo, hi)


def _scale_codes(scales, scale_fmt):
    return encode_element(np.asarray(scales, dtype=np.float64), scale_fmt, overflow="saturate",
                          nan_input="zero")


def _mse_pow2(rows, amax, fmt, kw):
    base = pow2_exponent(amax, "floor", fmt.element)
    best_e = _clamp_exp(base, fmt)
    best_err = None
    k = rows.shape[1]
    for d in (-1, 0, 1, 2):
        e = _clamp_exp(base + d, fmt)
        _, vals = run_encode(rows, fmt.element, shift=e, rowlen=max(k, 1), want_values=True,
                             **kw)
        err = ((np.ldexp(vals.reshape(rows.shape), e[:, None]) - rows) ** 2).sum(axis=1)
        if best_err is None:
            best_err = err
            best_e = e
        else:
            better = err < best_err
            best_err = np.where(better, err, best_err)
            best_e = np.where(better, e, best_e)
    return best_e


# ---- general (non power-of-two) scales ------------------------------------------------------
def _store_scale(s, fmt, amax):
    """Round raw scales into the scale format (RNE, saturating); keep nonzero blocks nonzero."""
    if fmt.scale is None:
        q = s.astype(np.float32).astype(np.float64)
        tiny = float(np.finfo(np.float32).smallest_subnormal)
    else:
        q = quantize_element(np.asarray(s, dtype=np.float64), fmt.scale, rounding="rne",
                             overflow="saturate", nan_input="zero")
        tiny = fmt.scale.min_subnormal
    q = np.where((q == 0) & (amax > 0), tiny, q)
    return q


def _amax_scale(amax, fmt, tensor_scale):
    s = amax / float(fmt.element.max)
    if tensor_scale is not None:
        s = s / tensor_scale
    s = _store_scale(s, fmt, amax)
    if fmt.scale is None:
        s = np.where(amax > 0, s, 1.0)
    return s


def _encode_scaled(rows, s, tensor_scale, el, kw):
    div = s * (tensor_scale if tensor_scale is not None else 1.0)
    div = np.where(div == 0, 1.0, div)
    y = rows.astype(np.float64) / div[:, None]
    codes, _ = run_encode(y, el, **kw)
    return codes


def _mse_amax(rows, amax, fmt, tensor_scale, kw):
    best_s, best_err = None, None
    ts = tensor_scale if tensor_scale is not None else 1.0
    for f in _MSE_FACTORS:
        s = _store_scale(amax * f / float(fmt.element.max) / ts, fmt, amax)
        if fmt.scale is None:
            s = np.where(amax > 0, s, 1.0)
        div = np.where(s == 0, 1.0, s) * ts
        _, vals = run_encode(rows.astype(np.float64) / div[:, None], fmt.element,
                             want_values=True, **kw)
        err = ((vals.reshape(rows.shape) * div[:, None] - rows) ** 2).sum(axis=1)
        if best_err is None:
            best_s, best_err = s, err
        else:
            better = err < best_err
            best_err = np.where(better, err, best_err)
            best_s = np.where(better, s, best_s)
    return best_s


# ---- asymmetric INT ---------------------------------------------------------------------------
def _encode_asym(rows, fmt, kw):
    el = fmt.element
    lo = np.minimum(rows.min(axis=1), 0.0).astype(np.float64)
    hi = np.maximum(rows.max(axis=1), 0.0).astype(np.float64)
    span = el.qmax - el.qmin
    s = ((hi - lo) / span).astype(np.float32).astype(np.float64)
    s = np.where(s > 0, s, 1.0)
    zp = np.clip(np.rint(el.qmin - lo / s), el.qmin, el.qmax).astype(np.int64)
    y = rows.astype(np.float64) / s[:, None] + zp[:, None]
    codes, _ = run_encode(y, el, **kw)
    return codes, s, zp


def quantize_blocks(x, fmt: BlockFormat, axis=-1, **kw) -> np.ndarray:
    """Dequantized values (float64, or float32 from the table-driven path) of ``x`` in ``fmt``."""
    fast = []
    qt = encode_blocks(x, fmt, axis=axis, _values_out=fast, **kw)
    if not fast:
        return qt.dequantize()
    layout = qt.layout
    vals = fast[0]
    if np.isnan(qt.scales).any():
        vals = np.where(np.isnan(layout.scales_to_rows(qt.scales))[:, None], np.nan, vals)
    return layout.from_rows(vals)
