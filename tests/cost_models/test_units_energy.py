"""Analytic unit models and energy tables: anchors, monotonicity, formats, bad input."""

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
from lowbit.cost_models.fmt import hw_format
from lowbit.cost_models.units import (
    acc_bits_for,
    coefficients,
    mac_cost,
    mult_features,
    shifter_mux,
    unit_features,
)


def test_bits_per_element_incl_scales():
    assert hw_format("mxfp4").bits_per_element == pytest.approx(4.25)
    assert hw_format("nvfp4").bits_per_element == pytest.approx(4.5)
    assert hw_format("nvfp4").tensor_scale_bits == 32
    assert hw_format("mxfp8").bits_per_element == pytest.approx(8.25)
    assert hw_format("int8").bits_per_element == 8
    with pytest.raises(ValueError, match="unknown format"):
        hw_format("fp9_bogus")


@pytest.mark.parametrize("name,w", [("fp4_e2m1", 9), ("fp6_e2m3", 13), ("fp6_e3m2", 19),
                                    ("fp8_e4m3", 37), ("fp8_e5m2", 67)])
def test_product_fixed_bits(name, w):
    # widths of the exact-product datapaths in the toolchain.md Yosys probe
    assert hw_format(name).product_fixed_bits == w


def test_energy_anchors_reproduced():
    assert e_mul(8, 8) == pytest.approx(HOROWITZ_45NM["int8_mult"])
    assert e_add(8) == pytest.approx(HOROWITZ_45NM["int8_add"])
    assert e_fp_mul(10) == pytest.approx(1.1) and e_fp_mul(23) == pytest.approx(3.7)
    assert e_fp_add(10) == pytest.approx(0.4) and e_fp_add(23) == pytest.approx(0.9)
    # the scaling rules predict the other table entries within 25 %
    assert e_mul(32, 32) == pytest.approx(3.1, rel=0.05)
    assert e_add(32) == pytest.approx(0.1, rel=0.25) and e_add(16) == pytest.approx(0.05, rel=0.25)
    assert mac_energy("fp32")["pj"] == pytest.approx(3.7 + 0.9)
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
    for t in ("gates", "ice40", "xilinx"):
        c = [mac_cost(f"int{n}", target=t)["cost"] for n in range(2, 9)]
        assert all(x < y for x, y in zip(c, c[1:])), t
        f = [mac_cost(f, target=t)["cost"] for f in ("fp4_e2m1", "fp6_e2m3", "fp8_e4m3")]
        assert f[0] < f[1] < f[2]
    e = [mac_energy(f"int{n}")["pj"] for n in range(2, 9)]
    assert all(x < y for x, y in zip(e, e[1:]))
    assert mac_energy("fp8_e4m3", arch="float")["pj"] > mac_energy("fp8_e4m3")["pj"]
    # wider exponent -> wider Kulisch accumulator -> more area
    assert mac_cost("fp8_e5m2")["cost"] > mac_cost("fp8_e4m3")["cost"]


def test_features_and_acc_bits():
    f = mult_features("uint4", "uint4")
    assert (f["pp"], f["csa"], f["cpa"], f["sgn"], f["mux"]) == (16, 9, 8, 0, 0)
    assert mult_features("int4", "int4")["sgn"] == 8
    assert shifter_mux(4, 0) == 0
    # E2M1: 4-bit significand product shifted by 0..4 into 8 bits: stages 1,2,4 -> 5+7+8
    assert shifter_mux(4, 4, 8) == 20
    # Colbert bound as in FINN: alpha = 10 + 8 + 8 - 1 - 1 = 24 -> 26 bits
    assert acc_bits_for("int8", "int8", 1024) == 26
    assert acc_bits_for("fp8_e4m3", "fp8_e4m3", 1024) == 37 + 10
    assert unit_features("fp_mac", ebits=2, mbits=1, acc_bits=17)["ff"] == 17
    with pytest.raises(ValueError, match="kind"):
        unit_features("nope")
    with pytest.raises(ValueError, match="target"):
        coefficients("asic")


def test_lut_packed_products():
    """xc7: a product of <= 6 input bits is one LUT6 per product bit (feature pk)."""
    from lowbit.cost_models.units import lut_packed, mac_cost

    f = mult_features("int3", "int3", target="xilinx")
    assert f["pk"] == 6 and f["pp"] == f["csa"] == f["cpa"] == f["sgn"] == 0
    assert mult_features("int3", "int3")["pk"] == 0           # gate structure otherwise
    assert mult_features("int3", "int3", target="gates") == mult_features("int3", "int3")
    assert mult_features("int3", "int3", target="ice40")["pk"] == 0
    assert mult_features("int4", "int3", target="xilinx")["pk"] == 0   # 7 inputs
    assert mult_features("int4", "int4", target="xilinx") == mult_features("int4", "int4")
    # minifloat significand products: E5M2 is 3x3 (packed), E4M3 4x4 (not)
    e = mult_features("fp8_e5m2", "fp8_e5m2", target="xilinx")
    assert e["pk"] == 6 and e["pp"] == 0 and e["shl"] > 0 and e["neg"] > 0
    assert mult_features("fp8_e4m3", "fp8_e4m3", target="xilinx")["pk"] == 0
    assert lut_packed(3, 3, "xilinx") and not lut_packed(3, 3, None)
    assert not lut_packed(2, 2, "ice40")
    # mac_cost uses the target's features: a 3x3 MAC on xc7 has no array / correction
    m = mac_cost("int3", target="xilinx")
    assert m["features"]["pk"] == 6 and m["features"]["csa"] == 0
    assert mac_cost("int3", target="gates")["features"]["csa"] == 4
    assert unit_features("int_mac", target="xilinx", bits_a=3, bits_b=3, signed=True,
                         acc_bits=14)["pk"] == 6


def test_block_formats_amortise_scale_logic():
    mx = mac_cost("mxfp4")
    assert mx["cost"] > 0 and mx["ff"] < 2      # one fp32 accumulator shared by 32 lanes
    assert mac_cost("nvfp4")["cost"] > mx["cost"]   # UE4M3 scale multiply vs E8M0 add
    assert mac_cost("mxfp4", lanes=64)["cost"] < mac_cost("mxfp4", lanes=8)["cost"]
    assert mac_cost("int8")["dsp48"] == 1 and mac_cost("int4")["dsp48"] == 0
