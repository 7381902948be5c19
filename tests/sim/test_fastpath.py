"""The GEMM engine's fast paths against the reference kernels, bit for bit.

Every fast path of lowbit.sim.fastpath must return exactly what the reference kernels of
lowbit.sim.accum_kernels return (same values, same signs of zero, NaN where NaN), on the
adversarial cases of the accumulator tests (ties, cancellation, overflow, subnormal results,
wide exponent spreads) and on random GEMMs.  Each case also asserts WHICH path ran, so a fast
path that silently stops applying fails here.
"""

import math
from dataclasses import replace

import numba
import numpy as np
import pytest
from fastpath_check import fast_vs_reference, same, wide
from numba import njit

import lowbit.formats as lf
from lowbit.formats.accum import FloatAccum, parse_accum
from lowbit.sim import exactness, fastpath
from lowbit.sim import fast_kernels as FK
from lowbit.sim.accum_round import float_params, round_fmt, two_sum
from lowbit.sim.engine import _use_block, gemm_nt, gemm_path, reference_gemm
from lowbit.sim.gemm import qmatmul
from lowbit.sim.operands import (
    all_finite,
    element_operand,
    grid_stats,
    prepare,
    prepare_prequantized,
)
from lowbit.sim.qconfig import QuantConfig

# --------------------------------------------------------------------------- round_vec


@njit
def _both(s, r, fp, vp):
    a = np.empty(s.size)
    b = np.empty(s.size)
    for i in range(s.size):
        a[i] = round_fmt(s[i], r[i], fp)
        b[i] = FK.round_vec(s[i], r[i], vp)
    return a, b


@njit
def _sums(x, y):
    s = np.empty(x.size)
    r = np.empty(x.size)
    for i in range(x.size):
        s[i], r[i] = two_sum(x[i], y[i])
    return s, r


NO_SUBNORMAL_E4M3 = lf.FloatFormat(4, 3, subnormals=False, name="e4m3_nosub")  # flush to zero


@pytest.mark.parametrize("fmt", ["fp16", "bf16", "fp32", "fp8_e4m3", "fp8_e5m2", "fp6_e3m2",
                                 "tf32", NO_SUBNORMAL_E4M3])
@pytest.mark.parametrize("overflow", ["ieee", "saturate"])
def test_round_vec_equals_round_fmt(fmt, overflow):
    """The branch-free rounding equals the reference rounding on near-ties (inexact float64
    sums on both sides of target midpoints), the overflow threshold, the subnormal / flush
    boundary, zeros of both signs, Inf, NaN and float64 values near 2**1023."""
    f = lf.resolve(fmt)
    fp = float_params(f, overflow)
    vp = FK.vec_params(fp)
    rng = np.random.default_rng(0)
    n = 20000
    emin, mb = fp.emin, fp.mbits
    e = rng.integers(emin - mb - 3, fp.emax + 3, n)
    x = np.ldexp(rng.integers(1, 2 ** (mb + 1), n).astype(float), e - mb)  # format grid-ish
    q = np.exp2(np.maximum(e, emin) - mb)
    y = q / 2 * rng.integers(-3, 4, n) + np.ldexp(rng.choice([-1.0, 0.0, 1.0], n),
                                                  e - rng.integers(54, 90, n))
    x *= rng.choice([-1.0, 1.0], n)
    s, r = _sums(x, y)
    mid = fp.maxv + 2.0 ** (fp.emax - mb) / 2
    extra_s = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, mid, -mid, np.nextafter(mid, 0),
                        np.nextafter(mid, np.inf), fp.maxv, 2.0**1000, -(2.0**1023),
                        fp.minnorm, fp.minnorm / 2, -fp.minnorm / 2, 5e-324, 2.0 ** (emin - mb - 1)])
    for r0 in (0.0, 1e-300, -1e-300):
        s = np.concatenate([s, extra_s])
        r = np.concatenate([r, np.where(np.isfinite(extra_s) & (extra_s != 0), r0, 0.0)])
    a, b = _both(s, r, fp, vp)
    same(b, a)


# --------------------------------------------------------------------------- element paths


A_TIES = np.array([[2048.0, 1.0, 1.0, 1.0, 1.0], [10000.0] + [0.5] * 4, [60000.0, 60000.0, -60000.0,
                                                                      1.0, 2.0**-24]])


@pytest.mark.parametrize("acc", ["fp16", "bf16", "fp32", "fp8_e4m3", "fp16_sat", "fp8_e5m2",
                                 FloatAccum(NO_SUBNORMAL_E4M3)])
