"""Block formats: hand-worked blocks (MXFP4, NVFP4, MXINT8, INT groups / channels), an independent
OCP-MX reference (FLOOR scale + ml_dtypes element casts), properties and serialisation."""

import ml_dtypes
import numpy as np
import pytest
from lowbit_formats_ref import mx_reference, nvfp4_reference

from lowbit.formats import BlockFormat, QuantizedTensor, decode, encode, get_format, quantize

F32 = np.float32


def _blk(vals, n=32, dtype=F32):
    x = np.zeros(n, dtype)
    x[: len(vals)] = vals
    return x


# ---------------------------------------------------------------- MXFP4 hand-worked
def test_mxfp4_all_zero_block():
    x = np.zeros(64, F32)
    qt = encode(x, "mxfp4")
    assert isinstance(qt, QuantizedTensor)
    assert qt.codes.shape == (64,)
    assert np.all(decode(qt.codes, "fp4_e2m1") == 0)
    d = qt.dequantize()
    assert np.all(d == 0) and not np.isnan(d).any()
    assert not np.isnan(qt.scales).any()
    assert np.all(qt.scale_codes != 0xFF)
    assert np.all(quantize(x, "mxfp4") == 0)


def test_mxfp4_nan_block():
    x = (np.arange(64, dtype=F32) - 20) / 8
    x[5] = np.nan
    qt = encode(x, "mxfp4")
    d = qt.dequantize()
    assert np.isnan(d[:32]).all(), "a NaN element makes the whole block NaN (scale 0xFF)"
    assert qt.scale_codes.tolist()[0] == 0xFF
    assert np.isnan(qt.scales[0])
    assert not np.isnan(d[32:]).any()
    assert np.array_equal(d[32:], encode(x[32:], "mxfp4").dequantize())


def test_mxfp4_hand_floor_vs_rceil():
    # amax 7: FLOOR -> X = 2^(floor(log2 7) - 2) = 1; 7 -> RNE tie between 6 and 8 -> clamps to 6
    #         RCEIL -> X = 2^ceil(log2(7/6)) = 2; 7/2 = 3.5 -> tie 3|4 -> 4 -> 8
    x = _blk([7.0, 1.0, 0.6, -3.0, 0.2, -0.3, 2.5])
    floor = encode(x, "mxfp4")
    assert floor.scales.tolist() == [1.0] and floor.scale_codes.tolist() == [127]
    assert floor.dequantize()[:7].tolist() == [6.0, 1.0, 0.5, -3.0, 0.0, -0.5, 2.0]
    rceil_fmt = BlockFormat(get_format("fp4_e2m1"), get_format("e8m0"), 32, scale_rule="rceil")
    rc = encode(x, rceil_fmt)
    assert rc.scales.tolist() == [2.0] and rc.scale_codes.tolist() == [128]
    # /2: 3.5->4, 0.5, 0.3->0.5, -1.5, 0.1->0, -0.15->-0, 1.25->1
    assert rc.dequantize()[:7].tolist() == [8.0, 1.0, 1.0, -3.0, 0.0, -0.0, 2.0]
    assert rc.element_values()[:7].tolist() == [4.0, 0.5, 0.5, -1.5, 0.0, -0.0, 1.0]


@pytest.mark.parametrize("amax,exps", [
    # scale exponent for rules floor, ceil, rceil, even (MXFP4, emax_elem = 2)
    (7.0, (0, 1, 1, 1)), (6.0, (0, 1, 0, 0)), (4.0, (0, 0, 0, 0)), (5.0, (0, 1, 0, 0)),
    (0.9, (-3, -2, -2, -2)), (12.5, (1, 2, 2, 1)),
])
def test_mx_scale_rules(amax, exps):
    x = _blk([amax, -amax / 3])
    for rule, e in zip(("floor", "ceil", "rceil", "even"), exps):
        fmt = BlockFormat(get_format("fp4_e2m1"), get_format("e8m0"), 32, scale_rule=rule)
        qt = encode(x, fmt)
        assert qt.scales.tolist() == [2.0**e], f"rule {rule} amax {amax}: {qt.scales}"
        assert qt.scale_codes.tolist() == [127 + e]


