"""Shared checks of the fast-path tests (test_fastpath*.py): bitwise equality and one GEMM
through the engine against the reference kernels, asserting which path ran."""

import warnings

import numpy as np

from lowbit.formats.accum import parse_accum
from lowbit.sim.engine import _use_block, gemm_nt, gemm_path, reference_gemm


def same(got, ref):
    """Bitwise equality of float64 arrays up to NaN payloads (signs of zero included)."""
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape
    nan = np.isnan(ref)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan], ref[~nan])
    np.testing.assert_array_equal(np.signbit(got[~nan]), np.signbit(ref[~nan]))


def fast_vs_reference(A, W, accum, path, dot="auto"):
    acc = parse_accum(accum)
    assert gemm_path(A, W, acc, dot) == path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = reference_gemm(A, W, acc, _use_block(A, W, acc, dot))
        got = gemm_nt(A, W, acc, dot)
    same(got, ref)
    return got


def wide(rng, shape, lo=-20, hi=12):
    """Normal values times 2**U(lo, hi), with exact zeros and negative zeros sprinkled in."""
    x = rng.standard_normal(shape) * np.exp2(rng.integers(lo, hi, shape))
    x[rng.random(shape) < 0.05] = 0.0
    x[rng.random(shape) < 0.05] = -0.0
    return x