def test_seq_path_adversarial(acc):
    rng = np.random.default_rng(1)
    for x, w in [(A_TIES, np.ones((3, 5))),
                 (wide(rng, (5, 64), -30, 8), wide(rng, (7, 64), -20, 4)),
                 (np.vstack([wide(rng, (4, 40), -8, 15), np.full((1, 40), 448.0)]),
                  np.abs(wide(rng, (9, 40), -3, 3)))]:
        A = prepare(x, "fp16")
        W = prepare(w, "fp16")
        fast_vs_reference(A, W, acc, "seq")


def test_seq_path_wide_spread_e5m2_operands():
    rng = np.random.default_rng(7)
    A = prepare(wide(rng, (6, 200), -14, 12), "fp8_e5m2")
    W = prepare(wide(rng, (5, 200), -14, 4), "fp8_e5m2")
    for acc in ("fp16", "bf16", "fp16_sat", "fp8_e4m3"):
        fast_vs_reference(A, W, acc, "seq")


def test_seq_path_on_unquantised_but_exact_products():
    """float64 operands whose data have few significant bits: the data prove the products
    exact, so the fast kernel equals the reference's Dekker-pair kernel."""
    rng = np.random.default_rng(3)
    A = element_operand(rng.integers(-1000, 1000, (5, 90)) * 2.0**-7)
    W = element_operand(rng.integers(-1000, 1000, (6, 90)) * 2.0**3)
    fast_vs_reference(A, W, "fp16", "seq")
    # a 53-bit operand: products not provably exact -> reference
    B = element_operand(rng.standard_normal((6, 90)))
    assert gemm_path(A, B, "fp16") == "reference-element"


@pytest.mark.parametrize("K", [1, 2, 3, 5, 7, 8, 13, 31, 32, 33, 64, 70])
def test_pairwise_tree_matches_levelwise_reference(K):
    rng = np.random.default_rng(K)
    x = wide(rng, (3, K), -16, 14)
    x[0, :min(K, 5)] = [2048.0, 1.0, 1.0, 1.0, 1.0][:min(K, 5)]
    A = prepare(x, "fp16")
    W = prepare(wide(rng, (17, K), -10, 3), "fp16")
    for acc in ("fp16_pairwise", "bf16_pairwise", "fp8_e4m3_pairwise"):
        fast_vs_reference(A, W, acc, "pairwise")


def test_exact_blas_and_chunked_blas():
    rng = np.random.default_rng(2)
    A = prepare(wide(rng, (7, 300), -6, 6), "fp8_e4m3")
    W = prepare(wide(rng, (5, 300), -6, 6), "fp8_e4m3")
    fast_vs_reference(A, W, "exact", "blas")
    # 26-bit integers: a product fits 53 bits, a sum of 64 does not -> K chunks + exact pairs
    xa = rng.integers(-2**26, 2**26, (6, 64)).astype(float)
    xw = rng.integers(-2**26, 2**26, (4, 64)).astype(float)
    xa[0] = 2.0**26 - 1
    xw[0] = 2.0**26 - 1  # a row pair whose exact sum needs 58 bits
    xa[1, :2] = [2.0**26, -(2.0**26)]  # cancellation
    A2, W2 = element_operand(xa), element_operand(xw)
    got = fast_vs_reference(A2, W2, "exact", "blas-chunked")
    assert got[0, 0] == float(64 * (2**26 - 1) ** 2)  # correctly rounded exact value
    # a single product of > 53 bits: exact slices of one operand
    A3 = element_operand(rng.integers(-2**40, 2**40, (2, 8)).astype(float))
    fast_vs_reference(A3, A3, "exact", "blas-split")
    # ... unless the slices would need more than 53 bits each: reference
    A4 = element_operand(rng.integers(-2**52, 2**52, (2, 8)).astype(float))
    assert gemm_path(A4, A4, "exact") == "reference-element"


