"""Energy tables (with sources), node scaling and per-MAC energy of arbitrary formats.

Reference table (45 nm, 0.9 V) -- M. Horowitz, "Computing's energy problem (and what we can
do about it)", ISSCC 2014, as reproduced in stillwater-sc/esim ``energysim/database/
energy.py`` and S. Han et al., "Learning both Weights and Connections for Efficient Neural
Networks", NeurIPS 2015, Table 1:

=================  ========  ====================================================
operation          pJ        source
=================  ========  ====================================================
int8 add           0.03      Horowitz 2014
int16 add          0.05      Horowitz 2014
int32 add          0.1       Horowitz 2014
int8 mult          0.2       Horowitz 2014
int32 mult         3.1       Horowitz 2014
fp16 add           0.4       Horowitz 2014
fp32 add           0.9       Horowitz 2014
fp16 mult          1.1       Horowitz 2014
fp32 mult          3.7       Horowitz 2014
SRAM 64-bit read   10 / 20 / 100 for 8 kB / 32 kB / 1 MB  Horowitz 2014
DRAM 32-bit        640       Han et al. 2015 (= 1.28 nJ / 64 bit, low end of Horowitz'
                             1.3-2.6 nJ)
=================  ========  ====================================================

Derived models (all anchored on the table, documented per function):

- integer / significand multiplier: E_mul(s_a, s_b) = 0.2 pJ * s_a*s_b / 64
  (partial-product count scaling; predicts int32 mult 3.2 pJ vs 3.1 in the table);
- adder / accumulator of w bits: E_add(w) = 0.03 pJ * w / 8 (int32: 0.12 vs 0.1);
- FP multiplier overhead (exponent add, normalise, round) beyond the significand product:
  power law through the fp16 and fp32 anchors, E = 0.722 * (P/22)^1.240 pJ, P = 2(m+1);
- FP adder (align, add, normalise, round): power law through fp16 / fp32 adds,
  E = 0.4 * ((m+1)/11)^1.040 pJ;
- other logic (shifters, negation, LZC, registers): energy per gate equivalent
  e_GE = 0.2 pJ / GE(uint8 x uint8 multiplier) from the calibrated gate model.

The MAC is the registry unit of :func:`lowbit.cost_models.unit_cost.mac_unit` for the explicit
accumulator ``acc``: a float accumulator (``fp_mac``) is priced as the table's FP MAC
(:func:`e_fp_mul` of the operand mantissa + :func:`e_fp_add` of the accumulator's), every other
unit (integer MAC, Kulisch MAC, MX / NVFP4 dot per lane) by its structural features.

Node scaling rule (documented, first order): area ~ (L/45)^2; dynamic energy per op
~ C V^2 with C ~ L, i.e. E(L) = E45 * (L/45) * (V(L)/0.9)^2 with the nominal supply
V = {45: 0.9, 28: 0.9, 22: 0.85, 16: 0.8, 7: 0.75, 5: 0.7} V (linear interpolation).
SRAM energies scale the same way (an approximation: wire-dominated SRAM energy scales
more slowly than logic); DRAM (off-chip I/O) energy is not node-scaled.
"""

from __future__ import annotations

import math

import numpy as np

from lowbit.hw.units import param_text, unit_features, unit_params

from .unit_cost import coefficients, mac_unit, unit_cost

__all__ = ["HOROWITZ_45NM", "SRAM_64BIT_PJ", "DRAM_PJ_PER_BYTE", "scale_energy", "scale_area",
           "e_mul", "e_add", "e_fp_mul", "e_fp_add", "e_per_ge", "mac_energy",
           "sram_pj_per_byte", "dram_pj_per_byte"]

HOROWITZ_45NM = {  # pJ per operation, 45 nm, 0.9 V (Horowitz ISSCC 2014)
    "int8_add": 0.03, "int16_add": 0.05, "int32_add": 0.1,
    "int8_mult": 0.2, "int32_mult": 3.1,
    "fp16_add": 0.4, "fp32_add": 0.9, "fp16_mult": 1.1, "fp32_mult": 3.7,
}
SRAM_64BIT_PJ = {8 * 1024: 10.0, 32 * 1024: 20.0, 1024 * 1024: 100.0}  # Horowitz 2014
DRAM_PJ_PER_BYTE = 640.0 / 4  # Han et al. 2015: 640 pJ per 32-bit DRAM access
_VDD = {45: 0.9, 28: 0.9, 22: 0.85, 16: 0.8, 7: 0.75, 5: 0.7}


def _vdd(node: float) -> float:
    ks = sorted(_VDD)
    return float(np.interp(node, ks, [_VDD[k] for k in ks]))


def scale_energy(e45: float, node_nm: float = 45.0) -> float:
    """Scale a 45 nm energy to ``node_nm``: E * (L/45) * (V(L)/0.9)^2."""
    if node_nm <= 0:
        raise ValueError(f"node_nm: must be > 0 (got {node_nm})")
    return e45 * (node_nm / 45.0) * (_vdd(node_nm) / 0.9) ** 2


