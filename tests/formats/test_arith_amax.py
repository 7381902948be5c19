"""The NVFP4 amax pass (lowbit.formats._arith_amax: scale codes and element codes by threshold
comparisons) equals the exact kernel bit for bit (``LOWBIT_SLOW_FORMATS=1``: float64 quotients
through the exact rounding kernel) and the ml_dtypes NVFP4 reference.

Adversarial inputs: for several tensor scales (powers of two from 2**-149 to 2**100 and
non-powers of two), blocks whose amax is every scale threshold ``B[c]`` and its float32
neighbours, each holding every element threshold of its scale code and its neighbours (so every
tie direction and every off-by-one-ulp shows); the exact-tie blocks of ``nvfp4_tie_blocks``;
NaN / Inf / zero / ``-0.0`` / float32-subnormal blocks; every policy NVFP4 accepts; float16,
float64, ragged, axis-0 and 3-D inputs; formats with 32-element blocks, no tensor scale, and a
scale format with more than 16 codes per binade (the binary-search branch)."""

import numpy as np
import pytest
from fast_path_ref import assert_same_as_exact, nvfp4_tie_blocks
from lowbit_formats_ref import nvfp4_reference

from lowbit.formats import BlockFormat, FloatFormat, encode, get_format, quantize
from lowbit.formats import block_engine as BE
from lowbit.formats._amax_tables import (
    K_TILE,
    K_WINDOW,
    P_EHI,
    P_ELO,
    amax_params,
    amax_tables,
)
from lowbit.formats._codec import kernel_params
from lowbit.formats.block_scales import _amax_scale, scale_codes, tensor_scale

F32 = np.float32
POLICIES = (dict(), dict(overflow="nonsat"), dict(overflow="propagate"), dict(nan_input="zero"),
            dict(nan_input="max"))
POLICY_KW = dict(rounding="rne", overflow="saturate", nan_input="error",
                 subnormal_output="keep", sr_bits=32)
NVFP4 = get_format("nvfp4")
SCALE_E2M5 = FloatFormat(2, 5, signed=False, nan=None, name="ue2m5_test")  # 32 codes a binade


def _params(fmt, **kw):
    p = dict(POLICY_KW, **kw)
    P = kernel_params(fmt.element, p["rounding"], p["overflow"], p["nan_input"],
                      p["subnormal_output"], p["sr_bits"])
    return amax_params(fmt, P, p)


@pytest.fixture
def pass_calls(monkeypatch):
    """Counts the blocks the amax pass encodes (so a test cannot pass on another path)."""
    calls = []
    kernel = BE.amax_encode_rows

    def counted(u, nrows, *args):
        calls.append(nrows)
        return kernel(u, nrows, *args)
    monkeypatch.setattr(BE, "amax_encode_rows", counted)
    return calls


def threshold_blocks(fmt, tensor_amax: float, seed: int = 0) -> np.ndarray:
    """(n, k) float32 rows: one holding ``tensor_amax``; then, for every scale code ``c``,
    blocks whose amax is the scale threshold ``B[c]`` and its float32 neighbours, filled with
    every element threshold of that block's scale code, one float32 ulp either side, with
    random signs (values above the block amax dropped)."""
    rng = np.random.default_rng(seed)
    k = fmt.block_size
    ts = tensor_scale(np.array([tensor_amax]), fmt) if fmt.tensor_scale else None
    T = amax_tables(fmt, _params(fmt), ts)
    rows = [np.zeros(k, F32)]
    rows[0][0] = tensor_amax
    top = np.array(tensor_amax, F32).view(np.uint32)
    thr = T.thr.reshape(-1, 8)[:, :7].astype(np.int64)
    for b in T.B[1:T.svals.size].astype(np.int64):
        for d in (-1, 0, 1):
            a = b + d
            if not 0 < a <= top:
                continue
            amax = np.array(a, np.uint32).view(F32)
            c = int(scale_codes(_amax_scale(np.array([float(amax)]), fmt, ts),
                                np.zeros(1, bool), fmt.scale)[0])
            el = (thr[c][:, None] + np.array([-1, 0, 1])).ravel()
            el = el[(el > 0) & (el <= a)].astype(np.uint32).view(F32)
            for i in range(0, max(el.size, 1), k - 1):
                row = np.zeros(k, F32)
                part = el[i:i + k - 1]
                row[1:1 + part.size] = part
                row = np.where(rng.random(k) < 0.5, -row, row)
                row[0] = amax
                rows.append(rng.permutation(row))
    return np.array(rows)


