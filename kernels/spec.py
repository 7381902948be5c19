"""Format constants shared by the Triton and numba kernels (pure Python, no heavy imports).

Every kernel in ``lowbit.kernels`` rounds with integer bit manipulation on the float32 bit
pattern (``x.view(uint32)``), so the rounding is identical in Triton's interpreter, natively
on a GPU and in numba. The constants below fully describe an element format to that code:

- ``mbits``/``bias``: mantissa bits and exponent bias of the element format;
- ``maxcode``: largest finite magnitude code (saturation target, sign bit excluded);
- ``nancode``: magnitude code written for a NaN input (``-1``: the format has no NaN);
- ``emax``: exponent of the largest normal (OCP MX ``emax_elem``);
- ``maxman``: float32 mantissa field (23 bits) of the element max, used by the exact RCEIL
  scale rule ``ceil(log2(amax / max_elem))``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ElemSpec:
    name: str
    mbits: int
    bias: int
    maxcode: int
    nancode: int
    emax: int
    maxman: int
    max: float
    bits: int
    infcode: int = -1  # magnitude code written for ±Inf input (-1: saturate to ±max, CUDA .satfinite)


E4M3 = ElemSpec("fp8_e4m3", 3, 7, 0x7E, 0x7F, 8, 0x600000, 448.0, 8)
E5M2 = ElemSpec("fp8_e5m2", 2, 15, 0x7B, 0x7E, 15, 0x600000, 57344.0, 8)
E2M1 = ElemSpec("fp4_e2m1", 1, 1, 0x7, -1, 2, 0x400000, 6.0, 4)

ELEMENTS = {"fp8_e4m3": E4M3, "e4m3": E4M3, "float8_e4m3fn": E4M3,
            "fp8_e5m2": E5M2, "e5m2": E5M2, "float8_e5m2": E5M2,
            "fp4_e2m1": E2M1, "e2m1": E2M1}

#: MX formats handled by the kernels: name -> (element spec, block size)
MX_FORMATS = {"mxfp8": (E4M3, 32), "mxfp8_e4m3": (E4M3, 32), "mxfp8_e5m2": (E5M2, 32),
              "mxfp4": (E2M1, 32)}
#: MX scale rules handled by the kernels (OCP MX v1.0 s6.3 FLOOR, and RCEIL as in cuBLAS/TE)
MX_SCALE_RULES = ("floor", "rceil")

NVFP4_BLOCK = 16
FP32_MAX = 3.4028234663852886e38


def element_spec(name) -> ElemSpec:
    """Look up an element format by name (or pass an ElemSpec through)."""
    if isinstance(name, ElemSpec):
        return name
    key = getattr(name, "name", name)
    try:
        return ELEMENTS[str(key).lower()]
    except KeyError:
        raise ValueError(f"fmt={name!r}: kernels support element formats "
                         f"{sorted(set(ELEMENTS))}") from None


def mx_spec(name) -> tuple[ElemSpec, int]:
    key = str(getattr(name, "name", name)).lower()
    try:
        return MX_FORMATS[key]
    except KeyError:
        raise ValueError(f"fmt={name!r}: kernels support MX formats {sorted(MX_FORMATS)}") from None


def check_scale_rule(rule: str) -> str:
    if rule not in MX_SCALE_RULES:
        raise ValueError(f"scale_rule={rule!r}: kernels support {MX_SCALE_RULES}")
    return rule


def nvfp4_global_scales(amax: float):
    """TE recipe per-tensor scalars from the tensor amax, all float32 (host, IEEE):
    global_encode = min(448*6 / amax, FLT_MAX) (1.0 if that is 0 or amax is 0),
    returns (global_encode, global_decode = 1/global_encode, mult = global_encode * fl(1/6))."""
    f = np.float32
    amax = f(amax)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        ge = f(448.0 * 6.0) / amax if amax > 0 else f(np.inf)
        ge = np.minimum(ge, f(FP32_MAX))
        if ge == 0 or not np.isfinite(ge):
            ge = f(1.0) if ge == 0 or np.isnan(ge) else ge
        gd = f(1.0) / ge
        mult = ge * (f(1.0) / f(6.0))
    return f(ge), f(gd), f(mult)


NVFP4_PROFILES = ("lowbit", "te")


def nvfp4_tensor_scale(amax: float) -> np.float32:
    """lowbit.formats per-tensor decode scale: fp32(amax / (6*448)), 1.0 for amax == 0, the
    smallest fp32 subnormal if that underflows to 0."""
    if not amax > 0:
        return np.float32(1.0)
    ts = np.float32(float(amax) / (6.0 * 448.0))
    return ts if ts > 0 else np.float32(np.finfo(np.float32).smallest_subnormal)
