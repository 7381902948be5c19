"""Bad input to lowbit.formats gets a ValueError / TypeError naming the argument (and the allowed
values), never a traceback from deep inside numpy or numba, and never a silent answer.
Each case below is one a user can type; the message must name what is wrong."""

import copy
import pickle
import zlib

import numpy as np
import pytest

from lowbit.formats import (
    QuantizedTensor,
    decode,
    encode,
    get_format,
    pack,
    quantize,
    unpack,
)

F32 = np.float32
X = np.linspace(-3, 3, 64, dtype=F32).reshape(2, 32)

CASES = [
    # (call, exception, message fragment)
    (lambda: quantize(X, "fp8_e4m3", rounding=["rne"]), ValueError, "rounding must be one of"),
    (lambda: quantize(X, "fp8_e4m3", rounding="nearest-ish"), ValueError, "rounding must be"),
    (lambda: quantize(X, "fp8_e4m3", overflow="clip"), ValueError, "overflow must be one of"),
    (lambda: quantize(X, "fp8_e4m3", overflow="wrap"), ValueError, "integer / fixed-point"),
    (lambda: quantize(X, "fp4_e2m1", nan_input="drop"), ValueError, "nan_input must be one of"),
    (lambda: quantize(X, "fp4_e2m1", subnormal_output="ftz"), ValueError,
     "subnormal_output must be one of"),
    (lambda: quantize(X, "fp4_e2m1", nan="zero"), TypeError, "nan= is now nan_input="),
    (lambda: quantize(X, "mxfp4", subnormals="flush"), TypeError,
     "subnormals= is now subnormal_output="),
    (lambda: quantize(X, "mxfp4", axis=1.5), TypeError, "axis must be an integer"),
    (lambda: quantize(X, "mxfp4", axis="0"), TypeError, "axis must be an integer"),
    (lambda: quantize(X, "mxfp4", axis=True), TypeError, "axis must be an integer"),
    (lambda: quantize(X, "mxfp4", axis=2), ValueError, "axis must be in [-2, 1]"),
    (lambda: quantize(X, "fp8_e4m3", rounding="stochastic", seed=1.5), TypeError,
     "seed must be a non-negative int"),
    (lambda: quantize(X, "fp8_e4m3", rounding="stochastic", seed=-1), ValueError,
     "seed must be a non-negative int"),
    (lambda: quantize(X, "fp8_e4m3", rounding="stochastic", seed="3"), TypeError, "seed"),
    (lambda: quantize(X, "fp8_e4m3", rounding="stochastic"), ValueError, "needs seed="),
    (lambda: quantize(X, "fp8_e4m3", rounding="stochastic", seed=1, sr_bits=0), ValueError,
     "sr_bits must be an integer in 1..62"),
    (lambda: quantize(X, "fp8_e4m3", rounding="stochastic", seed=1, sr_bits=True), ValueError,
     "sr_bits"),
    (lambda: quantize(np.ones((4, 1), F32), "mxfp4"), ValueError,
     "axis=-1 of shape (4, 1) has length 1"),
    (lambda: quantize(np.ones((1, 40), F32), "nvfp4", axis=0), ValueError, "has length 1"),
    (lambda: quantize(np.float32(1.0), "mxfp4"), ValueError, "at least a 1-D array"),
    (lambda: quantize(np.ones(3, np.complex64), "fp8_e4m3"), TypeError, "complex64"),
    (lambda: quantize(np.array(["1.0"]), "fp8_e4m3"), TypeError, "float16, float32 or float64"),
    (lambda: quantize(np.array([1.0, None]), "fp8_e4m3"), TypeError, "object"),
    (lambda: quantize(np.arange(3), "fp8_e4m3"), TypeError, "int64"),
    (lambda: quantize(X, 5), TypeError, "fmt must be a format name"),
    (lambda: quantize(X, "fp9"), ValueError, "unknown format 'fp9'"),
    (lambda: quantize(np.array([np.nan], F32), "fp4_e2m1"), ValueError,
     "NaN input at flat index 0: fp4_e2m1 has no NaN"),
    (lambda: quantize(np.array([1.0, 500.0], F32), "fp8_e4m3", overflow="error"), ValueError,
     "input 500.0 at flat index 1 overflows fp8_e4m3 (max 448.0) and overflow='error' (allowed: "
     "['saturate', 'nonsat', 'error', 'propagate'])"),
    (lambda: quantize(np.array([1.0, 500.0]), "int8", overflow="error"), ValueError,
     "'propagate', 'wrap', 'sat_zero', 'sat_sym'])"),
    (lambda: encode(np.array([-1.0], F32), "ue4m3", overflow="error"), ValueError,
     "negative input"),
    (lambda: decode(np.array([1.0]), "fp8_e4m3"), TypeError, "codes must be an integer array"),
    (lambda: decode(np.array([16]), "fp4_e2m1"), ValueError, "codes must be in 0..15"),
    (lambda: decode(np.array([-1]), "fp4_e2m1"), ValueError, "codes must be in 0..15"),
    (lambda: decode(np.array([1]), "mxfp4"), TypeError, "needs a QuantizedTensor"),
    (lambda: decode(np.array([1]), "fp4_e2m1", dtype=np.float16), ValueError, "dtype must be"),
    (lambda: unpack(np.zeros(4, np.uint8), "fp4_e2m1", -1), ValueError, "count must be >= 0"),
    (lambda: unpack(np.zeros(4, np.uint8), "fp4_e2m1", 1.5), TypeError, "count must be an int"),
    (lambda: unpack(np.array([1.5, 2.0]), "fp4_e2m1", 2), TypeError, "integer array of byte"),
    (lambda: unpack(np.array([300, 2]), "fp4_e2m1", 2), ValueError, "byte values 0..255"),
    (lambda: unpack(np.array([-1, 2]), "fp4_e2m1", 2), ValueError, "byte values 0..255"),
    (lambda: unpack(np.zeros(1, np.uint8), "fp4_e2m1", 5), ValueError, "3 needed for 5 codes"),
    (lambda: pack(np.array([1.0]), "fp4_e2m1"), TypeError, "codes must be an integer array"),
    (lambda: pack(np.array([16]), "fp4_e2m1"), ValueError, "codes must be in 0..15"),
    (lambda: get_format("fp8_e4m3").explain(1.5), TypeError, "code must be an integer"),
    (lambda: get_format("int8").explain(256), ValueError, "code must be in 0..255 for int8"),
    (lambda: get_format("int16").explain(-1), ValueError, "code must be in 0..65535"),
]


