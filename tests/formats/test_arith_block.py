"""The fused MX block path (lowbit.formats._arith_block) equals the exact kernel bit for bit.

References: the same float32 input with ``LOWBIT_SLOW_FORMATS=1`` (every conversion through the
exact rounding kernel ``_kernel.encode_one``, block scales by ``scale_rules.pow2_exponent``) and
the float64 copy of the input (which never takes the float32 fast paths). Inputs: blocks built
around every scale exponent a float32 amax can give (float32 subnormal amax up to 2**127),
holding the element grid's ties, the values one float32 ulp either side, the grid points,
subnormal element results, overflowing values, signed zeros and float32 subnormals; NaN / Inf /
all-zero / negative-zero blocks; then random tensors over float32's whole exponent range. The
scale exponent computed from the amax bits is checked against ``pow2_exponent`` on every float32
exponent with the mantissas at each rule's decision points."""

import numpy as np
import pytest
from fast_path_ref import encode_and_quantize

from lowbit.formats import BlockFormat, FloatFormat, encode, get_format, quantize
from lowbit.formats._arith_block import rule_exponents, rule_params
from lowbit.formats._codec import kernel_params
from lowbit.formats.block_engine import _fused_params
from lowbit.formats.block_scales import clamp_exp
from lowbit.formats.scale_rules import POW2_RULES, pow2_exponent

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
F32 = np.float32
E8M0 = get_format("e8m0")
ELEMENTS = ["fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp6_e3m2", "fp4_e2m1", "fp8_e3m4"]
NAMED = ["mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4"]
POLICIES = [dict(), dict(overflow="nonsat"), dict(overflow="propagate"),
            dict(nan_input="zero"), dict(nan_input="max"), dict(overflow="error")]


def _custom(el: str, rule: str, scale=E8M0, k: int = 32) -> BlockFormat:
    return BlockFormat(get_format(el), scale, k, rule, name=f"{el}_{rule}_{k}")


def amax_patterns(el) -> np.ndarray:
    """float32 bit patterns of block maxima: zero, subnormals (powers of two and their
    neighbours), and for every exponent field 1..254 the mantissas where a rule decides (0, 1,
    the element max's mantissa and its neighbours, the ties and ulps of RNE to ``mbits``)."""
    mx = int(np.array(F32(el.max)).view(np.uint32)) & 0x7FFFFF
    m = el.mbits
    half, ulp = 1 << (22 - m), 1 << (23 - m)
    mants = {0, 1, 2, half - 1, half, half + 1, ulp + half - 1, ulp + half, ulp + half + 1,
             mx - 1, mx, mx + 1, 0x3FFFFF, 0x400000, 0x7FFFFE, 0x7FFFFF}
    mants = np.array(sorted(v for v in mants if 0 <= v <= 0x7FFFFF), np.uint32)
    normal = ((np.arange(1, 255, dtype=np.uint32)[:, None] << 23) | mants[None, :]).reshape(-1)
    p = np.arange(23, dtype=np.uint32)
    sub = np.concatenate([np.uint32(1) << p, (np.uint32(1) << p) + 1, (np.uint32(2) << p) - 1,
                          mants[mants > 0], [0]]).astype(np.uint32)
    return np.concatenate([sub, normal])


@pytest.mark.parametrize("el", ELEMENTS)
def test_scale_exponent_from_bits_equals_pow2_exponent(el):
    """rule_exponents (from the float32 amax bits) = pow2_exponent (float64 frexp) clamped, for
    every rule, with the E8M0 and the FP32 scale ranges."""
    f = get_format(el)
    bits = amax_patterns(f)
    amax = bits.view(F32).astype(np.float64)
    for rule in POW2_RULES:
        for scale in (E8M0, None):
            fmt = _custom(el, rule, scale)
            R = rule_params(fmt)
            assert R is not None, (el, rule, scale)
            got = np.empty(bits.shape[0], np.int64)
            rule_exponents(bits, R, got)
            want = clamp_exp(pow2_exponent(amax, rule, f), fmt)
            bad = np.flatnonzero(got != want)
            assert bad.size == 0, (el, rule, scale, [(hex(int(bits[i])), int(got[i]),
                                                      int(want[i])) for i in bad[:5]])


def adversarial_rows(fmt: BlockFormat, seed: int = 0) -> np.ndarray:
    """Rows of ``k`` float32 (one block each): for every scale exponent a float32 amax can
    give, a block whose amax is ``2**(e + emax)`` times 1, the element max's significand or
    just under 2, filled with the element grid's ties, the values one ulp either side, grid
    points, subnormal results, overflowing values, signed zeros and float32 subnormals, all
    scaled by the block's scale; then special blocks."""
    rng = np.random.default_rng(seed)
    el, k = fmt.element, fmt.block_size
    grid = el.values()
    grid = np.unique(np.abs(grid[np.isfinite(grid)]))
    ties = (grid[:-1] + grid[1:]) / 2
    unit = np.concatenate([grid, ties, grid[-1:] * [1.01, 1.25, 1.5, 1.99, 2.0]])
    sig_max = float(el.max) / 2.0 ** el.emax
    rows = []
    for fl in range(-149, 128):
        for sig in (1.0, sig_max, 2.0 - 2.0 ** -23):
            amax = np.ldexp(sig, fl)
            if not np.isfinite(F32(amax)) or F32(amax) == 0:
                continue
            e = int(clamp_exp(pow2_exponent(np.array([amax]), fmt.scale_rule, el), fmt)[0])
            pick = np.minimum(unit[rng.integers(0, unit.size, k - 1)] * 2.0 ** e, amax)
            vals = pick.astype(F32)
            step = rng.integers(-1, 2, k - 1).astype(np.int32)  # one float32 ulp either side
            vals = (vals.view(np.int32) + np.where(vals != 0, step, 0)).view(F32)
            vals = np.minimum(vals, F32(amax))
            vals[rng.random(k - 1) < 0.05] = F32(1e-45) * rng.integers(1, 1 << 20)
            vals = np.where(rng.random(k - 1) < 0.5, -vals, vals)
            vals[rng.random(k - 1) < 0.05] = F32(-0.0)
            rows.append(np.concatenate([[F32(amax) * rng.choice([-1, 1])], vals]).astype(F32))
    special = np.zeros((9, k), F32)
    special[1] = -0.0
    special[2, 3] = np.nan
    special[3, 5] = np.inf
    special[4, 7] = -np.inf
    special[5] = F32(1e-45) * np.arange(1, k + 1)  # float32 subnormals, e < 0
    special[6] = special[5]
    special[6, 0] = 1.0  # subnormals next to a normal amax
    special[7] = np.finfo(F32).max * np.linspace(-1, 1, k)
    special[8] = np.finfo(F32).max
    return np.concatenate([np.array(rows, F32), special])