def scale_area(area: float, node_nm: float = 45.0, from_nm: float = 45.0) -> float:
    """Scale an area measured at ``from_nm`` to ``node_nm``: A * (node / from)^2."""
    if node_nm <= 0:
        raise ValueError(f"node_nm: must be > 0 (got {node_nm})")
    return area * (node_nm / from_nm) ** 2


def e_mul(sa: int, sb: int) -> float:
    """Integer / significand multiplier energy (pJ, 45 nm): 0.2 * sa*sb/64."""
    return HOROWITZ_45NM["int8_mult"] * sa * sb / 64.0


def e_add(w: float) -> float:
    """w-bit adder / accumulator energy (pJ, 45 nm): 0.03 * w/8."""
    return HOROWITZ_45NM["int8_add"] * w / 8.0


_MUL_B = math.log((3.7 - e_mul(24, 24)) / (1.1 - e_mul(11, 11))) / math.log(48 / 22)
_ADD_B = math.log(0.9 / 0.4) / math.log(24 / 11)


def e_fp_mul(mbits: int, ebits: int = 5) -> float:
    """FP multiplier (same format both sides, rounded product) energy in pJ at 45 nm.

    significand product + overhead power law through fp16 (1.1 pJ) and fp32 (3.7 pJ).
    Reproduces both anchors exactly.
    """
    s = mbits + 1
    over = (1.1 - e_mul(11, 11)) * ((2 * s) / 22.0) ** _MUL_B
    return e_mul(s, s) + over


def e_fp_add(mbits: int) -> float:
    """FP adder energy in pJ at 45 nm: 0.4 * ((m+1)/11)^b through fp16 / fp32 adds."""
    return HOROWITZ_45NM["fp16_add"] * ((mbits + 1) / 11.0) ** _ADD_B


def e_per_ge() -> float:
    """pJ per gate equivalent of random logic: 0.2 pJ / GE(uint8 x uint8 multiplier)."""
    return HOROWITZ_45NM["int8_mult"] / unit_cost("int_mul", "gates", a="uint8", b="uint8",
                                                  structure="array")["cost"]


def _feature_energy(f: dict) -> float:
    """Energy of a feature dict: multiplier and adder bits from the table, rest via e_GE."""
    c = coefficients("gates")
    eg = e_per_ge()
    # pp (with its cpa) anchored on int8 mult; add bits on int8 add; other logic via GE
    e = HOROWITZ_45NM["int8_mult"] / 64.0 * f.get("pp", 0)  # csa/cpa included in the anchor
    e += e_add(f.get("add", 0))
    for k in ("tree", "sxt", "shl", "mux", "neg", "lzc", "fpa", "ff"):
        e += eg * c[k] * f.get(k, 0)
    return e


def mac_energy(fa, fb, acc, terms: int = 1024, node_nm: float = 45.0,
               multiplier="exact") -> dict:
    """Energy per MAC (pJ) of ``fa x fb`` accumulated in ``acc`` (required: the architecture),
    scaled to ``node_nm``. Returns ``{"pj", "arch"}`` (``arch``: the registry unit and its
    parameters, see module docstring). ``multiplier="lmul"``: the L-Mul product is one
    integer add of ``ebits + mbits + 2`` bits (:func:`e_add`) instead of :func:`e_fp_mul`."""
    unit, p, lanes = mac_unit(fa, fb, acc, terms, multiplier=multiplier)
    if unit == "lmul_mac":
        e = e_add(p["a"].ebits + p["a"].mbits + 2) + e_fp_add(p["acc"].fmt.mbits)
    elif unit == "fp_mac":
        e = e_fp_mul(max(p["a"].mbits, p["b"].mbits)) + e_fp_add(p["acc"].fmt.mbits)
    else:
        e = _feature_energy(unit_features(unit, **p)) / lanes
    return {"pj": scale_energy(e, node_nm), "arch": f"{unit}({param_text(unit_params(unit, **p))})"}


def sram_pj_per_byte(buffer_bytes: float = 32 * 1024, node_nm: float = 45.0) -> float:
    """SRAM read/write energy per byte: log-log interpolation of Horowitz 64-bit accesses."""
    xs = np.log(sorted(SRAM_64BIT_PJ))
    ys = np.log([SRAM_64BIT_PJ[k] for k in sorted(SRAM_64BIT_PJ)])
    x = math.log(max(buffer_bytes, 1.0))
    slope = (ys[-1] - ys[0]) / (xs[-1] - xs[0])
    y = np.interp(x, xs, ys) if xs[0] <= x <= xs[-1] else (
        ys[0] + slope * (x - xs[0]) if x < xs[0] else ys[-1] + slope * (x - xs[-1]))
    return scale_energy(float(math.exp(y)) / 8.0, node_nm)


def dram_pj_per_byte(node_nm: float = 45.0) -> float:
    """DRAM energy per byte (Han et al. 2015: 640 pJ / 32 bit); not node-scaled (off-chip)."""
    return DRAM_PJ_PER_BYTE
