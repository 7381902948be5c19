"""Stochastic rounding: reproducibility, unbiasedness, neighbours only, exact values unchanged."""

import math
from fractions import Fraction

import numpy as np
import pytest
from lowbit_formats_ref import SPECS, finite_grid, ref_floor_frac, ref_round, ref_sr_prob, ref_sr_up

from lowbit.formats import IntFormat, encode, get_format, quantize, stochastic_bits

N = 200_000


def _neighbours(x, s):
    lo = ref_round(float(x), s, "rdown")
    hi = ref_round(float(x), s, "rup")
    return lo, hi


def test_same_seed_same_codes_different_seed_differs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(10_000) * 10
    a = encode(x, "fp8_e4m3", rounding="stochastic", seed=123)
    b = encode(x, "fp8_e4m3", rounding="stochastic", seed=123)
    c = encode(x, "fp8_e4m3", rounding="stochastic", seed=124)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # a Generator is accepted too, and two fresh generators with one seed agree
    g1 = encode(x, "fp8_e4m3", rounding="stochastic", seed=np.random.default_rng(9))
    g2 = encode(x, "fp8_e4m3", rounding="stochastic", seed=np.random.default_rng(9))
    assert np.array_equal(g1, g2)


@pytest.mark.parametrize("name,x", [
    ("fp8_e4m3", 1.0 + 0.3 * 0.125),         # p = 0.3 between 1 and 1.125
    ("fp8_e4m3", -(1.0 + 0.3 * 0.125)),
    ("fp8_e5m2", 3.1),
    ("fp4_e2m1", 2.25),                      # p = 0.25 between 2 and 3
    ("fp4_e2m1", -0.1),                      # subnormal region: between -0 and -0.5
    ("fp6_e2m3", 0.07),                      # below min subnormal 0.125
    ("fp8_e4m3", 2.0**-9 * 0.7),             # below min subnormal
    ("bf16", 1.0 + 2.0**-9),
])
def test_mean_converges_and_only_neighbours(name, x):
    s = SPECS[name]
    lo, hi = _neighbours(x, s)
    assert lo != hi
    xs = np.full(N, x, dtype=np.float64)
    y = quantize(xs, name, rounding="stochastic", seed=2024)
    vals = set(np.unique(y).tolist())
    assert vals <= {lo, hi}, f"{name} x={x}: results {vals} not in neighbours {(lo, hi)}"
    assert len(vals) == 2
    step = hi - lo
    p = (x - lo) / step
    sigma = step * np.sqrt(p * (1 - p) / N)
    tol = 6 * sigma + step * 2.0**-20  # + bias from a finite number of random bits
    assert abs(y.mean() - x) <= tol, f"{name} x={x}: mean {y.mean()} tol {tol}"


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp8_e5m2", "fp6_e3m2", "fp4_e2m1", "bf16"])
def test_representable_never_change(name):
    s = SPECS[name]
    g = finite_grid(s)
    g = np.concatenate([g, -g]) if g.size < 1000 else g
    reps = np.tile(g, 20)
    y = quantize(reps, name, rounding="stochastic", seed=7)
    assert np.array_equal(y, reps)


def test_float32_and_float64_same_distribution_source():
    # float32 input: results still neighbours and unbiased
    x = np.float32(1.0 + 0.5 * 0.125)
    y = quantize(np.full(N, x, np.float32), "fp8_e4m3", rounding="stochastic", seed=1)
    assert y.dtype == np.float32
    assert set(np.unique(y).tolist()) == {1.0, 1.125}
    assert abs(y.astype(np.float64).mean() - float(x)) <= 6 * 0.125 * np.sqrt(0.25 / N)


def test_sr_bits_limits_resolution():
    # with sr_bits=1 only the half-ulp bit is seen: p=0.3 rounds up half the time... exactly
    # when the random bit plus the (truncated) fraction 0.3 -> 0 or 1 bit of fraction
    x = np.full(N, 1.0 + 0.75 * 0.125)
    y = quantize(x, "fp8_e4m3", rounding="stochastic", seed=3, sr_bits=1)
    # 0.75 truncated to 1 bit is 0.5 -> P(up) = 0.5
    frac_up = (y == 1.125).mean()
    assert abs(frac_up - 0.5) < 6 * np.sqrt(0.25 / N)
    y = quantize(x, "fp8_e4m3", rounding="stochastic", seed=3, sr_bits=2)
    frac_up = (y == 1.125).mean()
    assert abs(frac_up - 0.75) < 6 * np.sqrt(0.75 * 0.25 / N)


@pytest.mark.numba_parallel
def test_stochastic_independent_of_thread_count():
    """Same seed -> same codes whatever numba's thread count (no per-thread RNG streams)."""
    import numba
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1 << 18).astype(np.float32)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = encode(x, "fp8_e4m3", rounding="stochastic", seed=5)
        qa = quantize(x, "mxfp4", rounding="stochastic", seed=5)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        b = encode(x, "fp8_e4m3", rounding="stochastic", seed=5)
        qb = quantize(x, "mxfp4", rounding="stochastic", seed=5)
    finally:
        numba.set_num_threads(before)
    assert np.array_equal(a, b) and np.array_equal(qa, qb)