def test_mxfp4_ragged_tail():
    x = np.concatenate([np.ones(32, F32), np.array([0.5, 0.25, -0.375, 0.125, 0, 0, 0.5, 0.4375], F32)])
    qt = encode(x, "mxfp4")
    assert qt.codes.shape == (40,) and qt.scales.shape == (2,)
    # block 0: amax 1 -> X = 2^-2; block 1: amax 0.5 -> X = 2^-3 (padding zeros don't count)
    assert qt.scales.tolist() == [0.25, 0.125]
    d = qt.dequantize()
    assert np.array_equal(d[:32], np.ones(32))
    # 0.4375/0.125 = 3.5 -> tie 3|4 -> 4 -> 0.5 ; others exact
    assert d[32:].tolist() == [0.5, 0.25, -0.375, 0.125, 0, 0, 0.5, 0.5]
    # 2-D ragged, along the last axis
    x2 = np.stack([x, 2 * x, -x])
    q2 = encode(x2, "mxfp4")
    assert q2.scales.shape == (3, 2) and q2.codes.shape == (3, 40)
    assert np.array_equal(q2.dequantize()[1], 2 * d)


def test_mxfp4_tail_does_not_see_stale_data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(70).astype(F32) * 100
    x[64:] = [0.5, -0.25, 0.125, 0, 0.5, -0.5]
    d = encode(x, "mxfp4").dequantize()
    assert d[64:].tolist() == [0.5, -0.25, 0.125, 0, 0.5, -0.5]


# ---------------------------------------------------------------- NVFP4 hand-worked
def _nvfp4_hand_input(mult=1.0):
    b0 = _blk([2688.0, 448.0, 100.0, 300.0], 16)
    b1 = _blk([3.0, 1.0, 0.2, -1.3], 16)
    b2 = _blk([1.0, -0.5], 16)
    b3 = np.zeros(16, F32)
    return (np.concatenate([b0, b1, b2, b3]) * F32(mult)).astype(F32)


def test_nvfp4_hand():
    x = _nvfp4_hand_input()
    qt = encode(x, "nvfp4")
    # tensor scale = amax / (6 * 448) = 1; block scales UE4M3 RNE of amax_b / 6:
    # 448 -> 0x7E, 0.5 -> 0x30, 1/6 = 0.1667 -> 11 * 2^-6 = 0.171875 -> 0x23, zero block -> scale 0
    assert qt.tensor_scale == 1.0
    assert qt.scale_codes.tolist()[:3] == [0x7E, 0x30, 0x23]
    d = qt.dequantize()
    assert not np.isnan(d).any()
    assert d[:4].tolist() == [2688.0, 448.0, 0.0, 224.0]  # 100/448 -> 0, 300/448=0.67 -> 0.5
    assert d[16:20].tolist() == [3.0, 1.0, 0.25, -1.5]    # /0.5: 6, 2, 0.4->0.5, -2.6->-3
    assert d[32:34].tolist() == [6 * 0.171875, -3 * 0.171875]  # 5.82 -> 6, -2.91 -> -3
    assert np.all(d[48:] == 0)
    assert np.all(d[[4, 20, 40]] == 0)


def test_nvfp4_tensor_scale_power_of_two_invariance():
    x = _nvfp4_hand_input()
    qt1 = encode(x, "nvfp4")
    qt4 = encode(x * F32(4), "nvfp4")
    assert qt4.tensor_scale == 4.0  # amax 10752 / 2688
    assert np.array_equal(qt4.scale_codes, qt1.scale_codes)
    assert np.array_equal(qt4.codes, qt1.codes)
    assert np.array_equal(qt4.dequantize(), 4 * qt1.dequantize())


