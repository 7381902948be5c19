"""Accumulator models: hand-worked cases and independent per-step references."""

from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest
from sim_ref import frac_round

from lowbit.formats import resolve
from lowbit.formats.accum import Exact, FloatAccum, IntAccum, parse_accum
from lowbit.sim import accum_kernels as K_
from lowbit.sim.accum_round import float_params
from lowbit.sim.gemm import qmatmul
from lowbit.sim.qconfig import QuantConfig

# --------------------------------------------------------------------------- reference rounding


def frac_seq(a, b, fmt):
    mb, emin, maxv = int(fmt.mbits), 1 - int(fmt.bias), float(fmt.max)
    acc = Fraction(0)
    for x, y in zip(a, b):
        acc = frac_round(acc + Fraction(float(x)) * Fraction(float(y)), mb, emin, maxv)
    return float(acc) if abs(acc) < 10**300 else (np.inf if acc > 0 else -np.inf)


def frac_pairwise(a, b, fmt):
    mb, emin, maxv = int(fmt.mbits), 1 - int(fmt.bias), float(fmt.max)
    v = [Fraction(float(x)) * Fraction(float(y)) for x, y in zip(a, b)]
    if len(v) == 1:
        return float(frac_round(v[0], mb, emin, maxv))
    while len(v) > 1:
        nv = [frac_round(v[2 * t] + v[2 * t + 1], mb, emin, maxv) for t in range(len(v) // 2)]
        if len(v) % 2:
            nv.append(v[-1])
        v = nv
    return float(v[0]) if abs(v[0]) < 10**300 else (np.inf if v[0] > 0 else -np.inf)


# --------------------------------------------------------------------------- parsing


def test_parse_accum_forms():
    assert parse_accum("exact") == Exact()
    assert parse_accum("fp32").name == "fp32" and parse_accum("fp32").chunk is None
    c = parse_accum("fp32_chunk32")
    assert isinstance(c, FloatAccum) and c.chunk == 32 and c.order == "sequential"
    assert parse_accum("fp16_pairwise").order == "pairwise"
    assert parse_accum("bf16_sat").overflow == "saturate"
    assert parse_accum("int32") == IntAccum(32, "wrap")
    assert parse_accum("int16_sat") == IntAccum(16, "saturate")
    assert parse_accum("int24_wrap") == IntAccum(24, "wrap")
    for s in ("exact", "fp16", "fp32_chunk32", "int16_sat", "fp16_pairwise"):
        assert parse_accum(parse_accum(s).name) == parse_accum(s)
    with pytest.raises(ValueError, match="allowed forms"):
        parse_accum("fp99")
    with pytest.raises(ValueError, match="allowed forms"):
        parse_accum("int32_clip")
    with pytest.raises(ValueError):
        parse_accum("mxfp4")  # block formats are not accumulators
    with pytest.raises(ValueError):
        FloatAccum("fp32", order="pairwise", chunk=4)


# --------------------------------------------------------------------------- hand-worked cases

# 2048 + 1 + 1 + 1 + 1: fp16 has 10 stored mantissa bits, so at 2048 = 2^11 its ulp is 2 and
# 2049 is an exact tie between 2048 and 2050 -> ties-to-even keeps 2048 (mantissa 0).
A_SMALL = np.array([[2048.0, 1.0, 1.0, 1.0, 1.0]])
B_ONES = np.ones((5, 1))


def test_fp16_loses_small_terms_exact_does_not():
    assert qmatmul(A_SMALL, B_ONES, "exact")[0, 0] == 2052.0
    assert qmatmul(A_SMALL, B_ONES, QuantConfig("fp16", "fp16", "exact"))[0, 0] == 2052.0
    # sequential fp16: 2048+1 -> 2048 (tie, even), four times
    assert qmatmul(A_SMALL, B_ONES, QuantConfig("fp16", "fp16", "fp16"))[0, 0] == 2048.0
    # fp32 accumulator keeps them
    assert qmatmul(A_SMALL, B_ONES, QuantConfig("fp16", "fp16", "fp32"))[0, 0] == 2052.0


def test_fp16_pairwise_by_hand():
    # level 1: RNE(2048+1)=2048, RNE(1+1)=2, 1 moves up   -> [2048, 2, 1]
    # level 2: RNE(2048+2)=2050, 1 moves up               -> [2050, 1]
    # level 3: RNE(2050+1)=2051 is a tie 2050|2052 -> 2052 (even mantissa 2)
    assert qmatmul(A_SMALL, B_ONES, QuantConfig("fp16", "fp16", "fp16_pairwise"))[0, 0] == 2052.0


def test_fp16_chunked_by_hand():
    # chunk=2: RNE(0+2048+1)=2048; RNE(2048+1+1)=2050; RNE(2050+1)=2051 -> tie -> 2052
    assert qmatmul(A_SMALL, B_ONES, QuantConfig("fp16", "fp16", "fp16_chunk2"))[0, 0] == 2052.0
    # chunk=1 is the plain sequential FMA accumulator
    assert qmatmul(A_SMALL, B_ONES, QuantConfig("fp16", "fp16", "fp16_chunk1"))[0, 0] == 2048.0
    # 1e4 + 8 * 0.5: fp16 ulp at 8192..16384 is 8; each +0.5 is lost sequentially, but one chunk
    # of 8 adds 4 exactly: RNE(10000 + 4) = 10000 + 4 -> tie? 10004 = 1250.5 * 8 -> tie -> even
    a = np.array([[10000.0] + [0.5] * 8])
    b = np.ones((9, 1))
    assert qmatmul(a, b, "fp16")[0, 0] == 10000.0
    assert qmatmul(a, b, "fp16_chunk9")[0, 0] == 10000.0  # 10004 -> 1250.5 ulps -> even 1250
    a2 = np.array([[10000.0] + [0.5] * 10])  # chunk sum 10005 -> 1250.625 ulps -> 1251 -> 10008
    assert qmatmul(a2, np.ones((11, 1)), "fp16_chunk11")[0, 0] == 10008.0
    assert qmatmul(a2, np.ones((11, 1)), "fp16")[0, 0] == 10000.0


def test_no_double_rounding_through_float64():
    # acc = 1 + 2^-10 (fp16, odd last bit); p = 2^-11 - 2^-64 (a float64).
    # float64 sum rounds to 1 + 2^-10 + 2^-11, an fp16 midpoint -> naive RNE gives 1 + 2^-9.
    # The exact sum is BELOW the midpoint: the correct single rounding is 1 + 2^-10.
    p = 2.0**-11 - 2.0**-64
    A = np.array([[1 + 2.0**-10, p]])
    Bt = np.ones((1, 2))
    fp = float_params(resolve("fp16"))
    assert K_.gemm_seq(A, Bt, fp)[0, 0] == 1 + 2.0**-10
    naive = float(np.float16(np.float64(1 + 2.0**-10) + p))
    assert naive == 1 + 2.0**-9  # the pitfall is real
    # same through qmatmul (unquantised operands -> Dekker product path)
    assert qmatmul(A, Bt.T, "fp16")[0, 0] == 1 + 2.0**-10
    # and above the midpoint it rounds up
    A2 = np.array([[1 + 2.0**-10, 2.0**-11 + 2.0**-60]])
    assert K_.gemm_seq(A2, Bt, fp)[0, 0] == 1 + 2.0**-9


def test_int_accumulator_wrap_vs_saturate():
    # int8 x int8 into int16: 3 * 127*127 = 48387 > 32767
    a = np.array([[127.0, 127.0, 127.0, -128.0]])
    b = np.array([[127.0], [127.0], [127.0], [127.0]])
    cfgw = QuantConfig("int8", "int8", "int16")
    cfgs = QuantConfig("int8", "int8", "int16_sat")
    # first three terms only: wrap 48387 - 65536 = -17149; saturate 32767
    assert qmatmul(a[:, :3], b[:3], cfgw)[0, 0] == -17149.0
    assert qmatmul(a[:, :3], b[:3], cfgs)[0, 0] == 32767.0
    # + (-128*127 = -16256): wrap -> -33405 + 65536 = 32131 (= exact sum: wrap recovers it),
    # saturate -> 32767 - 16256 = 16511
    assert qmatmul(a, b, cfgw)[0, 0] == 32131.0
    assert qmatmul(a, b, cfgs)[0, 0] == 16511.0
    assert qmatmul(a, b, QuantConfig("int8", "int8", "int32"))[0, 0] == 32131.0


def test_float_overflow_policy():
    a = np.array([[60000.0, 60000.0]])
    b = np.ones((2, 1))
    assert np.isposinf(qmatmul(a, b, "fp16")[0, 0])
    assert qmatmul(a, b, "fp16_sat")[0, 0] == 65504.0
    # E4M3 accumulator (no Inf): 448 + 32 = 480 overflows -> NaN; 448 + 16 = 464 -> tie -> 448
    assert np.isnan(qmatmul(np.array([[448.0, 32.0]]), b, "fp8_e4m3")[0, 0])
    assert qmatmul(np.array([[448.0, 16.0]]), b, "fp8_e4m3")[0, 0] == 448.0


# --------------------------------------------------------------------------- references


@pytest.mark.parametrize("acc", ["fp16", "bf16"])
def test_seq_vs_ml_dtypes_single_rounding(acc):
    # e4m3 x e4m3 products are multiples of 2^-18 below 2^18; the accumulators stay < 2^26 here,
    # so float64(acc) + p is exact and one ml_dtypes cast is a single rounding.
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 300)) * 8
    b = rng.standard_normal((300, 4)) * 8
    cfg = QuantConfig("fp8_e4m3", "fp8_e4m3", acc)
    got = qmatmul(a, b, cfg)
    qa = qmatmul(a, np.eye(300), QuantConfig(None, "fp8_e4m3", "exact"))
    qb = qmatmul(np.eye(300), b, QuantConfig("fp8_e4m3", None, "exact"))
    dt = np.float16 if acc == "fp16" else ml_dtypes.bfloat16
    ref = np.zeros((3, 4))
    for i in range(3):
        for j in range(4):
            c = dt(0.0)
            for k in range(300):
                c = dt(float(c) + qa[i, k] * qb[k, j])
            ref[i, j] = float(c)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("acc,order,shift", [("fp16", "sequential", 0), ("bf16", "sequential", 0),
                                             ("fp16", "pairwise", 0), ("fp8_e5m2", "sequential", -6)])
