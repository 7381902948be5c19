"""Every code of every <=16-bit float format: decode vs ml_dtypes and vs the bit-field spec,
encode(decode(c)) == c; descriptor properties and the registry."""

import ml_dtypes
import numpy as np
import pytest
from lowbit_formats_ref import ML_FORMATS, SPECS, codes_match, same_values, values_table

from lowbit.formats import FloatFormat, IntFormat, decode, encode, get_format, list_formats


def _all_codes(s):
    return np.arange(1 << s.bits, dtype=np.int64).astype(s.code_dtype)


@pytest.mark.parametrize("name", ML_FORMATS)
def test_decode_every_code_matches_ml_dtypes(name):
    s = SPECS[name]
    codes = _all_codes(s)
    got = np.asarray(decode(codes, name))
    assert got.dtype == np.float64
    assert got.shape == codes.shape
    exp = codes.view(s.dtype).astype(np.float64)
    ok = same_values(got, exp)
    bad = np.flatnonzero(~ok)
    assert ok.all(), f"{name}: {bad.size} codes differ, first: " + ", ".join(
        f"0x{c:x}: got {got[c]!r} ml_dtypes {exp[c]!r}" for c in bad[:5])
    # and the independent bit-field table agrees with both
    assert same_values(got, values_table(s)).all()


@pytest.mark.parametrize("name", ML_FORMATS)
def test_encode_decode_roundtrip_every_code(name):
    s = SPECS[name]
    codes = _all_codes(s)
    vals = values_table(s)
    keep = ~np.isnan(vals)
    c = codes[keep]
    v = np.asarray(decode(c, name))
    back = np.asarray(encode(v, name, overflow="nonsat"))
    assert back.shape == c.shape
    assert np.array_equal(back.astype(np.int64), c.astype(np.int64)), (
        f"{name}: first bad code 0x{int(c[np.flatnonzero(back != c)[0]]):x}")
    # float32 inputs as well (every value of these formats is a float32)
    back32 = np.asarray(encode(v.astype(np.float32), name, overflow="nonsat"))
    assert np.array_equal(back32.astype(np.int64), c.astype(np.int64))


@pytest.mark.parametrize("name", ML_FORMATS)
def test_code_dtype(name):
    s = SPECS[name]
    codes = np.asarray(encode(np.array([1.0, 2.0]), name))
    assert codes.dtype == (np.uint8 if s.bits <= 8 else np.uint16)


@pytest.mark.parametrize("name", ML_FORMATS)
def test_nan_codes_decode_to_nan(name):
    s = SPECS[name]
    vals = values_table(s)
    nan_codes = _all_codes(s)[np.isnan(vals)]
    if nan_codes.size == 0:  # FP6/FP4: every code is finite
        assert np.isfinite(np.asarray(decode(_all_codes(s), name))).all()
        assert not get_format(name).has_nan
        return
    assert np.isnan(np.asarray(decode(nan_codes, name))).all()


def test_decode_hand_values():
    # hand-worked codes (OCP OFP8 tables)
    assert decode(np.array([0x7E], np.uint8), "fp8_e4m3")[0] == 448.0
    assert np.isnan(decode(np.array([0x7F], np.uint8), "fp8_e4m3")[0])
    assert decode(np.array([0x01], np.uint8), "fp8_e4m3")[0] == 2.0**-9
    assert decode(np.array([0x7B], np.uint8), "fp8_e5m2")[0] == 57344.0
    assert decode(np.array([0x7C], np.uint8), "fp8_e5m2")[0] == np.inf
    assert decode(np.array([0xFC], np.uint8), "fp8_e5m2")[0] == -np.inf
    assert np.isnan(decode(np.array([0x80], np.uint8), "fp8_e4m3fnuz")[0])
    assert list(decode(np.arange(8, dtype=np.uint8), "fp4_e2m1")) == [0, .5, 1, 1.5, 2, 3, 4, 6]
    assert decode(np.array([0x00], np.uint8), "e8m0")[0] == 2.0**-127
    assert decode(np.array([0x7F], np.uint8), "e8m0")[0] == 1.0
    assert decode(np.array([0xFE], np.uint8), "e8m0")[0] == 2.0**127
    assert np.isnan(decode(np.array([0xFF], np.uint8), "e8m0")[0])
    z = decode(np.array([0x80], np.uint8), "fp8_e4m3")[0]
    assert z == 0 and np.signbit(z)


# ---------------------------------------------------------------- descriptors / registry