def assert_same(x, fmt, **kw):
    """The fused path on float32 ``x`` equals the exact kernel (LOWBIT_SLOW_FORMATS) on the
    same input and the float64 input: codes, scales, scale codes and quantized values, or the
    same error message."""
    got = encode_and_quantize(x, fmt, False, **kw)
    for ref in (encode_and_quantize(x, fmt, True, **kw),
                encode_and_quantize(x.astype(np.float64), fmt, False, **kw)):
        if isinstance(ref, str) or isinstance(got, str):
            assert got == ref, (fmt.name, kw)
            continue
        (qa, va), (qb, vb) = got, ref
        np.testing.assert_array_equal(qa.codes, qb.codes, err_msg=f"{fmt.name} {kw}")
        np.testing.assert_array_equal(qa.scales, qb.scales, err_msg=f"{fmt.name} {kw}")
        if fmt.scale is not None:
            np.testing.assert_array_equal(qa.scale_codes, qb.scale_codes)
        np.testing.assert_array_equal(va.view(np.uint32), vb.astype(F32).view(np.uint32),
                                      err_msg=f"{fmt.name} {kw} values")


def _takes_fused(fmt, **kw) -> bool:
    P = kernel_params(fmt.element, kw.get("rounding", "rne"), kw.get("overflow", "saturate"),
                      kw.get("nan_input", "error"))
    return _fused_params(fmt, P) is not None


@pytest.mark.parametrize("name", NAMED)
def test_fused_equals_exact_on_adversarial_blocks(name):
    fmt = get_format(name)
    x = adversarial_rows(fmt)
    for kw in POLICIES:
        assert _takes_fused(fmt, **kw), (name, kw)
        xx = x if kw.get("overflow") != "error" else x[np.isfinite(x).all(axis=1)]
        assert_same(xx, fmt, **kw)


@pytest.mark.parametrize("el,rule,scale,k", [
    ("fp4_e2m1", "ceil", E8M0, 32), ("fp8_e4m3", "rceil", E8M0, 32),
    ("fp6_e3m2", "even", E8M0, 16), ("fp8_e5m2", "floor", None, 32),
    ("fp4_e2m1", "rceil", None, 8), ("fp8_e3m4", "even", None, 64)])
def test_fused_equals_exact_other_rules_and_fp32_scales(el, rule, scale, k):
    fmt = _custom(el, rule, scale, k)
    assert _takes_fused(fmt)
    x = adversarial_rows(fmt, seed=k)
    for kw in (dict(), dict(overflow="nonsat"), dict(nan_input="max")):
        assert_same(x, fmt, **kw)


def test_fused_equals_exact_on_random_tensors_and_layouts():
    """Random values over float32's exponent range (zeros, float32 subnormals, huge values),
    blocked along the last axis, along axis 0 (rows gathered from columns), with a ragged
    last block, as float16 input, and in pieces smaller than the tensor."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((6, 4096)) * np.exp2(rng.integers(-150, 127, (6, 4096)))).astype(F32)
    x[0, :100] = 0.0
    for name in NAMED:
        fmt = get_format(name)
        assert_same(x, fmt)
        assert_same(x[:, :1000], fmt)  # ragged last block
        assert_same(np.ascontiguousarray(x[:, :96].T), fmt, axis=0)
    h = (rng.standard_normal((4, 256)) * 8).astype(np.float16)
    np.testing.assert_array_equal(encode(h, "mxfp4").codes, encode(h.astype(F32), "mxfp4").codes)
    np.testing.assert_array_equal(quantize(h, "mxfp4"), quantize(h.astype(np.float64), "mxfp4")
                                  .astype(F32))


def test_formats_outside_the_fused_path():
    """Non-RNE rounding, flush-to-zero output, an FP32-scaled amax rule, tensor scales, MSE and
    integer / E8M0 elements take the other paths."""
    assert not _takes_fused(get_format("mxfp4"), rounding="rtz")
    P = kernel_params(get_format("fp4_e2m1"), "rne", "saturate", "error", "flush")
    assert _fused_params(get_format("mxfp4"), P) is None
    for name in ("nvfp4", "mxint8", "int4_g128", "fp4_e2m1_g32", "bfp8"):
        assert rule_params(get_format(name)) is None, name
    assert rule_params(BlockFormat(get_format("fp4_e2m1"), E8M0, 32, "mse")) is None
    wide = BlockFormat(FloatFormat(8, 23, name="f32el"), E8M0, 32, "floor")
    P = kernel_params(wide.element)
    assert _fused_params(wide, P) is None  # 23 mantissa bits: no branch-free element path
