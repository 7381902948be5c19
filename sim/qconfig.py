"""Layer quantisation config and operand preparation for the GEMM engine.

``QuantConfig(weight=None, act=None, accum="exact", weight_axis=None, act_axis=None, dot="auto")``
(frozen):

* ``weight`` / ``act``: a lowbit format (name or object from :mod:`lowbit.formats`: float, int
  or block format) or ``None`` (no quantisation: the float64 values are used as they are).
* ``accum``: an :class:`~lowbit.sim.accum.AccumModel` or a string for
  :func:`~lowbit.sim.accum.parse_accum` (``"exact"``, ``"fp32"``, ``"fp16_pairwise"``,
  ``"fp32_chunk32"``, ``"int32"``, ``"int16_sat"`` ...).
* ``weight_axis`` / ``act_axis``: axis of the weight / activation tensor (as passed to the layer
  function) along which block formats group elements; ``None`` (default) = the reduction axis K
  (qlinear: ``in`` of (out, in) weights and of (N, in) inputs; qmatmul: axis 0 of b and axis -1
  of a; qconv2d: the (kh, kw, c) patch axis).  A non-K axis forces the element path.
* ``dot``: ``"auto"`` | ``"block"`` | ``"element"`` - how block-scaled operands are multiplied
  (see :mod:`lowbit.sim.gemm`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import lowbit.formats as lf
from lowbit.formats.accum import AccumModel, parse_accum

from .checks import axis_arg
from .quantizers._formats import block_decompose, fmt_name, kind, quantize_elem, resolve

DOT_MODES = ("auto", "block", "element")


@dataclass(frozen=True)
class QuantConfig:
    """Per-layer quantisation + accumulation config (see module docstring)."""

    weight: object = None
    act: object = None
    accum: object = "exact"
    weight_axis: int | None = None
    act_axis: int | None = None
    dot: str = "auto"

    def __post_init__(self):
        for name, parse in (("weight", resolve), ("act", resolve), ("accum", parse_accum)):
            try:
                value = parse(getattr(self, name))
            except (ValueError, TypeError) as exc:
                raise type(exc)(f"QuantConfig {name}: {exc}") from None
            object.__setattr__(self, name, value)
        for name in ("weight_axis", "act_axis"):
            object.__setattr__(self, name, axis_arg(getattr(self, name), f"QuantConfig {name}"))
        if not isinstance(self.dot, str) or self.dot not in DOT_MODES:
            raise ValueError(f"QuantConfig dot={self.dot!r}; allowed: {', '.join(DOT_MODES)}")

    def __str__(self):
        return (f"QuantConfig(weight={fmt_name(self.weight)}, act={fmt_name(self.act)}, "
                f"accum={self.accum.name}, dot={self.dot})")


def as_config(cfg_or_accum, name: str = "cfg") -> QuantConfig:
    """QuantConfig from a QuantConfig, an AccumModel, an accumulator string or None; ``name``
    (the caller's argument name) prefixes the error message."""
    if isinstance(cfg_or_accum, QuantConfig):
        return cfg_or_accum
    if cfg_or_accum is None or isinstance(cfg_or_accum, (str, AccumModel)):
        try:
            return QuantConfig(accum=parse_accum(cfg_or_accum))
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"{name}: {exc}") from None
    if hasattr(cfg_or_accum, "accum"):  # duck-typed foreign config (weight/act/accum)
        acc = cfg_or_accum.accum
        return QuantConfig(getattr(cfg_or_accum, "weight", None), getattr(cfg_or_accum, "act", None),
                           acc if isinstance(acc, (str, AccumModel)) else str(acc))
    raise TypeError(f"{name}={cfg_or_accum!r}; allowed: a QuantConfig, an AccumModel, an "
                    "accumulator string (e.g. 'exact', 'fp32', 'int32') or None")


# ------------------------------------------------------------------------------ operands


@dataclass
class Operand:
    """A quantised (R, K) GEMM operand (K last).

    ``values`` dequantised float64 (R, K).  Block view (always present, element formats and
    ``None`` are one block of length K with unit scales): ``P`` (R, Kp) element values,
    ``S`` (R, nb) block scales, ``T`` per-tensor scale, ``bs`` block length.
    ``is_block`` - the format is a lowbit block format; ``sig_bits`` - significand bits a
    dequantised value can need (for the exact-product check); ``lsb`` / ``pmax`` - exponent of
    the element grid's least significant bit and the largest |element| (None: unknown, float64).
    """

    fmt: object
    values: np.ndarray
    P: np.ndarray
    S: np.ndarray
    T: float
    bs: int
    is_block: bool
    sig_bits: int
    lsb: int | None
    pmax: float | None

    def rows(self, start: int, stop: int) -> Operand:
        """Rows [start, stop) of the operand (the same quantised values, block scales and
        per-tensor scale: row-sliced quantisation is the quantisation of the whole tensor)."""
        return Operand(self.fmt, self.values[start:stop], self.P[start:stop],
                       self.S[start:stop], self.T, self.bs, self.is_block, self.sig_bits,
                       self.lsb, self.pmax)


