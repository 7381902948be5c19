"""Minifloat / IEEE-style floating-point format descriptors.

A :class:`FloatFormat` is a small frozen value object; every property is derived from its fields
(gfloat style), nothing is tabulated. Encoding of a code (unsigned integer of ``bits`` bits)::

    [sign (1 bit, signed formats only)] [exponent field (ebits)] [mantissa field (mbits)]

NaN / Inf schemes (``nan=``):

* ``"ieee"`` - the top exponent binade holds Inf (mantissa 0, when ``inf=True``) and NaN
  (any other mantissa). IEEE 754 binary16/32/64, bfloat16, OCP E5M2.
* ``"fn"``   - "finite" formats: only the all-ones code (per sign) is NaN, no Inf; the rest of the
  top binade holds normal numbers. OCP E4M3 (S.1111.111 = NaN, max 448), E8M0 (0xFF = NaN).
* ``"fnuz"`` - finite, unsigned zero: one NaN at the negative-zero code (0x80 for 8 bits), no -0,
  bias one larger than IEEE by default (AMD/Graphcore FP8).
* ``None``   - no NaN and no Inf (OCP FP6 E2M3/E3M2, FP4 E2M1); everything saturates.

``zero=False`` describes exponent-only scale formats such as OCP MX E8M0 (spec section 5.4.1):
exponent field 0 is a normal binade (0x00 = 2^-127), there is no zero and no subnormal.
``signed=False`` drops the sign bit (UE4M3, UE5M3, E8M0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

NAN_SCHEMES = ("ieee", "fn", "fnuz", None)


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format with ``ebits`` exponent and ``mbits`` mantissa bits.

    Parameters
    ----------
    ebits, mbits : int
        Exponent and (stored) mantissa field widths. ``ebits >= 1``, ``mbits >= 0``.
    bias : int, optional
        Exponent bias; default ``2**(ebits-1) - 1`` (``2**(ebits-1)`` for ``nan="fnuz"``).
    signed : bool
        Whether a sign bit exists.
    subnormals : bool
        Whether exponent field 0 encodes subnormals (``False``: those codes are unused and
        values below ``min_normal`` round to 0 or ``min_normal``).
    inf : bool
        Whether the format has +-Inf (only with ``nan="ieee"``).
    nan : {"ieee", "fn", "fnuz", None}
        NaN scheme, see the module docstring.
    zero : bool
        ``False`` for exponent-only scale formats without a zero (E8M0).
    name : str, optional
        Canonical registry name (``e{E}m{M}`` style when not given).
    """

    ebits: int
    mbits: int
    bias: int | None = None
    signed: bool = True
    subnormals: bool = True
    inf: bool = True
    nan: str | None = "ieee"
    zero: bool = True
    name: str | None = field(default=None, compare=False)

    def __post_init__(self):
        if not isinstance(self.ebits, (int, np.integer)) or not 1 <= self.ebits <= 11:
            raise ValueError(f"ebits must be an integer in 1..11, got {self.ebits!r}")
        if not isinstance(self.mbits, (int, np.integer)) or not 0 <= self.mbits <= 52:
            raise ValueError(f"mbits must be an integer in 0..52, got {self.mbits!r}")
        if self.nan not in NAN_SCHEMES:
            raise ValueError(f"nan must be one of {NAN_SCHEMES}, got {self.nan!r}")
        if self.nan == "ieee" and self.mbits == 0:
            raise ValueError("nan='ieee' needs mbits >= 1 (no room for NaN payloads); "
                             "use nan='fn' or nan=None")
        if self.nan == "fnuz" and not self.signed:
            raise ValueError("nan='fnuz' places NaN at the negative-zero code and needs signed=True")
        if not self.zero and (self.subnormals and self.mbits > 0):
            raise ValueError("zero=False formats (E8M0 style) have no subnormals: "
                             "pass subnormals=False")
        if self.bits > 32:
            raise ValueError(f"formats wider than 32 bits are not supported (got {self.bits})")
        if self.bias is None:
            b = (1 << (self.ebits - 1)) - 1 + (1 if self.nan == "fnuz" else 0)
            object.__setattr__(self, "bias", b)
        if self.name is None:
            object.__setattr__(self, "name", self._default_name())
        # inf only exists in the IEEE scheme
        if self.nan != "ieee" and self.inf:
            object.__setattr__(self, "inf", False)

    def _default_name(self) -> str:
        n = f"{'' if self.signed else 'u'}e{self.ebits}m{self.mbits}"
        if self.nan == "fn":
            n += "fn"
        elif self.nan == "fnuz":
            n += "fnuz"
        return n

    # ---- layout ------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return "float"

    @property
    def bits(self) -> int:
        """Total code width in bits."""
        return int(self.signed) + self.ebits + self.mbits

    @property
    def bits_per_element(self) -> float:
        """Storage bits per element (no scales for an element format)."""
        return float(self.bits)

    @property
    def has_inf(self) -> bool:
        return self.nan == "ieee" and self.inf

    @property
    def has_nan(self) -> bool:
        return self.nan is not None

    @property
    def has_negative_zero(self) -> bool:
        return self.signed and self.zero and self.nan != "fnuz"

    @property
    def max_field(self) -> int:
        """Largest exponent field that holds finite numbers."""
        top = (1 << self.ebits) - 1
        if self.nan == "ieee" or (self.nan == "fn" and self.mbits == 0):
            return top - 1
        return top

    @property
    def max_mant(self) -> int:
        """Largest mantissa field at ``max_field``."""
        full = (1 << self.mbits) - 1
        if self.nan == "fn" and self.mbits > 0:
            return full - 1
        return full

    # ---- derived numeric properties ----------------------------------------------------------
    @property
    def emin(self) -> int:
        """Unbiased exponent of the smallest normal binade."""
        return (1 if self.zero else 0) - self.bias

    @property
    def emax(self) -> int:
        """Unbiased exponent of the largest finite binade (OCP MX ``emax_elem``)."""
        return self.max_field - self.bias

    @property
    def max(self) -> float:
        """Largest finite value."""
        return math.ldexp((1 << self.mbits) + self.max_mant, self.emax - self.mbits)

    @property
    def min(self) -> float:
        """Most negative finite value (0 or the smallest positive value when unsigned)."""
        if self.signed:
            return -self.max
        return 0.0 if self.zero else self.min_normal

    @property
    def min_normal(self) -> float:
        return math.ldexp(1.0, self.emin)

    @property
    def min_subnormal(self) -> float:
        """Smallest positive value (equals ``min_normal`` without subnormals)."""
        if self.subnormals and self.zero and self.mbits > 0:
            return math.ldexp(1.0, self.emin - self.mbits)
        return self.min_normal

    @property
    def eps(self) -> float:
        """Distance from 1.0 to the next larger value, ``2**-mbits``."""
        return math.ldexp(1.0, -self.mbits)

    @property
    def num_codes(self) -> int:
        return 1 << self.bits

    @property
    def num_finite(self) -> int:
        """Number of codes that decode to a finite value (both zeros counted)."""
        v = self.values()
        return int(np.count_nonzero(np.isfinite(v)))

    @property
    def nan_code(self) -> int:
        """Canonical (positive) NaN code; ``-1`` when the format has no NaN."""
        m = self.mbits
        top = (1 << self.ebits) - 1
        if self.nan == "ieee":
            return (top << m) | (1 << (m - 1))
        if self.nan == "fn":
            return (top << m) | ((1 << m) - 1)
        if self.nan == "fnuz":
            return 1 << (self.bits - 1)
        return -1

    @property
    def inf_code(self) -> int:
        return ((1 << self.ebits) - 1) << self.mbits if self.has_inf else -1

    @property
    def max_code(self) -> int:
        return (self.max_field << self.mbits) | self.max_mant

    def values(self) -> np.ndarray:
        """All code values in code order (float64; NaN where a code is NaN)."""
        if self.bits > 20:
            raise ValueError(f"values() enumerates 2**bits codes; {self.name} has {self.bits} bits")
        from lowbit.formats.convert import decode

        return decode(np.arange(self.num_codes, dtype=np.uint32), self)

    def explain(self, code: int) -> str:
        """Human-readable breakdown of one code."""
        code = int(code)
        if not 0 <= code < self.num_codes:
            raise ValueError(f"code must be in 0..{self.num_codes - 1} for {self.name}, got {code}")
        m = code & ((1 << self.mbits) - 1)
        e = (code >> self.mbits) & ((1 << self.ebits) - 1)
        s = (code >> (self.ebits + self.mbits)) & 1 if self.signed else 0
        from lowbit.formats.convert import decode

        v = float(decode(np.array([code], dtype=np.uint32), self)[0])
        bits = format(code, f"0{self.bits}b")
        parts = []
        if self.signed:
            parts.append(bits[0])
            rest = bits[1:]
        else:
            rest = bits
        parts.append(rest[: self.ebits])
        if self.mbits:
            parts.append(rest[self.ebits:])
        if math.isnan(v):
            kind = "NaN"
        elif math.isinf(v):
            kind = "Inf"
        elif v == 0:
            kind = "zero"
        elif e == 0 and self.zero:
            kind = "subnormal"
        else:
            kind = "normal"
        if kind in ("normal",):
            detail = (f"(-1)^{s} * 2^({e}-{self.bias}) * (1 + {m}/{1 << self.mbits})")
        elif kind == "subnormal":
            detail = f"(-1)^{s} * 2^({self.emin}) * ({m}/{1 << self.mbits})"
        else:
            detail = kind
        return (f"{self.name} code 0x{code:0{(self.bits + 3) // 4}x} = {'.'.join(parts)} "
                f"sign={s} exponent={e} mantissa={m} -> {v!r} [{kind}: {detail}]")

    def __str__(self) -> str:
        return self.name
