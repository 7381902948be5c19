"""The 16-lane intrinsics of lowbit.formats._simd against plain numpy references, on the inputs
where a vector formulation can go wrong: values equal to a threshold and one pattern either
side, equal (repeated) thresholds, the largest and smallest patterns, sign bits, NaN / Inf
patterns, ragged block counts and several code widths.

The block-level equality with the exact kernel is tests/formats/test_arith_amax.py; these tests
pin each building block on its own, so a fault shows where it is."""

import numpy as np
import pytest
from numba import njit

from lowbit.formats._arith_amax import block_amax_bits
from lowbit.formats._simd import (
    BLOCKS_PER_STORE,
    LANES,
    ROW,
    block_maxima,
    vcodes16,
    vcodes16x4,
    vmax16x16,
    vmax32x16,
    vmax_below16,
    vstore8_16,
)

MAG = np.uint32(0x7FFFFFFF)
F32_INF = 0x7F800000


@njit(cache=False)
def _codes_x4(u, thr, cs, sign_sh, sign_bit, out):
    for i in range(0, u.shape[0], LANES * BLOCKS_PER_STORE):
        vcodes16x4(u, np.uint64(i), thr, cs, np.uint64(i // LANES), sign_sh, sign_bit, out)


@njit(cache=False)
def _codes_x1(u, thr, cs, sign_sh, sign_bit, out):
    for b in range(u.shape[0] // LANES):
        vcodes16(u, np.uint64(b * LANES), thr, np.uint64(cs[b]) * np.uint64(ROW), sign_sh,
                 sign_bit, out)


def _codes_ref(u, thr, cs, sign_sh, sign_bit):
    """#{j < 7 : |u| >= thr[c*8 + j]} | ((u >> sign_sh) & sign_bit), block by block."""
    a = (u & MAG).astype(np.int64).reshape(-1, LANES)
    rows = thr.reshape(-1, ROW)[cs.astype(np.int64), :7].astype(np.int64)
    mag = (a[:, :, None] >= rows[:, None, :]).sum(axis=2)
    sign = (u.astype(np.int64) >> sign_sh) & sign_bit
    return (mag.reshape(-1) | sign).astype(np.uint8)


def _threshold_rows(rng, nrows, nthr=7):
    """Non-decreasing rows of ``nthr`` thresholds, padded to :data:`ROW` with unreachable ones
    (as the tables pad an element with fewer magnitudes): random, with repeats, at the
    extremes."""
    rows = np.sort(rng.integers(0, 0x7F800001, (nrows, 7)), axis=1)
    rows[1] = 0x3F800000  # all equal
    rows[2] = [0, 0, 1, 1, 0x7F7FFFFF, 0x7F800000, 0x7F800000]
    rows[3] = [1, 2, 3, 4, 5, 6, 7]  # float32 subnormal patterns
    rows[4, 3:] = rows[4, 3]  # repeats around the first step of the search
    rows = np.sort(rows, axis=1)
    rows[:, nthr:] = 0xFFFFFFFF
    return np.concatenate([rows, np.full((nrows, 1), 0xFFFFFFFF)], axis=1).astype(
        np.uint32).reshape(-1)


def _inputs_at(rng, thr, cs):
    """Per block: each threshold of its row, one pattern below and above, random signs."""
    rows = thr.reshape(-1, ROW)[cs.astype(np.int64), :7].astype(np.int64)
    cand = (rows[:, :, None] + np.array([-1, 0, 1])).reshape(len(cs), -1)
    cand = np.clip(cand, 0, 0x7FFFFFFF)
    pick = rng.integers(0, cand.shape[1], (len(cs), LANES))
    u = np.take_along_axis(cand, pick, axis=1).reshape(-1)
    return (u | (rng.random(u.size) < 0.5).astype(np.int64) << 31).astype(np.uint32)


@pytest.mark.parametrize("sign_sh,sign_bit", [(28, 8), (29, 4), (30, 2), (24, 128)])
def test_vcodes16x4_equals_vcodes16_and_the_count(sign_sh, sign_bit):
    """Signed elements of 4, 3, 2 and 8 bits (a magnitude count below the sign bit)."""
    rng = np.random.default_rng(sign_sh)
    thr = _threshold_rows(rng, 40, nthr=min(7, sign_bit - 1))
    nblocks = 4 * 64
    cs = rng.integers(0, 40, nblocks).astype(np.uint32)
    cs[:8] = [1, 2, 3, 4, 0, 1, 2, 3]
    u = _inputs_at(rng, thr, cs)
    u[:LANES] = [0, 0x80000000, 0x7FFFFFFF, 0xFFFFFFFF, 0x7F800000, 0xFF800000, 1, 0x80000001,
                 0x3F800000, 0xBF800000, 0x3F7FFFFF, 0x3F800001, 2, 3, 0x7F7FFFFF, 0x7FC00000]
    ref = _codes_ref(u, thr, cs, sign_sh, sign_bit)
    one, four = np.zeros(u.size, np.uint8), np.zeros(u.size, np.uint8)
    K = (np.uint32(sign_sh), np.uint32(sign_bit))
    _codes_x1(u, thr, cs, *K, one)
    _codes_x4(u, thr, cs, *K, four)
    np.testing.assert_array_equal(one, ref)
    np.testing.assert_array_equal(four, ref)


def test_vcodes16x4_writes_its_64_bytes_only():
    rng = np.random.default_rng(1)
    thr = _threshold_rows(rng, 8)
    cs = rng.integers(0, 8, 4).astype(np.uint32)
    u = _inputs_at(rng, thr, cs)
    out = np.full(64 + 2 * 64, 0xEE, np.uint8)

    @njit(cache=False)
    def at(u, thr, cs, out, o):
        vcodes16x4(u, np.uint64(0), thr, cs, np.uint64(0), np.uint32(28), np.uint32(8),
                   out[o:])
    at(u, thr, cs, out, 64)
    assert np.all(out[:64] == 0xEE) and np.all(out[128:] == 0xEE)
    np.testing.assert_array_equal(out[64:128], _codes_ref(u, thr, cs, 28, 8))


@njit(cache=False)
def _tree(u, out):
    for t in range(u.shape[0] // (LANES * LANES)):
        vmax16x16(u, np.uint64(t * LANES * LANES), out, np.uint64(t * LANES))


@njit(cache=False)
def _tree32(u, out):
    for t in range(u.shape[0] // (2 * LANES * LANES)):
        vmax32x16(u, np.uint64(t * 2 * LANES * LANES), out, np.uint64(t * LANES))


@njit(cache=False)
def _below(t, limit):
    return vmax_below16(t, np.uint64(0), limit)


@njit(cache=False)
def _store(src, out, o):
    vstore8_16(src, out, np.uint64(o))


def test_vmax16x16_vmax32x16_and_vmax_below16():
    rng = np.random.default_rng(2)
    u = rng.integers(0, 2**32, 16 * 16 * 8, dtype=np.uint64).astype(np.uint32)
    u[:16] = 0x80000000  # -0.0 only: magnitude 0
    u[16:32] = 0xFFFFFFFF  # NaN pattern with the sign set
    u[32 * 16 + 5] = 0x7F800000
    out = np.zeros(16 * 8, np.uint32)
    _tree(u, out)
    np.testing.assert_array_equal(out, (u & MAG).reshape(-1, 16).max(axis=1))
    out32 = np.zeros(16 * 4, np.uint32)
    _tree32(u, out32)
    np.testing.assert_array_equal(out32, (u & MAG).reshape(-1, 32).max(axis=1))
    t = np.array([5, 0x7F800000, 0x7F7FFFFF, 0xFFFFFFFF] + [3] * 12, np.uint32)
    assert _below(t, np.uint32(0x7F800000)) == 0x7F7FFFFF
    assert _below(t, np.uint32(4)) == 3
    assert _below(t, np.uint32(0)) == 0


def test_vstore8_16_truncates_to_bytes_in_place():
    src = np.arange(240, 256, dtype=np.uint32)
    out = np.zeros(40, np.uint8)
    _store(src, out, 7)
    assert np.all(out[:7] == 0) and np.all(out[23:] == 0)
    np.testing.assert_array_equal(out[7:23], src.astype(np.uint8))


@pytest.mark.parametrize("k,nrows", [(16, 16 * 5 + 7), (16, 3), (32, 50), (64, 9)])
def test_block_amax_bits(k, nrows):
    rng = np.random.default_rng(k + nrows)
    u = rng.integers(0, 2**32, nrows * k, dtype=np.uint64).astype(np.uint32)
    u[rng.random(u.size) < 0.3] &= np.uint32(0x807FFFFF)  # small exponents: fewer NaN / Inf
    u[:k] = 0x80000000  # a block of -0.0
    u[-k:] = 1
    u[-1] = 0xFF800000  # the last block's maximum is exactly Inf: not finite
    u[k:2 * k] = 1
    u[2 * k] = 0x7F800000  # so is the second's (a tile when there are 16 blocks or more)
    blocks = (u & MAG).reshape(nrows, k)
    am = np.zeros(nrows, np.uint32)
    m = block_amax_bits(u, nrows, k, am)
    ref = blocks.max(axis=1)
    np.testing.assert_array_equal(am, ref)
    fin = ref[ref < F32_INF]
    assert m == (fin.max() if fin.size else 0)
    u[:] = 0x7FC00000  # only NaN blocks: no finite maximum
    assert block_amax_bits(u, nrows, k, am) == 0


@njit(cache=False)
def _maxima(u, i0, nblocks, k, out, o):
    block_maxima(u, np.uint64(i0), np.uint64(nblocks), np.uint64(k), out, np.uint64(o))


@pytest.mark.parametrize("k", [8, 16, 20, 32, 48])
def test_block_maxima_any_block_length(k):
    """The tree (k = 16, 32) and the element loop (other k), from an offset, into an offset,
    over a block count that is not a multiple of 16."""
    rng = np.random.default_rng(k)
    nblocks, i0, o = 37, 5, 3
    u = rng.integers(0, 2**32, i0 + nblocks * k, dtype=np.uint64).astype(np.uint32)
    u[i0 + 2 * k:i0 + 3 * k] = 0x80000000  # -0.0 only
    out = np.full(o + nblocks + 2, 0xABCD, np.uint32)
    _maxima(u, i0, nblocks, k, out, o)
    np.testing.assert_array_equal(out[o:o + nblocks],
                                  (u[i0:] & MAG).reshape(nblocks, k).max(axis=1))
    assert np.all(out[:o] == 0xABCD) and np.all(out[o + nblocks:] == 0xABCD)