def _elem_grid(fmt):
    """(sig_bits, lsb exponent, max |value|) of an element format; None -> float64."""
    if fmt is None:
        return 53, None, None
    if kind(fmt) == "float":
        emin = int(round(math.log2(float(fmt.min_normal))))
        return int(fmt.mbits) + 1, emin - int(fmt.mbits), float(fmt.max)
    f = int(getattr(fmt, "frac_bits", 0))
    m = max(abs(int(fmt.qmin)), abs(int(fmt.qmax)))
    return max(int(m).bit_length(), 1), -f, m * 2.0 ** -f


def _scale_bits(sfmt):
    if sfmt is None:
        return 24  # fp32 scale
    return int(getattr(sfmt, "mbits", 23)) + 1


def format_sig_bits(fmt) -> int:
    """Significand bits a dequantised value of ``fmt`` can need (53 for None)."""
    fmt = resolve(fmt)
    if fmt is None:
        return 53
    if kind(fmt) == "block":
        sb = _elem_grid(fmt.element)[0] + _scale_bits(fmt.scale)
        if not getattr(fmt, "symmetric", True):
            sb += 1
        return sb + (24 if getattr(fmt, "tensor_scale", False) else 0)
    return _elem_grid(fmt)[0]


def prepare_prequantized(v2d, fmt) -> Operand:
    """Operand from values ALREADY quantised to ``fmt`` (e.g. GPTQ output), used as they are
    (no block view: element path); ``fmt`` only sets the exact-product bound and, for element
    formats, the integer grid."""
    v = np.ascontiguousarray(v2d, dtype=np.float64)
    fmt = resolve(fmt)
    lsb = pmax = None
    if fmt is not None and kind(fmt) != "block":
        _, lsb, pmax = _elem_grid(fmt)
    return Operand(fmt, v, v, np.ones((v.shape[0], 1)), 1.0, max(v.shape[1], 1), False,
                   format_sig_bits(fmt), lsb, pmax)


def prepare(x2d, fmt) -> Operand:
    """Quantise an (R, K) operand along K (axis -1) with ``fmt`` (or not, if None)."""
    x2d = np.ascontiguousarray(x2d, dtype=np.float64)
    R, K = x2d.shape
    fmt = resolve(fmt)
    if fmt is not None and kind(fmt) == "block" and not getattr(fmt, "symmetric", True):
        # zero-point formats: no block-dot form; dequantised values, element path only
        vals = _asym_values(x2d, fmt)
        sb, _, _ = _elem_grid(fmt.element)
        return Operand(fmt, vals, vals, np.ones((R, 1)), 1.0, max(K, 1), False,
                       sb + 1 + _scale_bits(fmt.scale), None, None)
    if fmt is not None and kind(fmt) == "block":
        P, S, T, bs = block_decompose(x2d, fmt)
        nb = S.shape[1]
        vals = (P.reshape(R, nb, bs) * (S * T)[:, :, None]).reshape(R, nb * bs)[:, :K]
        sb, lsb, pmax = _elem_grid(fmt.element)
        sig = sb + _scale_bits(fmt.scale) + (24 if getattr(fmt, "tensor_scale", False) else 0)
        return Operand(fmt, np.ascontiguousarray(vals), P, S, float(T), bs, True, sig, lsb, pmax)
    vals = x2d if fmt is None else quantize_elem(x2d, fmt)
    sb, lsb, pmax = _elem_grid(fmt)
    return Operand(fmt, vals, vals, np.ones((R, 1)), 1.0, max(K, 1), False, sb, lsb, pmax)


def _asym_values(x2d, fmt):
    return np.asarray(lf.quantize(x2d, fmt, axis=-1), dtype=np.float64)


def prepare_values(x2d, fmt, axis=-1) -> np.ndarray:
    """Quantise-dequantise ``x2d`` with blocks along ``axis`` (element path helper)."""
    if fmt is None:
        return np.asarray(x2d, dtype=np.float64)
    x = np.moveaxis(np.asarray(x2d, dtype=np.float64), axis, -1)
    shp = x.shape
    v = prepare(x.reshape(-1, shp[-1]), fmt).values.reshape(shp)
    return np.moveaxis(v, -1, axis)