@pytest.mark.parametrize("i", range(len(CASES)))
def test_named_error(i):
    call, exc, fragment = CASES[i]
    with pytest.raises(exc) as ei:
        call()
    assert fragment in str(ei.value), str(ei.value)


def test_overflow_error_tests_the_scaled_value_of_a_block():
    """A large input inside an MX block is scaled by its block and does not overflow; an element
    above the element max after scaling (FLOOR clips (6, 8) * X) raises, naming block, scale
    and scaled value - and the raw input 56 is reported next to its scaled 7."""
    big = np.array([[1e30, 1.0] * 16], F32)
    np.testing.assert_array_equal(quantize(big, "mxfp4", overflow="error"),
                                  quantize(big, "mxfp4"))
    clip = np.zeros((2, 32), F32)
    clip[1, 3] = 56.0  # floor(log2 56) - 2 = 3: X = 8, 56 / 8 = 7 > 6
    with pytest.raises(ValueError) as ei:
        quantize(clip, "mxfp4", overflow="error")
    msg = str(ei.value)
    assert "input 56.0 (element 3 of block 1 of 2, block scale 8.0) scaled to 7.0" in msg, msg
    assert "overflows fp4_e2m1 (max 6.0)" in msg


@pytest.mark.parametrize("name", ["int8_pc", "int8_pt", "mxfp4", "nvfp4", "int4_g128_asym",
                                  "fp8_e4m3", "bf16"])
@pytest.mark.parametrize("shape", [(0,), (0, 32), (3, 0), (2, 0, 5)])
def test_empty_tensors(name, shape):
    """Empty tensors quantize to empty results of the same shape (quantize(np.zeros(0),
    "int8_pc") raised "cannot reshape array of size 0"), encode / decode / serialise too."""
    x = np.zeros(shape, F32)
    y = quantize(x, name)
    qt = encode(x, name)
    assert y.shape == shape and y.dtype == F32
    if get_format(name).kind == "block":
        assert qt.shape == shape and decode(qt).shape == shape
        assert QuantizedTensor.from_bytes(qt.to_bytes()).shape == shape
    else:
        assert qt.shape == shape and decode(qt, name).shape == shape


