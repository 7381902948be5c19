"""FPGA-flavoured units.

* :func:`lut_mul4` - 4x4 multiplier as a 256 x 8-bit asynchronous ROM (``pyrtl.RomBlock``)
  addressed by ``{a, b}``: on a 6-input-LUT FPGA each output bit is one 8-input function
  (4 LUT6 + 2 MUXF7/MUXF8 per bit, or one LUT-RAM), no carry chain.  Signed or unsigned.
* :func:`lut_mul8` - 8x8 unsigned/signed multiplier from four 4x4 ROM partial products
  (``aH*bH << 8 + (aH*bL + aL*bH) << 4 + aL*bL``; signed operands use signed high nibbles and
  unsigned low nibbles, i.e. 4 ROMs of two kinds).
* :func:`dsp_mac` - int8 x int8 MAC shaped like one Xilinx DSP48E1/E2 slice in MACC mode:
  input registers A/B (AREG=BREG=1), product register M (MREG=1), 48-bit accumulator P
  (PREG=1) with ``clr`` playing the role of OPMODE "P = M" (load instead of accumulate).
  Latency: an operand pair presented in cycle t is in P after the clock edge of cycle t+2
  (visible in cycle t+3); ``clr``/``en`` are pipelined along with the operands.  The 48-bit P
  register wraps modulo 2^48 (never reached for < 2^33 int8 products).
"""

from __future__ import annotations

import numpy as np
import pyrtl

from lowbit.hw.vectors import all_pairs


def _s(v, w):
    return v - (1 << w) if v >= (1 << (w - 1)) else v


def lut_mul4(a, b, signed: bool = True, name: str | None = None):
    """4x4 -> 8-bit product through a 256-entry ROM (``a`` high address bits)."""
    data = []
    for i in range(256):
        x, y = i >> 4, i & 15
        if signed:
            x, y = _s(x, 4), _s(y, 4)
        data.append((x * y) & 0xFF)
    rom = pyrtl.RomBlock(8, 8, data, name=name or "", asynchronous=True, max_read_ports=None)
    return rom[pyrtl.concat(a, b)]


def _rom_mixed(a, b):
    """signed 4-bit a x unsigned 4-bit b -> 8-bit signed product ROM."""
    data = [(_s(i >> 4, 4) * (i & 15)) & 0xFF for i in range(256)]
    rom = pyrtl.RomBlock(8, 8, data, asynchronous=True, max_read_ports=None)
    return rom[pyrtl.concat(a, b)]


def lut_mul8(a, b, signed: bool = True):
    """8x8 -> 16-bit product from four 4x4 ROM multipliers."""
    aL, aH, bL, bH = a[:4], a[4:], b[:4], b[4:]
    ll = lut_mul4(aL, bL, signed=False)
    if signed:
        hh = lut_mul4(aH, bH, signed=True).sign_extended(16)
        hl = _rom_mixed(aH, bL).sign_extended(16)
        lh = _rom_mixed(bH, aL).sign_extended(16)
    else:
        hh = lut_mul4(aH, bH, signed=False).zero_extended(16)
        hl = lut_mul4(aH, bL, signed=False).zero_extended(16)
        lh = lut_mul4(aL, bH, signed=False).zero_extended(16)
    s = (pyrtl.concat(hh[:8], pyrtl.Const(0, 8)) + pyrtl.concat(hl[:12], pyrtl.Const(0, 4)))[:16]
    s = (s + pyrtl.concat(lh[:12], pyrtl.Const(0, 4)))[:16]
    return (s + ll.zero_extended(16))[:16]


def dsp_mac(a, b, clr, en, acc_bits: int = 48):
    """DSP48-style registered int8 MAC (see module docstring); returns the P register."""
    A, B = pyrtl.Register(len(a), "dsp_A"), pyrtl.Register(len(b), "dsp_B")
    c1, e1 = pyrtl.Register(1, "dsp_clr1"), pyrtl.Register(1, "dsp_en1")
    M = pyrtl.Register(len(a) + len(b), "dsp_M")
    c2, e2 = pyrtl.Register(1, "dsp_clr2"), pyrtl.Register(1, "dsp_en2")
    P = pyrtl.Register(acc_bits, "dsp_P")
    A.next <<= a
    B.next <<= b
    c1.next <<= clr
    e1.next <<= en
    M.next <<= pyrtl.signed_mult(A, B)[:len(a) + len(b)]
    c2.next <<= c1
    e2.next <<= e1
    base = pyrtl.select(c2, pyrtl.Const(0, acc_bits), P)
    add = pyrtl.select(e2, M.sign_extended(acc_bits), pyrtl.Const(0, acc_bits))
    P.next <<= (base + add)[:acc_bits]
    return P


# --- unit registry hooks (used by lowbit.hw.units) ---------------------------------------
def build_lut_mul4(signed=True, **_):
    a, b = pyrtl.Input(4, "a"), pyrtl.Input(4, "b")
    o = pyrtl.Output(8, "p")
    o <<= lut_mul4(a, b, signed)


def vectors_mul4(n, rng, exhaustive, **_):
    a, b = all_pairs(4, 4)
    return {"a": a, "b": b}


def _expected_mul(v, bits, signed):
    """Exact product of ``bits``-bit operands as a ``2*bits``-bit two's-complement code."""
    a, b = v["a"], v["b"]
    if signed:
        half = 1 << (bits - 1)
        a, b = np.where(a >= half, a - 2 * half, a), np.where(b >= half, b - 2 * half, b)
    return {"p": (a * b) & ((1 << (2 * bits)) - 1)}


def expected_mul4(v, signed=True, **_):
    return _expected_mul(v, 4, signed)


def build_lut_mul8(signed=True, **_):
    a, b = pyrtl.Input(8, "a"), pyrtl.Input(8, "b")
    o = pyrtl.Output(16, "p")
    o <<= lut_mul8(a, b, signed)


def vectors_mul8(n, rng, exhaustive, **_):
    a, b = all_pairs(8, 8)
    return {"a": a, "b": b}


def expected_mul8(v, signed=True, **_):
    return _expected_mul(v, 8, signed)


def build_dsp_mac(**_):
    a, b = pyrtl.Input(8, "a"), pyrtl.Input(8, "b")
    clr, en = pyrtl.Input(1, "clr"), pyrtl.Input(1, "en")
    o = pyrtl.Output(48, "acc")
    o <<= dsp_mac(a, b, clr, en)


def vectors_dsp_mac(n, rng, exhaustive, **_):
    if exhaustive:
        a, b = all_pairs(8, 8)
    else:
        a, b = rng.integers(0, 256, n), rng.integers(0, 256, n)
    m = len(a)
    return {"a": a, "b": b, "clr": (np.arange(m) % 64 == 0).astype(np.int64),
            "en": (rng.random(m) < 0.9).astype(np.int64)}


def expected_dsp_mac(v, **_):
    a, b = v["a"], v["b"]
    p = np.where(a > 127, a - 256, a) * np.where(b > 127, b - 256, b)
    out, P = [], 0
    n = len(a)
    for t in range(n):  # P visible in cycle t shows operands of cycles <= t-3
        out.append(P & ((1 << 48) - 1))
        s = t - 2
        if s >= 0:
            P = (0 if v["clr"][s] else P) + (int(p[s]) if v["en"][s] else 0)
    return {"acc": np.array(out, dtype=object)}
