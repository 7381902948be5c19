"""The ``Workload`` protocol, ``LayerSpec`` and the workload registry.

A workload is a real network with a fixed evaluation set and a scalar quality metric. Its
quantisable layers are GEMMs (``linear``: ``y = x @ W.T + b`` with W (out, in); ``conv2d``:
NCHW / OIHW, run as an implicit GEMM over im2col patches so the reduction axis K = C*kh*kw).
Every layer can carry its own :class:`QuantConfig` (weight format, activation format,
accumulator); ``None`` / missing layers run in float64 (the "fp32" reference is float32
weights evaluated in float64).

Protocol (what the sweep and the mixed-precision search rely on)::

    wl = get_workload("digits-cnn")
    wl.name, wl.version, wl.metric_name        # str, str, e.g. "top1"
    wl.layers()                                 # list[LayerSpec], in execution order
    wl.calibration_data()                       # model inputs used by GPTQ / sensitivity
    wl.forward(x, configs, quantizer="rtn", capture=None)  # model output for inputs x
    wl.evaluate(configs, quantizer="rtn")       # {"metric", "metric_name", "per_layer_sqnr",
                                                #  "metrics", "samples", ...}
    wl.fidelity(out, ref_out)                   # {name: SampleMetric}: task + fidelity metrics

``quantizer`` is a spec of :mod:`lowbit.sim.quantizers.compose` (``rtn``, ``gptq``, ``mrgptq``,
``smoothquant``, ``hadamard+gptq``, ...). ``evaluate`` returns, besides the task ``metric``,
every metric of ``fidelity`` with a seeded bootstrap 95% interval (``metrics[name] = {"value",
"lo", "hi", "n", ...}``) and the per-sample numerators / denominators (``samples``) from which
the sweep report computes paired differences between formats (:mod:`lowbit.sim.stats`).

``configs`` is a single QuantConfig (all layers), a ``dict[layer_name, QuantConfig]`` (missing
layers stay float) or ``None``. ``capture`` is a dict that ``forward`` fills with
``{layer: {"input": float GEMM input (N, K), "input_q": the quantised operand actually
multiplied, "output": (N, M) incl. bias}}``.

Subclass :class:`LayerwiseWorkload` and implement ``_build_layers``, ``_forward`` (calling
``self._gemm(name, x2d, ctx)`` for every quantisable layer), ``eval_inputs``, ``_metric`` and
``fidelity``;
weight quantisation (RTN / GPTQ, cached), activation capture and per-layer SQNR come for free.
Register with ``register_workload(name, factory)``; see ``examples/custom_workload.py``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..engine import gemm_nt
from ..fidelity import metrics_json
from ..operands import Operand, element_operand, prepare, prepare_prequantized
from ..quantizers.compose import WEIGHT_METHODS, QuantizerSpec, parse_quantizer, quantize_layer

QUANTIZERS = WEIGHT_METHODS  # base methods; any compose spec (hadamard+gptq, ...) is accepted


@dataclass
class LayerSpec:
    """One quantisable GEMM layer.

    weight: float32 array, (out, in) for linear, (O, I, kh, kw) for conv2d.
    macs: multiply-accumulates per inference (one sample / one sentence of ``tokens`` tokens).
    in_shape / out_shape: per-sample activation shapes (without the batch dimension).
    """

    name: str
    kind: str  # "linear" | "conv2d"
    weight: np.ndarray
    bias: np.ndarray | None
    macs: int
    in_shape: tuple
    out_shape: tuple
    attrs: dict = field(default_factory=dict)  # stride, padding, ...

    @property
    def weight_2d(self) -> np.ndarray:
        """The weight as the (M, K) GEMM operand. conv2d: (O, kh*kw*I) in (kh, kw, c) order
        (channels fastest, like ``lowbit.sim.gemm.qconv2d`` / NHWC implicit GEMM)."""
        if self.kind == "conv2d":
            return self.weight.transpose(0, 2, 3, 1).reshape(self.weight.shape[0], -1)
        return self.weight.reshape(self.weight.shape[0], -1)

    def grad_from_2d(self, g2d: np.ndarray) -> np.ndarray:
        """Inverse of :attr:`weight_2d` (e.g. for a weight gradient)."""
        if self.kind == "conv2d":
            o, i, kh, kw = self.weight.shape
            return g2d.reshape(o, kh, kw, i).transpose(0, 3, 1, 2)
        return g2d.reshape(self.weight.shape)

    @property
    def params(self) -> int:
        return int(self.weight.size)


def sqnr_db(ref: np.ndarray, test: np.ndarray) -> float:
    """10*log10(sum(ref^2) / sum((ref-test)^2)) in dB; +inf when identical, nan if non-finite."""
    ref = np.asarray(ref, np.float64)
    err = np.asarray(test, np.float64) - ref
    if not np.all(np.isfinite(err)):
        return float("nan")
    pe, ps = float(np.sum(err * err)), float(np.sum(ref * ref))
    if pe == 0.0:
        return float("inf")
    if ps == 0.0:
        return float("-inf")
    return 10.0 * np.log10(ps / pe)


def nonfinite_count(v) -> int | None:
    """Inf/NaN values in a numeric array / tensor; None for anything else."""
    try:
        a = np.asarray(v.detach().cpu() if hasattr(v, "detach") else v)
    except (TypeError, ValueError, RuntimeError):
        return None
    if a.dtype.kind not in "fc":
        return None
    return int(a.size - np.count_nonzero(np.isfinite(a)))


class OutputCapture(dict):
    """A ``capture`` dict for :meth:`LayerwiseWorkload.forward` that keeps only each layer's
    output (``{layer: {"output": y}}``): the float reference kept for the per-layer SQNR of
    every later point (the inputs and quantised inputs of all layers of MiniLM were ~5 GB)."""

    def __setitem__(self, name, record):
        super().__setitem__(name, {"output": record["output"]})


class LayerErrorCapture(dict):
    """A ``capture`` dict that keeps, per layer, only the output SQNR (dB) against the float
    reference capture ``ref`` and the count of non-finite output values
    (``{layer: {"sqnr": dB, "nonfinite": n}}``), not the arrays: a quantised run holds one
    layer's output at a time."""

    def __init__(self, ref: dict):
        super().__init__()
        self._ref = ref

    def __setitem__(self, name, record):
        y = record["output"]
        super().__setitem__(name, {"sqnr": sqnr_db(self._ref[name]["output"], y),
                                   "nonfinite": nonfinite_count(y) or 0})