def test_nvfp4_properties_random():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((8, 256)) * np.exp2(rng.integers(-4, 4, (8, 1)))).astype(F32)
    qt = encode(x, "nvfp4")
    amax = float(np.abs(x).max())
    assert qt.tensor_scale == pytest.approx(amax / 2688, rel=1e-6)
    s_blk = decode(qt.scale_codes, "fp8_e4m3").reshape(8, 16)
    assert (s_blk >= 0).all() and (s_blk <= 448).all()
    target = np.abs(x).reshape(8, 16, 16).max(-1) / 6 / qt.tensor_scale
    # UE4M3 RNE of the target: within half an E4M3 ulp (relative 2^-4)
    assert np.all(np.abs(s_blk - target) <= target * 2.0**-4 + 2.0**-10)
    assert s_blk.max() == 448.0  # the tensor-amax block uses the full E4M3 range
    # elements: the nearest FP4 value of x / (s_blk * ts), clamped to 6
    scale = np.repeat(s_blk, 16, axis=1) * qt.tensor_scale
    el = qt.element_values()
    v = np.clip(x / scale, -6, 6)
    grid = np.array([0, .5, 1, 1.5, 2, 3, 4, 6])
    best = np.abs(np.abs(v)[..., None] - grid).min(-1)
    assert np.all(np.abs(np.abs(el) - np.abs(v)) <= best + 1e-6)
    assert qt.bits_per_element == pytest.approx(4.5 + 32 / x.size)
    assert get_format("nvfp4").bits_per_element == 4.5


@pytest.mark.parametrize("case", ["normal", "ties", "tiny"])
def test_nvfp4_against_ml_dtypes_reference(case):
    """encode / quantize of float32 input (the vectorised general-scale path) against
    :func:`nvfp4_reference`: random rows over 60 binades, grid points (ties at every E2M1
    midpoint), tiny values beside large ones, zero blocks."""
    rng = np.random.default_rng({"normal": 1, "ties": 2, "tiny": 3}[case])
    R, K = 64, 1024
    if case == "ties":
        x = rng.integers(-48, 48, (R, K)) / 8.0 * np.exp2(rng.integers(-10, 10, (R, 1)))
    else:
        x = rng.standard_normal((R, K)) * np.exp2(rng.integers(-30, 30, (R, 1)))
    if case == "tiny":
        x[:, ::3] *= 1e-12
    x[::5, :16] = 0.0
    x = x.astype(F32)
    ref = nvfp4_reference(x)
    assert np.array_equal(encode(x, "nvfp4").dequantize(), ref)
    assert np.array_equal(quantize(x, "nvfp4"), ref.astype(F32))


# ---------------------------------------------------------------- MXINT8, INT groups/channels
def test_mxint8_hand():
    a = _blk([1.0, 0.01, -0.5, 0.3])
    b = _blk([3.0, 0.5, 3.99, -1.0])
    qt = encode(np.concatenate([a, b]), "mxint8")
    assert qt.scales.tolist() == [1.0, 2.0]
    d = qt.dequantize()
    # X=1: 1.0 -> 64/64, 0.01*64 = 0.64 -> 1/64, -0.5, 0.3*64 = 19.2 -> 19/64
    assert d[:4].tolist() == [1.0, 1 / 64, -0.5, 19 / 64]
    # X=2: 1.5 -> 96/64, 0.25, 1.995*64 = 127.68 -> 128 clamps to 127, -0.5
    assert d[32:36].tolist() == [3.0, 0.5, 127 / 64 * 2, -1.0]
    assert get_format("mxint8").bits_per_element == 8.25


def test_int4_g128_symmetric_hand():
    g0 = _blk([7.0, 2.5, 3.5, -6.6, 0.4], 128)
    g1 = _blk([14.0, 5.0, 7.0, -3.0, 0.9], 128)
    qt = encode(np.concatenate([g0, g1]), "int4_g128")
    assert qt.scales.tolist() == [1.0, 2.0]  # amax / 7
    d = qt.dequantize()
    assert d[:5].tolist() == [7.0, 2.0, 4.0, -7.0, 0.0]     # RNE ties 2.5->2, 3.5->4
    assert d[128:133].tolist() == [14.0, 4.0, 8.0, -4.0, 0.0]
    assert get_format("int4_g128").bits_per_element == 4.25
    assert qt.zero_point is None