@pytest.mark.parametrize("name", ML_FORMATS)
def test_properties_vs_spec_table(name):
    s = SPECS[name]
    f = get_format(name)
    assert f.bits == s.bits
    assert f.max == s.max
    assert f.min_normal == s.min_normal
    assert f.min_subnormal == s.min_subnormal
    assert f.eps == s.eps
    assert f.emax == s.emax
    assert f.emin == s.emin
    assert f.num_finite == s.num_finite
    assert f.ebits == s.ebits and f.mbits == s.mbits and f.bias == s.bias
    assert f.signed == s.signed
    assert f.has_inf == s.inf
    assert f.has_nan == (s.nan is not None)
    expected_min = -s.max if s.signed else s.min_normal
    assert f.min == expected_min


@pytest.mark.parametrize("name", ML_FORMATS)
def test_properties_vs_ml_dtypes_finfo(name):
    s = SPECS[name]
    fi = ml_dtypes.finfo(s.dtype)
    f = get_format(name)
    assert f.max == float(fi.max)
    assert f.min_normal == float(fi.smallest_normal)
    assert f.min_subnormal == float(fi.smallest_subnormal)
    assert f.eps == float(fi.eps)
    assert f.emax == int(fi.maxexp) - 1
    assert f.emin == int(fi.minexp)
    assert f.bits == int(fi.bits)


@pytest.mark.parametrize("name", ML_FORMATS)
def test_values_order(name):
    s = SPECS[name]
    v = np.asarray(get_format(name).values())
    assert v.dtype == np.float64 and v.shape == (1 << s.bits,)
    assert same_values(v, values_table(s)).all()
    # values()[c] == decode(c)
    assert same_values(v, decode(_all_codes(s), name)).all()


def test_values_order_hand():
    v = get_format("fp8_e4m3").values()
    assert v[0x38] == 1.0 and v[0x7E] == 448.0 and np.isnan(v[0x7F])
    assert v[0x80] == 0 and np.signbit(v[0x80]) and v[0xB8] == -1.0
    assert list(get_format("fp4_e2m1").values()) == [0, .5, 1, 1.5, 2, 3, 4, 6,
                                                     -0.0, -.5, -1, -1.5, -2, -3, -4, -6]


@pytest.mark.parametrize("alias,canon", [
    ("float8_e4m3fn", "fp8_e4m3"), ("e4m3", "fp8_e4m3"), ("float8_e5m2", "fp8_e5m2"),
    ("float8_e4m3fnuz", "fp8_e4m3fnuz"), ("float8_e5m2fnuz", "fp8_e5m2fnuz"),
    ("float6_e2m3fn", "fp6_e2m3"), ("float6_e3m2fn", "fp6_e3m2"),
    ("float4_e2m1fn", "fp4_e2m1"), ("float8_e8m0fnu", "e8m0"), ("bfloat16", "bf16"),
    ("float16", "fp16"),
])
def test_aliases(alias, canon):
    a, c = get_format(alias), get_format(canon)
    assert a == c
    assert same_values(a.values(), c.values()).all()


def test_format_objects_accepted_everywhere():
    f = get_format("fp8_e4m3")
    x = np.array([1.0, 3.3, -448.0])
    assert np.array_equal(encode(x, f), encode(x, "fp8_e4m3"))
    assert same_values(decode(encode(x, f), f), decode(encode(x, "fp8_e4m3"), "fp8_e4m3")).all()


def test_e_m_on_the_fly():
    f = get_format("e6m9")
    assert isinstance(f, FloatFormat)
    assert (f.ebits, f.mbits, f.bits) == (6, 9, 16)
    assert f.bias == 31
    # IEEE-style defaults: e5m10 is binary16, e8m7 is bfloat16
    assert same_values(get_format("e5m10").values(), values_table(SPECS["fp16"])).all()
    assert same_values(get_format("e8m7").values(), values_table(SPECS["bf16"])).all()


def test_floatformat_constructor_matches_registry():
    f = FloatFormat(4, 3, nan="fn", inf=False)
    assert same_values(f.values(), values_table(SPECS["fp8_e4m3"])).all()
    g = FloatFormat(4, 3, nan="fnuz", inf=False)  # bias+1 default
    assert g.bias == 8
    assert same_values(g.values(), values_table(SPECS["fp8_e4m3fnuz"])).all()
    e = FloatFormat(8, 0, bias=127, signed=False, subnormals=False, zero=False, nan="fn")
    assert same_values(e.values(), values_table(SPECS["e8m0"])).all()


def test_unknown_format_lists_names():
    with pytest.raises(ValueError) as ei:
        get_format("fp9_nonsense")
    msg = str(ei.value)
    assert "fp9_nonsense" in msg
    for known in ("fp8_e4m3", "fp4_e2m1", "mxfp4", "nvfp4", "int8"):
        assert known in msg