class _Ctx:
    """Per-forward state: per-layer configs, quantised weights, optional capture dict."""

    def __init__(self, configs, wq, capture, lq=None):
        self.configs, self.wq, self.capture, self.lq = configs, wq, capture, lq


class LayerwiseWorkload:
    """Base class implementing the protocol around a layer-by-layer numpy forward pass."""

    name: str = "workload"
    version: str = "1"
    metric_name: str = "metric"
    higher_is_better: bool = True

    def __init__(self):
        self._layers: list[LayerSpec] | None = None
        self._wq_cache: dict = {}
        self._ref: dict | None = None
        self._lock = threading.RLock()

    # -- to implement --------------------------------------------------------------------
    def _build_layers(self) -> list[LayerSpec]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _forward(self, x, ctx: _Ctx):  # pragma: no cover - abstract
        """Run the network on inputs ``x``; call ``self._gemm(name, x2d, ctx)`` per layer."""
        raise NotImplementedError

    def eval_inputs(self):  # pragma: no cover - abstract
        """Inputs of the fixed evaluation set."""
        raise NotImplementedError

    def _metric(self, out, ref_out) -> dict:  # pragma: no cover - abstract
        """``{"metric": float, ...}`` from the model output on ``eval_inputs()`` (and the
        float reference output ``ref_out``)."""
        raise NotImplementedError

    def calibration_data(self):
        """Inputs used to calibrate GPTQ (default: the evaluation inputs)."""
        return self.eval_inputs()

    def fidelity(self, out, ref_out) -> dict:
        """``{name: lowbit.sim.fidelity.SampleMetric}`` on the evaluation set: the task metric
        under ``metric_name`` first, then fidelity metrics against the float output ``ref_out``
        (default: none)."""
        return {}

    def assumptions(self) -> list[str]:
        """Sentences the reports print about this workload (evaluation set, metric)."""
        return []

    # -- protocol ------------------------------------------------------------------------
    def layers(self) -> list[LayerSpec]:
        if self._layers is None:
            self._layers = self._build_layers()
        return self._layers

    def layer(self, name: str) -> LayerSpec:
        for spec in self.layers():
            if spec.name == name:
                return spec
        raise ValueError(
            f"unknown layer {name!r} of workload {self.name}; "
            f"layers: {', '.join(s.name for s in self.layers())}"
        )

    def layer_configs(self, configs) -> dict:
        """Normalise ``configs`` to ``{layer_name: QuantConfig | None}`` for every layer."""
        names = [s.name for s in self.layers()]
        if configs is None:
            return dict.fromkeys(names)
        if isinstance(configs, dict):
            unknown = set(configs) - set(names)
            if unknown:
                raise ValueError(
                    f"unknown layer(s) {sorted(unknown)} for workload {self.name}; "
                    f"layers: {', '.join(names)}"
                )
            return {n: configs.get(n) for n in names}
        return dict.fromkeys(names, configs)

    def layer_quant(self, configs, quantizer: str = "rtn") -> dict:
        """``{layer: LayerQuant}``: each quantised layer's weight after the quantiser's
        transforms, GPTQ values and run-time input transform (:mod:`~lowbit.sim.quantizers.
        compose`); float layers (config None) are not transformed. Cached per layer, weight
        format and quantiser."""
        q = parse_quantizer(quantizer)
        cfgs = self.layer_configs(configs)
        out = {}
        for spec in self.layers():
            cfg = cfgs[spec.name]
            w_fmt = None if cfg is None else cfg.weight
            if cfg is None:
                q_l = QuantizerSpec()
            elif _rounds_nothing(w_fmt):  # transforms only, nothing to round
                q_l = dataclasses.replace(q, method="rtn")
            else:
                q_l = q
            key = ("lq", spec.name, cfg is None, _fmt_key(w_fmt), q_l.name)
            with self._lock:
                if key not in self._wq_cache:
                    calib = (self.calibration_inputs()[spec.name] if q_l.needs_calibration
                             else None)
                    self._wq_cache[key] = quantize_layer(
                        spec.weight_2d.astype(np.float64), calib,
                        None if _rounds_nothing(w_fmt) else w_fmt, q_l, spec.name)
            out[spec.name] = self._wq_cache[key]
        return out

    def quantized_weights(self, configs, quantizer: str = "rtn") -> dict:
        """``{layer: weight Operand}`` (:class:`~lowbit.sim.operands.Operand`, (M, K); its
        ``values`` are the dequantised weights in the quantiser's transformed basis, see
        :meth:`layer_quant`), cached per layer, weight format and quantizer.  Float layers get
        their float weights; RTN weights are quantised along K by the format's rule; GPTQ
        weights keep their block scales, so block formats use the block dot product exactly as
        RTN weights do."""
        cfgs = self.layer_configs(configs)
        lqs = self.layer_quant(cfgs, quantizer)
        qname = parse_quantizer(quantizer).name
        out = {}
        for spec in self.layers():
            cfg = cfgs[spec.name]
            w_fmt = None if cfg is None else cfg.weight
            key = ("w", spec.name, cfg is None, _fmt_key(w_fmt), qname)
            if key not in self._wq_cache:
                self._wq_cache[key] = _weight_operand(lqs[spec.name], w_fmt)
            out[spec.name] = self._wq_cache[key]
        return out

    def forward(self, x, configs=None, quantizer: str = "rtn", capture: dict | None = None):
        """Model output for inputs ``x`` with per-layer ``configs``; fills ``capture``."""
        cfgs = self.layer_configs(configs)
        ctx = _Ctx(cfgs, self.quantized_weights(cfgs, quantizer), capture,
                   self.layer_quant(cfgs, quantizer))
        return self._forward(x, ctx)

    def capture_float_inputs(self, x) -> dict:
        """``{layer: (N, K) GEMM input}`` of the float network on inputs ``x``."""
        cap: dict = {}
        self.forward(x, None, capture=cap)
        return {k: v["input"] for k, v in cap.items()}

    def calibration_inputs(self) -> dict:
        """``{layer: (N, K) float GEMM input}`` on :meth:`calibration_data` (cached). GPTQ uses
        these float-network inputs for every layer (not the inputs of a partly quantised
        network)."""
        with self._lock:
            if getattr(self, "_calib", None) is None:
                self._calib = self.capture_float_inputs(self.calibration_data())
            return self._calib

    def reference(self) -> dict:
        """Float run on the evaluation set: ``{"out", "capture", "metric"}`` (cached)."""
        with self._lock:
            if self._ref is None:
                cap = OutputCapture()
                out = self.forward(self.eval_inputs(), None, capture=cap)
                self._ref = {"out": out, "capture": cap, "metric": self._metric(out, out),
                             "fidelity": self.fidelity(out, out)}
            return self._ref

    def evaluate(self, configs=None, quantizer: str = "rtn") -> dict:
        """Metric on the evaluation set and per-layer output SQNR (dB, quantised network vs
        float network, errors of earlier layers included)."""
        ref = self.reference()
        cap = LayerErrorCapture(ref["capture"])
        out = self.forward(self.eval_inputs(), configs, quantizer, capture=cap)
        res = dict(self._metric(out, ref["out"]))
        res["metric_name"] = self.metric_name
        res["per_layer_sqnr"] = {n: c["sqnr"] for n, c in cap.items()}
        counts = {n: c["nonfinite"] for n, c in cap.items()} | {"output": nonfinite_count(out)}
        res["nonfinite"] = {n: k for n, k in counts.items() if k}
        fid = self.fidelity(out, ref["out"])
        if fid:
            res["metrics"], res["samples"] = metrics_json(fid)
            task = fid.get(self.metric_name)
            if task is not None:
                res["metric_ci"] = list(task.ci())
        notes = [n for lq in self.layer_quant(configs, quantizer).values() for n in lq.notes]
        if notes:
            res["quantizer_notes"] = notes
        return res

    # -- helpers for subclasses ----------------------------------------------------------
    def _gemm(self, name: str, x2d: np.ndarray, ctx: _Ctx) -> np.ndarray:
        """Quantised GEMM of layer ``name`` on its (N, K) input; returns (N, M) + bias."""
        spec = self.layer(name)
        lq = getattr(ctx, "lq", None)
        xt = lq[name].transform_input(x2d) if lq is not None else x2d
        y, xq = layer_gemm(xt, ctx.wq[name], spec.bias, ctx.configs[name])
        if ctx.capture is not None:
            ctx.capture[name] = {"input": x2d, "input_q": xq, "output": y}
        return y

    def _gemm_grouped(self, name: str, cols: list, ctx: _Ctx) -> np.ndarray:
        """Grouped convolution of layer ``name``: group g multiplies its (N, K) patches
        ``cols[g]`` by rows [g*M/G, (g+1)*M/G) of the layer's quantised (M, K) weight operand
        (as :func:`lowbit.sim.qconv2d` with ``groups``); returns (N, M) + bias.  Capture:
        the groups' inputs stacked along rows (GPTQ then uses one Hessian for all groups)."""
        spec, cfg = self.layer(name), ctx.configs[name]
        wop, g_n = ctx.wq[name], len(cols)
        og = spec.weight.shape[0] // g_n
        lq = getattr(ctx, "lq", None)
        ys, xq = [], []
        for g, x2d in enumerate(cols):
            if lq is not None:  # the layer's input transform (SmoothQuant / Hadamard), per group
                x2d = lq[name].transform_input(x2d)
            y_g, xq_g = layer_gemm(x2d, wop.rows(g * og, (g + 1) * og), None, cfg)
            ys.append(y_g)
            xq.append(xq_g)
        y = np.concatenate(ys, axis=1)
        if spec.bias is not None:
            y = y + np.asarray(spec.bias, np.float64)
        if ctx.capture is not None:
            ctx.capture[name] = {"input": np.concatenate(cols), "input_q": np.concatenate(xq),
                                 "output": y}
        return y