def test_int4_g128_asym_hand():
    g0 = np.full(128, 0.0, F32)
    g0[:5] = [-5.0, 10.0, 2.4, 0.0, 7.6]
    g1 = np.full(128, 0.0, F32)
    g1[:4] = [0.0, 30.0, 3.1, 17.2]
    qt = encode(np.concatenate([g0, g1]), "int4_g128_asym")
    # scale = (max - min) / 15: 1 and 2; zero points 5 and 0
    assert qt.scales.tolist() == [1.0, 2.0]
    assert np.asarray(qt.zero_point).ravel().tolist() == [5, 0]
    d = qt.dequantize()
    assert d[:5].tolist() == [-5.0, 10.0, 2.0, 0.0, 8.0]
    assert d[128:132].tolist() == [0.0, 30.0, 4.0, 18.0]
    assert qt.codes.max() <= 15


def test_int8_per_channel_hand():
    x = np.zeros((3, 64), F32)
    x[0, :3] = [127.0, -3.4, 50.5]
    x[1, :3] = [-254.0, 3.0, 101.0]
    x[2, :3] = [2.54, 0.325, -1.0]
    qt = encode(x, "int8_pc")
    assert qt.scales.shape == (3, 1)
    assert qt.scales[:2, 0].tolist() == [1.0, 2.0]
    assert qt.scales[2, 0] == pytest.approx(0.02, rel=1e-6)
    d = qt.dequantize()
    assert d[0, :3].tolist() == [127.0, -3.0, 50.0]          # 50.5 -> 50 (RNE)
    assert d[1, :3].tolist() == [-254.0, 4.0, 100.0]         # 1.5 -> 2, 50.5 -> 50
    assert d[2, :3] == pytest.approx([2.54, 0.32, -1.0], rel=1e-6)  # 0.325/0.02 = 16.25 -> 16
    assert quantize(x, "int8_pc", axis=0).shape == x.shape


# ---------------------------------------------------------------- OCP MX reference
MX_REF = {"mxfp4": ("fp4_e2m1", 2), "mxfp8_e4m3": ("fp8_e4m3", 8), "mxfp8_e5m2": ("fp8_e5m2", 15),
          "mxfp6_e3m2": ("fp6_e3m2", 4), "mxfp6_e2m3": ("fp6_e2m3", 2)}


@pytest.mark.parametrize("name", list(MX_REF))
def test_mx_against_reference(name):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((16, 100)) * np.exp2(rng.integers(-20, 20, (16, 1)))
    x[3, 10] = 1e-30   # tiny in a normal block
    x[4, :32] = 0.0    # zero block
    x = x.astype(F32)
    elem, emax_elem = MX_REF[name]
    exp, X = mx_reference(x.astype(np.float64), elem, emax_elem)
    qt = encode(x, name)
    nz = X != 2.0**-127  # the scale of an all-zero block is a free choice
    assert np.array_equal(qt.scales[nz], X[nz])
    got = qt.dequantize()
    bad = np.argwhere(got != exp)
    assert bad.size == 0, f"{name}: {len(bad)} differ, first {bad[0]}: x={x[tuple(bad[0])]!r} " \
        f"got {got[tuple(bad[0])]!r} expected {exp[tuple(bad[0])]!r}"
    assert np.all(np.log2(qt.scales) == np.round(np.log2(qt.scales)))  # powers of two


@pytest.mark.parametrize("name", list(MX_REF))
def test_mx_error_within_half_step_unclipped(name):
    rng = np.random.default_rng(12)
    x = (rng.standard_normal((4, 256)) * np.exp2(rng.integers(-6, 6, (4, 8)).repeat(32, 1))).astype(F32)
    qt = encode(x, name)
    elem = get_format(MX_REF[name][0])
    X = np.repeat(qt.scales, 32, axis=-1)
    v = x / X
    unclipped = np.abs(v) <= elem.max
    grid = np.asarray(elem.values())
    grid = grid[np.isfinite(grid)]
    dist = np.abs(v[..., None] - grid).min(-1)  # distance to the nearest grid point
    err = np.abs(qt.dequantize() / X - v)
    assert np.all(err[unclipped] <= dist[unclipped] * (1 + 1e-12))
    # and the nearest grid point is within half a step of the element grid
    g = np.unique(np.abs(grid))
    half_step = np.diff(g).max() / 2
    assert np.all(err[unclipped] <= half_step)