def test_vs_fraction_reference_wide_exponents(acc, order, shift):
    # e5m2 operands with a wide exponent spread: products below fp16's subnormal range and huge
    # exponent gaps, where rounding float64 sums would double-round.
    rng = np.random.default_rng(7)
    K = 200
    a = rng.standard_normal((2, K)) * np.exp2(rng.integers(-14, 12, (2, K)) + shift)
    b = rng.standard_normal((K, 2)) * np.exp2(rng.integers(-14, 4, (K, 2)))
    e5 = "fp8_e5m2"
    qa = qmatmul(a, np.eye(K), QuantConfig(None, e5, "exact"))
    qb = qmatmul(np.eye(K), b, QuantConfig(e5, None, "exact"))
    fmt = resolve(acc)
    cfg = QuantConfig(e5, e5, FloatAccum(acc, order=order))
    got = qmatmul(a, b, cfg)
    ref_fn = frac_seq if order == "sequential" else frac_pairwise
    for i in range(2):
        for j in range(2):
            r = ref_fn(qa[i], qb[:, j], fmt)
            if np.isinf(r):
                assert got[i, j] == r
            else:
                assert got[i, j] == r, (i, j, got[i, j], r)


def test_chunk_vs_fraction_reference():
    rng = np.random.default_rng(3)
    K = 100
    a = rng.standard_normal((1, K)) * np.exp2(rng.integers(-20, 10, (1, K)))
    b = rng.standard_normal((K, 1))
    qa = qmatmul(a, np.eye(K), QuantConfig(None, "bf16", "exact"))
    qb = qmatmul(np.eye(K), b, QuantConfig("bf16", None, "exact"))
    fmt = resolve("fp16")
    mb, emin, maxv = int(fmt.mbits), 1 - int(fmt.bias), float(fmt.max)
    for chunk in (1, 4, 32):
        acc = Fraction(0)
        for k0 in range(0, K, chunk):
            s = sum((Fraction(float(qa[0, k])) * Fraction(float(qb[k, 0]))
                     for k in range(k0, min(k0 + chunk, K))), Fraction(0))
            acc = frac_round(acc + s, mb, emin, maxv)
        got = qmatmul(a, b, QuantConfig("bf16", "bf16", f"fp16_chunk{chunk}"))[0, 0]
        assert got == float(acc), chunk