def test_byte_orders_and_float16_are_converted():
    x = np.array([1.1, -2.2, 300.0, 1e-9], F32)
    want = quantize(x, "fp8_e4m3")
    for v in (x.astype(">f4"), x.astype("<f4")):
        assert np.array_equal(quantize(v, "fp8_e4m3"), want)
    assert quantize(x.astype(">f8"), "fp8_e4m3").dtype == np.float64
    assert np.array_equal(encode(x.astype(np.float16), "fp4_e2m1"),
                          encode(x.astype(np.float16).astype(F32), "fp4_e2m1"))
    blk = np.linspace(-4, 4, 64).reshape(2, 32)
    assert np.array_equal(quantize(blk.astype(">f8"), "mxfp4"), quantize(blk, "mxfp4"))


def test_int32_codes_are_not_mistaken_for_errors():
    """Two's-complement int32 codes of -1, -2, -3 are 0xFFFFFFFF..FD, once the error sentinels:
    quantize(-1.0, 'int32') raised 'overflows int32'."""
    x = np.array([-1.0, -2.0, -3.0, 5.0])
    assert quantize(x, "int32").tolist() == x.tolist()
    assert encode(x, "int32").tolist() == [0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 5]


# ---- serialisation ----------------------------------------------------------------------------
def _blob():
    return encode(np.linspace(-5, 5, 96, dtype=F32).reshape(3, 32), "nvfp4").to_bytes()


def _reseal(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "little")


def test_from_bytes_round_trip_and_memoryview():
    b = _blob()
    qt = QuantizedTensor.from_bytes(b)
    for src in (memoryview(b), bytearray(b), memoryview(bytearray(b))):
        back = QuantizedTensor.from_bytes(src)
        assert np.array_equal(back.codes, qt.codes) and back.format == qt.format
    assert b[:4] == b"LBQT" and int.from_bytes(b[4:6], "little") == 2


@pytest.mark.parametrize("cut", [0, 3, 9, 40, -1, -5])
def test_from_bytes_truncated(cut):
    b = _blob()
    with pytest.raises(ValueError, match="truncated or corrupted|magic"):
        QuantizedTensor.from_bytes(b[:cut])


def test_from_bytes_corrupted_foreign_and_versioned():
    b = bytearray(_blob())
    flipped = bytes(b[:50]) + bytes([b[50] ^ 0x10]) + bytes(b[51:])
    with pytest.raises(ValueError, match="CRC-32 mismatch"):
        QuantizedTensor.from_bytes(flipped)
    with pytest.raises(ValueError, match="magic"):
        QuantizedTensor.from_bytes(b"garbage" + bytes(b[7:]))
    with pytest.raises(ValueError, match="version 1"):
        QuantizedTensor.from_bytes(_reseal(b"LBQT" + (1).to_bytes(2, "little") + bytes(b[6:-4])))
    with pytest.raises(TypeError, match="bytes, bytearray or memoryview"):
        QuantizedTensor.from_bytes("LBQT")


def _with_header(b: bytes, edit) -> bytes:
    import json
    hl = int.from_bytes(b[6:10], "little")
    header = json.loads(b[10:10 + hl])
    edit(header)
    h = json.dumps(header).encode()
    return _reseal(b[:6] + len(h).to_bytes(4, "little") + h + b[10 + hl:-4])


@pytest.mark.parametrize("edit,msg", [
    (lambda h: h.update(shape=[-3, 32]), "non-negative integers"),
    (lambda h: h.update(shape=[3, 32.5]), "non-negative integers"),
    (lambda h: h.update(shape=[4, 32]), "scale_shape"),
    (lambda h: h.update(axis="last"), "axis must be an integer"),
    (lambda h: h.pop("format"), "malformed"),
    (lambda h: h["format"].update(kind="matrix"), "malformed"),
    (lambda h: h.update(scale_shape=[3, 3]), "scale_shape"),
])
def test_from_bytes_bad_headers(edit, msg):
    with pytest.raises(ValueError, match=msg):
        QuantizedTensor.from_bytes(_with_header(_blob(), edit))


