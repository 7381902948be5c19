"""The branch-free float32 fast path (lowbit.formats._arith) equals the exact rounding kernel
bit for bit: for every float format it takes, under every overflow / NaN-input policy, on the
smallest and largest float32 of every rounding class (sign, exponent, top m+1 mantissa bits,
sticky - the classes of the lookup-table proof), the values one below / at / one above each
tie, and every special value; and the block path (power-of-two scales) equals the float64
input path, which the exact kernel computes, on blocks spanning the whole float32 range."""

import numpy as np
import pytest

from lowbit.formats import FloatFormat, encode, get_format, quantize
from lowbit.formats import _kernel as K
from lowbit.formats._arith import A_ALIM, A_MAX, arith_encode, arith_params, magnitude
from lowbit.formats._codec import kernel_params

ELEMENTS = ["fp8_e4m3", "fp8_e5m2", "fp8_e3m4", "fp6_e2m3", "fp6_e3m2", "fp4_e2m1", "fp16",
            "e1m2", "e2m2", "e5m1fn", "e2m5fn", "e3m3", "e1m1", "e4m7", "e6m9", "e7m5"]
POLICIES = [(o, n) for o in ("saturate", "nonsat", "propagate", "error")
            for n in ("error", "zero", "max")]
SPECIALS = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45, -1e-45, 2.0**-126,
                     3.4028235e38, -3.4028235e38], np.float32)


def class_inputs(mbits: int, step: int = 1) -> np.ndarray:
    """Bit patterns: smallest, largest, tie - 1, tie, tie + 1 and one more of every rounding
    class of a format with ``mbits`` mantissa bits (every ``step``-th class)."""
    k = mbits + 1
    sh = 23 - k
    top = np.arange(0, 1 << (k + 9), step, dtype=np.uint64) << np.uint64(sh)
    rem = np.array([0, 1, (1 << (sh - 1)) - 1, 1 << (sh - 1), (1 << (sh - 1)) + 1,
                    (1 << sh) - 1], np.uint64)
    u = (top[:, None] | rem[None, :]).reshape(-1).astype(np.uint32)
    return np.concatenate([u, SPECIALS.view(np.uint32)])


def exact_codes(u, P):
    out = np.empty(u.shape[0], np.int64)
    K.encode_kernel.serial(u, 23, 8, np.zeros(1, np.int64), u.shape[0], P, np.uint64(0), 0, out)
    return out


@pytest.mark.parametrize("name", ELEMENTS)
def test_element_path_equals_the_exact_kernel(name):
    f = get_format(name)
    u = class_inputs(f.mbits, step=1 if f.mbits <= 7 else 7)
    vt = f.values()
    for ovf, nin in POLICIES:
        P = kernel_params(f, "rne", ovf, nin)
        qc, qv = arith_params(f, P.tobytes(), False), arith_params(f, P.tobytes(), True)
        assert qc is not None and qv is not None, (name, ovf, nin)
        ref = exact_codes(u, P)
        ok = ref >= 0
        codes = np.empty(u.shape[0], np.uint32)
        vals = np.empty(u.shape[0], np.uint32)
        nbad = arith_encode(u, qc, codes)
        assert arith_encode(u, qv, vals) == nbad == int((~ok).sum()), (name, ovf, nin)
        np.testing.assert_array_equal(codes[ok], ref[ok].astype(np.uint32), err_msg=f"{name} {ovf} {nin}")
        want = vt[np.where(ok, ref, 0)].astype(np.float32).view(np.uint32)
        np.testing.assert_array_equal(vals[ok], want[ok], err_msg=f"{name} {ovf} {nin} values")


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp4_e2m1", "e5m1fn"])
def test_fast_loop_and_stage_fallback_equal_the_exact_kernel(name):
    """The fast loop (stages of finite inputs; saturating overflow by its clamp) and the
    general loop (stages holding NaN / Inf or, under nonsat / error, an overflowing input),
    on the rounding classes shuffled so that stages of both kinds alternate, and on finite
    inputs only (every stage fast under saturate / propagate); the overflow threshold
    ``A_ALIM`` is the first pattern whose result exceeds the maximum."""
    f = get_format(name)
    rng = np.random.default_rng(7)
    u = class_inputs(f.mbits)
    finite = u[(u & 0x7FFFFFFF) < 0x7F800000]
    mixed = rng.permutation(np.concatenate([finite, np.repeat(SPECIALS.view(np.uint32), 3)]))
    for ovf, nin in POLICIES:
        P = kernel_params(f, "rne", ovf, nin)
        for values in (False, True):
            q = arith_params(f, P.tobytes(), values)
            alim = int(q[A_ALIM])
            if alim < 0x7F800000:
                assert magnitude(np.uint32(alim - 1), q) <= q[A_MAX] < magnitude(
                    np.uint32(alim), q), (name, ovf, values)
            for src in (finite, mixed):
                ref = exact_codes(src, P)
                ok = ref >= 0
                out = np.empty(src.shape[0], np.uint32)
                assert arith_encode(src, q, out) == int((~ok).sum()), (name, ovf, nin)
                want = ref if not values else f.values()[np.where(ok, ref, 0)].astype(
                    np.float32).view(np.uint32)
                np.testing.assert_array_equal(out[ok], np.asarray(want)[ok].astype(np.uint32),
                                              err_msg=f"{name} {ovf} {nin} values={values}")


