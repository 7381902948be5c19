"""The GEMM engine's block-dot-product fast paths (MX / NVFP4 / INT groups) and their options
against the reference kernels, bit for bit; each case also asserts which path ran (see
test_fastpath.py for the element paths, random GEMMs and statistics)."""

import math

import numpy as np
import pytest
from fastpath_check import fast_vs_reference, same, wide

import lowbit.formats as lf
from lowbit.sim import accum_kernels as K_
from lowbit.sim import exactness
from lowbit.sim import fast_kernels as FK
from lowbit.sim.accum_round import float_params
from lowbit.sim.blas_paths import block_round_gemm
from lowbit.sim.engine import gemm_path
from lowbit.sim.operands import GridStats, grid_stats, prepare

# --------------------------------------------------------------------------- block paths


def block_data(rng, N, K):
    x = rng.standard_normal((N, K)) * np.exp2(rng.integers(-3, 4, (N, K)))
    x[0, :32] = 0.0  # an all-zero block
    x[0, 32] = 2.0**25  # a huge block then a small one: fp32 rounding across blocks
    x[0, 64] = 1.0
    if N > 1:
        x[1] = -x[1]
        x[1, :16] = -0.0
    return x


@pytest.mark.parametrize("fmt,acc", [("mxfp4", "fp32"), ("mxfp8_e4m3", "fp32"),
                                     ("mxfp6_e3m2", "fp32"), ("mxfp6_e2m3", "bf16"),
                                     ("nvfp4", "fp32"), ("mxint8", "fp32"), ("mxfp4", "fp16"),
                                     ("mxfp4", "fp8_e4m3"), ("nvfp4", "fp16_sat")])
def test_block_round_path(fmt, acc):
    rng = np.random.default_rng(11)
    A = prepare(block_data(rng, 5, 128), fmt)
    W = prepare(block_data(rng, 7, 128), fmt)
    fast_vs_reference(A, W, acc, "blas-block-round")


@pytest.mark.parametrize("fa,fw,acc,path", [
    ("mxfp4", "mxfp4", "exact", "blas-block-pairs"),
    ("nvfp4", "mxfp4", "exact", "blas-block-exact"),
    ("mxint8", "mxint8", "int32", "blas-block-pairs"),
    ("mxint8", "mxint8", "int20_sat", "blas-block-pairs"),
    ("mxfp8_e4m3", "mxfp8_e4m3", "exact", "blas-block-pairs"),
    ("mxfp6_e3m2", "mxfp4", "exact", "blas-block-pairs"),
    ("int8_pc", "int8_pt", "int32", "blas-block-single"),
    ("int8_pc", "int8_pc", "fp32", "blas-block-single"),
    ("int8_pc", "int8_pc", "fp16", "blas-block-single"),
    ("int8_pc", "fp8_e4m3", "int48", "blas-block-single"),
])
def test_block_exact_and_single_block_paths(fa, fw, acc, path):
    rng = np.random.default_rng(12)
    A = prepare(block_data(rng, 4, 96), fa)
    W = prepare(block_data(rng, 6, 96), fw)
    fast_vs_reference(A, W, acc, path)


def test_block_paths_fall_back_when_not_provable():
    rng = np.random.default_rng(13)
    x = block_data(rng, 3, 256)
    # MXFP8-E5M2: elements span 2**-16 .. 2**16; the inner sum of a block is exact in float64
    # for ordinary data, not when a block holds 2**25 next to ~1 (both operands)
    y = rng.standard_normal((4, 256))
    fast_vs_reference(prepare(y, "mxfp8_e5m2"), prepare(y[::-1], "mxfp8_e5m2"), "fp32",
                      "blas-block-round")
    E = prepare(x, "mxfp8_e5m2")  # inner sums of two exact slices
    fast_vs_reference(E, E, "fp32", "blas-block-round-split")
    # int16 register with per-channel int8 and K = 256 can overflow
    assert gemm_path(prepare(x, "int8_pc"), prepare(x, "int8_pc"), "int16") == "reference-block"
    # int4 elements in a 16-bit register: 128 * 7 * 8 products can overflow int8 registers
    assert gemm_path(prepare(x, "int4_g128"), prepare(x, "int4_g128"), "int8") == \
        "reference-block"
    # MXFP8-E4M3, exact: ordinary data -> one exact BLAS on elements * scales (a block of
    # 2**25 next to blocks of ~1 needs > 53 bits per product there -> blas-block-pairs)
    y = rng.standard_normal((4, 256))
    fast_vs_reference(prepare(y, "mxfp8_e4m3"), prepare(y[::-1], "mxfp8_e4m3"), "exact",
                      "blas-block-exact")
    # a term span beyond 104 bits (scales 2**-100 and 2**+60 in one row): reference
    z = y.copy()
    z[0, :32] *= 2.0**-100
    z[0, 32:64] *= 2.0**60
    Z = prepare(z, "mxfp8_e4m3")
    assert gemm_path(Z, Z, "exact") == "reference-block"
    # a NaN scale (Inf input) -> reference (which propagates NaN)
    xn = x.copy()
    xn[1, 5] = np.inf
    A = prepare(xn, "mxfp8_e4m3")
    assert gemm_path(A, prepare(x, "mxfp8_e4m3"), "fp32") == "reference-block"


