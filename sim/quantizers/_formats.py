"""Format access for the simulator: ``lowbit.formats`` when importable, else a small local
fallback with the same attribute names (formats-api.md), so the simulator runs while the
formats package is being written.

Only these attributes are used (duck typing, both back-ends):
float: ``ebits, mbits, bias, max, min_normal, has_inf, has_nan, subnormals, name``;
int: ``bits, signed, frac_bits, qmin, qmax, max, name``;
block: ``element, scale, block_size, tensor_scale, symmetric, scale_rule, name``.

Block decomposition (:func:`block_decompose`) returns element values ``P`` (before scaling),
per-block scales ``S`` and the per-tensor scale ``T`` so that ``x_q = P * S * T``.  With
``lowbit.formats`` this is ``encode(x, fmt, axis=-1)``; the fallback implements OCP MX FLOOR
(E8M0), NVFP4 (UE4M3 block scale = RNE((amax_b/6)/T), T = amax/(6*448)) and fp32 amax scales.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..accum_round import round_array


@lru_cache(maxsize=1)
def formats_module():
    """``lowbit.formats`` if it imports and provides the contract's entry points, else None."""
    try:
        import lowbit.formats as lf
    except Exception:  # noqa: BLE001 - being written concurrently
        return None
    if all(hasattr(lf, n) for n in ("get_format", "quantize", "encode")):
        return lf
    return None


# ------------------------------------------------------------------------------ fallback


@dataclass(frozen=True)
class _Float:
    name: str
    ebits: int
    mbits: int
    bias: int
    nan: str = "ieee"  # ieee | fn | none
    subnormals: bool = True
    signed: bool = True

    @property
    def has_inf(self):
        return self.nan == "ieee"

    @property
    def has_nan(self):
        return self.nan != "none"

    @property
    def emin(self):
        return 1 - self.bias

    @property
    def min_normal(self):
        return 2.0 ** self.emin

    @property
    def max(self):
        top = (1 << self.ebits) - 1 - self.bias
        if self.nan == "ieee":
            return (2.0 - 2.0 ** -self.mbits) * 2.0 ** (top - 1)
        if self.nan == "fn":
            return (2.0 - 2.0 ** (1 - self.mbits)) * 2.0 ** top
        return (2.0 - 2.0 ** -self.mbits) * 2.0 ** top


@dataclass(frozen=True)
class _Int:
    name: str
    bits: int
    signed: bool = True
    narrow: bool = False
    frac_bits: int = 0

    @property
    def qmax(self):
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def qmin(self):
        if not self.signed:
            return 0
        return -self.qmax if self.narrow else -(1 << (self.bits - 1))

    @property
    def max(self):
        return self.qmax * 2.0 ** -self.frac_bits


@dataclass(frozen=True)
class _Block:
    name: str
    element: object
    scale: object
    block_size: object
    scale_rule: str = "floor"
    tensor_scale: bool = False
    symmetric: bool = True


_E8M0 = _Float("e8m0", 8, 0, 127, nan="fn", subnormals=False, signed=False)
_UE4M3 = _Float("ue4m3", 4, 3, 7, nan="fn", signed=False)