def test_list_formats():
    names = list_formats()
    for n in ["fp32", "tf32", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "fp8_e4m3fnuz",
              "fp8_e5m2fnuz", "fp8_e3m4", "fp6_e2m3", "fp6_e3m2", "fp4_e2m1", "e8m0", "ue4m3",
              "ue5m3", "int2", "int8", "uint2", "uint8", "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2",
              "mxfp6_e2m3", "mxfp4", "mxint8", "nvfp4", "bfp8", "int8_pt", "int8_pc", "int4_pc",
              "int4_g128", "int8_g128", "int4_g32", "int4_g128_asym"]:
        assert n in names, n
        get_format(n)
    assert "float8_e4m3fn" not in names  # aliases are not canonical names


def test_ue4m3():
    """UE4M3 (NVFP4 block scale): E4M3 without the sign bit, 7-bit codes (stored in a byte by
    the block formats), 0x7F = NaN, max 448 at 0x7E, min subnormal 2^-9 at 0x01, no negatives."""
    f = get_format("ue4m3")
    assert f.bits == 7 and not f.signed and f.num_codes == 128
    v = np.asarray(f.values())
    assert np.isnan(v[0x7F]) and np.isnan(v).sum() == 1
    fin = v[np.isfinite(v)]
    assert fin.min() == 0.0 and v[0x7E] == fin.max() == 448.0
    assert v[0x01] == np.min(fin[fin > 0]) == 2.0**-9
    assert get_format("nvfp4").scale_bits == 8


@pytest.mark.parametrize("name,bits,qmin,qmax", [
    ("int8", 8, -128, 127), ("int4", 4, -8, 7), ("int2", 2, -2, 1), ("uint8", 8, 0, 255),
    ("uint4", 4, 0, 15), ("uint2", 2, 0, 3)])
def test_int_formats(name, bits, qmin, qmax):
    f = get_format(name)
    assert isinstance(f, IntFormat)
    assert (f.bits, f.qmin, f.qmax) == (bits, qmin, qmax)
    assert f.max == qmax and f.min == qmin
    assert f.num_finite == (1 << bits)
    assert not f.has_inf and not f.has_nan
    v = np.asarray(f.values())
    # code order: codes are unsigned bit patterns (two's complement for signed)
    codes = np.arange(1 << bits)
    exp = np.where(codes >= (1 << (bits - 1)), codes - (1 << bits), codes) if qmin < 0 else codes
    assert np.array_equal(v, exp.astype(np.float64))


def test_int_narrow_and_fixed_point():
    f = IntFormat(8, narrow=True)
    assert (f.qmin, f.qmax, f.max, f.min) == (-127, 127, 127.0, -127.0)
    assert f.num_finite == 255
    q = IntFormat(8, frac_bits=6)  # MXINT8 element
    assert q.max == 127 / 64 and q.min == -2.0
    assert float(decode(np.array([0x40], np.uint8), q)[0]) == 1.0
    assert float(decode(np.array([0x80], np.uint8), q)[0]) == -2.0
    assert float(decode(np.array([0xFF], np.uint8), q)[0]) == -1 / 64


def test_int_encode_codes_are_bit_patterns():
    c = np.asarray(encode(np.array([-1.0, -8.0, 7.0, 0.0, 3.0]), "int4"))
    assert c.tolist() == [15, 8, 7, 0, 3]
    c = np.asarray(encode(np.array([-1.0, -128.0, 127.0]), "int8"))
    assert c.tolist() == [255, 128, 127]
    assert decode(np.array([15, 8], np.uint8), "int4").tolist() == [-1.0, -8.0]


@pytest.mark.parametrize("name,code", [("fp8_e4m3", 0xB9), ("fp8_e5m2", 0x3D), ("fp4_e2m1", 0xD),
                                       ("bf16", 0x3F80)])
def test_explain(name, code):
    txt = get_format(name).explain(code).lower()
    assert "sign" in txt and "exponent" in txt and "mantissa" in txt
    val = float(values_table(SPECS[name])[code])
    # the decoded value appears in the explanation
    assert (repr(val) in txt) or (str(val) in txt) or (f"{val:g}" in txt), txt


def test_codes_match_helper_detects_mismatch():
    # the comparison helper itself must be able to fail
    ok, msg = codes_match(np.array([1.0]), np.array([0x38]), np.array([0x39]), SPECS["fp8_e4m3"])
    assert not ok and "0x38" in msg
    ok, _ = codes_match(np.array([np.nan]), np.array([0x7F]), np.array([0x7E]), SPECS["fp8_e5m2"])
    assert ok
