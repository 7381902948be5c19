"""Overflow / NaN / subnormal policies and argument validation."""

import numpy as np
import pytest
from lowbit_formats_ref import SPECS, same_values

from lowbit.formats import decode, encode, get_format, quantize

NO_NAN = ["fp6_e2m3", "fp6_e3m2", "fp4_e2m1"]


# ---------------------------------------------------------------- overflow
@pytest.mark.parametrize("name,big", [("fp8_e4m3", 465.0), ("fp8_e4m3", -1e4), ("fp8_e5m2", 61440.0),
                                      ("fp4_e2m1", 7.0), ("fp6_e3m2", -30.0), ("int8", 128.0),
                                      ("int4", -9.0)])
def test_overflow_error_raises(name, big):
    x = np.array([1.0, big])
    with pytest.raises((ValueError, OverflowError)) as ei:
        encode(x, name, overflow="error")
    assert "overflow" in str(ei.value).lower()
    with pytest.raises((ValueError, OverflowError)):
        quantize(x.astype(np.float32), name, overflow="error")


@pytest.mark.parametrize("name,ok", [("fp8_e4m3", 464.0), ("fp8_e5m2", 61439.0), ("fp4_e2m1", 6.9),
                                     ("int8", 127.4)])
def test_overflow_error_does_not_raise_in_range(name, ok):
    # values that round to max are no overflow
    y = quantize(np.array([ok, -ok]), name, overflow="error")
    assert np.isfinite(y).all()


def test_saturate_is_default():
    y = quantize(np.array([1e6, -1e6]), "fp8_e4m3")
    assert y.tolist() == [448.0, -448.0]
    y = quantize(np.array([1e6, -1e6]), "fp8_e5m2")
    assert y.tolist() == [57344.0, -57344.0]


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp6_e2m3", "fp4_e2m1", "fp8_e4m3fnuz"])
def test_saturate_maps_inf_to_max(name):
    """overflow="saturate" into a format without Inf: +-Inf -> +-max (CUDA .satfinite / ONNX
    saturate=True), never NaN. (Formats with Inf keep Inf: a documented policy, not tested.)"""
    f = get_format(name)
    y = quantize(np.array([np.inf, -np.inf]), name, overflow="saturate")
    assert y.tolist() == [f.max, -f.max]


# ---------------------------------------------------------------- NaN
@pytest.mark.parametrize("name", NO_NAN)
def test_nan_error_is_default_and_raises(name):
    x = np.array([1.0, np.nan])
    with pytest.raises(ValueError) as ei:
        encode(x, name)
    assert "nan" in str(ei.value).lower()
    with pytest.raises(ValueError):
        quantize(x, name, nan_input="error")


@pytest.mark.parametrize("name", NO_NAN)
def test_nan_zero_and_max(name):
    f = get_format(name)
    x = np.array([np.nan, 1.0, -np.nan])
    z = quantize(x, name, nan_input="zero")
    assert np.abs(z).tolist() == [0.0, 1.0, 0.0]
    m = quantize(x, name, nan_input="max")
    assert np.abs(m).tolist() == [f.max, 1.0, f.max]
    assert not np.isnan(decode(encode(x, name, nan_input="max"), name)).any()


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp8_e5m2", "fp8_e4m3fnuz", "bf16", "fp16"])
def test_nan_passes_through_formats_with_nan(name):
    # the nan_input= policy only concerns formats without NaN
    for pol in ("error", "zero", "max"):
        y = quantize(np.array([np.nan, 2.0]), name, nan_input=pol)
        assert np.isnan(y[0]) and y[1] == 2.0


@pytest.mark.parametrize("name", ["int8", "int4", "uint8"])
def test_nan_into_int(name):
    with pytest.raises(ValueError):
        encode(np.array([np.nan]), name)
    assert quantize(np.array([np.nan]), name, nan_input="zero").tolist() == [0.0]


