"""MX / NVFP4 dot units and systolic arrays vs exact references."""

from fractions import Fraction

import numpy as np
import pyrtl
import pytest

from lowbit.formats import decode, get_format
from lowbit.hw.cosim import cosim, simulate
from lowbit.hw.systolic import run_gemm, systolic_cycles, systolic_cycles_formula
from lowbit.hw.units import build_unit


@pytest.mark.parametrize("elem", ["fp8_e4m3", "fp8_e5m2", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1", "mxint8"])
def test_mx_dot_random(elem):
    r = cosim("mx_dot", n=1500, sim="fast", a=elem, seed=11)
    assert (r.vectors, r.mismatches) == (1500, 0), str(r)


def test_mx_dot_hand_example():
    """k=4 MXFP4 block: A = [1, 1.5, -6, 0.5], B = [2, 4, 0.5, -1], X_A = 2^1, X_B = 2^-3:
    sum = 2 + 6 - 3 - 0.5 = 4.5, times 2^-2 = 1.125 = 0x3F900000."""
    f = get_format("fp4_e2m1")
    codes = {0.5: 1, 1.0: 2, 1.5: 3, 2.0: 4, 4.0: 6, 6.0: 7}
    def enc(v):
        return (8 if v < 0 else 0) | codes[abs(v)]
    A = [enc(v) for v in [1, 1.5, -6, 0.5]]
    B = [enc(v) for v in [2, 4, 0.5, -1]]
    assert list(decode(np.array(A), f)) == [1, 1.5, -6, 0.5]
    build_unit("mx_dot", a="fp4_e2m1", k=4)
    outs = list(pyrtl.working_block().wirevector_subset(pyrtl.Output))
    pack = lambda c: sum(x << (4 * i) for i, x in enumerate(c))  # noqa: E731
    got = simulate(outs, {"a": [pack(A)], "b": [pack(B)], "xa": [128], "xb": [124]})
    assert got["dot"][0] == 0x3F900000
    assert got["sexp"][0] == 252
    assert got["isum"][0] == 18                      # 4.5 * 2^F, F = 2


def test_mx_dot_nan_scale_and_subnormal_result():
    build_unit("mx_dot", a="fp8_e4m3", k=2)
    outs = list(pyrtl.working_block().wirevector_subset(pyrtl.Output))
    one = 0x38  # 1.0 in E4M3
    pack = lambda c: c[0] | (c[1] << 8)  # noqa: E731
    got = simulate(outs, {"a": [pack([one, 0]), pack([one, 0]), pack([one, one])],
                          "b": [pack([one, 0]), pack([one, 0]), pack([one, 0xB8])],
                          "xa": [0xFF, 0, 127], "xb": [127, 0, 127]})["dot"]
    # NaN scale; 1 * 2^-254 -> rounds to 0 in fp32 (below 2^-150); 1 - 1 = +0
    assert got == [0x7FC00000, 0x00000000, 0x00000000]


def test_nvfp4_dot_random_and_fraction_check():
    r = cosim("nvfp4_dot", n=3000, sim="fast", seed=5)
    assert (r.vectors, r.mismatches) == (3000, 0), str(r)
    # independent Fraction check of a few vectors
    from lowbit.hw.units import UNITS, unit_params
    rng = np.random.default_rng(2)
    v = UNITS["nvfp4_dot"].vectors(50, rng, False, **unit_params("nvfp4_dot", k=16))
    build_unit("nvfp4_dot")
    outs = list(pyrtl.working_block().wirevector_subset(pyrtl.Output))
    got = simulate(outs, v)["dot"]
    f, u = get_format("fp4_e2m1"), get_format("ue4m3")
    for i in range(50):
        ea = [(int(v["a"][i]) >> (4 * j)) & 15 for j in range(16)]
        eb = [(int(v["b"][i]) >> (4 * j)) & 15 for j in range(16)]
        sa, sb = decode(np.array([v["sa"][i]]), u)[0], decode(np.array([v["sb"][i]]), u)[0]
        if np.isnan(sa) or np.isnan(sb):
            assert got[i] == 0x7FC00000
            continue
        exact = sum(Fraction(x) * Fraction(y) for x, y in zip(decode(np.array(ea), f), decode(np.array(eb), f)))
        exact *= Fraction(sa) * Fraction(sb)
        g = np.array([got[i]], dtype=np.uint32).view(np.float32)[0]
        assert abs(Fraction(float(g)) - exact) <= abs(exact) * Fraction(1, 2 ** 24), i


@pytest.mark.parametrize("df", ["OS", "WS"])
@pytest.mark.parametrize("R,C,M,N,K", [(2, 2, 3, 3, 3), (4, 4, 8, 8, 8), (3, 2, 5, 7, 4), (4, 3, 9, 6, 11)])
def test_systolic_cycles_match_formula(df, R, C, M, N, K):
    assert systolic_cycles(R, C, M, N, K, df) == systolic_cycles_formula(R, C, M, N, K, df)


def test_systolic_hand_counts():
    # OS 4x4, one tile, K=8: 1 clear + (8+4+4-2) compute + 1 read = 16
    assert systolic_cycles_formula(4, 4, 4, 4, 8, "OS") == 16
    assert systolic_cycles(4, 4, 4, 4, 8, "OS") == 16
    # WS 4x4, one tile, M=8: 4 load + (8+4+4-2) compute + 1 read = 19
    assert systolic_cycles(4, 4, 8, 4, 4, "WS") == 19


@pytest.mark.parametrize("unit", ["systolic_os", "systolic_ws"])
def test_systolic_gemm_cosim(unit):
    r = cosim(unit, n=400, R=3, C=4)
    assert r.mismatches == 0 and r.vectors >= 400, str(r)


def test_systolic_extreme_values():
    A = np.full((5, 9), -128)
    B = np.full((9, 6), -128)
    for df in ("OS", "WS"):
        got, _ = run_gemm(A, B, 4, 4, df)
        assert np.array_equal(got, A @ B)