def test_exact_split_into_slices():
    """Exact model with products wider than 53 bits (FP32-valued activations spanning
    2**-12 .. 2**8 times FP32-scaled INT4 weights): exact slices of the wider operand, each
    times the other by BLAS, added as an exact pair; bit-equal to the reference with
    cancellation and signed zeros, for slices of either operand; a range beyond four slices
    (FP32 subnormals next to 2**8) takes the reference."""
    rng = np.random.default_rng(34)
    x = wide(rng, (6, 200), -12, 8).astype(np.float32).astype(float)
    x[0, :4] = [2.0**8, 2.0**-12, -(2.0**8), 3.0]  # cancellation around a tiny term
    x[1] = -0.0
    A = element_operand(x)
    w = wide(rng, (5, 200), -6, 3)
    w[0, :4] = [1.0, 1.0, 1.0, 0.0]
    W = prepare(w, "int4_g128")
    assert exactness.exact_gemm_plan(A.value_stats, W.value_stats, 200) is None
    got = fast_vs_reference(A, W, "exact", "blas-split")
    assert got[1, 0] == 0.0 and not np.signbit(got[1, 0])
    fast_vs_reference(W, A, "exact", "blas-split")
    x[2, 5] = 2.0**-149
    assert gemm_path(element_operand(x), W, "exact") == "reference-element"


def test_int_register_blas_only_when_it_cannot_overflow():
    rng = np.random.default_rng(4)
    x = rng.integers(-128, 128, (5, 300)).astype(float)
    w = rng.integers(-128, 128, (6, 300)).astype(float)
    A, W = prepare(x, "int8"), prepare(w, "int8")
    fast_vs_reference(A, W, "int32", "blas-int")
    fast_vs_reference(A, W, "int32_sat", "blas-int")
    # int16 register: 300 * 128 * 128 can overflow -> the reference register (wraps here)
    assert gemm_path(A, W, "int16") == "reference-element"
    # the bound uses the data: two products of -128 * -128 = 32768 > 32767 may overflow ...
    m = np.full((2, 2), -128.0)
    assert gemm_path(prepare(m, "int8"), prepare(m, "int8"), "int16") == "reference-element"
    same(qmatmul(m, m.T, QuantConfig("int8", "int8", "int16"))[0, 0], -32768.0)  # it wraps
    # ... while 2 * 127 * 127 = 32258 cannot
    p = np.full((2, 2), 127.0)
    got = fast_vs_reference(prepare(p, "int8"), prepare(-p, "int8"), "int16", "blas-int")
    assert got[0, 0] == -32258.0
    # fp8 values on their fixed-point grid in an integer register
    Af = prepare(wide(rng, (3, 16), -3, 3), "fp8_e4m3")
    fast_vs_reference(Af, Af, "int48", "blas-int")


def test_chunked_float_accumulator():
    rng = np.random.default_rng(5)
    A = prepare(wide(rng, (6, 100), -6, 6), "fp8_e4m3")
    W = prepare(wide(rng, (9, 100), -6, 6), "fp8_e4m3")
    for acc in ("fp16_chunk4", "fp32_chunk32", "bf16_chunk7", "fp16_chunk100", "fp16_chunk1"):
        fast_vs_reference(A, W, acc, "blas-chunk-round")
    a = np.array([[10000.0] + [0.5] * 10])  # the hand-worked chunk tie of test_accum
    fast_vs_reference(prepare(a, "fp16"), prepare(np.ones((1, 11)), "fp16"), "fp16_chunk11",
                      "blas-chunk-round")


# --------------------------------------------------------------------------- random GEMMs


@pytest.mark.parametrize("seed", range(3))
def test_random_gemms_every_model(seed):
    rng = np.random.default_rng(100 + seed)
    N, K, M = rng.integers(1, 40), rng.integers(1, 200), rng.integers(1, 40)
    x = rng.standard_normal((N, K)) * 3
    w = rng.standard_normal((M, K))
    for fa, fw, acc in [("fp16", "fp16", "fp16"), ("bf16", "fp8_e4m3", "bf16"),
                        ("fp8_e5m2", "fp8_e5m2", "fp16_pairwise"), ("fp8_e4m3", "fp8_e4m3", "exact"),
                        ("int8", "int8", "int32"), ("fp8_e4m3", "fp6_e2m3", "fp32_chunk16"),
                        ("mxfp4", "mxfp4", "fp32"), ("nvfp4", "nvfp4", "exact"),
                        ("int8_pc", "int8_pt", "int32")]:
        A, W = prepare(x, fa), prepare(w, fw)
        acc_m = parse_accum(acc)
        assert not gemm_path(A, W, acc_m).startswith("reference"), (fa, fw, acc)
        ref = reference_gemm(A, W, acc_m, _use_block(A, W, acc_m, "auto"))
        same(gemm_nt(A, W, acc_m), ref)


