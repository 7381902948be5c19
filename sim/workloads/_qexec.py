"""Thin execution adapter between the workloads and the arithmetic core.

The workloads never do quantised arithmetic themselves: every layer is
``y, x_q = gemm(x2d, prepare_weight(w2d, cfg), bias, cfg)`` and every format lookup goes through
:func:`resolve_format`.

Back-end: the sim core — ``lowbit.sim.qconfig`` (``QuantConfig``, ``prepare``) and
``lowbit.sim.gemm.gemm_nt`` (bit-exact products, accumulator models, OCP MX block dot) — with
formats from ``lowbit.formats``. Layers whose config is ``None`` (the float reference) run as a
float64 BLAS matmul. Only when the core / ``lowbit.formats`` is not importable, a small local
fallback is used so that the workloads and the sweep keep working:

* formats: the names in :data:`FALLBACK_FORMATS` (element floats with RNE + saturation,
  OCP MX blocks of 32 with an E8M0 FLOOR scale, NVFP4 = E2M1 blocks of 16 with a UE4M3 scale and
  an FP32 per-tensor scale amax/(6*448), symmetric narrow INT per channel / per group of 128);
* accumulators: ``exact`` (float64 products and sums of the already-quantised operands),
  ``fp32`` (float32 BLAS matmul of the quantised operands, i.e. fp32 products and an fp32 sum
  in the BLAS's order), and any other float accumulator as a sequential K-loop that rounds the
  running sum to that format after every addition (products exact).

Shapes: ``x`` is (N, K) activations, ``w`` is (M, K) weights (PyTorch ``Linear`` layout), blocks
and channels run along K (axis -1), which is the reduction axis of the GEMM as in MX/NVFP4
hardware. Weights are quantised once per evaluation by the caller (RTN or GPTQ); activations are
quantised on every call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# ----------------------------------------------------------------------------- formats


@dataclass(frozen=True)
class _FB:
    """Fallback format descriptor: element float/int, optional block scaling."""

    name: str
    kind: str  # "float" | "int" | "mx" | "nvfp4" | "intblk"
    ebits: int = 0
    mbits: int = 0
    fmax: float = 0.0
    emin: int = 0
    qmax: int = 0
    block: int | None = None  # elements per block along the axis; -1 = whole axis
    bits_per_element: float = 0.0


def _float_fb(name, ebits, mbits, fmax, bias):
    return _FB(name, "float", ebits, mbits, fmax, 1 - bias, bits_per_element=1 + ebits + mbits)


_E4M3 = _float_fb("fp8_e4m3", 4, 3, 448.0, 7)
_E2M1 = _float_fb("fp4_e2m1", 2, 1, 6.0, 1)

FALLBACK_FORMATS: dict[str, _FB] = {
    f.name: f
    for f in [
        _FB("fp32", "float", 8, 23, float(np.finfo(np.float32).max), -126, bits_per_element=32),
        _float_fb("bf16", 8, 7, 3.3895313892515355e38, 127),
        _float_fb("fp16", 5, 10, 65504.0, 15),
        _E4M3,
        _float_fb("fp8_e5m2", 5, 2, 57344.0, 15),
        _float_fb("fp6_e2m3", 2, 3, 7.5, 1),
        _float_fb("fp6_e3m2", 3, 2, 28.0, 3),
        _E2M1,
        _FB("mxfp8_e4m3", "mx", 4, 3, 448.0, -6, block=32, bits_per_element=8.25),
        _FB("mxfp8_e5m2", "mx", 5, 2, 57344.0, -14, block=32, bits_per_element=8.25),
        _FB("mxfp6_e2m3", "mx", 2, 3, 7.5, 0, block=32, bits_per_element=6.25),
        _FB("mxfp6_e3m2", "mx", 3, 2, 28.0, -2, block=32, bits_per_element=6.25),
        _FB("mxfp4", "mx", 2, 1, 6.0, 0, block=32, bits_per_element=4.25),
        _FB("nvfp4", "nvfp4", 2, 1, 6.0, 0, block=16, bits_per_element=4.5),
        _FB("int8_pc", "intblk", qmax=127, block=-1, bits_per_element=8.0),
        _FB("int4_pc", "intblk", qmax=7, block=-1, bits_per_element=4.0),
        _FB("int8_pt", "intblk", qmax=127, block=None, bits_per_element=8.0),
        _FB("int4_g128", "intblk", qmax=7, block=128, bits_per_element=4.0 + 32 / 128),
        _FB("int4_g32", "intblk", qmax=7, block=32, bits_per_element=4.0 + 32 / 32),
        _FB("int8_g128", "intblk", qmax=127, block=128, bits_per_element=8.0 + 32 / 128),
    ]
}
_ALIASES = {"fp8": "fp8_e4m3", "e4m3": "fp8_e4m3", "float8_e4m3fn": "fp8_e4m3", "mxfp8": "mxfp8_e4m3"}


@lru_cache(maxsize=1)
def _formats_module():
    try:
        import lowbit.formats as lf

        if hasattr(lf, "get_format") and hasattr(lf, "quantize"):
            return lf
    except ImportError:
        pass
    return None


def using_fallback_formats() -> bool:
    """True when ``lowbit.formats`` is not importable and the local fallback is in use."""
    return _formats_module() is None


def list_format_names() -> list[str]:
    """Canonical format names accepted by :func:`resolve_format`."""
    lf = _formats_module()
    if lf is not None and hasattr(lf, "list_formats"):
        return list(lf.list_formats())
    return sorted(FALLBACK_FORMATS)


def resolve_format(fmt):
    """Format object for ``fmt`` (registry name or object); ``None`` stays ``None`` (= no
    quantisation). Unknown names raise ValueError listing the allowed names."""
    if fmt is None or not isinstance(fmt, str):
        return fmt
    lf = _formats_module()
    if lf is not None:
        return lf.get_format(fmt)
    name = _ALIASES.get(fmt.lower(), fmt.lower())
    if name not in FALLBACK_FORMATS:
        raise ValueError(
            f"unknown format {fmt!r}; allowed: {', '.join(sorted(FALLBACK_FORMATS))}"
        )
    return FALLBACK_FORMATS[name]


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


def _round_float(x: np.ndarray, mbits: int, emin: int, fmax: float) -> np.ndarray:
    """RNE to a float grid with ``mbits`` fraction bits, min exponent ``emin`` (subnormals
    kept), saturating at +-fmax. float64 in/out."""
    ax = np.abs(x)
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(np.where(ax > 0, ax, 1.0)))
    e = np.maximum(e, emin)
    step = np.exp2(e - mbits)
    q = np.round(x / step) * step  # np.round: round half to even
    return np.clip(q, -fmax, fmax)


def _blocks(x: np.ndarray, block):
    """Reshape (..., K) to (..., nb, b) with zero padding; return view and K."""
    k = x.shape[-1]
    if block is None:
        return x.reshape(1, -1), k
    b = k if block == -1 else block
    nb = -(-k // b)
    pad = nb * b - k
    if pad:
        x = np.concatenate([x, np.zeros(x.shape[:-1] + (pad,), x.dtype)], axis=-1)
    return x.reshape(x.shape[:-1] + (nb, b)), k


def _fallback_quantize(x: np.ndarray, f: _FB) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if f.kind == "float":
        if f.name == "fp32":
            return x.astype(np.float32).astype(np.float64)
        return _round_float(x, f.mbits, f.emin, f.fmax)
    shape = x.shape
    xb, k = _blocks(x, f.block)
    amax = np.max(np.abs(xb), axis=-1, keepdims=True)
    if f.kind == "mx":
        emax_elem = math.floor(math.log2(f.fmax))
        with np.errstate(divide="ignore"):
            se = np.floor(np.log2(np.where(amax > 0, amax, 1.0))) - emax_elem
        scale = np.exp2(np.clip(se, -127, 127))
        q = _round_float(xb / scale, f.mbits, f.emin, f.fmax) * scale
    elif f.kind == "nvfp4":
        tamax = float(np.max(np.abs(x))) if x.size else 0.0
        sg = float(np.float32(tamax / (6.0 * 448.0))) if tamax > 0 else 1.0
        sb = _round_float(np.minimum(amax / 6.0 / sg, 448.0), 3, -6, 448.0)
        enc = np.where(sb > 0, sb * sg, 1.0)
        q = _round_float(np.clip(xb / enc, -6, 6), 1, 0, 6.0) * enc
    else:  # symmetric narrow int with fp32 scale amax / qmax
        scale = np.where(amax > 0, amax / f.qmax, 1.0).astype(np.float32).astype(np.float64)
        q = np.clip(np.round(xb / scale), -f.qmax, f.qmax) * scale
    q = q.reshape(q.shape[:-2] + (-1,))[..., :k] if f.block is not None else q
    return q.reshape(shape)


def quantize(x: np.ndarray, fmt, axis: int = -1) -> np.ndarray:
    """Quantise ``x`` to ``fmt`` (blocks / channels along ``axis``); float64 result.
    ``fmt=None`` returns ``x`` unchanged (float64)."""
    x = np.asarray(x, dtype=np.float64)
    if fmt is None:
        return x
    lf = _formats_module()
    if lf is not None:
        return np.asarray(lf.quantize(x, fmt, axis=axis), dtype=np.float64)
    f = resolve_format(fmt)
    if axis not in (-1, x.ndim - 1):
        return np.moveaxis(_fallback_quantize(np.moveaxis(x, axis, -1), f), -1, axis)
    return _fallback_quantize(x, f)


# ----------------------------------------------------------------------------- configs

ACCUMULATORS = ("exact", "fp32", "fp16", "bf16", "fp32_chunk32", "int32")


@dataclass(frozen=True)
class LocalQuantConfig:
    """Fallback for ``lowbit.sim.qconfig.QuantConfig``: weight / activation format (object,
    name or None = keep float) and accumulator name."""

    weight: object = None
    act: object = None
    accum: str = "exact"


@lru_cache(maxsize=1)
def _qconfig_module():
    try:
        import lowbit.sim.qconfig as qc

        if hasattr(qc, "QuantConfig"):
            return qc
    except ImportError:
        pass
    return None


def check_accum(accum: str) -> str:
    """Validate an accumulator name; ValueError listing the allowed names."""
    qc = _qconfig_module()
    if qc is not None and hasattr(qc, "parse_accum"):
        qc.parse_accum(accum)
        return accum
    if accum not in ACCUMULATORS:
        raise ValueError(f"unknown accumulator {accum!r}; allowed: {', '.join(ACCUMULATORS)}")
    return accum


def make_config(weight, act=None, accum: str = "exact"):
    """A QuantConfig for ``weight``/``act`` formats (names or objects; ``act`` defaults to
    ``weight``) and accumulator name. Uses ``lowbit.sim.qconfig`` when present."""
    act = weight if act is None else act
    check_accum(accum)
    w, a = resolve_format(weight), resolve_format(act)
    qc = _qconfig_module()
    if qc is not None:
        acc = qc.parse_accum(accum) if hasattr(qc, "parse_accum") else accum
        return qc.QuantConfig(weight=w, act=a, accum=acc)
    return LocalQuantConfig(weight=w, act=a, accum=accum)


def config_formats(cfg):
    """(weight_fmt, act_fmt, accum_name) of a config (theirs or local); ``None`` -> float."""
    if cfg is None:
        return None, None, "exact"
    acc = getattr(cfg, "accum", "exact")
    acc_name = acc if isinstance(acc, str) else getattr(acc, "name", str(acc))
    return resolve_format(cfg.weight), resolve_format(cfg.act), acc_name


def is_identity_format(fmt) -> bool:
    return fmt is None or format_name(fmt) in ("fp32", "none")


# ----------------------------------------------------------------------------- GEMM


def _accum_format(accum: str):
    name = {"fp16": "fp16", "bf16": "bf16"}.get(accum)
    return resolve_format(name) if name else None


def qmatmul_nt(xq: np.ndarray, wq: np.ndarray, accum: str = "exact") -> np.ndarray:
    """``xq @ wq.T`` for already-quantised operands, summed in accumulator ``accum``.

    xq: (N, K), wq: (M, K) -> (N, M) float64. ``exact`` = float64 BLAS (products of <= 24-bit
    significands are exact; the float64 sum is the reference), ``fp32`` = float32 BLAS, ``int32`` = exact (the integer codes fit), fp16/bf16 = sequential
    K-loop rounding the running sum after each add (fallback only).
    """
    if accum in ("exact", "int32"):
        return xq @ wq.T
    if accum in ("fp32", "fp32_chunk32"):
        return (xq.astype(np.float32) @ wq.astype(np.float32).T).astype(np.float64)
    f = _accum_format(accum)
    if f is None:
        raise ValueError(f"unknown accumulator {accum!r}; allowed: {', '.join(ACCUMULATORS)}")
    acc = np.zeros((xq.shape[0], wq.shape[0]))
    for k in range(xq.shape[1]):
        acc = quantize(acc + np.outer(xq[:, k], wq[:, k]), f)
    return acc


@lru_cache(maxsize=1)
def _core():
    """(lowbit.sim.gemm, lowbit.sim.qconfig) or None when the sim core is missing."""
    try:
        from lowbit.sim import gemm, qconfig

        if hasattr(gemm, "gemm_nt") and hasattr(qconfig, "prepare"):
            return gemm, qconfig
    except ImportError:
        pass
    return None


def using_core() -> bool:
    """True when layers run on the sim core (lowbit.sim.gemm); False = local fallback."""
    return _core() is not None


def prepare_weight(w2d: np.ndarray, cfg, values: np.ndarray | None = None):
    """Weight operand of a GEMM for (M, K) float weights ``w2d`` quantised per ``cfg.weight``
    (RTN, blocks / channels along K); ``values``: already quantised (e.g. GPTQ) dequantised
    weights, used as they are. ``cfg=None``: the float weights."""
    w_fmt, _, _ = config_formats(cfg)
    w2d = np.asarray(w2d, np.float64)
    if cfg is None:
        return w2d
    core = _core()
    if core is not None:
        return core[1].prepare(np.asarray(values if values is not None else w2d, np.float64),
                               None if values is not None else w_fmt)
    return np.asarray(values, np.float64) if values is not None else quantize(w2d, w_fmt)


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
        _, a_fmt, accum = config_formats(cfg)
        core = _core()
        if core is not None and not isinstance(wop, np.ndarray):
            a = core[1].prepare(x2d, a_fmt)
            xq = a.values
            y = core[0].gemm_nt(a, wop, cfg.accum, getattr(cfg, "dot", "auto"))
        else:
            xq = quantize(x2d, a_fmt, axis=-1)
            y = qmatmul_nt(xq, weight_values(wop), accum)
    if bias is not None:
        y = y + np.asarray(bias, np.float64)
    return y, xq
