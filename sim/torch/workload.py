"""``TorchWorkload``: your PyTorch model + data + metric as a lowbit workload.

    wl = TorchWorkload(model, calib=x_calib, eval=(x_test, y_test), metric="top1")
    wl.evaluate(make_config("mxfp4", accum="fp32"))          # like any lowbit workload
    register_workload("my-cnn", lambda: wl)                  # then sweep / search / report

It implements the :mod:`lowbit.sim.workloads` protocol on top of
:class:`~lowbit.sim.workloads.LayerwiseWorkload`: ``layers()`` are the weight GEMMs found by one
traced float forward on the evaluation inputs (qualified module names, real shapes, MACs per
sample = traced MACs / batch size), and ``forward`` runs the model in torch with every weight
GEMM sent through the workload's GEMM (so RTN / GPTQ weights, activation quantisation,
accumulator models, capture and per-layer SQNR are the same code as for the built-in workloads).

Numerics: the model is a float64 copy of the user's (``dtype=torch.float64``), as the built-in
workloads evaluate float32 weights in float64.  Layers configured ``None`` run torch's own op
(float layers at torch speed; the float reference output is torch's output bit for bit);
quantised layers run ``lowbit.sim`` (bit-identical to :func:`lowbit.sim.qlinear` /
:func:`~lowbit.sim.qconv2d` on the same operands).  Activation x activation GEMMs (attention)
stay float unless ``matmuls="same"`` (then a single config applies to them too, one
:func:`~lowbit.sim.qmatmul` per batch matrix).

Data: ``calib`` / ``eval`` are model inputs or ``(inputs, targets)``; inputs are a tensor /
array, a tuple of them (positional arguments) or a dict (keyword arguments), sliced along dim 0.
A 2-tuple is always read as ``(inputs, targets)``: pass several positional inputs as
``((ids, mask), targets)`` or ``((ids, mask), None)``.

Metrics (``metric``): ``"top1"`` (argmax of the last output axis vs integer targets, higher is
better; also ``agreement`` with the float model), ``"mse"`` (vs targets, or vs the float output
without targets; lower is better), ``"cosine"`` (mean cosine similarity of each sample's output
with the float output, higher is better), ``"perplexity"`` (exp of the mean token cross-entropy
of logits (..., V) vs integer targets, ``-100`` ignored; lower is better) or a callable
``f(output, targets_or_float_output) -> float`` (numpy arrays; ``higher_is_better`` says which
way it points, default True).

Sensitivity: :meth:`hessian_traces` estimates per-layer Hessian traces of the user's loss by
Hutchinson's method with exact Hessian-vector products (double backward through torch
autograd).  ``loss`` defaults to cross-entropy (top1, perplexity) or MSE (mse with targets);
without a loss (cosine, callables) the Hessian metric raises ValueError naming what is missing.
"""

from __future__ import annotations

import copy
import hashlib

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from lowbit.sim import qmatmul
from lowbit.sim.gemm import im2col
from lowbit.sim.workloads import LayerSpec, LayerwiseWorkload
from lowbit.sim.workloads.generic import (
    IGNORE_INDEX,
    METRICS,
    output_fidelity,
    output_metric,
    weight_layer_name,
)

from .emulate import as_numpy, from_numpy
from .intercept import GemmInterceptor

MATMUL_MODES = ("float", "same")


