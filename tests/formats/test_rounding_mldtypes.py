"""RNE + overflow="nonsat" against ml_dtypes' float32 casts, code for code.

Inputs: every midpoint between neighbouring representable values, the float32 neighbours of each
midpoint, the overflow boundary, subnormals, +-0, +-Inf, NaN, all 65536 float16 values, 10^6 random
float32 bit patterns and 10^6 log-uniform magnitudes around the format's range.
E8M0 is compared with rounding="rna" (ml_dtypes rounds E8M0 ties up).
"""

import ml_dtypes
import numpy as np
import pytest
from lowbit_formats_ref import ML_FORMATS, SPECS, codes_match, finite_grid, mld_codes

from lowbit.formats import decode, encode, quantize

SIGNED = [n for n in ML_FORMATS if SPECS[n].signed]
N_RANDOM = 1_000_000


def _mode(s):
    return "rne" if s.signed else "rna"


def _filter(x, s):
    """Drop inputs where the comparison is a policy question, not a rounding question."""
    x = np.asarray(x, np.float32)
    if s.nan is None:  # FP6/FP4: NaN input is a policy (tested in test_policies.py)
        x = x[~np.isnan(x)]
    if not s.signed:  # E8M0: positive inputs, float32 normals (ml_dtypes is odd on fp32 subnormals)
        x = x[(x >= np.float32(2.0**-126)) | np.isinf(x) & (x > 0) | np.isnan(x)]
    return x


def _boundary_inputs(s):
    g = finite_grid(s)
    mids = (g[:-1] + g[1:]) / 2  # exact in float64 and in float32 for these formats
    top_ulp = 2.0 ** (s.emax - s.mbits)
    over = np.array([s.max + top_ulp / 2, s.max + top_ulp, 2 * s.max, s.max * 1.25,
                     s.max + top_ulp / 4, s.max + 3 * top_ulp / 4])
    over = np.concatenate([over, -over]) if s.signed else over
    tiny = np.array([s.min_subnormal / 2, s.min_subnormal / 4, s.min_subnormal * 0.75,
                     s.min_subnormal * 1.5, 0.0])
    tiny = np.concatenate([tiny, -tiny]) if s.signed else tiny
    base = np.concatenate([g, mids, over, tiny]).astype(np.float32)
    exact = np.concatenate([g, mids])
    assert np.array_equal(exact.astype(np.float32).astype(np.float64), exact)
    up = np.nextafter(base, np.float32(np.inf))
    dn = np.nextafter(base, np.float32(-np.inf))
    special = np.array([np.inf, -np.inf, np.nan, -np.nan], np.float32)
    return np.concatenate([base, up, dn, special])


def _check(name, x, **kw):
    s = SPECS[name]
    x = _filter(x, s)
    got = np.asarray(encode(x, name, rounding=_mode(s), overflow="nonsat", **kw))
    exp = mld_codes(x, s)
    ok, msg = codes_match(x, got, exp, s)
    assert ok, f"{name}: {msg}"
    return x, got


@pytest.mark.parametrize("name", ML_FORMATS)
def test_midpoints_neighbours_boundaries(name):
    x = _boundary_inputs(SPECS[name])
    _check(name, x)


@pytest.mark.parametrize("name", ML_FORMATS)
def test_quantize_values_match_ml_dtypes(name):
    s = SPECS[name]
    x = _filter(_boundary_inputs(s), s)
    y = quantize(x, name, rounding=_mode(s), overflow="nonsat")
    assert y.dtype == np.float32 and y.shape == x.shape
    exp = x.astype(s.dtype).astype(np.float32)
    assert np.array_equal(y, exp, equal_nan=True)
    num = ~np.isnan(exp)
    assert np.array_equal(np.signbit(y[num]), np.signbit(exp[num]))


@pytest.mark.parametrize("name", [n for n in ML_FORMATS if SPECS[n].bits <= 8])
def test_every_float16_input(name):
    x16 = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    s = SPECS[name]
    if s.nan is None:
        x16 = x16[~np.isnan(x16)]
    if not s.signed:
        x16 = x16[(x16.astype(np.float32) >= 2.0**-126) | np.isnan(x16)]
    got = np.asarray(encode(x16, name, rounding=_mode(s), overflow="nonsat"))
    exp = mld_codes(x16.astype(np.float32), s)
    ok, msg = codes_match(x16, got, exp, s)
    assert ok, f"{name} (float16 inputs): {msg}"


@pytest.mark.numba_parallel
@pytest.mark.parametrize("name", ML_FORMATS)
def test_random_bit_patterns(name):
    rng = np.random.default_rng(12345)
    x = rng.integers(0, 1 << 32, N_RANDOM, dtype=np.uint64).astype(np.uint32).view(np.float32)
    if not SPECS[name].signed:
        x = np.abs(x)
    _check(name, x)


@pytest.mark.numba_parallel
@pytest.mark.parametrize("name", ML_FORMATS)
def test_random_log_uniform_around_range(name):
    s = SPECS[name]
    rng = np.random.default_rng(777)
    lo = np.log2(s.min_subnormal) - 3
    hi = np.log2(s.max) + 2
    mag = np.exp2(rng.uniform(lo, hi, N_RANDOM))
    sign = rng.choice([-1.0, 1.0], N_RANDOM) if s.signed else 1.0
    x = (sign * mag).astype(np.float32)
    _check(name, x)