@pytest.mark.parametrize("tensor_amax", [
    float(F32(2688 * 2.0**-149)), 2688 * 2.0**-140, 2688 * 2.0**-20, 1e-3, 1.0 / 3.0, 2688.0,
    7.3e5, 2688 * 2.0**100, float(np.finfo(F32).max)])
def test_every_scale_and_element_threshold(tensor_amax, pass_calls):
    x = threshold_blocks(NVFP4, float(F32(tensor_amax)))
    assert_same_as_exact(x, "nvfp4")
    assert pass_calls and sum(pass_calls) >= 2 * x.shape[0]  # encode and quantize, every block


@pytest.mark.parametrize("tensor_amax", [2688 * 2.0**-140, 5e-2, 2688.0, 3e30])
def test_scale_thresholds_against_the_engine(tensor_amax):
    """``S(B[c] - 1) < c <= S(B[c])`` with the engine's own scale function, every c."""
    ts = tensor_scale(np.array([tensor_amax]), NVFP4)
    T = amax_tables(NVFP4, _params(NVFP4), ts)
    cmax = T.svals.size - 1
    B = T.B[1:cmax + 1].astype(np.int64)
    finite = B < 0x7F800000
    for bits, lo in ((B[finite], 0), (B[finite] - 1, -1)):
        amax = bits.astype(np.uint32).view(F32).astype(np.float64)
        S = scale_codes(_amax_scale(amax, NVFP4, ts), np.zeros(bits.size, bool), NVFP4.scale)
        c = np.arange(1, cmax + 1)[finite]
        assert np.all(S >= c) if lo == 0 else np.all(S < c)
    assert T.K[K_WINDOW] == 1  # UE4M3: at most 8 thresholds in a float32 binade
    # the periodic rule (16 blocks at a time) covers every binade above the one where the normal
    # UE4M3 scales start, up to float32's top one, unless the thresholds are float32 subnormals
    lo, hi = int(T.PAR[P_ELO]), int(T.PAR[P_EHI])
    normal = B[8:][B[8:] < 0x7F800000]  # thresholds of scale codes >= 9 (normal UE4M3)
    if tensor_amax < 1e-30:
        assert T.K[K_TILE] == 0
    else:
        assert T.K[K_TILE] == 1 and hi == 254 and lo <= (int(normal.min()) >> 23) + 1


@pytest.mark.parametrize("k", [-140, -20, 0, 7, 100])
def test_exact_ties_and_ml_dtypes_reference(k, pass_calls):
    x = nvfp4_tie_blocks(k, seed=k + 300)
    for kw in POLICIES:
        assert_same_as_exact(x, "nvfp4", **kw)
    fin = x[np.isfinite(x).all(axis=1)]
    ref = nvfp4_reference(fin)
    assert np.array_equal(encode(fin, "nvfp4").dequantize(), ref)
    assert np.array_equal(quantize(fin, "nvfp4"), ref.astype(F32))  # (the reference drops -0.0)
    assert pass_calls


def test_overflow_error_keeps_the_exact_path(pass_calls):
    x = nvfp4_tie_blocks(0, seed=5)
    assert _params(NVFP4, overflow="error") is None
    assert_same_as_exact(x[np.isfinite(x).all(axis=1)], "nvfp4", overflow="error")
    assert_same_as_exact(x, "nvfp4", overflow="error")  # same message where the exact path raises
    assert not pass_calls


