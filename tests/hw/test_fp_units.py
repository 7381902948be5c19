"""Minifloat multiplier / MAC units: exhaustive and random co-simulation against exact references.

References: lowbit.formats decode/encode with exact Python-integer sums (lowbit.hw.reference) and,
independently, ml_dtypes values and fractions.Fraction arithmetic written here."""

import math
from fractions import Fraction

import ml_dtypes
import numpy as np
import pyrtl
import pytest

from lowbit.formats import decode, get_format
from lowbit.hw.cosim import cosim, simulate
from lowbit.hw.units import build_unit
from lowbit.hw.widths import product_frac_bits, product_width
from lowbit.sim.accum_kernels import gemm_seq
from lowbit.sim.accum_round import float_params


@pytest.mark.parametrize("fa,fb,n", [("fp4_e2m1", "fp4_e2m1", 256), ("fp8_e4m3", "fp8_e4m3", 65536),
                                     ("fp8_e5m2", "fp8_e5m2", 65536),
                                     ("fp8_e4m3fnuz", "fp6_e2m3", 16384),
                                     ("fp6_e3m2", "fp8_e5m2", 16384),
                                     # IEEE P3109: NaN at 0x80, +-Inf at 0x7F / 0xFF
                                     ("p3109_k8p4se", "p3109_k8p3se", 65536)])
def test_fp_mul_exhaustive(fa, fb, n):
    r = cosim("fp_mul", exhaustive=True, sim="compiled" if n > 20000 else "fast", a=fa, b=fb)
    assert (r.vectors, r.mismatches) == (n, 0), str(r)


def test_fp_mul_e4m3_against_ml_dtypes():
    """Independent oracle: ml_dtypes float8_e4m3fn values, product in float64 (exact)."""
    build_unit("fp_mul", a="fp8_e4m3", b="fp8_e4m3")
    outs = list(pyrtl.working_block().wirevector_subset(pyrtl.Output))
    A = np.repeat(np.arange(256), 256)
    B = np.tile(np.arange(256), 256)
    got = simulate(outs, {"a": A, "b": B}, "compiled")
    va = A.astype(np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float64)
    vb = B.astype(np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float64)
    p = va * vb
    W, F = product_width("fp8_e4m3", "fp8_e4m3"), product_frac_bits("fp8_e4m3", "fp8_e4m3")
    assert W == 37 and F == 18            # 2^-9 * 2^-9 = 2^-18 is the LSB
    fixed = np.array(got["p"], dtype=np.int64)
    fixed = np.where(fixed >= 1 << (W - 1), fixed - (1 << W), fixed)
    nan = np.array(got["nan"], dtype=bool)
    assert np.array_equal(nan, np.isnan(p))
    assert not any(got["inf"])                       # E4M3 has no Inf
    fin = ~np.isnan(p)
    assert np.array_equal(np.ldexp(fixed[fin].astype(np.float64), -F), p[fin])


def _rne_fraction(x: Fraction, f) -> float:
    """Independent RNE of an exact rational to an IEEE-style format (Fraction arithmetic)."""
    if x == 0:
        return 0.0
    s = -1 if x < 0 else 1
    a = abs(x)
    e = math.floor(math.log2(a.numerator)) - math.floor(math.log2(a.denominator))
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    e = max(e, 1 - f.bias)
    q = a / Fraction(2) ** (e - f.mbits)
    n = q.numerator // q.denominator
    r = q - n
    if r > Fraction(1, 2) or (r == Fraction(1, 2) and n % 2):
        n += 1
    v = Fraction(n) * Fraction(2) ** (e - f.mbits)
    if v > Fraction(f.max):
        return s * math.inf
    return s * float(v)


@pytest.mark.parametrize("fa,fc", [("fp8_e5m2", "fp16"), ("fp8_e4m3", "bf16"), ("fp8_e5m2", "fp32")])
def test_fp_fma_against_fractions(fa, fc):
    from lowbit.hw.units import UNITS, unit_params
    u = UNITS["fp_fma"]
    rng = np.random.default_rng(1)
    v = u.vectors(3000, rng, False, **unit_params("fp_fma", a=fa, b=fa, acc=fc))
    build_unit("fp_fma", a=fa, b=fa, acc=fc)
    outs = list(pyrtl.working_block().wirevector_subset(pyrtl.Output))
    got = np.array(simulate(outs, v, "fast")["y"], dtype=np.int64)
    F, FC = get_format(fa), get_format(fc)
    va, vb, vc = decode(v["a"], F), decode(v["b"], F), decode(v["c"], FC)
    gv = decode(got, FC)
    checked = 0
    for i in range(len(got)):
        if not (np.isfinite(va[i]) and np.isfinite(vb[i]) and np.isfinite(vc[i])):
            continue
        exact = Fraction(va[i]) * Fraction(vb[i]) + Fraction(vc[i])
        ref = _rne_fraction(exact, FC)
        if exact == 0:
            neg = np.signbit(vc[i]) and np.signbit(va[i] * vb[i])
            assert np.signbit(gv[i]) == neg
        assert gv[i] == ref, (hex(v["a"][i]), hex(v["b"][i]), hex(v["c"][i]))
        checked += 1
    assert checked > 2000


