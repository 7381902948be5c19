"""Integer and fixed-point element formats.

``IntFormat(bits, signed, narrow, frac_bits)`` represents ``value = q * 2**-frac_bits`` for an
integer ``q`` in ``[qmin, qmax]``; codes are the two's-complement bit patterns of ``q`` (unsigned
integers of ``bits`` bits). ``narrow=True`` drops the most negative code (symmetric range, e.g.
int8 in [-127, 127]; OCP MXINT8 as left unused by microxcaling). ``frac_bits`` gives fixed-point
elements such as MXINT8 (8-bit two's complement with an implicit scale of 2^-6, OCP MX v1.0 5.3).

Fixed point (:func:`fixed_point`, :func:`ap_fixed`): ``Qm.n`` in the Texas Instruments convention
(``m`` integer bits NOT counting the sign bit, ``n`` fraction bits: ``q3.4`` is
``IntFormat(8, frac_bits=4)``, ``uq1.7`` is ``IntFormat(8, signed=False, frac_bits=7)``), and the
AMD/Xilinx Vitis HLS types ``ap_fixed<W, I, Q, O>`` / ``ap_ufixed<W, I, Q, O>`` (``W`` bits of
which ``I`` integer bits including the sign; UG1399 "Arbitrary Precision Fixed-Point Data
Types"). An HLS type carries its conversion policy, so an :class:`IntFormat` can too:
``rounding`` / ``overflow`` are the format's default policies, used by ``encode`` / ``quantize``
when the caller passes none. The HLS quantization modes map exactly onto lowbit roundings
(:data:`HLS_QUANTIZATION`; ``AP_TRN`` floor, ``AP_TRN_ZERO`` toward zero, ``AP_RND`` nearest
ties toward +Inf, ``AP_RND_ZERO`` ties toward zero, ``AP_RND_MIN_INF`` ties toward -Inf,
``AP_RND_INF`` ties away from zero, ``AP_RND_CONV`` ties to even) and the overflow modes onto
lowbit overflow policies (:data:`HLS_OVERFLOW`; ``AP_WRAP`` with ``N = 0`` keeps the low ``W``
bits of the rounded integer, ``AP_SAT`` / ``AP_SAT_ZERO`` / ``AP_SAT_SYM`` saturate to the range /
to 0 / to the symmetric range ``[-max, max]``). ``AP_WRAP_SM`` and saturation bits ``N > 0`` are
not modelled (ValueError).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lowbit.formats._codec import all_values, one_code
from lowbit.formats._kernel import OVERFLOW, ROUNDING

HLS_QUANTIZATION = {"AP_TRN": "rdown", "AP_TRN_ZERO": "rtz", "AP_RND": "rnp",
                    "AP_RND_ZERO": "rnz", "AP_RND_MIN_INF": "rnm", "AP_RND_INF": "rna",
                    "AP_RND_CONV": "rne"}
"""HLS ``ap_q_mode`` -> lowbit rounding (from the ap_fixed quantization semantics: all AP_RND*
modes round to nearest and differ only on ties)."""
HLS_OVERFLOW = {"AP_WRAP": "wrap", "AP_SAT": "saturate", "AP_SAT_ZERO": "sat_zero",
                "AP_SAT_SYM": "sat_sym"}
"""HLS ``ap_o_mode`` -> lowbit overflow policy (``AP_WRAP`` with ``N = 0`` saturation bits)."""
HLS_DEFAULTS = ("AP_TRN", "AP_WRAP")


@dataclass(frozen=True)
class IntFormat:
    """``bits``-bit two's-complement (or unsigned) integers ``q`` scaled by ``2**-frac_bits``.

    ``rounding`` / ``overflow`` (optional): the format's default conversion policies (names from
    ``lowbit.formats.ROUNDING`` / ``OVERFLOW``), used when ``encode`` / ``quantize`` get none -
    how an HLS ``ap_fixed`` type carries its quantization and overflow modes."""

    bits: int
    signed: bool = True
    narrow: bool = False
    frac_bits: int = 0
    name: str | None = field(default=None, compare=False)
    rounding: str | None = None
    overflow: str | None = None

    def __post_init__(self):
        if not isinstance(self.bits, (int, np.integer)) or not 1 <= self.bits <= 32:
            raise ValueError(f"bits must be an integer in 1..32, got {self.bits!r}")
        if not isinstance(self.frac_bits, (int, np.integer)) or abs(self.frac_bits) > 64:
            raise ValueError(f"frac_bits must be an integer in -64..64, got {self.frac_bits!r}")
        if self.narrow and not self.signed:
            raise ValueError("narrow=True only applies to signed formats")
        if self.rounding is not None and self.rounding not in ROUNDING:
            raise ValueError(f"rounding must be None or one of {list(ROUNDING)}, "
                             f"got {self.rounding!r}")
        if self.overflow is not None and self.overflow not in OVERFLOW:
            raise ValueError(f"overflow must be None or one of {list(OVERFLOW)}, "
                             f"got {self.overflow!r}")
        if self.name is None:
            n = f"{'int' if self.signed else 'uint'}{self.bits}"
            if self.narrow:
                n += "_narrow"
            if self.frac_bits:
                n += f"_f{self.frac_bits}"
            object.__setattr__(self, "name", n)

    @property
    def kind(self) -> str:
        return "int"

    @property
    def qmin(self) -> int:
        if not self.signed:
            return 0
        return -(1 << (self.bits - 1)) + int(self.narrow)

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def bits_per_element(self) -> float:
        """Storage bits per element (no scales for an element format)."""
        return float(self.bits)

    @property
    def step(self) -> float:
        return math.ldexp(1.0, -self.frac_bits)

    @property
    def max(self) -> float:
        return self.qmax * self.step

    @property
    def min(self) -> float:
        return self.qmin * self.step

    @property
    def min_normal(self) -> float:
        return self.step

    @property
    def min_subnormal(self) -> float:
        return self.step

    @property
    def eps(self) -> float:
        return self.step

    @property
    def emax(self) -> int:
        """floor(log2(max)): the element ``emax`` used by OCP MX scale selection."""
        return math.floor(math.log2(self.max)) if self.max > 0 else 0

    @property
    def emin(self) -> int:
        return -self.frac_bits

    @property
    def has_inf(self) -> bool:
        return False

    @property
    def has_nan(self) -> bool:
        return False

    @property
    def num_codes(self) -> int:
        return 1 << self.bits

    @property
    def num_finite(self) -> int:
        return self.qmax - self.qmin + 1

    def code_to_int(self, codes) -> np.ndarray:
        """Two's-complement codes -> signed integers ``q`` (int64)."""
        c = np.asarray(codes).astype(np.int64)
        if self.signed:
            c = np.where(c >= (1 << (self.bits - 1)), c - (1 << self.bits), c)
        return c

    def values(self) -> np.ndarray:
        """All code values in code order (float64); the unused code of a narrow format is NaN."""
        return all_values(self)

    def explain(self, code: int) -> str:
        code = one_code(code, self)
        q = int(self.code_to_int(np.array([code]))[0])
        unused = self.narrow and code == (1 << (self.bits - 1))
        v = "unused (narrow range)" if unused else repr(q * self.step)
        return (f"{self.name} code 0x{code:0{(self.bits + 3) // 4}x} = {format(code, f'0{self.bits}b')}"
                f" q={q} -> {v}" + (f" [q * 2^-{self.frac_bits}]" if self.frac_bits else ""))

    @property
    def int_bits(self) -> int:
        """Integer bits including the sign bit (HLS ``I``): ``bits - frac_bits``."""
        return self.bits - self.frac_bits

    @property
    def q_name(self) -> str:
        """``Qm.n`` name (TI convention: ``m`` excludes the sign bit), ``uq`` when unsigned."""
        return f"{'' if self.signed else 'u'}q{self.int_bits - int(self.signed)}.{self.frac_bits}"

    def __str__(self) -> str:
        return self.name


