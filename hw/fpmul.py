"""Minifloat decode and exact minifloat multiplier (PyRTL generators).

Supported element formats: any signed lowbit :class:`~lowbit.formats.FloatFormat` with a zero and
subnormals (ExMy, OCP FP8/FP6/FP4, IEEE fp16/bf16/fp32, fnuz variants).  NaN/Inf decoding follows
the format's ``nan`` policy:

* ``"ieee"`` - exponent field all ones: Inf (mantissa 0, when the format has Inf) else NaN;
* ``"fn"``   - only the all-ones code per sign is NaN (OCP E4M3), no Inf;
* ``"fnuz"`` - only the negative-zero code ``1 << (bits-1)`` is NaN, no Inf, no -0;
* ``None``   - no special codes (OCP FP6 / FP4).

Decoded value of a finite code: ``(-1)^s * sig * 2^(e_eff - bias - mbits)`` with
``sig = hidden.mantissa`` (``mbits+1`` bits, ``hidden = field != 0``) and ``e_eff = max(field, 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyrtl

from lowbit.formats import FloatFormat, resolve
from lowbit.hw.widths import product_width


def as_float_format(fmt) -> FloatFormat:
    """Resolve a name / FloatFormat and check that the hardware generators support it."""
    f = resolve(fmt)
    if not isinstance(f, FloatFormat):
        raise ValueError(f"format {fmt!r}: expected a lowbit FloatFormat (e.g. fp8_e4m3, fp4_e2m1)")
    if not (f.signed and f.zero and (f.subnormals or f.mbits == 0)):
        raise ValueError(f"format {f.name}: hw multipliers need a signed format with zero and "
                         "subnormals (use the MX/NVFP4 units for E8M0/UE4M3 scales)")
    return f


@dataclass
class Decoded:
    """Fields of a decoded minifloat (all PyRTL wires)."""

    sign: pyrtl.WireVector      # 1 bit
    sig: pyrtl.WireVector       # mbits+1 bits, hidden bit included
    exp: pyrtl.WireVector       # ebits bits, effective exponent field max(field, 1)
    is_zero: pyrtl.WireVector
    is_nan: pyrtl.WireVector
    is_inf: pyrtl.WireVector


def fp_decode(code, fmt) -> Decoded:
    """Split ``code`` (``fmt.bits`` wide) into sign / significand / effective exponent / flags."""
    f = as_float_format(fmt)
    m, e = f.mbits, f.ebits
    man = code[:m] if m else pyrtl.Const(0, 1)
    ex = code[m:m + e]
    sign = code[m + e]
    ex_zero = ex == 0
    sig = pyrtl.concat(ex != 0, code[:m]) if m else (ex != 0)
    exp = pyrtl.select(ex_zero, pyrtl.Const(1, e), ex)
    top = (1 << e) - 1
    false = pyrtl.Const(0, 1)
    if f.nan == "ieee":
        special = ex == top
        is_inf = (special & (man == 0)) if f.has_inf else false
        is_nan = (special & (man != 0)) if f.has_inf else special
    else:
        if f.nan == "fn":
            is_nan = (code[:m + e] == (1 << (m + e)) - 1)
        elif f.nan == "fnuz":
            is_nan = code == (1 << (f.bits - 1))
        else:
            is_nan = false
        # Inf below the top NaN (IEEE P3109 extended domain)
        is_inf = (code[:m + e] == f.inf_code) if f.has_inf else false
    is_zero = ex_zero & (man == 0) & ~is_nan
    return Decoded(sign, sig, exp, is_zero, is_nan, is_inf)


@dataclass
class Product:
    """Exact product of two minifloats."""

    sign: pyrtl.WireVector
    sig: pyrtl.WireVector      # sig_a * sig_b  (ma+mb+2 bits)
    exp: pyrtl.WireVector      # e_eff_a + e_eff_b: value = sig * 2^(exp - bias_a - bias_b - ma - mb)
    mag: pyrtl.WireVector      # |product| * 2^F as an unsigned integer (0 for NaN/Inf)
    fixed: pyrtl.WireVector    # signed two's complement product * 2^F (0 for NaN/Inf)
    is_zero: pyrtl.WireVector
    is_nan: pyrtl.WireVector   # NaN operand or 0 * Inf
    is_inf: pyrtl.WireVector   # Inf result (sign = ``sign``)


def fp_multiply(a, b, fmt_a, fmt_b, sig_mult=None, pipe=None) -> Product:
    """Exact product of minifloat codes ``a`` (fmt_a) and ``b`` (fmt_b) - no rounding.

    ``fixed`` is the product as a signed fixed-point integer with
    :func:`lowbit.hw.widths.product_frac_bits` fraction bits and
    :func:`~lowbit.hw.widths.product_width` bits: ``value(a) * value(b) == fixed * 2**-F`` for
    every finite pair.  Flags: ``is_nan`` = either operand NaN, or 0 * Inf;  ``is_inf`` = an
    Inf operand times a non-zero non-NaN operand (sign = sign_a ^ sign_b); on NaN/Inf
    ``fixed == mag == 0``.  ``sig_mult(x, y)`` can replace the significand multiplier (default
    ``*``, e.g. a LUT multiplier from :mod:`lowbit.hw.fpga`). ``pipe``
    (:class:`~lowbit.hw.unit.Pipe`): cut points ``"decode"`` (decoded operand fields) and
    ``"product"`` (significand product, exponent sum, sign and flags, before the shift).
    """
    fa, fb = as_float_format(fmt_a), as_float_format(fmt_b)
    da, db = fp_decode(a, fa), fp_decode(b, fb)
    if pipe is not None:
        n = len(vars(da))
        fields = pipe.cut("decode", *vars(da).values(), *vars(db).values())
        da, db = Decoded(*fields[:n]), Decoded(*fields[n:])
    sig = sig_mult(da.sig, db.sig) if sig_mult else da.sig * db.sig
    sig = sig[:len(da.sig) + len(db.sig)]
    exp = da.exp + db.exp
    sign = da.sign ^ db.sign
    is_nan = da.is_nan | db.is_nan | (da.is_inf & db.is_zero) | (db.is_inf & da.is_zero)
    is_inf = (da.is_inf | db.is_inf) & ~is_nan
    special = da.is_nan | db.is_nan | da.is_inf | db.is_inf
    is_zero = da.is_zero | db.is_zero
    if pipe is not None:
        sign, sig, exp, is_nan, is_inf, special, is_zero = pipe.cut(
            "product", sign, sig, exp, is_nan, is_inf, special, is_zero)
    W = product_width(fa, fb) - 1          # magnitude bits
    shift = (exp - 2)[:max(1, (fa.max_field + fb.max_field).bit_length())]
    mag = pyrtl.shift_left_logical(sig.zero_extended(W), shift)
    mag = pyrtl.select(special, pyrtl.Const(0, W), mag)
    magx = mag.zero_extended(W + 1)
    fixed = pyrtl.select(sign, (~magx + 1)[:W + 1], magx)
    return Product(sign, sig, exp, mag, fixed, is_zero, is_nan, is_inf)