def _rounds_nothing(fmt) -> bool:
    """No rounding of the (float32) weights: no format, or FP32."""
    return fmt is None or fmt.name == "fp32"


def _fmt_key(fmt) -> str:
    return "none" if fmt is None else fmt.name


def _weight_operand(lq, w_fmt) -> Operand:
    """The GEMM operand of a layer prepared by a quantiser (:class:`~lowbit.sim.quantizers.
    compose.LayerQuant`): float weights, RTN by the format's rule, or the quantiser's values
    (GPTQ) with their block scales for symmetric block formats."""
    if w_fmt is None:
        return element_operand(lq.w)
    if lq.values is None:
        return prepare(lq.w, w_fmt)
    if w_fmt.kind == "block" and w_fmt.symmetric and lq.scales is not None:
        return prepare_prequantized(lq.values, w_fmt, scales=lq.scales,
                                    tensor_scale=lq.tensor_scale)
    return prepare_prequantized(lq.values, w_fmt)


def layer_gemm(x2d: np.ndarray, wop: Operand, bias, cfg) -> tuple:
    """``y = Q_act(x2d) @ W.T (+ bias)`` for a weight operand of
    :meth:`LayerwiseWorkload.quantized_weights`.  Returns ``(y (N, M) float64, x_q (N, K)
    float64)``, ``x_q`` the quantised activation operand actually multiplied.  ``cfg=None``:
    float64 BLAS, no rounding model."""
    x2d = np.asarray(x2d, np.float64)
    if cfg is None:
        xq, y = x2d, x2d @ wop.values.T
    else:
        a = prepare(x2d, cfg.act)
        xq = a.values
        y = gemm_nt(a, wop, cfg.accum, cfg.dot, cfg.multiplier)
    if bias is not None:
        y = y + np.asarray(bias, np.float64)
    return y, xq


