"""Multiplier models: what one scalar product of two element codes is - the "multiply" step of
the numeric contract, next to the accumulator model (:mod:`lowbit.formats.accum`).

``lowbit.sim``'s GEMM engine takes one (exact by default), ``lowbit.hw`` builds the matching
generator, ``lowbit.cost_models`` prices it. Frozen value objects + a string parser:

* :class:`ExactMul` - the exact product of the two decoded values (IEEE multiplication without
  rounding; NaN for NaN operands or 0 * Inf, signed Inf for Inf operands).
* :class:`LMul` ``(offset=None)`` - L-Mul, "Addition is All You Need for Energy-efficient
  Language Models" (Luo & Sun, 2024, arXiv:2410.00907): one integer adder over the operands'
  exponent-and-mantissa bit fields plus a constant correction. For normal operands
  ``x = (1 + x_m) 2^x_e`` and ``y = (1 + y_m) 2^y_e`` (``m`` mantissa bits) the paper defines
  ``L-Mul(x, y) = (1 + x_m + y_m + 2^-l(m)) 2^(x_e + y_e)`` with ``l(m) = m`` for ``m <= 3``,
  ``3`` for ``m == 4`` and ``4`` for ``m > 4``; the sign is ``sign_x XOR sign_y``. Computed, as
  in the paper's integer implementation, as ONE addition of the ``(e+m)``-bit fields
  ``S = E_x 2^m + M_x + E_y 2^m + M_y + 2^(m - l)``, so when ``x_m + y_m + 2^-l >= 1`` the
  mantissa carry moves into the exponent: the result is
  ``(1 + (S mod 2^m) / 2^m) 2^(floor(S / 2^m) - bias_x - bias_y)`` exactly (no rounding, no
  exponent range limit - a MAC adds it to its accumulator). ``offset=`` overrides ``l``.
  Zero and subnormal operands give a signed zero (the adder treats exponent field 0 as zero:
  flush-to-zero inputs); NaN / Inf operands as for :class:`ExactMul`. Both operands must be
  float formats with the same exponent and mantissa widths (aligned bit fields), ``mbits >= 1``.
* :class:`CodeMul` ``(fn, label)`` - any user function ``fn(codes_a, codes_b) -> products``
  (elementwise over integer code arrays, float64 results), e.g. another approximate multiplier.

Strings (:func:`parse_multiplier`): ``exact``, ``lmul`` (paper offset), ``lmul_l<k>`` (offset
``k``). :meth:`MulModel.table` tabulates a model over every code pair of two small formats
(the form the GEMM engine and the hardware references use).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np

from lowbit.formats._codec import decode_codes
from lowbit.formats.float_format import FloatFormat
from lowbit.formats.registry import resolve

MULTIPLIER_KINDS = ("exact", "lmul", "code")
MULTIPLIER_FORMS = ("exact", "lmul", "lmul_l<k>   (L-Mul with correction 2^-k, e.g. lmul_l3)")
TABLE_MAX_ENTRIES = 1 << 20
"""Largest ``num_codes_a * num_codes_b`` that :meth:`MulModel.table` tabulates."""


class MulModel:
    """Base class of multiplier descriptors; ``name`` is the canonical parseable string (for
    :class:`CodeMul` its label) and ``kind`` one of :data:`MULTIPLIER_KINDS`."""

    kind: str = ""

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def is_exact(self) -> bool:
        return self.kind == "exact"

    def check(self, fmt_a, fmt_b) -> None:
        """Raise ValueError when this model cannot multiply ``fmt_a`` by ``fmt_b`` codes."""

    def products(self, codes_a, fmt_a, codes_b, fmt_b) -> np.ndarray:
        """float64 products of ``codes_a`` (in ``fmt_a``) and ``codes_b`` (in ``fmt_b``),
        elementwise with numpy broadcasting."""
        raise NotImplementedError

    def table(self, fmt_a, fmt_b) -> np.ndarray:
        """Read-only ``(num_codes_a, num_codes_b)`` float64 table of every product."""
        return _table(self, resolve(fmt_a, "element", arg="fmt_a"),
                      resolve(fmt_b, "element", arg="fmt_b"))

    def __str__(self):
        return self.name


@lru_cache(maxsize=64)
def _table(model, fa, fb) -> np.ndarray:
    n = fa.num_codes * fb.num_codes
    if n > TABLE_MAX_ENTRIES:
        raise ValueError(f"a product table of {fa.name} x {fb.name} has {n} entries (> "
                         f"{TABLE_MAX_ENTRIES}); multiplier tables need formats of <= 10 bits")
    model.check(fa, fb)
    ca = np.arange(fa.num_codes, dtype=np.int64)[:, None]
    cb = np.arange(fb.num_codes, dtype=np.int64)[None, :]
    t = np.asarray(model.products(ca, fa, cb, fb), dtype=np.float64)
    if t.shape != (fa.num_codes, fb.num_codes):
        raise ValueError(f"multiplier {model.name}: products() returned shape {t.shape}, expected "
                         f"{(fa.num_codes, fb.num_codes)} (it must broadcast like a * b)")
    t.setflags(write=False)
    return t


def _ieee_specials(va, vb):
    """(nan, inf) masks of an IEEE product of the decoded values ``va``, ``vb``."""
    nan_in = np.isnan(va) | np.isnan(vb)
    inf_in = np.isinf(va) | np.isinf(vb)
    zero_in = (va == 0) | (vb == 0)
    nan = nan_in | (inf_in & zero_in)
    return nan, inf_in & ~nan


@dataclass(frozen=True)
class ExactMul(MulModel):
    """The exact product of the decoded operands (what every other lowbit layer assumes)."""

    kind = "exact"

    @property
    def name(self) -> str:
        return "exact"

    def products(self, codes_a, fmt_a, codes_b, fmt_b) -> np.ndarray:
        fa, fb = resolve(fmt_a, "element", arg="fmt_a"), resolve(fmt_b, "element", arg="fmt_b")
        with np.errstate(invalid="ignore"):
            return decode_codes(np.asarray(codes_a), fa) * decode_codes(np.asarray(codes_b), fb)


def lmul_offset(mbits: int) -> int:
    """The paper's ``l(m)``: ``m`` for ``m <= 3``, ``3`` for ``m == 4``, ``4`` for ``m > 4``."""
    return mbits if mbits <= 3 else (3 if mbits == 4 else 4)


