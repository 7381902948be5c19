"""Thin execution adapter between the workloads and the arithmetic core.

The workloads never do quantised arithmetic themselves: every layer is
``y, x_q = gemm(x2d, prepare_weight(w2d, cfg), bias, cfg)`` and every format lookup goes through
:func:`resolve_format`.

Back-end: the sim core — ``lowbit.sim.qconfig`` (``QuantConfig``, ``prepare``) and
``lowbit.sim.gemm.gemm_nt`` (bit-exact products, accumulator models, OCP MX block dot) — with
formats from ``lowbit.formats``. Layers whose config is ``None`` (the float reference) run as a
float64 BLAS matmul.

Shapes: ``x`` is (N, K) activations, ``w`` is (M, K) weights (PyTorch ``Linear`` layout), blocks
and channels run along K (axis -1), which is the reduction axis of the GEMM as in MX/NVFP4
hardware. Weights are quantised once per evaluation by the caller (RTN or GPTQ); activations are
quantised on every call.
"""

from __future__ import annotations

import numpy as np

import lowbit.formats as lf
from lowbit.formats.accum import parse_accum

from ..gemm import gemm_nt
from ..qconfig import QuantConfig, prepare

# ----------------------------------------------------------------------------- formats


def list_format_names() -> list[str]:
    """Canonical format names accepted by :func:`resolve_format`."""
    return list(lf.list_formats())


def resolve_format(fmt):
    """Format object for ``fmt`` (registry name or object); ``None`` stays ``None`` (= no
    quantisation). Unknown names raise ValueError listing the allowed names."""
    if fmt is None or not isinstance(fmt, str):
        return fmt
    return lf.get_format(fmt)


def format_name(fmt) -> str:
    if fmt is None:
        return "none"
    if isinstance(fmt, str):
        return fmt
    return str(getattr(fmt, "name", None) or fmt)


def bits_per_element(fmt) -> float:
    """Storage bits per element including amortised block scales (32.0 for ``None``)."""
    if fmt is None:
        return 32.0
    f = resolve_format(fmt)
    for attr in ("bits_per_element", "bits"):
        v = getattr(f, attr, None)
        if v is not None:
            return float(v)
    raise ValueError(f"cannot determine bits per element of {fmt!r}")


# ----------------------------------------------------------------------------- configs

# accumulators offered by default in sweep error messages (any parse_accum form is accepted)
ACCUMULATORS = ("exact", "fp32", "fp16", "bf16", "fp32_chunk32", "int32")


def check_accum(accum: str) -> str:
    """Validate an accumulator name (:func:`lowbit.sim.accum.parse_accum`); ValueError listing
    the allowed forms."""
    parse_accum(accum)
    return accum


def make_config(weight, act=None, accum: str = "exact"):
    """A ``lowbit.sim.qconfig.QuantConfig`` for ``weight``/``act`` formats (names or objects;
    ``act`` defaults to ``weight``) and accumulator name."""
    act = weight if act is None else act
    return QuantConfig(weight=resolve_format(weight), act=resolve_format(act),
                       accum=parse_accum(accum))


def config_formats(cfg):
    """(weight_fmt, act_fmt, accum_name) of a config; ``None`` -> float."""
    if cfg is None:
        return None, None, "exact"
    acc = getattr(cfg, "accum", "exact")
    acc_name = acc if isinstance(acc, str) else getattr(acc, "name", str(acc))
    return resolve_format(cfg.weight), resolve_format(cfg.act), acc_name


def is_identity_format(fmt) -> bool:
    return fmt is None or format_name(fmt) in ("fp32", "none")


# ----------------------------------------------------------------------------- GEMM


def prepare_weight(w2d: np.ndarray, cfg, values: np.ndarray | None = None):
    """Weight operand of a GEMM for (M, K) float weights ``w2d`` quantised per ``cfg.weight``
    (RTN, blocks / channels along K); ``values``: already quantised (e.g. GPTQ) dequantised
    weights, used as they are. ``cfg=None``: the float weights."""
    w2d = np.asarray(w2d, np.float64)
    if cfg is None:
        return w2d
    if values is not None:
        return prepare(np.asarray(values, np.float64), None)
    w_fmt, _, _ = config_formats(cfg)
    return prepare(w2d, w_fmt)


def weight_values(wop) -> np.ndarray:
    """Dequantised (M, K) float64 values of a weight operand."""
    return np.asarray(getattr(wop, "values", wop), np.float64)


def gemm(x2d: np.ndarray, wop, bias, cfg):
    """``y = Q_act(x2d) @ W.T (+ bias)`` for a weight operand from :func:`prepare_weight`.

    x2d: (N, K) float, returns ``(y (N, M) float64, x_q (N, K) float64)`` where ``x_q`` is the
    quantised activation operand actually multiplied. ``cfg=None``: float64 BLAS, no rounding.
    """
    x2d = np.asarray(x2d, np.float64)
    if cfg is None:
        xq, y = x2d, x2d @ weight_values(wop).T
    else:
        _, a_fmt, _ = config_formats(cfg)
        if isinstance(wop, np.ndarray):  # raw weight values: used as they are
            wop = prepare(wop, None)
        a = prepare(x2d, a_fmt)
        xq = a.values
        y = gemm_nt(a, wop, cfg.accum, getattr(cfg, "dot", "auto"))
    if bias is not None:
        y = y + np.asarray(bias, np.float64)
    return y, xq
