"""Independent reference for the lowbit.formats tests (no lowbit code is used here).

* ``SPECS``: hand-written spec table per format (bit layout, special-value scheme and the
  derived numbers from docs / OCP OFP8 / MX v1.0 / IEEE 754), the ml_dtypes dtype where one exists.
* ``values_table(spec)``: value of every code, built from the bit fields (float64).
* ``ref_round(x, spec, rounding, overflow)``: exact single rounding of a float (or Fraction) with
  ``fractions.Fraction`` arithmetic, IEEE 754 overflow rules for the directed modes.
* ``mx_reference`` / ``nvfp4_reference``: MX and NVFP4 block quantisation from their definitions
  with ml_dtypes casts.

Module name is unique (``lowbit_formats_ref``) because tests run with ``--import-mode=importlib``;
``conftest.py`` puts this folder on ``sys.path``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import ml_dtypes
import numpy as np


@dataclass(frozen=True)
class Spec:
    name: str
    ebits: int
    mbits: int
    bias: int
    nan: str | None  # "ieee", "fn", "fnuz", None
    inf: bool
    signed: bool = True
    subnormals: bool = True
    zero: bool = True
    mld: str | None = None  # ml_dtypes dtype name
    # spec-table numbers (hand-written, independent of the bit-field computation)
    max: float = 0.0
    min_normal: float = 0.0
    min_subnormal: float = 0.0
    eps: float = 0.0
    emax: int = 0
    emin: int = 0
    num_finite: int = 0

    @property
    def bits(self) -> int:
        return self.ebits + self.mbits + (1 if self.signed else 0)

    @property
    def dtype(self):
        if self.mld is None:
            return None
        if self.mld == "float16":
            return np.dtype(np.float16)
        return np.dtype(getattr(ml_dtypes, self.mld))

    @property
    def code_dtype(self):
        return np.uint8 if self.bits <= 8 else np.uint16


SPECS = {
    "fp8_e4m3": Spec("fp8_e4m3", 4, 3, 7, "fn", False, mld="float8_e4m3fn", max=448.0,
                     min_normal=2.0**-6, min_subnormal=2.0**-9, eps=2.0**-3, emax=8, emin=-6,
                     num_finite=254),
    "fp8_e5m2": Spec("fp8_e5m2", 5, 2, 15, "ieee", True, mld="float8_e5m2", max=57344.0,
                     min_normal=2.0**-14, min_subnormal=2.0**-16, eps=2.0**-2, emax=15, emin=-14,
                     num_finite=248),
    "fp8_e4m3fnuz": Spec("fp8_e4m3fnuz", 4, 3, 8, "fnuz", False, mld="float8_e4m3fnuz", max=240.0,
                         min_normal=2.0**-7, min_subnormal=2.0**-10, eps=2.0**-3, emax=7, emin=-7,
                         num_finite=255),
    "fp8_e5m2fnuz": Spec("fp8_e5m2fnuz", 5, 2, 16, "fnuz", False, mld="float8_e5m2fnuz",
                         max=57344.0, min_normal=2.0**-15, min_subnormal=2.0**-17, eps=2.0**-2,
                         emax=15, emin=-15, num_finite=255),
    "fp8_e3m4": Spec("fp8_e3m4", 3, 4, 3, "ieee", True, mld="float8_e3m4", max=15.5,
                     min_normal=0.25, min_subnormal=2.0**-6, eps=2.0**-4, emax=3, emin=-2,
                     num_finite=224),
    "fp6_e2m3": Spec("fp6_e2m3", 2, 3, 1, None, False, mld="float6_e2m3fn", max=7.5,
                     min_normal=1.0, min_subnormal=0.125, eps=0.125, emax=2, emin=0, num_finite=64),
    "fp6_e3m2": Spec("fp6_e3m2", 3, 2, 3, None, False, mld="float6_e3m2fn", max=28.0,
                     min_normal=0.25, min_subnormal=0.0625, eps=0.25, emax=4, emin=-2,
                     num_finite=64),
    "fp4_e2m1": Spec("fp4_e2m1", 2, 1, 1, None, False, mld="float4_e2m1fn", max=6.0,
                     min_normal=1.0, min_subnormal=0.5, eps=0.5, emax=2, emin=0, num_finite=16),
    "e8m0": Spec("e8m0", 8, 0, 127, "fn", False, signed=False, subnormals=False, zero=False,
                 mld="float8_e8m0fnu", max=2.0**127, min_normal=2.0**-127,
                 min_subnormal=2.0**-127, eps=1.0, emax=127, emin=-127, num_finite=255),
    "bf16": Spec("bf16", 8, 7, 127, "ieee", True, mld="bfloat16", max=float(np.finfo(np.float32).max) * (1 - 2.0**-8) / (1 - 2.0**-24),
                 min_normal=2.0**-126, min_subnormal=2.0**-133, eps=2.0**-7, emax=127,
                 emin=-126, num_finite=65536 - 256),
    "fp16": Spec("fp16", 5, 10, 15, "ieee", True, mld="float16", max=65504.0,
                 min_normal=2.0**-14, min_subnormal=2.0**-24, eps=2.0**-10, emax=15, emin=-14,
                 num_finite=65536 - 2048),
}
# bf16 max written exactly: (2 - 2^-7) * 2^127
SPECS["bf16"] = Spec(**{**SPECS["bf16"].__dict__, "max": (2 - 2.0**-7) * 2.0**127})

ML_FORMATS = list(SPECS)  # all of them have an ml_dtypes / numpy dtype
SMALL_FORMATS = [n for n in ML_FORMATS if SPECS[n].bits <= 8]


def values_table(s: Spec) -> np.ndarray:
    """Value of every code (code order) from the bit fields; NaN where the code is NaN."""
    n = 1 << s.bits
    codes = np.arange(n, dtype=np.int64)
    man = codes & ((1 << s.mbits) - 1)
    exp = (codes >> s.mbits) & ((1 << s.ebits) - 1)
    sign = (codes >> (s.ebits + s.mbits)) & 1 if s.signed else np.zeros_like(codes)
    frac = man / float(1 << s.mbits)
    if s.subnormals:
        mag = np.where(exp == 0, frac * 2.0 ** (1 - s.bias),
                       (1 + frac) * np.exp2((exp - s.bias).astype(np.float64)))
    else:
        mag = (1 + frac) * np.exp2((exp - s.bias).astype(np.float64))
    val = np.where(sign == 1, -mag, mag)
    top = exp == (1 << s.ebits) - 1
    allones_m = man == (1 << s.mbits) - 1
    if s.nan == "ieee":
        val = np.where(top & (man == 0), np.where(sign == 1, -np.inf, np.inf), val)
        val = np.where(top & (man != 0), np.nan, val)
    elif s.nan == "fn":
        val = np.where(top & allones_m, np.nan, val)
    elif s.nan == "fnuz":
        val = np.where(codes == (1 << (s.bits - 1)), np.nan, val)
    return val.astype(np.float64)


def finite_grid(s: Spec) -> np.ndarray:
    """Sorted distinct finite values (a single 0)."""
    v = values_table(s)
    v = v[np.isfinite(v)]
    return np.unique(v)


def _ilog2(a: Fraction) -> int:
    """floor(log2(a)) for a > 0, exact."""
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    elif Fraction(2) ** (e + 1) <= a:
        e += 1
    return e


NAN = float("nan")


def ref_round(x, s: Spec, rounding: str = "rne", overflow: str = "saturate"):
    """Exact single rounding of x (float or Fraction) to format s; returns a float64 value.

    Returns NaN/Inf per the overflow policy, raises OverflowError for overflow="error".
    Round-to-odd overflow under "nonsat" is not defined here (returns None).
    """
    if isinstance(x, float):
        if math.isnan(x):
            return NAN
        if math.isinf(x):
            if s.inf:
                return x
            if overflow == "nonsat":
                return NAN if s.nan else math.copysign(s.max, x)
            return math.copysign(s.max, x)
        neg = math.copysign(1.0, x) < 0
        a = abs(Fraction(x))
    else:
        neg = x < 0
        a = abs(Fraction(x))
    if a == 0:
        return -0.0 if (neg and s.nan != "fnuz") else 0.0
    if not s.signed:
        assert not neg, "unsigned reference only for positive inputs"
    emin = 1 - s.bias if s.subnormals else -s.bias
    e = _ilog2(a)
    if s.subnormals:
        E = max(e, emin)
    else:
        assert e >= emin, "below min normal for a format without subnormals"
        E = e
    q = Fraction(2) ** (E - s.mbits)
    m = a / q
    n0 = m.numerator // m.denominator
    r = m - n0
    if s.mbits > 0:
        lower_odd = n0 & 1
    else:  # exponent-only: parity of the lower neighbour's code (0 below the first binade)
        lower_odd = 0 if n0 == 0 else (E + s.bias) & 1
    half = Fraction(1, 2)
    if rounding == "rne":
        up = r > half or (r == half and lower_odd)
    elif rounding == "rna":
        up = r >= half
    elif rounding == "rnz":
        up = r > half
    elif rounding == "rno":
        up = r > half or (r == half and not lower_odd)
    elif rounding == "rnp":  # ties toward +Inf
        up = r > half or (r == half and not neg)
    elif rounding == "rnm":  # ties toward -Inf
        up = r > half or (r == half and neg)
    elif rounding == "rtz":
        up = False
    elif rounding == "rup":
        up = r > 0 and not neg
    elif rounding == "rdown":
        up = r > 0 and neg
    elif rounding == "rto":
        up = r > 0 and not lower_odd
    else:
        raise ValueError(rounding)
    val = (n0 + (1 if up else 0)) * q
    if val > Fraction(s.max):
        if overflow == "error":
            raise OverflowError
        if overflow == "saturate":
            val = Fraction(s.max)
        else:  # nonsat, IEEE 754 rules
            if rounding == "rto":
                return None
            to_big = rounding in ("rne", "rna", "rnz", "rno", "rnp", "rnm") or (rounding == "rup" and not neg) or (
                rounding == "rdown" and neg)
            if to_big and s.inf:
                return -math.inf if neg else math.inf
            if to_big and s.nan:
                return NAN
            val = Fraction(s.max)
    f = float(val)
    if f == 0 and s.nan == "fnuz":  # no negative zero
        return 0.0
    return -f if neg else f


def ref_round_array(xs, s: Spec, rounding="rne", overflow="saturate"):
    return np.array([ref_round(float(x), s, rounding, overflow) for x in xs], dtype=np.float64)


def ref_round_int(x: float, qmin: int, qmax: int, frac_bits: int = 0, rounding="rne"):
    """Exact rounding to an integer/fixed-point grid code*2^-frac_bits, saturating."""
    a = Fraction(x) * (2 ** frac_bits)
    n0 = a.numerator // a.denominator  # floor (signed)
    r = a - n0
    half = Fraction(1, 2)
    if rounding == "rne":
        up = r > half or (r == half and (n0 & 1))
    elif rounding == "rna":  # away from zero
        up = r > half or (r == half and a > 0)
    elif rounding == "rnz":  # ties toward zero
        up = r > half or (r == half and a < 0)
    elif rounding == "rno":  # ties to odd
        up = r > half or (r == half and not (n0 & 1))
    elif rounding == "rnp":  # ties toward +Inf (HLS AP_RND)
        up = r >= half
    elif rounding == "rnm":  # ties toward -Inf (HLS AP_RND_MIN_INF)
        up = r > half
    elif rounding == "rtz":
        up = r > 0 and a < 0
    elif rounding == "rup":
        up = r > 0
    elif rounding == "rdown":
        up = False
    else:
        raise ValueError(rounding)
    n = n0 + (1 if up else 0)
    n = min(max(n, qmin), qmax)
    return n / 2.0 ** frac_bits


def mld_codes(x, s: Spec) -> np.ndarray:
    """ml_dtypes codes of x (float32 cast)."""
    y = np.asarray(x, np.float32).astype(s.dtype)
    return y.view(s.code_dtype)


def same_values(a, b) -> np.ndarray:
    """Elementwise: equal values (NaN==NaN), with signed zeros distinguished."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    both_nan = np.isnan(a) & np.isnan(b)
    eq = (a == b) & (np.signbit(a) == np.signbit(b))
    return both_nan | eq


