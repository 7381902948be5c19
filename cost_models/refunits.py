"""Reference RTL units (PyRTL -> Verilog) used to calibrate the analytic cost models.

These are small, parameterised, synthesis-only generators written for calibration until
(and in addition to) the units exported by ``lowbit.hw``. They are *not* verified
datapaths for simulation use (tests in tests/cost_models check them exhaustively for the
smallest widths only). Every generator returns Verilog text for a module named ``top``.

Units (``kind`` and parameters):
- ``int_mult``  (bits_a, bits_b, signed): p = a*b, full bits_a+bits_b-bit product
  (signed: unsigned array + two correction subtractions, see ``_signed_product``).
- ``int_mac``   (bits_a, bits_b, signed, acc_bits): registered accumulator acc += a*b
  (sign-extended), synchronous clear input ``clr``.
- ``fp_mult``   (ebits, mbits): minifloat exact product -> signed fixed point of
  ``HwFormat.product_fixed_bits`` bits: decode hidden bit (E != 0), subnormal exponent 1,
  (m+1)x(m+1) significand product, exponent add, left shift by Ea+Eb-2, conditional
  negate. No Inf/NaN handling (Kulisch-style FPGA MAC front end).
- ``fp_mac``    (ebits, mbits, acc_bits): fp_mult + registered fixed-point (Kulisch)
  accumulator of acc_bits bits.
"""

from __future__ import annotations

import io

import pyrtl

__all__ = ["make_verilog", "UNIT_KINDS"]

UNIT_KINDS = ("int_mult", "int_mac", "fp_mult", "fp_mac")


def _signed_product(a, b):
    """Two's-complement a*b (len(a)+len(b) bits) as an unsigned product plus two corrections.

    a*b = ua*ub - 2^n * a_s * ub - 2^m * b_s * ua  (mod 2^(n+m)), where ua, ub are the raw
    bit patterns and a_s, b_s the sign bits (Baugh-Wooley-equivalent cost: one unsigned
    n x m array plus two (n+m)-bit subtractions). ``pyrtl.signed_mult`` instead sign-extends
    both operands to n+m bits, which costs about twice the gates in Yosys.
    """
    n, m = len(a), len(b)
    w = n + m
    p = (a * b).truncate(w)  # pyrtl widens both operands to max(n, m) bits
    ca = pyrtl.select(a[n - 1], pyrtl.concat(b, pyrtl.Const(0, n)).truncate(w), pyrtl.Const(0, w))
    cb = pyrtl.select(b[m - 1], pyrtl.concat(a, pyrtl.Const(0, m)).truncate(w), pyrtl.Const(0, w))
    return (p - ca - cb).truncate(w)


def _fp_product(a, b, ebits: int, mbits: int):
    """Exact product of two minifloats as a signed fixed-point WireVector."""
    def dec(x):
        s = x[ebits + mbits]
        e = x[mbits:mbits + ebits]
        f = x[0:mbits] if mbits > 0 else None
        h = e != 0
        eeff = pyrtl.select(h, e, pyrtl.Const(1, ebits))
        sig = pyrtl.concat(h, f) if f is not None else h
        return s, eeff, sig

    sa, ea, ma = dec(a)
    sb, eb, mb = dec(b)
    span = 2 ** ebits - 2
    w = 2 * (mbits + 1) + 2 * span
    prod = (ma * mb).zero_extended(w)
    sh = (ea + eb - 2).truncate(ebits + 1)
    fixed = pyrtl.shift_left_logical(prod, sh) if span > 0 else prod
    fixed = fixed.zero_extended(w + 1)
    neg = (~fixed + 1).truncate(w + 1)
    return pyrtl.select(sa ^ sb, neg, fixed)


def _build(kind: str, p: dict) -> None:
    if kind in ("int_mult", "int_mac"):
        na, nb, signed = int(p["bits_a"]), int(p["bits_b"]), bool(p.get("signed", True))
        a, b = pyrtl.Input(na, "a"), pyrtl.Input(nb, "b")
        prod = _signed_product(a, b) if signed else (a * b)
        if kind == "int_mult":
            o = pyrtl.Output(na + nb, "p")
            o <<= prod
            return
        accb = int(p["acc_bits"])
        clr = pyrtl.Input(1, "clr")
        acc = pyrtl.Register(accb, "acc")
        ext = prod.sign_extended(accb) if signed else prod.zero_extended(accb)
        acc.next <<= pyrtl.select(clr, pyrtl.Const(0, accb), (acc + ext).truncate(accb))
        o = pyrtl.Output(accb, "y")
        o <<= acc
        return
    if kind in ("fp_mult", "fp_mac"):
        e, m = int(p["ebits"]), int(p["mbits"])
        bits = 1 + e + m
        a, b = pyrtl.Input(bits, "a"), pyrtl.Input(bits, "b")
        fx = _fp_product(a, b, e, m)
        if kind == "fp_mult":
            o = pyrtl.Output(len(fx), "p")
            o <<= fx
            return
        accb = int(p["acc_bits"])
        clr = pyrtl.Input(1, "clr")
        acc = pyrtl.Register(accb, "acc")
        acc.next <<= pyrtl.select(clr, pyrtl.Const(0, accb),
                                  (acc + fx.sign_extended(accb)).truncate(accb))
        o = pyrtl.Output(accb, "y")
        o <<= acc
        return
    raise ValueError(f"unit kind: unknown {kind!r}; allowed: {', '.join(UNIT_KINDS)}")


def fresh_block() -> None:
    """Reset PyRTL's working block and its temporary-wire name counters, so the same unit
    always exports byte-identical Verilog (the synthesis cache is keyed by the text)."""
    pyrtl.reset_working_block()
    try:
        pyrtl.wire._reset_wire_indexers()
    except AttributeError:  # pragma: no cover - other pyrtl versions
        pass


def make_verilog(kind: str, **params) -> str:
    """Verilog text (module ``top``) of a reference unit. Resets PyRTL's working block."""
    fresh_block()
    try:
        _build(kind, params)
        buf = io.StringIO()
        pyrtl.output_to_verilog(buf, module_name="top")
        return buf.getvalue()
    finally:
        pyrtl.reset_working_block()


def simulate(kind: str, vectors: dict, **params) -> list[int]:
    """Simulate a reference unit on input vectors (dict name -> list); returns output trace."""
    pyrtl.reset_working_block()
    try:
        _build(kind, params)
        sim = pyrtl.FastSimulation()
        sim.step_multiple(vectors)
        out = "p" if kind.endswith("mult") else "y"
        return list(sim.tracer.trace[out])
    finally:
        pyrtl.reset_working_block()
