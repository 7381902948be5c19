"""Sub-byte packing: FP4/INT4 two per byte (low nibble first by default), FP6 four per 3 bytes."""

import numpy as np
import pytest

from lowbit.formats import encode, pack, unpack


def test_fp4_hand_byte_low_first():
    codes = np.array([0x1, 0xA], np.uint8)  # first element -> low nibble
    assert pack(codes, "fp4_e2m1").tolist() == [0xA1]
    assert pack(codes, "fp4_e2m1", order="high_first").tolist() == [0x1A]
    assert unpack(np.array([0xA1], np.uint8), "fp4_e2m1", 2).tolist() == [0x1, 0xA]
    assert unpack(np.array([0xA1], np.uint8), "fp4_e2m1", 2, order="high_first").tolist() == [0xA, 0x1]


def test_fp4_values_hand():
    # 1.0 -> 0x2, -6.0 -> 0xF, 0.5 -> 0x1: bytes [0xF2, 0x01]
    c = encode(np.array([1.0, -6.0, 0.5]), "fp4_e2m1")
    b = pack(c, "fp4_e2m1")
    assert b.dtype == np.uint8
    assert b.tolist() == [0xF2, 0x01]


@pytest.mark.parametrize("fmt", ["fp4_e2m1", "int4", "uint4"])
@pytest.mark.parametrize("n", [1, 2, 7, 32, 33, 1001])
@pytest.mark.parametrize("order", ["low_first", "high_first"])
def test_nibble_roundtrip(fmt, n, order):
    rng = np.random.default_rng(n)
    codes = rng.integers(0, 16, n).astype(np.uint8)
    b = pack(codes, fmt, order=order)
    assert b.size == (n + 1) // 2
    back = unpack(b, fmt, n, order=order)
    assert np.array_equal(back, codes)


def test_int4_hand():
    c = encode(np.array([-1.0, 3.0, -8.0]), "int4")
    assert c.tolist() == [0xF, 0x3, 0x8]
    assert pack(c, "int4").tolist() == [0x3F, 0x08]


@pytest.mark.parametrize("fmt", ["fp6_e2m3", "fp6_e3m2"])
@pytest.mark.parametrize("n", [1, 3, 4, 5, 8, 33, 1000])
def test_fp6_roundtrip(fmt, n):
    rng = np.random.default_rng(n + 100)
    codes = rng.integers(0, 64, n).astype(np.uint8)
    b = pack(codes, fmt)
    assert b.dtype == np.uint8
    assert b.size == (6 * n + 7) // 8  # 4 codes per 3 bytes
    assert np.array_equal(unpack(b, fmt, n), codes)


def test_fp6_four_per_three_bytes_low_first():
    # low_first bit order: code i occupies bits [6i, 6i+6) of the little-endian bit stream
    codes = np.array([0x3F, 0x00, 0x00, 0x00], np.uint8)
    assert pack(codes, "fp6_e2m3").tolist() == [0x3F, 0x00, 0x00]
    codes = np.array([0x00, 0x00, 0x00, 0x3F], np.uint8)
    assert pack(codes, "fp6_e2m3").tolist() == [0x00, 0x00, 0xFC]
    codes = np.array([0x01, 0x02, 0x03, 0x04], np.uint8)
    v = 0x01 | (0x02 << 6) | (0x03 << 12) | (0x04 << 18)
    assert pack(codes, "fp6_e2m3").tolist() == [v & 0xFF, (v >> 8) & 0xFF, v >> 16]


def test_int8_pack_is_identity():
    c = np.array([0, 255, 7], np.uint8)
    assert pack(c, "int8").tolist() == [0, 255, 7]
    assert unpack(pack(c, "int8"), "int8", 3).tolist() == [0, 255, 7]


def test_pack_rejects_out_of_range_codes():
    with pytest.raises(ValueError):
        pack(np.array([16], np.uint8), "fp4_e2m1")
