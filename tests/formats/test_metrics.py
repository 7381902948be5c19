"""Metrics on tiny hand-worked examples."""

import math

import numpy as np
import pytest

from lowbit.formats import clipped_fraction, code_histogram, encode, mse, sqnr_db


def test_mse():
    assert mse(np.array([1.0, 2.0]), np.array([1.0, 4.0])) == 2.0
    assert mse(np.array([1.0, -1.0, 3.0]), np.array([1.0, -1.0, 3.0])) == 0.0
    assert mse(np.array([[0.0, 0.0], [0.0, 0.0]]), np.array([[1.0, -1.0], [3.0, 1.0]])) == 3.0


def test_sqnr_db():
    # signal power 5 (sum) / noise power 4 -> 10 log10(1.25)
    assert sqnr_db(np.array([1.0, 2.0]), np.array([1.0, 4.0])) == pytest.approx(
        10 * math.log10(5 / 4))
    assert sqnr_db(np.array([3.0, 4.0]), np.array([3.0, 4.5])) == pytest.approx(
        10 * math.log10(25 / 0.25))
    assert sqnr_db(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == math.inf


def test_clipped_fraction():
    x = np.array([1.0, 10.0, -100.0, 6.0, -6.0, 0.0, 5.0, -2.0])
    assert clipped_fraction(x, "fp4_e2m1") == pytest.approx(2 / 8)
    assert clipped_fraction(np.array([500.0, 448.0, 1.0, -449.0]), "fp8_e4m3") == pytest.approx(
        2 / 4)
    assert clipped_fraction(np.array([1.0, 2.0]), "fp8_e4m3") == 0.0


def test_code_histogram():
    codes = np.array([0, 1, 1, 15, 2, 1], np.uint8)
    h = np.asarray(code_histogram(codes, "fp4_e2m1"))
    assert h.shape == (16,)
    assert h.tolist() == [1, 3, 1] + [0] * 12 + [1]
    c = encode(np.array([1.0, 1.0, -6.0, 448.0]), "fp8_e4m3")
    h = np.asarray(code_histogram(c, "fp8_e4m3"))
    assert h.shape == (256,) and h.sum() == 4
    assert h[0x38] == 2 and h[0x7E] == 1 and h[0xCC] == 1  # -6 = -1.5 * 2^2