# ---------------------------------------------------------------- the other stochastic modes
SR_MODES = ["stochastic", "stochastic_fast", "stochastic_rne", "stochastic_rno", "sr_half"]


@pytest.mark.parametrize("mode", SR_MODES)
@pytest.mark.parametrize("name,sr_bits", [("fp8_e4m3", 3), ("fp8_e5m2", 2), ("fp4_e2m1", 4),
                                          ("bf16", 5), ("int8", 3), ("fp6_e3m2", 12)])
def test_stochastic_decisions_exact(name, mode, sr_bits):
    """Every element's up/down decision against the exact Fraction definition, fed the documented
    random stream (element i uses stochastic_bits(seed, n, sr_bits)[i])."""
    fmt = get_format(name)
    rng = np.random.default_rng(11)
    if isinstance(fmt, IntFormat):
        x = np.concatenate([np.arange(-60, 60) / 8.0, rng.uniform(-50, 50, 300)])
    else:
        s = SPECS[name]
        g = finite_grid(s)
        g = g[(g > 0) & (g < s.max)]
        g = rng.choice(g, min(g.size, 60), replace=False)
        fr = np.array([0, 1, 2, 3, 4, 5, 6, 7]) / 8.0
        x = np.concatenate([(g[:, None] * (1 + fr * 2.0**-s.mbits)).ravel(),
                            rng.uniform(0, s.max, 200)])
        x = np.concatenate([x, -x])
    x = np.repeat(x, 4)
    r = stochastic_bits(5, x.size, sr_bits)
    got = quantize(x, fmt, rounding=mode, seed=5, sr_bits=sr_bits)
    for i in range(x.size):
        if isinstance(fmt, IntFormat):  # grid step 1: magnitude floor and its fraction
            a = abs(Fraction(float(x[i])))
            low, q = Fraction(math.floor(a)), Fraction(1)
            frac = a - low
        else:
            low, q, frac = ref_floor_frac(float(x[i]), SPECS[name])
        mag = low + q if ref_sr_up(frac, int(r[i]), mode, sr_bits) else low
        exp = float(-mag if x[i] < 0 else mag)
        assert abs(got[i]) == abs(exp) or (abs(exp) > fmt.max and abs(got[i]) == fmt.max), \
            f"{name} {mode}: x={x[i]!r} r={r[i]} got {got[i]!r} expected {exp!r}"


@pytest.mark.parametrize("mode", SR_MODES)
@pytest.mark.parametrize("x,sr_bits", [(1.0 + 0.3 * 0.125, 32), (1.0 + 0.3 * 0.125, 3),
                                       (-(1.0 + 0.5 * 0.125), 2), (1.0 + 0.625 * 0.125, 3),
                                       (2.0**-9 * 0.7, 4)])
def test_stochastic_distribution(mode, x, sr_bits):
    """Frequency of rounding up against the exact probability each definition gives for this
    fraction and sr_bits (6-sigma binomial bound), neighbours only, exact values unchanged."""
    s = SPECS["fp8_e4m3"]
    low, q, frac = ref_floor_frac(x, s)
    p = float(ref_sr_prob(frac, mode, sr_bits))
    y = quantize(np.full(N, x), "fp8_e4m3", rounding=mode, seed=2025, sr_bits=sr_bits)
    lo, hi = float(low), float(low + q)
    mags = np.abs(y)
    assert set(np.unique(mags).tolist()) <= {lo, hi}
    freq = (mags == hi).mean()
    assert abs(freq - p) <= 6 * np.sqrt(max(p * (1 - p), 1e-12) / N), (mode, freq, p)
    g = finite_grid(s)
    assert np.array_equal(quantize(np.tile(g, 3), "fp8_e4m3", rounding=mode, seed=1), np.tile(g, 3))


def test_stochastic_probabilities_hand():
    """Hand-worked probabilities of rounding up with 3 random bits r in 0..7.
    Fraction 0.3: stochastic floor(2.4) + r >= 8 -> r >= 6: 2/8; stochastic_fast
    floor(4.8) + 2r + 1 >= 16 -> r >= 6: 2/8; stochastic_rne RNE(2.4) = 2: 2/8; sr_half 1/2.
    Fraction 5/16 (2.5/8, a tie): stochastic 2/8; stochastic_fast 5 + 2r + 1 >= 16 -> r >= 5:
    3/8; stochastic_rne RNE(2.5) = 2: 2/8; stochastic_rno RNO(2.5) = 3: 3/8."""
    f = Fraction(3, 10)
    assert ref_sr_prob(f, "stochastic", 3) == Fraction(2, 8)
    assert ref_sr_prob(f, "stochastic_fast", 3) == Fraction(2, 8)
    assert ref_sr_prob(f, "stochastic_rne", 3) == Fraction(2, 8)
    assert ref_sr_prob(f, "sr_half", 3) == Fraction(1, 2)
    f = Fraction(5, 16)
    assert ref_sr_prob(f, "stochastic", 3) == Fraction(2, 8)
    assert ref_sr_prob(f, "stochastic_fast", 3) == Fraction(3, 8)
    assert ref_sr_prob(f, "stochastic_rne", 3) == Fraction(2, 8)
    assert ref_sr_prob(f, "stochastic_rno", 3) == Fraction(3, 8)
