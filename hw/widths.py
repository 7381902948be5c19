"""The one place that sizes exact datapaths: product and accumulator widths.

Every operand code of a format is an integer multiple of ``2**-frac_bits(fmt)``:

* float (signed ExMy with subnormals): ``value = sig * 2**(e_eff - bias - mbits)`` with
  ``e_eff = max(field, 1)``, so ``value * 2**(bias + mbits - 1) = sig * 2**(e_eff - 1)`` is an
  integer; the largest magnitude is ``max_sig * 2**(max_field - 1)``
  (``max_sig = (1 << mbits) | max_mant``; Inf/NaN codes carry no value);
* int: ``value = q * 2**-frac_bits`` with ``q`` any two's-complement (or unsigned) code -- the
  full code range, ``narrow`` formats included, because hardware sees every code.

The exact product of two operands is then an integer in units of ``2**-product_frac_bits``,
inside :func:`product_range`; a sum of ``terms`` such products lies in
``terms * [lo, hi]``. :func:`acc_width` is the smallest register (two's complement, or
unsigned when both operands are unsigned) that holds every such sum -- exact, no overflow by
construction. :func:`product_width` is ``acc_width(terms=1)``. The Kulisch accumulator, the
integer MAC, the MX / NVFP4 adder trees and the cost models all read these two functions.

Examples: int8 x int8 -> 16 bits (``(-128)**2 = 16384``), int8 x uint8 -> 16, E2M1 -> 9,
E2M3 -> 13, E3M2 -> 19, E4M3 -> 37, E5M2 -> 65 (largest finite binade 30; the all-ones
binade is Inf/NaN), E4M3 x E4M3 over 1024 terms -> 47.
"""

from __future__ import annotations

import math

from lowbit.formats import FloatFormat, IntFormat, resolve

__all__ = ["operand_format", "frac_bits", "code_range", "product_frac_bits", "product_range",
           "acc_width", "product_width", "ceil_log2"]


def ceil_log2(x: int) -> int:
    """``ceil(log2(x))`` for ``x >= 1`` (0 for ``x <= 1``)."""
    return 0 if x <= 1 else int(math.ceil(math.log2(x)))


def operand_format(fmt):
    """Element format of ``fmt`` (a name, a format, or a BlockFormat -> its element)."""
    f = resolve(fmt)
    el = getattr(f, "element", None)
    f = el if el is not None else f
    if not isinstance(f, (FloatFormat, IntFormat)):
        raise ValueError(f"format {fmt!r}: expected a float or integer element format")
    return f


def frac_bits(fmt) -> int:
    """Fraction bits ``S`` such that every finite code is an integer multiple of ``2**-S``."""
    f = operand_format(fmt)
    if isinstance(f, IntFormat):
        return int(f.frac_bits)
    return f.bias + f.mbits - 1


def code_range(fmt) -> tuple[int, int]:
    """(min, max) of the finite codes as integers in units of ``2**-frac_bits(fmt)``."""
    f = operand_format(fmt)
    if isinstance(f, IntFormat):
        if f.signed:
            return -(1 << (f.bits - 1)), (1 << (f.bits - 1)) - 1
        return 0, (1 << f.bits) - 1
    top = ((1 << f.mbits) | f.max_mant) << (max(f.max_field, 1) - 1)
    return (-top if f.signed else 0), top


def product_frac_bits(fa, fb) -> int:
    """Fraction bits F of the exact product: ``value(a) * value(b) == p * 2**-F``."""
    return frac_bits(fa) + frac_bits(fb)


def product_range(fa, fb) -> tuple[int, int]:
    """(min, max) exact product over all finite code pairs, in units of ``2**-F``."""
    (a0, a1), (b0, b1) = code_range(fa), code_range(fb)
    c = [x * y for x in (a0, a1) for y in (b0, b1)]
    return min(c), max(c)


def _signed(fmt) -> bool:
    return bool(operand_format(fmt).signed)


def acc_width(fa, fb, terms: int = 1) -> int:
    """Smallest register that holds every sum of ``terms`` exact products ``a * b``.

    Two's complement when either operand is signed, unsigned otherwise. ``terms`` >= 1.
    """
    if int(terms) != terms or terms < 1:
        raise ValueError(f"terms={terms!r}: must be an integer >= 1")
    lo, hi = product_range(fa, fb)
    lo, hi = lo * int(terms), hi * int(terms)
    if not (_signed(fa) or _signed(fb)):
        return max(1, hi.bit_length())
    neg = (-lo - 1).bit_length() if lo < 0 else 0   # -2**(w-1) <= lo
    return max(neg, hi.bit_length()) + 1             # hi <= 2**(w-1) - 1


def product_width(fa, fb) -> int:
    """Width of the exact product ``a * b`` (``acc_width(fa, fb, terms=1)``)."""
    return acc_width(fa, fb, 1)
