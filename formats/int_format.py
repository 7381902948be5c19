"""Integer and fixed-point element formats.

``IntFormat(bits, signed, narrow, frac_bits)`` represents ``value = q * 2**-frac_bits`` for an
integer ``q`` in ``[qmin, qmax]``; codes are the two's-complement bit patterns of ``q`` (unsigned
integers of ``bits`` bits). ``narrow=True`` drops the most negative code (symmetric range, e.g.
int8 in [-127, 127]; OCP MXINT8 as left unused by microxcaling). ``frac_bits`` gives fixed-point
elements such as MXINT8 (8-bit two's complement with an implicit scale of 2^-6, OCP MX v1.0 5.3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lowbit.formats._codec import decode_codes


@dataclass(frozen=True)
class IntFormat:
    bits: int
    signed: bool = True
    narrow: bool = False
    frac_bits: int = 0
    name: str | None = field(default=None, compare=False)

    def __post_init__(self):
        if not isinstance(self.bits, (int, np.integer)) or not 1 <= self.bits <= 32:
            raise ValueError(f"bits must be an integer in 1..32, got {self.bits!r}")
        if self.narrow and not self.signed:
            raise ValueError("narrow=True only applies to signed formats")
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
        if self.bits > 20:
            raise ValueError(f"values() enumerates 2**bits codes; {self.name} has {self.bits} bits")
        return decode_codes(np.arange(self.num_codes, dtype=np.uint32), self)

    def explain(self, code: int) -> str:
        code = int(code)
        if not 0 <= code < self.num_codes:
            raise ValueError(f"code must be in 0..{self.num_codes - 1} for {self.name}, got {code}")
        q = int(self.code_to_int(np.array([code]))[0])
        unused = self.narrow and code == (1 << (self.bits - 1))
        v = "unused (narrow range)" if unused else repr(q * self.step)
        return (f"{self.name} code 0x{code:0{(self.bits + 3) // 4}x} = {format(code, f'0{self.bits}b')}"
                f" q={q} -> {v}" + (f" [q * 2^-{self.frac_bits}]" if self.frac_bits else ""))

    def __str__(self) -> str:
        return self.name
