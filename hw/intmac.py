"""Integer multipliers and MAC units (PyRTL generators, rtllib style).

All generators take and return :class:`pyrtl.WireVector` s and build logic in the current working
block.  Integers are two's complement when ``signed=True``.

* :func:`int_multiply` - exact product ``a * b`` (``len(a) + len(b)`` bits, no rounding, no
  overflow); structure ``"array"`` (PyRTL ``*`` operator, a carry-save array after synthesis),
  ``"wallace"`` or ``"dadda"`` (``pyrtl.rtllib.multipliers.(signed_)tree_multiplier`` with
  ``adders.wallace_reducer`` / ``adders.dada_reducer``).
* :func:`acc_width` - accumulator width that can never overflow for ``n_acc`` accumulations.
* :func:`int_mac` - registered MAC ``acc <= (clr ? 0 : acc) + (en ? a*b : 0)``.
"""

from __future__ import annotations

import pyrtl
from pyrtl.rtllib import adders, multipliers

MULT_STRUCTURES = ("array", "wallace", "dadda")


def product_range(wa: int, wb: int, signed_a: bool, signed_b: bool) -> tuple[int, int]:
    """(min, max) of the exact integer product of a ``wa``-bit and a ``wb``-bit operand."""
    ra = (-(1 << (wa - 1)), (1 << (wa - 1)) - 1) if signed_a else (0, (1 << wa) - 1)
    rb = (-(1 << (wb - 1)), (1 << (wb - 1)) - 1) if signed_b else (0, (1 << wb) - 1)
    c = [x * y for x in ra for y in rb]
    return min(c), max(c)


def acc_width(wa: int, wb: int, n_acc: int, signed_a: bool = True, signed_b: bool = True) -> int:
    """Smallest two's-complement (or unsigned, when both operands are unsigned) width that holds
    every sum of ``n_acc`` products of ``wa`` x ``wb``-bit operands: no overflow by construction.

    Exact bound: range = n_acc * [pmin, pmax]; e.g. int8 x int8, n=1 -> 16 bits
    ((-128)*(-128) = 16384 needs 16 signed bits), n = 2**k -> 16 + k bits at most.
    """
    if n_acc < 1:
        raise ValueError(f"n_acc={n_acc}: must be >= 1")
    lo, hi = product_range(wa, wb, signed_a, signed_b)
    lo, hi = lo * n_acc, hi * n_acc
    if not (signed_a or signed_b):
        return max(1, hi.bit_length())
    w = 1
    while not (-(1 << (w - 1)) <= lo and hi <= (1 << (w - 1)) - 1):
        w += 1
    return w


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


def int_mac(a, b, n_acc: int, signed: bool = True, structure: str = "array", clr=None, en=None,
            name: str | None = None):
    """Registered integer MAC (one product per cycle).

    ``acc <= (clr ? 0 : acc) + (en ? a*b : 0)``; ``clr``/``en`` default to 0 / 1.  The register
    width is :func:`acc_width` ``(len(a), len(b), n_acc)`` so ``n_acc`` accumulations can never
    overflow.  Returns the accumulator register (value visible the cycle after the add).
    """
    w = acc_width(len(a), len(b), n_acc, signed, signed)
    p = int_multiply(a, b, signed, structure)
    p = p.sign_extended(w) if signed else p.zero_extended(w)
    acc = pyrtl.Register(w, name=name or "")
    base = acc if clr is None else pyrtl.select(clr, pyrtl.Const(0, w), acc)
    add = p if en is None else pyrtl.select(en, p, pyrtl.Const(0, w))
    acc.next <<= (base + add)[:w]
    return acc
