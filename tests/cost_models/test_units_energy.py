"""Unit cost models and energy tables: registry-backed costs, anchors, monotonicity, features,
identical value grids, bad input."""

import pytest

from lowbit.cost_models.energy import (
    HOROWITZ_45NM,
    dram_pj_per_byte,
    e_add,
    e_fp_add,
    e_fp_mul,
    e_mul,
    mac_energy,
    scale_area,
    scale_energy,
    sram_pj_per_byte,
)
from lowbit.cost_models.unit_cost import coefficients, cost, mac_cost, mac_unit, unit_cost
from lowbit.hw.features import lut_packed, packed_luts, shifter_mux
from lowbit.hw.units import unit_features

TARGETS = ("gates", "ice40", "xc7", "sky130")


def test_energy_anchors_reproduced():
    assert e_mul(8, 8) == pytest.approx(HOROWITZ_45NM["int8_mult"])
    assert e_add(8) == pytest.approx(HOROWITZ_45NM["int8_add"])
    assert e_fp_mul(10) == pytest.approx(1.1) and e_fp_mul(23) == pytest.approx(3.7)
    assert e_fp_add(10) == pytest.approx(0.4) and e_fp_add(23) == pytest.approx(0.9)
    # the scaling rules predict the other table entries within 25 %
    assert e_mul(32, 32) == pytest.approx(3.1, rel=0.05)
    assert e_add(32) == pytest.approx(0.1, rel=0.25) and e_add(16) == pytest.approx(0.05, rel=0.25)
    assert mac_energy("fp32", "fp32", "fp32")["pj"] == pytest.approx(3.7 + 0.9)
    assert sram_pj_per_byte(8 * 1024) == pytest.approx(10 / 8)
    assert sram_pj_per_byte(1 << 20) == pytest.approx(100 / 8)
    assert dram_pj_per_byte() == pytest.approx(160.0)


def test_node_scaling():
    assert scale_area(100.0, 22.5) == pytest.approx(25.0)
    assert scale_energy(1.0, 45) == 1.0
    assert scale_energy(1.0, 7) < 0.2
    with pytest.raises(ValueError, match="node_nm"):
        scale_energy(1.0, 0)


def test_monotone_in_width():
    for t in TARGETS:
        c = [mac_cost(f"int{n}", f"int{n}", "exact", target=t)["cost"] for n in range(3, 9)]
        assert all(x < y for x, y in zip(c, c[1:])), t
        f = [mac_cost(f, f, "fp32", target=t)["cost"] for f in ("fp4_e2m1", "fp6_e2m3",
                                                                 "fp8_e4m3")]
        assert f[0] < f[1] < f[2], t
        # wider exponent -> wider Kulisch accumulator -> more area
        assert mac_cost("fp8_e5m2", "fp8_e5m2", "exact", target=t)["cost"] > \
            mac_cost("fp8_e4m3", "fp8_e4m3", "exact", target=t)["cost"]
    e = [mac_energy(f"int{n}", f"int{n}", "exact")["pj"] for n in range(3, 9)]
    assert all(x < y for x, y in zip(e, e[1:]))
    assert mac_energy("fp8_e4m3", "fp8_e4m3", "fp32")["pj"] > \
        mac_energy("fp8_e4m3", "fp8_e4m3", "exact")["pj"]


def test_architecture_is_explicit_and_named():
    with pytest.raises(TypeError):
        mac_cost("fp8_e4m3", "fp8_e4m3")          # no default accumulator
    assert mac_unit("fp8_e4m3", "fp8_e4m3", "fp32")[0] == "fp_mac"
    assert mac_unit("fp8_e4m3", "fp8_e4m3", "exact")[0] == "kulisch_mac"
    assert mac_unit("int8", "int8", "int32_sat")[1]["acc"].name == "int32_sat"
    assert mac_unit("int8_pc", "int4_g128", "exact")[0] == "int_mac"   # scales outside the MAC
    assert mac_unit("mxfp4", "mxfp4", "fp32")[:3:2] == ("mx_dot", 32)
    assert mac_unit("nvfp4", "nvfp4", "fp32")[0] == "nvfp4_dot"
    r = mac_cost("fp8_e4m3", "fp8_e4m3", "fp16", target="ice40")
    assert r["arch"] == "fp_mac(a=fp8_e4m3 b=fp8_e4m3 acc=fp16 stages=1)"
    for bad, msg in ((("int8", "int8", "fp32"), "acc=fp32"), (("fp8_e4m3", "int8", "exact"),
                                                              "mixed"),
                     (("fp8_e4m3", "fp8_e4m3", "int32"), "acc=int32")):
        with pytest.raises(ValueError, match=msg):
            mac_cost(*bad)
    with pytest.raises(ValueError, match="--target"):
        mac_cost("int8", "int8", "exact", target="asic")


