"""What a hardware unit is: :class:`Unit` (one definition per unit) and :class:`Pipe` (pipeline
register cuts placed by a generator).

A :class:`Unit` carries everything the layers need under one name: the PyRTL generator
(``build``), its parameters and their defaults, the test-vector generator and the exact
reference model for co-simulation, the structural cost features, the family it is calibrated
and reported in, and its latency. ``lowbit rtl``, ``lowbit cosim``, ``lowbit cost``,
:mod:`lowbit.cost_models` and the search all read units from :data:`lowbit.hw.units.UNITS`
by the same names. Adding a unit is one ``Unit(...)`` entry (see
:func:`lowbit.hw.units.register_unit`).

Parameter names shared by all units: ``a``, ``b`` (operand / element formats), ``acc`` (the
accumulator model, :mod:`lowbit.formats.accum`: ``Exact()`` = Kulisch, ``FloatAccum(fmt)``,
``IntAccum(bits, overflow)``; strings such as ``"fp32"``, ``"exact"``, ``"int32_sat"`` are
parsed), ``terms`` (sums that must not overflow an exact accumulator), ``k`` (block size),
``stages`` (pipeline depth), ``structure`` (integer multiplier), ``R`` / ``C`` (arrays).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pyrtl

__all__ = ["Unit", "Pipe", "FAMILIES", "inp", "out", "mask"]

FAMILIES = ("int mult", "int MAC", "fp mult", "fp MAC", "Kulisch", "dot", "fpga", "array")
"""Unit families: calibration and error reporting group units by these."""


@dataclass(frozen=True)
class Unit:
    """One hardware unit.

    build(**p) builds the unit's named ``pyrtl.Input`` / ``Output`` ports into the working block;
    vectors(n, rng, exhaustive, **p) -> {input: per-cycle codes}; expected(vecs, **p) ->
    {output: per-cycle codes} of the UNPIPELINED unit (co-simulation shifts it by
    ``latency(**p)`` cycles); features(**p) -> structural cost features (dict, see
    :mod:`lowbit.hw.features`); check(**p) validates / normalises the parameters (returns
    the dict). ``stage_range``: allowed ``stages`` (empty: no ``stages`` parameter).
    """

    name: str
    family: str
    doc: str
    build: Callable
    vectors: Callable | None = None
    expected: Callable | None = None
    features: Callable | None = None
    defaults: dict = field(default_factory=dict)
    sequential: bool = False
    check: Callable | None = None
    stage_range: tuple = ()
    cuts: Callable | None = None       # (**p) -> active cut names for p["stages"]

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"Unit {self.name}: family={self.family!r}; allowed: {FAMILIES}")

    def latency(self, **p) -> int:
        """Extra cycles of the pipelined unit relative to :attr:`expected` (register cuts)."""
        return len(self.cuts(**p)) if self.cuts else 0


class Pipe:
    """Pipeline register cuts. ``Pipe(("product", "fixed"))`` registers the wires passed to
    ``cut("product", ...)`` and ``cut("fixed", ...)``; other cut names pass wires through.

    A generator calls :meth:`cut` at each of its candidate cut points, in datapath order, and
    :meth:`delay` on control inputs (``clr``, ``en``) so they stay aligned with the data; every
    active cut adds one cycle of latency. Registers reset to 0 (PyRTL semantics).
    """

    def __init__(self, cuts=()):
        self.cuts = tuple(cuts)
        self.done: list[str] = []

    @property
    def latency(self) -> int:
        return len(self.cuts)

    def cut(self, name: str, *wires):
        if name not in self.cuts:
            return wires if len(wires) != 1 else wires[0]
        self.done.append(name)
        regs = []
        for w in wires:
            r = pyrtl.Register(len(w))
            r.next <<= w
            regs.append(r)
        return tuple(regs) if len(regs) != 1 else regs[0]

    def delay(self, wire, cycles: int | None = None):
        """``wire`` delayed by ``cycles`` registers (default: the number of active cuts)."""
        for _ in range(self.latency if cycles is None else cycles):
            r = pyrtl.Register(len(wire))
            r.next <<= wire
            wire = r
        return wire

    def check_done(self):
        missing = [c for c in self.cuts if c not in self.done]
        if missing:
            raise AssertionError(f"pipeline cuts {missing} are not on the datapath")


def inp(name: str, width: int):
    return pyrtl.Input(width, name)


def out(name: str, wire):
    o = pyrtl.Output(len(wire), name)
    o <<= wire
    return o


def mask(x, w: int) -> np.ndarray:
    """Python ints -> unsigned ``w``-bit patterns (object array)."""
    return np.array([int(v) & ((1 << w) - 1) for v in np.asarray(x, dtype=object).ravel()],
                    dtype=object)