def test_random_tensors_layouts_and_dtypes(pass_calls):
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((40, 96)) * np.exp2(rng.integers(-40, 40, (40, 1)))).astype(F32)
    x[3, 5], x[17, 40], x[30] = np.nan, -np.inf, -0.0
    x[8, :16] = 1e-45 * np.arange(16)
    assert_same_as_exact(x, "nvfp4")
    assert_same_as_exact(x[:, :90], "nvfp4")  # ragged last block
    assert_same_as_exact(np.ascontiguousarray(x.T), "nvfp4", axis=0)
    assert_same_as_exact(x.reshape(4, 10, 96), "nvfp4")
    with np.errstate(over="ignore"):  # values beyond float16 become Inf blocks
        assert_same_as_exact(x.astype(np.float16), "nvfp4")
    n = len(pass_calls)
    assert n >= 10
    assert_same_as_exact(x.astype(np.float64), "nvfp4")  # float64 input: other path
    assert len(pass_calls) == n
    for special in (np.zeros((2, 32), F32), np.full((2, 32), -0.0, F32),
                    np.full((2, 32), np.nan, F32), np.full((1, 16), 1e-45, F32)):
        assert_same_as_exact(special, "nvfp4")


@pytest.mark.parametrize("fmt", [
    BlockFormat(get_format("fp4_e2m1"), get_format("ue4m3"), 32, "amax", tensor_scale=True,
                name="nvfp4_k32_test"),
    BlockFormat(get_format("fp4_e2m1"), get_format("ue4m3"), 16, "amax", name="fp4_ue4m3_test"),
    BlockFormat(get_format("fp4_e2m1"), SCALE_E2M5, 16, "amax", tensor_scale=True,
                name="fp4_ue2m5_test"),
])
def test_other_formats_on_the_pass(fmt, pass_calls):
    amax = 2688.0 * 2.0**-3 if fmt.tensor_scale else 4.0
    x = threshold_blocks(fmt, amax, seed=3)
    assert_same_as_exact(x, fmt)
    assert pass_calls
    ts = tensor_scale(np.array([amax]), fmt) if fmt.tensor_scale else None
    assert amax_tables(fmt, _params(fmt), ts).K[K_WINDOW] == (fmt.scale is not SCALE_E2M5)


def test_formats_and_policies_outside_the_pass():
    assert _params(NVFP4) is not None
    assert _params(NVFP4, overflow="error") is None
    assert _params(NVFP4, rounding="rtz") is None
    assert _params(NVFP4, subnormal_output="flush") is None
    for name in ("mxfp4", "fp4_e2m1_g32", "int4_g128", "mxfp8_e4m3"):
        assert _params(get_format(name)) is None, name
    fp6 = BlockFormat(get_format("fp6_e3m2"), get_format("ue4m3"), 16, "amax",
                      tensor_scale=True, name="nvfp6_test")
    assert _params(fp6) is None  # more than 8 magnitudes


def test_failed_certificate_takes_the_exact_path(monkeypatch, pass_calls):
    """A scale threshold that fails its certificate sends the tensor to the exact path."""
    import lowbit.formats._amax_tables as tables
    x = threshold_blocks(NVFP4, 2688.0, seed=4)
    monkeypatch.setattr(tables, "_certified", lambda *a: False)
    assert amax_tables(NVFP4, _params(NVFP4), 1.0) is None
    assert_same_as_exact(x, "nvfp4")
    assert not pass_calls


def test_dense_tensor_on_the_periodic_rule(pass_calls):
    """Gaussian rows: every tile's blocks lie in the periodic rule's binades (the 16-block
    vector path end to end), plus one tile per row-chunk boundary and a ragged tail of blocks."""
    rng = np.random.default_rng(21)
    x = (rng.standard_normal((70, 272)) * 3).astype(F32)  # 1190 blocks: 74 tiles + 6
    assert_same_as_exact(x, "nvfp4")
    ref = nvfp4_reference(x)
    assert np.array_equal(encode(x, "nvfp4").dequantize(), ref)
    assert pass_calls
