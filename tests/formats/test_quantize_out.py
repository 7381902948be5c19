"""``quantize(x, fmt, out=...)``: the values written into a caller's array, or into ``x`` itself
(in-place fake quantization), equal to the fresh result for every kind of format and path
(branch-free element path and its fall-back stages, table path, exact kernel, block formats),
errors still raised in place, bad ``out`` arguments named."""

import numpy as np
import pytest

from lowbit.formats import quantize

F32 = np.float32


def adversarial(dtype, rng, shape=(64, 3000)):
    """Normal values over many binades, exact ties of 4-8-bit grids, values beyond every
    format's max, float32 subnormals, signed zeros."""
    x = rng.standard_normal(shape) * np.exp2(rng.integers(-12, 12, (shape[0], 1)))
    x[:, ::7] = rng.integers(-64, 64, (shape[0], len(range(0, shape[1], 7)))) / 16.0
    big = 6e4 if dtype == np.float16 else 1e6
    x[::3, 5] = big
    x[1::3, 6] = -big / 3
    x[:, 11] = 1e-41
    x[:, 12] = -0.0
    return x.astype(dtype)


ELEMENT = ["fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp6_e3m2", "fp4_e2m1", "bf16", "fp16", "int8",
           "int4", "q3.4"]
BLOCK = ["mxfp4", "mxfp8_e4m3", "nvfp4", "int4_g128", "fp4_e2m1_pc"]


@pytest.mark.parametrize("fmt", ELEMENT + BLOCK)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_out_buffer_equals_fresh_result(fmt, dtype):
    rng = np.random.default_rng(1)
    x = adversarial(dtype, rng)
    ref = quantize(x, fmt)
    buf = np.full(x.shape, np.nan, ref.dtype)
    got = quantize(x, fmt, out=buf)
    assert got is buf
    np.testing.assert_array_equal(buf, ref)


@pytest.mark.parametrize("fmt", ELEMENT + BLOCK)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_equals_fresh_result(fmt, dtype):
    """``out=x``: every chunk (1 Mi elements: this input has several) is read by the fast
    path, its fall-back stages (the huge values, NaN) and the error re-check before it is
    overwritten."""
    rng = np.random.default_rng(2)
    x = adversarial(dtype, rng, shape=(700, 4000))
    x[5, 100] = np.nan
    ref = quantize(x, fmt, nan_input="zero")
    got = quantize(x, fmt, nan_input="zero", out=x)
    assert got is x
    np.testing.assert_array_equal(x, ref)


def test_in_place_stochastic_rounding_equals_fresh_result():
    rng = np.random.default_rng(3)
    x = adversarial(F32, rng)
    ref = quantize(x, "fp8_e4m3", rounding="stochastic", seed=7)
    quantize(x, "fp8_e4m3", rounding="stochastic", seed=7, out=x)
    np.testing.assert_array_equal(x, ref)


@pytest.mark.parametrize("fmt", ["fp8_e4m3", "fp4_e2m1", "int8"])
def test_in_place_errors_still_raised(fmt):
    """overflow="error" / NaN under nan_input="error": the same error as without ``out``
    (the exact re-check reads the input, not the values already written)."""
    rng = np.random.default_rng(4)
    x = adversarial(F32, rng)
    with pytest.raises(ValueError, match="overflows") as fresh:
        quantize(x.copy(), fmt, overflow="error")
    with pytest.raises(ValueError, match="overflows") as inplace:
        quantize(x, fmt, overflow="error", out=x)
    assert str(inplace.value) == str(fresh.value)
    y = adversarial(F32, rng)
    y[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        quantize(y, "fp4_e2m1", out=y)


@pytest.mark.parametrize("where", [0, 2047, 2048 + 5, 5 * 2048 + 100, (1 << 20) + 3000])
@pytest.mark.parametrize("what", ["overflow", "nan"])
def test_in_place_error_after_converted_stages(where, what):
    """The first error in a later stage / chunk of an in-place conversion: the stages before it
    are already values of the format, the failing one is re-checked on its input - the same
    error (index and value) as without ``out``, and the input from the failing element on is
    untouched."""
    rng = np.random.default_rng(5)
    x = np.clip(rng.standard_normal(1 << 21) * 2, -5.5, 5.5).astype(F32)  # below both maxima
    x[where] = F32(7e5) if what == "overflow" else F32(np.nan)
    x[where + 3000] = -x[where]  # a second, later error
    kw = dict(overflow="error") if what == "overflow" else dict(nan_input="error")
    for fmt in ("fp8_e4m3", "fp4_e2m1"):
        if what == "nan" and fmt == "fp8_e4m3":
            continue  # E4M3 has a NaN: no error
        y = x.copy()
        with pytest.raises(ValueError) as fresh:
            quantize(x, fmt, **kw)
        with pytest.raises(ValueError) as inplace:
            quantize(y, fmt, out=y, **kw)
        assert str(inplace.value) == str(fresh.value)
        assert str(where) in str(fresh.value)
        np.testing.assert_array_equal(y[where:where + 1].view(np.uint32),
                                      x[where:where + 1].view(np.uint32))


def test_overlapping_but_shifted_out():
    """``out`` overlapping ``x`` at an offset (not in place): computed first, then copied."""
    rng = np.random.default_rng(5)
    mem = adversarial(F32, rng, shape=(1, 3_000_001)).reshape(-1)
    x, out = mem[:-1], mem[1:]
    ref = quantize(x, "fp8_e4m3")
    quantize(x, "fp8_e4m3", out=out)
    np.testing.assert_array_equal(mem[1:], ref)


def test_bad_out_is_named():
    x = np.ones((4, 8), F32)
    with pytest.raises(TypeError, match="out must be a numpy array of dtype float32"):
        quantize(x, "fp8_e4m3", out=[0.0] * 32)
    with pytest.raises(ValueError, match=r"out must have dtype float32 and shape \(4, 8\)"):
        quantize(x, "fp8_e4m3", out=np.empty((4, 8)))
    with pytest.raises(ValueError, match=r"out must have dtype float32 and shape \(4, 8\)"):
        quantize(x, "mxfp4", out=np.empty((8, 4), F32))
    with pytest.raises(ValueError, match="writeable C-contiguous"):
        quantize(x, "fp8_e4m3", out=np.empty((8, 4), F32).T)
    ro = np.empty((4, 8), F32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable C-contiguous"):
        quantize(x, "fp8_e4m3", out=ro)