def test_fp_fma_hand_examples():
    build_unit("fp_fma", a="fp8_e5m2", b="fp8_e5m2", acc="fp16")
    outs = list(pyrtl.working_block().wirevector_subset(pyrtl.Output))
    # 1.0*1.0 + 2048 = 2049 -> tie between 2048 and 2050 in fp16 -> even: 2048 (0x6800)
    # 1.0*1.0 + 2050 = 2051 -> tie -> 2052 (0x6802)
    # 2^-16 * 2^-16 + 0 = 2^-32 -> underflows to +0; -2^-16*2^-16 + -0 = -0 (0x8000)
    # 2^-16*0.5 ... e5m2 0x01 = 2^-16; 0x3c = 1.0; max 57344*57344 + 0 -> Inf (0x7c00)
    a = [0x3C, 0x3C, 0x01, 0x81, 0x7B, 0x7C, 0x7C]
    b = [0x3C, 0x3C, 0x01, 0x01, 0x7B, 0x00, 0x3C]
    c = [0x6800, 0x6802, 0x0000, 0x8000, 0x0000, 0x3C00, 0xFC00]
    y = simulate(outs, {"a": a, "b": b, "c": c})["y"]
    assert y[:5] == [0x6800, 0x6802, 0x0000, 0x8000, 0x7C00]
    assert y[5] == 0x7E00 and y[6] == 0x7E00          # Inf*0 -> NaN, Inf + -Inf -> NaN


@pytest.mark.slow
@pytest.mark.parametrize("fa,fc", [("fp8_e4m3", "fp32"), ("fp8_e5m2", "fp32"), ("fp8_e5m2", "fp16"),
                                   ("fp8_e4m3", "bf16")])
def test_fp_fma_exhaustive_fp8(fa, fc):
    r = cosim("fp_fma", exhaustive=True, sim="compiled", a=fa, b=fa, acc=fc)
    assert (r.vectors, r.mismatches) == (65536, 0), str(r)


@pytest.mark.parametrize("fa,fc", [("fp4_e2m1", "fp8_e4m3"), ("fp4_e2m1", "bf16"), ("fp6_e2m3", "fp16")])
def test_fp_fma_exhaustive_small(fa, fc):
    r = cosim("fp_fma", exhaustive=True, sim="fast", a=fa, b=fa, acc=fc)
    assert r.mismatches == 0 and r.vectors == 1 << (2 * get_format(fa).bits), str(r)


def test_fp_fma_random_1e5():
    r = cosim("fp_fma", n=100_000, sim="compiled", a="fp8_e5m2", b="fp8_e4m3", acc="fp32", seed=7)
    assert (r.vectors, r.mismatches) == (100_000, 0), str(r)


@pytest.mark.parametrize("fa,fc", [("fp8_e4m3", "fp32"), ("fp8_e5m2", "fp16")])
def test_fp_mac_sequences(fa, fc):
    r = cosim("fp_mac", n=6400, sim="fast", a=fa, b=fa, acc=fc, seed=3)
    assert (r.vectors, r.mismatches) == (6400, 0), str(r)


def test_fp_mac_matches_sim_accum_model():
    """Cross-check with lowbit.sim's FloatAccum GEMM kernel (sequential, RNE every add)."""
    fp16 = float_params(get_format("fp16"))
    rng = np.random.default_rng(5)
    n, K = 64, 16
    F = get_format("fp8_e4m3")
    A = rng.integers(0, 256, size=(n, K))
    A[A == 0x7F] = 0x7E
    A[A == 0xFF] = 0xFE
    B = rng.integers(0, 256, size=(n, K))
    B[(B & 0x7F) == 0x7F] = 0x38
    va, vb = decode(A, F), decode(B, F)
    ref = np.diagonal(gemm_seq(va, vb, fp16))      # row i of A with row i of B
    build_unit("fp_mac", a="fp8_e4m3", b="fp8_e4m3", acc="fp16")
    outs = list(pyrtl.working_block().wirevector_subset(pyrtl.Output))
    clr = np.tile([1] + [0] * K, n)
    a = np.concatenate([np.concatenate([A[i], [0]]) for i in range(n)])
    b = np.concatenate([np.concatenate([B[i], [0]]) for i in range(n)])
    en = np.tile([1] * K + [0], n)
    got = np.array(simulate(outs, {"a": a, "b": b, "clr": clr, "en": en})["acc"])
    final = got[K::K + 1]                    # register value after the K-th add
    assert np.array_equal(decode(final, get_format("fp16")), ref)


@pytest.mark.parametrize("fa", ["fp8_e4m3", "fp8_e5m2", "fp4_e2m1"])
def test_kulisch_mac(fa):
    r = cosim("kulisch_mac", n=6000, sim="fast", a=fa, b=fa, terms=64)
    assert r.mismatches == 0, str(r)


def test_fp_fma_saturating_overflow():
    from lowbit.hw.fpmac import fp_fma_step
    pyrtl.reset_working_block()
    a, b, c = pyrtl.Input(8, "a"), pyrtl.Input(8, "b"), pyrtl.Input(16, "c")
    y = pyrtl.Output(16, "y")
    y <<= fp_fma_step(a, b, c, "fp8_e5m2", "fp8_e5m2", "fp16", overflow="saturate")
    # 57344^2 -> +max 0x7BFF; -(57344^2) -> -max 0xFBFF; 65504 + 16 = 65520 (tie, rounds up to
    # 65536 = overflow) -> max; 1*1 + 1 = 2 (0x4000) unaffected
    got = simulate([y], {"a": [0x7B, 0xFB, 0x4C, 0x3C], "b": [0x7B, 0x7B, 0x3C, 0x3C],
                         "c": [0, 0, 0x7BFF, 0x3C00]})["y"]
    assert got == [0x7BFF, 0xFBFF, 0x7BFF, 0x4000]


def test_fp_fma_p3109_extended_accumulator():
    """P3109 extended accumulator: Inf operands and overflow give the Inf codes below the NaN."""
    r = cosim("fp_fma", exhaustive=True, sim="compiled", a="p3109_k6p3se", b="p3109_k6p3se",
              acc="p3109_k8p4se")
    assert (r.vectors, r.mismatches) == (4096, 0), str(r)
