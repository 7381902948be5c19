"""Block-scaled dot-product units: OCP MX (E8M0 scales) and NVFP4 (UE4M3 scales).

:func:`mx_dot` - ``k``-element dot of two MX blocks (OCP MX v1.0 section 6.1):
``Dot = X_A * X_B * sum_i P_A[i] * P_B[i]``.
  * element products are exact fixed-point integers (:func:`~lowbit.hw.fpmul.fp_multiply`, or
    an integer multiply for MXINT8 elements, value = code * 2^-6), summed EXACTLY by an adder tree
    into ``isum`` (signed, :func:`lowbit.hw.widths.acc_width` ``(elem, elem, k)`` bits, ``F``
    fraction bits);
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
Pipelining (``pipe``, :class:`~lowbit.hw.unit.Pipe`): cut points ``"products"`` (element
products, flags, scales), ``"isum"`` (adder-tree sum, scale exponent / product, flags) and
``"out"`` (all outputs registered); each active cut adds one cycle of latency.
"""

from __future__ import annotations

import pyrtl

from lowbit.formats import IntFormat, resolve
from lowbit.hw.fpmul import fp_multiply
from lowbit.hw.fpround import round_to_float
from lowbit.hw.intmac import int_multiply
from lowbit.hw.unit import Pipe
from lowbit.hw.widths import acc_width, operand_format, product_frac_bits


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


def mx_dot(a, b, xa, xb, elem_fmt, k: int = 32, pipe: Pipe | None = None):
    """MX block dot product; returns ``(dot_fp32_code, isum, sexp)`` (see module docstring)."""
    pipe = pipe or Pipe()
    f = operand_format(elem_fmt)
    F = product_frac_bits(f, f)
    W = acc_width(f, f, k)
    prods, nan, pinf, ninf = _products(a, b, f, k)
    *prods, nan, pinf, ninf, xa, xb = pipe.cut("products", *prods, nan, pinf, ninf, xa, xb)
    isum = adder_tree(prods, W)
    sexp = xa.zero_extended(9) + xb.zero_extended(9)
    sexp = sexp[:9]
    nan = nan | (xa == 0xFF) | (xb == 0xFF)
    isum, sexp, nan, pinf, ninf = pipe.cut("isum", isum, sexp, nan, pinf, ninf)
    neg, mag = _abs(isum)
    code, _ = round_to_float(neg, mag, sexp, 254 + F, "fp32")
    code, isum, sexp = pipe.cut("out", _specials(code, nan, pinf, ninf), isum, sexp)
    pipe.check_done()
    return code, isum, sexp


def nvfp4_dot(a, b, sa, sb, k: int = 16, scale_fmt="ue4m3", pipe: Pipe | None = None):
    """NVFP4 block dot (E2M1 elements, UE4M3 scales); returns ``(dot_fp32_code, isum)``."""
    pipe = pipe or Pipe()
    f = operand_format("fp4_e2m1")
    sf = resolve(scale_fmt)
    F = product_frac_bits(f, f)
    W = acc_width(f, f, k)
    prods, nan, pinf, ninf = _products(a, b, f, k)
    *prods, nan, pinf, ninf, sa, sb = pipe.cut("products", *prods, nan, pinf, ninf, sa, sb)
    isum = adder_tree(prods, W)
    m, e = sf.mbits, sf.ebits

    def dec(s):
        ex = s[m:m + e]
        ez = ex == 0
        sig = pyrtl.concat(ex != 0, s[:m])
        return sig, pyrtl.select(ez, pyrtl.Const(1, e), ex), s[:m + e] == (1 << (m + e)) - 1

    siga, ea, na = dec(sa)
    sigb, eb, nb = dec(sb)
    ssig, ex = siga * sigb, (ea + eb)[:e + 1]
    nan = nan | na | nb
    isum, ssig, ex, nan, pinf, ninf = pipe.cut("isum", isum, ssig, ex, nan, pinf, ninf)
    neg, mag = _abs(isum)
    big = (mag * ssig)[:len(mag) + 2 * (m + 1)]
    code, _ = round_to_float(neg & (big != 0), big, ex, 2 * sf.bias + 2 * m + F, "fp32")
    code, isum = pipe.cut("out", _specials(code, nan, pinf, ninf), isum)
    pipe.check_done()
    return code, isum