# ----------------------------------------------------------------------------- registry

# the registry; names are resolved (file / ONNX specs, entry points) by
# lowbit.sim.workloads.external.get_workload / resolve_workload / list_workloads
_REGISTRY: dict[str, Callable[[], object]] = {}
_INSTANCES: dict[str, object] = {}


def register_workload(name: str, factory: Callable[[], object], overwrite: bool = False) -> None:
    """Make ``factory()`` (a class or function returning a Workload) available as ``name``."""
    if not overwrite and name in _REGISTRY and _REGISTRY[name] is not factory:
        raise ValueError(f"workload {name!r} is already registered (pass overwrite=True)")
    _REGISTRY[name] = factory
    _INSTANCES.pop(name, None)


def registered_workloads() -> list[str]:
    """Names registered in this process (built-ins, ``register_workload`` calls and specs
    resolved so far; see :func:`~lowbit.sim.workloads.list_workloads` for all known names)."""
    return sorted(_REGISTRY)


def workload_factory(name: str) -> Callable[[], object]:
    """The factory registered as ``name`` (ValueError listing the registered names; file /
    ONNX specs and entry points are registered by
    :func:`~lowbit.sim.workloads.external.resolve_workload`)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown workload {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def is_builtin_workload(name: str) -> bool:
    """True for workloads that ship with lowbit (factories defined in a ``lowbit.`` module:
    importable in any process, so a spawned worker needs no copy of the factory)."""
    fac = _REGISTRY.get(name)
    return fac is not None and (getattr(fac, "__module__", "") or "").startswith("lowbit.")
