"""Kernel views of lowbit formats: every constant the Triton and numba kernels use, derived from
the :mod:`lowbit.formats` objects (nothing tabulated here).

Every kernel in ``lowbit.kernels`` rounds with integer bit manipulation on the float32 bit
pattern (``x.view(uint32)``), so the rounding is identical in Triton's interpreter, natively on a
GPU and in numba. :class:`ElemSpec` is what that code needs to know of a float format:

- ``ebits``/``mbits``/``bias``: exponent and mantissa field widths, exponent bias;
- ``maxcode``: largest finite magnitude code (saturation target, sign bit excluded);
- ``nancode``: magnitude code written for a NaN input (``-1``: the format has no NaN);
- ``specials``: how the top codes decode (:data:`SPECIALS_NONE`, :data:`SPECIALS_FN`: the
  all-ones magnitude is NaN; :data:`SPECIALS_IEEE`: the top binade is Inf / NaN);
- ``emax``: exponent of the largest normal binade (OCP MX ``emax_elem``);
- ``maxman``: float32 mantissa field (23 bits) of the format's max, used by the exact RCEIL
  scale rule ``ceil(log2(amax / max_elem))``;
- ``subscale``: the value of mantissa unit 1 at exponent field 0 (``2**(1 - bias - mbits)``).

The kernels implement formats with a sign bit (elements) or without (scales), a zero,
subnormals, NaN scheme ``"ieee"`` (with Inf), ``"fn"`` or none and at most 8 bits whose values
are float32 numbers; :func:`element_spec`, :func:`mx_spec` and :func:`nvfp4_spec` raise a
ValueError naming the first property a format lacks.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from lowbit.formats import (
    BlockFormat,
    FloatFormat,
    exponent_range,
    get_format,
    list_formats,
    resolve,
)

SPECIALS_NONE, SPECIALS_FN, SPECIALS_IEEE = 0, 1, 2
_SPECIALS = {None: SPECIALS_NONE, "fn": SPECIALS_FN, "ieee": SPECIALS_IEEE}
SATFINITE = -1
"""``infcode`` of every kernel: +-Inf inputs saturate to +-max (CUDA ``.satfinite``)."""

#: MX scale rules the kernels implement (OCP MX v1.0 s6.3 FLOOR, and RCEIL as in cuBLAS/TE)
MX_SCALE_RULES = ("floor", "rceil")
NVFP4_PROFILES = ("lowbit", "te")
FP32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class ElemSpec:
    """The kernel constants of one float format (see the module docstring)."""

    fmt: FloatFormat
    name: str
    ebits: int
    mbits: int
    bias: int
    bits: int
    signbit: int
    maxcode: int
    nancode: int
    specials: int
    emax: int
    maxman: int
    max: float
    subscale: float
    infcode: int = SATFINITE

    def values32(self) -> np.ndarray:
        """float32 value of every code (the format's own ``values()``; exact)."""
        return self.fmt.values().astype(np.float32)


def _unsupported(fmt, why: str):
    return ValueError(f"fmt={fmt.name!r}: the kernels do not implement {why}")


def _float_spec(fmt: FloatFormat, *, signed: bool) -> ElemSpec:
    if fmt.bits > 8:
        raise _unsupported(fmt, f"formats wider than 8 bits ({fmt.bits})")
    if fmt.signed != signed:
        raise _unsupported(fmt, "unsigned element formats" if signed else
                           "signed scale formats")
    if not (fmt.zero and fmt.subnormals):
        raise _unsupported(fmt, "formats without a zero or without subnormals")
    if fmt.nan not in _SPECIALS or fmt.has_inf != (fmt.nan == "ieee"):
        raise _unsupported(fmt, f"NaN scheme {fmt.nan!r} with inf={fmt.has_inf} (only 'ieee' "
                                "with Inf, 'fn' or no NaN, without Inf)")
    if fmt.emax > 127 or fmt.min_subnormal < 2.0 ** -149:
        raise _unsupported(fmt, "values outside the float32 range")
    maxman = int(np.array(fmt.max, np.float32).view(np.uint32)) & 0x7FFFFF
    return ElemSpec(fmt=fmt, name=fmt.name, ebits=fmt.ebits, mbits=fmt.mbits, bias=fmt.bias,
                    bits=fmt.bits, signbit=(1 << (fmt.ebits + fmt.mbits)) if signed else 0,
                    maxcode=fmt.max_code, nancode=fmt.nan_code if fmt.has_nan else -1,
                    specials=_SPECIALS[fmt.nan], emax=fmt.emax, maxman=maxman,
                    max=float(fmt.max), subscale=2.0 ** (1 - fmt.bias - fmt.mbits))


def element_spec(fmt) -> ElemSpec:
    """Kernel constants of a signed float element format (a name or a FloatFormat)."""
    if isinstance(fmt, ElemSpec):
        return fmt
    return _float_spec(resolve(fmt, kind="float", arg="fmt"), signed=True)


@dataclass(frozen=True)
class MXSpec:
    """An MX-style block format: float elements, power-of-two (E8M0-like) scales along 1-D
    blocks of ``block`` elements."""

    fmt: BlockFormat
    elem: ElemSpec
    block: int
    scale_bias: int
    scale_emin: int
    scale_nancode: int

    def scale_values32(self) -> np.ndarray:
        return self.fmt.scale.values().astype(np.float32)


def _block(fmt, what: str) -> BlockFormat:
    f = resolve(fmt, kind="block", arg="fmt")
    if not isinstance(f.block_size, int) or f.block_size <= 0:
        raise _unsupported(f, f"block_size {f.block_size!r} ({what} need 1-D blocks)")
    if not f.symmetric:
        raise _unsupported(f, "zero points")
    return f


def mx_spec(fmt) -> MXSpec:
    """Kernel constants of an MX block format (a name or a BlockFormat)."""
    f = _block(fmt, "MX kernels")
    sc = f.scale
    if f.tensor_scale or sc is None or sc.mbits != 0 or sc.signed or sc.zero or sc.bits != 8 \
            or not sc.has_nan:
        raise _unsupported(f, "scales other than an 8-bit E8M0-style power of two with a NaN "
                              "code (MX kernels)")
    if f.element.kind != "float":
        raise _unsupported(f, "integer elements")
    lo, _ = exponent_range(sc)
    return MXSpec(fmt=f, elem=element_spec(f.element), block=f.block_size, scale_bias=sc.bias,
                  scale_emin=lo, scale_nancode=sc.nan_code)


@dataclass(frozen=True)
class NVFP4Spec:
    """An NVFP4-style format: 4-bit float elements, unsigned float block scales (amax rule) and
    an FP32 tensor scale ``amax_tensor / (elem.max * scale.max)``."""

    fmt: BlockFormat
    elem: ElemSpec
    scale: ElemSpec
    block: int

    @property
    def tensor_divisor(self) -> float:
        """``elem.max * scale.max`` (2688 = 6 * 448 for NVFP4)."""
        return self.elem.max * self.scale.max

    def midpoints(self) -> np.ndarray:
        """float64 midpoints between consecutive non-negative element values (E2M1: 0.25,
        0.75, ..., 5): the element rounding thresholds of the ``lowbit`` profile."""
        v = self.elem.fmt.values()[: self.elem.maxcode + 1]
        return (v[1:] + v[:-1]) / 2


def nvfp4_spec(fmt="nvfp4") -> NVFP4Spec:
    """Kernel constants of an NVFP4-style block format (a name or a BlockFormat)."""
    f = _block(fmt, "NVFP4 kernels")
    if not f.tensor_scale or f.scale is None or f.scale_rule != "amax":
        raise _unsupported(f, "a two-level scale other than an amax block scale in a float "
                              "format times an FP32 tensor scale (NVFP4 kernels)")
    if f.element.kind != "float" or f.element.bits != 4:
        raise _unsupported(f, "elements other than 4-bit floats (NVFP4 kernels pack two per "
                              "byte)")
    return NVFP4Spec(fmt=f, elem=element_spec(f.element),
                     scale=_float_spec(f.scale, signed=False), block=f.block_size)


def check_scale_rule(rule, spec: MXSpec) -> str:
    """``rule`` (None: the format's own) if the kernels implement it."""
    rule = spec.fmt.scale_rule if rule is None else rule
    if rule not in MX_SCALE_RULES:
        raise ValueError(f"scale_rule={rule!r}: kernels support {MX_SCALE_RULES}")
    return rule


def check_profile(profile) -> str:
    if profile not in NVFP4_PROFILES:
        raise ValueError(f"profile={profile!r}: choose one of {NVFP4_PROFILES}")
    return profile


def nvfp4_global_scales(amax: float, spec: NVFP4Spec):
    """TE recipe per-tensor scalars from the tensor amax, all float32 (host, IEEE):
    global_encode = min(elem.max*scale.max / amax, FLT_MAX) (1.0 if that is 0 or amax is 0),
    returns (global_encode, global_decode = 1/global_encode, mult = global_encode * fl(1/elem.max))."""
    f = np.float32
    amax = f(amax)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        ge = f(spec.tensor_divisor) / amax if amax > 0 else f(np.inf)
        ge = np.minimum(ge, f(FP32_MAX))
        if ge == 0 or not np.isfinite(ge):
            ge = f(1.0) if ge == 0 or np.isnan(ge) else ge
        gd = f(1.0) / ge
        mult = ge * (f(1.0) / f(spec.elem.max))
    return f(ge), f(gd), f(mult)


def nvfp4_tensor_scale(amax: float, spec: NVFP4Spec) -> np.float32:
    """lowbit.formats per-tensor decode scale: fp32(amax / (elem.max*scale.max)), 1.0 for
    amax == 0, the smallest fp32 subnormal if that underflows to 0."""
    if not amax > 0:
        return np.float32(1.0)
    ts = np.float32(float(amax) / spec.tensor_divisor)
    return ts if ts > 0 else np.float32(np.finfo(np.float32).smallest_subnormal)


def check_block_operands(codes, scales, K, block: int, packed: bool, name: str = "") -> None:
    """ValueError unless ``codes`` is (M, K) - (M, ceil(K/2)) for ``packed`` 4-bit elements -
    and ``scales`` is (M, ceil(K/block)) for the same M: the (de)quantize and GEMM kernels index
    both arrays by (row, column) up to K, so a smaller array would be read past its end.
    ``codes`` / ``scales`` are numpy arrays or torch tensors."""
    K = operator.index(K)
    if K < 0:
        raise ValueError(f"K must be >= 0, got {K}")
    want_c = (K + 1) // 2 if packed else K
    nbk = -(-K // block)
    cs, ss = tuple(codes.shape), tuple(scales.shape)
    if len(cs) != 2 or len(ss) != 2 or cs != (ss[0], want_c) or ss[1] != nbk:
        what = "packed codes" if packed else "codes"
        raise ValueError(f"{name + ': ' if name else ''}{what} must be (M, {want_c}) and scales "
                         f"(M, {nbk}) for K={K}, block {block}; got {cs} and {ss}")


def nvfp4_host_scalars(amax: float, spec: NVFP4Spec) -> tuple[np.float32, np.float32, np.float32]:
    """The float32 scalars an NVFP4 quantize kernel takes from the tensor amax: ``(ts, gd,
    mult)``, the lowbit.formats tensor scale (:func:`nvfp4_tensor_scale`) and TE's global
    decode scale and encode multiplier (:func:`nvfp4_global_scales`)."""
    _, gd, mult = nvfp4_global_scales(amax, spec)
    return nvfp4_tensor_scale(amax, spec), gd, mult


def kernel_formats() -> dict[str, str]:
    """Every registered format and which kernel family takes it (``"element"``, ``"mx"``,
    ``"nvfp4"``) or why none does (the ValueError message)."""
    from_registry = {}
    for name in list_formats():
        f = get_format(name)
        tries = ([element_spec] if f.kind == "float" else
                 [mx_spec, nvfp4_spec] if f.kind == "block" else [])
        why = []
        for fn in tries:
            try:
                fn(f)
            except ValueError as e:
                why.append(str(e))
                continue
            why = [{element_spec: "element", mx_spec: "mx", nvfp4_spec: "nvfp4"}[fn]]
            break
        from_registry[name] = "; ".join(why) or f"{f.kind} formats have no kernels"
    return from_registry