@dataclass(frozen=True)
class LMul(MulModel):
    """L-Mul (Luo & Sun 2024); see the module docstring for the exact definition.

    ``offset``: the ``l`` of the correction term ``2^-l`` (``None``: the paper's ``l(m)``);
    an integer in ``1..mbits`` (``l = mbits`` adds one mantissa LSB)."""

    offset: int | None = None
    kind = "lmul"

    def __post_init__(self):
        if self.offset is not None and (not isinstance(self.offset, (int, np.integer))
                                        or self.offset < 1):
            raise ValueError(f"offset must be None (the paper's l(m)) or an integer >= 1, "
                             f"got {self.offset!r}")

    @property
    def name(self) -> str:
        return "lmul" if self.offset is None else f"lmul_l{self.offset}"

    def l_for(self, mbits: int) -> int:
        """The correction exponent ``l`` used for operands with ``mbits`` mantissa bits."""
        return lmul_offset(mbits) if self.offset is None else int(self.offset)

    def check(self, fmt_a, fmt_b) -> None:
        fa, fb = resolve(fmt_a, "element", arg="fmt_a"), resolve(fmt_b, "element", arg="fmt_b")
        if not (isinstance(fa, FloatFormat) and isinstance(fb, FloatFormat)):
            raise ValueError(f"multiplier {self.name}: L-Mul adds floating-point bit fields; "
                             f"got {fa.name} x {fb.name} (use float formats, e.g. fp8_e4m3)")
        if (fa.ebits, fa.mbits) != (fb.ebits, fb.mbits):
            raise ValueError(f"multiplier {self.name}: operands need the same exponent and "
                             f"mantissa widths (aligned bit fields); got {fa.name} "
                             f"(e{fa.ebits}m{fa.mbits}) x {fb.name} (e{fb.ebits}m{fb.mbits})")
        if fa.mbits < 1 or not (fa.zero and fb.zero):
            raise ValueError(f"multiplier {self.name}: needs formats with a zero and mbits >= 1, "
                             f"got {fa.name} x {fb.name}")
        if self.l_for(fa.mbits) > fa.mbits:
            raise ValueError(f"multiplier {self.name}: offset l={self.l_for(fa.mbits)} exceeds "
                             f"the {fa.mbits} mantissa bits of {fa.name}")

    def field_sum(self, codes_a, codes_b, fmt) -> np.ndarray:
        """The integer adder's output ``S`` (int64) for the magnitude fields of the codes."""
        f = resolve(fmt, "float")
        mag = (1 << (f.ebits + f.mbits)) - 1
        corr = 1 << (f.mbits - self.l_for(f.mbits))
        return ((np.asarray(codes_a, np.int64) & mag) + (np.asarray(codes_b, np.int64) & mag)
                + corr)

    def products(self, codes_a, fmt_a, codes_b, fmt_b) -> np.ndarray:
        fa, fb = resolve(fmt_a, "float", arg="fmt_a"), resolve(fmt_b, "float", arg="fmt_b")
        self.check(fa, fb)
        ca, cb = np.asarray(codes_a, np.int64), np.asarray(codes_b, np.int64)
        va, vb = decode_codes(ca, fa), decode_codes(cb, fb)
        m = fa.mbits
        neg = (((ca >> (fa.bits - 1)) & 1) if fa.signed else 0) ^ (
            ((cb >> (fb.bits - 1)) & 1) if fb.signed else 0)
        s = self.field_sum(ca, cb, fa)
        val = np.ldexp(((1 << m) + (s & ((1 << m) - 1))).astype(np.float64),
                       (s >> m) - fa.bias - fb.bias - m)
        ftz = (((ca >> m) & ((1 << fa.ebits) - 1)) == 0) | (((cb >> m) & ((1 << fb.ebits) - 1)) == 0)
        nan, inf = _ieee_specials(va, vb)
        val = np.where(ftz, 0.0, val)
        val = np.where(inf, np.inf, val)
        val = np.where(neg == 1, -val, val)
        return np.where(nan, np.nan, val)


