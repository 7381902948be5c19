"""IEEE P3109 binary{K}p{P} formats against two independent implementations of the interim
report v3: gfloat (Graphcore's reference: ``format_info_p3109``, ``decode_ndarray``,
``round_ndarray``, ``encode_ndarray``) and pychop (``P3109Format``, ``p3109_quantize`` with its
three saturation policies and the unsigned-negative rule), plus the value table that gfloat's
README publishes for the binary8 formats (hand-copied spec numbers)."""

import gfloat
import numpy as np
import pychop
import pytest
from gfloat.formats import format_info_p3109
from lowbit_formats_ref import same_values

from lowbit.formats import (
    FloatFormat,
    decode,
    encode,
    get_format,
    list_formats,
    quantize,
    stochastic_bits,
)
from lowbit.formats.float_format import p3109

SIGNED, UNSIGNED = gfloat.Signedness.Signed, gfloat.Signedness.Unsigned
DOMAIN = {"extended": gfloat.Domain.Extended, "finite": gfloat.Domain.Finite}

# (K, P, signed, domain): every P for K = 3, 4, 6 and the binary8 family, both signednesses,
# both domains (signed needs P < K), and a few wider ones.
CASES = [(k, p, s, d) for k in (3, 4, 6, 8) for p in range(1, k + 1) for s in (True, False)
         for d in ("extended", "finite") if (p < k or not s)]
CASES += [(10, 3, True, "extended"), (10, 4, False, "finite"), (12, 5, True, "finite")]
IDS = [f"k{k}p{p}{'s' if s else 'u'}{d[0]}" for k, p, s, d in CASES]


def _gf(k, p, s, d):
    return format_info_p3109(k, p, SIGNED if s else UNSIGNED, DOMAIN[d])


def _codes(f):
    return np.arange(1 << f.bits, dtype=np.uint32)


def _values_ok(got, exp):
    return same_values(np.where(np.asarray(exp) == 0, 0.0, got), exp).all()


@pytest.mark.parametrize("k,p,s,d", CASES, ids=IDS)
def test_every_code_decodes_as_gfloat(k, p, s, d):
    f, fi = p3109(k, p, signed=s, domain=d), _gf(k, p, s, d)
    assert f.name == fi.name and f.bits == fi.k
    codes = _codes(f)
    got = decode(codes, f)
    exp = gfloat.decode_ndarray(fi, codes.astype(np.int64))
    bad = np.flatnonzero(~same_values(got, exp))
    assert bad.size == 0, f"{f.name}: code 0x{codes[bad[0]]:x} -> {got[bad[0]]!r}, gfloat " \
        f"{exp[bad[0]]!r}"
    # derived properties agree with gfloat's FormatInfo
    assert f.max == fi.max and f.min == fi.min
    assert f.min_subnormal == fi.smallest
    assert f.nan_code == fi.code_of_nan and f.max_code == fi.code_of_max
    assert f.has_inf == (fi.num_infs > 0)
    if f.has_inf:
        assert f.inf_code == fi.code_of_posinf
        if s:
            assert (1 << (k - 1)) | f.inf_code == fi.code_of_neginf
    assert not f.has_negative_zero and f.p3109_params == (k, p, s, d)
    assert f.num_finite == (1 << k) - fi.num_nans - fi.num_infs


def test_degenerate_format_is_refused():
    with pytest.raises(ValueError, match="no positive finite value"):
        p3109(2, 1)  # signed K2P1 extended: codes 0, +Inf, NaN, -Inf only
    with pytest.raises(ValueError, match="p must be an integer in 1..7"):
        p3109(8, 8)  # signed needs p < k
    with pytest.raises(ValueError, match="domain must be one of"):
        p3109(8, 3, domain="extendd")