def test_exact_equals_float64_matmul_on_representable_inputs():
    # e4m3 products are multiples of 2^-18 below 2^18; 64-term sums fit 53 bits -> BLAS exact
    rng = np.random.default_rng(2)
    a = rng.standard_normal((7, 64)) * 10
    b = rng.standard_normal((64, 5)) * 10
    cfg = QuantConfig("fp8_e4m3", "fp8_e4m3", "exact")
    qa = qmatmul(a, np.eye(64), QuantConfig(None, "fp8_e4m3", "exact"))
    qb = qmatmul(np.eye(64), b, QuantConfig("fp8_e4m3", None, "exact"))
    np.testing.assert_array_equal(qmatmul(a, b, cfg), qa @ qb)
    # small integers
    ai = rng.integers(-100, 100, (4, 33)).astype(float)
    bi = rng.integers(-100, 100, (33, 6)).astype(float)
    np.testing.assert_array_equal(qmatmul(ai, bi, "exact"), ai @ bi)


def test_exact_is_correctly_rounded_fsum():
    import math

    rng = np.random.default_rng(5)
    a = rng.standard_normal((3, 50)) * np.exp2(rng.integers(-60, 60, (3, 50)))
    a[0, :4] = [1e16, 1.0, -1e16, 2.0**-40]  # cancellation
    b = rng.standard_normal((50, 2))
    got = qmatmul(a, b, "exact")
    for i in range(3):
        for j in range(2):
            exact = sum((Fraction(float(a[i, k])) * Fraction(float(b[k, j])) for k in range(50)),
                        Fraction(0))
            assert got[i, j] == float(exact)  # Fraction -> float is correctly rounded
    assert math.isfinite(got[0, 0])