def test_cost_is_the_registry_units_cost():
    """mac_cost prices exactly the registry unit (the one `lowbit rtl` exports)."""
    for fa, acc in (("fp8_e4m3", "fp32"), ("int4", "int16_sat"), ("fp6_e3m2", "exact")):
        m = mac_cost(fa, fa, acc, target="xc7")
        u, p, lanes = mac_unit(fa, fa, acc)
        assert lanes == 1 and m["cost"] == unit_cost(u, "xc7", **p)["cost"]
        assert m["cost"] == pytest.approx(cost(unit_features(u, target="xc7", **p), "xc7"))
    mx = mac_cost("mxfp4", "mxfp4", "fp32", target="gates")
    assert mx["cost"] == pytest.approx(unit_cost("mx_dot", "gates", a="fp4_e2m1", k=32,
                                                 stages=1)["cost"]
                                       / 32)


def test_features_counts():
    f = unit_features("int_mul", a="uint4", b="uint4", structure="array")
    assert (f["pp"], f["csa"], f["cpa"], f["sxt"], f["tree"], f["ff"]) == (16, 9, 8, 0, 0, 0)
    assert unit_features("int_mul", a="int4", b="int4", structure="array")["sxt"] == 36 - 16
    assert shifter_mux(4, 0) == 0
    # E2M1: 4-bit significand product shifted by 0..4 into 8 bits: stages 1,2,4 -> 5+7+8
    assert shifter_mux(4, 4, 8) == 20
    # register bits are counted in the built netlist: fp32 accumulator, Kulisch 47 + 3 flags,
    # a 2-stage int8 MAC adds the registered 16-bit product and the delayed clr / en
    assert unit_features("fp_mac", a="fp8_e4m3", b="fp8_e4m3", acc="fp32")["ff"] == 32
    assert unit_features("kulisch_mac", a="fp8_e4m3", b="fp8_e4m3")["ff"] == 47 + 3
    assert unit_features("int_mac", a="int8", b="int8", stages=2)["ff"] == 26 + 16 + 2
    with pytest.raises(ValueError, match="unit"):
        unit_cost("nope", "gates")
    with pytest.raises(ValueError, match="no cost model"):
        unit_cost("systolic_os", "gates")
    with pytest.raises(ValueError, match="--target"):
        coefficients("asic")


def test_lut_packed_products():
    """xc7: a product of <= 6 input bits is one LUT6 per product bit, of 7 / 8 input bits one
    LUT per bit with a bit of v > 6 inputs a wide LUT of 2^(v-6) LUT6 (feature pk)."""
    f = unit_features("int_mul", a="uint3", b="uint3", target="xc7")
    assert f["pk"] == 6 and f["pp"] == f["csa"] == f["cpa"] == 0
    assert unit_features("int_mul", a="uint3", b="uint3")["pk"] == 0
    assert unit_features("int_mul", a="uint3", b="uint3", target="ice40")["pk"] == 0
    # 4 x 3: bits of 2, 4, 6, 7, 7, 7, 7 inputs -> 1 + 1 + 1 + 4 * 2; 4 x 4: 1 + 1 + 1 + 5 * 4
    assert unit_features("int_mul", a="uint4", b="uint3", target="xc7")["pk"] == 11
    assert packed_luts(4, 4, "xc7") == 23 and packed_luts(3, 3, "xc7") == 6
    g = unit_features("int_mul", a="uint5", b="uint4", target="xc7")           # 9 inputs
    assert g["pk"] == 0 and g["pp"] == 20 and g["lx"] == 9
    e = unit_features("fp_mul", a="fp8_e5m2", b="fp8_e5m2", target="xc7")
    assert e["pk"] == 6 and e["pp"] == 0 and e["shl"] > 0 and e["neg"] > 0
    assert unit_features("fp_mul", a="fp8_e4m3", b="fp8_e4m3", target="xc7")["pk"] == 23
    assert unit_features("fp_mul", a="fp8_e3m4", b="fp8_e3m4", target="xc7")["pk"] == 0
    assert lut_packed(3, 3, "xc7") and lut_packed(4, 4, "xc7") and not lut_packed(3, 3, None)
    assert not lut_packed(5, 4, "xc7") and not lut_packed(2, 2, "ice40")


def test_wide_lut_products_in_the_shipped_xc7_netlists():
    """The shipped Yosys xc7 result of the 4 x 4 unsigned product is built from 8-input wide
    LUTs (MUXF8 present; one per 8-input product bit) and counts within 25 % of packed_luts;
    the 3 x 3 product uses no wide LUT."""
    from lowbit.cost_models.unit_cost import load_calibration

    rows = {r["params"]: r for r in load_calibration()["units"]
            if r["target"] == "xc7" and r["unit"] == "int_mul"}
    r4 = rows["a=uint4 b=uint4 structure=dadda"]
    assert r4["cells"]["MUXF8"] == 5 and abs(r4["yosys"] / packed_luts(4, 4, "xc7") - 1) <= 0.25
    r3 = rows["a=uint3 b=uint3 structure=dadda"]
    assert "MUXF7" not in r3["cells"] and r3["yosys"] == packed_luts(3, 3, "xc7")


def test_block_formats_amortise_scale_logic():
    mx = mac_cost("mxfp4", "mxfp4", "fp32")
    assert mx["cost"] > 0 and mx["lanes"] == 32
    assert mac_cost("nvfp4", "nvfp4", "fp32")["cost"] > mx["cost"]  # UE4M3 multiply vs E8M0 add
