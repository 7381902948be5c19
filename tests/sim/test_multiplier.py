"""The GEMM engine's multiplier path (lowbit.sim.mulpath).

* With ExactMul it must reproduce the engine's element and block paths bit for bit (every
  accumulator model, element and block formats) - the path's own proof of correctness.
* With L-Mul, a user function on codes, ... against an independent reference written here:
  decode the codes, take the model's products from its table, and accumulate with exact
  Fractions and the accumulator's rounding (sequential RNE per product via lowbit.formats).
"""

from fractions import Fraction

import numpy as np
import pytest

from lowbit.formats import ExactMul, LMul, encode, get_format, parse_accum, quantize
from lowbit.sim import QuantConfig, qlinear, qmatmul
from lowbit.sim.engine import block_path_ok, gemm_nt
from lowbit.sim.mulpath import mul_gemm
from lowbit.sim.operands import prepare


def _data(seed=0, N=5, K=40, M=4):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, K)) * 3, rng.standard_normal((M, K))


EXACT_CASES = [("fp8_e4m3", "fp8_e4m3", "exact"), ("fp8_e4m3", "fp8_e4m3", "fp32"),
               ("fp8_e4m3", "fp8_e4m3", "bf16_chunk8"), ("fp8_e5m2", "fp8_e5m2", "fp16"),
               ("int8", "int8", "int16_sat"), ("int8", "int8", "int12_wrap"),
               ("mxfp8_e4m3", "mxfp8_e4m3", "fp32"), ("mxfp4", "mxfp4", "exact"),
               ("nvfp4", "nvfp4", "fp32"), ("int8_pc", "int8_pt", "exact"),
               ("int8_pc", "int8_pc", "int32")]


@pytest.mark.parametrize("wf,af,acc,dot", [c + (d,) for c in EXACT_CASES for d in ("auto", "element")
                                           if d == "auto" or c[0] != "int8_pc"])
def test_exact_multiplier_path_equals_engine(wf, af, acc, dot):
    """(The engine has no element path for integer registers over per-channel scaled values;
    the multiplier path does, and the block-path case covers its arithmetic.)"""
    x, w = _data(K=64)
    x[0, 3], w[1, 5] = 1e9, -1e9  # saturated operands
    A, W = prepare(x, get_format(af)), prepare(w, get_format(wf))
    acc = parse_accum(acc)
    use_block = dot == "auto" and block_path_ok(acc) and (
        (A.is_block and W.is_block) or (acc.kind == "int" and (A.is_block or W.is_block)))
    ref = gemm_nt(A, W, acc, dot=dot)
    got = mul_gemm(A, W, acc, use_block, ExactMul())
    assert np.array_equal(got, ref, equal_nan=True), (wf, af, acc.name, dot)


def _ref_lmul_linear(x, w, fmt, acc_fmt=None):
    """Independent reference: products from the L-Mul table on the codes; exact Fraction sum
    (acc_fmt None) or sequential per-product RNE in acc_fmt (lowbit.formats.quantize of the
    exact running sum, one rounding per add)."""
    f = get_format(fmt)
    ca, cw = encode(x, f).astype(np.int64), encode(w, f).astype(np.int64)
    T = LMul().table(f, f)
    out = np.empty((x.shape[0], w.shape[0]))
    for i in range(x.shape[0]):
        for j in range(w.shape[0]):
            acc = Fraction(0)
            for k in range(x.shape[1]):
                acc += Fraction(float(T[ca[i, k], cw[j, k]]))
                if acc_fmt is not None:
                    acc = Fraction(float(quantize(np.array([float(acc)]), acc_fmt,
                                                  overflow="nonsat")[0]))
            out[i, j] = float(acc)
    return out


@pytest.mark.parametrize("acc", [None, "bf16", "fp16"])
def test_lmul_gemm_against_fraction_reference(acc):
    """float(acc) of the exact running sum is the correctly rounded float64, so the bf16/fp16
    per-add rounding of the reference is one rounding of the exact sum."""
    x, w = _data(1, N=3, K=24, M=3)
    cfg = QuantConfig(weight="fp8_e4m3", act="fp8_e4m3", accum=acc or "exact", multiplier="lmul")
    got = qlinear(x, w, None, cfg)
    assert np.array_equal(got, _ref_lmul_linear(x, w, "fp8_e4m3", acc))
    exact = qlinear(x, w, None, QuantConfig(weight="fp8_e4m3", act="fp8_e4m3",
                                            accum=acc or "exact"))
    assert not np.array_equal(got, exact)  # L-Mul is approximate: the two must differ