class ModelInputs:
    """Model call arguments (positional ``args`` and keyword ``kwargs``) that slice along
    dim 0 of every tensor: ``inputs[:64]``, ``len(inputs)``."""

    def __init__(self, args=(), kwargs=None):
        self.args, self.kwargs = tuple(args), dict(kwargs or {})
        first = next((t for t in (*self.args, *self.kwargs.values())
                      if isinstance(t, torch.Tensor) and t.dim() > 0), None)
        if first is None:
            raise ValueError("inputs: need at least one tensor / array with a batch dimension")
        self.n = int(first.shape[0])

    @classmethod
    def of(cls, x, dtype):
        def conv(t):
            if isinstance(t, np.ndarray):
                t = torch.from_numpy(t)
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                t = t.to(dtype)
            return t

        if isinstance(x, ModelInputs):
            return x
        if isinstance(x, dict):
            return cls((), {k: conv(v) for k, v in x.items()})
        if isinstance(x, (tuple, list)):
            return cls(tuple(conv(t) for t in x))
        return cls((conv(x),))

    def __len__(self):
        return self.n

    def __getitem__(self, idx):
        def sl(t):
            return t[idx] if isinstance(t, torch.Tensor) and t.dim() > 0 else t

        return ModelInputs(tuple(sl(t) for t in self.args),
                           {k: sl(v) for k, v in self.kwargs.items()})

    def digest(self, h) -> None:
        for t in (*self.args, *self.kwargs.values()):
            if isinstance(t, torch.Tensor):
                h.update(t.detach().cpu().contiguous().numpy().tobytes())


def _split_data(data, what, dtype):
    """(ModelInputs, targets as a tensor or None) from ``inputs`` or ``(inputs, targets)``."""
    if data is None:
        raise ValueError(f"{what}: give model inputs or (inputs, targets)")
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
        if y is not None and not isinstance(y, torch.Tensor):
            y = torch.as_tensor(np.asarray(y))
        return ModelInputs.of(x, dtype), y
    return ModelInputs.of(data, dtype), None


