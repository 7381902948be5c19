"""Minifloat MAC units (PyRTL generators).

* :func:`kulisch_mac` - exact fixed-point (Kulisch) accumulator: every product of
  :func:`~lowbit.hw.fpmul.fp_multiply` is added exactly into a register of ``width`` bits
  (two's complement, ``F`` fraction bits; :func:`lowbit.hw.widths.acc_width` ``(fa, fb, terms)``
  makes ``terms`` accumulations overflow-free): no rounding.  Sticky flags ``nan``
  (a NaN product, or +Inf and -Inf both seen), ``pinf``, ``ninf``.
* :func:`fp_fma_step` - one combinational fused step ``RNE(c + a*b)`` with ``c`` in the
  accumulator format ``acc_fmt`` (product exact, ONE rounding, IEEE semantics incl. subnormals,
  signed zeros: exact-zero sums are +0 unless both addends are -0/negative).
  Specials: any NaN input or 0*Inf or Inf + -Inf -> canonical NaN code of ``acc_fmt``
  (``fmt.nan_code``); Inf +- finite -> Inf.  Overflow: ``"ieee"`` -> Inf (formats with Inf),
  NaN (NaN-only formats such as E4M3), max (formats without either); ``"saturate"`` -> +-max.
  This is what ``lowbit.formats.accum.FloatAccum(acc_fmt)`` models per add.
* :func:`fp_mac` - the registered MAC: ``acc <= en ? RNE((clr ? +0 : acc) + a*b) : (clr ? +0 :
  acc)``, i.e. ``FloatAccum(acc_fmt, order="sequential")`` starting from +0.
"""

from __future__ import annotations

import pyrtl

from lowbit.hw.fpmul import as_float_format, fp_decode, fp_multiply
from lowbit.hw.fpround import fp_add_rne
from lowbit.hw.unit import Pipe


def _ctrl(pipe, clr, en):
    """Control inputs delayed to meet the pipelined data (see :class:`~lowbit.hw.unit.Pipe`)."""
    return (None if clr is None else pipe.delay(clr)), (None if en is None else pipe.delay(en))


def kulisch_mac(a, b, fmt_a, fmt_b, width: int, clr=None, en=None, name: str = "acc_q",
                pipe: Pipe | None = None):
    """Exact fixed-point MAC; returns ``(acc, nan, pinf, ninf)`` registers.

    ``acc`` (signed, ``width`` bits, ``product_frac_bits(fa, fb)`` fraction bits) is
    ``sum a_i * b_i`` exactly; NaN/Inf products add 0 and set the sticky flags. ``pipe`` cut
    points: ``"product"`` (see :func:`~lowbit.hw.fpmul.fp_multiply`) and ``"fixed"`` (the
    shifted, signed product and its flags); ``clr`` / ``en`` are delayed to match.
    """
    pipe = pipe or Pipe()
    p = fp_multiply(a, b, fmt_a, fmt_b, pipe=pipe)
    fixed, is_inf, is_nan, sign = pipe.cut("fixed", p.fixed, p.is_inf, p.is_nan, p.sign)
    clr, en = _ctrl(pipe, clr, en)
    pipe.check_done()
    w = int(width)
    acc = pyrtl.Register(w, name=name)
    fnan, fpi, fni = (pyrtl.Register(1, name=f"{name}_{s}") for s in ("nan", "pinf", "ninf"))
    one = pyrtl.Const(1, 1) if en is None else en
    keep = (lambda r: r) if clr is None else (lambda r: pyrtl.select(clr, pyrtl.Const(0, len(r)), r))
    add = pyrtl.select(one, fixed.sign_extended(w), pyrtl.Const(0, w))
    acc.next <<= (keep(acc) + add)[:w]
    pi = one & is_inf & ~sign
    ni = one & is_inf & sign
    fpi.next <<= keep(fpi) | pi
    fni.next <<= keep(fni) | ni
    fnan.next <<= keep(fnan) | (one & is_nan) | ((keep(fpi) | pi) & (keep(fni) | ni))
    return acc, fnan, fpi, fni


