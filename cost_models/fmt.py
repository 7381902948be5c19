"""Hardware view of a lowbit number format (the fields the cost models need).

``hw_format(fmt)`` turns a ``lowbit.formats`` descriptor or registry name into a
:class:`HwFormat`: element kind (``"int"`` / ``"float"``), element bits, exponent and
mantissa bits, signedness, block size and scale format, and ``bits_per_element``
(storage bits per element including amortised block scales, e.g. MXFP4 = 4 + 8/32 = 4.25,
NVFP4 = 4 + 8/16 = 4.5; the NVFP4 per-tensor FP32 scale is reported separately in
``tensor_scale_bits`` because it is a per-tensor constant).

The storage figure is taken from ``lowbit.formats.get_format(name).bits_per_element``
when ``lowbit.formats`` is importable; otherwise (formats/ not written yet) a small local
parser covers the registry names listed in docs/formats-api.md, so the cost models work
stand-alone.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["HwFormat", "hw_format", "KNOWN_FORMATS"]


@dataclass(frozen=True)
class HwFormat:
    """Element datapath description of a format.

    kind: "int" or "float". bits: element bits (incl. sign). For floats: ebits, mbits
    (stored fraction bits), bias. signed: element has a sign bit (ints: two's complement).
    block_size: elements per shared scale (None = no block scale). scale_kind: "e8m0"
    (power-of-two scale: exponent add only), "float" (e.g. UE4M3: mantissa multiply +
    exponent add), "fp32" or None. scale_bits, scale_ebits, scale_mbits describe it.
    """

    name: str
    kind: str
    bits: int
    ebits: int = 0
    mbits: int = 0
    bias: int = 0
    signed: bool = True
    block_size: int | None = None
    scale_kind: str | None = None
    scale_bits: int = 0
    scale_ebits: int = 0
    scale_mbits: int = 0
    tensor_scale_bits: int = 0
    bits_per_element: float = 0.0

    @property
    def is_float(self) -> bool:
        return self.kind == "float"

    @property
    def sig_bits(self) -> int:
        """Significand bits entering a multiplier (hidden bit + fraction; int: magnitude bits)."""
        return self.mbits + 1 if self.is_float else self.bits

    @property
    def exp_span(self) -> int:
        """Largest effective exponent minus the smallest, in binades (0 for ints).

        With the hidden-bit convention (subnormals use exponent 1) the effective biased
        exponent ranges over [1, 2^E - 1], so span = 2^E - 2. The top binade is kept
        (Inf/NaN handling is not part of the datapath model).
        """
        return (2 ** self.ebits - 2) if self.is_float and self.ebits > 0 else 0

    @property
    def product_fixed_bits(self) -> int:
        """Width of the exact product a*b as a signed fixed-point word (same format both sides).

        int:   2*bits (signed) / 2*bits (unsigned)
        float: 2*(m+1) significand product + 2*span shift range + 1 sign bit
               (E2M1 -> 9, E2M3 -> 13, E3M2 -> 19, E4M3 -> 37, E5M2 -> 67).
        """
        if not self.is_float:
            return 2 * self.bits
        return 2 * (self.mbits + 1) + 2 * self.exp_span + (1 if self.signed else 0)


_FLOATS = {  # name: (ebits, mbits, bias, signed)
    "fp32": (8, 23, 127, True), "tf32": (8, 10, 127, True), "bf16": (8, 7, 127, True),
    "fp16": (5, 10, 15, True), "fp8_e4m3": (4, 3, 7, True), "fp8_e5m2": (5, 2, 15, True),
    "fp8_e4m3fnuz": (4, 3, 8, True), "fp8_e5m2fnuz": (5, 2, 16, True),
    "fp8_e3m4": (3, 4, 3, True), "fp6_e2m3": (2, 3, 1, True), "fp6_e3m2": (3, 2, 3, True),
    "fp4_e2m1": (2, 1, 1, True), "e8m0": (8, 0, 127, False), "ue4m3": (4, 3, 7, False),
    "ue5m3": (5, 3, 15, False),
}
_ALIASES = {"float8_e4m3fn": "fp8_e4m3", "e4m3": "fp8_e4m3", "e5m2": "fp8_e5m2",
            "mxfp8": "mxfp8_e4m3", "float32": "fp32", "float16": "fp16", "bfloat16": "bf16",
            "e2m1": "fp4_e2m1", "e2m3": "fp6_e2m3", "e3m2": "fp6_e3m2", "e3m4": "fp8_e3m4"}
# block formats: name -> (element, block, scale, tensor_scale)
_BLOCKS = {
    "mxfp8_e4m3": ("fp8_e4m3", 32, "e8m0", False), "mxfp8_e5m2": ("fp8_e5m2", 32, "e8m0", False),
    "mxfp6_e3m2": ("fp6_e3m2", 32, "e8m0", False), "mxfp6_e2m3": ("fp6_e2m3", 32, "e8m0", False),
    "mxfp4": ("fp4_e2m1", 32, "e8m0", False), "mxint8": ("int8", 32, "e8m0", False),
    "nvfp4": ("fp4_e2m1", 16, "ue4m3", True), "bfp8": ("int8", 16, "e8m0", False),
    "int8_pt": ("int8", None, "fp32", False), "int8_pc": ("int8", -1, "fp32", False),
    "int4_pc": ("int4", -1, "fp32", False), "int4_g128": ("int4", 128, "fp32", False),
    "int8_g128": ("int8", 128, "fp32", False), "int4_g32": ("int4", 32, "fp32", False),
    "int4_g128_asym": ("int4", 128, "fp32", False),
}
KNOWN_FORMATS = sorted(set(_FLOATS) | set(_BLOCKS) | {f"int{b}" for b in range(2, 9)}
                       | {f"uint{b}" for b in range(2, 9)} | {"int16", "int32"})


def _local_element(name: str) -> HwFormat:
    n = _ALIASES.get(name, name)
    if n in _FLOATS:
        e, m, bias, s = _FLOATS[n]
        bits = e + m + (1 if s else 0)
        return HwFormat(n, "float", bits, e, m, bias, s, bits_per_element=float(bits))
    mm = re.fullmatch(r"(u?)int(\d+)", n)
    if mm:
        b = int(mm.group(2))
        return HwFormat(n, "int", b, signed=not mm.group(1), bits_per_element=float(b))
    mm = re.fullmatch(r"e(\d+)m(\d+)", n)
    if mm:
        e, m = int(mm.group(1)), int(mm.group(2))
        return HwFormat(n, "float", 1 + e + m, e, m, 2 ** (e - 1) - 1, True,
                        bits_per_element=float(1 + e + m))
    raise ValueError(f"format: unknown format {name!r}; known: {', '.join(KNOWN_FORMATS)}")


def _from_lowbit(fmt) -> HwFormat | None:
    """Convert a lowbit.formats descriptor (duck-typed) or None if not recognisable."""
    name = getattr(fmt, "name", None) or str(fmt)
    el = getattr(fmt, "element", None)
    if el is not None:  # BlockFormat
        e = _from_lowbit(el)
        sc = getattr(fmt, "scale", None)
        blk = getattr(fmt, "block_size", None)
        if sc is None:
            sk, sb, se, sm = "fp32", 32, 8, 23
        else:
            se, sm = int(getattr(sc, "ebits", 8)), int(getattr(sc, "mbits", 0))
            sb = int(getattr(sc, "bits", se + sm))
            sb = 8 if sb == 7 else sb
            sk = "e8m0" if sm == 0 else "float"
        ts = 32 if getattr(fmt, "tensor_scale", False) else 0
        bpe = float(fmt.bits_per_element)
        bs = blk if isinstance(blk, int) and blk > 0 else None
        return HwFormat(name, e.kind, e.bits, e.ebits, e.mbits, e.bias, e.signed, bs, sk, sb,
                        se, sm, ts, bpe)
    if hasattr(fmt, "ebits"):
        return HwFormat(name, "float", int(fmt.bits), int(fmt.ebits), int(fmt.mbits),
                        int(fmt.bias), bool(fmt.signed), bits_per_element=float(fmt.bits))
    if hasattr(fmt, "qmin"):
        return HwFormat(name, "int", int(fmt.bits), signed=int(fmt.qmin) < 0,
                        bits_per_element=float(fmt.bits))
    return None


def _local(name: str) -> HwFormat:
    n = _ALIASES.get(name, name)
    if n in _BLOCKS:
        el, blk, sc, ts = _BLOCKS[n]
        e = _local_element(el)
        if sc == "fp32":
            sk, sb, se, sm = "fp32", 32, 8, 23
        else:
            s = _local_element(sc)
            # unsigned E4M3 scales (NVFP4 UE4M3) are stored in a byte
            sb = 8 if s.bits == 7 else s.bits
            sk, se, sm = ("e8m0" if s.mbits == 0 else "float"), s.ebits, s.mbits
        bs = blk if isinstance(blk, int) and blk > 0 else None
        bpe = e.bits + (sb / bs if bs else 0.0)
        return HwFormat(n, e.kind, e.bits, e.ebits, e.mbits, e.bias, e.signed, bs, sk, sb, se,
                        sm, 32 if ts else 0, bpe)
    return _local_element(n)


def hw_format(fmt) -> HwFormat:
    """Resolve a format name / lowbit.formats descriptor / HwFormat to a :class:`HwFormat`.

    Raises ValueError naming the argument and the known names for an unknown format.
    """
    if isinstance(fmt, HwFormat):
        return fmt
    if not isinstance(fmt, str):
        h = _from_lowbit(fmt)
        if h is None:
            raise ValueError(f"format: cannot interpret {fmt!r}")
        return h
    local = None
    try:
        local = _local(fmt)
    except ValueError:
        pass
    try:  # prefer the lead's registry for the storage figure
        from lowbit.formats import get_format  # type: ignore

        h = _from_lowbit(get_format(fmt))
        if h is not None:
            if local is not None and local.kind == h.kind:
                # keep canonical names of the local table; storage from lowbit.formats
                return HwFormat(**{**local.__dict__, "bits_per_element": h.bits_per_element})
            return h
    except (ImportError, AttributeError, ValueError, KeyError, TypeError):
        pass
    if local is None:
        raise ValueError(f"format: unknown format {fmt!r}; known: {', '.join(KNOWN_FORMATS)}")
    return local


def log2c(x: float) -> int:
    """ceil(log2(x)) for x >= 1 (0 for x <= 1)."""
    return 0 if x <= 1 else int(math.ceil(math.log2(x)))
