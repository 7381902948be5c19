"""The registry of hardware units: one :class:`~lowbit.hw.unit.Unit` per name.

``lowbit rtl``, ``lowbit cosim``, ``lowbit cost``, :mod:`lowbit.cost_models` (calibration,
``mac_cost``, the report) and the mixed-precision search read units from :data:`UNITS` by these
names, so the cost of a unit is the cost of exactly the netlist ``lowbit rtl`` exports.

    build_unit("fp_mac", a="fp8_e4m3", b="fp8_e4m3", acc="fp32", stages=2)
    export_verilog("kulisch_mac", a="fp6_e3m2", b="fp6_e3m2", terms=256)
    unit_features("int_mac", a="int8", b="int8", acc="int32_sat", target="ice40")

Definitions live in :mod:`lowbit.hw.defs_arith` (int / minifloat multipliers and MACs) and
:mod:`lowbit.hw.defs_dot` (MX / NVFP4 dot units, FPGA primitives, systolic arrays); another
package adds a unit with :func:`register_unit`.
"""

from __future__ import annotations

import io
from functools import lru_cache

import pyrtl

from lowbit.hw import defs_arith, defs_dot
from lowbit.hw.unit import Unit

__all__ = ["UNITS", "register_unit", "unit_names", "unit_params", "build_unit", "export_verilog",
           "register_bits", "unit_features", "param_text"]

UNITS: dict[str, Unit] = {}


def register_unit(unit: Unit) -> Unit:
    """Add ``unit`` to :data:`UNITS` (ValueError if the name is taken)."""
    if unit.name in UNITS:
        raise ValueError(f"unit {unit.name!r} is already registered")
    UNITS[unit.name] = unit
    return unit


for _u in defs_arith.DEFS + defs_dot.DEFS:
    register_unit(_u)


def unit_names() -> list[str]:
    return list(UNITS)


def get_unit(name: str) -> Unit:
    if name not in UNITS:
        raise ValueError(f"unit {name!r}; allowed: {', '.join(UNITS)}")
    return UNITS[name]


def unit_params(name: str, **kw) -> dict:
    """Checked parameters of ``name``: its defaults updated with the non-None ``kw`` (format
    names resolved, ``acc`` parsed to an accumulator model). ValueError names unknown options."""
    u = get_unit(name)
    given = {k: v for k, v in kw.items() if v is not None}
    extra = sorted(k for k in given if k not in u.defaults)
    if extra:
        raise ValueError(f"unit {name}: options {extra} not used; it takes "
                         f"{sorted(u.defaults) or 'no options'}")
    p = {**u.defaults, **given}
    return u.check(**p) if u.check else p


def param_text(params: dict) -> str:
    """``a=fp8_e4m3 b=fp8_e4m3 acc=fp32 stages=1`` (format / accumulator names)."""
    return " ".join(f"{k}={getattr(v, 'name', v)}" for k, v in params.items())


def _fresh_block() -> None:
    """Reset PyRTL's working block and its temporary-wire name counters, so the same unit
    always exports byte-identical Verilog (synthesis caches are keyed by the text)."""
    pyrtl.reset_working_block()
    reset = getattr(pyrtl.wire, "_reset_wire_indexers", None)
    if reset is not None:
        reset()


def build_unit(name: str, **kw) -> pyrtl.Block:
    """Reset the working block and build ``name`` into it; returns the block."""
    p = unit_params(name, **kw)
    _fresh_block()
    UNITS[name].build(**p)
    return pyrtl.working_block()


def export_verilog(unit_name: str, module_name: str = "toplevel", **params) -> str:
    """Verilog text (``pyrtl.output_to_verilog``; module ``module_name`` with ``clk`` and a
    synchronous ``rst``) of unit ``unit_name`` built with ``params``."""
    build_unit(unit_name, **params)
    buf = io.StringIO()
    pyrtl.output_to_verilog(buf, module_name=module_name)
    return buf.getvalue()


@lru_cache(maxsize=512)
def _register_bits(name: str, items: tuple) -> int:
    blk = build_unit(name, **dict(items))
    return int(sum(len(r) for r in blk.wirevector_subset(pyrtl.Register)))


def register_bits(name: str, **kw) -> int:
    """Flip-flop bits of the built unit (pipeline and accumulator registers; memories excluded)."""
    p = unit_params(name, **kw)
    return _register_bits(name, tuple(sorted(p.items())))


def unit_features(name: str, target: str | None = None, **kw) -> dict:
    """Structural cost features (:mod:`lowbit.hw.features`) of exactly the unit
    :func:`export_verilog` builds with ``kw``; ``ff`` is counted in the built netlist."""
    u = get_unit(name)
    if u.features is None:
        raise ValueError(f"unit {name!r} has no cost model; units with one: "
                         f"{', '.join(n for n, x in UNITS.items() if x.features)}")
    p = unit_params(name, **kw)
    return {**u.features(**p, target=target), "ff": register_bits(name, **p)}
