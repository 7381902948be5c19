"""qmatmul / qlinear / qconv2d and the MX block dot product."""

from fractions import Fraction

import numpy as np
import pytest
from sim_ref import frac_round

import lowbit.formats as lf
from lowbit.sim.gemm import qconv2d, qlinear, qmatmul
from lowbit.sim.mxdot import mx_dot, mx_dot_encoded, mx_matmul
from lowbit.sim.qconfig import QuantConfig

FP32 = (23, -126)
BF16 = (7, -126)


# --------------------------------------------------------------------------- layers


def naive_conv(x, w, b, stride, pad):
    N, C, H, W = x.shape
    O, _, KH, KW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    OH = (H + 2 * pad - KH) // stride + 1
    OW = (W + 2 * pad - KW) // stride + 1
    y = np.zeros((N, O, OH, OW))
    for i in range(OH):
        for j in range(OW):
            patch = xp[:, :, i * stride:i * stride + KH, j * stride:j * stride + KW]
            y[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w)
    return y + b[None, :, None, None]


@pytest.mark.parametrize("stride,pad", [(1, 0), (1, 1), (2, 1)])
def test_qconv2d_exact_matches_direct_conv(stride, pad):
    rng = np.random.default_rng(0)
    x = rng.integers(-8, 8, (2, 3, 7, 6)).astype(float)
    w = rng.integers(-8, 8, (4, 3, 3, 3)).astype(float)
    b = rng.integers(-8, 8, 4).astype(float)
    got = qconv2d(x, w, b, "exact", stride=stride, padding=pad)
    np.testing.assert_array_equal(got, naive_conv(x, w, b, stride, pad))
    # quantised operands: qconv2d == direct conv of the operands quantised along (kh, kw, c)
    cfg = QuantConfig("fp8_e4m3", "fp8_e4m3", "exact")
    xr = rng.standard_normal((1, 3, 5, 5))
    wr = rng.standard_normal((2, 3, 3, 3))
    got = qconv2d(xr, wr, None, cfg, stride=stride, padding=pad)
    xq = lf.quantize(xr, "fp8_e4m3")
    wq = lf.quantize(wr, "fp8_e4m3")
    np.testing.assert_allclose(got, naive_conv(xq, wq, np.zeros(2), stride, pad), rtol=1e-13)


def test_qlinear_layout_and_bias():
    rng = np.random.default_rng(1)
    x = rng.integers(-50, 50, (2, 3, 10)).astype(float)
    w = rng.integers(-50, 50, (4, 10)).astype(float)
    b = np.array([0.5, -1.0, 2.0, 0.0])
    np.testing.assert_array_equal(qlinear(x, w, b, "exact"), x @ w.T + b)
    np.testing.assert_array_equal(qmatmul(x, w.T, "fp32"), x @ w.T)  # small ints: fp32 exact
    with pytest.raises(ValueError, match="qlinear"):
        qlinear(x, w.T, None, "exact")


def test_weight_axis_non_k_uses_element_path():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 64))
    w = rng.standard_normal((32, 64))
    cfg = QuantConfig("mxfp4", None, "exact", weight_axis=0)
    wq = lf.quantize(w, "mxfp4", axis=0)
    np.testing.assert_allclose(qlinear(x, w, None, cfg), x @ wq.T, rtol=1e-12)