def test_results_independent_of_thread_count():
    rng = np.random.default_rng(21)
    A = prepare(rng.standard_normal((33, 150)), "fp16")
    W = prepare(rng.standard_normal((300, 150)), "fp16")
    B = prepare(rng.standard_normal((33, 128)), "mxfp4")
    C = prepare(rng.standard_normal((600, 128)), "mxfp4")
    r = [gemm_nt(A, W, "bf16"), gemm_nt(A, W, "fp16_pairwise"), gemm_nt(B, C, "fp32")]
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        r1 = [gemm_nt(A, W, "bf16"), gemm_nt(A, W, "fp16_pairwise"), gemm_nt(B, C, "fp32")]
    finally:
        numba.set_num_threads(old)
    for a, b in zip(r, r1):
        same(a, b)


def test_slow_switch_forces_reference(monkeypatch):
    rng = np.random.default_rng(22)
    A = prepare(rng.standard_normal((4, 64)), "mxfp4")
    fast = qmatmul(rng.standard_normal((4, 64)), np.ones((64, 3)), QuantConfig("mxfp4", "mxfp4",
                                                                                "fp32"))
    assert gemm_path(A, A, "fp32") == "blas-block-round"
    monkeypatch.setenv(fastpath.SLOW_GEMM_ENV, "1")
    assert fastpath.slow_forced()
    assert gemm_path(A, A, "fp32") == "reference-block"
    monkeypatch.setenv(fastpath.SLOW_GEMM_ENV, "0")
    assert gemm_path(A, A, "fp32") == "blas-block-round"
    assert fast.shape == (4, 3)


# --------------------------------------------------------------------------- data statistics


def test_scale_stats_are_the_stats_of_the_live_scales():
    """``Operand.scale_stats`` (one fused pass) equals ``grid_stats`` of the scales with those
    of all-zero blocks set to 0, ``finite`` over every scale: NaN / Inf scales of live and
    dead blocks, NaN elements (live), -0.0 blocks (dead), subnormal and huge scales."""
    rng = np.random.default_rng(3)
    for trial in range(40):
        R, nb, bs = rng.integers(1, 6), rng.integers(1, 9), int(rng.choice([1, 4, 16, 32]))
        P = rng.choice([0.0, -0.0, 0.5, -3.0, np.nan], (R, nb * bs),
                       p=[0.5, 0.2, 0.1, 0.1, 0.1] if trial % 2 else [0.9, 0.1, 0, 0, 0])
        S = np.exp2(rng.integers(-1074, 1023, (R, nb)).astype(float))
        S *= rng.choice([1.0, 3.0, -1.0], (R, nb))
        S[rng.random((R, nb)) < 0.1] = np.nan
        S[rng.random((R, nb)) < 0.1] = np.inf
        S[rng.random((R, nb)) < 0.1] = 0.0
        op = replace(prepare(np.ones((R, 64)), "nvfp4"), elements=P, scales=S,
                     block_len=bs)
        live = np.where((P.reshape(R, nb, bs) != 0).any(axis=2), S, 0.0)
        assert op.scale_stats == grid_stats(live)._replace(finite=bool(np.isfinite(S).all()))


def test_grid_stats_by_hand():
    v = np.array([[0.75, -3.0, 0.0], [2.0**-1074, 6.0, -0.0]])
    st = grid_stats(v)
    assert st.finite and st.amax == 6.0
    assert st.lsb == -1074  # the float64 subnormal
    assert st.l1max == 6.0 and st.sig_bits == 2  # row sums 3.75 and 6; 0.75 = 0b0.11, 3 = 0b11
    st = grid_stats(np.array([[1.0 + 2.0**-52, np.nan]]))
    assert not st.finite and st.sig_bits == 53 and st.lsb == -52
    assert grid_stats(np.zeros((2, 3))).amax == 0.0
    assert exactness.exact_gemm_plan(grid_stats(np.ones((1, 4))), grid_stats(np.ones((1, 4))), 4) == 4
    assert math.isfinite(grid_stats(np.array([[2.0**1023]])).amax)


def test_seq_round_checks_dropped_only_when_sums_are_bounded():
    """The per-add kernels drop the overflow / Inf-NaN checks when the data bound every sum
    below the overflow threshold; results equal the reference either way."""
    rng = np.random.default_rng(16)
    A = prepare(rng.standard_normal((9, 300)), "fp16")
    W = prepare(rng.standard_normal((11, 300)), "fp16")
    fp = float_params(lf.resolve("fp32"))
    assert exactness.sums_bounded(A.value_stats, W.value_stats, 300, fp, FK.vec_params(fp).thr)
    fp16 = float_params(lf.resolve("fp16"))
    big = prepare(np.full((2, 300), 200.0), "fp16")  # 300 * 200 * 200 > 65504: may overflow
    assert not exactness.sums_bounded(big.value_stats, big.value_stats, 300, fp16,
                                      FK.vec_params(fp16).thr)
    for acc in ("fp32", "bf16", "fp16_pairwise", "fp32_pairwise"):
        fast_vs_reference(A, W, acc, "pairwise" if "pairwise" in acc else "seq")
    for acc in ("fp16", "fp16_sat", "fp16_pairwise"):
        got = fast_vs_reference(big, big, acc, "pairwise" if "pairwise" in acc else "seq")
        assert not np.all(np.isfinite(got)) or acc.endswith("sat")