# ---------------------------------------------------------------- generic properties
BLOCK_NAMES = ["mxfp4", "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e3m2", "mxfp6_e2m3", "mxint8", "nvfp4",
               "bfp8", "int8_pt", "int8_pc", "int4_pc", "int4_g128", "int8_g128", "int4_g32",
               "int4_g128_asym"]


@pytest.mark.parametrize("name,bpe", [("mxfp4", 4.25), ("mxfp8_e4m3", 8.25), ("mxfp8_e5m2", 8.25),
                                      ("mxfp6_e3m2", 6.25), ("mxfp6_e2m3", 6.25), ("nvfp4", 4.5),
                                      ("int4_g128", 4.25), ("int4_g32", 5.0), ("int8_g128", 8.25)])
def test_bits_per_element(name, bpe):
    assert get_format(name).bits_per_element == bpe
    x = np.ones((4, 256), F32)
    qt = encode(x, name)
    extra = 32 / x.size if name == "nvfp4" else 0.0
    assert qt.bits_per_element == pytest.approx(bpe + extra)


@pytest.mark.parametrize("name", BLOCK_NAMES)
def test_serialisation_roundtrip(name):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((6, 200)) * 3).astype(F32)
    qt = encode(x, name)
    b = qt.to_bytes()
    assert isinstance(b, (bytes, bytearray))
    back = QuantizedTensor.from_bytes(b)
    assert np.array_equal(back.dequantize(), qt.dequantize())
    assert np.array_equal(np.asarray(back.codes), np.asarray(qt.codes))
    assert tuple(back.shape) == tuple(qt.shape) and back.axis == qt.axis
    assert back.format == qt.format
    assert len(b) >= qt.nbytes  # payload at least the packed size


@pytest.mark.parametrize("name", BLOCK_NAMES)
def test_axis_and_dtype_and_shape(name):
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((64, 96)) * 5).astype(F32)
    a0 = quantize(x, name, axis=0)
    aT = quantize(np.ascontiguousarray(x.T), name, axis=-1).T
    assert np.array_equal(a0, aT)
    assert a0.dtype == np.float32 and a0.shape == x.shape
    y64 = quantize(x.astype(np.float64), name)
    assert y64.dtype == np.float64
    x3 = (rng.standard_normal((3, 40, 5))).astype(F32)
    y3 = quantize(x3, name, axis=1)
    assert y3.shape == x3.shape and y3.dtype == np.float32
    qt = encode(x3, name, axis=1)
    assert np.array_equal(y3, qt.dequantize().astype(F32))
    assert np.array_equal(qt.element_values(), decode(qt.codes, qt.format.element))


def test_decode_quantized_tensor():
    """Contract: decode(QuantizedTensor) -> dequantized values (no fmt argument needed)."""
    x = np.linspace(-3, 3, 64).astype(F32)
    qt = encode(x, "mxfp4")
    assert np.array_equal(decode(qt), qt.dequantize())


def test_mxfp8_floor_clips_block_max():
    # microxcaling #4: 957 -> 896 under FLOOR in MXFP8 E4M3 (X = 2^(9-8) = 2; 478.5 -> 448)
    x = _blk([957.0, 1.0])
    assert quantize(x, "mxfp8_e4m3")[0] == 896.0
    # RCEIL never clips: X = 2^ceil(log2(957/448)) = 4 -> 239.25 -> 240 -> 960
    f = BlockFormat(get_format("fp8_e4m3"), get_format("e8m0"), 32, scale_rule="rceil")
    assert quantize(x, f)[0] == 960.0