def _fallback_registry():
    f = {
        "fp32": _Float("fp32", 8, 23, 127), "tf32": _Float("tf32", 8, 10, 127),
        "bf16": _Float("bf16", 8, 7, 127), "fp16": _Float("fp16", 5, 10, 15),
        "fp8_e4m3": _Float("fp8_e4m3", 4, 3, 7, nan="fn"),
        "fp8_e5m2": _Float("fp8_e5m2", 5, 2, 15),
        "fp8_e3m4": _Float("fp8_e3m4", 3, 4, 3, nan="fn"),
        "fp6_e2m3": _Float("fp6_e2m3", 2, 3, 1, nan="none"),
        "fp6_e3m2": _Float("fp6_e3m2", 3, 2, 3, nan="none"),
        "fp4_e2m1": _Float("fp4_e2m1", 2, 1, 1, nan="none"),
        "e8m0": _E8M0, "ue4m3": _UE4M3,
    }
    for b in range(2, 9):
        f[f"int{b}"] = _Int(f"int{b}", b)
        f[f"uint{b}"] = _Int(f"uint{b}", b, signed=False)
    mx = {"mxfp8_e4m3": "fp8_e4m3", "mxfp8_e5m2": "fp8_e5m2", "mxfp6_e3m2": "fp6_e3m2",
          "mxfp6_e2m3": "fp6_e2m3", "mxfp4": "fp4_e2m1"}
    for n, e in mx.items():
        f[n] = _Block(n, f[e], _E8M0, 32)
    f["mxint8"] = _Block("mxint8", _Int("mxint8_elem", 8, narrow=True, frac_bits=6), _E8M0, 32)
    f["nvfp4"] = _Block("nvfp4", f["fp4_e2m1"], _UE4M3, 16, "amax", tensor_scale=True)
    f["int8_pt"] = _Block("int8_pt", _Int("int8n", 8, narrow=True), None, None, "amax")
    for b in (4, 8):
        f[f"int{b}_pc"] = _Block(f"int{b}_pc", _Int(f"int{b}n", b, narrow=True), None, -1, "amax")
    for b, g in ((4, 128), (8, 128), (4, 32)):
        f[f"int{b}_g{g}"] = _Block(f"int{b}_g{g}", _Int(f"int{b}n", b, narrow=True), None, g, "amax")
    aliases = {"mxfp8": "mxfp8_e4m3", "e4m3": "fp8_e4m3", "float8_e4m3fn": "fp8_e4m3"}
    for a, n in aliases.items():
        f[a] = f[n]
    return f


_FALLBACK = _fallback_registry()


# ------------------------------------------------------------------------------ access


def resolve(spec):
    """Format object for ``spec`` (name, lowbit.formats object, or any object with ``.name``);
    ``None`` stays ``None``.  Unknown names raise ValueError listing the known ones."""
    if spec is None:
        return None
    lf = formats_module()
    if isinstance(spec, str):
        if lf is not None:
            return lf.get_format(spec)
        if spec in _FALLBACK:
            return _FALLBACK[spec]
        raise ValueError(f"unknown format {spec!r}; allowed: {', '.join(sorted(_FALLBACK))}")
    if hasattr(spec, "block_size") or hasattr(spec, "mbits") or hasattr(spec, "qmax"):
        return spec
    if hasattr(spec, "name"):  # foreign descriptor (e.g. a workload's fallback): by name
        return resolve(spec.name)
    raise ValueError(f"cannot interpret {spec!r} as a lowbit format")


def kind(fmt) -> str:
    """'block' | 'float' | 'int'."""
    if hasattr(fmt, "block_size"):
        return "block"
    if hasattr(fmt, "mbits"):
        return "float"
    return "int"


def fmt_name(fmt) -> str:
    return "none" if fmt is None else str(getattr(fmt, "name", fmt))


def float_params(fmt, overflow: str = "ieee"):
    """``(mbits, emin, maxv, ovf, minnorm, ftz)`` for :func:`lowbit.sim.accum_round.round_fmt`.
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
    ftz = 0 if getattr(fmt, "subnormals", True) else 1
    return int(fmt.mbits), emin, maxv, float(ovf), minnorm, ftz


def round_to_float(x, fmt, overflow="saturate"):
    """RNE, single rounding of float64 ``x`` to float format ``fmt`` (local kernel)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = round_array(x.ravel(), *float_params(fmt, overflow)).reshape(x.shape)
    if overflow == "saturate":
        out = np.where(np.isinf(x), np.sign(x) * float(fmt.max), out)
    return out


def quantize_elem(x, fmt):
    """Element conversion (RNE, saturating, NaN kept) to a float or int format; float64 values.
    Same result as ``lowbit.formats.quantize(x, fmt, overflow="saturate")`` for finite x
    (cross-checked in tests/sim/test_quantizers.py)."""
    x = np.asarray(x, dtype=np.float64)
    if kind(fmt) == "float":  # local kernel (30x faster per call than lowbit.formats.quantize)
        if not getattr(fmt, "signed", True):
            x = np.maximum(x, 0.0)
        return round_to_float(x, fmt)
    step = 2.0 ** -int(getattr(fmt, "frac_bits", 0))
    return np.clip(np.rint(x / step), fmt.qmin, fmt.qmax) * step