def test_int8_per_channel_int_accumulators():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 300)) * 3
    w = rng.standard_normal((4, 300))
    ex = qlinear(x, w, None, QuantConfig("int8_pc", "int8_pt", "exact"))
    assert np.array_equal(qlinear(x, w, None, QuantConfig("int8_pc", "int8_pt", "int32")), ex)
    # independent reference for an int16 register: wrap is modular, saturate needs the sequence
    qa = lf.encode(x, "int8_pt", axis=-1)
    qw = lf.encode(w, "int8_pc", axis=-1)
    ia = qa.element_values().astype(np.int64)
    iw = qw.element_values().astype(np.int64)
    sa = float(np.ravel(qa.scales)[0])
    sw = np.asarray(qw.scales).reshape(-1)
    wrap = (((ia @ iw.T) + 2**15) % 2**16) - 2**15
    sat = np.zeros((5, 4), dtype=np.int64)
    for k in range(300):
        sat = np.clip(sat + np.outer(ia[:, k], iw[:, k]), -(2**15), 2**15 - 1)
    got_w = qlinear(x, w, None, QuantConfig("int8_pc", "int8_pt", "int16"))
    got_s = qlinear(x, w, None, QuantConfig("int8_pc", "int8_pt", "int16_sat"))
    np.testing.assert_array_equal(got_w, wrap * (sa * sw[None, :]))
    np.testing.assert_array_equal(got_s, sat * (sa * sw[None, :]))
    assert not np.array_equal(got_w, ex)  # the int16 register does overflow here


# --------------------------------------------------------------------------- MX dot


def test_mx_fp32_accumulation_by_hand():
    # K = 64 = two MXFP4 blocks.  a: block 1 = [2^25, 0...], block 2 = [1, 0...]; b = ones.
    # block 1: X_a = 2^(25-2) = 2^23, P_a = 4; X_b = 2^(0-2), P_b = 4 -> term 2^23/4*16 = 2^25
    # block 2: X_a = 2^-2, P_a = 4                                     -> term 1/16*16 = 1
    # fp32: 2^25 + 1 -> RNE (ulp 4) -> 2^25; exact: 2^25 + 1
    a = np.zeros(64)
    a[0] = 2.0**25
    a[32] = 1.0
    b = np.ones(64)
    assert mx_dot(a, b, "mxfp4", accum="fp32") == 2.0**25
    assert mx_dot(a, b, "mxfp4", accum="exact") == 2.0**25 + 1
    cfg = QuantConfig("mxfp4", "mxfp4", "fp32")
    assert qmatmul(a[None], b[:, None], cfg)[0, 0] == 2.0**25
    # the element path with a per-product fp32 accumulator gives the same here
    cfg_e = QuantConfig("mxfp4", "mxfp4", "fp32", dot="element")
    assert qmatmul(a[None], b[:, None], cfg_e)[0, 0] == 2.0**25


def _blocks(qt, bs):
    P = qt.element_values()
    S = np.asarray(qt.scales, dtype=np.float64)
    T = 1.0 if qt.tensor_scale is None else float(qt.tensor_scale)
    return P, S, T


@pytest.mark.parametrize("fmt,bs,acc", [("mxfp4", 32, FP32), ("mxfp8_e4m3", 32, FP32),
                                        ("mxfp8_e5m2", 32, FP32), ("mxfp6_e2m3", 32, BF16),
                                        ("nvfp4", 16, FP32), ("mxint8", 32, FP32)])