# gfloat README "value stats" table for the P3109 binary8 formats (interim report v3)
BINARY8_TABLE = {  # name: (E bits, max, min subnormal, min normal)
    "p3109_k8p1se": (7, 2.0**62, None, 2.0**-63),
    "p3109_k8p1ue": (8, 2.0**125, None, 2.0**-127),
    "p3109_k8p3se": (5, 49152.0, 2.0**-17, 2.0**-15),
    "p3109_k8p3sf": (5, 57344.0, 2.0**-17, 2.0**-15),
    "p3109_k8p3ue": (6, 1.25 * 2.0**31, 2.0**-33, 2.0**-31),
    "p3109_k8p3uf": (6, 1.5 * 2.0**31, 2.0**-33, 2.0**-31),
    "p3109_k8p4se": (4, 224.0, 2.0**-10, 2.0**-7),
    "p3109_k8p4sf": (4, 240.0, 2.0**-10, 2.0**-7),
    "p3109_k8p4ue": (5, 53248.0, 2.0**-18, 2.0**-15),
    "p3109_k8p4uf": (5, 57344.0, 2.0**-18, 2.0**-15),
    "p3109_k8p7sf": (1, 127 / 64, 2.0**-6, 1.0),
    "p3109_k8p8uf": (1, 127 / 64, 2.0**-7, 1.0),
}


@pytest.mark.parametrize("name", sorted(BINARY8_TABLE))
def test_binary8_table(name):
    e, mx, sub, norm = BINARY8_TABLE[name]
    f = get_format(name)
    assert name in list_formats("float")
    assert (f.ebits, f.max, f.min_normal) == (e, mx, norm)
    assert f.min_subnormal == (norm if sub is None else sub)


def test_names_and_encodings():
    # spellings: gfloat / pychop names, short p3109_kKpP and the P3109 binaryKpP names
    for alias in ("p3109_k8p3", "binary8p3", "binary8p3se", "P3109_K8P3SE"):
        assert get_format(alias) == get_format("p3109_k8p3se")
    assert get_format("binary8p4uf").name == "p3109_k8p4uf"
    assert pychop.P3109Format(8, 3, True, "extended").name == get_format("binary8p3").name
    # signed: NaN at the negative-zero code, +-Inf at the extremes, no -0
    f = get_format("binary8p3")
    assert (f.nan_code, f.inf_code, f.max_code) == (0x80, 0x7F, 0x7E)
    v = decode(np.array([0x00, 0x7E, 0x7F, 0x80, 0xFE, 0xFF], np.uint8), f)
    assert same_values(v, [0.0, 49152.0, np.inf, np.nan, -49152.0, -np.inf]).all()
    assert encode(np.array([-0.0, np.nan, -np.inf]), f, overflow="nonsat").tolist() == \
        [0x00, 0x80, 0xFF]
    # unsigned: NaN at all-ones, +Inf just below
    u = get_format("binary8p3ue")
    assert (u.nan_code, u.inf_code, u.max_code) == (0xFF, 0xFE, 0xFD)
    # the signed finite P3109 formats are the FNUZ formats (same value set)
    assert get_format("p3109_k8p4sf") == get_format("fp8_e4m3fnuz")
    assert get_format("p3109_k8p3sf") == get_format("fp8_e5m2fnuz")


def test_inf_is_honoured_for_every_nan_scheme():
    """``inf=True`` is no longer dropped outside the IEEE scheme: Inf sits at the largest
    non-NaN magnitude code (P3109 extended)."""
    f = FloatFormat(4, 3, nan="fnuz", inf=True)
    assert f.has_inf and f.inf_code == 0x7F and f.max == 224.0
    assert f == p3109(8, 4) and f.name == "p3109_k8p4se"
    g = FloatFormat(4, 3, nan="fn", inf=True)  # NaN S.1111.111, Inf S.1111.110
    assert (g.nan_code, g.inf_code, g.max) == (0x7F, 0x7E, 416.0) and g.name == "e4m3fn_inf"
    assert get_format("e4m3fn_inf") == g
    assert np.isinf(decode(np.array([0x7E, 0xFE], np.uint8), g)).all()
    h = FloatFormat(2, 1, nan=None, inf=True)  # FP4-like with Inf at S.11.1
    assert h.max == 4.0 and np.isposinf(quantize(np.array([5.5]), h, overflow="nonsat"))[0]
    # the scheme defaults are unchanged
    assert not FloatFormat(4, 3, nan="fn").has_inf and FloatFormat(5, 2).has_inf
    with pytest.raises(ValueError, match="inf must be"):
        FloatFormat(4, 3, inf="yes")