def test_ml_dtypes_not_used_as_lowbit_oracle_by_accident():
    # sanity for the reference above: 7 in an all-7 block clips to 6 under FLOOR
    deq, X = mx_reference(np.full((1, 32), 7.0), "fp4_e2m1", 2)
    assert X.tolist() == [[1.0]] and deq[0, 0] == 6.0
    assert ml_dtypes.finfo(ml_dtypes.float4_e2m1fn).max == 6.0


def mxint8_reference(x, k=32):
    """MXINT8: X = 2^floor(log2 amax) (emax_elem 0), P = clip(RNE(V/X * 64), -127, 127) / 64."""
    n = x.shape[-1]
    nb = -(-n // k)
    xp = np.zeros(x.shape[:-1] + (nb * k,))
    xp[..., :n] = x
    b = xp.reshape(x.shape[:-1] + (nb, k))
    amax = np.abs(b).max(-1)
    e = np.clip(np.where(amax == 0, -127, np.frexp(amax)[1] - 1), -127, 127)
    X = np.exp2(e.astype(np.float64))
    p = np.clip(np.rint(b / X[..., None] * 64), -127, 127) / 64
    return (p * X[..., None]).reshape(xp.shape)[..., :n], X


def test_mxint8_against_reference():
    rng = np.random.default_rng(21)
    x = (rng.standard_normal((8, 80)) * np.exp2(rng.integers(-10, 10, (8, 1)))).astype(F32)
    exp, X = mxint8_reference(x.astype(np.float64))
    qt = encode(x, "mxint8")
    assert np.array_equal(qt.scales, X)
    got = qt.dequantize()
    bad = np.argwhere(got != exp)
    assert bad.size == 0, f"{len(bad)} differ; first x={x[tuple(bad[0])]!r} got " \
        f"{got[tuple(bad[0])]!r} expected {exp[tuple(bad[0])]!r}"


@pytest.mark.parametrize("name,k,qmax", [("int4_g128", 128, 7), ("int4_g32", 32, 7),
                                         ("int8_g128", 128, 127), ("int8_pc", None, 127),
                                         ("int4_pc", None, 7), ("int8_pt", 0, 127)])
def test_int_symmetric_properties(name, k, qmax):
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((4, 384)) * np.exp2(rng.integers(-5, 5, (4, 1)))).astype(F32)
    qt = encode(x, name)
    d = qt.dequantize()
    if k is None:
        groups = x.reshape(4, 1, 384)
    elif k == 0:
        groups = x.reshape(1, 1, -1)
    else:
        groups = x.reshape(4, -1, k)
    amax = np.abs(groups).max(-1).astype(np.float64)
    s = np.asarray(qt.scales, np.float64).reshape(amax.shape)
    assert np.allclose(s, amax / qmax, rtol=1e-6, atol=0)
    s_el = np.broadcast_to(s[..., None], groups.shape).reshape(x.shape)
    q = d / s_el
    assert np.allclose(q, np.rint(q), rtol=0, atol=1e-6) and np.abs(q).max() <= qmax + 1e-6
    assert np.all(np.abs(d - x) <= s_el / 2 * (1 + 1e-5))


def test_int4_asym_properties():
    rng = np.random.default_rng(9)
    x = (rng.uniform(-1, 3, (4, 256)) * np.exp2(rng.integers(-4, 4, (4, 1)))).astype(F32)
    qt = encode(x, "int4_g128_asym")
    g = x.reshape(4, 2, 128).astype(np.float64)
    lo, hi = np.minimum(g.min(-1), 0), np.maximum(g.max(-1), 0)
    s = np.asarray(qt.scales, np.float64).reshape(4, 2)
    assert np.allclose(s, (hi - lo) / 15, rtol=1e-6)
    zp = np.asarray(qt.zero_point).reshape(4, 2)
    assert np.all((zp >= 0) & (zp <= 15)) and np.array_equal(zp, np.rint(zp))
    codes = np.asarray(qt.codes).reshape(4, 2, 128).astype(np.int64)
    d = qt.dequantize().reshape(4, 2, 128)
    assert np.allclose(d, (codes - zp[..., None]) * s[..., None], rtol=1e-6, atol=0)
    assert np.all(np.abs(d - g) <= s[..., None] / 2 * (1 + 1e-5))