def test_block_formats_scale_the_lmul_products():
    """MXFP8: L-Mul on the element codes, block scales (powers of two) multiply exactly:
    equals the element-code L-Mul GEMM on the unscaled elements times the scales per block."""
    x, w = _data(2, N=3, K=64, M=2)
    got = qmatmul(x, w.T, QuantConfig(weight="mxfp8_e4m3", act="mxfp8_e4m3", multiplier="lmul"))
    qa, qw = encode(x, "mxfp8_e4m3"), encode(w, "mxfp8_e4m3")
    T = LMul().table(get_format("fp8_e4m3"), get_format("fp8_e4m3"))
    ref = np.zeros((3, 2))
    for i in range(3):
        for j in range(2):
            s = Fraction(0)
            for k in range(64):
                s += Fraction(float(T[qa.codes[i, k], qw.codes[j, k]])) * Fraction(
                    float(qa.scales[i, k // 32])) * Fraction(float(qw.scales[j, k // 32]))
            ref[i, j] = float(s)
    assert np.array_equal(got, ref)


def test_user_multiplier_and_errors():
    x, w = _data(3, N=2, K=16, M=2)
    fa = get_format("int8")
    # a truncating multiplier written on codes: (a*b) >> 4 << 4 of the signed integers
    def trunc(ca, cb):
        qa = np.where(ca >= 128, ca - 256, ca)
        qb = np.where(cb >= 128, cb - 256, cb)
        return ((qa * qb) >> 4 << 4).astype(np.float64)
    got = qlinear(x * 20, w * 20, None, QuantConfig(weight=fa, act=fa, multiplier=trunc))
    qx = np.rint(np.clip(x * 20, -128, 127)).astype(np.int64)
    qw = np.rint(np.clip(w * 20, -128, 127)).astype(np.int64)
    assert np.array_equal(got, ((qx[:, None, :] * qw[None, :, :]) >> 4 << 4).sum(-1))
    with pytest.raises(ValueError, match="quantised operands"):
        qlinear(x, w, None, QuantConfig(weight="fp8_e4m3", act=None, multiplier="lmul"))
    with pytest.raises(ValueError, match="pairwise"):
        qlinear(x, w, None, QuantConfig(weight="fp8_e4m3", act="fp8_e4m3",
                                        accum="fp32_pairwise", multiplier="lmul"))
    with pytest.raises(ValueError, match="multiplier must be one of"):
        QuantConfig(multiplier="wallace")


def test_sweep_points_with_multipliers():
    from lowbit.sim.sweep.points import SweepPoint, build_points, validate_format

    pts = build_points("digits-cnn", ["fp8_e4m3,int8_pc", "mxfp8_e4m3"], ["fp32"],
                       multipliers=["exact", "lmul"])
    assert [p.format for p in pts] == ["fp8_e4m3", "fp8_e4m3@lmul", "int8_pc", "mxfp8_e4m3",
                                       "mxfp8_e4m3@lmul"]  # no L-Mul for integers
    p = SweepPoint("digits-cnn", "int4_g128/fp8_e4m3@exact", "fp32", "rtn", "v")
    assert (p.weight_format, p.act_format, p.multiplier) == ("int4_g128", "fp8_e4m3", "exact")
    assert SweepPoint("w", "fp8_e5m2@lmul_l1", "fp32", "rtn", "v").multiplier == "lmul_l1"
    with pytest.raises(ValueError, match="float formats"):
        validate_format("int8_pc@lmul")
    with pytest.raises(ValueError, match="same exponent and mantissa widths"):
        validate_format("fp8_e4m3/fp8_e5m2@lmul")
    with pytest.raises(ValueError, match="--multiplier"):
        build_points("digits-cnn", ["fp8_e4m3"], ["fp32"], multipliers=["booth"])
