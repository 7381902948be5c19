"""The L-Mul hardware multiplier (lowbit.hw.lmul) against the emulator's multiplier model
(lowbit.formats.multiplier.LMul), bit for bit, on every operand pair."""

import numpy as np
import pyrtl
import pytest

from lowbit.formats import get_format
from lowbit.formats.multiplier import LMul
from lowbit.hw.cosim import cosim, simulate
from lowbit.hw.lmul import lmul_multiply, lmul_width


def _run(fname, multiplier="lmul"):
    f = get_format(fname)
    pyrtl.reset_working_block()
    p = lmul_multiply(pyrtl.Input(f.bits, "a"), pyrtl.Input(f.bits, "b"), f, f, multiplier)
    outs = []
    for name, w in (("p", p.fixed), ("nan", p.is_nan), ("inf", p.is_inf)):
        o = pyrtl.Output(len(w), name)
        o <<= w
        outs.append(o)
    n = 1 << f.bits
    A, B = np.repeat(np.arange(n), n), np.tile(np.arange(n), n)
    got = simulate(outs, {"a": A, "b": B}, "compiled")
    return f, A, B, got


@pytest.mark.parametrize("fname,multiplier", [("fp8_e4m3", "lmul"), ("fp8_e5m2", "lmul"),
                                              ("p3109_k8p4se", "lmul"), ("fp6_e2m3", "lmul_l1")])
def test_lmul_unit_matches_emulator_exhaustively(fname, multiplier):
    f, A, B, got = _run(fname, multiplier)
    model = LMul() if multiplier == "lmul" else LMul(offset=1)
    ref = model.table(f, f)[A, B]
    nan, inf = np.isnan(ref), np.isinf(ref)
    fin = ~(nan | inf)
    F = 2 * f.bias + 2 * f.mbits - 2  # the exact multiplier's fixed-point scaling
    W = lmul_width(f, f) + 1
    exp = np.zeros(len(A), dtype=object)
    exp[fin] = [int(v) & ((1 << W) - 1) for v in np.ldexp(ref[fin], F)]
    assert np.array_equal(np.ldexp(np.rint(np.ldexp(ref[fin], F)), -F), ref[fin])  # exact
    bad = (np.array(got["p"], dtype=object) != exp) | (np.array(got["nan"]) != nan) | (
        np.array(got["inf"]) != inf)
    assert not bad.any(), f"{fname}: {int(bad.sum())} of {len(A)} pairs differ"


def test_registry_units_cosim():
    """The registry's lmul_mul unit on all 65,536 e4m3 pairs, and the float-accumulator MAC
    with the L-Mul product (fp32, and a pipelined bf16 MAC) against the emulator's model."""
    r = cosim("lmul_mul", exhaustive=True, sim="compiled", a="fp8_e4m3", b="fp8_e4m3")
    assert (r.vectors, r.mismatches) == (65536, 0), str(r)
    for acc, stages in (("fp32", 1), ("bf16", 3)):
        r = cosim("lmul_mac", n=2000, sim="compiled", a="fp8_e4m3", b="fp8_e4m3", acc=acc,
                  stages=stages)
        assert r.vectors > 1900 and r.mismatches == 0, str(r)


def test_registry_errors():
    with pytest.raises(ValueError, match="use fp_mul"):
        cosim("lmul_mul", n=10, mul="exact")
    with pytest.raises(ValueError, match="same exponent and mantissa widths"):
        cosim("lmul_mac", n=10, a="fp8_e4m3", b="fp8_e5m2")
    with pytest.raises(ValueError, match="--mul"):
        cosim("lmul_mac", n=10, mul="booth")
    with pytest.raises(ValueError, match="use fp_mac"):
        cosim("lmul_mac", n=10, mul="exact")