@pytest.mark.parametrize("acc", ["fp32", "fp16", "bf16", "fp16_sat", "fp8_e4m3"])
def test_block_round_dekker_terms(acc):
    """FP32 group scales (int4_g128): the block term needs more than 53 bits; it is carried as
    a Dekker pair and ``acc + hi + lo`` is rounded once."""
    rng = np.random.default_rng(14)
    x = block_data(rng, 6, 384) * np.exp2(rng.integers(-12, 12, (6, 1)))
    w = block_data(rng, 5, 384)
    w[0, 128:256] = -w[0, :128] * 3.0  # cancellation across groups
    fast_vs_reference(prepare(x, "int4_g128"), prepare(w, "int4_g128"), acc,
                      "blas-block-round-dekker")


@pytest.mark.parametrize("acc", ["exact", "int32", "int20_sat"])
def test_block_pairs_dekker_terms(acc):
    """Exact / integer accumulation of FP32-scaled groups (int4_g128): every block term is an
    exact Dekker pair, both parts added to the exact running pair; a row whose group scales
    span more than 104 bits takes the reference."""
    rng = np.random.default_rng(17)
    x = rng.standard_normal((6, 384)) * np.exp2(rng.integers(-8, 8, (6, 1)))
    x[0, :128] = 0.0  # an all-zero group
    x[1, :64] = -0.0
    w = rng.standard_normal((5, 384))
    w[0, 128:256] = -w[0, :128] * 3.0  # cancellation across groups
    w[1, 256:] = 0.0
    w[2, :128] *= 2.0**-12  # a tiny group next to large ones
    A, W = prepare(x, "int4_g128"), prepare(w, "int4_g128")
    fast_vs_reference(A, W, acc, "blas-block-pairs-dekker")
    x[2, :128] *= 2.0**-70
    x[2, 128:256] *= 2.0**40
    assert gemm_path(prepare(x, "int4_g128"), W, acc) == "reference-block"


@pytest.mark.parametrize("acc", ["fp32_chunk32", "fp16_chunk8", "bf16_chunk4", "fp32_chunk64"])
def test_chunk_round_split_inner(acc):
    """fp16 / bf16 operands with subnormal-to-large values: a chunk's exact inner sum needs
    more than 53 bits; it is computed as two exact slices, and ``acc + hi + lo`` is rounded once
    per chunk."""
    rng = np.random.default_rng(15)
    x = wide(rng, (7, 200), -30, 12)
    w = wide(rng, (9, 200), -26, 6)
    x[0, :4] = [60000.0, 1.0, -60000.0, 2.0**-24]  # cancellation around a tiny term
    fast_vs_reference(prepare(x, "fp16"), prepare(w, "fp16"), acc, "blas-chunk-round-split")
    xb, wb = wide(rng, (7, 200), -8, 12), wide(rng, (9, 200), -8, 6)
    fast_vs_reference(prepare(xb, "bf16"), prepare(wb, "bf16"), acc, "blas-chunk-round-split")
    # bf16 values from 2**-38 to 2**16 on both sides: > 104 bits per chunk -> reference
    assert gemm_path(prepare(x, "bf16"), prepare(w, "bf16"), acc) == "reference-element"


# --------------------------------------------------------------------------- block options


