"""Cost of a registry hardware unit on a target, and the per-MAC cost of a format pair with an
explicit accumulator architecture.

    unit_cost("fp_mac", "ice40", a="fp8_e4m3", b="fp8_e4m3", acc="fp32", stages=2)
    mac_cost("fp8_e4m3", "fp8_e4m3", acc="fp32", target="gates")   # -> the fp_mac unit
    mac_cost("int8", "int8", acc="exact", target="sky130")          # -> int_mac, terms=1024

A unit's cost is linear in the structural features of exactly the netlist ``lowbit rtl``
exports (:func:`lowbit.hw.units.unit_features`): ``cost = sum_f coef[target][f] * feature_f``,
with the per-target coefficients fitted against Yosys (:mod:`lowbit.cost_models.calibrate`,
shipped in ``cost_models/data/calibration.json``) and textbook defaults where no calibration
unit exercises a feature.

Targets (:data:`TARGETS`) and metrics: ``gates`` -- gate equivalents (GE, 1 GE = one NAND2;
Yosys generic cells weighted by Nangate45 X1 areas); ``ice40`` -- SB_LUT4; ``xc7`` -- LUT1-6 of
Xilinx 7-series (no DSP); ``sky130`` -- um^2 of sky130_fd_sc_hd cells
(:mod:`lowbit.cost_models.sky130`).

The accumulator is the architecture and is always explicit (``acc``; no default): an
accumulator model of :mod:`lowbit.formats.accum` or its string -- ``Exact()`` / "exact" is a
Kulisch (exact fixed-point) accumulator for floats and the overflow-free integer register for
ints, ``FloatAccum`` / "fp32" a float accumulator rounding after every add, ``IntAccum`` /
"int32_sat" a wrapping or saturating integer register. Block formats (MX, NVFP4) use the block
dot unit (``mx_dot`` / ``nvfp4_dot``: exact block sum, one fp32 rounding per block), whatever
``acc`` says about the fp32 accumulation of block results outside the unit.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from lowbit.formats import BlockFormat, FloatFormat, IntFormat, resolve
from lowbit.formats.accum import parse_accum
from lowbit.formats.multiplier import parse_multiplier
from lowbit.hw.features import FEATURES
from lowbit.hw.units import UNITS, param_text, unit_features, unit_params

__all__ = ["TARGETS", "METRIC", "DEFAULT_COEF", "coefficients", "cost", "unit_cost",
           "mac_operand", "mac_unit", "mac_cost", "load_calibration", "CALIBRATION_PATH"]

TARGETS = ("gates", "ice40", "xc7", "sky130")
METRIC = {"gates": "GE", "ice40": "LUT4", "xc7": "LUT6", "sky130": "um^2"}
CALIBRATION_PATH = Path(__file__).with_name("data") / "calibration.json"

_GATES = {"pp": 1.33, "csa": 8.0, "tree": 0.0, "ks": 4.0, "lx": 0.0, "cpa": 8.0, "sxt": 0.5, "add": 8.0,
          "acc": 10.0, "shl": 1.0,
          "mux": 2.33, "neg": 5.3, "lzc": 2.0, "fpa": 10.0, "rnd": 15.0, "pk": 0.0, "ff": 5.67}
SKY130_UM2_PER_GE = 3.7536  # sky130_fd_sc_hd__nand2_1 area
DEFAULT_COEF = {
    # textbook: AND 1.33 GE, full adder 8 GE, MUX2 2.33 GE, DFF with clear 5.67 GE
    "gates": dict(_GATES),
    # 1 LUT4 (+carry) per adder bit; ~0.5 LUT per partial-product bit; 1 LUT4 = 2-bit 2:1 mux
    "ice40": {"pp": 0.5, "csa": 1.0, "tree": 0.0, "ks": 0.5, "lx": 0.0, "cpa": 1.0, "sxt": 0.5, "add": 1.0,
              "acc": 1.0, "shl": 1.0,
              "mux": 0.5, "neg": 1.0, "lzc": 0.5, "fpa": 2.0, "rnd": 3.0, "pk": 1.0, "ff": 0.0},
    "xc7": {"pp": 0.4, "csa": 0.6, "tree": 0.0, "ks": 0.3, "lx": 0.5, "cpa": 0.5, "sxt": 0.5, "add": 1.0,
            "acc": 1.0, "shl": 1.0,
            "mux": 0.35, "neg": 1.0, "lzc": 0.35, "fpa": 2.0, "rnd": 2.0, "pk": 1.0, "ff": 0.0},
    "sky130": {f: c * SKY130_UM2_PER_GE for f, c in _GATES.items()},
}


def _check_target(target: str) -> str:
    if target not in TARGETS:
        raise ValueError(f"--target={target!r}; allowed: {', '.join(TARGETS)}")
    return target


@lru_cache(maxsize=4)
def load_calibration(path: str | None = None) -> dict | None:
    """The shipped calibration (dict) or None when absent / unreadable."""
    try:
        return json.loads(Path(path or CALIBRATION_PATH).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def coefficients(target: str, calibrated: bool = True) -> dict:
    """Per-feature coefficients for ``target`` (fitted ones when the calibration has them)."""
    _check_target(target)
    cal = load_calibration() if calibrated else None
    fitted = (cal or {}).get("coefficients", {}).get(target, {})
    return {**DEFAULT_COEF[target], **fitted}


def cost(features: dict, target: str, coef: dict | None = None) -> float:
    """Linear cost of a feature dict in the target's metric (:data:`METRIC`)."""
    c = coef or coefficients(target)
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise ValueError(f"features {unknown} unknown; allowed: {', '.join(FEATURES)}")
    return float(sum(c.get(f, 0.0) * v for f, v in features.items()))