# --------------------------------------------------------------------------- format bounds


@pytest.mark.parametrize("fmt,amax,lsb,sig", [("int8", 128.0, 0, 8), ("fp8_e4m3", 448.0, -9, 4),
                                              ("fp8_e5m2", 57344.0, -16, 3),
                                              ("mxfp4", 6.0, -1, 2), ("nvfp4", 6.0, -1, 2),
                                              ("int4_g128", 7.0, 0, 3)])
def test_element_bounds_by_hand_and_valid_for_the_data(fmt, amax, lsb, sig):
    """The format's bounds (what the BLAS paths try first) are the format's grid and range,
    and bound the data's own statistics (ordinary, huge, tiny and zero inputs)."""
    rng = np.random.default_rng(30)
    x = wide(rng, (6, 256), -40, 40)
    x[1] = 0.0
    op = prepare(x, fmt)
    b, d = op.element_bounds, op.element_stats
    assert (b.amax, b.lsb, b.sig_bits, b.l1max) == (amax, lsb, sig, 256 * amax)
    assert b.finite and d.finite
    assert d.amax <= b.amax and d.lsb >= b.lsb and d.sig_bits <= b.sig_bits
    assert d.l1max <= b.l1max
    assert (op.value_bounds is None) == op.is_block
    # no bounds without a grid: float64 values, the element view of a block operand
    assert prepare(x, None).element_bounds is None
    if op.is_block:
        assert op.element_view().element_bounds is None


def test_all_finite_and_nan_elements_take_the_reference():
    for bad in (np.nan, np.inf, -np.inf):
        v = np.zeros((3, 5))
        v[2, 4] = bad
        assert not all_finite(v)
    assert all_finite(np.array([[5e-324, -0.0, 1.7976931348623157e308]]))
    assert all_finite(np.zeros((0, 3)))
    x = np.ones((2, 64))
    x[1, 3] = np.nan  # a NaN input stays NaN through fp8_e4m3 / int8 quantisation
    for fmt, acc, path in [("fp8_e4m3", "exact", "reference-element"),
                           ("mxfp8_e4m3", "fp32", "reference-block")]:
        A = prepare(x, fmt)
        assert not (A.element_bounds.finite and A.scale_stats.finite)  # MX: a NaN scale
        assert gemm_path(A, A, acc) == path


def test_bounds_fail_but_data_prove():
    """fp16 operands: the format's range (2**-24 .. 65504) proves nothing for an exact K=300
    sum, the data (small integers) do; and a block format whose element range is too wide for
    the plain block term (MXFP8-E5M2) still takes the exact-term path on ordinary data."""
    rng = np.random.default_rng(31)
    A = prepare(rng.integers(-50, 50, (4, 300)).astype(float), "fp16")
    W = prepare(rng.integers(-50, 50, (5, 300)).astype(float), "fp16")
    assert exactness.exact_gemm_plan(A.value_bounds, W.value_bounds, 300) is None
    fast_vs_reference(A, W, "exact", "blas")
    y = rng.standard_normal((4, 256))
    E, F = prepare(y, "mxfp8_e5m2"), prepare(y[::-1], "mxfp8_e5m2")
    assert not exactness.block_terms_exact(E.element_bounds, F.element_bounds, E.scale_stats,
                                           F.scale_stats, 32)
    fast_vs_reference(E, F, "fp32", "blas-block-round")


def test_prequantized_values_must_be_on_the_grid():
    q = prepare(np.linspace(-3, 3, 20).reshape(2, 10), "fp8_e4m3").values
    assert np.array_equal(prepare_prequantized(q, "fp8_e4m3").values, q)
    with pytest.raises(ValueError, match="fp8_e4m3 grid"):
        prepare_prequantized(q + 2.0**-12, "fp8_e4m3")
    with pytest.raises(ValueError, match="int8 grid"):
        prepare_prequantized(np.array([[0.5, 1.0]]), "int8")
