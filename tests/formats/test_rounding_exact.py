"""float64 inputs and the rounding modes ml_dtypes lacks, against an exact fractions.Fraction
reference written in lowbit_formats_ref.ref_round (single rounding, IEEE overflow rules)."""

import zlib

import numpy as np
import pytest
from lowbit_formats_ref import (
    ML_FORMATS,
    SPECS,
    finite_grid,
    first_mismatches,
    mld_codes,
    ref_round,
    ref_round_int,
    same_values,
)

from lowbit.formats import IntFormat, encode, get_format, quantize

SIGNED = [n for n in ML_FORMATS if SPECS[n].signed]
MODES = ["rne", "rna", "rtz", "rup", "rdown", "rto", "rnz", "rno", "rnp", "rnm"]
N_POINTS = 1000


def _sample(s, n=N_POINTS, seed=0):
    """float64 test points: grid values, midpoints and their float64/float32 neighbours,
    quarter points, subnormal region, overflow region, random log-uniform; both signs."""
    rng = np.random.default_rng(seed)
    g = finite_grid(s)
    g = g[g >= 0]
    if g.size > 200:  # bf16/fp16: a sample of the grid, always keeping the ends
        g = np.unique(np.concatenate([g[:40], g[-40:], rng.choice(g, 120, replace=False)]))
    nxt = np.concatenate([g[1:], [s.max + 2.0 ** (s.emax - s.mbits)]])
    step = nxt - g
    pts = [g, g + step / 2, g + step / 4, g + 3 * step / 4]
    mids = g + step / 2
    pts += [np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf),
            np.nextafter(mids.astype(np.float32), np.float32(np.inf)).astype(np.float64),
            np.nextafter(mids.astype(np.float32), np.float32(-np.inf)).astype(np.float64)]
    pts.append(np.array([s.min_subnormal / 2, s.min_subnormal / 3, s.min_subnormal * 1e-3,
                         s.max * 2, s.max * 1e3, 1e300, 5e-324]))
    lo, hi = np.log2(s.min_subnormal) - 2, np.log2(s.max) + 1.5
    pts.append(np.exp2(rng.uniform(lo, hi, 300)))
    x = np.concatenate(pts)
    x = x[np.isfinite(x) & (x > 0)]
    if x.size > n // 2:
        x = rng.choice(x, n // 2, replace=False)
    x = np.concatenate([x, -x, [0.0, -0.0]])
    return x


def _ref(x, s, mode, overflow):
    r = [ref_round(float(v), s, mode, overflow) for v in x]
    undefined = np.array([v is None for v in r])
    return np.array([np.nan if v is None else v for v in r], dtype=np.float64), undefined


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", SIGNED)
def test_float64_all_modes_nonsat(name, mode):
    s = SPECS[name]
    x = _sample(s, seed=zlib.crc32(f"{name}-{mode}".encode()))
    exp, undefined = _ref(x, s, mode, "nonsat")
    x, exp = x[~undefined], exp[~undefined]
    got = quantize(x, name, rounding=mode, overflow="nonsat")
    assert got.dtype == np.float64
    ok = same_values(got, exp)
    assert ok.all(), f"{name} {mode} nonsat: " + first_mismatches(x, got, exp)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", SIGNED)
def test_float64_all_modes_saturate(name, mode):
    s = SPECS[name]
    top = s.max + 2.0 ** (s.emax - s.mbits)
    near = np.array([s.max] + [s.max + (top - s.max) * f for f in (0.1, 0.25, 0.5, 0.75, 0.9)] +
                    [top, 2 * top, 1e300, np.nextafter(s.max, np.inf), s.min_subnormal / 2,
                     1.0 + 2.0 ** -40])
    near = np.concatenate([near, -near])
    exp, _ = _ref(near, s, mode, "saturate")
    got = quantize(near, name, rounding=mode, overflow="saturate")
    ok = same_values(got, exp)
    assert ok.all(), f"{name} {mode} saturate: " + first_mismatches(near, got, exp)


@pytest.mark.parametrize("mode", ["rne", "rna", "rtz", "rup", "rdown", "rnz", "rno"])
def test_e8m0_modes(mode):
    s = SPECS["e8m0"]
    k = np.arange(-127, 127).astype(np.float64)
    p = np.exp2(k)
    x = np.concatenate([p, 1.5 * p, np.nextafter(1.5 * p, np.inf), np.nextafter(1.5 * p, 0),
                        1.25 * p, 1.75 * p, np.nextafter(p, np.inf)])
    exp = np.array([ref_round(float(v), s, mode, "nonsat") for v in x])
    got = quantize(x, "e8m0", rounding=mode, overflow="nonsat")
    ok = same_values(got, exp)
    assert ok.all(), f"e8m0 {mode}: " + first_mismatches(x, got, exp)


def test_directed_overflow_rules_hand():
    x = np.array([1000.0, -1000.0, 449.0, -449.0])
    q = lambda m, f="fp8_e4m3": quantize(x, f, rounding=m, overflow="nonsat")  # noqa: E731
    # E4M3 (no Inf): "to infinity" becomes NaN
    assert same_values(q("rtz"), [448, -448, 448, -448]).all()
    assert same_values(q("rup"), [np.nan, -448, np.nan, -448]).all()
    assert same_values(q("rdown"), [448, np.nan, 448, np.nan]).all()
    assert same_values(q("rne"), [np.nan, np.nan, 448, -448]).all()
    # E5M2 (Inf)
    x = np.array([1e6, -1e6, 57345.0, -57345.0])
    assert same_values(quantize(x, "fp8_e5m2", rounding="rtz", overflow="nonsat"),
                       [57344, -57344, 57344, -57344]).all()
    assert same_values(quantize(x, "fp8_e5m2", rounding="rup", overflow="nonsat"),
                       [np.inf, -57344, np.inf, -57344]).all()
    assert same_values(quantize(x, "fp8_e5m2", rounding="rdown", overflow="nonsat"),
                       [57344, -np.inf, 57344, -np.inf]).all()
    # FP4 (no Inf, no NaN): always saturates
    x = np.array([7.5, -7.5])
    for m in MODES:
        assert same_values(quantize(x, "fp4_e2m1", rounding=m, overflow="nonsat"), [6, -6]).all()


def test_modes_hand_fp4():
    # FP4 grid 0 .5 1 1.5 2 3 4 6
    x = np.array([2.5, -2.5, 0.25, -0.25, 5.0, 2.2, -2.2, 0.1, -0.1, 0.75])
    exp = {
        "rne": [2, -2, 0, -0.0, 4, 2, -2, 0, -0.0, 1],
        "rna": [3, -3, 0.5, -0.5, 6, 2, -2, 0, -0.0, 1],
        "rtz": [2, -2, 0, -0.0, 4, 2, -2, 0, -0.0, 0.5],
        "rup": [3, -2, 0.5, -0.0, 6, 3, -2, 0.5, -0.0, 1],
        "rdown": [2, -3, 0, -0.5, 4, 2, -3, 0, -0.5, 0.5],
        "rto": [3, -3, 0.5, -0.5, 6, 3, -3, 0.5, -0.5, 0.5],
        "rnz": [2, -2, 0, -0.0, 4, 2, -2, 0, -0.0, 0.5],   # ties toward zero
        "rno": [3, -3, 0.5, -0.5, 6, 2, -2, 0, -0.0, 0.5],  # ties to the odd code
        "rnp": [3, -2, 0.5, -0.0, 6, 2, -2, 0, -0.0, 1],    # ties toward +Inf
        "rnm": [2, -3, 0, -0.5, 4, 2, -2, 0, -0.0, 0.5],    # ties toward -Inf
    }
    for m, e in exp.items():
        got = quantize(x, "fp4_e2m1", rounding=m)
        assert same_values(got, e).all(), f"{m}: {first_mismatches(x, got, np.array(e, float))}"


def test_double_rounding_pinned():
    """ml_dtypes rounds float64 via float32 (twice); lowbit rounds once."""
    s = SPECS["fp8_e4m3"]
    x = np.nextafter(1.0625, 2.0)  # just above the midpoint of 1.0 and 1.125
    assert np.float32(x) == np.float32(1.0625)  # float32 lands on the midpoint
    assert mld_codes(np.float32(x), s).item() == 0x38  # ... which ties to even: 1.0 (wrong)
    assert np.asarray(np.array([x]).astype(s.dtype)).view(np.uint8).item() == 0x38
    assert encode(np.array([x]), "fp8_e4m3").tolist() == [0x39]  # correct: 1.125
    assert quantize(np.array([x]), "fp8_e4m3")[0] == 1.125
    # at the overflow boundary: 464 + tiny must overflow (NaN nonsat), ml_dtypes gives 448
    x = 464.0 + 2.0**-40
    assert np.array([x]).astype(s.dtype).astype(np.float64)[0] == 448.0
    assert np.isnan(quantize(np.array([x]), "fp8_e4m3", overflow="nonsat")[0])
    # bf16: 1 + 2^-8 + 2^-40 -> 1 + 2^-7 (ml_dtypes: 1.0)
    x = 1.0 + 2.0**-8 + 2.0**-40
    assert np.array([x]).astype(SPECS["bf16"].dtype).astype(np.float64)[0] == 1.0
    assert quantize(np.array([x]), "bf16")[0] == 1.0 + 2.0**-7


def test_float16_input_gives_float32():
    x = np.array([1.0, 3.3, -100.0], np.float16)
    y = quantize(x, "fp8_e4m3")
    assert y.dtype == np.float32
    assert same_values(y, [1.0, 3.25, -96.0]).all()


INT_CASES = [("int8", -128, 127, 0), ("int4", -8, 7, 0), ("uint4", 0, 15, 0),
             ("uint8", 0, 255, 0), ("int2", -2, 1, 0)]


@pytest.mark.parametrize("mode", ["rne", "rna", "rtz", "rup", "rdown", "rnz", "rno", "rnp", "rnm"])
@pytest.mark.parametrize("name,qmin,qmax,frac", INT_CASES)
def test_int_modes(name, qmin, qmax, frac, mode):
    rng = np.random.default_rng(5)
    half = np.arange(2 * qmin - 4, 2 * qmax + 5) / 2.0  # all ties and integers
    x = np.concatenate([half, np.nextafter(half, np.inf), np.nextafter(half, -np.inf),
                        rng.uniform(qmin - 3, qmax + 3, 300), [1e9, -1e9]])
    exp = np.array([ref_round_int(float(v), qmin, qmax, frac, mode) for v in x])
    got = quantize(x, name, rounding=mode)
    assert np.array_equal(got, exp), f"{name} {mode}: " + first_mismatches(x, got, exp)


@pytest.mark.parametrize("mode", ["rne", "rna", "rtz", "rup", "rdown", "rnz", "rno"])
def test_int_narrow_and_fixed_point_modes(mode):
    rng = np.random.default_rng(6)
    for fmt, qmin, qmax, frac in [(IntFormat(8, narrow=True), -127, 127, 0),
                                  (IntFormat(8, frac_bits=6), -128, 127, 6),
                                  (IntFormat(4, narrow=True), -7, 7, 0)]:
        x = np.concatenate([np.arange(2 * qmin - 4, 2 * qmax + 5) / 2.0 / 2**frac,
                            rng.uniform(-3, 3, 300) * fmt.max])
        exp = np.array([ref_round_int(float(v), qmin, qmax, frac, mode) for v in x])
        got = quantize(x, fmt, rounding=mode)
        assert np.array_equal(got, exp), f"{fmt} {mode}: " + first_mismatches(x, got, exp)


def test_reference_sanity():
    """The Fraction reference reproduces the hand-worked spec cases (so it can fail)."""
    s = SPECS["fp8_e4m3"]
    assert ref_round(464.0, s, "rne", "nonsat") == 448.0
    assert np.isnan(ref_round(465.0, s, "rne", "nonsat"))
    assert ref_round(61440.0, SPECS["fp8_e5m2"], "rne", "nonsat") == np.inf
    assert ref_round(3.0, SPECS["e8m0"], "rne") == 2.0
    assert ref_round(3.0, SPECS["e8m0"], "rna") == 4.0
    assert ref_round(-0.2, SPECS["fp4_e2m1"], "rup") == 0.0
    assert np.signbit(ref_round(-0.2, SPECS["fp4_e2m1"], "rup"))
    assert ref_round(2.2, SPECS["fp4_e2m1"], "rto") == 3.0
    assert get_format("fp4_e2m1").max == 6.0


def test_float64_to_fp16_matches_numpy_single_rounding():
    """numpy's float64 -> float16 cast rounds once; lowbit must agree on every input
    (an independent oracle for the float64 path over many points)."""
    rng = np.random.default_rng(99)
    g = finite_grid(SPECS["fp16"])
    mids = (g[:-1] + g[1:]) / 2
    x = np.concatenate([
        np.exp2(rng.uniform(-27, 17, 200_000)) * rng.choice([-1, 1], 200_000),
        mids, np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf),
    ])
    x = x[np.isfinite(x)]
    with np.errstate(over="ignore"):
        exp = x.astype(np.float16).view(np.uint16)
    got = np.asarray(encode(x, "fp16", overflow="nonsat"))
    bad = np.flatnonzero(got != exp)
    assert bad.size == 0, f"{bad.size} differ, first x={x[bad[0]]!r}: got 0x{got[bad[0]]:04x} " \
        f"numpy 0x{exp[bad[0]]:04x}"
    # the numpy oracle itself is single-rounding (spot check against the Fraction reference)
    for v in x[::4001]:
        assert same_values(np.float16(v), ref_round(float(v), SPECS["fp16"], "rne", "nonsat"))