def test_2d_tiles():
    tile = BlockFormat(get_format("fp4_e2m1"), get_format("e8m0"), (16, 16))
    rng = np.random.default_rng(10)
    x = (rng.standard_normal((32, 48)) * np.exp2(rng.integers(-3, 3, (32, 48)))).astype(F32)
    qt = encode(x, tile)
    assert qt.scales.shape == (2, 3)
    # reference: one FLOOR scale per 16x16 tile
    t = x.astype(np.float64).reshape(2, 16, 3, 16).transpose(0, 2, 1, 3).reshape(2, 3, 256)
    exp, X = mx_reference(t, "fp4_e2m1", 2, k=256)
    assert np.array_equal(qt.scales, X[..., 0] if X.ndim == 3 else X)
    exp = exp.reshape(2, 3, 16, 16).transpose(0, 2, 1, 3).reshape(32, 48)
    assert np.array_equal(qt.dequantize(), exp)
    # row-wise and column-wise agree for square tiles (TE 2-D weight blocks)
    assert np.array_equal(quantize(x, tile), quantize(np.ascontiguousarray(x.T), tile).T)


# ---------------------------------------------------------------- scale rules, validation, sizes
def test_mse_rule_never_worse_than_floor():
    rng = np.random.default_rng(40)
    x = (rng.standard_normal((64, 32)) * np.exp2(rng.integers(-4, 4, (64, 1)))).astype(F32)
    x[:, 0] *= 3  # outliers make FLOOR clip
    fl = BlockFormat(get_format("fp4_e2m1"), get_format("e8m0"), 32, scale_rule="floor")
    ms = BlockFormat(get_format("fp4_e2m1"), get_format("e8m0"), 32, scale_rule="mse")
    e_fl = ((encode(x, fl).dequantize() - x) ** 2).sum(-1)
    qm = encode(x, ms)
    e_ms = ((qm.dequantize() - x) ** 2).sum(-1)
    assert np.all(e_ms <= e_fl * (1 + 1e-12))
    assert np.all(np.log2(qm.scales) == np.round(np.log2(qm.scales)))  # still E8M0 scales
    assert (e_ms < e_fl).any()  # and it does pick other scales somewhere


def test_callable_scale_rule_fp32_scale():
    # fp32 scale = amax / 6 for FP4 elements: amax maps exactly onto 6
    f = BlockFormat(get_format("fp4_e2m1"), None, 8, scale_rule=lambda amax, el: amax / el.max)
    x = np.array([3.0, 1.0, -0.5, 0.0, 0.25, 2.0, 1.5, -3.0], F32)
    qt = encode(x, f)
    assert qt.scales.ravel().tolist() == [0.5]
    # /0.5: 6, 2, -1, 0, 0.5, 4, 3, -6 (all exact)
    assert qt.dequantize().tolist() == x.tolist()
    assert qt.scale_codes is None


def test_ue4m3_amax_scale_without_tensor_scale():
    f = BlockFormat(get_format("fp4_e2m1"), get_format("ue4m3"), 16, scale_rule="amax")
    x = np.zeros(16, F32)
    x[:3] = [1.0, -0.5, 0.33]
    qt = encode(x, f)
    # s = UE4M3_RNE(1/6) = 11 * 2^-6 = 0.171875; 1/s = 5.82 -> 6; -0.5/s = -2.91 -> -3;
    # 0.33/s = 1.92 -> 2
    assert qt.scales.ravel().tolist() == [0.171875]
    assert qt.dequantize()[:3].tolist() == [6 * 0.171875, -3 * 0.171875, 2 * 0.171875]
    assert qt.tensor_scale is None