def fixed_point(int_bits: int, frac_bits: int, *, signed: bool = True, rounding=None,
                overflow=None, name=None) -> IntFormat:
    """The ``Qm.n`` format with ``m = int_bits`` integer bits (sign bit not counted) and
    ``n = frac_bits`` fraction bits: ``int_bits + frac_bits + signed`` bits in all."""
    for v, a in ((int_bits, "int_bits"), (frac_bits, "frac_bits")):
        if not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{a} must be an integer >= 0, got {v!r}")
    return IntFormat(int_bits + frac_bits + int(signed), signed=signed, frac_bits=frac_bits,
                     rounding=rounding, overflow=overflow,
                     name=name or f"{'' if signed else 'u'}q{int_bits}.{frac_bits}")


def _hls_mode(value, table, what):
    key = str(value).strip().upper()
    if key not in table:
        extra = " (AP_WRAP_SM is not modelled)" if key == "AP_WRAP_SM" else ""
        raise ValueError(f"{what} must be one of {list(table)}, got {value!r}{extra}")
    return key


def ap_fixed(W: int, I: int, Q: str = "AP_TRN", O: str = "AP_WRAP", N: int = 0, *,
             signed: bool = True) -> IntFormat:
    """The Vitis HLS type ``ap_fixed<W, I, Q, O, N>`` (``signed=False``: ``ap_ufixed``) as an
    :class:`IntFormat` whose default policies are the type's quantization / overflow modes
    (:data:`HLS_QUANTIZATION`, :data:`HLS_OVERFLOW`). ``I`` counts the sign bit and may be
    negative or exceed ``W`` (then ``frac_bits = W - I`` is > W or < 0)."""
    if not isinstance(W, (int, np.integer)) or not 1 <= W <= 32:
        raise ValueError(f"W must be an integer in 1..32, got {W!r}")
    if not isinstance(I, (int, np.integer)):
        raise ValueError(f"I must be an integer, got {I!r}")
    q = _hls_mode(Q, HLS_QUANTIZATION, "Q (quantization mode)")
    o = _hls_mode(O, HLS_OVERFLOW, "O (overflow mode)")
    if N != 0:
        raise ValueError(f"N (saturation bits) = {N!r}: only N = 0 is modelled")
    base = f"ap_{'' if signed else 'u'}fixed<{W},{I}"
    name = base + (">" if (q, o) == HLS_DEFAULTS else f",{q},{o}>")
    return IntFormat(W, signed=signed, frac_bits=W - I, name=name,
                     rounding=HLS_QUANTIZATION[q], overflow=HLS_OVERFLOW[o])
