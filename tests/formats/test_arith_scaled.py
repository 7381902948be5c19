"""The branch-free path for general block scales (lowbit.formats._arith_scaled: NVFP4, FP32-scaled
groups / channels) equals the exact kernel bit for bit (``LOWBIT_SLOW_FORMATS=1``: the exact
rounding kernel on the same float64 quotients).

NVFP4 blocks are built so that the quotients hit every E2M1 rounding boundary exactly: the
tensor amax is ``2688 * 2**k`` (tensor scale ``2**k`` exactly), each block's amax ``6 * s0 *
2**k`` for a UE4M3 value ``s0`` (block scale ``s0`` exactly), and the other elements are the
boundaries ``b * s0 * 2**k`` (ties), one float32 ulp either side, grid points, signed zeros and
float32 subnormals; blocks whose amax rounds its scale down (saturating elements), NaN / Inf and
all-zero blocks; random tensors."""

import numpy as np
import pytest
from fast_path_ref import assert_same_as_exact, nvfp4_tie_blocks

from lowbit.formats import BlockFormat, encode, get_format
from lowbit.formats._arith_scaled import scaled_params
from lowbit.formats._codec import kernel_params

F32 = np.float32


def _takes_path(fmt, **kw) -> bool:
    P = kernel_params(get_format(fmt).element if isinstance(fmt, str) else fmt.element,
                      "rne", kw.get("overflow", "saturate"), kw.get("nan_input", "error"))
    el = get_format(fmt).element if isinstance(fmt, str) else fmt.element
    return scaled_params(el, P.tobytes()) is not None


@pytest.mark.parametrize("k", [-140, -20, 0, 7, 100])
def test_nvfp4_exact_ties_at_every_boundary(k):
    x = nvfp4_tie_blocks(k, seed=k + 200)
    qt = encode(x, "nvfp4")
    assert qt.tensor_scale == 2.0 ** k  # the construction gives exact ties
    for kw in (dict(), dict(overflow="nonsat"), dict(overflow="propagate"),
               dict(nan_input="zero"), dict(overflow="error")):
        assert _takes_path("nvfp4", **kw) == (kw.get("overflow") != "error")
        xx = x if kw.get("overflow") != "error" else x[np.isfinite(x).all(axis=1)]
        assert_same_as_exact(xx, "nvfp4", **kw)


@pytest.mark.parametrize("fmt", ["nvfp4", "fp4_e2m1_g32", "fp8_e4m3_pc", "fp6_e2m3_g128",
                                 "fp8_e5m2_g32"])
def test_general_scales_equal_exact_on_random_tensors(fmt):
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((8, 512)) * np.exp2(rng.integers(-60, 60, (8, 512)))).astype(F32)
    x[1, :40] = 0.0
    x[2, 7] = np.nan
    assert _takes_path(fmt)
    assert_same_as_exact(x, fmt)
    assert_same_as_exact(np.ascontiguousarray(x[:, :96].T), fmt, axis=0)
    assert_same_as_exact(x.astype(np.float64), fmt)


def test_custom_two_level_format():
    fmt = BlockFormat(get_format("fp6_e3m2"), get_format("ue4m3"), 16, "amax",
                      tensor_scale=True, name="nvfp6_test")
    x = nvfp4_tie_blocks(3, seed=1) * F32(1.7)
    assert _takes_path(fmt)
    assert_same_as_exact(x, fmt)


def test_integer_elements_and_error_policy_take_the_table():
    P = kernel_params(get_format("int4_g128").element)
    assert scaled_params(get_format("int4_g128").element, P.tobytes()) is None
    P = kernel_params(get_format("fp4_e2m1"), "rne", "error")
    assert scaled_params(get_format("fp4_e2m1"), P.tobytes()) is None
    P = kernel_params(get_format("fp8_e4m3"), "rne", "nonsat")  # E4M3 overflows to NaN
    assert scaled_params(get_format("fp8_e4m3"), P.tobytes()) is None
