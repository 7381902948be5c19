"""The unit registry: one definition per unit serves rtl, cosim and cost; pipelined units stay
bit-exact (exhaustive where the operands allow) with their latency modelled."""

import numpy as np
import pyrtl
import pytest

from lowbit.formats.accum import Exact, FloatAccum, IntAccum
from lowbit.hw.cosim import cosim
from lowbit.hw.unit import FAMILIES, Unit
from lowbit.hw.units import (
    UNITS,
    build_unit,
    export_verilog,
    register_bits,
    register_unit,
    unit_features,
    unit_params,
)


def test_every_unit_is_one_complete_definition():
    for name, u in UNITS.items():
        assert u.name == name and u.family in FAMILIES and u.doc
        if u.family in ("int mult", "int MAC", "fp mult", "fp MAC", "Kulisch", "dot"):
            assert u.vectors and u.expected and u.features, name
        p = unit_params(name)
        assert set(p) == set(u.defaults)


def test_accumulator_is_the_shared_model():
    assert unit_params("fp_mac", acc="bf16_sat")["acc"] == FloatAccum("bf16", overflow="saturate")
    assert unit_params("kulisch_mac")["acc"] == Exact()
    assert unit_params("int_mac", acc=IntAccum(24, "saturate"))["acc"].name == "int24_sat"
    for unit, acc, msg in (("fp_mac", "exact", "kulisch_mac"), ("kulisch_mac", "fp32", "fp_mac"),
                           ("int_mac", "fp16", "fp_mac"), ("fp_mac", "fp32_chunk4", "sequential")):
        with pytest.raises(ValueError, match=msg):
            unit_params(unit, acc=acc)
    with pytest.raises(ValueError, match="--stages"):
        unit_params("fp_mac", stages=4)
    with pytest.raises(ValueError, match="not used"):
        unit_params("int_mul", stages=2)


def test_cost_features_describe_the_exported_netlist():
    """Register bits of the cost features are those of the netlist `lowbit rtl` exports, for
    every unit with a cost model and every stage count."""
    for name, kw in (("int_mac", dict(a="int4", b="int6", stages=3)),
                     ("fp_mac", dict(acc="fp16", stages=2)), ("kulisch_mac", dict(stages=3)),
                     ("mx_dot", dict(a="fp4_e2m1", k=4, stages=2)), ("nvfp4_dot", dict(k=4))):
        v = export_verilog(name, **kw)
        regs = sum(len(r) for r in pyrtl.working_block().wirevector_subset(pyrtl.Register))
        assert "module toplevel" in v
        assert unit_features(name, **kw)["ff"] == register_bits(name, **kw) == regs


def test_register_unit_is_one_definition():
    def build(a="int4", **_):
        pyrtl.Output(4, "y").__ilshift__(pyrtl.Input(4, "a"))

    u = Unit("tmp_passthrough", "fpga", "test unit", build, defaults={"a": "int4"})
    register_unit(u)
    try:
        assert "module toplevel" in export_verilog("tmp_passthrough")
        with pytest.raises(ValueError, match="already registered"):
            register_unit(u)
    finally:
        del UNITS["tmp_passthrough"]


@pytest.mark.parametrize("unit,kw", [
    ("int_mac", dict(a="int4", b="int4", terms=64)),
    ("int_mac", dict(a="int4", b="uint4", acc="int9_sat")),
    ("kulisch_mac", dict(a="fp4_e2m1", b="fp4_e2m1", terms=256)),
    ("fp_mac", dict(a="fp4_e2m1", b="fp4_e2m1", acc="fp16")),
])
@pytest.mark.parametrize("stages", [2, 3])
def test_pipelined_macs_exhaustive(unit, kw, stages):
    """Every operand pair through the pipelined MAC; output cycle t + stages - 1 equals the
    single-cycle reference's cycle t."""
    r = cosim(unit, exhaustive=True, sim="fast", stages=stages, **kw)
    assert r.mismatches == 0 and r.vectors >= 240, str(r)


@pytest.mark.parametrize("unit,kw", [("mx_dot", dict(a="fp6_e3m2", k=8)),
                                     ("mx_dot", dict(a="mxint8", k=4)),
                                     ("nvfp4_dot", dict(k=8))])
@pytest.mark.parametrize("stages", [1, 3])
def test_pipelined_dots(unit, kw, stages):
    r = cosim(unit, n=400, sim="fast", stages=stages, **kw)
    assert r.mismatches == 0 and r.vectors == 400, str(r)


def test_latency_is_modelled_not_ignored():
    """Comparing a 3-stage MAC without its latency fails: the pipeline really delays."""
    from lowbit.hw.cosim import simulate

    kw = unit_params("int_mac", a="int4", b="int4", stages=3)
    u = UNITS["int_mac"]
    rng = np.random.default_rng(0)
    v = u.vectors(200, rng, False, **kw)
    exp = u.expected(v, **kw)["acc"]
    build_unit("int_mac", **kw)
    got = simulate(list(pyrtl.working_block().wirevector_subset(pyrtl.Output)), v)["acc"]
    assert u.latency(**kw) == 2
    assert list(got[2:]) == [int(x) for x in exp[:-2]] and list(got[:len(exp)]) != list(exp)