def fp_fma_step(a, b, c, fmt_a, fmt_b, acc_fmt, overflow: str = "ieee", multiply=fp_multiply):
    """Combinational ``RNE(c + a*b)`` in ``acc_fmt`` (see module docstring); returns the code.
    ``multiply``: the product generator (``fp_multiply``, or ``lowbit.hw.lmul``'s L-Mul)."""
    return fp_add_product(multiply(a, b, fmt_a, fmt_b), c, fmt_a, fmt_b, acc_fmt, overflow)


def fp_add_product(p, c, fmt_a, fmt_b, acc_fmt, overflow: str = "ieee"):
    """``RNE(c + p)`` in ``acc_fmt`` of an exact product ``p`` (:class:`~lowbit.hw.fpmul.Product`
    of ``fmt_a`` x ``fmt_b``) and an accumulator code ``c``; returns the code."""
    fa, fb, fc = as_float_format(fmt_a), as_float_format(fmt_b), as_float_format(acc_fmt)
    dc = fp_decode(c, fc)
    kp = fa.bias + fb.bias + fa.mbits + fb.mbits
    kc = fc.bias + fc.mbits
    off = max(kp, kc)
    xp = (p.sign, p.sig, (p.exp + (off - kp)) if off > kp else p.exp, p.is_zero)
    xc = (dc.sign, dc.sig, (dc.exp + (off - kc)) if off > kc else dc.exp, dc.is_zero)
    code, _ = fp_add_rne(xc, xp, off, fc, overflow)
    nan = p.is_nan | dc.is_nan | (p.is_inf & dc.is_inf & (p.sign ^ dc.sign))
    body = fc.bits - 1
    inf_code = fc.inf_code
    if fc.has_inf:
        code = pyrtl.select(dc.is_inf, pyrtl.concat(dc.sign, pyrtl.Const(inf_code, body)), code)
        code = pyrtl.select(p.is_inf, pyrtl.concat(p.sign, pyrtl.Const(inf_code, body)), code)
    elif fc.has_nan:  # an Inf product into a NaN-only accumulator is NaN
        nan = nan | p.is_inf
    else:  # no Inf/NaN in the accumulator: Inf saturates, NaN saturates to +max
        maxc = (fc.max_field << fc.mbits) | fc.max_mant
        code = pyrtl.select(p.is_inf, pyrtl.concat(p.sign, pyrtl.Const(maxc, body)), code)
        code = pyrtl.select(nan, pyrtl.Const(maxc, fc.bits), code)
        return code
    return pyrtl.select(nan, pyrtl.Const(fc.nan_code, fc.bits), code)


def fp_mac(a, b, fmt_a, fmt_b, acc_fmt, clr=None, en=None, overflow: str = "ieee",
           name: str = "acc_q", pipe: Pipe | None = None, multiply=fp_multiply):
    """Registered float-accumulator MAC (one fused, RNE-rounded add per cycle); returns the
    accumulator register (``acc_fmt.bits`` wide code). ``pipe`` cut points ``"decode"`` and
    ``"product"`` (:func:`~lowbit.hw.fpmul.fp_multiply`); the accumulate loop (align, add,
    normalise, round) stays in one cycle -- it is a recurrence. ``multiply``: the product
    generator (``fp_multiply``, or ``lowbit.hw.lmul``'s L-Mul: same Product fields)."""
    pipe = pipe or Pipe()
    fc = as_float_format(acc_fmt)
    p = multiply(a, b, fmt_a, fmt_b, pipe=pipe)
    clr, en = _ctrl(pipe, clr, en)
    pipe.check_done()
    acc = pyrtl.Register(fc.bits, name=name)
    base = acc if clr is None else pyrtl.select(clr, pyrtl.Const(0, fc.bits), acc)
    nxt = fp_add_product(p, base, fmt_a, fmt_b, fc, overflow)
    acc.next <<= nxt if en is None else pyrtl.select(en, nxt, base)
    return acc
