"""Integer multipliers and MAC units (PyRTL generators, rtllib style).

All generators take and return :class:`pyrtl.WireVector` s and build logic in the current working
block.  Integers are two's complement when ``signed=True``.

* :func:`int_multiply` - exact product ``a * b`` (``len(a) + len(b)`` bits, no rounding, no
  overflow); structure ``"array"`` (PyRTL ``*`` operator, a carry-save array after synthesis),
  ``"wallace"`` or ``"dadda"`` (``pyrtl.rtllib.multipliers.(signed_)tree_multiplier`` with
  ``adders.wallace_reducer`` / ``adders.dada_reducer``).
* :func:`int_mac` - registered MAC ``acc <= (clr ? 0 : acc) + (en ? a*b : 0)`` in a ``width``-bit
  register that wraps or saturates (:func:`lowbit.hw.widths.acc_width` gives the width that
  never overflows).
"""

from __future__ import annotations

import pyrtl
from pyrtl.rtllib import adders, multipliers

from lowbit.hw.unit import Pipe

MULT_STRUCTURES = ("array", "wallace", "dadda")


def _mixed_to_signed(w, signed: bool):
    """Extend an operand by one bit so that it is a valid signed value (unsigned -> 0-prefix)."""
    return w.sign_extended(len(w) + 1) if signed else w.zero_extended(len(w) + 1)


def int_multiply(a, b, signed: bool | tuple = False, structure: str = "array",
                 adder=adders.kogge_stone):
    """Exact integer product of ``a`` and ``b``.

    signed: bool for both operands or ``(signed_a, signed_b)``.  Result width
    ``len(a) + len(b)`` (two's complement if either operand is signed; for one signed and one
    unsigned operand the result width is ``len(a) + len(b) + 1`` - never overflows).
    structure: "array" (``*`` operator), "wallace" or "dadda" (reduction trees).
    """
    if structure not in MULT_STRUCTURES:
        raise ValueError(f"structure={structure!r}; allowed: {MULT_STRUCTURES}")
    sa, sb = (signed, signed) if isinstance(signed, bool) else tuple(signed)
    width = len(a) + len(b) + (1 if sa != sb else 0)
    if sa != sb:  # mixed: widen both to signed (the product still fits in `width` bits)
        a, b = _mixed_to_signed(a, sa), _mixed_to_signed(b, sb)
        sa = sb = True
    if structure == "array":
        if sa:
            return pyrtl.signed_mult(a, b)[:width]
        return (a * b)[:width]
    reducer = adders.wallace_reducer if structure == "wallace" else adders.dada_reducer
    if sa:
        # pyrtl 1.0's signed_tree_multiplier takes |x| in len(x) bits, which is wrong for the most
        # negative code (-8 * 1 == 0 for 4 bits); one extra sign bit makes |x| representable.
        a1, b1 = a.sign_extended(len(a) + 1), b.sign_extended(len(b) + 1)
        return multipliers.signed_tree_multiplier(a1, b1, reducer=reducer,
                                                  adder_func=adder)[:width]
    return multipliers.tree_multiplier(a, b, reducer=reducer, adder_func=adder)[:width]


def _split_multiply(a, b, sa: bool, sb: bool, structure: str, pipe: Pipe):
    """``a * b`` as two registered partial products ``a * b_lo`` and ``a * b_hi`` (cut
    ``"split"``), summed after the cut: ``a*b = a*b_lo + (a*b_hi << h)``, ``b_lo`` unsigned."""
    h = len(b) // 2
    width = len(a) + len(b) + (1 if sa != sb else 0)
    lo = int_multiply(a, b[:h], (sa, False), structure)
    hi = int_multiply(a, b[h:], (sa, sb), structure)
    lo, hi = pipe.cut("split", lo, hi)
    lo = lo.sign_extended(width) if sa else lo.zero_extended(width)
    hi = hi.sign_extended(width - h) if (sa or sb) else hi.zero_extended(width - h)
    return (lo + pyrtl.concat(hi, pyrtl.Const(0, h)))[:width]


def int_mac(a, b, width: int, signed=True, structure: str = "array", clr=None, en=None,
            overflow: str = "wrap", name: str = "acc_q", pipe: Pipe | None = None):
    """Registered integer MAC (one product per cycle) with a ``width``-bit accumulator.

    ``acc <= (clr ? 0 : acc) + (en ? a*b : 0)``; ``clr``/``en`` default to 0 / 1. The product is
    exact; the sum is formed exactly and then ``overflow="wrap"`` keeps its low ``width`` bits
    (two's complement) or ``"saturate"`` clamps it to ``[-2**(width-1), 2**(width-1) - 1]``
    (``lowbit.formats.accum.IntAccum(width, overflow)``). ``signed``: bool or ``(sa, sb)``.
    ``pipe`` cut points: ``"split"`` (two registered half products, b split in halves) and
    ``"product"`` (registered product); ``clr`` / ``en`` are delayed to match. Returns the
    accumulator register (value visible the cycle after the add).
    """
    if overflow not in ("wrap", "saturate"):
        raise ValueError(f"overflow={overflow!r}; allowed: 'wrap', 'saturate'")
    pipe = pipe or Pipe()
    sa, sb = (signed, signed) if isinstance(signed, bool) else tuple(signed)
    if "split" in pipe.cuts and len(b) >= 2:
        p = _split_multiply(a, b, sa, sb, structure, pipe)
    else:
        p = int_multiply(a, b, (sa, sb), structure)
    p = pipe.cut("product", p)
    if clr is not None:
        clr = pipe.delay(clr)
    if en is not None:
        en = pipe.delay(en)
    pipe.check_done()
    w = int(width)
    S = max(w, len(p)) + 1
    ext = (lambda x: x.sign_extended(S)) if (sa or sb) else (lambda x: x.zero_extended(S))
    acc = pyrtl.Register(w, name=name)
    base = acc if clr is None else pyrtl.select(clr, pyrtl.Const(0, w), acc)
    add = ext(p) if en is None else pyrtl.select(en, ext(p), pyrtl.Const(0, S))
    tot = (base.sign_extended(S) + add)[:S]
    if overflow == "wrap":
        acc.next <<= tot[:w]
    else:
        top = tot[w - 1:]                           # in range iff these bits are all equal
        ok = (top == 0) | (top == (1 << len(top)) - 1)
        sat = pyrtl.select(tot[S - 1], pyrtl.Const(1 << (w - 1), w),
                           pyrtl.Const((1 << (w - 1)) - 1, w))
        acc.next <<= pyrtl.select(ok, tot[:w], sat)
    return acc
