"""Per-layer sensitivity estimators: ``s[l, f]`` = damage of running layer l in candidate f.

All three return a :class:`SensitivityTable` (L, F), lower = less damage, additive over layers
(the ILP objective is ``sum_l s[l, f_l]``). Weights are quantised along K with round-to-nearest
(the workload's ``quantized_weights``), activations per the candidate's format along K.

``direct`` (emulated, one layer at a time). Only layer l is quantised to f (all other layers
float); ``target="output"`` (default): noise-to-signal ratio of the model output on the
calibration inputs, ``||y_q - y||^2 / ||y||^2``; ``target="metric"``: drop of the workload
metric on its evaluation set, ``metric(float) - metric(l in f)`` (sign flipped when lower is
better).

``hessian`` (HAWQ-V2/V3 style). ``s = Tr(H_W)/n_W * ||W - Q(W)||^2 + Tr(F_X)/n_X *
||X - Q(X)||^2`` with H_W the Hessian of the mean cross-entropy w.r.t. the layer's weights,
estimated by Hutchinson's method (Rademacher probes v over all layers at once, per-layer
``v_l . (Hv)_l``, unbiased for Tr(H_ll)); Hessian-vector products by central finite differences
of the workload's analytic gradients, ``Hv ~ (g(W + e v) - g(W - e v)) / 2e`` (``e`` = ``eps_rel``
x rms of each layer's weights). The activation term uses the empirical Fisher of the GEMM input
X (trace = N * sum_rows ||dL/dX_row||^2, from ``output_grads`` @ W) since the workloads expose
no activation-perturbation hook.  Workloads with ``hessian_traces()`` (PyTorch models,
:class:`lowbit.sim.torch.TorchWorkload`) give exact Hessian-vector products by double backward
instead of finite differences; their score is the weight term only (HAWQ-V2). Labels: ``wl.calibration_labels()`` when present, else the
float model's argmax (self-distillation). Workloads without ``loss_and_grads`` fall back to the
layer-local Gauss-Newton Hessian of ``||XW^T - Y||^2``: ``s = (||X||^2 ||dW||^2 + ||W||^2 ||dX||^2)
/ (K ||Y||^2)`` (``details["hessian"] = "local"``).

``proxy`` (no model run beyond capturing float inputs). ``s = ||dW||^2/||W||^2 + ||dX||^2/||X||^2``:
the sum of the weight and activation noise-to-signal ratios (``10^(-SQNR/10)``), a first-order
estimate of the layer output NSR.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

import numpy as np

from lowbit.formats import quantize

from .candidates import Candidate

SENSITIVITY_METRICS = ("direct", "hessian", "proxy")


@dataclass
class SensitivityTable:
    values: np.ndarray  # (L, F)
    layers: list
    candidates: list
    metric: str
    details: dict = field(default_factory=dict)

    def rows(self) -> list[dict]:
        return [{"layer": ln, "candidate": c, "sensitivity": float(self.values[i, j])}
                for i, ln in enumerate(self.layers) for j, c in enumerate(self.candidates)]


def _calib(wl, n: int | None):
    x = wl.calibration_data()
    return x if n is None else x[:n]


def _nsr(ref, test) -> float:
    ref, test = np.asarray(ref, np.float64), np.asarray(test, np.float64)
    den = float(np.sum(ref * ref))
    num = float(np.sum((test - ref) ** 2))
    if not np.isfinite(num):
        return 1e30
    return num / den if den > 0 else num


def _quant(x, fmt):
    """Quantise-dequantise along the last axis (float64 out)."""
    return np.asarray(quantize(np.asarray(x, np.float64), fmt, axis=-1), np.float64)


# ------------------------------------------------------------------------------ direct


def direct_sensitivity(wl, candidates: list[Candidate], target: str = "output",
                       n_calib: int | None = 256, accum: str = "exact",
                       quantizer: str = "rtn") -> SensitivityTable:
    if target not in ("output", "metric"):
        raise ValueError(f"direct target {target!r}; allowed: output, metric")
    layers = [s.name for s in wl.layers()]
    vals = np.zeros((len(layers), len(candidates)))
    if target == "output":
        x = _calib(wl, n_calib)
        ref = wl.forward(x, None)
    else:
        ref_m = float(wl.evaluate(None)["metric"])
        sign = 1.0 if getattr(wl, "higher_is_better", True) else -1.0
    for j, c in enumerate(candidates):
        cfg = c.config(accum)
        for i, ln in enumerate(layers):
            if target == "output":
                vals[i, j] = _nsr(ref, wl.forward(x, {ln: cfg}, quantizer))
            else:
                vals[i, j] = sign * (ref_m - float(wl.evaluate({ln: cfg}, quantizer)["metric"]))
    return SensitivityTable(vals, layers, [c.name for c in candidates], "direct",
                            {"target": target, "n_calib": n_calib})


# ------------------------------------------------------------------------------ proxy


def proxy_sensitivity(wl, candidates: list[Candidate], n_calib: int | None = 256,
                      max_rows: int = 8192, seed: int = 0) -> SensitivityTable:
    specs = wl.layers()
    xin = wl.capture_float_inputs(_calib(wl, n_calib))
    rng = np.random.default_rng(seed)
    vals = np.zeros((len(specs), len(candidates)))
    for i, s in enumerate(specs):
        w = s.weight_2d.astype(np.float64)
        x = np.asarray(xin[s.name], np.float64)
        if x.shape[0] > max_rows:
            x = x[np.sort(rng.choice(x.shape[0], max_rows, replace=False))]
        for j, c in enumerate(candidates):
            vals[i, j] = _nsr(w, _quant(w, c.weight)) + _nsr(x, _quant(x, c.act))
    return SensitivityTable(vals, [s.name for s in specs], [c.name for c in candidates], "proxy",
                            {"n_calib": n_calib})


# ------------------------------------------------------------------------------ hessian


def with_weights(wl, weights: dict):
    """A shallow copy of a LayerwiseWorkload whose layers use ``weights`` {layer: array of the
    layer's weight shape} (others unchanged); caches are fresh, the original is untouched."""
    w2 = copy.copy(wl)
    w2._layers = [dataclasses.replace(s, weight=np.asarray(weights[s.name], dtype=np.float64))
                  if s.name in weights else s for s in wl.layers()]
    w2._wq_cache = {}
    w2._ref = None
    return w2


def hutchinson_traces(grad_fn, params: dict, n_probe: int = 8, eps_rel: float = 1e-4,
                      seed: int = 0, subset=None) -> dict:
    """Per-block Hutchinson trace estimates of the Hessian of a scalar loss.

    grad_fn(params) -> {name: gradient (same shape)}; params {name: array}. Rademacher probes
    v over the blocks in ``subset`` (default all), Hv by central differences with step
    ``eps_rel * rms(block)`` per block. Returns {name: (mean, standard error)} of ``v_b.(Hv)_b``.
    """
    rng = np.random.default_rng(seed)
    names = list(subset or params)
    step = {n: eps_rel * max(float(np.sqrt(np.mean(np.square(params[n])))), 1e-12) for n in names}
    est = {n: [] for n in names}
    for _ in range(n_probe):
        v = {n: rng.choice([-1.0, 1.0], size=np.shape(params[n])) for n in names}
        plus = dict(params, **{n: params[n] + step[n] * v[n] for n in names})
        minus = dict(params, **{n: params[n] - step[n] * v[n] for n in names})
        gp, gm = grad_fn(plus), grad_fn(minus)
        for n in names:
            hv = (np.asarray(gp[n]) - np.asarray(gm[n])) / (2.0 * step[n])
            est[n].append(float(np.sum(v[n] * hv)))
    return {n: (float(np.mean(e)), float(np.std(e, ddof=1) / np.sqrt(len(e))) if len(e) > 1
                else float("nan")) for n, e in est.items()}


def _labels(wl, x):
    f = getattr(wl, "calibration_labels", None)
    if callable(f):
        y = np.asarray(f())
        if len(y) >= len(x):
            return y[: len(x)]
    return np.asarray(wl.forward(x, None)).argmax(-1)


def layer_hessian_traces(wl, n_calib: int = 64, n_probe: int = 16, eps_rel: float = 1e-4,
                         seed: int = 0, subset=None) -> dict:
    """{layer: (Tr(H_W) estimate, standard error)} of the mean cross-entropy on the first
    ``n_calib`` calibration inputs (needs ``wl.loss_and_grads``)."""
    x = _calib(wl, n_calib)
    y = _labels(wl, x)
    params = {s.name: s.weight.astype(np.float64) for s in wl.layers()}

    def grad_fn(p):
        return wl_grads(with_weights(wl, p), x, y)

    return hutchinson_traces(grad_fn, params, n_probe, eps_rel, seed, subset)


def wl_grads(wl, x, y) -> dict:
    return wl.loss_and_grads(x, y, None)["weight_grads"]


def hessian_sensitivity(wl, candidates: list[Candidate], n_calib: int = 64, n_probe: int = 16,
                        eps_rel: float = 1e-4, seed: int = 0, max_rows: int = 8192,
                        activations: bool = True) -> SensitivityTable:
    specs = wl.layers()
    names = [s.name for s in specs]
    x = _calib(wl, n_calib)
    rng = np.random.default_rng(seed)
    vals = np.zeros((len(specs), len(candidates)))
    details = {"n_calib": n_calib, "n_probe": n_probe}
    if callable(getattr(wl, "hessian_traces", None)):
        # autograd workloads (lowbit.sim.torch.TorchWorkload): exact HVPs by double backward,
        # weight term only (HAWQ-V2); a workload without a loss raises ValueError here
        tr = wl.hessian_traces(n_calib=n_calib, n_probe=n_probe, seed=seed)
        details.update(hessian="hutchinson-hvp", activation_term="none",
                       traces={k: v[0] for k, v in tr.items()},
                       trace_stderr={k: v[1] for k, v in tr.items()})
        for i, s in enumerate(specs):
            w = s.weight_2d.astype(np.float64)
            h_w = max(tr[s.name][0], 0.0) / w.size
            for j, c in enumerate(candidates):
                vals[i, j] = h_w * float(np.sum((_quant(w, c.weight) - w) ** 2))
    elif hasattr(wl, "loss_and_grads"):
        tr = layer_hessian_traces(wl, n_calib, n_probe, eps_rel, seed)
        y = _labels(wl, x)
        g = wl.loss_and_grads(x, y, None)
        n = len(x)
        details.update(hessian="hutchinson-fd", traces={k: v[0] for k, v in tr.items()},
                       trace_stderr={k: v[1] for k, v in tr.items()})
        cap: dict = {}
        wl.forward(x, None, capture=cap)
        fisher = {}
        for s in specs:
            gx = np.asarray(g["output_grads"][s.name]) @ s.weight_2d.astype(np.float64)
            fisher[s.name] = n * float(np.sum(gx * gx)) / gx.size
        details["act_fisher_per_elem"] = fisher
        for i, s in enumerate(specs):
            w = s.weight_2d.astype(np.float64)
            xi = np.asarray(cap[s.name]["input"], np.float64)
            h_w = max(tr[s.name][0], 0.0) / w.size
            for j, c in enumerate(candidates):
                dw = float(np.sum((_quant(w, c.weight) - w) ** 2))
                dx = float(np.sum((_quant(xi, c.act) - xi) ** 2)) if activations else 0.0
                vals[i, j] = h_w * dw + fisher[s.name] * dx
    else:
        details["hessian"] = "local"
        xin = wl.capture_float_inputs(x)
        for i, s in enumerate(specs):
            w = s.weight_2d.astype(np.float64)
            xi = np.asarray(xin[s.name], np.float64)
            if xi.shape[0] > max_rows:
                xi = xi[np.sort(rng.choice(xi.shape[0], max_rows, replace=False))]
            yy = float(np.sum((xi @ w.T) ** 2))
            nx, nw, k = float(np.sum(xi * xi)), float(np.sum(w * w)), w.shape[1]
            for j, c in enumerate(candidates):
                dw = float(np.sum((_quant(w, c.weight) - w) ** 2))
                dx = float(np.sum((_quant(xi, c.act) - xi) ** 2)) if activations else 0.0
                vals[i, j] = (nx * dw + nw * dx) / (k * max(yy, 1e-300))
    return SensitivityTable(vals, names, [c.name for c in candidates], "hessian", details)


def compute_sensitivity(wl, candidates: list[Candidate], metric: str = "direct", **kw):
    """Dispatch to the estimator named ``metric`` (direct | hessian | proxy)."""
    if metric == "direct":
        return direct_sensitivity(wl, candidates, **kw)
    if metric == "hessian":
        return hessian_sensitivity(wl, candidates, **kw)
    if metric == "proxy":
        return proxy_sensitivity(wl, candidates, **kw)
    raise ValueError(f"--metric: unknown {metric!r}; allowed: {', '.join(SENSITIVITY_METRICS)}")
