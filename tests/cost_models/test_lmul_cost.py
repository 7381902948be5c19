"""Pricing of the L-Mul multiplier: the fp_mac unit with mul=lmul, through mac_cost /
mac_energy / evaluate_format, next to the exact e4m3 MAC and INT8."""

import pytest

from lowbit.cost_models.energy import mac_energy
from lowbit.cost_models.inference import evaluate_format, spec_multiplier, split_spec
from lowbit.cost_models.unit_cost import mac_cost, mac_unit


def test_lmul_mac_is_priced_by_its_own_netlist():
    unit, p, lanes = mac_unit("fp8_e4m3", "fp8_e4m3", "fp32", multiplier="lmul")
    assert (unit, p["mul"], lanes) == ("lmul_mac", "lmul", 1)
    for target in ("gates", "ice40", "sky130"):
        exact = mac_cost("fp8_e4m3", "fp8_e4m3", "fp32", target=target)
        lmul = mac_cost("fp8_e4m3", "fp8_e4m3", "fp32", target=target, multiplier="lmul")
        assert lmul["cost"] < exact["cost"], target          # no significand multiplier
        assert lmul["features"]["pp"] == 0 < exact["features"]["pp"]
        assert "mul=lmul" in lmul["arch"]
    e = mac_energy("fp8_e4m3", "fp8_e4m3", "fp32")["pj"]
    el = mac_energy("fp8_e4m3", "fp8_e4m3", "fp32", multiplier="lmul")["pj"]
    ei = mac_energy("int8", "int8", "int32")["pj"]
    assert ei < el < e


def test_multiplier_spec_and_errors():
    assert split_spec("fp8_e4m3@lmul") == ("fp8_e4m3", "fp8_e4m3")
    assert spec_multiplier("int4_g128/fp8_e4m3") == "exact"
    assert spec_multiplier("fp8_e4m3@LMUL_L2") == "lmul_l2"
    with pytest.raises(ValueError, match="float element formats with a float accumulator"):
        mac_unit("int8", "int8", "int32", multiplier="lmul")
    with pytest.raises(ValueError, match="float element formats with a float accumulator"):
        mac_unit("fp8_e4m3", "fp8_e4m3", "exact", multiplier="lmul")


def test_evaluate_format_with_lmul():
    from lowbit.cost_models.inference import workload_layers

    layers = workload_layers("digits-cnn")
    ex = evaluate_format("fp8_e4m3", layers, acc="fp32")["totals"]
    lm = evaluate_format("fp8_e4m3@lmul", layers, acc="fp32")["totals"]
    assert "mul=lmul" in lm["arch"] and "mul" not in ex["arch"]
    assert lm["mac_ge"] < ex["mac_ge"]


def test_report_joins_multiplier_specs():
    from lowbit.cost_models.report import canonical_spec

    assert canonical_spec("mxfp8@LMUL") == "mxfp8_e4m3@lmul"
    assert canonical_spec("e4m3/e4m3@exact") == "fp8_e4m3"