def test_overflow_boundaries_hand():
    c = encode(np.array([464.0, 465.0, -464.0, -465.0, 448.0], np.float32), "fp8_e4m3",
               overflow="nonsat")
    assert c[0] == 0x7E and c[2] == 0xFE and c[4] == 0x7E
    assert np.isnan(decode(c[1:2], "fp8_e4m3")[0]) and np.isnan(decode(c[3:4], "fp8_e4m3")[0])
    c = encode(np.array([61439.0, 61440.0, -61440.0], np.float32), "fp8_e5m2", overflow="nonsat")
    assert c.tolist() == [0x7B, 0x7C, 0xFC]
    # saturate: both to max
    c = encode(np.array([465.0, -1e6, 61440.0], np.float32), "fp8_e4m3", overflow="saturate")
    assert c.tolist() == [0x7E, 0xFE, 0x7E]
    c = encode(np.array([61440.0, -1e30], np.float32), "fp8_e5m2", overflow="saturate")
    assert c.tolist() == [0x7B, 0xFB]
    # FP4: 7 is the tie between 6 and the (absent) 8 -> overflow -> saturates (no Inf/NaN)
    c = encode(np.array([7.0, 6.5, -7.0, 100.0], np.float32), "fp4_e2m1", overflow="nonsat")
    assert c.tolist() == [0x7, 0x7, 0xF, 0x7]


def test_ml_dtypes_inf_behaviour_pinned():
    """What ml_dtypes does for +-Inf into formats without Inf (pinned), and lowbit nonsat agrees."""
    inf = np.array([np.inf, -np.inf], np.float32)
    expect = {
        "fp8_e4m3": [0x7F, 0xFF],      # NaN (sign kept)
        "fp8_e4m3fnuz": [0x80, 0x80],  # the single NaN
        "fp8_e5m2fnuz": [0x80, 0x80],
        "fp6_e2m3": [0x1F, 0x3F],      # +-max (saturates)
        "fp6_e3m2": [0x1F, 0x3F],
        "fp4_e2m1": [0x7, 0xF],
        "fp8_e5m2": [0x7C, 0xFC],      # real Inf
        "fp8_e3m4": [0x70, 0xF0],
    }
    for name, codes in expect.items():
        s = SPECS[name]
        assert mld_codes(inf, s).tolist() == codes, name  # pin ml_dtypes itself
        got = np.asarray(encode(inf, name, overflow="nonsat"))
        ok, msg = codes_match(inf, got, np.array(codes), s)
        assert ok, f"{name}: {msg}"
    # E8M0: +Inf -> NaN in ml_dtypes
    assert mld_codes(np.array([np.inf], np.float32), SPECS["e8m0"]).tolist() == [0xFF]
    assert np.isnan(decode(encode(np.array([np.inf]), "e8m0", overflow="nonsat",
                                  rounding="rna"), "e8m0")[0])


def test_ml_dtypes_quirks_pinned():
    """Pins of ml_dtypes behaviour this suite relies on or deliberately avoids."""
    e8 = ml_dtypes.float8_e8m0fnu
    # E8M0 ties: ml_dtypes rounds 3 (between 2 and 4) up; 6 -> 8; 1.5 -> 2
    assert np.array([3.0, 6.0, 1.5], np.float32).astype(e8).astype(np.float32).tolist() == [4, 8, 2]
    # E8M0: 0 and negatives -> NaN
    assert np.isnan(np.array([0.0, -1.0], np.float32).astype(e8).astype(np.float32)).all()
    # FP4 NaN -> a zero (sign bit of the NaN flipped): a silent policy, hence nan_input= in lowbit
    y = np.array([np.nan], np.float32).astype(ml_dtypes.float4_e2m1fn).astype(np.float32)
    assert y[0] == 0
    # E5M2 canonical NaN is 0x7E in ml_dtypes
    assert mld_codes(np.array([np.nan], np.float32), SPECS["fp8_e5m2"]).tolist() == [0x7E]


def test_e8m0_rne_ties_to_even_code():
    """lowbit "rne" on E8M0 ties to the even *code* (like gfloat), "rna" ties up (ml_dtypes)."""
    x = np.array([3.0, 6.0, 1.5, 12.0, 0.75], np.float32)
    c = np.asarray(encode(x, "e8m0", rounding="rne", overflow="nonsat"))
    # 3: neighbours 2 (0x80) and 4 (0x81) -> 0x80; 6: 4 (0x81), 8 (0x82) -> 0x82;
    # 1.5: 1 (0x7F), 2 (0x80) -> 0x80; 12: 8 (0x82), 16 (0x83) -> 0x82; 0.75: 0.5 (0x7E), 1 (0x7F)
    assert c.tolist() == [0x80, 0x82, 0x80, 0x82, 0x7E]
    c = np.asarray(encode(x, "e8m0", rounding="rna", overflow="nonsat"))
    assert c.tolist() == [0x81, 0x82, 0x80, 0x83, 0x7F]
    # just off the tie, both agree
    x = np.nextafter(np.float32(3.0), np.float32(4.0))
    assert encode(np.array([x]), "e8m0", rounding="rne").tolist() == [0x81]