def test_mx_dot_vs_independent_per_block(fmt, bs, acc):
    rng = np.random.default_rng(11)
    N, M, K = 2, 3, 4 * bs
    a = rng.standard_normal((N, K)) * np.exp2(rng.integers(-3, 4, (N, K)))
    w = rng.standard_normal((M, K)) * np.exp2(rng.integers(-3, 4, (M, K)))
    Pa, Sa, Ta = _blocks(lf.encode(a, fmt, axis=-1), bs)
    Pw, Sw, Tw = _blocks(lf.encode(w, fmt, axis=-1), bs)
    accname = "fp32" if acc == FP32 else "bf16"
    got = qlinear(a, w, None, QuantConfig(fmt, fmt, accname))
    ref = np.zeros((N, M))
    for i in range(N):
        for j in range(M):
            s = Fraction(0)
            for blk in range(K // bs):
                sl = slice(blk * bs, (blk + 1) * bs)
                inner = sum((Fraction(float(p)) * Fraction(float(q))
                             for p, q in zip(Pa[i, sl], Pw[j, sl])), Fraction(0))
                s = frac_round(s + Fraction(float(Sa[i, blk])) * Fraction(float(Sw[j, blk])) * inner,
                               *acc)
            ref[i, j] = float(s) * (Ta * Tw)
    np.testing.assert_array_equal(got, ref)
    # pre-encoded entry point agrees
    el = lf.get_format(fmt).element
    enc = mx_dot_encoded(Pa, Sa, Pw, Sw, bs, el, accum=accname, tensor_scale_a=Ta,
                         tensor_scale_b=Tw)
    np.testing.assert_array_equal(enc, ref)
    # exact block path == exact element path on the dequantised values
    ex_b = qlinear(a, w, None, QuantConfig(fmt, fmt, "exact", dot="block"))
    ex_e = qlinear(a, w, None, QuantConfig(fmt, fmt, "exact", dot="element"))
    if Ta * Tw == 1.0:
        np.testing.assert_array_equal(ex_b, ex_e)
    else:  # NVFP4: element path rounds nothing either, block path rounds once at alpha
        np.testing.assert_allclose(ex_b, ex_e, rtol=1e-15)


def test_mx_matmul_shapes_and_nan_scale():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((3, 40))  # ragged K (40 = 32 + 8, zero padded)
    b = rng.standard_normal((40, 2))
    r = mx_matmul(a, b, "mxfp8_e4m3", accum="exact")
    qa = lf.quantize(a, "mxfp8_e4m3", axis=-1)
    qb = lf.quantize(b, "mxfp8_e4m3", axis=0)
    np.testing.assert_allclose(r, qa @ qb, rtol=1e-14)
    P = np.ones((1, 32))
    S = np.array([[np.nan]])
    assert np.isnan(mx_dot_encoded(P, S, P, np.ones((1, 1)), 32, "fp8_e4m3")[0, 0])


def test_mixed_block_sizes_align():
    # NVFP4 (16) activations x MXFP4 (32) weights: aligned on 16-blocks, exact == element exact
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 64))
    w = rng.standard_normal((3, 64))
    r_b = qlinear(x, w, None, QuantConfig("mxfp4", "nvfp4", "exact"))
    r_e = qlinear(x, w, None, QuantConfig("mxfp4", "nvfp4", "exact", dot="element"))
    np.testing.assert_allclose(r_b, r_e, rtol=1e-15)


def test_qlinear_prequant_matches_qlinear_for_rtn_weights():
    from lowbit.sim.gemm import qlinear_prequant

    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 64))
    w = rng.standard_normal((5, 64))
    for wf, af, acc in [("fp8_e4m3", "fp8_e4m3", "fp16"), ("int4_g128", "fp16", "fp32"),
                        ("mxfp4", "mxfp8_e4m3", "exact")]:
        cfg = QuantConfig(wf, af, acc, dot="element")
        wq = np.asarray(lf.quantize(w, wf, axis=-1), dtype=float)
        np.testing.assert_array_equal(qlinear_prequant(x, wq, None, cfg), qlinear(x, w, None, cfg))


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4", "int4_g128", "int8_pc"])
def test_prequantized_block_operand_equals_rtn_operand(fmt):
    """Values already on a block format's grid plus their block scales give the same block
    operand (elements, scales, tensor scale) as quantising the original, so GPTQ weights use
    the block dot product exactly like RTN weights."""
    from lowbit.sim.operands import prepare, prepare_prequantized

    rng = np.random.default_rng(9)
    w = rng.standard_normal((5, 256))
    ref = prepare(w, fmt)
    op = prepare_prequantized(ref.values, fmt, scales=ref.scales * ref.tensor_scale,
                              tensor_scale=ref.tensor_scale)
    assert op.is_block
    np.testing.assert_array_equal(op.values, ref.values)
    np.testing.assert_array_equal(op.elements, ref.elements)
    np.testing.assert_array_equal(op.scales, ref.scales)
    assert op.tensor_scale == ref.tensor_scale
    with pytest.raises(ValueError, match="grid"):
        prepare_prequantized(ref.values + 1e-3, fmt, scales=ref.scales * ref.tensor_scale,
                             tensor_scale=ref.tensor_scale)