def _points(f, rng, n=400):
    """Grid values, midpoints, quarter points and float64 neighbours of midpoints, values
    beyond max and below the smallest subnormal, +-Inf, NaN, +-0; both signs."""
    g = decode(_codes(f), f)
    g = np.unique(g[np.isfinite(g) & (g >= 0)])
    nxt = np.append(g[1:], 2 * g[-1] + 1)
    mids = (g + nxt) / 2
    x = np.concatenate([g, mids, (3 * g + nxt) / 4, np.nextafter(mids, 0),
                        np.nextafter(mids, np.inf), [f.max * 1.01, f.max * 4, 1e300,
                                                     f.min_subnormal / 4, 5e-324]])
    x = rng.choice(x, min(n, x.size), replace=False)
    return np.concatenate([x, -x, [np.inf, -np.inf, np.nan, 0.0, -0.0]])


MODES = {"rne": gfloat.RoundMode.TiesToEven, "rna": gfloat.RoundMode.TiesToAway,
         "rtz": gfloat.RoundMode.TowardZero, "rup": gfloat.RoundMode.TowardPositive,
         "rdown": gfloat.RoundMode.TowardNegative}  # round-to-odd: pychop's to_odd, below
ROUND_CASES = [c for c in CASES if c[0] == 4 or (c[0] == 8 and c[1] != 6) or c[:2] == (10, 3)]


@pytest.mark.parametrize("overflow", ["saturate", "nonsat"])
@pytest.mark.parametrize("k,p,s,d", ROUND_CASES,
                         ids=[f"k{k}p{p}{'s' if s else 'u'}{d[0]}" for k, p, s, d in ROUND_CASES])
def test_rounding_and_codes_match_gfloat(k, p, s, d, overflow):
    f, fi = p3109(k, p, signed=s, domain=d), _gf(k, p, s, d)
    rng = np.random.default_rng(k * 100 + p * 4 + 2 * s + (d == "finite"))
    x = _points(f, rng)
    if not s:
        x = x[~np.signbit(x)]  # gfloat does not define negative inputs to unsigned formats
    for mode, gm in MODES.items():
        exp = gfloat.round_ndarray(fi, x, gm, sat=overflow == "saturate")
        for dtype in (np.float64, np.float32) if p <= 4 else (np.float64,):  # f32: table path
            with np.errstate(over="ignore"):
                xs = x.astype(dtype)
            ok = xs.astype(np.float64) == x
            got = quantize(xs[ok], f, rounding=mode, overflow=overflow)
            assert _values_ok(got, exp[ok]), (f.name, mode, overflow, dtype)
        codes = encode(x, f, rounding=mode, overflow=overflow)
        assert np.array_equal(codes, gfloat.encode_ndarray(fi, exp)), (f.name, mode, overflow)


SR = {"stochastic": gfloat.RoundMode.StochasticFastest,
      "stochastic_fast": gfloat.RoundMode.StochasticFast,
      "stochastic_rne": gfloat.RoundMode.Stochastic,
      "stochastic_rno": gfloat.RoundMode.StochasticOdd}


@pytest.mark.parametrize("sr_bits", [3, 8])
@pytest.mark.parametrize("mode", sorted(SR))
@pytest.mark.parametrize("name", ["p3109_k8p3se", "p3109_k8p4ue", "p3109_k8p1se",
                                  "p3109_k8p7sf"])
