"""``emulate(model, configs)``: a copy of a PyTorch model whose GEMMs run in lowbit.sim.

Every weight GEMM (``nn.Linear``, ``nn.Conv1d`` / ``nn.Conv2d`` with any stride, padding,
dilation and groups, the projections inside ``nn.MultiheadAttention``, any ``F.linear`` /
``x @ W`` on a parameter) and every activation x activation GEMM (``torch.matmul``, ``@``,
``bmm``, ``einsum``, ``F.scaled_dot_product_attention``) whose name has a configuration runs
through lowbit.sim's quantised GEMM (:func:`lowbit.sim.qlinear` / :func:`~lowbit.sim.qmatmul` /
:func:`~lowbit.sim.qconv2d`) with that :class:`~lowbit.sim.QuantConfig`; everything else
(and every GEMM configured ``None``) runs in torch unchanged.  Names: see
:mod:`lowbit.sim.torch.intercept` (qualified module names for weight layers).

Numerics: the GEMM operands are converted exactly to float64, quantised and accumulated per the
config, the bias (if the op carries one) is added in float64, and the float64 result is rounded
once (RNE) to the op's dtype (no rounding for a float64 model).  So a layer's output equals
``lowbit.sim.qmatmul(x2d, W.T, cfg) + bias`` bit for bit (float64 model).  Activation GEMMs
``a @ b`` quantise ``a`` with ``cfg.act`` and ``b`` with ``cfg.weight``, both along the
reduction axis, one :func:`~lowbit.sim.qmatmul` per batch matrix.  The backward pass (if any)
is torch's float backward of the original op (a straight-through estimator).
"""

from __future__ import annotations

import copy
import fnmatch

import numpy as np
import torch

from lowbit.sim import QuantConfig, qconv2d, qlinear, qmatmul
from lowbit.sim.workloads import make_config

from .intercept import GemmInterceptor


def as_numpy(t: torch.Tensor) -> np.ndarray:
    """float64 numpy copy of a tensor (exact for every float dtype torch has)."""
    return t.detach().to(device="cpu", dtype=torch.float64).numpy()


