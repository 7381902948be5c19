"""Independent exact-rational rounding reference for the sim tests (no lowbit code)."""

from fractions import Fraction


def frac_round(x: Fraction, mbits: int, emin: int, maxv: float | None = None,
               inf_on_ovf=True) -> Fraction:
    """RNE of an exact rational to a binary float format (independent of the simulator).

    ``maxv=None``: no overflow handling; otherwise a result above ``maxv`` becomes a huge
    stand-in for Inf (``inf_on_ovf``) or saturates to ``maxv``."""
    if x == 0:
        return Fraction(0)
    sgn = -1 if x < 0 else 1
    a = abs(x)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    while Fraction(2) ** e > a:
        e -= 1
    while Fraction(2) ** (e + 1) <= a:
        e += 1
    q = Fraction(2) ** (max(e, emin) - mbits)
    n, r = divmod(a, q)
    if r > q / 2 or (r == q / 2 and n % 2 == 1):
        n += 1
    v = n * q
    if maxv is not None and v > Fraction(maxv):
        return Fraction(sgn) * Fraction(10**400) if inf_on_ovf else Fraction(sgn) * Fraction(maxv)
    return sgn * v
