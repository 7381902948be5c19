"""Reference calibration units are functionally right (exhaustive, exact Fraction reference)."""

import itertools
from fractions import Fraction

import pytest

from lowbit.cost_models.fmt import hw_format
from lowbit.cost_models.refunits import make_verilog, simulate


def _sx(v, w):
    return v - (1 << w) if v >> (w - 1) & 1 else v


def _minifloat(code, e, m, bias):
    s = -1 if code >> (e + m) & 1 else 1
    E = (code >> m) & ((1 << e) - 1)
    F = code & ((1 << m) - 1)
    if E == 0:
        return s * Fraction(F, 1 << m) * Fraction(2) ** (1 - bias)
    return s * (1 + Fraction(F, 1 << m)) * Fraction(2) ** (E - bias)


@pytest.mark.parametrize("e,m", [(2, 1), (3, 1)])
def test_fp_mult_exact_product_exhaustive(e, m):
    bias = 2 ** (e - 1) - 1
    bits = 1 + e + m
    codes = list(itertools.product(range(2 ** bits), repeat=2))
    out = simulate("fp_mult", {"a": [c[0] for c in codes], "b": [c[1] for c in codes]},
                   ebits=e, mbits=m)
    w = hw_format(f"e{e}m{m}").product_fixed_bits
    lsb = Fraction(2) ** (2 - 2 * bias - 2 * m)
    for (a, b), o in zip(codes, out):
        ref = _minifloat(a, e, m, bias) * _minifloat(b, e, m, bias)
        assert Fraction(_sx(o, w)) * lsb == ref, (a, b)


@pytest.mark.parametrize("n,signed", [(3, True), (4, True), (3, False)])
def test_int_mult_exhaustive(n, signed):
    vals = list(itertools.product(range(2 ** n), repeat=2))
    out = simulate("int_mult", {"a": [v[0] for v in vals], "b": [v[1] for v in vals]},
                   bits_a=n, bits_b=n, signed=signed)
    for (a, b), o in zip(vals, out):
        if signed:
            assert _sx(o, 2 * n) == _sx(a, n) * _sx(b, n)
        else:
            assert o == a * b


def test_int_mac_accumulates_and_clears():
    a, b = [3, 7, 1, 2], [2, 1, 9, 9]   # int4: 3*2 + 7*1 + 1*(-7) then clear
    out = simulate("int_mac", {"a": a, "b": b, "clr": [0, 0, 0, 1]}, bits_a=4, bits_b=4,
                   signed=True, acc_bits=12)
    assert [_sx(v, 12) for v in out] == [0, 6, 13, 6]


def test_verilog_and_bad_kind():
    assert "module top" in make_verilog("fp_mac", ebits=2, mbits=1, acc_bits=16)
    with pytest.raises(ValueError, match="unit kind"):
        make_verilog("bogus")