def first_mismatches(x, got, exp, k=5) -> str:
    bad = np.flatnonzero(~same_values(got, exp))
    rows = [f"x={float(np.ravel(x)[i])!r} got={float(np.ravel(got)[i])!r} "
            f"expected={float(np.ravel(exp)[i])!r}" for i in bad[:k]]
    return f"{bad.size} mismatches; first: " + "; ".join(rows)


def codes_match(x, got_codes, exp_codes, s: Spec, k=5):
    """Compare codes; codes that both decode to NaN count as equal. Returns (ok, message)."""
    vt = values_table(s)
    g = np.asarray(got_codes).astype(np.int64).ravel()
    e = np.asarray(exp_codes).astype(np.int64).ravel()
    ok = (g == e) | (np.isnan(vt[g]) & np.isnan(vt[e]))
    if ok.all():
        return True, ""
    bad = np.flatnonzero(~ok)
    xr = np.ravel(x)
    rows = [f"x={float(xr[i])!r} ({float(xr[i]).hex()}) got=0x{g[i]:x} ({vt[g[i]]!r}) expected=0x{e[i]:x} ({vt[e[i]]!r})" for i in bad[:k]]
    return False, f"{bad.size}/{g.size} code mismatches; first: " + "; ".join(rows)


def mx_reference(x, elem, emax_elem, k=32):
    """OCP MX v1.0 §6.3 on the last axis: X = 2^(floor(log2 amax) - emax_elem) clamped to
    [-127, 127], P = RNE(V / X) saturated to +-max (ml_dtypes cast). Returns (deq, X)."""
    s = SPECS[elem]
    n = x.shape[-1]
    nb = -(-n // k)
    xp = np.zeros(x.shape[:-1] + (nb * k,), np.float64)
    xp[..., :n] = x
    blocks = xp.reshape(x.shape[:-1] + (nb, k))
    amax = np.abs(blocks).max(-1)
    e = np.frexp(amax)[1] - 1 - emax_elem
    e = np.where(amax == 0, -127, e)
    e = np.clip(e, -127, 127)
    X = np.exp2(e.astype(np.float64))
    v = np.clip(blocks / X[..., None], -s.max, s.max)
    p = v.astype(np.float32).astype(s.dtype).astype(np.float64)
    deq = (p * X[..., None]).reshape(xp.shape)[..., :n]
    return deq, X


def ref_sr_up(frac: Fraction, r: int, mode: str, sr_bits: int) -> bool:
    """Exact stochastic decision for the discarded fraction ``frac`` of an ulp (0 <= frac < 1)
    and the random integer ``r`` in [0, 2**sr_bits), written from the IEEE P3109 v3.1 / gfloat
    RoundMode definitions (StochasticFastest, StochasticFast, Stochastic, StochasticOdd) and
    pychop's 50% mode."""
    n = 2 ** sr_bits
    if mode == "sr_half":
        return frac > 0 and r >= n // 2
    if mode == "stochastic":
        return math.floor(frac * n) + r >= n
    if mode == "stochastic_fast":
        return math.floor(frac * 2 * n) + 2 * r + 1 >= 2 * n
    d = frac * n
    t = math.floor(d)
    rest = d - t
    if mode == "stochastic_rne":
        t += rest > Fraction(1, 2) or (rest == Fraction(1, 2) and t % 2 == 1)
    elif mode == "stochastic_rno":
        t += rest > Fraction(1, 2) or (rest == Fraction(1, 2) and t % 2 == 0)
    else:
        raise ValueError(mode)
    return t + r >= n


def ref_sr_prob(frac: Fraction, mode: str, sr_bits: int) -> Fraction:
    """Exact probability of rounding up, ``#{r : ref_sr_up(frac, r)} / 2**sr_bits``."""
    n = 2 ** sr_bits
    if mode == "sr_half":
        return Fraction(1, 2) if frac > 0 else Fraction(0)
    # the decisions are monotone in r: count the r above the threshold
    lo, hi = 0, n  # smallest r that rounds up, by bisection
    while lo < hi:
        mid = (lo + hi) // 2
        if ref_sr_up(frac, mid, mode, sr_bits):
            hi = mid
        else:
            lo = mid + 1
    return Fraction(n - lo, n)


def ref_floor_frac(x, s: Spec):
    """(lower neighbour value, ulp, discarded fraction) of |x| > 0 on the grid of s (exact)."""
    a = abs(Fraction(x))
    emin = 1 - s.bias if s.subnormals else -s.bias
    E = max(_ilog2(a), emin)
    q = Fraction(2) ** (E - s.mbits)
    m = a / q
    n0 = m.numerator // m.denominator
    return n0 * q, q, m - n0


def nvfp4_reference(x):
    """NVFP4 written from its definition with ml_dtypes casts (independent of lowbit):
    S = fp32(amax / (6 * 448)); block scale = UE4M3 RNE (saturating) of amax_b / 6 / S, the
    smallest positive E4M3 if a nonzero block rounds to 0; element = E2M1 RNE (saturating) of
    x / (s * S) in float64; value = element * s * S."""
    x64 = x.astype(np.float64)
    R, K = x.shape
    amax = np.abs(x64).max()
    ts = float(np.float32(amax / 2688.0)) if amax > 0 else 1.0
    b = x64.reshape(R, K // 16, 16)
    bam = np.abs(b).max(-1)
    s = np.clip(bam / 6.0 / ts, 0, 448).astype(ml_dtypes.float8_e4m3fn).astype(np.float64)
    s = np.where((s == 0) & (bam > 0), 2.0**-9, s)
    div = (s * ts)[..., None]
    y = np.divide(b, div, out=np.zeros_like(b), where=div > 0)
    e = np.clip(y, -6, 6).astype(ml_dtypes.float4_e2m1fn).astype(np.float64)
    return (e * div).reshape(R, K)
