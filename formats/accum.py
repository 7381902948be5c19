"""Accumulator models: the one description of how products are summed, shared by every layer.

``lowbit.sim``'s GEMM engine executes them bit-exactly, ``lowbit.hw``'s MAC / dot generators
build them, ``lowbit.cost_models`` prices them. Frozen value objects + a string parser:

* :class:`Exact` - products and sums exact; the result is the exact dot product correctly
  rounded ONCE to float64 (Shewchuk expansion sum, as ``math.fsum``). In hardware this is a
  Kulisch (exact fixed-point) accumulator; ``"kulisch"`` is accepted as a spelling.
* :class:`FloatAccum` ``(fmt, order="sequential"|"pairwise", chunk=None, overflow="ieee")`` -
  a float accumulator in any lowbit float format.  Every addition is rounded once (RNE, single
  rounding of the exact sum - no double rounding through float64) to ``fmt``.  Products are
  exact (fused multiply-add: the product is not rounded before the add).
  ``order="sequential"``: ``acc = 0; acc = RNE(acc + p_k)`` for k = 0..K-1.
  ``order="pairwise"``: adder tree over the K exact products, level by level pairing adjacent
  entries ``(0,1), (2,3), ...`` (an odd last entry moves up unchanged); every add is rounded;
  K == 1 returns ``RNE(p_0)``.
  ``chunk=k`` (sequential only): tensor-core style - ``acc = RNE(acc + sum_exact(p_{ck..ck+k-1}))``
  (the k products of a chunk and the accumulator are summed exactly, then rounded once).
  overflow: ``"ieee"`` (default) - Inf for formats with Inf (fp32/fp16/bf16/e5m2), NaN for
  NaN-only formats (E4M3), saturate for formats with neither; ``"saturate"`` - +-max.
* :class:`IntAccum` ``(bits, overflow="wrap"|"saturate")`` - a two's-complement register of
  ``bits`` bits that adds integer products sequentially; after every add the register wraps
  modulo 2**bits or saturates to [-2**(bits-1), 2**(bits-1)-1].

Strings (:func:`parse_accum`): ``exact`` (= ``kulisch``), ``fp32``, ``fp16``, ``bf16``, any lowbit float format
name (``tf32``, ``fp8_e4m3``, ``e5m10``...), with optional suffixes ``_pairwise``,
``_chunk<k>``, ``_sat``  (e.g. ``fp32_chunk32``, ``fp16_pairwise``, ``bf16_sat``),
``int<bits>`` (= wrap), ``int<bits>_wrap``, ``int<bits>_sat``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from lowbit.formats.registry import resolve

ACCUM_FORMS = (
    "exact",
    "<float format>  (fp32, fp16, bf16, tf32, fp8_e4m3, e<E>m<M>, ...)",
    "<float format>_pairwise",
    "<float format>_chunk<k>   (e.g. fp32_chunk32)",
    "<float format>[_pairwise|_chunk<k>]_sat   (saturate instead of Inf/NaN on overflow)",
    "int<bits> | int<bits>_wrap | int<bits>_sat   (e.g. int32, int16_sat, int24_wrap)",
)


ACCUM_KINDS = ("exact", "float", "int")
FLOAT_ORDERS = ("sequential", "pairwise")
FLOAT_OVERFLOW = ("ieee", "saturate")
INT_OVERFLOW = ("wrap", "saturate")
"""``AccumModel.kind`` values: exact (Kulisch), float register, integer register."""


class AccumModel:
    """Base class of accumulator descriptors; ``name`` is the canonical parseable string and
    ``kind`` one of :data:`ACCUM_KINDS`."""

    name: str = ""
    kind: str = ""

    def __str__(self):
        return self.name


@dataclass(frozen=True)
class Exact(AccumModel):
    """Exact products and sums; result correctly rounded once to float64 (Kulisch)."""

    kind = "exact"

    @property
    def name(self):
        return "exact"


@dataclass(frozen=True)
class FloatAccum(AccumModel):
    """Float accumulator in ``fmt`` (name or FloatFormat); see module docstring."""

    kind = "float"

    fmt: object = "fp32"
    order: str = "sequential"
    chunk: int | None = None
    overflow: str = "ieee"

    def __post_init__(self):
        f = resolve(self.fmt, kind="float", arg="FloatAccum fmt")
        if f.mbits > 50:
            raise ValueError(f"FloatAccum fmt={f.name}: at most 50 mantissa bits supported (round-to-odd needs p + 2 <= 53)")
        object.__setattr__(self, "fmt", f)
        if self.order not in FLOAT_ORDERS:
            raise ValueError(f"FloatAccum order={self.order!r}; allowed: {list(FLOAT_ORDERS)}")
        if self.chunk is not None:
            if not _is_int(self.chunk) or self.chunk < 1:
                raise ValueError(f"FloatAccum chunk={self.chunk!r}; must be a positive int")
            if self.order != "sequential":
                raise ValueError("FloatAccum chunk=k requires order='sequential'")
            object.__setattr__(self, "chunk", int(self.chunk))
        if self.overflow not in FLOAT_OVERFLOW:
            raise ValueError(f"FloatAccum overflow={self.overflow!r}; allowed: {list(FLOAT_OVERFLOW)}")

    @property
    def name(self):
        s = self.fmt.name
        if self.order == "pairwise":
            s += "_pairwise"
        if self.chunk is not None:
            s += f"_chunk{self.chunk}"
        if self.overflow == "saturate":
            s += "_sat"
        return s


@dataclass(frozen=True)
class IntAccum(AccumModel):
    """``bits``-bit two's-complement integer accumulator (2 <= bits <= 62)."""

    kind = "int"

    bits: int = 32
    overflow: str = "wrap"

    def __post_init__(self):
        if not _is_int(self.bits) or not 2 <= self.bits <= 62:
            raise ValueError(f"IntAccum bits={self.bits!r}; allowed: an int in 2..62")
        object.__setattr__(self, "bits", int(self.bits))
        if self.overflow not in INT_OVERFLOW:
            raise ValueError(f"IntAccum overflow={self.overflow!r}; allowed: {list(INT_OVERFLOW)}")

    @property
    def name(self):
        return f"int{self.bits}" + ("_sat" if self.overflow == "saturate" else "")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


