"""Structural cost features of the hardware units: counts of bit-level building blocks of
exactly the netlist each generator builds. :mod:`lowbit.cost_models` prices them per target
(``cost = sum_f coef[target][f] * feature_f``, coefficients fitted against Yosys).

========  ==========================================================================
feature   meaning (bits)
========  ==========================================================================
pp        partial-product bits (AND gates) of a significand / integer product, s_a * s_b
csa       carry-save full adders reducing them, (s_a - 1) * (s_b - 1)
tree      the same full adders when PyRTL builds the reduction tree itself
          (``structure="wallace" | "dadda"``) instead of Yosys' ``$mul`` (extra cost)
ks        prefix nodes of the Kogge-Stone final adder PyRTL builds for its reduction trees,
          w * ceil(log2 w), w = s_a + s_b (a ``$mul`` / ``+`` is left to the synthesis tool)
cpa       final carry-propagate adder of a product, s_a + s_b
sxt       extra partial products of a sign-extended signed product (``pyrtl.signed_mult``,
          the ``"array"`` structure): W(W+1)/2 - s_a*s_b, W = s_a + s_b
add       other adder / comparator bits: exponent adders, adder trees, rounding
acc       accumulator adder bits of an integer / Kulisch MAC (register feedback, clear, enable)
shl       2:1 mux bits of the exact-product left shifter (narrow significand product into the
          fixed-point word; mostly constant-0 inputs) and of special-value zeroing
mux       2:1 mux bits of general shifters (FP alignment / normalisation, :func:`shifter_mux`)
          and of saturation selects
neg       conditional-negate bits (sign-magnitude <-> two's complement)
lzc       leading-zero-counter input bits (normalisers)
fpa       FP-adder control bits (operand swap, sticky, RNE rounding, subnormal / special-value
          handling) per significand bit of an FP accumulator
rnd       bits of the one final rounding of a block dot's exact sum to fp32 (the normalising
          right shift keeps ``mag + 2*23 + 3`` bits: result, guard, sticky)
lx        (LUT targets) squared product inputs beyond one LUT, (s_a + s_b - K)^2: ABC's LUT
          mapping of a wider product grows faster than its partial products
pk        LUTs of a *LUT-packed* product (targets with K-input LUTs, ``LUT_INPUTS``): when
          every product bit is a function of at most ``WIDE_LUT_INPUTS`` operand bits
          (s_a + s_b <= 8 on xc7), ABC maps each product bit as one LUT of its own inputs --
          a LUT6, or a wide LUT7 / LUT8 that Yosys builds from 2 / 4 LUT6 and MUXF7 / MUXF8
          (:func:`packed_luts`); it replaces that product's pp / csa / tree / cpa / sxt / lx
ff        register bits: counted in the built netlist (:func:`lowbit.hw.units.register_bits`),
          pipeline registers included -- not computed here
========  ==========================================================================

Each ``<unit>(**params, target=None)`` function takes the unit's checked parameters
(:meth:`lowbit.hw.unit.Unit.check`). ``target`` enables LUT packing.
"""

from __future__ import annotations

from lowbit.formats import FloatFormat
from lowbit.formats.multiplier import parse_multiplier
from lowbit.hw.lmul import lmul_width
from lowbit.hw.widths import acc_width, ceil_log2, operand_format, product_width

FEATURES = ("pp", "csa", "tree", "ks", "lx", "cpa", "sxt", "add", "acc", "shl", "mux", "neg", "lzc",
            "fpa", "rnd", "pk", "ff")
LUT_INPUTS = {"xc7": 6}
"""LUT inputs K of targets whose features use LUT packing (xc7 LUT6). iCE40's LUT4 would only
pack 2x2 products; packing them did not improve its fit, so LUT4 keeps gate features."""
WIDE_LUT_INPUTS = {"xc7": 8}
"""Widest function a target's LUT mapping builds as one (wide) LUT: Yosys ``synth_xilinx`` runs
``abc -luts 2:2,3,6:5,10,20`` -- LUT7 and LUT8 at 2x and 4x the LUT6 cost -- and maps them to
2 / 4 LUT6 joined by MUXF7 / MUXF8 (``help synth_xilinx``, Yosys 0.23). Example: the 4x4-bit
unsigned product synthesizes to 19 LUTs with 10 MUXF7 and 5 MUXF8: five 8-input product bits."""


def zero() -> dict:
    return {f: 0 for f in FEATURES}


def add(d: dict, **kw) -> dict:
    for k, v in kw.items():
        d[k] = d.get(k, 0) + v
    return d


def scaled(d: dict, k: float) -> dict:
    return {f: v * k for f, v in d.items()}


def shifter_mux(in_bits: int, max_shift: int, out_bits: int | None = None) -> int:
    """2:1 mux count of a logarithmic left shifter of an ``in_bits`` value by 0..max_shift.

    Stage k (shift by 2^k) has min(out_bits, in_bits + 2^(k+1) - 1) live output bits.
    """
    if max_shift <= 0:
        return 0
    o = out_bits or in_bits + max_shift
    return int(sum(min(o, in_bits + 2 ** (k + 1) - 1) for k in range(ceil_log2(max_shift + 1))))