def test_formats_and_policies_outside_the_path_are_refused():
    for fmt, kw in ((get_format("fp8_e4m3fnuz"), {}), (get_format("ue4m3"), {}),
                    (get_format("e8m0"), {}), (get_format("fp32"), {}), (get_format("int8"), {}),
                    (get_format("bf16"), {}), (get_format("tf32"), {}),
                    (get_format("fp8_e4m3"), dict(rounding="rtz")),
                    (get_format("fp8_e4m3"), dict(subnormal_output="flush")),
                    (FloatFormat(4, 3, nan="fn", subnormals=False), {})):
        P = kernel_params(fmt, **kw)
        assert arith_params(fmt, P.tobytes(), False) is None, (fmt.name, kw)


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp4_e2m1", "fp6_e3m2"])
def test_public_calls_take_the_path_and_agree_with_float64(name):
    """encode / quantize of float32 (fast path) = of the same values as float64 (exact kernel),
    including the named error of a NaN for a format without NaN."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(5000) * np.exp2(rng.integers(-30, 30, 5000))).astype(np.float32)
    x[:len(SPECIALS) - 2] = SPECIALS[[0, 1, 2, 3, 6, 7, 8, 9, 10]]
    for kw in (dict(), dict(overflow="nonsat"), dict(nan_input="zero")):
        np.testing.assert_array_equal(encode(x, name, **kw), encode(x.astype(np.float64), name,
                                                                    **kw))
        a, b = quantize(x, name, **kw), quantize(x.astype(np.float64), name, **kw)
        np.testing.assert_array_equal(a, b.astype(np.float32))
    if not get_format(name).has_nan:
        with pytest.raises(ValueError, match="NaN input at flat index 3"):
            encode(np.array([1, 2, 3, np.nan], np.float32), name)
    with pytest.raises(ValueError, match="overflows"):
        encode(np.array([1, 1e30], np.float32), name, overflow="error")


@pytest.mark.parametrize("name", ["mxfp4", "mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3",
                                  "fp4_e2m1_g32"])
def test_block_path_equals_float64(name):
    """Power-of-two block scales over blocks spanning float32's range (2**100 next to 2**-30,
    float32 subnormals, NaN / Inf blocks, zero blocks): float32 input (fast path) = float64
    input (exact kernel), codes, scales and dequantized values."""
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((48, 64)) * np.exp2(rng.integers(-140, 120, (48, 64)))).astype(
        np.float32)
    x[0, :2] = [2.0**100, -2.0**-30]
    x[1, :32] = np.float32(1e-45) * np.arange(32)
    x[2, 3], x[3, 5] = np.nan, -np.inf
    x[4] = 0.0
    x[5, :32] = -0.0
    x[6] = 3.0e38
    for kw in (dict(), dict(overflow="nonsat"), dict(nan_input="zero")):
        a, b = encode(x, name, **kw), encode(x.astype(np.float64), name, **kw)
        np.testing.assert_array_equal(a.codes, b.codes)
        np.testing.assert_array_equal(a.scale_codes, b.scale_codes)
        qa, qb = quantize(x, name, **kw), quantize(x.astype(np.float64), name, **kw)
        np.testing.assert_array_equal(qa.view(np.uint32),
                                      qb.astype(np.float32).view(np.uint32))


def test_nan_block_is_not_an_error_of_its_neighbours():
    """A NaN in one MX block of an element format without NaN (fp4_e2m1, nan_input="error"):
    the block gets a NaN scale, no error is raised for it (the block engine's rule), and the
    other blocks are rounded as usual."""
    x = np.linspace(-6, 6, 64, dtype=np.float32).reshape(1, 64)
    x[0, 3] = np.nan
    qt = encode(x, "mxfp4")
    assert np.isnan(qt.scales[0, 0]) and np.all(qt.codes[0, :32] == 0)
    np.testing.assert_array_equal(qt.codes[0, 32:], encode(x[:, 32:], "mxfp4").codes[0])
