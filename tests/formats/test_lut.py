"""The lookup-table fast path is the exact rounding, proved index by index (every deterministic
rounding under saturation and every overflow policy under rne and rup, for every registered
format of at most 8 bits; CI-sized).

``rounding_table`` maps (sign, exponent, top k mantissa bits, sticky) to a code computed from the
smallest source value of that index. Rounding is monotone in the input, so when the *largest*
source value of every index rounds to the same code as the smallest, every value in between
does too: the table equals the exact kernel on all 2**32 float32 inputs (and all float64 ones).
"""

import numpy as np
import pytest

from lowbit.formats import _kernel as K
from lowbit.formats import encode, get_format, list_formats, rounding_table
from lowbit.formats._codec import kernel_params
from lowbit.formats._lut import NO_TABLE_OVERFLOW

SMALL = [n for n in list_formats("float") + list_formats("int") if get_format(n).bits <= 8]
DETERMINISTIC = [r for r in K.ROUNDING if r not in K.STOCHASTIC_ROUNDING]


def _largest_of_each_index(k, SM, SE):
    idx = np.arange(1 << (1 + SE + k + 1), dtype=np.uint64)
    sh = np.uint64(SM - k)
    low = np.where(idx & np.uint64(1), (np.uint64(1) << sh) - np.uint64(1), np.uint64(0))
    return ((idx >> np.uint64(1)) << sh) | low


def _exact(u, SM, SE, P):
    """Exact codes as a table stores them (uint32, error sentinels wrapped)."""
    out = np.empty(u.shape[0], np.int64)
    K.encode_kernel(u, SM, SE, np.zeros(1, np.int64), u.shape[0], P, np.uint64(0), 0, out)
    return out.astype(np.uint32)


@pytest.mark.parametrize("name", SMALL)
def test_table_index_determines_the_code_float32(name):
    fmt = get_format(name)
    overflows = [o for o in K.OVERFLOW if o not in NO_TABLE_OVERFLOW and
                 (fmt.kind == "int" or o not in K.INT_ONLY_OVERFLOW)]
    # every rounding under saturation, every overflow policy under two roundings
    cases = [(r, "saturate") for r in DETERMINISTIC] + [
        (r, o) for r in ("rne", "rup") for o in overflows if o != "saturate"]
    for rounding, overflow in cases:
        kw = dict(rounding=rounding, overflow=overflow, nan_input="zero")
        k, table = rounding_table(fmt, **kw)
        hi = _largest_of_each_index(k, 23, 8)
        assert table.shape == hi.shape
        got = _exact(hi, 23, 8, kernel_params(fmt, **kw))
        bad = np.flatnonzero(got != table)
        assert bad.size == 0, (name, rounding, overflow, k, hex(int(hi[bad[0]])))


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp4_e2m1", "e8m0", "int4", "fp6_e3m2"])
def test_table_index_determines_the_code_float64(name):
    fmt = get_format(name)
    for rounding in ("rne", "rtz", "rup", "rto"):
        k, table = rounding_table(fmt, rounding=rounding, nan_input="zero", src_dtype=np.float64)
        hi = _largest_of_each_index(k, 52, 11)
        got = _exact(hi, 52, 11, kernel_params(fmt, rounding=rounding, nan_input="zero"))
        assert np.array_equal(got, table), (name, rounding)


def test_table_width_is_the_minimal_one_where_proved():
    """k = mbits + 1 when every boundary is a normal float32 (FP8 E4M3: 16 Ki entries),
    2*mbits + 2 for E8M0 (its boundaries reach into the float32 subnormals), bits + 1 for ints."""
    assert rounding_table("fp8_e4m3")[0] == 4 and rounding_table("fp8_e4m3")[1].size == 1 << 14
    assert rounding_table("fp4_e2m1")[0] == 2
    assert rounding_table("e8m0")[0] == 2
    assert rounding_table("int8")[0] == 9


def test_rounding_table_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="random bits"):
        rounding_table("fp8_e4m3", rounding="stochastic")
    with pytest.raises(ValueError, match="no lookup table"):
        rounding_table("bf16")
    with pytest.raises(ValueError, match="src_dtype"):
        rounding_table("fp8_e4m3", src_dtype=np.float16)
    with pytest.raises(ValueError, match="overflow"):
        rounding_table("fp8_e4m3", overflow="clip")


@pytest.mark.parametrize("name", ["uint5", "int2", "int8"])
def test_wrap_has_no_table_and_float32_input_wraps_exactly(name):
    """overflow="wrap" is not monotone (the wrapped code depends on every integer bit), so it
    takes the exact kernel: float32 and float64 inputs give the same codes (the float32 table
    gave 0 instead of 1 for uint5 64.99999 before)."""
    fmt = get_format(name)
    with pytest.raises(ValueError, match="no lookup table"):
        rounding_table(fmt, overflow="wrap")
    rng = np.random.default_rng(5)
    x = np.concatenate([np.float32([64.99999, 100.0, -129.5, 255.5, 1e9]),
                        (rng.standard_normal(5000) * 300).astype(np.float32)])
    a = encode(x, fmt, overflow="wrap")
    b = encode(x.astype(np.float64), fmt, overflow="wrap")
    assert np.array_equal(a, b)
    q = np.rint(x.astype(np.float64))  # round half even
    want = np.mod(q, 1 << fmt.bits).astype(np.int64)
    assert np.array_equal(a.astype(np.int64), want)
