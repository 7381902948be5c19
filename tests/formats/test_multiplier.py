"""Multiplier models: exact, L-Mul (Luo & Sun 2024) and user functions on codes.

The L-Mul reference here is written from the paper's formula on decoded values (ml_dtypes
decodes the operands, Fractions do the arithmetic): for normal ``x = (1 + x_m) 2^x_e``,
``y = (1 + y_m) 2^y_e`` and ``t = x_m + y_m + 2^-l(m)``, the product is ``(1 + t) 2^(x_e + y_e)``
when ``t < 1`` and ``t 2^(x_e + y_e + 1)`` when the mantissa sum carries into the exponent
(the integer adder's behaviour, ``1 + (t - 1)`` in the next binade)."""

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pytest

from lowbit.formats import encode, get_format
from lowbit.formats.multiplier import (
    CodeMul,
    ExactMul,
    LMul,
    lmul_offset,
    parse_multiplier,
)


def _ref_lmul(va, vb, l):
    if math.isnan(va) or math.isnan(vb):
        return math.nan
    if math.isinf(va) or math.isinf(vb):
        return math.nan if 0.0 in (va, vb) else math.copysign(math.inf, va * vb)
    sign = -1 if (math.copysign(1, va) * math.copysign(1, vb)) < 0 else 1
    return sign * abs(_ref_mag(abs(va), abs(vb), l))


def _ref_mag(a, b, l, normal_min=2.0**-6):
    if a < normal_min or b < normal_min:  # zero / subnormal operand: flushed
        return 0.0
    ma, ea = math.frexp(a)
    mb, eb = math.frexp(b)
    xm, ym = Fraction(ma) * 2 - 1, Fraction(mb) * 2 - 1
    e = (ea - 1) + (eb - 1)
    t = xm + ym + Fraction(1, 2**l)
    p = (1 + t) * Fraction(2) ** e if t < 1 else t * Fraction(2) ** (e + 1)
    return float(p)


def test_lmul_e4m3_every_pair_against_the_paper_formula():
    f = get_format("fp8_e4m3")
    codes = np.arange(256)
    vals = codes.astype(np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float64)
    got = LMul().table(f, f)
    assert lmul_offset(3) == 3
    exp = np.array([[_ref_lmul(a, b, 3) for b in vals] for a in vals])
    same = (got == exp) | (np.isnan(got) & np.isnan(exp))
    assert same.all(), np.argwhere(~same)[:5]
    # and signed zeros follow the sign rule
    assert np.array_equal(np.signbit(got[~np.isnan(got)]), np.signbit(exp[~np.isnan(exp)]))


def test_lmul_hand_examples():
    """1.5 * 1.5: t = 0.5 + 0.5 + 1/8 = 1.125 carries -> 2 * 1.125 = 2.25 (exact 2.25);
    1.25 * 1.25: t = 0.625 -> 1.625 (exact 1.5625); 1 * 1 -> 1.125; -3 * 0.5: t = 0.625 ->
    -1.625 (exact -1.5); e5m2 (l = 2) 1 * 1 -> 1.25;
    bf16 (m = 7 -> l = 4) 1 * 1 -> 1.0625."""
    m = LMul()
    for fmt, x, y, p in [("fp8_e4m3", 1.5, 1.5, 2.25), ("fp8_e4m3", 1.25, 1.25, 1.625),
                         ("fp8_e4m3", 1.0, 1.0, 1.125), ("fp8_e4m3", -3.0, 0.5, -1.625),
                         ("fp8_e5m2", 1.0, 1.0, 1.25), ("bf16", 1.0, 1.0, 1.0625),
                         ("fp8_e4m3", 2.0**-7, 1.0, 0.0)]:
        f = get_format(fmt)
        ca, cb = encode(np.array([x]), f).astype(np.int64), encode(np.array([y]), f).astype(np.int64)
        assert m.products(ca, f, cb, f)[0] == p, (fmt, x, y)
    assert [lmul_offset(k) for k in range(1, 8)] == [1, 2, 3, 3, 4, 4, 4]
    # an explicit offset: l = 1 adds 1/2
    f = get_format("fp8_e4m3")
    one = encode(np.array([1.0]), f).astype(np.int64)
    assert LMul(offset=1).products(one, f, one, f)[0] == 1.5


def test_lmul_relative_error_is_bounded():
    """Mitchell-style bound: the L-Mul product of normal e4m3 operands is within 12.5% of
    the exact product (the paper's error analysis; checked over all 126 * 126 positive
    normal pairs)."""
    f = get_format("fp8_e4m3")
    t, e = LMul().table(f, f), ExactMul().table(f, f)
    normal = np.arange(8, 127)  # codes 0x08..0x7E: positive normals
    rel = np.abs(t[np.ix_(normal, normal)] / e[np.ix_(normal, normal)] - 1)
    assert rel.max() <= 0.125 and 0.01 < rel.mean() < 0.08


def test_exact_and_code_models_and_parsing():
    f = get_format("fp8_e4m3")
    e = ExactMul().table(f, f)
    v = f.values()
    with np.errstate(invalid="ignore"):
        assert np.array_equal(e, np.multiply.outer(v, v), equal_nan=True)
    trunc = CodeMul(lambda a, b: np.zeros(np.broadcast(a, b).shape), "zero")
    assert trunc.table(f, f).shape == (256, 256) and trunc.name == "zero"
    assert parse_multiplier(None) == ExactMul() == parse_multiplier("exact")
    assert parse_multiplier("lmul") == LMul() and parse_multiplier("LMUL_L2") == LMul(offset=2)
    assert parse_multiplier(trunc) is trunc
    with pytest.raises(ValueError, match="multiplier must be one of"):
        parse_multiplier("mitchell")
    with pytest.raises(ValueError, match="same exponent and mantissa widths"):
        LMul().table(f, get_format("fp8_e5m2"))
    with pytest.raises(ValueError, match="float formats"):
        LMul().table("int8", "int8")
    with pytest.raises(ValueError, match="offset must be"):
        LMul(offset=0)
    with pytest.raises(ValueError, match="must broadcast"):
        CodeMul(lambda a, b: np.zeros(3), "bad").table(f, f)