def output_tensor(out) -> torch.Tensor:
    """The tensor of a model output: itself, the first tensor of a tuple / list, or
    ``out["logits"]`` / ``out.logits``."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, dict) and isinstance(out.get("logits"), torch.Tensor):
        return out["logits"]
    if isinstance(getattr(out, "logits", None), torch.Tensor):
        return out.logits
    if isinstance(out, (tuple, list)):
        for o in out:
            if isinstance(o, torch.Tensor):
                return o
    raise ValueError(f"model output of type {type(out).__name__} has no tensor "
                     "(expected a tensor, a tuple of tensors or an object with .logits)")


def _default_loss(metric):
    if metric in ("top1", "perplexity"):
        return lambda out, y: F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1),
                                              ignore_index=IGNORE_INDEX)
    if metric == "mse":
        return lambda out, y: F.mse_loss(out, y.to(out.dtype))
    return None


class _Executor:
    """GEMM executor of one workload forward (see :mod:`lowbit.sim.torch.intercept`)."""

    def __init__(self, wl, ctx, trace: dict | None = None):
        self.wl, self.ctx, self.trace = wl, ctx, trace

    def _cfg(self, name):
        if self.trace is not None:
            return None
        if name not in self.ctx.configs:
            raise ValueError(f"GEMM {name!r} was not in the traced forward of workload "
                             f"{self.wl.name} (data-dependent control flow?); layers: "
                             f"{', '.join(self.ctx.configs)}")
        return self.ctx.configs[name]

    def _record(self, name, **kw):
        r = self.trace.setdefault(name, dict(kw, macs=0))
        r["macs"] += kw["macs"]

    def _capture(self, name, x2d, xq, y2d):
        if self.ctx.capture is not None:
            self.ctx.capture[name] = {"input": x2d, "input_q": xq, "output": y2d}

    def quantizes(self, name):
        return any(self.wl.matmul_config(f"{name}.{p}", self.ctx.configs) is not None
                   for p in ("qk", "pv"))

    def linear(self, name, x2d, w2d, bias, run_float):
        if self.trace is not None:
            self._record(name, kind="linear", weight=as_numpy(w2d),
                         bias=None if bias is None else as_numpy(bias),
                         macs=x2d.shape[0] * w2d.shape[0] * w2d.shape[1],
                         in_shape=(int(w2d.shape[1]),), out_shape=(int(w2d.shape[0]),), attrs={})
        cfg = self._cfg(name)
        if cfg is None:
            y = run_float()
            if self.ctx.capture is not None:
                x = as_numpy(x2d)
                self._capture(name, x, x, as_numpy(y))
            return y
        return from_numpy(self.wl._gemm(name, as_numpy(x2d), self.ctx), x2d)

    def conv(self, name, x, w, bias, conv_args, run_float):
        O, Cg, KH, KW = w.shape
        G = conv_args["groups"]
        if self.trace is not None:
            y = run_float()
            self._record(name, kind="conv2d", weight=as_numpy(w),
                         bias=None if bias is None else as_numpy(bias),
                         macs=y.shape[0] * y.shape[2] * y.shape[3] * O * Cg * KH * KW,
                         in_shape=tuple(int(s) for s in x.shape[1:]),
                         out_shape=tuple(int(s) for s in y.shape[1:]), attrs=dict(conv_args))
            return y
        cfg = self._cfg(name)
        if cfg is None and self.ctx.capture is None:
            return run_float()
        xn = as_numpy(x)
        cols = [im2col(xn[:, g * Cg:(g + 1) * Cg], KH, KW, conv_args["stride"],
                       conv_args["padding"], conv_args["dilation"]) for g in range(G)]
        N, OH, OW = x.shape[0], cols[0][1], cols[0][2]
        cols = [c[0] for c in cols]
        if cfg is None:
            y = run_float()
            stacked = np.concatenate(cols) if G > 1 else cols[0]
            self._capture(name, stacked, stacked, as_numpy(y).transpose(0, 2, 3, 1).reshape(-1, O))
            return y
        if G == 1:
            y2d = self.wl._gemm(name, cols[0], self.ctx)
        else:
            y2d = self.wl._gemm_grouped(name, cols, self.ctx)
        return from_numpy(y2d.reshape(N, OH, OW, O).transpose(0, 3, 1, 2), x)

    def matmul(self, name, a, b, run_float):
        cfg = None if self.trace is not None else self.wl.matmul_config(name, self.ctx.configs)
        if cfg is None:
            return run_float()
        an, bn = as_numpy(a), as_numpy(b)
        return from_numpy(np.stack([qmatmul(an[i], bn[i], cfg) for i in range(an.shape[0])]), a)


class _TraceCtx:
    configs: dict = {}
    capture = None


class TorchWorkload(LayerwiseWorkload):
    """A PyTorch model as a lowbit workload (see the module docstring)."""

    def __init__(self, model: torch.nn.Module, calib, eval, metric="cosine", *, loss=None,
                 name: str = "torch-model", batch_size: int | None = None,
                 dtype: torch.dtype = torch.float64, higher_is_better: bool | None = None,
                 matmuls: str = "float"):
        super().__init__()
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        if not (callable(metric) or metric in METRICS):
            raise ValueError(f"metric={metric!r}; allowed: {', '.join(METRICS)} or a callable")
        if matmuls not in MATMUL_MODES:
            raise ValueError(f"matmuls={matmuls!r}; allowed: {', '.join(MATMUL_MODES)}")
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size!r}; expected a positive int or None")
        self.name, self.dtype, self.matmuls = str(name), dtype, matmuls
        self.batch_size = None if batch_size is None else int(batch_size)
        self.model = copy.deepcopy(model).eval().to(dtype)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.calib_x, self.calib_y = _split_data(calib, "calib", dtype)
        self.eval_x, self.eval_y = _split_data(eval, "eval", dtype)
        self.metric = metric
        self.metric_name = metric if isinstance(metric, str) else getattr(
            metric, "__name__", "metric")
        self.higher_is_better = (METRICS[metric] if isinstance(metric, str) else
                                 (True if higher_is_better is None else bool(higher_is_better)))
        if metric == "top1" and self.eval_y is None:
            raise ValueError("metric 'top1' needs eval targets: eval=(inputs, targets)")
        if metric == "perplexity" and self.eval_y is None:
            raise ValueError("metric 'perplexity' needs eval targets (token ids): "
                             "eval=(inputs, targets)")
        self.loss = loss if loss is not None else _default_loss(metric if isinstance(
            metric, str) else None)
        self._param_of: dict = {}
        h = hashlib.sha256(self.metric_name.encode())
        for k, v in self.model.state_dict().items():
            h.update(k.encode() + v.detach().cpu().contiguous().numpy().tobytes())
        self.eval_x.digest(h)
        self.version = "torch-" + h.hexdigest()[:12]

    # -- LayerwiseWorkload -----------------------------------------------------------------
    def _build_layers(self):
        trace: dict = {}
        x = self.eval_x if self.batch_size is None else self.eval_x[: self.batch_size]
        with torch.no_grad(), GemmInterceptor(self.model, _Executor(self, _TraceCtx(), trace)):
            self.model(*x.args, **x.kwargs)
        n = len(x)
        layers = []
        for nm, r in trace.items():
            layers.append(LayerSpec(nm, r["kind"], r["weight"], r["bias"],
                                    macs=int(round(r["macs"] / n)), in_shape=r["in_shape"],
                                    out_shape=r["out_shape"], attrs=r["attrs"]))
        if not layers:
            raise ValueError(f"workload {self.name}: the model has no weight GEMM "
                             "(Linear / Conv1d / Conv2d / matmul with a parameter)")
        return layers

    def eval_inputs(self):
        return self.eval_x

    def calibration_data(self):
        return self.calib_x

    def calibration_labels(self):
        return None if self.calib_y is None else self.calib_y.numpy()

    def matmul_config(self, name, configs):
        """Config of activation GEMM ``name``: None unless ``matmuls="same"`` and every weight
        layer has the same config."""
        if self.matmuls == "float" or not configs:
            return None
        vals = list(configs.values())
        return vals[0] if all(v is vals[0] or v == vals[0] for v in vals) else None

    def _run(self, x: ModelInputs, ctx) -> np.ndarray:
        with torch.no_grad(), GemmInterceptor(self.model, _Executor(self, ctx)):
            out = self.model(*x.args, **x.kwargs)
        return as_numpy(output_tensor(out))

    def _forward(self, x, ctx):
        x = ModelInputs.of(x, self.dtype)
        bs = self.batch_size
        if bs is None or len(x) <= bs:
            return self._run(x, ctx)
        outs, caps = [], []
        cap = ctx.capture
        for i in range(0, len(x), bs):
            ctx.capture = None if cap is None else {}
            outs.append(self._run(x[i:i + bs], ctx))
            caps.append(ctx.capture)
        ctx.capture = cap
        if cap is not None:
            for k in caps[0]:
                cap[k] = {f: np.concatenate([c[k][f] for c in caps]) for f in caps[0][k]}
        return np.concatenate(outs)

    def _metric(self, out, ref_out) -> dict:
        y = None if self.eval_y is None else self.eval_y.numpy()
        if callable(self.metric):
            return {"metric": float(self.metric(out, ref_out if y is None else y))}
        return output_metric(self.metric, out, ref_out, y)

    def fidelity(self, out, ref_out) -> dict:
        """Per-sample task and fidelity metrics (bootstrap intervals in the sweep report);
        a callable metric gets only the fidelity ones."""
        y = None if self.eval_y is None else self.eval_y.numpy()
        name = self.metric if isinstance(self.metric, str) else ""
        return output_fidelity(name, out, ref_out, y)

    # -- Hessian -------------------------------------------------------------------------
    def _loss_data(self, n):
        if self.loss is None:
            raise ValueError(
                f"workload {self.name}: the hessian metric needs a loss; pass "
                "TorchWorkload(..., loss=callable(output, targets) -> scalar tensor), or use "
                "metric top1 / mse / perplexity with targets")
        if self.calib_y is not None:
            return self.calib_x[:n], self.calib_y[:n]
        if self.eval_y is not None:
            return self.eval_x[:n], self.eval_y[:n]
        raise ValueError(f"workload {self.name}: the hessian metric needs targets for the loss; "
                         "pass calib=(inputs, targets) or eval=(inputs, targets)")

    def _layer_params(self) -> dict:
        """{layer: (parameter, flat slice)} of the weight layers."""
        out = {}
        for s in self.layers():
            for pname, p in self.model.named_parameters():
                base = weight_layer_name(pname)
                if s.name == base:
                    out[s.name] = (p, slice(0, p.numel()))
                elif s.name.startswith(base + ".part"):
                    off = int(s.name[len(base) + 5:])
                    out[s.name] = (p, slice(off, off + int(np.prod(s.weight.shape))))
            if s.name not in out:
                raise ValueError(f"layer {s.name!r}: no parameter of that name")
        return out

    def hessian_traces(self, n_calib: int = 64, n_probe: int = 16, seed: int = 0,
                       method: str = "hutchinson") -> dict:
        """``{layer: (Tr(H_W) estimate, standard error)}`` of the float model's loss on the
        first ``n_calib`` calibration samples (H_W = Hessian w.r.t. that layer's weights).

        ``method="hutchinson"``: ``n_probe`` Rademacher probes v over all layers at once,
        per-layer ``v_l . (H v)_l`` (unbiased for Tr(H_ll), Hutchinson 1990; HAWQ-V2), with
        exact Hessian-vector products by double backward (Pearlmutter 1994).
        ``method="exact"``: the sum of ``e_i . H e_i`` over every weight (one HVP each; small
        models only), standard error 0.
        """
        if method not in ("hutchinson", "exact"):
            raise ValueError(f"method={method!r}; allowed: hutchinson, exact")
        x, y = self._loss_data(n_calib)
        lp = self._layer_params()
        params = list({id(p): p for p, _ in lp.values()}.values())
        model = self.model
        for p in params:
            p.requires_grad_(True)
        try:
            # the math attention kernel: the fused CPU / flash kernels have no double backward
            with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH):
                loss = self.loss(output_tensor(model(*x.args, **x.kwargs)), y)
                if not (isinstance(loss, torch.Tensor) and loss.dim() == 0):
                    raise ValueError("loss must return a scalar tensor")
                grads = torch.autograd.grad(loss, params, create_graph=True)
                gmap = {id(p): g for p, g in zip(params, grads)}

                def hvp(vs):
                    dot = sum((gmap[id(p)] * vs[id(p)]).sum() for p in params)
                    hv = torch.autograd.grad(dot, params, retain_graph=True)
                    return {id(p): h for p, h in zip(params, hv)}

                est = {n: [] for n in lp}
                if method == "hutchinson":
                    gen = torch.Generator().manual_seed(seed)
                    for _ in range(n_probe):
                        vs = {id(p): torch.randint(0, 2, p.shape, generator=gen).to(p.dtype) * 2 - 1
                              for p in params}
                        hv = hvp(vs)
                        for n, (p, sl) in lp.items():
                            est[n].append(float((vs[id(p)] * hv[id(p)]).reshape(-1)[sl].sum()))
                else:
                    for n, (p, sl) in lp.items():
                        tot = 0.0
                        for i in range(sl.start, sl.stop):
                            vs = {id(q): torch.zeros_like(q) for q in params}
                            vs[id(p)].view(-1)[i] = 1.0
                            tot += float(hvp(vs)[id(p)].reshape(-1)[i])
                        est[n].append(tot)
        finally:
            for p in params:
                p.requires_grad_(False)
        return {n: (float(np.mean(e)), float(np.std(e, ddof=1) / np.sqrt(len(e)))
                    if len(e) > 1 else 0.0) for n, e in est.items()}
