"""L-Mul: the approximate minifloat multiplier of Luo & Sun (2024, "Addition is All You Need for
Energy-efficient Language Models") as a PyRTL generator - one integer adder.

The emulator's definition (:class:`lowbit.formats.multiplier.LMul`) is built literally: the
``(e+m)``-bit exponent-and-mantissa fields of the two operands and the constant ``2^(m - l)``
(the correction ``2^-l`` in mantissa LSBs) go through ONE adder; its sum ``S`` is read as
exponent ``S >> m`` (a mantissa carry has already moved into it) and mantissa ``S mod 2^m``.
No significand multiplier, no normalisation shifter, no rounding. Sign = XOR; zero and
subnormal operands (exponent field 0) give a signed zero; NaN / Inf flags as for
:func:`lowbit.hw.fpmul.fp_multiply`.

:func:`lmul_multiply` returns a :class:`~lowbit.hw.fpmul.Product` with the same fields and
fixed-point scaling as ``fp_multiply`` (``fixed * 2**-F``, ``F = bias_a + bias_b + 2m - 2``; the
magnitude is :func:`lmul_width` bits, one more than the exact product's, for the mantissa carry),
so a MAC or Kulisch accumulator can take either multiplier.
"""

from __future__ import annotations

import pyrtl

from lowbit.formats.multiplier import LMul, parse_multiplier
from lowbit.hw.fpmul import Product, as_float_format, fp_decode, fp_multiply


def lmul_model(multiplier) -> LMul:
    """The :class:`LMul` described by ``multiplier`` (``"lmul"``, ``"lmul_l<k>"`` or an LMul)."""
    m = parse_multiplier(multiplier)
    if not isinstance(m, LMul):
        raise ValueError(f"multiplier={m.name!r}: the L-Mul generator builds lmul / lmul_l<k>")
    return m


def lmul_width(fa, fb) -> int:
    """Magnitude bits of the fixed-point L-Mul product: ``2m + maxfield_a + maxfield_b + 1``
    (``sig = (2^m + M) << m < 2^(2m+1)`` shifted left by ``S >> m`` minus 2, where the
    mantissa sum can carry up to 2 into ``maxfield_a + maxfield_b`` when ``l < m``) - one bit
    more than the exact product's magnitude."""
    fa, fb = as_float_format(fa), as_float_format(fb)
    return 2 * fa.mbits + fa.max_field + fb.max_field + 1


def lmul_multiply(a, b, fmt_a, fmt_b, multiplier="lmul", pipe=None) -> Product:
    """L-Mul product of the codes ``a`` (``fmt_a``) and ``b`` (``fmt_b``), see the module
    docstring. ``sig = (2^m + M) << m`` and ``exp = S >> m`` keep ``fp_multiply``'s scaling:
    value ``= sig * 2^(exp - bias_a - bias_b - 2m)``. ``pipe`` (a ``lowbit.hw`` pipeline-cut
    object, as for ``fp_multiply``): cut points ``"decode"`` (operand codes and their decoded
    flags) and ``"product"`` (adder output, sign and flags, before the shift)."""
    model = lmul_model(multiplier)
    fa, fb = as_float_format(fmt_a), as_float_format(fmt_b)
    model.check(fa, fb)
    m, e = fa.mbits, fa.ebits
    da, db = fp_decode(a, fa), fp_decode(b, fb)
    flags = (da.sign, db.sign, da.is_nan, db.is_nan, da.is_inf, db.is_inf, da.is_zero,
             db.is_zero)
    if pipe is not None:
        a, b, *flags = pipe.cut("decode", a, b, *flags)
    sa, sb, nan_a, nan_b, inf_a, inf_b, zero_a, zero_b = flags
    corr = pyrtl.Const(1 << (m - model.l_for(m)), m + e + 2)
    s = (a[:m + e].zero_extended(m + e + 2) + b[:m + e].zero_extended(m + e + 2) + corr)
    s = s[:m + e + 2]
    flushed = (a[m:m + e] == 0) | (b[m:m + e] == 0)
    sign = sa ^ sb
    is_nan = nan_a | nan_b | (inf_a & zero_b) | (inf_b & zero_a)
    is_inf = (inf_a | inf_b) & ~is_nan
    zero_out = flushed | nan_a | nan_b | inf_a | inf_b
    if pipe is not None:
        s, sign, is_nan, is_inf, zero_out, flushed = pipe.cut(
            "product", s, sign, is_nan, is_inf, zero_out, flushed)
    exp, man = s[m:], s[:m]
    sig = pyrtl.concat(pyrtl.Const(1, 1), man, pyrtl.Const(0, m))
    W = lmul_width(fa, fb)
    shift = (exp - 2)[:max(1, (fa.max_field + fb.max_field).bit_length())]
    mag = pyrtl.shift_left_logical(sig.zero_extended(W), shift)[:W]
    mag = pyrtl.select(zero_out, pyrtl.Const(0, W), mag)
    magx = mag.zero_extended(W + 1)
    fixed = pyrtl.select(sign, (~magx + 1)[:W + 1], magx)
    return Product(sign, sig, exp, mag, fixed, flushed, is_nan, is_inf)


def check_multiplier(mul, fa, fb) -> str:
    """Canonical name of multiplier ``mul`` for a unit with operands ``fa`` x ``fb``:
    ``"exact"`` or an L-Mul model that can multiply them (ValueError naming ``--mul``)."""
    try:
        m = parse_multiplier(mul)
        if not m.is_exact:
            lmul_model(m).check(fa, fb)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"--mul={mul!r}: {exc}") from None
    return m.name


def product_generator(mul="exact"):
    """The product generator of multiplier model ``mul``: :func:`fp_multiply` for ``"exact"``,
    :func:`lmul_multiply` bound to the L-Mul model otherwise (both ``(a, b, fa, fb, pipe=None)
    -> Product``)."""
    m = parse_multiplier(mul)
    if m.is_exact:
        return fp_multiply

    def multiply(a, b, fmt_a, fmt_b, pipe=None):
        return lmul_multiply(a, b, fmt_a, fmt_b, m, pipe=pipe)
    return multiply