def test_from_bytes_payload_length_is_checked():
    b = _blob()
    with pytest.raises(ValueError, match="payload holds"):
        QuantizedTensor.from_bytes(_reseal(b[:-5]))


def test_quantized_tensor_is_frozen_and_consistent():
    qt = encode(np.ones((2, 32), F32), "mxfp4")
    with pytest.raises(AttributeError):
        qt.codes = qt.codes
    with pytest.raises(ValueError):
        qt.codes[0, 0] = 1  # read-only arrays
    assert qt.shape == qt.codes.shape == (2, 32)
    with pytest.raises(ValueError, match="scales must have shape"):
        QuantizedTensor(codes=qt.codes, scales=np.ones(3), scale_codes=qt.scale_codes,
                        tensor_scale=None, zero_point=None, format=qt.format, axis=-1)
    with pytest.raises(TypeError, match="format must be a BlockFormat"):
        QuantizedTensor(codes=qt.codes, scales=qt.scales, scale_codes=qt.scale_codes,
                        tensor_scale=None, zero_point=None, format=get_format("fp4_e2m1"),
                        axis=-1)


@pytest.mark.parametrize("name", ["nvfp4", "mxfp4", "mxfp8_e4m3", "int4_g128"])
def test_scales_decoded_from_scale_codes_when_not_given(name):
    """``QuantizedTensor(scales=None)`` (what the NVFP4 pass builds): ``scales`` are the values
    of ``scale_codes`` in the scale format, NaN for a block that held NaN / Inf, read-only, and
    equal to the scales the exact kernel computes; FP32-scale formats must be given them."""
    x = (np.random.default_rng(3).standard_normal((8, 64)) * 5).astype(F32)
    x[1, 3], x[2, 20] = np.nan, -np.inf
    x[3] = 0.0
    qt = encode(x, name)
    if qt.scale_codes is None:
        with pytest.raises(ValueError, match="scales must be given for int4_g128"):
            QuantizedTensor(codes=qt.codes, scales=None, scale_codes=None,
                            tensor_scale=qt.tensor_scale, zero_point=qt.zero_point,
                            format=qt.format, axis=qt.axis)
        return
    lazy = QuantizedTensor(codes=qt.codes, scale_codes=qt.scale_codes,
                           tensor_scale=qt.tensor_scale, zero_point=qt.zero_point,
                           format=qt.format, axis=qt.axis)
    s = lazy.scales
    assert s is lazy.scales and s.dtype == np.float64 and not s.flags.writeable
    np.testing.assert_array_equal(s, qt.scales)
    k = qt.format.block_size
    assert np.isnan(s[1, 3 // k]) and np.isnan(s[2, 20 // k]) and not np.isnan(s[3]).any()
    np.testing.assert_array_equal(lazy.dequantize(), qt.dequantize())
    back = QuantizedTensor.from_bytes(qt.to_bytes())
    np.testing.assert_array_equal(back.scales, qt.scales)
    with pytest.raises(AttributeError, match="immutable"):
        lazy.scales = s
    with pytest.raises(AttributeError, match="immutable"):
        del lazy.codes
    assert name in repr(lazy)


@pytest.mark.parametrize("name", ["nvfp4", "mxfp4", "int4_g128_asym", "int8_pt"])
def test_quantized_tensor_pickles_and_copies(name):
    """pickle (the sweep's worker processes), copy and deepcopy keep every field."""
    x = (np.random.default_rng(4).standard_normal((4, 256)) * 3).astype(F32)
    qt = encode(x, name)
    for other in (pickle.loads(pickle.dumps(qt)), copy.copy(qt), copy.deepcopy(qt)):
        assert other.format == qt.format and other.axis == qt.axis
        assert other.tensor_scale == qt.tensor_scale
        for a in ("codes", "scales", "scale_codes", "zero_point"):
            x_a, y_a = getattr(other, a), getattr(qt, a)
            assert (x_a is None) == (y_a is None)
            if y_a is not None:
                np.testing.assert_array_equal(x_a, y_a)
                assert not x_a.flags.writeable
        np.testing.assert_array_equal(other.dequantize(), qt.dequantize())

