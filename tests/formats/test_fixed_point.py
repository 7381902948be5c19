"""Fixed point: Qm.n names, HLS ``ap_[u]fixed<W, I, Q, O>`` types and their quantization /
overflow modes, against

* the worked examples of the AMD Vitis HLS User Guide (UG1399, "Quantization Modes" and
  "Overflow Modes" of the arbitrary-precision fixed-point types),
* apytypes (an independent fixed-point library whose QuantizationMode / OverflowMode carry the
  same HLS names), for every signed type, mode and many inputs, compared code by code,
* the exact Fraction reference ``ref_round_int`` (unsigned types, AP_SAT_ZERO / AP_SAT_SYM).
"""

import apytypes as apy
import numpy as np
import pytest
from lowbit_formats_ref import ref_round_int

from lowbit.formats import IntFormat, encode, get_format, quantize
from lowbit.formats.int_format import HLS_OVERFLOW, HLS_QUANTIZATION, ap_fixed, fixed_point

# UG1399 "Quantization Modes": ap_fixed<3, 2, Q, AP_SAT> assigned 1.25 and -1.25
UG1399_QUANTIZATION = {
    "AP_RND": (1.5, -1.0),
    "AP_RND_ZERO": (1.0, -1.0),
    "AP_RND_MIN_INF": (1.0, -1.5),
    "AP_RND_INF": (1.5, -1.5),
}
# UG1399 "Overflow Modes": ap_fixed<4, 4, AP_RND, O> / ap_ufixed<4, 4, AP_RND, O>
UG1399_OVERFLOW = {  # O: {(signed, x): result}
    "AP_SAT": {(True, 19.0): 7.0, (True, -19.0): -8.0, (False, 19.0): 15.0, (False, -19.0): 0.0},
    "AP_SAT_ZERO": {(True, 19.0): 0.0, (True, -19.0): 0.0, (False, 19.0): 0.0,
                    (False, -19.0): 0.0},
    "AP_SAT_SYM": {(True, 19.0): 7.0, (True, -19.0): -7.0, (False, 19.0): 15.0,
                   (False, -19.0): 0.0},
    "AP_WRAP": {(True, 31.0): -1.0, (True, -19.0): -3.0, (False, 19.0): 3.0,
                (False, -19.0): 13.0},
}


@pytest.mark.parametrize("q", sorted(UG1399_QUANTIZATION))
def test_ug1399_quantization_examples(q):
    f = get_format(f"ap_fixed<3, 2, {q}, AP_SAT>")
    assert quantize(np.array([1.25, -1.25]), f).tolist() == list(UG1399_QUANTIZATION[q])


def test_hand_worked_quantization_ties_and_truncation():
    """Hand-worked from the mode definitions (UG1399 table: AP_TRN truncation to minus
    infinity, AP_TRN_ZERO truncation to zero, AP_RND_CONV convergent = ties to even) on the
    ap_fixed<3, 2> grid {-2, -1.5, ..., 1.5}: 0.75 and -1.75 are ties, 1.25 / -1.25 too."""
    x = np.array([1.25, -1.25, 0.75, -1.75, 1.3, -1.3])
    exp = {"AP_TRN": [1.0, -1.5, 0.5, -2.0, 1.0, -1.5],
           "AP_TRN_ZERO": [1.0, -1.0, 0.5, -1.5, 1.0, -1.0],
           "AP_RND_CONV": [1.0, -1.0, 1.0, -2.0, 1.5, -1.5]}
    for q, e in exp.items():
        assert quantize(x, f"ap_fixed<3,2,{q},AP_SAT>").tolist() == e, q


@pytest.mark.parametrize("o", sorted(UG1399_OVERFLOW))
def test_ug1399_overflow_examples(o):
    for (signed, x), exp in UG1399_OVERFLOW[o].items():
        t = f"ap_{'' if signed else 'u'}fixed<4, 4, AP_RND, {o}>"
        assert quantize(np.array([x]), t)[0] == exp, (t, x)


def test_names_and_defaults():
    assert get_format("q3.4") == IntFormat(8, frac_bits=4) == fixed_point(3, 4)
    assert get_format("uq1.7") == IntFormat(8, signed=False, frac_bits=7)
    assert IntFormat(8, frac_bits=4).q_name == "q3.4" and get_format("uq1.7").q_name == "uq1.7"
    f = get_format("ap_fixed<8,4>")  # HLS defaults: AP_TRN, AP_WRAP
    assert (f.bits, f.frac_bits, f.int_bits, f.rounding, f.overflow) == (8, 4, 4, "rdown", "wrap")
    assert f.name == "ap_fixed<8,4>" and f != get_format("q3.4")  # different policies
    assert get_format("ap_ufixed<8,1,AP_RND_CONV,AP_SAT>").name == "ap_ufixed<8,1,AP_RND_CONV,AP_SAT>"
    assert get_format("ap_fixed<2,0>").max == 0.25 and get_format("ap_fixed<2,0>").min == -0.5
    # a format's policies are defaults: explicit arguments win
    x = np.array([0.96875, 9.0])  # 0.96875 = 15.5 * 2^-4: a tie on the q3.4 grid
    assert quantize(x, f).tolist() == [0.9375, -7.0]          # AP_TRN, AP_WRAP
    assert quantize(x, f, rounding="rne", overflow="saturate").tolist() == [1.0, 7.9375]
    assert quantize(x, "q3.4").tolist() == [1.0, 7.9375]      # lowbit defaults: rne, saturate
    # HLS mode names as rounding / overflow spellings
    assert quantize(x, "q3.4", rounding="AP_RND", overflow="AP_WRAP").tolist() == [1.0, -7.0]


