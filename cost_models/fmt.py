"""Hardware view of a lowbit number format (the fields the cost models need).

``hw_format(fmt)`` turns a ``lowbit.formats`` descriptor or registry name into a
:class:`HwFormat`: element kind (``"int"`` / ``"float"``), element bits, exponent and
mantissa bits, signedness, block size and scale format, and ``bits_per_element``
(storage bits per element including amortised block scales, e.g. MXFP4 = 4 + 8/32 = 4.25,
NVFP4 = 4 + 8/16 = 4.5; the NVFP4 per-tensor FP32 scale is reported separately in
``tensor_scale_bits`` because it is a per-tensor constant).

Every field is read from the ``lowbit.formats`` descriptor (``get_format(name)``); the storage
figure is its ``bits_per_element``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["HwFormat", "hw_format"]


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


def hw_format(fmt) -> HwFormat:
    """Resolve a format name / lowbit.formats descriptor / HwFormat to a :class:`HwFormat`.

    Raises ValueError naming the argument and the known names for an unknown format.
    """
    if isinstance(fmt, HwFormat):
        return fmt
    from lowbit.formats import get_format

    h = _from_lowbit(get_format(fmt) if isinstance(fmt, str) else fmt)
    if h is None:
        raise ValueError(f"format: cannot interpret {fmt!r}")
    return h


def log2c(x: float) -> int:
    """ceil(log2(x)) for x >= 1 (0 for x <= 1)."""
    return 0 if x <= 1 else int(math.ceil(math.log2(x)))