_INT_RE = re.compile(r"^int(\d+)(?:_(wrap|sat|saturate))?$")
_FLT_RE = re.compile(r"^(?P<fmt>.+?)(?P<pw>_pairwise)?(?:_chunk(?P<k>\d+))?(?P<sat>_sat)?$")


def parse_accum(spec) -> AccumModel:
    """AccumModel from a string (see module docstring) or pass an AccumModel through.
    ``None`` -> Exact().  ValueError lists the allowed forms."""
    if spec is None:
        return Exact()
    if isinstance(spec, AccumModel):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"accum={spec!r}: expected a string or AccumModel; allowed forms: "
                         + "; ".join(ACCUM_FORMS))
    s = spec.strip().lower()
    if s in ("exact", "kulisch"):
        return Exact()
    m = _INT_RE.match(s)
    if m:
        return IntAccum(int(m.group(1)), "saturate" if m.group(2) in ("sat", "saturate") else "wrap")
    m = _FLT_RE.match(s)
    if m:
        try:
            f = resolve(m.group("fmt"))
        except ValueError:
            f = None
        if f is not None and f.kind == "float":
            return FloatAccum(f, "pairwise" if m.group("pw") else "sequential",
                              int(m.group("k")) if m.group("k") else None,
                              "saturate" if m.group("sat") else "ieee")
    raise ValueError(f"unknown accumulator {spec!r}; allowed forms: " + "; ".join(ACCUM_FORMS))