def test_bad_fixed_point_specs():
    with pytest.raises(ValueError, match="AP_WRAP_SM is not modelled"):
        get_format("ap_fixed<8,4,AP_TRN,AP_WRAP_SM>")
    with pytest.raises(ValueError, match="only N = 0"):
        get_format("ap_fixed<8,4,AP_TRN,AP_WRAP,2>")
    with pytest.raises(ValueError, match="quantization mode"):
        ap_fixed(8, 4, "AP_ROUND")
    with pytest.raises(ValueError, match="integer / fixed-point formats only"):
        quantize(np.array([1.0]), "fp8_e4m3", overflow="wrap")
    with pytest.raises(ValueError, match="narrow"):
        quantize(np.array([1.0]), IntFormat(8, narrow=True), overflow="wrap")
    with pytest.raises(ValueError, match="rounding must be None or one of"):
        IntFormat(8, rounding="AP_RND")  # the format stores canonical names


APY_Q = {q: getattr(apy.QuantizationMode, q[3:]) for q in HLS_QUANTIZATION}
APY_O = {"AP_WRAP": apy.OverflowMode.WRAP, "AP_SAT": apy.OverflowMode.SAT}
APY_TYPES = [(8, 4), (3, 2), (4, 4), (6, 0), (5, 7), (12, 3), (6, -1)]


def _inputs(W, I, seed):
    """Every tie and its neighbours around the grid, random values well beyond the range."""
    rng = np.random.default_rng(seed)
    step = 2.0 ** (I - W)
    top = 2.0 ** (I + 2)
    half = np.arange(-int(top / step) * 2, int(top / step) * 2 + 1) * step / 2
    x = np.concatenate([half, np.nextafter(half, np.inf), np.nextafter(half, -np.inf),
                        rng.uniform(-top, top, 400), [top * 1e3, -top * 1e3]])
    return x[np.abs(x) < 2.0**30]


@pytest.mark.parametrize("o", sorted(APY_O))
@pytest.mark.parametrize("W,I", APY_TYPES)
def test_against_apytypes(W, I, o):
    x = _inputs(W, I, W * 10 + I)
    x = x[np.ldexp(x, 70) == np.round(np.ldexp(x, 70))]  # exact in the 104-bit intermediate
    a = apy.APyFixedArray.from_float(x, int_bits=34, frac_bits=70)
    for q, mode in APY_Q.items():
        exp = np.asarray(a.cast(int_bits=I, frac_bits=W - I, quantization=mode,
                                overflow=APY_O[o]).to_bits()).astype(np.int64)
        got = np.asarray(encode(x, ap_fixed(W, I, q, o))).astype(np.int64)
        bad = np.flatnonzero(got != exp)
        assert bad.size == 0, (f"ap_fixed<{W},{I},{q},{o}>: x={x[bad[0]]!r} got 0x{got[bad[0]]:x}"
                               f" apytypes 0x{exp[bad[0]]:x}")


@pytest.mark.parametrize("q", sorted(HLS_QUANTIZATION))
def test_unsigned_and_symmetric_saturation_against_fractions(q):
    """ap_ufixed<6, 2> (AP_SAT / AP_SAT_ZERO / AP_WRAP) and ap_fixed<6, 2, Q, AP_SAT_SYM>
    against the exact rational reference: round, then saturate / zero / wrap."""
    mode = HLS_QUANTIZATION[q]
    x = _inputs(6, 2, 1)
    for signed, o in [(False, "AP_SAT"), (False, "AP_SAT_ZERO"), (False, "AP_WRAP"),
                      (True, "AP_SAT_SYM"), (True, "AP_SAT_ZERO")]:
        f = ap_fixed(6, 2, q, o, signed=signed)
        qmin, qmax = (-32 if signed else 0), (31 if signed else 63)
        exp = []
        for v in x:
            r = ref_round_int(float(v), -10**9, 10**9, 4, mode) * 16  # unbounded rounding
            if HLS_OVERFLOW[o] == "wrap":
                r = (int(r) - qmin) % 64 + qmin
            elif not qmin <= r <= qmax or (HLS_OVERFLOW[o] == "sat_sym" and r == qmin):
                r = 0 if HLS_OVERFLOW[o] == "sat_zero" else (qmax if r > 0 else -qmax if signed
                                                               else 0)
            exp.append(r / 16)
        got = quantize(x, f)
        bad = np.flatnonzero(got != np.array(exp))
        assert bad.size == 0, f"{f.name}: x={x[bad[0]]!r} got {got[bad[0]]} expected {exp[bad[0]]}"
