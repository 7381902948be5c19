"""Block scale selection rules (per block amax -> scale).

Power-of-two rules return the scale exponent ``e`` (scale ``X = 2**e``), computed exactly from
the float64 amax with frexp (no floating log2):

* ``floor``  OCP MX v1.0 section 6.3: ``e = floor(log2 amax) - emax_elem``. May clip the block
             maximum: amax / X lies in [2^emax, 2^(emax+1)) and elements above the element max
             saturate (E2M1: (6, 8)*X -> 6).
* ``ceil``   ``e = ceil(log2 amax) - emax_elem`` (torchao CEIL). Never clips.
* ``rceil``  ``e = ceil(log2(amax / max_elem))``: the smallest ``e`` with amax <= max_elem * 2^e
             (cuBLAS "quantize_round_up", TransformerEngine MXFP8, torchao RCEIL). Never clips.
* ``even``   ``e = floor(log2(RNE_mbits(amax))) - emax_elem`` (torchao EVEN): round amax to the
             element's mantissa width first.

A zero block gets ``e = -inf`` before clamping, i.e. the smallest scale the scale format has
(E8M0 0x00 = 2^-127). Exponents are clamped to the scale format's range.
"""

from __future__ import annotations

import numpy as np

POW2_RULES = ("floor", "ceil", "rceil", "even")


def _floor_log2(a):
    """floor(log2 a) for a > 0 (float64, exact)."""
    _, ex = np.frexp(a)
    return ex.astype(np.int64) - 1


def pow2_exponent(amax: np.ndarray, rule: str, element) -> np.ndarray:
    """Unclamped scale exponent per block; ``amax == 0`` gives a very small sentinel (-10**6)."""
    a = np.asarray(amax, dtype=np.float64)
    pos = a > 0
    safe = np.where(pos, a, 1.0)
    fl = _floor_log2(safe)
    emax = element.emax
    if rule == "floor":
        e = fl - emax
    elif rule == "ceil":
        is_pow2 = np.ldexp(1.0, fl) == safe
        e = fl + (~is_pow2) - emax
    elif rule == "rceil":
        mx = float(element.max)
        k = int(_floor_log2(np.array([mx]))[0])
        e0 = fl - k
        e = np.where(safe <= np.ldexp(mx, e0), e0, e0 + 1)
    elif rule == "even":
        mbits = element.mbits if element.kind == "float" else None
        if mbits is None:  # integer elements: significand width of qmax
            mbits = max(int(element.qmax).bit_length() - 1, 0)
        # RNE of amax to mbits fractional bits: does it carry into the next binade?
        m, ex = np.frexp(safe)  # safe = m * 2^ex, m in [0.5, 1)
        scaled = np.ldexp(m, mbits + 1)  # in [2^mbits, 2^(mbits+1))
        r = np.rint(scaled)  # numpy rint is round-half-even
        carry = r >= np.ldexp(1.0, mbits + 1)
        e = fl + carry - emax
    else:
        raise ValueError(f"power-of-two scale rule must be one of {list(POW2_RULES)}, got {rule!r}")
    return np.where(pos, e, -(10**6)).astype(np.int64)


def exponent_range(scale_fmt) -> tuple[int, int]:
    """Smallest and largest power-of-two exponent the scale format holds."""
    if scale_fmt is None:  # fp32 scale
        return -149, 127
    lo = int(np.floor(np.log2(scale_fmt.min_subnormal)))
    hi = int(np.floor(np.log2(scale_fmt.max)))
    return lo, hi
