"""Normalise-and-round and exact-sum floating-point adder (PyRTL generators).

* :func:`leading_zeros` - leading-zero count (priority encoder).
* :func:`round_to_float` - ONE correct rounding (RNE, IEEE 754 semantics incl. subnormals) of
  the exact value ``(-1)^sign * mag * 2^(e_u - e_off)`` (``mag`` unsigned integer wire, ``e_u``
  unsigned exponent wire, ``e_off`` a Python int) to a signed lowbit FloatFormat.
  Overflow (the RNE result with unbounded exponent exceeds ``fmt.max``): ``overflow="ieee"`` ->
  +-Inf for formats with Inf, +-NaN (the all-ones code with the result's sign, as
  ``lowbit.formats.encode(..., overflow="nonsat")``) for NaN-only formats, +-max otherwise;
  ``overflow="saturate"`` -> +-max.  A zero ``mag`` gives a zero of sign ``sign``.
* :func:`fp_add_rne` - ``RNE(x + y)`` of two exact operands given as sign / significand /
  exponent (e.g. an accumulator value and an exact product): the smaller operand is aligned with
  ``G = p + 3`` guard bits (``p`` = result precision) and a sticky bit, which is exact for every
  case that can affect the rounded result (see the docstring), then :func:`round_to_float`.
  Exact-zero sums are +0 unless both operands are negative (RNE rule x + (-x) = +0).
"""

from __future__ import annotations

import pyrtl

from lowbit.hw.fpmul import as_float_format


def _c(v: int, w: int | None = None):
    return pyrtl.Const(v, w if w is not None else max(1, int(v).bit_length()))


def leading_zeros(x):
    """Number of leading zeros of ``x`` (``len(x)`` when ``x == 0``); width bitlen(len(x)).

    Log-depth tree: ``x`` is zero-padded at the bottom to a power of two and split in halves,
    ``lz = hi_zero ? len(hi) + lz(lo) : lz(hi)``."""
    n = len(x)
    w = n.bit_length()
    P = 1 << max(0, (n - 1).bit_length())
    xp = pyrtl.concat(x, _c(0, P - n)) if P > n else x

    def rec(v):
        if len(v) == 1:
            # (v == 0), not ~v: pyrtl 1.0.3 inlines ``~t + c`` into Verilog where ``~`` is then
            # evaluated at the (wider) context width, so ``~v`` would export incorrectly
            z = v == 0
            return z, z
        h = len(v) // 2
        lzh, zh = rec(v[h:])
        lzl, zl = rec(v[:h])
        lzh = lzh.zero_extended(h.bit_length() + 1)
        return pyrtl.select(zh, (lzl + h)[:h.bit_length() + 1], lzh), zh & zl

    lz, zero = rec(xp)
    return pyrtl.select(zero, _c(n, w), lz[:w] if len(lz) >= w else lz.zero_extended(w))


def _wide(x, w):
    return x.zero_extended(w) if len(x) <= w else x[:w]


def round_to_float(sign, mag, e_u, e_off: int, fmt, overflow: str = "ieee"):
    """RNE of ``(-1)^sign * mag * 2^(e_u - e_off)`` to ``fmt``; returns ``(code, ovf)``.

    Algorithm: k = msb(mag); normal iff ``e + k >= emin``; the result LSB exponent is
    ``max(e + k, emin) - mbits``; shift ``mag * 2^mbits`` right by ``rs = max(k, emin - e)``
    keeping guard and sticky; ``code = (E - 1) << mbits + q + round_up`` (the hidden bit of
    ``q`` carries into the exponent field; a subnormal rounding up to ``2^mbits`` becomes the
    smallest normal, a rounding carry out of the top binade is detected as overflow).
    """
    f = as_float_format(fmt)
    if overflow not in ("ieee", "saturate"):
        raise ValueError(f"overflow={overflow!r}; allowed: 'ieee', 'saturate'")
    M = f.mbits
    n = len(mag)
    emin = 1 - f.bias
    # work with a common positive offset so all exponent arithmetic is unsigned
    T = emin + e_off
    C = max(0, -T) + 1
    ew = max(len(e_u), n.bit_length(), (abs(T) + C + f.bias + n + M + 4).bit_length()) + 2
    eu = _wide(e_u, ew) + C          # e + e_off + C  (> 0)
    Tc = T + C                       # emin + e_off + C (> 0)
    lz = leading_zeros(mag)
    k = (_c(n - 1, ew) - lz)[:ew]    # msb index (garbage when mag == 0)
    ek = (eu + k)[:ew + 1]
    normal = ek >= Tc
    sub_sh = (_c(Tc, ew + 1) - eu)[:ew + 1]        # emin - e (valid when not normal)
    smax = n + M + 1
    sub_sh = pyrtl.select(sub_sh > smax, _c(smax, ew + 1), sub_sh)
    rs = pyrtl.select(normal, k.zero_extended(ew + 1), sub_sh)
    L = n + M + 2
    y = pyrtl.concat(mag, _c(0, M + L)) if M + L > 0 else mag
    sh = pyrtl.shift_right_logical(y, rs)
    q = sh[L:L + M + 1]
    g = sh[L - 1]
    st = sh[:L - 1] != 0
    round_up = g & (st | q[0])
    # E - 1 = e + k + bias - 1 for normals
    cE = f.bias - 1 - C - e_off
    if cE >= 0:
        em1 = (ek + cE)[:ew + 2]
    else:
        em1 = (ek - _c(-cE))[:ew + 2]
    em1 = pyrtl.select(normal, em1, _c(0, ew + 2))
    cw = ew + 2 + M + 2
    code = (pyrtl.concat(em1, _c(0, M)) if M else em1).zero_extended(cw)
    code = (code + q.zero_extended(cw) + round_up.zero_extended(cw))[:cw]
    max_code = (f.max_field << M) | f.max_mant
    ovf = (code > max_code) & (mag != 0)
    body = f.bits - 1
    if overflow == "saturate" or not f.has_nan:
        ovf_code = _c(max_code, body)
    elif f.has_inf:
        ovf_code = _c(f.inf_code, body)
    else:
        ovf_code = _c(f.nan_code & ((1 << body) - 1), body)
    out = pyrtl.select(ovf, ovf_code, code[:body])
    out = pyrtl.select(mag == 0, _c(0, body), out)
    return pyrtl.concat(sign, out), ovf


