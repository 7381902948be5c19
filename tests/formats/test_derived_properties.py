"""Every derived property of a format agrees with its own ``values()`` (issue: ``e1m2.max`` was
1.75 while the largest finite value is 1.5).

Formats: every on-the-fly ExMy, E1..E8 x M0..M10, for every NaN scheme (ieee, fn, fnuz, none),
with and without Inf where the scheme allows it, signed and unsigned; a combination the format
class refuses must be refused with a ValueError. Integer / fixed-point formats likewise.
"""

import math

import numpy as np
import pytest

from lowbit.formats import FloatFormat, IntFormat, get_format

SCHEMES = ("ieee", "fn", "fnuz", None)


def _build(e, m, nan, signed, inf):
    try:
        return FloatFormat(e, m, nan=nan, signed=signed, inf=inf)
    except ValueError:
        return None


def _check(f):
    v = f.values()
    fin = v[np.isfinite(v)]
    pos = fin[fin > 0]
    codes = np.arange(f.num_codes)
    field = (codes >> f.mbits) & ((1 << f.ebits) - 1)
    normal = np.isfinite(v) & (v > 0) & ((field >= 1) if f.zero else (field >= 0))
    assert f.max == fin.max(), ("max", f.max, fin.max())
    assert f.min == fin.min(), ("min", f.min, fin.min())
    assert f.min_subnormal == pos.min(), ("min_subnormal", f.min_subnormal, pos.min())
    if normal.any():
        assert f.min_normal == v[normal].min(), ("min_normal", f.min_normal, v[normal].min())
    else:  # no finite normal binade (IEEE-style E1): min_normal is the unreachable threshold
        assert f.min_normal > f.max
    below = pos[pos < f.min_normal]
    assert np.all(np.mod(below, f.min_subnormal) == 0), "values below min_normal are subnormal"
    above_one = fin[fin > 1.0]
    want_eps = above_one.min() - 1.0 if above_one.size else math.inf
    assert f.eps == want_eps, ("eps", f.eps, want_eps)
    assert f.num_finite == fin.size, ("num_finite", f.num_finite, fin.size)
    assert f.has_nan == bool(np.isnan(v).any()) and f.has_inf == bool(np.isinf(v).any())
    if f.has_nan:
        assert np.isnan(v[f.nan_code])
    if f.has_inf:
        assert v[f.inf_code] == np.inf
    assert v[f.max_code] == f.max


@pytest.mark.parametrize("e", range(1, 9))
def test_float_properties_agree_with_values(e):
    built = refused = 0
    for m in range(0, 11):
        for nan in SCHEMES:
            for signed in (True, False):
                for inf in (None, True, False):
                    f = _build(e, m, nan, signed, inf)
                    if f is None:
                        refused += 1
                        continue
                    built += 1
                    try:
                        _check(f)
                    except AssertionError as err:
                        raise AssertionError(f"{f!r}: {err}") from None
    assert built > refused


@pytest.mark.parametrize("name", ["e1m2", "e1m1", "e2m0fn", "ue1m3", "e3m2fnuz", "e5m10",
                                  "ue4m3fn", "e1m0fnuz", "e8m7"])
def test_on_the_fly_names_are_those_formats(name):
    f = get_format(name)
    _check(f)


def test_e1m2_hand_worked():
    """IEEE-style E1M2: exponent field 1 is Inf/NaN, so every finite value is subnormal:
    0, 0.5, 1, 1.5 (2^(1-0-2) * m); no normal number, eps = 0.5 (next value after 1 is 1.5)."""
    f = get_format("e1m2")
    assert sorted(set(f.values()[np.isfinite(f.values())].tolist())) == [-1.5, -1.0, -0.5, 0.0,
                                                                          0.5, 1.0, 1.5]
    assert (f.max, f.min_subnormal, f.eps, f.num_finite) == (1.5, 0.5, 0.5, 8)
    assert f.min_normal == 2.0


def test_refused_combinations_say_why():
    for kw in (dict(ebits=4, mbits=0, nan="ieee"), dict(ebits=4, mbits=3, nan="fnuz", signed=False)):
        with pytest.raises(ValueError, match="nan="):
            FloatFormat(**kw)


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 8, 12])
@pytest.mark.parametrize("signed,narrow", [(True, False), (True, True), (False, False)])
@pytest.mark.parametrize("frac", [0, 3])
def test_int_properties_agree_with_values(bits, signed, narrow, frac):
    try:
        f = IntFormat(bits, signed=signed, narrow=narrow, frac_bits=frac)
    except ValueError:
        return
    v = f.values()
    fin = v[np.isfinite(v)]
    assert (f.max, f.min) == (fin.max(), fin.min())
    assert f.num_finite == fin.size
    pos = fin[fin > 0]
    if pos.size:
        assert f.min_subnormal == f.min_normal == pos.min() == f.eps
