"""Analytic per-unit cost models (ASIC gate equivalents / um^2, FPGA LUT / FF / DSP).

Every arithmetic unit is decomposed into *structural features* (counts of primitive
bit-level building blocks), and each target's cost is a linear combination of them:

    cost_target(unit) = sum_f coef[target][f] * feature_f(unit)

========  ==========================================================================
feature   meaning (bits)
========  ==========================================================================
pp        partial-product bits (AND gates) of the significand multiplier, s_a * s_b
csa       carry-save full adders reducing them, (s_a - 1) * (s_b - 1)
cpa       final carry-propagate adder of the multiplier, s_a + s_b
sgn       two's-complement correction of a signed integer product, s_a + s_b (0 else;
          two (s_a+s_b)-bit subtractions, Baugh-Wooley-equivalent)
sxt       extra partial products of a sign-extended signed product (``pyrtl.signed_mult``
          style, hw/'s "array" multiplier): W(W+1)/2 - s_a*s_b, W = s_a+s_b (0 otherwise)
add       other adder bits: exponent adders, accumulators, adder trees, rounding
shl       2:1 mux bits of the exact-product left shifter (narrow significand product into
          the fixed-point word; mostly constant-0 inputs, so cheap after synthesis; calibrated)
mux       2:1 multiplexer bits of general shifters (FP alignment / normalisation), see
          ``shifter_mux``; no calibration unit contains one yet, so it keeps the cell cost
          (MUX2_X1 = 2.33 GE, 0.5 SB_LUT4, 0.35 LUT6)
neg       conditional-negate bits (sign-magnitude -> two's complement)
lzc       leading-zero-counter input bits (normalisers)
fpa       FP-adder control bits (operand swap, sticky, RNE rounding, subnormal / special-value
          handling) per significand bit of an FP accumulator; calibrated on lowbit.hw's
          ``fp_mac`` units
pk        bits of a *LUT-packed* product (FPGA targets with K-input LUTs, ``LUT_INPUTS``):
          an s_a x s_b significand / integer product with s_a + s_b <= K inputs is a
          K-input function per output bit, so it maps to one LUT per product bit
          (s_a + s_b) whatever its gate structure; for that target it replaces the
          product's pp / csa / cpa / sgn / sxt (xc7 LUT6: products up to 3x3 bits; e.g.
          a signed 3x3 product is 6 LUT6, not a 4-adder array plus sign corrections).
          Fixed at 1 LUT per bit, not fitted (see :mod:`lowbit.cost_models.calibrate`)
ff        register bits (with synchronous clear)
one       constant
========  ==========================================================================

``coef`` has textbook defaults (``DEFAULT_COEF``: GE from Nangate45 cell areas, e.g. a
full adder = 8 GE) and is replaced by the coefficients fitted against Yosys in
``cost_models/data/calibration.json`` (see :mod:`lowbit.cost_models.calibrate`) when that
file is present. Targets: ``gates`` (GE, 1 GE = NAND2_X1 = 0.798 um^2 at 45 nm),
``ice40`` (SB_LUT4), ``xilinx`` (xc7 LUT1-6, no DSP). FF counts are exact
(``feature ff``); DSP48E1 counts are analytic (``dsp48_count``).

Unit kinds (all return a feature dict):

- :func:`mult_features(fa, fb)` exact product; ints: s = bits; floats: s = m+1 significand,
  exponent add e_a+e_b bits, left shift of the 2(m+1)-bit product by up to span_a+span_b
  into ``product_fixed_bits`` bits and a conditional negate (Kulisch front end).
- :func:`mac_features(fa, fb, acc_bits, arch)` product + accumulator register;
  arch "fixed" (integer / Kulisch fixed-point accumulator) or "float" (FP accumulator in
  ``acc_fmt``: align shifter, add, LZC, normalise shifter, round).
- :func:`dot_features(fa, fb, lanes, ...)` k-lane dot unit: lanes products, adder tree,
  block-scale logic (E8M0: exponent add; UE4M3 (NVFP4): 4x4 significand product +
  exponent add), conversion to FP32 and FP32 accumulation.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

from .fmt import HwFormat, hw_format, log2c

__all__ = ["FEATURES", "TARGETS", "DEFAULT_COEF", "coefficients", "cost", "unit_features",
           "mult_features", "lut_packed", "mac_features", "dot_features", "shifter_mux", "acc_bits_for",
           "dsp48_count", "mac_cost", "GE_UM2_45NM", "LUT_INPUTS", "load_calibration"]

FEATURES = ("pp", "csa", "cpa", "sgn", "sxt", "add", "shl", "mux", "neg", "lzc", "fpa", "pk",
            "ff", "one")
TARGETS = ("gates", "ice40", "xilinx")
GE_UM2_45NM = 0.798  # Nangate45 NAND2_X1 area (um^2)
# LUT inputs K of targets whose features use LUT packing ("pk"): xc7 LUT6. iCE40's LUT4
# would only pack 2x2 products (2-bit ints are outside the validity range; E2M1 / E3M1
# significands), and packing those did not improve the LUT4 fit (train MAPE 5.84 -> 5.88),
# so the LUT4 model keeps the gate-structure features.
LUT_INPUTS = {"xilinx": 6}

DEFAULT_COEF = {
    # textbook: pp = AND (1.33) + full adder (8 GE, 2 XOR + 2 AND + OR); mux 2.33; DFF 5.67 + clear
    "gates": {"pp": 1.33, "fpa": 10.0, "shl": 1.0, "sxt": 0.5, "csa": 8.0, "cpa": 8.0, "sgn": 8.0, "add": 8.0, "mux": 2.33, "neg": 5.3,
              "lzc": 2.0, "pk": 0.0, "ff": 7.0, "one": 0.0},
    # 1 LUT4 (+carry) per adder bit; ~1 LUT per partial-product bit; 1 LUT4 = 2-bit 2:1 mux
    "ice40": {"pp": 0.5, "fpa": 2.0, "shl": 1.0, "sxt": 0.5, "csa": 1.0, "cpa": 1.0, "sgn": 1.0, "add": 1.0, "mux": 0.5, "neg": 1.0,
              "lzc": 0.5, "pk": 1.0, "ff": 0.2, "one": 0.0},
    "xilinx": {"pp": 0.4, "fpa": 2.0, "shl": 1.0, "sxt": 0.5, "csa": 0.6, "cpa": 0.5, "sgn": 0.5, "add": 1.0, "mux": 0.35, "neg": 1.0,
               "lzc": 0.35, "pk": 1.0, "ff": 0.1, "one": 0.0},
}

_DATA = Path(__file__).with_name("data") / "calibration.json"


@lru_cache(maxsize=4)
def load_calibration(path: str | None = None) -> dict | None:
    """The shipped calibration file (dict) or None when absent / unreadable."""
    p = Path(path) if path else _DATA
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def coefficients(target: str, calibrated: bool = True) -> dict:
    """Per-feature coefficients for ``target`` (fitted ones if the calibration file has them)."""
    if target not in TARGETS:
        raise ValueError(f"target: unknown {target!r}; allowed: {', '.join(TARGETS)}")
    if calibrated:
        cal = load_calibration()
        if cal and target in cal.get("coefficients", {}):
            return {**DEFAULT_COEF[target], **cal["coefficients"][target]}
    return dict(DEFAULT_COEF[target])


def cost(features: dict, target: str = "gates", coef: dict | None = None) -> float:
    """Linear cost of a feature dict (GE for "gates", LUTs for FPGA targets)."""
    c = coef or coefficients(target)
    return float(sum(c.get(f, 0.0) * v for f, v in features.items()))


def _add(d: dict, **kw) -> dict:
    for k, v in kw.items():
        d[k] = d.get(k, 0) + v
    return d


def _zero() -> dict:
    return {f: 0 for f in FEATURES}


def shifter_mux(in_bits: int, max_shift: int, out_bits: int | None = None) -> int:
    """2:1 mux count of a logarithmic left shifter of an ``in_bits`` value by 0..max_shift.

    Stage k (shift by 2^k) has min(out_bits, in_bits + 2^(k+1) - 1) live output bits.
    """
    if max_shift <= 0:
        return 0
    out = out_bits or in_bits + max_shift
    return int(sum(min(out, in_bits + 2 ** (k + 1) - 1) for k in range(log2c(max_shift + 1))))


def _sig(f: HwFormat) -> int:
    return f.mbits + 1 if f.is_float else f.bits


def product_bits(fa, fb) -> int:
    """Width of the exact product a*b as signed fixed point (see HwFormat.product_fixed_bits)."""
    a, b = hw_format(fa), hw_format(fb)
    if not a.is_float and not b.is_float:
        return a.bits + b.bits
    return _sig(a) + _sig(b) + a.exp_span + b.exp_span + 1


def lut_packed(sa: int, sb: int, target: str | None = None) -> bool:
    """True when an sa x sb product fits one LUT of ``target`` per output bit (sa + sb <= K)."""
    k = LUT_INPUTS.get(target) if target else None
    return bool(k) and sa + sb <= k


def _product(d: dict, sa: int, sb: int, target: str | None = None) -> bool:
    """Add an unsigned sa x sb array product (pp / csa / cpa), or its LUT-packed form
    (pk = sa + sb) for a target whose LUTs hold the whole product. Returns packed."""
    if lut_packed(sa, sb, target):
        _add(d, pk=sa + sb)
        return True
    _add(d, pp=sa * sb, csa=(sa - 1) * (sb - 1), cpa=sa + sb)
    return False


def mult_features(fa, fb, style: str = "ref", target: str | None = None) -> dict:
    """Structural features of the exact multiplier a*b (see module doc).

    style "ref": signed ints use the two-correction (Baugh-Wooley-equivalent) product of
    :mod:`lowbit.cost_models.refunits`; "hw": hw/'s units (sign-extended signed product,
    minifloat NaN/Inf decode and a zeroing select on the product).
    target: the cost target the features are for; an FPGA target in ``LUT_INPUTS`` turns
    a product of at most K input bits (sign handling included) into ``pk`` bits.
    """
    a, b = hw_format(fa), hw_format(fb)
    sa, sb = _sig(a), _sig(b)
    d = _zero()
    packed = _product(d, sa, sb, target)
    int_signed = (not a.is_float and a.signed) or (not b.is_float and b.signed)
    if int_signed and not packed:
        if style == "hw":
            w = sa + sb
            _add(d, sxt=w * (w + 1) // 2 - sa * sb)
        else:
            _add(d, sgn=sa + sb)
    if a.is_float or b.is_float:
        e_bits = a.ebits + b.ebits
        span = a.exp_span + b.exp_span
        w = product_bits(a, b) - 1
        # hidden-bit detect (E != 0) + exponent add, then shift into the fixed-point word
        _add(d, add=e_bits + 1, shl=shifter_mux(sa + sb, span, w))
        if a.signed or b.signed:
            _add(d, neg=w + 1)
        if style == "hw":
            _add(d, shl=w, add=a.ebits + b.ebits)  # special-value zeroing + NaN/Inf decode
    return d


def acc_bits_for(fa, fb, acc_len: int = 1024) -> int:
    """Accumulator width that cannot overflow over ``acc_len`` products.

    ints: Colbert et al. (arXiv 2301.13376) bound used by FINN,
    ceil(alpha + log2(1 + 2^-alpha) + 1), alpha = log2(N) + W + A - 1 - signed(A);
    floats (fixed-point / Kulisch): product_fixed_bits + ceil(log2 N).
    """
    a, b = hw_format(fa), hw_format(fb)
    if not a.is_float and not b.is_float:
        alpha = math.log2(max(acc_len, 1)) + a.bits + b.bits - 1 - int(a.signed)
        return int(math.ceil(alpha + math.log2(1 + 2 ** (-alpha)) + 1))
    return product_bits(a, b) + log2c(acc_len)


def _fp_adder(d: dict, acc: HwFormat, in_bits: int) -> dict:
    """FP accumulator adding an ``in_bits`` fixed/aligned operand into format ``acc``."""
    w = max(acc.mbits + 4, in_bits) + 1  # significand + guard/round/sticky
    _add(d, fpa=w, mux=shifter_mux(w, w - 1, w) * 2,  # align + normalise shifters
         add=w + acc.ebits * 2 + acc.mbits + 1,  # significand add, exponent diff/update, round
         lzc=w, neg=w, ff=acc.bits)
    return d


def mac_features(fa, fb, acc_bits: int | None = None, acc_len: int = 1024,
                 arch: str = "auto", acc_fmt="fp32", style: str = "ref",
                 target: str | None = None) -> dict:
    """Product + accumulator register. arch "fixed" | "float" | "auto".

    "auto" uses a fixed-point (integer / Kulisch) accumulator while it is at most 80 bits
    wide and an FP accumulator in ``acc_fmt`` otherwise (fp16/bf16/fp32 operands).
    """
    if arch not in ("auto", "fixed", "float"):
        raise ValueError(f"arch: unknown {arch!r}; allowed: auto, fixed, float")
    d = mult_features(fa, fb, style, target)
    accb = acc_bits or acc_bits_for(fa, fb, acc_len)
    if arch == "auto":
        arch = "fixed" if accb <= 80 else "float"
    if arch == "fixed":
        return _add(d, add=accb, ff=accb)
    a, b = hw_format(fa), hw_format(fb)
    # FP multiply output kept at 2s bits with exponent; rounding-free product feeds the adder
    d = _zero()
    _product(d, _sig(a), _sig(b), target)
    _add(d, add=a.ebits + b.ebits + 1)
    return _fp_adder(d, hw_format(acc_fmt), _sig(a) + _sig(b))


def dot_features(fa, fb, lanes: int | None = None, acc_len: int = 1024,
                 acc_fmt="fp32", accumulate: bool = True, style: str = "ref",
                 target: str | None = None) -> dict:
    """k-lane dot-product unit (MX / NVFP4 style; also plain int / float formats).

    Per block of ``lanes`` products: lanes exact products, a (lanes-1)-adder tree growing
    by one bit per level, then for block formats the scale logic (per operand pair:
    E8M0 -> (8+1)-bit exponent add; UE4M3 -> 4x4 significand product + exponent add),
    conversion of the block sum to ``acc_fmt`` and an ``acc_fmt`` accumulator.
    Non-block int formats accumulate in a fixed-point register (Colbert width).
    ``accumulate=False``: one rounding of the block result to ``acc_fmt`` instead of the
    accumulator (the scope of lowbit.hw's ``mx_dot`` / ``nvfp4_dot``).
    Divide by ``lanes`` for the per-MAC cost.
    """
    a, b = hw_format(fa), hw_format(fb)
    k = int(lanes or a.block_size or b.block_size or 1)
    if k < 1:
        raise ValueError(f"lanes: must be >= 1 (got {k})")
    d = _zero()
    m = mult_features(a, b, style, target)
    for f in FEATURES:
        d[f] += k * m[f]
    pw = product_bits(a, b)
    levels = log2c(k)
    tree = sum((k >> (lv + 1)) * (pw + lv + 1) for lv in range(levels)) if k > 1 else 0
    _add(d, add=tree)
    sum_bits = pw + levels
    block = a.block_size or b.block_size
    if not block:
        if not a.is_float and not b.is_float:
            accb = acc_bits_for(a, b, acc_len)
            return _add(d, add=accb, ff=accb)
        if sum_bits + log2c(acc_len) <= 80:
            accb = sum_bits + log2c(max(acc_len // k, 1))
            return _add(d, add=accb, ff=accb)
    for f in (a, b):
        if f.block_size:
            if f.scale_kind == "e8m0":
                _add(d, add=f.scale_ebits + 1)
            elif f.scale_kind == "fp32":  # fp32 group scale: one fp32 multiply per block
                _product(d, 24, 24, target)
                _add(d, add=9)
            elif f.scale_kind == "float":
                _product(d, f.scale_mbits + 1, f.scale_mbits + 1, target)
                _add(d, add=f.scale_ebits + 1)
    if a.block_size and b.block_size and a.scale_kind == "float":
        # scale product (s_m x s_m bits) multiplies the block sum: sum_bits x 2(m+1) product
        s2 = 2 * (a.scale_mbits + 1)
        sb = min(sum_bits, 24)
        _product(d, sb, s2, target)
    # block sum -> acc_fmt (LZC + normalise) and acc_fmt accumulation
    _add(d, lzc=sum_bits, mux=shifter_mux(sum_bits, sum_bits - 1, sum_bits))
    acc = hw_format(acc_fmt)
    if not accumulate:  # round once: sign-magnitude, round-increment, exponent
        return _add(d, neg=sum_bits, add=acc.mbits + 1 + acc.ebits + 2)
    return _fp_adder(d, acc, min(sum_bits, acc.mbits + 4))


def unit_features(kind: str, target: str | None = None, **p) -> dict:
    """Features of a calibration unit (kinds of :mod:`lowbit.cost_models.refunits`;
    ``style="hw"`` in ``p`` for hw/'s units, see :func:`mult_features`; ``target``
    enables LUT packing of small products, see ``pk``)."""
    style = p.get("style", "ref")
    if kind in ("int_mult", "int_mac"):
        pre = "" if p.get("signed", True) else "u"
        fa, fb = f"{pre}int{p['bits_a']}", f"{pre}int{p['bits_b']}"
        d = mult_features(fa, fb, style, target)
        if kind == "int_mult":
            return d
        return _add(d, add=int(p["acc_bits"]), ff=int(p["acc_bits"]))
    if kind in ("fp_mult", "fp_mac"):
        f = f"e{p['ebits']}m{p['mbits']}"
        d = mult_features(f, f, style, target)
        if kind == "fp_mult":
            return d
        return _add(d, add=int(p["acc_bits"]), ff=int(p["acc_bits"]) + (3 if style == "hw" else 0))
    if kind == "fp_acc_mac":  # lowbit.hw fp_mac: FP accumulator in format p["acc"]
        return mac_features(p["a"], p["a"], arch="float", acc_fmt=p["acc"], style="hw",
                            target=target)
    raise ValueError(f"kind: unknown unit kind {kind!r}; allowed: int_mult, int_mac, "
                     "fp_mult, fp_mac, fp_acc_mac")


def dsp48_count(fa, fb) -> int:
    """DSP48E1 (25x18 signed) tiles for the significand product (0 below 5x5 bits)."""
    a, b = hw_format(fa), hw_format(fb)
    sa, sb = sorted((_sig(a) + (a.is_float), _sig(b) + (b.is_float)), reverse=True)
    if sa * sb < 25:
        return 0
    return int(math.ceil(sa / 25) * math.ceil(sb / 18))


def mac_cost(fa, fb=None, target: str = "gates", arch: str = "auto", lanes: int | None = None,
             acc_len: int = 1024, acc_fmt="fp32", node_nm: float = 45.0) -> dict:
    """Per-MAC hardware cost of formats (fa x fb).

    Uses the dot-unit model when either format has block scales or ``lanes`` is given,
    otherwise the scalar MAC model. Returns ``{"features", "cost", "unit", "ff", "dsp48",
    "area_um2"}``: cost in GE ("gates") or LUTs (FPGA), per MAC; area_um2 only for gates,
    scaled to ``node_nm`` by (node/45)^2.
    """
    fb = fa if fb is None else fb
    a, b = hw_format(fa), hw_format(fb)
    if lanes or a.block_size or b.block_size:
        k = int(lanes or a.block_size or b.block_size)
        feats = dot_features(a, b, k, acc_len=acc_len, acc_fmt=acc_fmt, target=target)
    else:
        k = 1
        feats = mac_features(a, b, acc_len=acc_len, arch=arch, acc_fmt=acc_fmt, target=target)
    per = {f: v / k for f, v in feats.items()}
    c = cost(per, target)
    out = {"features": per, "cost": c, "unit": "GE" if target == "gates" else "LUT",
           "ff": per["ff"], "dsp48": dsp48_count(a, b)}
    if target == "gates":
        out["area_um2"] = c * GE_UM2_45NM * (node_nm / 45.0) ** 2
    return out