def lut_packed(sa: int, sb: int, target: str | None = None) -> bool:
    """True when every bit of an sa x sb product is one (possibly wide) LUT of ``target``:
    sa + sb <= :data:`WIDE_LUT_INPUTS` (8 on xc7)."""
    k = WIDE_LUT_INPUTS.get(target) if target else None
    return bool(k) and sa + sb <= k


def packed_luts(sa: int, sb: int, target: str) -> int:
    """K-input LUTs of an sa x sb unsigned product mapped bit by bit (:func:`lut_packed`).

    Product bit j is a function of the operand bits of weight <= j, v_j = min(j+1, sa) +
    min(j+1, sb) inputs; a function of v > K inputs is a wide LUT of 2^(v-K) K-input LUTs
    (Shannon expansion joined by MUXF7 / MUXF8). sa + sb <= K gives one LUT per product bit.
    Example (xc7, K = 6): 4 x 4 -> inputs 2, 4, 6, 8, 8, 8, 8, 8 -> 1 + 1 + 1 + 5 * 4 = 23.
    """
    k = LUT_INPUTS[target]
    return sum(2 ** max(0, min(j + 1, sa) + min(j + 1, sb) - k) for j in range(sa + sb))


def product(d: dict, sa: int, sb: int, target=None, tree: bool = False) -> bool:
    """Add an unsigned sa x sb product (pp / csa / cpa, + tree for PyRTL reduction trees), or its
    LUT-packed form (``pk``) for a target whose (wide) LUTs hold every product bit. Returns
    packed."""
    if lut_packed(sa, sb, target):
        add(d, pk=packed_luts(sa, sb, target))
        return True
    add(d, pp=sa * sb, csa=(sa - 1) * (sb - 1), cpa=sa + sb)
    if target in LUT_INPUTS:   # inputs beyond one LUT: ABC's LUT mapping grows quadratically
        add(d, lx=(sa + sb - LUT_INPUTS[target]) ** 2)
    if tree:
        add(d, tree=(sa - 1) * (sb - 1), ks=(sa + sb) * ceil_log2(sa + sb))
    return False


def _sig(f) -> int:
    return f.mbits + 1 if isinstance(f, FloatFormat) else f.bits


def _span(f) -> int:
    """Exponent range (binades) of the shifter: ``max_field - 1`` (0 for ints)."""
    return max(f.max_field, 1) - 1 if isinstance(f, FloatFormat) else 0