@dataclass(frozen=True)
class CodeMul(MulModel):
    """A user multiplier: ``fn(codes_a, codes_b)`` -> float64 products (elementwise, numpy
    broadcasting); ``label`` names it in reports."""

    fn: Callable = field(compare=True)
    label: str = "code"
    kind = "code"

    def __post_init__(self):
        if not callable(self.fn):
            raise TypeError(f"fn must be callable (codes_a, codes_b) -> products, got "
                            f"{type(self.fn).__name__}")

    @property
    def name(self) -> str:
        return self.label

    def products(self, codes_a, fmt_a, codes_b, fmt_b) -> np.ndarray:
        return np.asarray(self.fn(np.asarray(codes_a), np.asarray(codes_b)), dtype=np.float64)


_LMUL_L = re.compile(r"^lmul_l(\d+)$")


def parse_multiplier(spec) -> MulModel:
    """A :class:`MulModel` from ``None`` / ``"exact"`` (exact), ``"lmul"``, ``"lmul_l<k>"``, a
    model (returned as it is) or a callable on codes (wrapped in :class:`CodeMul`)."""
    if spec is None:
        return ExactMul()
    if isinstance(spec, MulModel):
        return spec
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key == "exact":
            return ExactMul()
        if key == "lmul":
            return LMul()
        m = _LMUL_L.match(key)
        if m:
            return LMul(offset=int(m.group(1)))
        raise ValueError(f"multiplier must be one of {list(MULTIPLIER_FORMS)}, a MulModel or a "
                         f"function of (codes_a, codes_b); got {spec!r}")
    if callable(spec):
        return CodeMul(spec, getattr(spec, "__name__", "code"))
    raise TypeError(f"multiplier must be a string, MulModel or callable, got {type(spec).__name__}")
