"""Bad input to the public sim entry points gives a named error (function, argument, allowed
values); empty inputs give the empty-sum result that NumPy's matmul gives; every real dtype NumPy
converts exactly gives the same answer as its float64 values."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from lowbit.sim import QuantConfig, mx_dot, mx_matmul, qconv2d, qlinear, qlinear_prequant, qmatmul

RNG = np.random.default_rng(7)
X = RNG.standard_normal((4, 32))
W = RNG.standard_normal((8, 32))
XC = RNG.standard_normal((2, 3, 6, 6))
WC = RNG.standard_normal((5, 3, 3, 3))
BLOCK = QuantConfig(weight="mxfp4", act="mxfp4", accum="fp32")
PT = QuantConfig(weight="int8_pc", act="int8_pt", accum="int32")
NV = QuantConfig(weight="nvfp4", act="nvfp4", accum="fp32")


@pytest.mark.parametrize("call, exc, needles", [
    # complex / str / object input: silently dropped imaginary part or parsed text before
    (lambda: qlinear(X + 1j, W, None, BLOCK), TypeError, ["qlinear", "x", "complex"]),
    (lambda: qlinear(X, W.astype(complex)), TypeError, ["qlinear", "w", "complex"]),
    (lambda: qlinear(np.full((1, 32), "1.5"), W), TypeError, ["qlinear", "x", "strings"]),
    (lambda: qlinear(np.array([[None] * 32]), W), TypeError, ["qlinear", "x", "objects"]),
    (lambda: qmatmul(X + 1j, W.T), TypeError, ["qmatmul", "a", "complex"]),
    (lambda: qconv2d(XC + 1j, WC), TypeError, ["qconv2d", "x", "complex"]),
    (lambda: qlinear_prequant(X, W.astype(str)), TypeError, ["qlinear_prequant", "wq"]),
    (lambda: mx_matmul(X + 1j, W.T, "mxfp4"), TypeError, ["mx_matmul", "a", "complex"]),
    (lambda: mx_dot(X[0], W[0].astype("U8"), "mxfp4"), TypeError, ["mx_dot", "b", "strings"]),
    # bias of the wrong length / rank (length 1 broadcast silently before)
    (lambda: qlinear(X, W, np.zeros(3)), ValueError, ["qlinear", "bias", "(8,)", "(3,)"]),
    (lambda: qlinear(X, W, np.zeros(1)), ValueError, ["qlinear", "bias", "(8,)", "(1,)"]),
    (lambda: qlinear(X, W, np.zeros((4, 8))), ValueError, ["bias", "(8,)", "(4, 8)"]),
    (lambda: qlinear(X, W, 0.5), ValueError, ["bias", "(8,)", "()"]),
    (lambda: qlinear(X, W, np.zeros(8) + 1j), TypeError, ["bias", "complex"]),
    (lambda: qlinear_prequant(X, W, np.zeros(9)), ValueError, ["qlinear_prequant", "bias"]),
    (lambda: qconv2d(XC, WC, np.zeros(2)), ValueError, ["qconv2d", "bias", "(5,)", "(2,)"]),
    # 0-d input (IndexError before)
    (lambda: qlinear(np.float64(1.0), W), ValueError, ["qlinear", "x", "at least 1", "()"]),
    (lambda: qmatmul(3.0, W.T), ValueError, ["qmatmul", "a", "at least 1"]),
    (lambda: mx_dot(1.0, 2.0, "mxfp4"), ValueError, ["mx_dot", "1-D"]),
    (lambda: mx_matmul(X, W, "mxfp4"), ValueError, ["mx_matmul", "(4, 32)", "(8, 32)"]),
    # qconv2d stride / padding (ZeroDivisionError, numpy pad errors before)
    (lambda: qconv2d(XC, WC, stride=0), ValueError, ["qconv2d", "stride=0", "int >= 1"]),
    (lambda: qconv2d(XC, WC, stride=-1), ValueError, ["stride=-1", "int >= 1"]),
    (lambda: qconv2d(XC, WC, stride=(1, 0)), ValueError, ["stride=(1, 0)", "int >= 1"]),
    (lambda: qconv2d(XC, WC, stride=1.5), TypeError, ["stride=1.5", "int >= 1"]),
    (lambda: qconv2d(XC, WC, stride=True), TypeError, ["stride=True"]),
    (lambda: qconv2d(XC, WC, padding=-1), ValueError, ["qconv2d", "padding=-1", "int >= 0"]),
    (lambda: qconv2d(XC, WC, padding=(1, 2, 3)), ValueError, ["padding=(1, 2, 3)", "pair"]),
    (lambda: qconv2d(XC, WC, padding="same"), TypeError, ["padding='same'"]),
    (lambda: qconv2d(XC, WC[:, :1]), ValueError, ["qconv2d", "(5, 1, 3, 3)", "mismatch"]),
    (lambda: qconv2d(XC[:, :, :2, :2], WC), ValueError, ["kernel 3x3", "padded input 2x2"]),
    # QuantConfig: the argument name and the allowed values
    (lambda: QuantConfig(weight="fp9"), ValueError, ["QuantConfig weight", "'fp9'", "mxfp4"]),
    (lambda: QuantConfig(act=3), TypeError, ["QuantConfig act", "int"]),
    (lambda: QuantConfig(accum="fp64x"), ValueError, ["QuantConfig accum", "allowed", "int<bits>"]),
    (lambda: QuantConfig(weight_axis=1.5), TypeError, ["QuantConfig weight_axis=1.5", "None or an int"]),
    (lambda: QuantConfig(act_axis="0"), TypeError, ["QuantConfig act_axis='0'", "None or an int"]),
    (lambda: QuantConfig(act_axis=True), TypeError, ["QuantConfig act_axis=True"]),
    (lambda: QuantConfig(dot="fast"), ValueError, ["QuantConfig dot='fast'", "auto, block, element"]),
    (lambda: QuantConfig(dot=["auto"]), ValueError, ["QuantConfig dot=['auto']", "auto, block"]),
    (lambda: qlinear(X, W, None, 3), TypeError, ["qlinear: config=3", "QuantConfig", "accumulator"]),
    (lambda: qlinear(X, W, None, "fp64x"), ValueError, ["qlinear: config", "unknown accumulator"]),
    (lambda: qmatmul(X, W.T, object()), TypeError, ["qmatmul: config"]),
    (lambda: qconv2d(XC, WC, None, [1]), TypeError, ["qconv2d: config=[1]"]),
    (lambda: qlinear(X, W, None, QuantConfig(weight="mxfp4", weight_axis=5)), ValueError,
     ["qlinear: weight_axis=5", "-2..1"]),
    (lambda: qmatmul(X, W.T, QuantConfig(act="mxfp4", act_axis=-3)), ValueError,
     ["qmatmul: act_axis=-3", "-2..1"]),
    (lambda: qconv2d(XC, WC, None, QuantConfig(act_axis=0)), ValueError,
     ["qconv2d: act_axis=0", "None or 1"]),
    # a block axis on a length-1 dimension: one-element blocks, 12 bits per MXFP4 element
    # (silently before; then the formats' message about an axis=-1 the caller never passed)
    (lambda: qlinear(X[:1], W, None, QuantConfig(weight="mxfp4", act="mxfp4", act_axis=0)),
     ValueError, ["qlinear: act_axis=0", "length 1 of x", "12 bits per element instead of 4.25"]),
    (lambda: qlinear(X, W[:1], None, QuantConfig(weight="nvfp4", weight_axis=0)), ValueError,
     ["qlinear: weight_axis=0", "length 1 of w", "nvfp4 blocks of 16"]),
    (lambda: qmatmul(X, W.T[:, :1], QuantConfig(weight="mxfp4", weight_axis=1)), ValueError,
     ["qmatmul: weight_axis=1", "length 1 of b"]),
    (lambda: qmatmul(X[:, :1], W.T[:1], QuantConfig(act="mxfp4")), ValueError,
     ["qmatmul: act_axis=None (the reduction axis K)", "length 1 of a"]),
    (lambda: qlinear(X[:, :1], W[:, :1], None, QuantConfig(weight="int8_pc")), ValueError,
     ["qlinear: weight_axis=None", "int8_pc per-row scales", "40 bits per element"]),
    (lambda: qlinear_prequant(X[:, :1], W[:, :1], None, QuantConfig(act="mxfp4")), ValueError,
     ["qlinear_prequant: the reduction axis K", "length 1 of x"]),
    (lambda: qconv2d(XC[:, :1], WC[:, :1, :1, :1], None, BLOCK), ValueError,
     ["qconv2d: the reduction axis K", "K = KH*KW*C/groups = 1"]),
    # shapes
    (lambda: qlinear(X, W[0]), ValueError, ["qlinear", "(4, 32)", "(32,)", "(out, in)"]),
    (lambda: qlinear(X[:, :31], W), ValueError, ["qlinear", "(4, 31)", "(8, 32)"]),
    (lambda: qmatmul(X, W), ValueError, ["qmatmul", "(..., K) @ (K, M)"]),
])
def test_named_errors(call, exc, needles):
    with pytest.raises(exc) as info:
        call()
    msg = str(info.value)
    for n in needles:
        assert n in msg, (n, msg)


@pytest.mark.parametrize("cfg", [BLOCK, PT, NV, QuantConfig(weight="int4_g128", act="fp8_e4m3"),
                                 "exact"], ids=["mxfp4", "int8_pt", "nvfp4", "int4_g128", "exact"])
def test_empty_batch_and_empty_k_give_the_empty_sums(cfg):
    """0-row batches (reshape error before) and K = 0: NumPy's matmul shapes and values."""
    b = RNG.standard_normal(8)
    for x in (np.zeros((0, 32)), np.zeros((2, 0, 32))):
        y = qlinear(x, W, b, cfg)
        ref = x @ W.T + b
        assert y.shape == ref.shape and y.dtype == np.float64
        assert qmatmul(x, W.T, cfg).shape == (x @ W.T).shape
        assert qlinear_prequant(x, W, b, cfg).shape == ref.shape
    # K = 0: every output is the empty sum (+0.0) plus the bias
    y = qlinear(np.zeros((3, 0)), np.zeros((8, 0)), b, cfg)
    np.testing.assert_array_equal(y, np.zeros((3, 0)) @ np.zeros((0, 8)) + b)
    assert not np.signbit(qmatmul(np.zeros((3, 0)), np.zeros((0, 8)), cfg)).any()
    # no outputs
    assert qlinear(X, np.zeros((0, 32)), None, cfg).shape == (4, 0)
    # conv: empty batch keeps the output geometry; C = 0 gives the bias per channel
    yc = qconv2d(XC[:0], WC, None, cfg, stride=2, padding=1)
    assert yc.shape == (0, 5, 3, 3)
    y0 = qconv2d(np.zeros((1, 0, 4, 4)), np.zeros((5, 0, 3, 3)), np.arange(5.0), cfg)
    np.testing.assert_array_equal(y0, np.broadcast_to(np.arange(5.0)[None, :, None, None],
                                                      (1, 5, 2, 2)))
    assert mx_matmul(np.zeros((0, 32)), W.T, "mxfp4").shape == (0, 8)


