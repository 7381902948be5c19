"""iCE40 place and route: one real nextpnr run reproduces the shipped table's row; the shipped
table covers the MAC / dot units at 1-3 stages with its provenance."""

import pytest

from lowbit.cost_models.pnr import (
    PNR_STAGES,
    PNR_UNITS,
    load_pnr,
    place_and_route,
    wrapped_verilog,
)
from lowbit.hw.units import param_text, unit_params


@pytest.fixture(scope="module")
def table():
    t = load_pnr()
    assert t is not None, "cost_models/data/ice40_pnr.json missing"
    return t


def test_shipped_table_covers_units_and_stages(table):
    rows = {(r["unit"], r["params"]) for r in table["rows"]}
    for u, kw in PNR_UNITS:
        for s in PNR_STAGES:
            assert (u, param_text(unit_params(u, **kw, stages=s))) in rows, (u, kw, s)
    for r in table["rows"]:
        assert r["fmax_mhz"] > 0 and r["unit_lut"] > 0 and r["macs_per_s_per_lut"] > 0
    prov = table["provenance"]
    assert "nextpnr" in " ".join(prov["tools"]) and "up5k" in prov["device"]
    # a register cut shortens the product path of the integer MAC: 3 stages run faster than 1
    fm = {r["stages"]: r["fmax_mhz"] for r in table["rows"]
          if r["unit"] == "int_mac" and "a=int8" in r["params"]}
    assert fm[3] > fm[1]


def test_harness_registers_io():
    src, io = wrapped_verilog("mx_dot", a="fp4_e2m1", k=8)
    assert io == {"inputs": 2 * 8 * 4 + 16, "outputs": 32 + 12 + 9}   # dot, isum, sexp
    assert "module top(clk, sin, sout);" in src and "core u_core(" in src


def test_one_real_place_and_route_matches_the_table(table, tmp_path):
    kw = dict(a="int4", b="int4", terms=1024, stages=1)
    r = place_and_route("int_mac", cache_dir=tmp_path, **kw)
    assert not r["cached"] and r["fmax_mhz"] > 0
    shipped = next(x for x in table["rows"] if x["unit"] == "int_mac"
                   and x["params"] == param_text(unit_params("int_mac", **kw)))
    assert (r["lut"], r["ff"]) == (shipped["lut"], shipped["ff"])
    assert r["fmax_mhz"] == pytest.approx(shipped["fmax_mhz"], rel=0.02)
    assert place_and_route("int_mac", cache_dir=tmp_path, **kw)["cached"]