def _block_size_along(fmt, K):
    bs = fmt.block_size
    if bs is None or bs == -1:
        return K
    if isinstance(bs, tuple):
        raise ValueError(f"{fmt_name(fmt)}: 2-D tile formats are not supported by the GEMM engine")
    return int(bs)


def block_decompose(x2d, fmt):
    """Quantise (R, K) ``x2d`` along K with block format ``fmt``.

    Returns ``(P, S, T, bs)``: ``P`` (R, Kp) element values (Kp = K rounded up to a multiple of
    ``bs``, zero-padded), ``S`` (R, Kp // bs) block scales, ``T`` per-tensor scale (1.0 if none),
    ``bs`` block length along K (K for per-channel / per-tensor).  Dequantised = P * S * T.
    Raises ValueError for asymmetric (zero-point) formats.
    """
    x2d = np.ascontiguousarray(x2d, dtype=np.float64)
    R, K = x2d.shape
    if not getattr(fmt, "symmetric", True):
        raise ValueError(f"{fmt_name(fmt)}: zero-point formats have no block-dot form")
    bs = _block_size_along(fmt, K)
    nb = -(-K // bs)
    Kp = nb * bs
    lf = formats_module()
    if lf is not None and not isinstance(fmt, _Block):
        qt = lf.encode(x2d, fmt, axis=-1)
        P = np.asarray(qt.element_values(), dtype=np.float64)
        S = np.asarray(qt.scales, dtype=np.float64)
        T = 1.0 if qt.tensor_scale is None else float(qt.tensor_scale)
        if S.size == 1 and (fmt.block_size is None or R == 1):
            S = np.full((R, nb), float(S.ravel()[0]))
        S = S.reshape(R, -1)
        if S.shape[1] != nb:
            raise ValueError(f"{fmt_name(fmt)}: unexpected scale shape {S.shape} for K={K}")
        Pp = np.zeros((R, Kp))
        Pp[:, :K] = P
        return Pp, np.ascontiguousarray(S), T, bs
    return _fallback_block(x2d, fmt, bs, nb)


def _fallback_block(x2d, fmt, bs, nb):
    R, K = x2d.shape
    xp = np.zeros((R, nb * bs))
    xp[:, :K] = x2d
    if fmt.block_size is None:  # per-tensor: one block-equivalent scale for the whole tensor
        amax = np.full((R, nb), np.max(np.abs(x2d)) if x2d.size else 0.0)
    else:
        amax = np.abs(xp).reshape(R, nb, bs).max(axis=2)
    el = fmt.element
    emax_el = float(el.max)
    T = 1.0
    if fmt.scale is _E8M0 or getattr(fmt.scale, "name", "") == "e8m0":
        with np.errstate(divide="ignore"):
            e = np.floor(np.log2(np.where(amax > 0, amax, 1.0))) - math.floor(math.log2(emax_el))
        S = np.exp2(np.clip(e, -127, 127))
    elif fmt.tensor_scale:
        ta = float(np.max(np.abs(x2d))) if x2d.size else 0.0
        T = ta / (emax_el * float(fmt.scale.max)) if ta > 0 else 1.0
        S = round_to_float(np.minimum((amax / emax_el) / T, fmt.scale.max), fmt.scale)
    elif fmt.scale is not None:
        S = round_to_float(np.minimum(amax / emax_el, fmt.scale.max), fmt.scale)
    else:
        S = (amax / emax_el).astype(np.float32).astype(np.float64)
    ST = S * T
    with np.errstate(divide="ignore", invalid="ignore"):
        v = xp.reshape(R, nb, bs) / ST[:, :, None]
    v = np.where(ST[:, :, None] > 0, v, 0.0).reshape(R, nb * bs)
    return quantize_elem(v, el), S, T, bs