def unit_cost(unit: str, target: str, **params) -> dict:
    """Cost of registry unit ``unit`` built with ``params`` (what ``lowbit rtl`` exports):
    ``{"unit", "params", "family", "target", "metric", "cost", "ff", "features", "latency"}``."""
    _check_target(target)
    p = unit_params(unit, **params)
    f = unit_features(unit, target=target, **p)
    u = UNITS[unit]
    return {"unit": unit, "params": p, "params_text": param_text(p), "family": u.family,
            "target": target, "metric": METRIC[target], "cost": cost(f, target),
            "ff": f["ff"], "features": f, "latency": u.latency(**p)}


def mac_operand(f):
    """Scaled-integer block formats (per-channel / group FP32 scales, ``scale is None``) cost
    their element MAC: the scale multiply happens outside the MAC, once per output or group,
    and is not part of any unit."""
    return f.element if isinstance(f, BlockFormat) and f.scale is None else f


def mac_unit(fa, fb, acc, terms: int = 1024, stages: int = 1,
             multiplier="exact") -> tuple[str, dict, int]:
    """Registry unit, parameters and lanes (MACs per evaluation) that implement ``fa x fb``
    accumulated in ``acc`` (see module docstring) with the products of ``multiplier`` (a
    model of :mod:`lowbit.formats.multiplier`; L-Mul: the ``lmul_mac`` unit, float operands
    and a float accumulator). ValueError names unsupported combinations."""
    a, b = (mac_operand(resolve(f, arg=n)) for f, n in ((fa, "fa"), (fb, "fb")))
    accm = parse_accum(acc)
    mul = parse_multiplier(multiplier)
    if not mul.is_exact:
        if not (isinstance(a, FloatFormat) and isinstance(b, FloatFormat)
                and accm.kind == "float"):
            raise ValueError(f"multiplier={mul.name}: lowbit.hw has an {mul.name} MAC for float "
                             f"element formats with a float accumulator (lmul_mac); got "
                             f"{a.name} x {b.name}, acc={accm.name}")
        return "lmul_mac", {"a": a, "b": b, "acc": accm, "stages": stages, "mul": mul.name}, 1
    if isinstance(a, BlockFormat) or isinstance(b, BlockFormat):
        if not (isinstance(a, BlockFormat) and isinstance(b, BlockFormat) and a == b):
            raise ValueError(f"fa={a.name}, fb={b.name}: block formats need the same block "
                             "format on both operands")
        if a.name == "nvfp4" or (a.scale is not None and a.scale.name == "ue4m3"):
            return "nvfp4_dot", {"k": a.block_size, "stages": stages}, a.block_size
        return "mx_dot", {"a": a.element, "k": a.block_size, "stages": stages}, a.block_size
    if isinstance(a, IntFormat) and isinstance(b, IntFormat):
        if accm.kind == "float":
            raise ValueError(f"acc={accm.name}: integer operands take acc=exact or "
                             "int<bits>[_sat] (lowbit.hw has no int x int -> float MAC)")
        return "int_mac", {"a": a, "b": b, "acc": accm, "terms": terms, "stages": stages}, 1
    if isinstance(a, FloatFormat) and isinstance(b, FloatFormat):
        if accm.kind == "exact":
            return "kulisch_mac", {"a": a, "b": b, "terms": terms, "stages": stages}, 1
        if accm.kind == "float":
            return "fp_mac", {"a": a, "b": b, "acc": accm, "stages": stages}, 1
        raise ValueError(f"acc={accm.name}: float operands take acc=exact (Kulisch) or a "
                         "float accumulator (fp32, fp16, bf16)")
    raise ValueError(f"fa={a.name}, fb={b.name}: mixed integer x float MACs have no hw unit")


def mac_cost(fa, fb, acc, target: str = "gates", terms: int = 1024, stages: int = 1,
             multiplier="exact") -> dict:
    """Per-MAC cost of ``fa x fb`` accumulated in ``acc`` on ``target`` (no default
    architecture: ``acc`` is required) with products of ``multiplier`` (default exact).
    Returns :func:`unit_cost`'s dict with the unit's total
    in ``unit_total``, ``lanes`` and ``cost`` / ``ff`` / ``features`` per MAC, plus ``arch``:
    the unit and its parameters, as every report row prints it."""
    unit, p, lanes = mac_unit(fa, fb, acc, terms, stages, multiplier)
    r = unit_cost(unit, target, **p)
    r["arch"] = f"{unit}({r['params_text']})"
    r["unit_total"], r["lanes"] = r["cost"], lanes
    r["cost"], r["ff"] = r["cost"] / lanes, r["ff"] / lanes
    r["features"] = {f: v / lanes for f, v in r["features"].items()}
    return r