def test_block_format_validation():
    fp4, e8 = get_format("fp4_e2m1"), get_format("e8m0")
    with pytest.raises(ValueError) as ei:
        BlockFormat(fp4, e8, 32, scale_rule="median")
    for r in ("floor", "ceil", "rceil", "even", "mse", "amax"):
        assert r in str(ei.value)
    with pytest.raises(ValueError):
        BlockFormat(fp4, e8, 0)
    with pytest.raises((ValueError, TypeError)):
        BlockFormat(fp4, e8, 2.5)


def test_bad_axis_and_corrupt_bytes():
    x = np.ones((4, 32), F32)
    with pytest.raises((ValueError, IndexError, np.exceptions.AxisError)):
        quantize(x, "mxfp4", axis=2)
    b = encode(x, "mxfp4").to_bytes()
    with pytest.raises((ValueError, KeyError)):
        QuantizedTensor.from_bytes(b"garbage" + b[7:])
    with pytest.raises((ValueError, KeyError, EOFError)):
        QuantizedTensor.from_bytes(b[: len(b) // 2])


def test_nbytes_and_shapes():
    x = np.ones((4, 256), F32)
    qt = encode(x, "mxfp4")
    assert qt.nbytes == 4 * 256 // 2 + 4 * 8      # packed nibbles + one byte per 32-block
    assert qt.scales.shape == (4, 8)
    qt = encode(x, "nvfp4")
    assert qt.nbytes == 4 * 256 // 2 + 4 * 16 + 4  # + the FP32 tensor scale
    qt = encode(x, "int8_pt")
    assert np.shape(qt.scales) in ((), (1,), (1, 1))
    qt = encode(np.ones((3, 64), np.float16), "mxfp8_e4m3")
    assert quantize(np.ones((3, 64), np.float16), "mxfp8_e4m3").dtype == np.float32
    assert qt.codes.shape == (3, 64)


# ------------------------------------------------- wide-range blocks (table index safety)
@pytest.mark.parametrize("name", ["mxfp4", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp8_e4m3", "mxfp8_e5m2"])
@pytest.mark.parametrize("rounding", ["rne", "rtz", "rup", "rdown", "rna", "rto"])
def test_mx_wide_range_block_float32_equals_float64(name, rounding):
    """A block spanning more than 2^126 (an element below 2^(e-126) for block scale 2^e) once
    made the float32 table path index past its table (the sign moved one bit too far). Every
    such element must get the same code as the generic float64 path, -0 keeping its sign."""
    rng = np.random.default_rng(5)
    big = [2.0**100, 2.0**127, 3.0 * 2**126, 2.0**-100, 1.0]
    tiny = [-2.0**-30, 2.0**-30, -2.0**-126, 2.0**-140, -2.0**-149, -0.0, 0.0, -1e-38, 1e-45]
    rows = []
    for b in big:
        for _ in range(8):
            blk = rng.choice(tiny, size=32).astype(np.float64)
            blk[rng.integers(32)] = b * rng.choice([-1.0, 1.0])
            rows.append(blk)
    x32 = np.array(rows, dtype=F32)
    q32 = encode(x32, name, rounding=rounding)
    q64 = encode(x32.astype(np.float64), name, rounding=rounding)
    assert np.array_equal(q32.codes, q64.codes)
    assert np.array_equal(q32.scales, q64.scales)
    assert int(q32.codes.max()) < (1 << get_format(name).element.bits)
    d = q32.dequantize()
    assert not np.isnan(d).any()
    assert np.array_equal(np.signbit(d), np.signbit(q64.dequantize()))


def test_mxfp4_issue_block_exact_codes():
    """The reported block [2**100, -2**-30]: scale 2^98, -2^-30 rounds to -0 (code 8)."""
    x = _blk([2.0**100, -2.0**-30])
    qt = encode(x, "mxfp4")
    assert qt.scales[0] == 2.0**98
    assert int(qt.codes[0]) == 0b0110 and int(qt.codes[1]) == 0b1000
    assert np.all(qt.codes[2:] == 0)
    d = qt.dequantize()
    assert d[0] == 2.0**100 and d[1] == 0.0 and np.signbit(d[1])
