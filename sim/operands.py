"""Operand preparation for the GEMM engine: a quantised (R, K) operand, K (the reduction axis)
last.

This module is the one place where a lowbit format meets the simulator's arithmetic: it
quantises with :mod:`lowbit.formats` (RNE, saturating; a NaN input stays NaN), splits block
formats into element values and scales, and records what the engine's exactness proofs need
(the format's fixed-point grid and significand widths, and statistics of the actual data).

* :func:`prepare` - quantise an (R, K) array along K with a format (or not, ``fmt=None``).
* :func:`prepare_prequantized` - wrap values that are already on a format's grid (GPTQ output),
  optionally with their block scales so that the block dot product applies.
* :func:`prepare_values` - quantise-dequantise with blocks along any axis (element path).
* :func:`block_decompose`, :func:`quantize_elem`, :func:`block_len_along_k`,
  :func:`element_grid`, :func:`format_sig_bits` - the pieces, shared with the quantisers.

Every format comes from ``lowbit.formats.resolve(fmt, optional=True)``; ``None`` means "not
quantised" (float64 values used as they are).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property
from typing import NamedTuple

import numpy as np
from numba import njit

import lowbit.formats as lf

from .accum_round import f64_bits

FP32_SIG_BITS = 24
"""Significand bits of an FP32 value: block scales of formats with ``scale=None`` (FP32) and the
NVFP4 per-tensor scale."""
FLOAT64_SIG_BITS = 53
NO_EXPONENT = 1 << 30  # lsb exponent reported for an all-zero array ("no set bit")


def resolve(fmt, arg: str = "fmt"):
    """The format object for ``fmt`` or ``None`` (not quantised)."""
    return lf.resolve(fmt, optional=True, arg=arg)


def format_name(fmt) -> str:
    """Display name of a format; ``"none"`` for ``None``."""
    return "none" if fmt is None else resolve(fmt).name


# ------------------------------------------------------------------------------ data statistics


class GridStats(NamedTuple):
    """What the engine's exactness proofs need to know about an (R, K) float64 array.

    ``finite``: no NaN / Inf.  ``amax``: max |v|.  ``lsb``: the smallest exponent ``e`` such that
    every value is an integer multiple of ``2**e`` (``NO_EXPONENT`` if all values are zero).
    ``l1max``: max over rows of ``sum_k |v[r, k]|`` (computed in float64: a slight
    under-estimate is possible, the callers add a relative margin).  ``sig_bits``: max over
    non-zero values of the significant bits ``floor(log2|v|) - lsb(v) + 1``.
    """

    finite: bool
    amax: float
    lsb: int
    l1max: float
    sig_bits: int


@njit(cache=True, inline="always")
def _bit_span(ax, lsb, sig):
    """``(lsb, sig)`` updated with the non-zero finite magnitude ``ax``: the exponent of its
    lowest set bit and its significant bits ``floor(log2 ax) - lsb(ax) + 1``."""
    bits = f64_bits(ax)
    ex = bits >> 52
    man = bits & 0xFFFFFFFFFFFFF
    if ex == 0:  # float64 subnormal
        top = -1074 + ((f64_bits(float(man)) >> 52) - 1023)  # man < 2**53: exact
        base = -1074
    else:
        man |= 1 << 52
        top = ex - 1023
        base = ex - 1075
    low = man & -man  # lowest set bit (a power of two <= 2**52)
    e = base + ((f64_bits(float(low)) >> 52) - 1023)
    return min(lsb, e), max(sig, top - e + 1)


@njit(cache=True, inline="always")
def _block_live(P, r, b, bs):
    """Block ``b`` of row ``r`` of ``P`` (columns ``b*bs .. b*bs+bs-1``) holds a non-zero
    element (NaN counts as non-zero)."""
    for k in range(b * bs, (b + 1) * bs):
        if P[r, k] != 0.0:
            return True
    return False


@njit(cache=True, nogil=True)
def _stats_kernel(v, P, bs):
    """:class:`GridStats` fields of ``v``; with ``bs > 0`` the values of ``v`` (block scales,
    one per block of ``bs`` columns of ``P``) whose block of ``P`` is all zero are read as 0.
    ``finite`` covers every value of ``v``."""
    finite = True
    amax = 0.0
    l1max = 0.0
    lsb = NO_EXPONENT
    sig = 0
    for r in range(v.shape[0]):
        l1 = 0.0
        for k in range(v.shape[1]):
            ax = abs(v[r, k])
            if not ax < np.inf:
                finite = False
                continue
            if bs > 0 and not _block_live(P, r, k, bs):
                continue
            l1 += ax
            if ax > amax:
                amax = ax
            if ax != 0.0:
                lsb, sig = _bit_span(ax, lsb, sig)
        if l1 > l1max:
            l1max = l1
    return finite, amax, lsb, l1max, sig


NO_BLOCKS = np.zeros((0, 0))  # _stats_kernel's P when every value counts
EXP_FIELD = np.int64(0x7FF0000000000000)  # float64 exponent field: all ones for Inf / NaN


@njit(cache=True, nogil=True)
def _max_exp_field(bits):
    """The largest exponent field of the float64 bit patterns ``bits`` (int64; one loop over
    the patterns, which vectorises: a per-element bit cast in the loop kept it scalar)."""
    m = np.int64(0)
    for i in range(bits.shape[0]):
        m = max(m, bits[i] & EXP_FIELD)
    return m


def all_finite(v: np.ndarray) -> bool:
    """No NaN / Inf in the float64 array ``v`` (one vectorised pass over the exponent fields)."""
    v = np.ascontiguousarray(v, dtype=np.float64)
    return v.size == 0 or int(_max_exp_field(v.reshape(-1).view(np.int64))) != int(EXP_FIELD)


def grid_stats(v: np.ndarray) -> GridStats:
    """:class:`GridStats` of a 2-D (or 1-D: one row) float64 array."""
    v = np.asarray(v, dtype=np.float64)
    if v.ndim == 1:
        v = v.reshape(1, -1)
    if v.size == 0:
        return GridStats(finite=True, amax=0.0, lsb=NO_EXPONENT, l1max=0.0, sig_bits=0)
    f, a, lsb, l1, sig = _stats_kernel(np.ascontiguousarray(v), NO_BLOCKS, 0)
    return GridStats(bool(f), float(a), int(lsb), float(l1), int(sig))


# ------------------------------------------------------------------------------ the operand


@dataclass(frozen=True, eq=False, kw_only=True)
class Operand:
    """A quantised (R, K) GEMM operand (K last); build it with :func:`prepare`.

    ``values``: dequantised float64 (R, K).  Block view (always present; element formats and
    ``None`` are one block of length K with unit scales): ``elements`` (R, Kp) element values
    before scaling (Kp = K rounded up to a multiple of ``block_len``, zero padded), ``scales``
    (R, Kp // block_len) block scales, ``tensor_scale`` the per-tensor scale (1.0 if none).
    ``values == elements * scales * tensor_scale`` on [:, :K].
    ``is_block``: the block view holds real block scales (a symmetric lowbit block format).
    ``sig_bits``: significand bits a dequantised value can need (the exact-product budget).
    ``lsb`` / ``pmax``: exponent of the element grid's least significant bit and the largest
    |element| allowed by the format (``None``: unknown, e.g. float64 values).
    Data statistics (:class:`GridStats`, computed on first use and cached):
    :attr:`value_stats`, :attr:`element_stats`, :attr:`scale_stats` (scales of blocks with a
    non-zero element).
    """

    fmt: object
    values: np.ndarray
    elements: np.ndarray
    scales: np.ndarray
    tensor_scale: float = 1.0
    block_len: int
    is_block: bool = False
    sig_bits: int = FLOAT64_SIG_BITS
    lsb: int | None = None
    pmax: float | None = None

    @property
    def shape(self) -> tuple:
        """(R, K) of ``values``."""
        return self.values.shape

    def rows(self, start: int, stop: int) -> Operand:
        """Rows [start, stop) of the operand (same quantised values, block scales and per-tensor
        scale: row slices of a quantised tensor, not a re-quantisation)."""
        return replace(self, values=self.values[start:stop], elements=self.elements[start:stop],
                       scales=self.scales[start:stop])

    def element_view(self) -> Operand:
        """The same values as an element operand (one block of length K, unit scales): what the
        element path multiplies.  Block formats keep ``sig_bits`` and drop the element grid."""
        if not self.is_block:
            return self
        R, K = self.values.shape
        return replace(self, elements=self.values, scales=np.ones((R, 1)), tensor_scale=1.0,
                       block_len=max(K, 1), is_block=False, lsb=None, pmax=None)

    @cached_property
    def value_stats(self) -> GridStats:
        return grid_stats(self.values)

    @cached_property
    def element_stats(self) -> GridStats:
        return grid_stats(self.elements)

    @cached_property
    def element_bounds(self) -> GridStats | None:
        """What the element FORMAT guarantees about ``elements``, as :class:`GridStats`: every
        element is a multiple of ``2**lsb`` with ``|e| <= pmax`` (so a row's L1 norm is at most
        ``Kp * pmax``) and has at most the element format's significand bits; ``finite`` is
        read from the data (one vectorised pass).  Valid bounds of :attr:`element_stats`
        (``prepare`` / ``prepare_prequantized`` put every element on the format's grid), so a
        proof from them holds for the data; ``None`` when the grid is unknown (float64 values,
        zero-point formats, :meth:`element_view`)."""
        if self.lsb is None or self.pmax is None:
            return None
        fmt = self.fmt.element if self.fmt.kind == "block" else self.fmt
        return GridStats(finite=all_finite(self.elements), amax=float(self.pmax), lsb=self.lsb,
                         l1max=self.elements.shape[1] * float(self.pmax),
                         sig_bits=element_grid(fmt)[0])

    @property
    def value_bounds(self) -> GridStats | None:
        """:attr:`element_bounds` for element operands (values are the elements), ``None``
        for block operands (their values carry the data's scales)."""
        return None if self.is_block else self.element_bounds

    @cached_property
    def scale_stats(self) -> GridStats:
        """Statistics of the scales of the blocks that hold a non-zero element (the scale of
        an all-zero block multiplies nothing); ``finite`` covers every scale."""
        S = np.ascontiguousarray(self.scales, dtype=np.float64)
        P = self.elements
        if S.size and P.shape[1] == S.shape[1] * self.block_len:
            f, a, lsb, l1, sig = _stats_kernel(S, np.ascontiguousarray(P), self.block_len)
            return GridStats(bool(f), float(a), int(lsb), float(l1), int(sig))
        return grid_stats(S)._replace(finite=all_finite(S))


def element_operand(values: np.ndarray, fmt=None) -> Operand:
    """An element operand (no block scales) over float64 (R, K) ``values`` already quantised to
    element format ``fmt`` (or unquantised, ``fmt=None``)."""
    v = np.ascontiguousarray(values, dtype=np.float64)
    sig, lsb, pmax = element_grid(fmt)
    return Operand(fmt=fmt, values=v, elements=v, scales=np.ones((v.shape[0], 1)),
                   block_len=max(v.shape[1], 1), sig_bits=sig, lsb=lsb, pmax=pmax)


# ------------------------------------------------------------------------------ format facts


def element_grid(fmt) -> tuple:
    """``(sig_bits, lsb, pmax)`` of an element format: significand bits of a value, exponent of
    the grid's least significant bit (smallest subnormal / ``2**-frac_bits``) and max |value|.
    ``None`` (float64): ``(53, None, None)``."""
    if fmt is None:
        return FLOAT64_SIG_BITS, None, None
    fmt = resolve(fmt)
    if fmt.kind == "float":
        return int(fmt.mbits) + 1, int(fmt.emin) - int(fmt.mbits), float(fmt.max)
    if fmt.kind != "int":
        raise ValueError(f"element_grid: {fmt.name} is a {fmt.kind} format; expected an element "
                         "(float or int) format")
    m = max(abs(int(fmt.qmin)), abs(int(fmt.qmax)))
    return max(m.bit_length(), 1), -int(fmt.frac_bits), m * 2.0 ** -int(fmt.frac_bits)


def scale_sig_bits(scale_fmt) -> int:
    """Significand bits of a block scale in ``scale_fmt`` (``None``: FP32)."""
    return FP32_SIG_BITS if scale_fmt is None else int(scale_fmt.mbits) + 1


def format_sig_bits(fmt) -> int:
    """Significand bits a dequantised value of ``fmt`` can need (53 for ``None``)."""
    fmt = resolve(fmt)
    if fmt is None:
        return FLOAT64_SIG_BITS
    if fmt.kind == "block":
        sb = element_grid(fmt.element)[0] + scale_sig_bits(fmt.scale)
        if not fmt.symmetric:
            sb += 1  # (q - zero point) has one more bit than q
        return sb + (FP32_SIG_BITS if fmt.tensor_scale else 0)
    return element_grid(fmt)[0]


def block_len_along_k(fmt, K: int, user: str = "the GEMM engine") -> int:
    """Elements per scale block along the reduction axis K (K for per-channel / per-tensor
    scales); 2-D tile formats raise ValueError naming ``user``."""
    bs = fmt.block_size
    if bs is None or bs == -1:
        return K
    if isinstance(bs, tuple):
        raise ValueError(f"{fmt.name}: 2-D tile formats are not supported by {user}")
    return int(bs)


# ------------------------------------------------------------------------------ quantisation


def quantize_elem(x, fmt) -> np.ndarray:
    """Element conversion (RNE, saturating) to a float or int format; float64 values.
    ``lowbit.formats.quantize(x, fmt, overflow="saturate")``, except that a NaN input stays NaN
    also for formats without NaN."""
    x = np.asarray(x, dtype=np.float64)
    if fmt.has_nan:
        return lf.quantize(x, fmt, overflow="saturate")
    nan = np.isnan(x)
    q = lf.quantize(x, fmt, overflow="saturate", nan_input="zero")
    return np.where(nan, np.nan, q) if nan.any() else q


def block_decompose(x2d, fmt) -> tuple:
    """Quantise (R, K) ``x2d`` along K with symmetric block format ``fmt``
    (``lowbit.formats.encode``).

    Returns ``(P, S, T, bs)``: ``P`` (R, Kp) element values (Kp = K rounded up to a multiple of
    ``bs``, zero-padded), ``S`` (R, Kp // bs) block scales, ``T`` per-tensor scale (1.0 if none),
    ``bs`` block length along K (K for per-channel / per-tensor).  Dequantised = P * S * T.
    Raises ValueError for asymmetric (zero-point) formats.
    """
    x2d = np.ascontiguousarray(x2d, dtype=np.float64)
    R, K = x2d.shape
    if not fmt.symmetric:
        raise ValueError(f"{fmt.name}: zero-point formats have no block-dot form")
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
        raise ValueError(f"{fmt.name}: unexpected scale shape {S.shape} for K={K}")
    Pp = np.zeros((R, nb * bs))
    Pp[:, :K] = P
    return Pp, np.ascontiguousarray(S), T, bs


def prepare(x2d, fmt) -> Operand:
    """Quantise an (R, K) operand along K (axis -1) with ``fmt`` (or not, if ``None``)."""
    x2d = np.ascontiguousarray(x2d, dtype=np.float64)
    R, K = x2d.shape
    fmt = resolve(fmt)
    if fmt is None or fmt.kind != "block":
        return element_operand(x2d if fmt is None else quantize_elem(x2d, fmt), fmt)
    if not fmt.symmetric:
        # zero-point formats: no block-dot form; dequantised values, element path only
        vals = np.ascontiguousarray(lf.quantize(x2d, fmt, axis=-1), dtype=np.float64)
        return Operand(fmt=fmt, values=vals, elements=vals, scales=np.ones((R, 1)),
                       block_len=max(K, 1), sig_bits=format_sig_bits(fmt))
    P, S, T, bs = block_decompose(x2d, fmt)
    return _block_operand(fmt, P, S, T, bs, K)


def _block_operand(fmt, P, S, T, bs, K) -> Operand:
    R = P.shape[0]
    nb = S.shape[1]
    vals = (P.reshape(R, nb, bs) * (S * T)[:, :, None]).reshape(R, nb * bs)[:, :K]
    _, lsb, pmax = element_grid(fmt.element)
    return Operand(fmt=fmt, values=np.ascontiguousarray(vals), elements=P, scales=S,
                   tensor_scale=float(T), block_len=bs, is_block=True,
                   sig_bits=format_sig_bits(fmt), lsb=lsb, pmax=pmax)


def prepare_prequantized(v2d, fmt, scales=None, tensor_scale: float = 1.0) -> Operand:
    """Operand from (R, K) values ALREADY quantised to ``fmt`` (e.g. GPTQ output), used as they
    are.  ``fmt`` sets the exact-product budget and, for element formats, the integer grid.

    For a symmetric block format, pass the block ``scales`` the quantiser used ((R, nb), the
    per-tensor scale included, as ``gptq_quantize(..., return_info=True)`` returns them) and its
    ``tensor_scale``: the operand then gets the block view ``elements = values / scales`` and the
    block dot product applies, as for RTN weights.  ValueError if a value is not
    ``scale * element`` with the element on the element format's grid.  Without ``scales`` the
    operand is an element operand (element path)."""
    v = np.ascontiguousarray(v2d, dtype=np.float64)
    fmt = resolve(fmt)
    if fmt is None or fmt.kind != "block":
        if fmt is not None and not np.array_equal(quantize_elem(v, fmt), v, equal_nan=True):
            raise ValueError(f"prepare_prequantized: values are not on the {fmt.name} grid")
        return element_operand(v, fmt)
    if scales is None or not fmt.symmetric:
        R, K = v.shape
        return Operand(fmt=fmt, values=v, elements=v, scales=np.ones((R, 1)),
                       block_len=max(K, 1), sig_bits=format_sig_bits(fmt))
    R, K = v.shape
    bs = block_len_along_k(fmt, K)
    nb = -(-K // bs)
    S_all = np.asarray(scales, dtype=np.float64).reshape(R, nb)
    T = float(tensor_scale)
    S = S_all / T if T != 1.0 else S_all.copy()
    if T != 1.0 and not np.array_equal(S * T, S_all):
        raise ValueError(f"prepare_prequantized: scales of {fmt.name} are not multiples of the "
                         f"tensor scale {T}")
    P = np.zeros((R, nb * bs))
    P[:, :K] = v
    Pb = P.reshape(R, nb, bs)
    sc = np.repeat(S_all, bs, axis=1).reshape(R, nb, bs)
    with np.errstate(divide="ignore", invalid="ignore"):
        Pb = np.where(sc != 0, Pb / sc, 0.0)
    P = Pb.reshape(R, nb * bs)
    if not np.array_equal(quantize_elem(P, fmt.element), P):
        raise ValueError(f"prepare_prequantized: values are not scale * element with elements on "
                         f"the {fmt.element.name} grid of {fmt.name}")
    op = _block_operand(fmt, P, S, T, bs, K)
    if not np.array_equal(op.values, v):
        raise ValueError(f"prepare_prequantized: values are not reproduced by their {fmt.name} "
                         "block decomposition")
    return op


def align_blocks(op: Operand, bs: int, Kp: int):
    """``(elements, scales)`` of an operand padded to ``Kp`` columns and with scales expanded
    to blocks of length ``bs`` (``bs`` divides the operand's block length)."""
    R = op.elements.shape[0]
    n = min(op.elements.shape[1], Kp)
    if op.elements.shape[1] == Kp:
        P = op.elements
    else:
        P = np.zeros((R, Kp))
        P[:, :n] = op.elements[:, :n]
    idx = np.minimum(np.arange(Kp // bs) * bs // op.block_len, op.scales.shape[1] - 1)
    S = op.scales if idx.size == op.scales.shape[1] and np.array_equal(
        idx, np.arange(idx.size)) else op.scales[:, idx]
    return np.ascontiguousarray(P), np.ascontiguousarray(S)


def common_blocks(A: Operand, W: Operand):
    """``(bs, Kp)``: common block length (gcd) and padded K of two block operands."""
    bs = math.gcd(A.block_len, W.block_len)
    Kp = max(A.elements.shape[1], W.elements.shape[1])
    return bs, -(-Kp // bs) * bs


def prepare_values(x2d, fmt, axis: int = -1) -> np.ndarray:
    """Quantise-dequantise ``x2d`` with blocks along ``axis`` (element path helper)."""
    if fmt is None:
        return np.asarray(x2d, dtype=np.float64)
    x = np.moveaxis(np.asarray(x2d, dtype=np.float64), axis, -1)
    shp = x.shape
    v = prepare(x.reshape(-1, shp[-1]), fmt).values.reshape(shp)
    return np.moveaxis(v, -1, axis)


__all__ = [
    "Operand", "GridStats", "grid_stats", "prepare", "prepare_prequantized", "prepare_values",
    "element_operand", "block_decompose", "quantize_elem", "block_len_along_k", "element_grid",
    "scale_sig_bits", "format_sig_bits", "format_name", "resolve", "align_blocks",
    "common_blocks", "all_finite", "FP32_SIG_BITS",
]