def test_empty_batch_is_the_slice_of_a_full_batch():
    full = qlinear(X, W, None, BLOCK)
    np.testing.assert_array_equal(qlinear(X[:0], W, None, BLOCK), full[:0])


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.int64, np.uint16, np.float16,
                                   np.dtype(">f4"), np.dtype(">f8"), ml_dtypes.bfloat16,
                                   ml_dtypes.float8_e4m3fn])
def test_real_dtypes_equal_their_float64_values(dtype):
    """Every accepted dtype is converted exactly: same result as the float64 array of its values
    (big-endian floats included)."""
    src = RNG.standard_normal((4, 32)) * 3
    x = (src > 0) if dtype is np.bool_ else np.abs(src).astype(dtype)
    x64 = x.astype(np.float64)
    for cfg in (BLOCK, PT, "exact"):
        np.testing.assert_array_equal(qlinear(x, W, None, cfg), qlinear(x64, W, None, cfg))
    np.testing.assert_array_equal(qconv2d(XC.astype(np.dtype(">f8")), WC, stride=(2, 1),
                                          padding=(1, np.int64(0))),
                                  qconv2d(XC, WC, stride=(2, 1), padding=(1, 0)))


def test_length_1_axes_that_hold_no_block_are_fine():
    """Only a blocked dimension of length 1 is an error: a single element, a per-tensor or
    element format, or a length-1 batch blocked along K all run."""
    one = qlinear(X[:1, :1], W[:1, :1], None, BLOCK)
    assert one.shape == (1, 1) and np.isfinite(one).all()
    np.testing.assert_array_equal(qlinear(X[:1], W, None, BLOCK), qlinear(X, W, None, BLOCK)[:1])
    fp8 = QuantConfig(weight="fp8_e4m3", act="int8_pt", accum="fp32")
    assert qlinear(X[:, :1], W[:, :1], None, fp8).shape == (4, 8)


def test_nan_input_is_data_not_an_error():
    """NaN / Inf are IEEE values, not bad arguments: they propagate."""
    x = X.copy()
    x[0, 0] = np.nan
    y = qlinear(x, W, None, QuantConfig(weight="fp8_e4m3", act="fp8_e4m3", accum="fp32"))
    assert np.isnan(y[0]).all() and np.isfinite(y[1:]).all()