def test_results_independent_of_threads():
    import numba

    rng = np.random.default_rng(9)
    a = rng.standard_normal((9, 70))
    b = rng.standard_normal((70, 11))
    r1 = qmatmul(a, b, "bf16")
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        r2 = qmatmul(a, b, "bf16")
    finally:
        numba.set_num_threads(old)
    np.testing.assert_array_equal(r1, r2)


@pytest.mark.parametrize("name", ["fp16", "bf16", "fp32", "fp8_e4m3", "fp8_e5m2", "fp6_e3m2"])
def test_single_add_rounding_vs_fraction(name):
    """One rounded add RNE(x + y) (pairwise tree with K = 2) on crafted near-tie sums whose
    float64 sum is inexact, against exact rational rounding."""
    fmt = resolve(name)
    mb, emin, maxv = int(fmt.mbits), 1 - int(fmt.bias), float(fmt.max)
    rng = np.random.default_rng(12)
    n = 400
    x = rng.standard_normal(n) * np.exp2(rng.integers(emin - 2, 4, n))
    x = qmatmul(x[None], np.eye(n), QuantConfig(None, name, "exact"))[0]  # values of the format
    q = np.exp2(np.floor(np.log2(np.maximum(np.abs(x), 2.0**emin))) - mb)  # quantum at x
    half = q / 2 * rng.choice([-1, 1], n) * rng.integers(1, 4, n)  # ties at 1/2, 1, 3/2 ulps
    tiny = np.exp2(np.floor(np.log2(np.abs(x) + 2.0**emin)) - rng.integers(54, 80, n))
    y = half + tiny * rng.choice([-1, 0, 1], n)
    A = np.stack([x, y], axis=1)
    got = K_.gemm_pairwise(np.ascontiguousarray(A), np.ones((1, 2)), float_params(fmt))[:, 0]
    for i in range(n):
        ex = Fraction(float(x[i])) + Fraction(float(y[i]))
        r = frac_round(ex, mb, emin, maxv)
        if abs(r) > Fraction(maxv):
            assert not np.isfinite(got[i])
        else:
            assert got[i] == float(r), (i, x[i], y[i], got[i], float(r))