def from_numpy(y: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """float64 array -> tensor of ``like``'s dtype / device (one RNE rounding)."""
    return torch.from_numpy(np.ascontiguousarray(y)).to(device=like.device, dtype=like.dtype)


def _one_config(cfg, what):
    if cfg is None or isinstance(cfg, QuantConfig):
        return cfg
    if isinstance(cfg, str):
        return make_config(cfg)
    raise ValueError(f"{what}: expected a QuantConfig, a format name or None, got {cfg!r}")


class ConfigLookup:
    """``name -> QuantConfig | None`` from one config (every GEMM) or a dict of exact layer
    names and ``fnmatch`` patterns (``"encoder.*.linear1"``; exact names win, then the first
    matching pattern in dict order; unmatched layers stay float)."""

    def __init__(self, configs):
        self.uniform = None
        self.table: dict = {}
        if isinstance(configs, dict):
            self.table = {str(k): _one_config(v, f"configs[{k!r}]") for k, v in configs.items()}
        else:
            self.uniform = _one_config(configs, "configs")
        self._cache: dict = {}

    def __call__(self, name: str):
        if not self.table:
            return self.uniform
        if name not in self._cache:
            cfg = self.table.get(name)
            if name not in self.table:
                cfg = next((v for k, v in self.table.items() if fnmatch.fnmatchcase(name, k)),
                           None)
            self._cache[name] = cfg
        return self._cache[name]

    def unmatched(self, names) -> list:
        """Dict keys that match none of ``names``."""
        return [k for k in self.table
                if k not in names and not any(fnmatch.fnmatchcase(n, k) for n in names)]


class EmulateExecutor:
    """Executor for :class:`~lowbit.sim.torch.intercept.GemmInterceptor` calling the public
    lowbit.sim layer functions on every configured GEMM."""

    def __init__(self, lookup: ConfigLookup):
        self.lookup = lookup
        self.seen: dict = {}

    def quantizes(self, name):
        q = any(self.lookup(f"{name}.{p}") is not None for p in ("qk", "pv"))
        if not q:
            self.seen.setdefault(name, "attention (float, fused)")
        return q

    def linear(self, name, x2d, w2d, bias, run_float):
        self.seen.setdefault(name, "linear")
        cfg = self.lookup(name)
        if cfg is None:
            return run_float()
        y = qlinear(as_numpy(x2d), as_numpy(w2d), None, cfg)
        if bias is not None:
            y = y + as_numpy(bias)
        return from_numpy(y, x2d)

    def conv(self, name, x, w, bias, conv_args, run_float):
        self.seen.setdefault(name, "conv2d")
        cfg = self.lookup(name)
        if cfg is None:
            return run_float()
        y = qconv2d(as_numpy(x), as_numpy(w), None if bias is None else as_numpy(bias), cfg,
                    **conv_args)
        return from_numpy(y, x)

    def matmul(self, name, a, b, run_float):
        self.seen.setdefault(name, "matmul")
        cfg = self.lookup(name)
        if cfg is None:
            return run_float()
        an, bn = as_numpy(a), as_numpy(b)
        y = np.stack([qmatmul(an[i], bn[i], cfg) for i in range(an.shape[0])])
        return from_numpy(y, a)


def _pre_hook(module, args):
    ic = GemmInterceptor(module, EmulateExecutor(module._lowbit_lookup))
    module._lowbit_active.append(ic)
    ic.__enter__()


def _post_hook(module, args, output):
    if module._lowbit_active:
        ic = module._lowbit_active.pop()
        module._lowbit_seen.update(ic.executor.seen)
        ic.__exit__(None, None, None)


def emulate(model: torch.nn.Module, configs, *, example_inputs=None,
            inplace: bool = False) -> torch.nn.Module:
    """A copy of ``model`` (``inplace=True``: the model itself) whose GEMMs run through
    lowbit.sim per ``configs``.

    configs: a :class:`~lowbit.sim.QuantConfig` or format name for every GEMM, ``None`` (float),
    or ``{layer name or fnmatch pattern: QuantConfig | format name | None}``.
    example_inputs: optional tuple of model inputs; when given, one float forward lists the
    layers and a dict key matching none of them raises ValueError naming the known layers.
    The returned module keeps the class and parameters of ``model``;
    :func:`emulated_layers` lists the GEMM names its forward passes ran.
    """
    lookup = ConfigLookup(configs)
    if example_inputs is not None and lookup.table:
        names = list_gemms(model, *_as_tuple(example_inputs))
        bad = lookup.unmatched([n["name"] for n in names])
        if bad:
            raise ValueError(f"configs: no layer matches {bad}; layers: "
                             f"{', '.join(n['name'] for n in names)}")
    m = model if inplace else copy.deepcopy(model)
    m._lowbit_lookup = lookup
    m._lowbit_active = []
    m._lowbit_seen = {}
    m.register_forward_pre_hook(_pre_hook)
    m.register_forward_hook(_post_hook, always_call=True)
    return m


def emulated_layers(model: torch.nn.Module) -> dict:
    """``{GEMM name: kind}`` seen so far by the forward passes of an :func:`emulate` model."""
    if not hasattr(model, "_lowbit_seen"):
        raise ValueError("emulated_layers: model was not made by lowbit.sim.torch.emulate")
    return dict(model._lowbit_seen)


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


class _ListExecutor:
    """Runs everything in torch and records each GEMM's name, kind and shape."""

    def __init__(self):
        self.rows: dict = {}

    def _add(self, name, kind, n, k, m, batch=1):
        r = self.rows.setdefault(name, {"name": name, "kind": kind, "M": m, "K": k, "N": 0,
                                        "macs": 0, "calls": 0})
        r["N"] += n * batch
        r["macs"] += n * k * m * batch
        r["calls"] += 1

    def quantizes(self, name):
        return True  # decompose attention so its two GEMMs are listed

    def linear(self, name, x2d, w2d, bias, run_float):
        self._add(name, "linear", x2d.shape[0], x2d.shape[1], w2d.shape[0])
        return run_float()

    def conv(self, name, x, w, bias, conv_args, run_float):
        y = run_float()
        k = w.shape[1] * w.shape[2] * w.shape[3]
        self._add(name, "conv2d", y.shape[0] * y.shape[2] * y.shape[3], k, w.shape[0])
        return y

    def matmul(self, name, a, b, run_float):
        self._add(name, "matmul", a.shape[1], a.shape[2], b.shape[2], a.shape[0])
        return run_float()


def list_gemms(model: torch.nn.Module, *inputs, **kwargs) -> list[dict]:
    """GEMMs of one float forward of ``model(*inputs, **kwargs)`` in execution order:
    ``[{"name", "kind" ("linear" | "conv2d" | "matmul"), "N" (rows), "K", "M", "macs",
    "calls"}]`` (no gradients, the model is not changed)."""
    ex = _ListExecutor()
    with torch.no_grad(), GemmInterceptor(model, ex):
        model(*inputs, **kwargs)
    return list(ex.rows.values())