def _int_product(d: dict, na: int, nb: int, sa: bool, sb: bool, structure: str, target) -> dict:
    """One :func:`lowbit.hw.intmac.int_multiply` of an na-bit by an nb-bit operand."""
    mixed = sa != sb
    n, m = na + mixed, nb + mixed                    # mixed signs: both widened to signed
    tree = structure != "array"
    if (sa or sb) and tree:                          # |a| x |b|, negate in and out
        product(d, n, m, target, tree)
        add(d, neg=(n + 1) + (m + 1) + (n + m + 2))
    elif sa or sb:                                   # pyrtl.signed_mult: sign-extended operands
        if not product(d, n, m, target):
            add(d, sxt=(n + m) * (n + m + 1) // 2 - n * m)
    else:
        product(d, n, m, target, tree)
    return d


def int_product(a, b, structure: str = "dadda", target=None, split: bool = False) -> dict:
    """Integer product of :func:`lowbit.hw.intmac.int_multiply`; ``split``: the two half
    products of ``int_mac``'s ``"split"`` pipeline cut plus the adder that recombines them."""
    d = zero()
    if split:
        h = b.bits // 2
        _int_product(d, a.bits, h, a.signed, False, structure, target)
        _int_product(d, a.bits, b.bits - h, a.signed, b.signed, structure, target)
        return add(d, add=a.bits + b.bits)
    return _int_product(d, a.bits, b.bits, a.signed, b.signed, structure, target)


def int_mul(a, b, structure="dadda", target=None, **_) -> dict:
    return int_product(a, b, structure, target)


def int_mac(a, b, acc, terms, structure="dadda", stages=1, target=None, **_) -> dict:
    w = acc.bits if acc.kind == "int" else acc_width(a, b, terms)
    d = int_product(a, b, structure, target, split=stages >= 3 and b.bits >= 2)
    add(d, acc=w)
    if acc.kind == "int" and acc.overflow == "saturate":
        S = max(w, product_width(a, b)) + 1
        add(d, add=S - w + 1, mux=w)
    return d


def fp_product(a, b, target=None, fixed: bool = True) -> dict:
    """Exact minifloat product (:func:`lowbit.hw.fpmul.fp_multiply`): decode (hidden bit,
    NaN/Inf when a format has them), significand product, exponent add (when the exponent
    varies) and -- when ``fixed`` -- the shift into the fixed-point word, special-value zeroing
    and the conditional negate."""
    d = zero()
    sa, sb = _sig(a), _sig(b)
    product(d, sa, sb, target)
    special = any(f.has_nan or f.has_inf for f in (a, b))
    span = _span(a) + _span(b)
    if span:
        add(d, add=a.ebits + b.ebits + 1)                 # exponent add
    if special:
        add(d, add=a.ebits + b.ebits)                     # NaN / Inf decode
    if fixed:
        w = product_width(a, b) - 1
        add(d, shl=shifter_mux(sa + sb, span, w) + (w if special else 0), neg=w + 1)
    return d


def lmul_product(a, b, target=None, fixed: bool = True) -> dict:
    """L-Mul product (:func:`lowbit.hw.lmul.lmul_multiply`): ONE adder over the exponent and
    mantissa fields plus the constant (``e + m + 2`` bits), exponent-zero detection for the
    flush-to-zero operands and NaN / Inf decode (comparator bits, priced as ``add``) - no
    significand product - and, when ``fixed``, the shift of ``(2^m + M) << m`` into the
    fixed-point word, special / zero zeroing and the conditional negate."""
    d = zero()
    add(d, add=a.ebits + a.mbits + 2 + a.ebits + b.ebits)
    special = any(f.has_nan or f.has_inf for f in (a, b))
    if special:
        add(d, add=a.ebits + b.ebits)
    if fixed:
        w = lmul_width(a, b)
        add(d, shl=shifter_mux(2 * a.mbits + 1, _span(a) + _span(b) + 1, w) + w,
            neg=w + 1)
    return d


def multiplier_product(a, b, mul="exact", target=None, fixed: bool = True) -> dict:
    """Features of the product generator of multiplier model ``mul`` (exact or L-Mul)."""
    if parse_multiplier(mul).is_exact:
        return fp_product(a, b, target, fixed)
    return lmul_product(a, b, target, fixed)


def fp_mul(a, b, target=None, **_) -> dict:
    return fp_product(a, b, target)


def lmul_mul(a, b, target=None, **_) -> dict:
    return lmul_product(a, b, target)


def kulisch_mac(a, b, terms, target=None, **_) -> dict:
    return add(fp_product(a, b, target), acc=acc_width(a, b, terms))


def fp_adder(d: dict, acc_fmt, in_bits: int) -> dict:
    """FP accumulator adding an ``in_bits`` exact operand into ``acc_fmt`` (align, add,
    leading-zero count, normalise, RNE round, specials)."""
    w = max(acc_fmt.mbits + 4, in_bits) + 1          # significand + guard/round/sticky
    return add(d, fpa=w, mux=shifter_mux(w, w - 1, w) * 2,
               add=w + acc_fmt.ebits * 2 + acc_fmt.mbits + 1, lzc=w, neg=w)


def fp_fma(a, b, acc, target=None, **_) -> dict:
    return fp_adder(fp_product(a, b, target, fixed=False), acc.fmt, _sig(a) + _sig(b))


def fp_mac(a, b, acc, mul="exact", target=None, **_) -> dict:
    if parse_multiplier(mul).is_exact:
        return fp_fma(a, b, acc, target)
    return fp_adder(lmul_product(a, b, target, fixed=False), acc.fmt, 2 * a.mbits + 1)


def dot(elem, k: int, scale: str, target=None) -> dict:
    """k-element block dot (:mod:`lowbit.hw.mxdot`): k exact products, an adder tree growing one
    bit per level, scale logic (``"e8m0"``: 9-bit exponent add; ``"ue4m3"``: 4x4 significand
    product + exponent add, then the sum x scale product) and one fp32 rounding."""
    f = operand_format(elem)
    if isinstance(f, FloatFormat):
        d = scaled(fp_product(f, f, target), k)
    else:
        d = scaled(int_product(f, f, "array", target), k)
    pw = product_width(f, f)
    levels = ceil_log2(k)
    add(d, add=sum((k >> (lv + 1)) * (pw + lv + 1) for lv in range(levels)))
    sum_bits = acc_width(f, f, k)
    if scale == "e8m0":
        add(d, add=9 + 2 * 8)                        # exponent add + NaN-scale detect
        mag = sum_bits
    else:
        product(d, 4, 4, target)
        add(d, add=2 * 4 + 2 * 7)
        mag = sum_bits + 8
        product(d, min(sum_bits, 24), 8, target)
    # sign-magnitude, then one RNE rounding of the mag-bit integer to fp32
    # (:func:`lowbit.hw.fpround.round_to_float`: its shifter keeps mag + 2*23 + 3 bits)
    return add(d, neg=sum_bits, rnd=mag + 2 * 23 + 3)


def mx_dot(a, k, target=None, **_) -> dict:
    return dot(a, k, "e8m0", target)


def nvfp4_dot(k, target=None, **_) -> dict:
    return dot("fp4_e2m1", k, "ue4m3", target)