# ---------------------------------------------------------------- subnormals
@pytest.mark.parametrize("name", ["fp8_e4m3", "fp8_e5m2", "fp4_e2m1", "fp16", "bf16", "fp6_e3m2"])
def test_flush_subnormals(name):
    s = SPECS[name]
    sub = np.array([s.min_subnormal, s.min_subnormal * 2, s.min_normal / 2,
                    -s.min_subnormal, s.min_normal - s.min_subnormal])
    sub = sub[np.abs(sub) < s.min_normal]
    assert sub.size >= 3
    y = quantize(sub, name, subnormal_output="flush")
    assert (y == 0).all(), y
    keep = quantize(sub, name, subnormal_output="keep")
    assert same_values(keep, sub).all()
    normal = np.array([s.min_normal, -s.min_normal, 1.0, s.max])
    assert same_values(quantize(normal, name, subnormal_output="flush"), normal).all()
    # flushed codes are zeros
    c = encode(sub, name, subnormal_output="flush")
    assert (decode(c, name) == 0).all()


# ---------------------------------------------------------------- bad arguments
def _check_msg(exc, argname, allowed):
    msg = str(exc.value)
    assert argname in msg, msg
    for a in allowed:
        assert a in msg, f"{a!r} not listed in {msg!r}"


def test_bad_rounding():
    with pytest.raises(ValueError) as ei:
        quantize(np.array([1.0]), "fp8_e4m3", rounding="nearest")
    _check_msg(ei, "rounding", ["rne", "rna", "rtz", "rup", "rdown", "rto", "stochastic"])


def test_bad_overflow():
    with pytest.raises(ValueError) as ei:
        encode(np.array([1.0]), "fp8_e4m3", overflow="clip")
    _check_msg(ei, "overflow", ["saturate", "nonsat", "error"])


def test_bad_nan_and_subnormals():
    with pytest.raises(ValueError) as ei:
        encode(np.array([1.0]), "fp4_e2m1", nan_input="ignore")
    _check_msg(ei, "nan_input", ["error", "zero", "max"])
    with pytest.raises(ValueError) as ei:
        encode(np.array([1.0]), "fp4_e2m1", subnormal_output="ftz")
    _check_msg(ei, "subnormal_output", ["keep", "flush"])


@pytest.mark.parametrize("name", ["fp4_e2m1", "mxfp4"])
@pytest.mark.parametrize("fn", [encode, quantize])
def test_old_policy_keywords_name_the_new_ones(fn, name):
    """``nan=`` / ``subnormals=`` (ambiguous with the FloatFormat fields) are refused with a
    message naming the new keyword, for element and block formats."""
    for old, new in (("nan", "nan_input"), ("subnormals", "subnormal_output")):
        with pytest.raises(TypeError, match=f"{old}= is now {new}="):
            fn(np.array([1.0], np.float32), name, **{old: "zero" if old == "nan" else "keep"})


def test_bad_format_name():
    with pytest.raises(ValueError) as ei:
        quantize(np.array([1.0]), "fp7_e9m9x")
    _check_msg(ei, "fp7_e9m9x", ["fp8_e4m3", "mxfp4"])


@pytest.mark.parametrize("x", [np.array([1, 2, 3]), np.array([1 + 2j]), np.array([True]),
                               np.array(["a"])])
def test_bad_input_dtype(x):
    with pytest.raises((TypeError, ValueError)) as ei:
        quantize(x, "fp8_e4m3")
    msg = str(ei.value)
    assert "float32" in msg and "float64" in msg, msg
    with pytest.raises((TypeError, ValueError)):
        encode(x, "fp8_e4m3")


def test_bad_stochastic_seed_and_sr_bits():
    with pytest.raises((TypeError, ValueError)):
        quantize(np.array([1.0]), "fp8_e4m3", rounding="stochastic", seed="abc")
    with pytest.raises(ValueError) as ei:
        quantize(np.array([1.0]), "fp8_e4m3", rounding="stochastic", seed=1, sr_bits=0)
    assert "sr_bits" in str(ei.value)


def test_decode_bad_codes():
    with pytest.raises((TypeError, ValueError)):
        decode(np.array([1.5]), "fp8_e4m3")  # float codes
    with pytest.raises(ValueError):
        decode(np.array([16], np.uint8), "fp4_e2m1")  # out of range for 4 bits
