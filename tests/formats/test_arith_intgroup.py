"""The branch-free path for integer block formats with general scales
(lowbit.formats._arith_intgroup: INT groups / channels) equals the exact kernel bit for bit
(``LOWBIT_SLOW_FORMATS=1``: the exact rounding kernel on the same float64 quotients).

Blocks are built so that the quotients hit every rounding tie exactly: a block's amax is
``qmax * 2**e`` (scale ``2**e`` exactly under the amax rule) and its other elements are ``(j +
1/2) * 2**e`` for every integer ``j`` of the range (ties), one float32 / float64 ulp either side,
grid points, signed zeros and float32 subnormals; blocks whose scale rounds down (quotients just
above ``qmax``: saturation), NaN / Inf and all-zero blocks; random tensors over many binades."""

import numpy as np
import pytest
from fast_path_ref import assert_same_as_exact

from lowbit.formats import BlockFormat, IntFormat, get_format
from lowbit.formats._arith_intgroup import int_params
from lowbit.formats._codec import kernel_params

FORMATS = ["int4_g128", "int8_g128", "int4_g32", "int8_pc",
           BlockFormat(IntFormat(4), None, 16, "amax", name="int4_full_g16"),
           BlockFormat(IntFormat(6, narrow=True), None, 8, "amax", name="int6_g8")]


def fmt_obj(fmt):
    return get_format(fmt) if isinstance(fmt, str) else fmt


def tie_blocks(fmt, dtype, seed=0) -> np.ndarray:
    """(rows, k) array as the module docstring describes."""
    f = fmt_obj(fmt)
    k = f.block_size if f.block_size and f.block_size > 0 else 64  # -1: one block per row
    el = f.element
    qmax = int(el.values()[np.isfinite(el.values())].max())
    rng = np.random.default_rng(seed)
    j = np.arange(-qmax, qmax)
    units = np.concatenate([j + 0.5, j, [0.0, -0.0]])
    rows = []
    for e in list(range(-120, 121, 7)) + [-149 + 8, 100]:
        s = 2.0 ** e
        row = units[rng.integers(0, units.size, k)] * s
        row[0] = qmax * s  # amax: the scale is 2**e exactly
        r = row.astype(dtype)
        step = rng.integers(-1, 2, k).astype(r.view(np.int64 if dtype == np.float64
                                                     else np.int32).dtype)
        step[0] = 0
        bits = r.view(step.dtype)
        r = np.where(r != 0, (bits + step).view(dtype), r)
        r = np.clip(r, -r[0], r[0])
        rows.append(r)
        sat = row.copy()
        sat[0] = qmax * s * (1 + 2.0**-30)  # scale qmax*s*(1+eps)/qmax rounds down in float32
        rows.append(sat.astype(dtype))
    special = np.zeros((5, k))
    special[1] = -0.0
    special[2, 3] = np.nan
    special[3, 1] = -np.inf
    special[4] = 1e-45 * np.arange(1, k + 1)
    return np.concatenate([np.array(rows, dtype=np.float64), special]).astype(dtype)


def takes_path(fmt, rounding="rne", overflow="saturate"):
    P = kernel_params(fmt_obj(fmt).element, rounding, overflow, "error")
    return int_params(P.tobytes()) is not None


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: getattr(f, "name", f))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_ties_saturation_and_special_blocks(fmt, dtype):
    x = tie_blocks(fmt, dtype, seed=len(str(fmt)))
    assert takes_path(fmt)
    assert_same_as_exact(x, fmt)
    assert_same_as_exact(x, fmt, nan_input="zero")


@pytest.mark.parametrize("fmt", FORMATS[:4])
def test_random_tensors_layouts_and_dtypes(fmt):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((48, 256)) * np.exp2(rng.integers(-60, 60, (48, 1)))
    x[rng.random(x.shape) < 0.05] = 0.0
    half = (x / np.abs(x).max(axis=1, keepdims=True) * 1000).astype(np.float16)
    for xx in (x.astype(np.float32), x, half, x.astype(np.float32)[:, :200]):
        assert_same_as_exact(xx, fmt)
    assert_same_as_exact(x.astype(np.float32).T.copy(), fmt, axis=0)


@pytest.mark.parametrize("rounding,overflow", [("rna", "saturate"), ("rtz", "saturate"),
                                               ("rne", "error"), ("rne", "sat_sym")])
def test_other_policies_take_the_table_and_agree(rounding, overflow):
    assert not takes_path("int4_g128", rounding, overflow)
    x = tie_blocks("int4_g128", np.float32)
    x = x[np.isfinite(x).all(axis=1)]
    assert_same_as_exact(x, "int4_g128", rounding=rounding, overflow=overflow)


def test_path_refuses_fraction_bits_and_takes_32_bit_integers():
    assert int_params(kernel_params(IntFormat(8, frac_bits=6)).tobytes()) is None
    assert int_params(kernel_params(IntFormat(8, signed=False)).tobytes()) is not None
    q = int_params(kernel_params(IntFormat(32)).tobytes())
    assert list(q) == [-2**31, 2**31 - 1, 2**32 - 1]
    fmt = BlockFormat(IntFormat(32), None, 16, "amax", name="int32_g16")
    x = np.random.default_rng(9).standard_normal((8, 64))
    x[0, :16] = (np.arange(16) - 7.5) * 2.0**-30 * (2**31 - 1) / 8
    assert_same_as_exact(x, fmt)
