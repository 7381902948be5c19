"""Block-scaled dot-product units: OCP MX (E8M0 scales) and NVFP4 (UE4M3 scales).

:func:`mx_dot` - ``k``-element dot of two MX blocks (OCP MX v1.0 section 6.1):
``Dot = X_A * X_B * sum_i P_A[i] * P_B[i]``.
  * element products are exact fixed-point integers (:func:`~lowbit.hw.fpmul.fp_multiply`, or
    an integer multiply for MXINT8 elements, value = code * 2^-6), summed EXACTLY by an adder tree
    into ``isum`` (signed, ``product_width + ceil(log2 k)`` bits, ``F`` fraction bits);
  * the E8M0 exponents are added (``sexp = X_A + X_B``, 9 bits, value bias 254);
  * ONE final rounding: ``dot = RNE_fp32(isum * 2^(sexp - 254 - F))`` (IEEE fp32 incl. subnormals;
    overflow -> +-Inf).  The wider fixed result is ``(isum, sexp)`` itself (exact).
  * a zero sum gives +0;  MXINT8 elements are plain two's complement (code 0x80 = -2.0 is
    multiplied like any other code; OCP leaves it unused, lowbit's narrow ``mxint8_element``
    decodes it as NaN);
  * specials: a NaN scale (0xFF) or a NaN element product or +Inf and -Inf products -> fp32 NaN
    0x7FC00000; otherwise an Inf product -> +-Inf.
:func:`nvfp4_dot` - 16-element FP4 (E2M1) dot with UE4M3 block scales ``s_A``, ``s_B``:
  ``dot = RNE_fp32(s_A * s_B * sum_i P_A[i]*P_B[i])``, the scale significands are multiplied
  exactly with ``isum`` (no intermediate rounding); a NaN scale (0x7F) -> NaN.  The per-tensor
  FP32 scale of NVFP4 is applied outside the unit.
Inputs ``a``/``b`` are packed buses, element ``i`` at bits ``[i*w, (i+1)*w)``.
"""

from __future__ import annotations

import math

import pyrtl

from lowbit.formats import FloatFormat, IntFormat, get_format
from lowbit.hw.fpmul import fp_multiply, product_frac_bits, product_width
from lowbit.hw.fpround import round_to_float
from lowbit.hw.intmac import int_multiply


def _elem(fmt):
    f = get_format(fmt) if isinstance(fmt, str) else fmt
    if hasattr(f, "element"):  # a BlockFormat name such as "mxfp4"
        f = f.element
    if not isinstance(f, (FloatFormat, IntFormat)):
        raise ValueError(f"element format {fmt!r}: expected fp8/fp6/fp4/int8")
    return f


def elem_product_info(fmt) -> tuple[int, int]:
    """(signed product width, fraction bits F) of one element product."""
    f = _elem(fmt)
    if isinstance(f, IntFormat):
        return 2 * f.bits, 2 * f.frac_bits
    return product_width(f, f), product_frac_bits(f, f)


def isum_width(fmt, k: int) -> int:
    return elem_product_info(fmt)[0] + max(0, math.ceil(math.log2(k)))


def adder_tree(terms, width):
    """Balanced binary adder tree of sign-extended ``terms`` (exact in ``width`` bits)."""
    level = [t.sign_extended(width) for t in terms]
    while len(level) > 1:
        nxt = [(level[i] + level[i + 1])[:width] for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def _products(a, b, f, k):
    w = f.bits
    prods, nan, pinf, ninf = [], pyrtl.Const(0, 1), pyrtl.Const(0, 1), pyrtl.Const(0, 1)
    for i in range(k):
        ai, bi = a[i * w:(i + 1) * w], b[i * w:(i + 1) * w]
        if isinstance(f, IntFormat):
            prods.append(int_multiply(ai, bi, f.signed))
        else:
            p = fp_multiply(ai, bi, f, f)
            prods.append(p.fixed)
            nan = nan | p.is_nan
            pinf = pinf | (p.is_inf & ~p.sign)
            ninf = ninf | (p.is_inf & p.sign)
    return prods, nan | (pinf & ninf), pinf, ninf


def _abs(x):
    n = len(x)
    neg = x[n - 1]
    return neg, pyrtl.select(neg, (~x + 1)[:n], x)


def _specials(code, nan, pinf, ninf):
    code = pyrtl.select(pinf, pyrtl.Const(0x7F800000, 32), code)
    code = pyrtl.select(ninf, pyrtl.Const(0xFF800000, 32), code)
    return pyrtl.select(nan, pyrtl.Const(0x7FC00000, 32), code)


def mx_dot(a, b, xa, xb, elem_fmt, k: int = 32):
    """MX block dot product; returns ``(dot_fp32_code, isum, sexp)`` (see module docstring)."""
    f = _elem(elem_fmt)
    _, F = elem_product_info(f)
    W = isum_width(f, k)
    prods, nan, pinf, ninf = _products(a, b, f, k)
    isum = adder_tree(prods, W)
    sexp = xa.zero_extended(9) + xb.zero_extended(9)
    sexp = sexp[:9]
    neg, mag = _abs(isum)
    code, _ = round_to_float(neg, mag, sexp, 254 + F, "fp32")
    nan = nan | (xa == 0xFF) | (xb == 0xFF)
    return _specials(code, nan, pinf, ninf), isum, sexp


def nvfp4_dot(a, b, sa, sb, k: int = 16, scale_fmt="ue4m3"):
    """NVFP4 block dot (E2M1 elements, UE4M3 scales); returns ``(dot_fp32_code, isum)``."""
    f = _elem("fp4_e2m1")
    sf = get_format(scale_fmt) if isinstance(scale_fmt, str) else scale_fmt
    _, F = elem_product_info(f)
    W = isum_width(f, k)
    prods, nan, pinf, ninf = _products(a, b, f, k)
    isum = adder_tree(prods, W)
    m, e = sf.mbits, sf.ebits

    def dec(s):
        ex = s[m:m + e]
        ez = ex == 0
        sig = pyrtl.concat(ex != 0, s[:m])
        return sig, pyrtl.select(ez, pyrtl.Const(1, e), ex), s[:m + e] == (1 << (m + e)) - 1

    siga, ea, na = dec(sa)
    sigb, eb, nb = dec(sb)
    neg, mag = _abs(isum)
    big = (mag * (siga * sigb))[:len(mag) + 2 * (m + 1)]
    ex = (ea + eb)[:e + 1]
    code, _ = round_to_float(neg & (big != 0), big, ex, 2 * sf.bias + 2 * m + F, "fp32")
    return _specials(code, nan | na | nb, pinf, ninf), isum
