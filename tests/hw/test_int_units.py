"""Integer multiplier / MAC, FPGA LUT multipliers and DSP MAC vs exact integer references."""

import numpy as np
import pyrtl
import pytest

from lowbit.hw.cosim import cosim, simulate
from lowbit.hw.intmac import int_multiply
from lowbit.hw.widths import acc_width, product_width


def test_acc_width_hand_examples():
    assert acc_width("int8", "int8", 1) == 16   # (-128)*(-128) = 16384 needs 16 signed bits
    assert acc_width("int8", "int8", 2) == 17   # 32768
    assert acc_width("int8", "int8", 1024) == 26  # 1024 * 16384 = 2^24 -> 26 bits with sign
    assert acc_width("uint8", "uint8", 4) == 18   # 4 * 255^2 = 260100 < 2^18 (unsigned)
    assert acc_width("int4", "int4", 1) == 8
    # signed x unsigned: [-128*255, 127*255] = [-32640, 32385] fits 16 signed bits
    assert product_width("int8", "uint8") == 16 and product_width("int4", "uint8") == 12


@pytest.mark.parametrize("fa,fb", [("int3", "int5"), ("uint4", "int3"), ("uint3", "uint4"),
                                   ("fp4_e2m1", "fp4_e2m1"), ("fp6_e3m2", "fp4_e2m1")])
@pytest.mark.parametrize("terms", [1, 3, 5])
def test_acc_width_is_the_smallest_exact_register(fa, fb, terms):
    """Brute force over every code pair: all sums of `terms` products fit, one bit less does not."""
    from lowbit.formats import decode, resolve
    from lowbit.hw.widths import product_frac_bits

    f, g = resolve(fa), resolve(fb)
    ca, cb = np.arange(1 << f.bits), np.arange(1 << g.bits)
    va, vb = (decode(ca, f) if f.kind == "float" else ca.astype(float)), \
        (decode(cb, g) if g.kind == "float" else cb.astype(float))
    if f.kind == "int" and f.signed:
        va = np.where(ca >= 1 << (f.bits - 1), ca - (1 << f.bits), ca).astype(float)
    if g.kind == "int" and g.signed:
        vb = np.where(cb >= 1 << (g.bits - 1), cb - (1 << g.bits), cb).astype(float)
    p = np.outer(va[np.isfinite(va)], vb[np.isfinite(vb)]) * 2.0 ** product_frac_bits(f, g)
    lo, hi = int(p.min()) * terms, int(p.max()) * terms
    w = acc_width(fa, fb, terms)
    signed = f.signed or g.signed
    fits = (lambda w: -(1 << (w - 1)) <= lo and hi < (1 << (w - 1))) if signed \
        else (lambda w: hi < (1 << w))
    assert fits(w) and not fits(w - 1)


@pytest.mark.parametrize("structure", ["array", "wallace", "dadda"])
@pytest.mark.parametrize("sa,sb", [(True, True), (False, False), (True, False)])
def test_int_multiply_exhaustive_6bit(structure, sa, sb):
    pyrtl.reset_working_block()
    a, b = pyrtl.Input(6, "a"), pyrtl.Input(6, "b")
    p = int_multiply(a, b, (sa, sb), structure)
    o = pyrtl.Output(len(p), "p")
    o <<= p
    A = np.repeat(np.arange(64), 64)
    B = np.tile(np.arange(64), 64)
    got = np.array(simulate([o], {"a": A, "b": B}, "fast")["p"])
    va = np.where(A > 31, A - 64, A) if sa else A
    vb = np.where(B > 31, B - 64, B) if sb else B
    assert np.array_equal(got, (va * vb) & ((1 << len(p)) - 1))


@pytest.mark.parametrize("structure", ["array", "wallace"])
def test_mixed_sign_int8_uint8_exhaustive(structure):
    """int8 x uint8 needs 8 + 8 + 1 = 17 bits: [-128*255, 127*255] (a wrong width fails here)."""
    r = cosim("int_mul", exhaustive=True, sim="fast", a="int8", b="uint8", structure=structure)
    assert r.vectors == 65536 and r.mismatches == 0, str(r)


def test_int8_mul_exhaustive_compiled():
    r = cosim("int_mul", exhaustive=True, sim="compiled", a="int8", b="int8", structure="dadda")
    assert r.vectors == 65536 and r.mismatches == 0, str(r)


def test_int_mac_random():
    r = cosim("int_mac", n=4000, sim="fast", a="int8", b="int8", terms=16)
    assert r.vectors == 4000 and r.mismatches == 0, str(r)


def test_lut_multipliers_exhaustive():
    r4 = cosim("lut_mul4", exhaustive=True, sim="fast")
    r8 = cosim("lut_mul8", exhaustive=True, sim="compiled")
    assert (r4.vectors, r4.mismatches) == (256, 0), str(r4)
    assert (r8.vectors, r8.mismatches) == (65536, 0), str(r8)


def test_dsp_mac_latency_and_values():
    r = cosim("dsp_mac", n=3000, sim="fast")
    assert r.mismatches == 0, str(r)
    # hand-worked latency: operands in cycle 0 are visible in P in cycle 3
    from lowbit.hw.units import build_unit
    build_unit("dsp_mac")
    outs = list(pyrtl.working_block().wirevector_subset(pyrtl.Output))
    got = simulate(outs, {"a": [0xFF, 3, 0, 0, 0], "b": [0x80, 5, 0, 0, 0],
                          "clr": [1, 0, 0, 0, 0], "en": [1, 1, 0, 0, 0]})["acc"]
    assert got == [0, 0, 0, 128, 143]        # (-1)*(-128) = 128, then + 15