def test_layouts_scalars_and_empty():
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((30, 17)) * 50).astype(np.float32)
    ref = np.asarray(encode(np.ascontiguousarray(x), "fp8_e4m3"))
    assert np.array_equal(encode(x.T, "fp8_e4m3"), ref.T)            # F-ordered view
    assert np.array_equal(encode(x[::3, 1::2], "fp8_e4m3"), ref[::3, 1::2])  # strided view
    assert np.array_equal(quantize(x[:, ::-1], "fp4_e2m1"), quantize(x, "fp4_e2m1")[:, ::-1])
    z = quantize(np.array(3.3), "fp8_e4m3")
    assert np.shape(z) == () and float(z) == 3.25
    e = encode(np.zeros((0, 4), np.float32), "fp8_e4m3")
    assert np.shape(e) == (0, 4)
    assert quantize(np.zeros((0,), np.float64), "fp4_e2m1").shape == (0,)
    y = quantize(np.array([1.1, 2.2]).reshape(2, 1, 1), "bf16")
    assert y.shape == (2, 1, 1) and y.dtype == np.float64


def test_rounding_aliases():
    """gfloat / pychop spellings name the same modes (``rtz_ties``: ties toward zero)."""
    x = np.array([2.5, -2.5, 0.25, 2.2, -0.1, 5.0])
    for alias, mode in [("rtz_ties", "rnz"), ("ties_to_zero", "rnz"), ("TiesToEven", "rne"),
                        ("nearest_away", "rna"), ("toward_zero", "rtz"), ("to_odd", "rto"),
                        ("toward_negative", "rdown"), ("ties_to_odd", "rno")]:
        assert same_values(quantize(x, "fp4_e2m1", rounding=alias),
                           quantize(x, "fp4_e2m1", rounding=mode)).all(), alias
    with pytest.raises(ValueError, match="rnz"):
        quantize(x, "fp4_e2m1", rounding="ties_to_nowhere")