def test_float32_inner_sums_only_when_exact_in_float32():
    """float32 BLAS for the block inner sums: proven for FP4 / INT4 elements, refused at the
    2**24 boundary and for wider elements; forcing it where it is refused changes results."""
    def st(amax, lsb, sig):
        return GridStats(finite=True, amax=amax, lsb=lsb, l1max=32 * amax, sig_bits=sig)

    for fmt in ("mxfp4", "nvfp4", "int4_g128"):
        op = prepare(np.ones((1, 128)), fmt)
        assert exactness.float32_inner_ok(op.element_bounds, op.element_bounds, op.block_len)
    e8 = prepare(np.ones((1, 32)), "mxfp8_e4m3").element_bounds  # 32 * 448**2 on 2**-18
    assert not exactness.float32_inner_ok(e8, e8, 32)
    # 32 * (2**9.5 - ...)**2 just below / above 2**24 on the integer grid
    below, above = math.sqrt(2.0**24 / 32 / (1 + 2.0**-19)), math.sqrt(2.0**24 / 32) + 1
    assert exactness.float32_inner_ok(st(below, 0, 10), st(below, 0, 10), 32)
    assert not exactness.float32_inner_ok(st(above, 0, 10), st(above, 0, 10), 32)
    assert not exactness.float32_inner_ok(st(1.0, 0, 25), st(1.0, 0, 1), 32)  # not a float32
    assert not exactness.float32_inner_ok(st(1.0, -150, 1), st(1.0, 0, 1), 32)
    # E4M3 elements whose block sum 448**2 + 2**-18 - 448**2 needs 36 bits: float32 BLAS
    # loses the 2**-18 in every summation order but (448**2 - 448**2) + 2**-18
    t = 2.0**-9
    Pa = np.zeros((4, 64))
    for r, row in enumerate([[448, t, -448], [t, 448, -448], [448, -448, t], [-448, t, 448]]):
        Pa[r, 32:35] = row
    Pw = np.zeros((1, 64))
    Pw[0, 32:35] = [448, t, 448]
    ones_a, ones_w = np.ones((4, 2)), np.ones((1, 2))
    fp = float_params(lf.resolve("fp32"))
    exact = block_round_gemm(Pa, ones_a, Pw, ones_w, 32, fp)
    same(exact, K_.block_gemm_round(Pa, ones_a, Pw, ones_w, block_len=32, plain=False, fp=fp))
    st = grid_stats(Pa)
    assert not exactness.float32_inner_ok(st, grid_stats(Pw), 32)
    forced = block_round_gemm(Pa, ones_a, Pw, ones_w, 32, fp, float32_inner=True)
    assert np.any(forced != exact)


@pytest.mark.parametrize("N,K,M,bs", [(5, 128, 7, 16), (3, 16 * 5 + 7, 4, 16), (130, 96, 3, 32),
                                       (2, 7, 9, 16), (40, 64, 600, 32)])
def test_float32_block_major_inner_sums_equal_float64(N, K, M, bs):
    """float32 inner sums run on block-major copies of the operands (``block_major``), the
    float64 ones on views: the same results, incl. a short last block, K < bs, more rows than
    a row tile, more columns than a column tile, zero blocks, -0.0 and subnormal-scaled
    terms (FP4 element values, exact in float32)."""
    rng = np.random.default_rng(5)
    grid = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6])
    Pa = grid[rng.integers(0, 8, (N, K))] * rng.choice([-1.0, 1.0], (N, K))
    Pw = grid[rng.integers(0, 8, (M, K))] * rng.choice([-1.0, 1.0], (M, K))
    Pa[0, :min(K, bs)] = -0.0
    nb = -(-K // bs)
    Sa = np.exp2(rng.integers(-140, 20, (N, nb)).astype(float))
    Sw = np.exp2(rng.integers(-20, 20, (M, nb)).astype(float))
    fp = float_params(lf.resolve("fp32"))
    f64 = block_round_gemm(Pa, Sa, Pw, Sw, bs, fp)
    f32 = block_round_gemm(Pa, Sa, Pw, Sw, bs, fp, float32_inner=True)
    same(f32, f64)
    pad = ((0, 0), (0, nb * bs - K))  # the reference takes whole blocks: zero padded
    same(f64, K_.block_gemm_round(np.pad(Pa, pad), Sa, np.pad(Pw, pad), Sw, block_len=bs,
                                  plain=False, fp=fp))


def test_block_rounding_checks_dropped_only_when_bounded():
    """The block rounding kernel without overflow checks runs only when every accumulator sum
    is proven below the overflow threshold; equal to the reference either way."""
    rng = np.random.default_rng(33)
    y = rng.standard_normal((5, 128))
    fp32, fp16 = (float_params(lf.resolve(f)) for f in ("fp32", "fp16"))
    A, W = prepare(y, "mxfp4"), prepare(y[::-1], "mxfp4")
    args = (A.element_bounds, W.element_bounds, A.scale_stats, W.scale_stats, 128, 32)
    assert exactness.block_sums_bounded(*args, fp32, FK.vec_params(fp32).thr)
    assert exactness.block_sums_bounded(*args, fp16, FK.vec_params(fp16).thr)
    big = prepare(np.full((2, 128), 6.0e3), "mxfp4")  # 128 * 6e3**2 overflows fp16
    bargs = (big.element_bounds, big.element_bounds, big.scale_stats, big.scale_stats, 128, 32)
    assert not exactness.block_sums_bounded(*bargs, fp16, FK.vec_params(fp16).thr)
    for acc in ("fp32", "fp16"):
        fast_vs_reference(A, W, acc, "blas-block-round")
    for acc in ("fp16", "fp16_sat", "bf16"):
        got = fast_vs_reference(big, big, acc, "blas-block-round")
        assert acc == "bf16" or not np.all(np.isfinite(got)) or acc.endswith("sat")