def fp_add_rne(x, y, off: int, fmt, overflow: str = "ieee"):
    """``RNE(x + y)`` in ``fmt``; ``x``/``y`` are ``(sign, sig, exp_u, is_zero)`` tuples with
    value ``(-1)^sign * sig * 2^(exp_u - off)`` (same ``off``).  Returns ``(code, ovf)``.

    Exactness argument: both significands are normalised to ``Wm`` bits (LZC + shift), the
    operand with the larger exponent ``B`` is placed above ``G + 1 = p + 4`` zero bits and the
    other one is shifted right by ``d``; bits shifted out of the window are OR-ed into bit 0
    (sticky).  For ``d <= G + 1`` nothing is lost (exact sum).  Otherwise ``|sum| >= 2^(msb_B -
    1)``, so the result LSB lies at or above window bit ``Wm + G - p >= 2`` and the sticky bit
    sits strictly below guard and round positions: the rounded result equals RNE(exact sum).
    """
    f = as_float_format(fmt)
    R = f.mbits + 1
    G = R + 3
    sx, gx, ex, zx = x
    sy, gy, ey, zy = y
    Wm = max(len(gx), len(gy))
    ew = max(len(ex), len(ey), Wm.bit_length()) + 2

    def norm(sig, exp_u, is_zero):
        lz = leading_zeros(sig)
        s = pyrtl.shift_left_logical(sig, lz)
        if Wm > len(sig):
            s = pyrtl.concat(s, _c(0, Wm - len(sig)))
        e = (_wide(exp_u, ew) + len(sig) - lz)[:ew]  # value = s * 2^(e - off - Wm)
        zero = is_zero | (sig == 0)
        return pyrtl.select(zero, _c(0, Wm), s), pyrtl.select(zero, _c(0, ew), e)

    nx, ex2 = norm(gx, ex, zx)
    ny, ey2 = norm(gy, ey, zy)
    xbig = ex2 >= ey2
    sB = pyrtl.select(xbig, sx, sy)
    ss = pyrtl.select(xbig, sy, sx)
    gB = pyrtl.select(xbig, nx, ny)
    gS = pyrtl.select(xbig, ny, nx)
    eB = pyrtl.select(xbig, ex2, ey2)
    eS = pyrtl.select(xbig, ey2, ex2)
    d = (eB - eS)[:ew]
    dmax = G + Wm + 2
    d = pyrtl.select(d > dmax, _c(dmax, ew), d)
    LOST = Wm + 2
    ext = pyrtl.concat(gS, _c(0, G + 1 + LOST))
    sh = pyrtl.shift_right_logical(ext, d)
    lost = sh[:LOST] != 0
    win = sh[LOST:]                                  # Wm + G + 1 bits
    S_w = pyrtl.concat(win[1:], win[0] | lost)
    A_w = pyrtl.concat(gB, _c(0, G + 1))
    ww = Wm + G + 3
    A_x, S_x = A_w.zero_extended(ww), S_w.zero_extended(ww)
    sub = sB ^ ss
    total = (A_x + S_x)[:ww]
    diff = (A_x - S_x)[:ww]
    neg = diff[ww - 1]
    mdiff = pyrtl.select(neg, (~diff + 1)[:ww], diff)
    mag = pyrtl.select(sub, mdiff, total)
    sign = pyrtl.select(sub, pyrtl.select(neg, ss, sB), sB)
    sign = pyrtl.select(mag == 0, sx & sy, sign)
    return round_to_float(sign, mag[:ww - 1], eB, off + Wm + G + 1, f, overflow)