def test_stochastic_modes_match_gfloat_bit_for_bit(name, mode, sr_bits):
    """The P3109 stochastic roundings, fed the same random integers: lowbit draws element i's
    bits as ``stochastic_bits(seed, n, sr_bits)[i]`` (counter-based, see lowbit.formats.chunking)."""
    f = get_format(name)
    fi = _gf(*f.p3109_params)
    rng = np.random.default_rng(1)
    x = np.repeat(_points(f, rng, 200), 3)
    x = x[np.isfinite(x) & ~(np.signbit(x) & ~f.signed)]
    bits = stochastic_bits(77, x.size, sr_bits)
    for overflow in ("saturate", "nonsat"):
        exp = gfloat.round_ndarray(fi, x, SR[mode], sat=overflow == "saturate",
                                   srbits=bits.astype(np.int64), srnumbits=sr_bits)
        got = quantize(x, f, rounding=mode, seed=77, sr_bits=sr_bits, overflow=overflow)
        bad = np.flatnonzero(~same_values(np.where(exp == 0, 0.0, got), exp))
        assert bad.size == 0, (f"{name} {mode}: x={x[bad[0]]!r} bits={bits[bad[0]]} "
                               f"got {got[bad[0]]!r} gfloat {exp[bad[0]]!r}")


PYCHOP_SAT = {"saturate": "finite", "nonsat": "none", "propagate": "propagate"}
PYCHOP_MODES = {"rne": "nearest_even", "rna": "nearest_away", "rtz": "toward_zero",
                "rup": "toward_positive", "rdown": "toward_negative", "rto": "to_odd"}


@pytest.mark.parametrize("overflow", sorted(PYCHOP_SAT))
@pytest.mark.parametrize("name", ["p3109_k8p3se", "p3109_k8p4sf", "p3109_k8p3ue",
                                  "p3109_k8p4uf", "p3109_k6p3se"])
def test_saturation_policies_and_unsigned_negatives_match_pychop(name, overflow):
    """pychop's P3109 emulator: SatFinite / OvfInf / SatPropagate and, for unsigned formats,
    negative inputs (NaN unless they round to 0, or saturate, or round inward)."""
    f = get_format(name)
    k, p, s, d = f.p3109_params
    pf = pychop.P3109Format(k, p, s, d)
    x = _points(f, np.random.default_rng(3), 300)
    for mode, pm in PYCHOP_MODES.items():
        exp = pychop.p3109_quantize(x, pf, rounding=pm, saturate=PYCHOP_SAT[overflow])
        got = quantize(x, f, rounding=mode, overflow=overflow)
        bad = np.flatnonzero(~same_values(np.where(exp == 0, 0.0, got), exp))
        assert bad.size == 0, (f"{name} {mode} {overflow}: x={x[bad[0]]!r} got {got[bad[0]]!r}"
                               f" pychop {exp[bad[0]]!r}")


def test_propagate_and_unsigned_negative_hand_cases():
    f = get_format("binary8p4")  # max 224, Inf
    x = np.array([1000.0, -1000.0, np.inf, -np.inf, np.nan])
    assert same_values(quantize(x, f, overflow="propagate"),
                       [224, -224, np.inf, -np.inf, np.nan]).all()
    assert same_values(quantize(x, f, overflow="saturate"), [224, -224, 224, -224, np.nan]).all()
    assert same_values(quantize(x, f, overflow="nonsat"),
                       [np.inf, -np.inf, np.inf, -np.inf, np.nan]).all()
    # a format without Inf: propagate saturates Inf as well
    assert same_values(quantize(x[:4], "binary8p4sf", overflow="propagate"),
                       [240, -240, 240, -240]).all()
    u = get_format("binary8p4ue")
    y = np.array([-3.0, -2.0**-30, -0.0])
    assert same_values(quantize(y, u, overflow="nonsat"), [np.nan, 0.0, 0.0]).all()
    assert same_values(quantize(y, u, overflow="nonsat", rounding="rtz"), [0, 0, 0]).all()
    assert same_values(quantize(y, u, overflow="saturate"), [0, 0, 0]).all()
    with pytest.raises(ValueError, match="negative input"):
        encode(y, u, overflow="error")
