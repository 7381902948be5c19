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

``inf=`` defaults to ``True`` for ``"ieee"`` and ``False`` otherwise. ``inf=True`` with
``"fn"``, ``"fnuz"`` or ``None`` puts +-Inf at the largest non-NaN magnitude code of each sign
(the IEEE P3109 "extended" domain): signed P3109 formats are ``nan="fnuz", inf=True`` (NaN at
0x80, +Inf 0x7F, -Inf 0xFF for 8 bits), unsigned ones ``nan="fn", inf=True`` (NaN 0xFF,
+Inf 0xFE). :func:`p3109` builds them by their P3109 parameters.

``zero=False`` describes exponent-only scale formats such as OCP MX E8M0 (spec section 5.4.1):
exponent field 0 is a normal binade (0x00 = 2^-127), there is no zero and no subnormal.
``signed=False`` drops the sign bit (UE4M3, UE5M3, E8M0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lowbit.formats._codec import all_values, decode_codes, one_code

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
    inf : bool, optional
        Whether the format has +-Inf. Default ``True`` for ``nan="ieee"`` (top binade, mantissa
        0) and ``False`` otherwise; ``True`` with another scheme puts Inf at the largest non-NaN
        magnitude code (P3109 extended domain, see the module docstring).
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
    inf: bool | None = None
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
        if self.inf is None:
            object.__setattr__(self, "inf", self.nan == "ieee")
        if not isinstance(self.inf, (bool, np.bool_)):
            raise ValueError(f"inf must be True, False or None (scheme default), got {self.inf!r}")
        object.__setattr__(self, "inf", bool(self.inf))
        if not self.zero and self.inf:
            raise ValueError("zero=False (exponent-only scale) formats have no Inf: pass inf=False")
        if self.bits > 32:
            raise ValueError(f"formats wider than 32 bits are not supported (got {self.bits})")
        if self.bias is None:
            b = (1 << (self.ebits - 1)) - 1 + (1 if self.nan == "fnuz" else 0)
            object.__setattr__(self, "bias", b)
        if self.max_code <= 0:
            raise ValueError(f"{self._default_name()} (ebits={self.ebits}, mbits={self.mbits}, "
                             f"nan={self.nan!r}, inf={self.inf}) has no positive finite value")
        if self.name is None:
            object.__setattr__(self, "name", self._default_name())

    def _default_name(self) -> str:
        p3109 = self.p3109_params
        if p3109 is not None and (self.inf or not self.signed):
            k, p, signed, domain = p3109
            return p3109_name(k, p, signed=signed, domain=domain)
        n = f"{'' if self.signed else 'u'}e{self.ebits}m{self.mbits}"
        if self.nan == "fn":
            n += "fn"
        elif self.nan == "fnuz":
            n += "fnuz"
        if self.inf and self.nan != "ieee":
            n += "_inf"
        return n

    @property
    def p3109_params(self) -> tuple[int, int, bool, str] | None:
        """``(K, P, signed, domain)`` when this is an IEEE P3109 ``binaryKpP`` format (interim
        report v3: bias ``2**(K-P-1)`` signed / ``2**(K-P)`` unsigned, subnormals, NaN at the
        negative-zero code (signed) or the all-ones code (unsigned), Inf below it for
        ``domain="extended"``), else ``None``."""
        scheme = "fnuz" if self.signed else "fn"
        if (self.nan != scheme or not self.subnormals or not self.zero
                or self.bias != 1 << (self.ebits - 1)):
            return None
        return self.bits, self.mbits + 1, self.signed, "extended" if self.inf else "finite"

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
        return self.inf

    @property
    def has_nan(self) -> bool:
        return self.nan is not None

    @property
    def has_negative_zero(self) -> bool:
        return self.signed and self.zero and self.nan != "fnuz"

    @property
    def max_field(self) -> int:
        """Largest exponent field that holds finite numbers."""
        return self.max_code >> self.mbits

    @property
    def max_mant(self) -> int:
        """Largest mantissa field at ``max_field``."""
        return self.max_code & ((1 << self.mbits) - 1)

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
        if self.max_field == 0 and self.zero:  # every finite value is subnormal
            return math.ldexp(self.max_mant, self.emin - self.mbits)
        return math.ldexp((1 << self.mbits) + self.max_mant, self.emax - self.mbits)

    @property
    def min(self) -> float:
        """Most negative finite value (0 or the smallest positive value when unsigned)."""
        if self.signed:
            return -self.max
        return 0.0 if self.zero else self.min_normal

    @property
    def min_normal(self) -> float:
        """Smallest positive normal magnitude ``2**emin`` (IEEE 754 ``b**emin``): values below
        it are subnormal multiples of :attr:`min_subnormal`. It exceeds :attr:`max` when the
        format has no finite normal binade (IEEE-style E1: its only finite binade is the
        subnormal one)."""
        return math.ldexp(1.0, self.emin)

    @property
    def min_subnormal(self) -> float:
        """Smallest positive value (equals ``min_normal`` without subnormals)."""
        if self.subnormals and self.zero and self.mbits > 0:
            return math.ldexp(1.0, self.emin - self.mbits)
        return self.min_normal

    @property
    def eps(self) -> float:
        """Distance from 1.0 to the next larger finite value of the format: ``2**-mbits`` when
        1.0 lies in a normal binade below the max; the subnormal spacing (or the step to
        ``min_normal`` without subnormals) when 1.0 is below ``min_normal``; ``inf`` when no
        finite value exceeds 1.0."""
        if self.max <= 1.0:
            return math.inf
        if 1.0 >= self.min_normal:
            return math.ldexp(1.0, -self.mbits)
        if self.subnormals and self.zero and self.mbits > 0:
            q = self.min_subnormal
            return (math.floor(1.0 / q) + 1) * q - 1.0
        return self.min_normal - 1.0

    @property
    def num_codes(self) -> int:
        return 1 << self.bits

    @property
    def num_finite(self) -> int:
        """Number of codes that decode to a finite value (both zeros counted): all codes less
        the NaN codes (``ieee``: every nonzero mantissa of the top binade, per sign; ``fn``: one
        per sign, all of it without Inf; ``fn``: one per sign; ``fnuz``: the negative-zero code)
        and the Inf codes (one per sign)."""
        signs = 2 if self.signed else 1
        infs = signs if self.inf else 0
        nans = {"ieee": signs * (1 << self.mbits) - infs, "fn": signs, "fnuz": 1, None: 0}
        return self.num_codes - nans[self.nan] - infs

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
        """Code of +Inf (``-1`` when the format has no Inf): the top binade with mantissa 0 for
        ``nan="ieee"``, else the largest magnitude code below the top NaN (P3109 extended)."""
        if not self.inf:
            return -1
        if self.nan == "ieee":
            return ((1 << self.ebits) - 1) << self.mbits
        return self.max_code + 1

    @property
    def max_code(self) -> int:
        """Code of the largest finite value: the largest magnitude code less the special codes
        at the top (the whole top binade for ``"ieee"``; one NaN for ``"fn"``; one Inf when
        ``inf=True`` outside ``"ieee"``) - gfloat's ``code_of_max``."""
        top = (1 << (self.ebits + self.mbits)) - 1
        if self.nan == "ieee":
            return top - (1 << self.mbits)
        return top - int(self.nan == "fn") - int(self.inf)

    def values(self) -> np.ndarray:
        """All code values in code order (float64; NaN where a code is NaN)."""
        return all_values(self)

    def explain(self, code: int) -> str:
        """Human-readable breakdown of one code."""
        code = one_code(code, self)
        m = code & ((1 << self.mbits) - 1)
        e = (code >> self.mbits) & ((1 << self.ebits) - 1)
        s = (code >> (self.ebits + self.mbits)) & 1 if self.signed else 0
        v = float(decode_codes(np.array([code], dtype=np.uint32), self)[0])
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


P3109_DOMAINS = ("extended", "finite")


def p3109(k: int, p: int, *, signed: bool = True, domain: str = "extended") -> FloatFormat:
    """The IEEE P3109 format ``binary{k}p{p}`` (interim report v3, as gfloat's
    ``format_info_p3109(k, p, signedness, domain)``).

    ``k`` total bits, ``p`` precision (significand bits including the implicit one), so
    ``mbits = p - 1`` and ``ebits = k - p`` (signed) or ``k - p + 1`` (unsigned). Exponent bias
    ``2**(k-p-1)`` signed, ``2**(k-p)`` unsigned; subnormals; no negative zero. Specials: signed
    formats have one NaN at the negative-zero code ``2**(k-1)``; unsigned ones one NaN at the
    all-ones code ``2**k - 1``. ``domain="extended"`` adds +Inf at the largest non-NaN magnitude
    code (``2**(k-1) - 1`` signed, ``2**k - 2`` unsigned) and -Inf at ``2**k - 1`` (signed);
    ``"finite"`` has no Inf. Named ``p3109_k{k}p{p}{s|u}{e|f}`` (gfloat / pychop spelling).
    """
    if not isinstance(k, (int, np.integer)) or not 2 <= k <= 32:
        raise ValueError(f"k must be an integer in 2..32, got {k!r}")
    top = k - 1 if signed else k
    if not isinstance(p, (int, np.integer)) or not 1 <= p <= top:
        raise ValueError(f"p must be an integer in 1..{top} for a {'signed' if signed else 'unsigned'}"
                         f" {k}-bit P3109 format, got {p!r}")
    if domain not in P3109_DOMAINS:
        raise ValueError(f"domain must be one of {list(P3109_DOMAINS)}, got {domain!r}")
    ebits = k - p + (0 if signed else 1)
    return FloatFormat(ebits, p - 1, bias=1 << (ebits - 1), signed=signed,
                       nan="fnuz" if signed else "fn", inf=domain == "extended",
                       name=p3109_name(k, p, signed=signed, domain=domain))


def p3109_name(k: int, p: int, *, signed: bool = True, domain: str = "extended") -> str:
    """gfloat's / pychop's name of a P3109 format, ``p3109_k{k}p{p}{s|u}{e|f}``."""
    return f"p3109_k{k}p{p}{'s' if signed else 'u'}{domain[0]}"
