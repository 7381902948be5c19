"""Property-based fuzzing of lowbit.formats (hypothesis): random formats, shapes (empty and 0-d
included), dtypes and byte orders, strides, axes, special values (NaN, +-Inf, subnormals, huge),
every rounding mode and policy. Properties:

* a conversion succeeds or raises ValueError / TypeError (never another exception);
* ``quantize(x) == decode(encode(x))`` (cast to ``quantize``'s dtype), bit for bit;
* codes round-trip: re-encoding the decoded values gives the same codes (element formats);
* the float32 and float64 paths agree (a float32 input converted to float64 first gives the
  same codes / values);
* ``QuantizedTensor`` survives ``to_bytes`` / ``from_bytes``.

Bounded for CI: a fixed number of examples, derandomized, no example database.
"""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lowbit.formats import (
    OVERFLOW,
    ROUNDING,
    QuantizedTensor,
    decode,
    encode,
    get_format,
    list_formats,
    quantize,
)

FUZZ = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

ELEMENTS = list_formats("float") + list_formats("int") + ["e2m2", "ue3m2", "e5m1fn", "e1m2",
                                                          "e3m3fnuz", "q3.4", "binary8p3"]
BLOCKS = list_formats("block")
SPECIALS = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, -1e-40, 2.0**-126, 3.4e38, -6.0, 448.0,
            0.5, 1e30, 2.0**-140, 65504.0, 2.0**100]


@st.composite
def arrays(draw):
    ndim = draw(st.sampled_from([0, 1, 1, 2, 2, 2, 3, 3]))
    shape = tuple(draw(st.lists(st.integers(0, 9), min_size=ndim, max_size=ndim)))
    dtype = draw(st.sampled_from(["<f4", "<f8", "<f2", ">f4", ">f8"]))
    n = int(np.prod(shape))
    kind = draw(st.sampled_from(["normal", "specials", "log"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    if kind == "normal":
        x = rng.standard_normal(n) * draw(st.sampled_from([1e-3, 1.0, 7.0, 1e4]))
    elif kind == "log":
        x = np.ldexp(rng.uniform(1, 2, n) * rng.choice([-1, 1], n), rng.integers(-150, 128, n))
    else:
        x = rng.choice(SPECIALS, n) * rng.uniform(0.5, 2, n)
    with np.errstate(over="ignore"):
        a = x.astype(dtype).reshape(shape)
    if ndim >= 2 and draw(st.booleans()):
        a = a.swapaxes(0, 1)
    if ndim >= 1 and draw(st.booleans()):
        a = a[::2]
    return a


def _policies(draw, fmt):
    el = fmt.element if fmt.kind == "block" else fmt
    overflow = [o for o in OVERFLOW if el.kind == "int" or o not in ("wrap", "sat_zero",
                                                                     "sat_sym")]
    return dict(rounding=draw(st.sampled_from(ROUNDING)),
                overflow=draw(st.sampled_from(overflow)),
                nan_input=draw(st.sampled_from(["error", "zero", "max"])),
                subnormal_output=draw(st.sampled_from(["keep", "flush"])),
                seed=draw(st.integers(0, 2**20)), sr_bits=draw(st.integers(1, 40)))


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        an, bn = np.isnan(a), np.isnan(b)
        return bool(np.array_equal(an, bn) and np.array_equal(a[~an], b[~bn])
                    and np.array_equal(np.signbit(a[~an]), np.signbit(b[~bn])))
    return bool(np.array_equal(a, b))


def _try(fn):
    """fn() or None when it raised a named ValueError / TypeError (anything else fails)."""
    try:
        return fn()
    except (ValueError, TypeError) as e:
        assert str(e), "an error must say what is wrong"
        return None


@FUZZ
@given(x=arrays(), data=st.data())
def test_element_formats(x, data):
    fmt = get_format(data.draw(st.sampled_from(ELEMENTS)))
    kw = _policies(data.draw, fmt)
    codes = _try(lambda: encode(x, fmt, **kw))
    vals = _try(lambda: quantize(x, fmt, **kw))
    assert (codes is None) == (vals is None), "encode and quantize must fail alike"
    if codes is None:
        return
    assert codes.shape == x.shape and vals.shape == x.shape
    dec = decode(codes, fmt)
    assert _same(vals, dec.astype(vals.dtype)), "quantize != decode(encode)"
    if kw["overflow"] in ("saturate", "nonsat", "propagate") and x.size:
        fin = np.isfinite(dec)
        again = encode(dec[fin], fmt, rounding="rne", overflow=kw["overflow"])
        assert np.array_equal(again, codes[fin]), "re-encoding decoded values changed codes"
    xn = np.asarray(x, dtype=np.float32 if x.dtype.itemsize <= 4 else np.float64)
    if xn.dtype == np.float32:
        c64 = encode(xn.astype(np.float64), fmt, **kw)
        assert np.array_equal(c64, codes), "float32 and float64 paths disagree"


@FUZZ
@given(x=arrays(), data=st.data())
def test_block_formats(x, data):
    fmt = get_format(data.draw(st.sampled_from(BLOCKS)))
    kw = _policies(data.draw, fmt)
    nd = max(x.ndim, 1)
    axis = data.draw(st.one_of(st.integers(-nd, nd - 1), st.sampled_from([nd, 1.5, "0"])))
    qt = _try(lambda: encode(x, fmt, axis=axis, **kw))
    vals = _try(lambda: quantize(x, fmt, axis=axis, **kw))
    assert (qt is None) == (vals is None), "encode and quantize must fail alike"
    if qt is None:
        return
    assert qt.shape == x.shape == vals.shape
    assert _same(vals, decode(qt).astype(vals.dtype)), "quantize != decode(encode)"
    back = QuantizedTensor.from_bytes(qt.to_bytes())
    assert _same(back.codes, qt.codes) and _same(back.dequantize(), qt.dequantize())
    xn = np.asarray(x, dtype=np.float32 if x.dtype.itemsize <= 4 else np.float64)
    if xn.dtype == np.float32:
        q64 = encode(xn.astype(np.float64), fmt, axis=axis, **kw)
        assert _same(q64.codes, qt.codes) and _same(q64.scales, qt.scales), \
            "float32 and float64 paths disagree"
