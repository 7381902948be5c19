"""lowbit.hw: PyRTL hardware models of low-precision arithmetic units, co-simulated bit-exactly
against lowbit.formats, exported as Verilog and run under cocotb (Icarus / Verilator).

Generators (take / return PyRTL WireVectors): :mod:`~lowbit.hw.intmac` (integer multipliers and
MACs), :mod:`~lowbit.hw.fpmul` (minifloat decode / exact product), :mod:`~lowbit.hw.fpround`
(RNE normalise-and-round, exact-sum adder), :mod:`~lowbit.hw.fpmac` (Kulisch and float-accumulator
MACs), :mod:`~lowbit.hw.mxdot` (MX / NVFP4 block dot products), :mod:`~lowbit.hw.systolic`
(OS / WS int8 arrays), :mod:`~lowbit.hw.fpga` (LUT multipliers, DSP48-style MAC).
Registry: :mod:`~lowbit.hw.units` (:data:`UNITS`, one :class:`~lowbit.hw.unit.Unit` per name,
defined in :mod:`~lowbit.hw.defs_arith` / :mod:`~lowbit.hw.defs_dot`; :func:`export_verilog`,
:func:`unit_features`), :mod:`~lowbit.hw.widths` (product / accumulator widths),
:mod:`~lowbit.hw.features` (structural cost features). Harness: :mod:`~lowbit.hw.cosim`,
:mod:`~lowbit.hw.hdl` (cocotb runner), :mod:`~lowbit.hw.reference` (exact models).
"""

from lowbit.hw.cosim import CosimResult, cosim
from lowbit.hw.systolic import systolic_cycles, systolic_cycles_formula
from lowbit.hw.unit import Unit
from lowbit.hw.units import (
    UNITS,
    build_unit,
    export_verilog,
    register_unit,
    unit_features,
    unit_names,
    unit_params,
)
from lowbit.hw.widths import acc_width, product_width

__all__ = ["UNITS", "Unit", "unit_names", "unit_params", "register_unit", "build_unit",
           "export_verilog", "unit_features", "acc_width", "product_width", "cosim",
           "CosimResult", "systolic_cycles", "systolic_cycles_formula"]
