"""Route every GEMM of a PyTorch forward pass to an executor: the interception layer of
:mod:`lowbit.sim.torch`.

How it works: two torch override modes are active while the model runs.

* a :class:`torch.overrides.TorchFunctionMode` that passes every call through unchanged; its
  only job is to make ``torch.overrides.has_torch_function`` true, which turns off PyTorch's
  fused inference fast paths (``nn.TransformerEncoderLayer`` / ``nn.MultiheadAttention`` call
  one fused kernel when no override is active), so their GEMMs become visible;
* a ``TorchDispatchMode`` that sees every ATen operator *after* composite decomposition, i.e.
  inside ``F.linear``, ``F.multi_head_attention_forward``, ``torch.matmul``, ``@``, ``einsum``
  and ``F.scaled_dot_product_attention`` alike, whatever module class issued them.  It handles
  the GEMM operators ``aten.mm``, ``aten.addmm``, ``aten.bmm``, ``aten.baddbmm``,
  ``aten.convolution`` and CPU attention ``aten._scaled_dot_product_flash_attention_for_cpu``;
  everything else runs in torch unchanged.

A GEMM with a parameter operand is a *weight layer* named after that parameter with its
``.weight`` / ``_weight`` suffix removed, i.e. the qualified module name for ``nn.Linear`` /
``nn.Conv1d`` / ``nn.Conv2d`` (``encoder.layers.0.linear1``) and ``...self_attn.in_proj`` /
``...self_attn.out_proj`` inside ``nn.MultiheadAttention``.  A GEMM of two activations is named
after the innermost module running it: ``<module>.matmul`` (``.matmul_1``, ... for further
ones in the same call of that module) and ``<module>.sdpa.qk`` / ``<module>.sdpa.pv`` for the
two GEMMs of scaled-dot-product attention.

Executor protocol (all tensors are torch tensors; ``run_float()`` runs the original torch op):

* ``linear(name, x2d (N, K), w2d (M, K), bias (M,) | (N, M) | None, run_float) -> (N, M)``
* ``conv(name, x (N, C, H, W), w (O, C/groups, KH, KW), bias, conv_args, run_float)`` with
  ``conv_args = {"stride", "padding", "dilation", "groups"}`` (2-tuples / int) -> NCHW output
  (``nn.Conv1d`` arrives as a 2-D convolution of height 1)
* ``matmul(name, a (B, N, K), b (B, K, M), run_float) -> (B, N, M)``
* ``quantizes(name) -> bool``: whether attention ``name`` (``<module>.sdpa``) must be decomposed
  into its two GEMMs (False keeps torch's fused kernel).
"""

from __future__ import annotations

import math
import threading

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from lowbit.sim.workloads.generic import weight_layer_name

aten = torch.ops.aten

def layer_name(param_name: str) -> str:
    """Layer name of a weight parameter (:func:`lowbit.sim.workloads.generic.weight_layer_name`:
    ``fc1.weight`` -> ``fc1``, ``attn.in_proj_weight`` -> ``attn.in_proj``)."""
    return weight_layer_name(param_name)


class _PassThrough(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


class _Scope:
    """Innermost running module and per-call counters of activation GEMMs (names)."""

    def __init__(self):
        self.stack: list[list] = []  # [module name, {op: count}]

    def push(self, name):
        self.stack.append([name, {}])

    def pop(self):
        if self.stack:
            self.stack.pop()

    def next_name(self, op: str) -> str:
        if not self.stack:
            self.push("")
        mod, counts = self.stack[-1]
        i = counts.get(op, 0)
        counts[op] = i + 1
        base = op if i == 0 else f"{op}_{i}"
        return f"{mod}.{base}" if mod else base


class _Dispatch(TorchDispatchMode):
    def __init__(self, owner):
        super().__init__()
        self.owner = owner

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        h = _HANDLERS.get(func)
        if h is None:
            return func(*args, **kwargs)
        return h(self.owner, func, args, kwargs)


class GemmInterceptor:
    """Context manager: while active, the GEMMs of ``model``'s forward go to ``executor``.

    ``model``: the ``nn.Module`` whose parameters identify weight layers and whose submodules
    name activation GEMMs.  Not re-entrant across threads (one forward at a time per model).
    """

    _lock = threading.RLock()

    def __init__(self, model: torch.nn.Module, executor):
        self.model, self.executor = model, executor
        self.params = {}
        for pname, p in model.named_parameters(remove_duplicate=True):
            self.params.setdefault(p.untyped_storage().data_ptr(), []).append((pname, p))
        self.scope = _Scope()
        self._hooks = []
        self._modes = []

    def weight_name(self, t: torch.Tensor) -> str | None:
        """Layer name if ``t`` is a parameter or a view of one (e.g. ``w.t()``), else None."""
        if not isinstance(t, torch.Tensor) or t.layout != torch.strided:
            return None
        try:
            ptr = t.untyped_storage().data_ptr()
        except (RuntimeError, NotImplementedError):
            return None
        for pname, p in self.params.get(ptr, ()):
            if t.numel() == p.numel():
                return layer_name(pname)
            # a slice of a packed parameter (e.g. the query rows of in_proj_weight)
            return f"{layer_name(pname)}.part{t.storage_offset() - p.storage_offset()}"
        return None

    def __enter__(self):
        self._lock.acquire()
        try:
            for mname, mod in self.model.named_modules():
                if not mname:  # the root is the default scope "" (and may run our own hooks)
                    continue
                self._hooks.append(mod.register_forward_pre_hook(
                    lambda m, a, n=mname: self.scope.push(n)))
                self._hooks.append(mod.register_forward_hook(
                    lambda m, a, o: self.scope.pop(), always_call=True))
            self._modes = [_PassThrough(), _Dispatch(self)]
            for m in self._modes:
                m.__enter__()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        try:
            for m in reversed(self._modes):
                m.__exit__(*exc)
            for h in self._hooks:
                h.remove()
        finally:
            self._modes, self._hooks = [], []
            self.scope = _Scope()
            self._lock.release()
        return False


# ------------------------------------------------------------------------------ handlers


def _mm(ic: GemmInterceptor, a, b, run_float):
    """a (N, K) @ b (K, M) for a weight operand on either side, or two activations."""
    ex = ic.executor
    wb, wa = ic.weight_name(b), ic.weight_name(a)
    if wb is not None:
        return ex.linear(wb, a, b.t(), None, run_float)
    if wa is not None:  # W @ x: (x^T W^T)^T, the weight stays the (M, K) operand
        return ex.linear(wa, b.t(), a, None, lambda: run_float().t()).t()
    return ex.matmul(ic.scope.next_name("matmul"), a[None], b[None],
                     lambda: run_float()[None])[0]


def _h_mm(ic, func, args, kwargs):
    a, b = args[:2]
    return _mm(ic, a, b, lambda: func(*args, **kwargs))


def _h_addmm(ic, func, args, kwargs):
    bias, a, b = args[:3]
    beta, alpha = kwargs.get("beta", 1), kwargs.get("alpha", 1)
    wb = ic.weight_name(b)
    if wb is not None and beta == 1 and alpha == 1 and bias.dim() <= 2:
        return ic.executor.linear(wb, a, b.t(), bias, lambda: func(*args, **kwargs))
    prod = _mm(ic, a, b, lambda: aten.mm.default(a, b))
    return bias * beta + prod * alpha if (beta != 1 or alpha != 1) else bias + prod


def _h_bmm(ic, func, args, kwargs):
    a, b = args[:2]
    return ic.executor.matmul(ic.scope.next_name("matmul"), a, b, lambda: func(*args, **kwargs))


def _h_baddbmm(ic, func, args, kwargs):
    c, a, b = args[:3]
    beta, alpha = kwargs.get("beta", 1), kwargs.get("alpha", 1)
    prod = ic.executor.matmul(ic.scope.next_name("matmul"), a, b,
                              lambda: aten.bmm.default(a, b))
    return c * beta + prod * alpha


def _h_conv(ic, func, args, kwargs):
    x, w, bias, stride, padding, dilation, transposed, output_padding, groups = args[:9]
    name = ic.weight_name(w) or ic.scope.next_name("conv")

    def run_float():
        return func(*args, **kwargs)

    if transposed or w.dim() not in (3, 4):
        if ic.executor.quantizes(name):
            raise ValueError(f"layer {name!r}: {'transposed' if transposed else f'{w.dim() - 2}-D'}"
                             " convolution is not supported by lowbit.sim; configure it as None "
                             "(float)")
        return run_float()
    one_d = w.dim() == 3
    if one_d:  # Conv1d -> Conv2d of height 1
        x, w = x.unsqueeze(2), w.unsqueeze(2)
        stride, padding, dilation = (1, stride[0]), (0, padding[0]), (1, dilation[0])
        y = ic.executor.conv(name, x, w, bias, dict(stride=tuple(stride), padding=tuple(padding),
                             dilation=tuple(dilation), groups=int(groups)),
                             lambda: run_float().unsqueeze(2))
        return y.squeeze(2)
    return ic.executor.conv(name, x, w, bias, dict(stride=tuple(stride), padding=tuple(padding),
                            dilation=tuple(dilation), groups=int(groups)), run_float)


def _h_sdpa_cpu(ic, func, args, kwargs):
    """``aten._scaled_dot_product_flash_attention_for_cpu``: torch's fused kernel when the
    attention stays float, else the math definition with the two GEMMs emulated:
    ``S = (q @ k^T) * scale`` (+ causal / additive / boolean mask), ``P = softmax(S)``,
    ``out = P @ v`` (dropout on P with ``dropout_p``)."""
    q, k, v = args[:3]
    dropout_p = args[3] if len(args) > 3 else kwargs.get("dropout_p", 0.0)
    is_causal = args[4] if len(args) > 4 else kwargs.get("is_causal", False)
    mask, scale = kwargs.get("attn_mask"), kwargs.get("scale")
    base = ic.scope.next_name("sdpa")
    if not ic.executor.quantizes(base):
        return func(*args, **kwargs)
    lead = q.shape[:-2]
    L, E, S = q.shape[-2], q.shape[-1], k.shape[-2]
    sc = 1.0 / math.sqrt(E) if scale is None else float(scale)
    q3, k3, v3 = (t.reshape(-1, *t.shape[-2:]) for t in (q, k, v))
    kt = k3.transpose(1, 2)
    s = ic.executor.matmul(base + ".qk", q3, kt, lambda: torch.bmm(q3, kt))
    s = s.reshape(*lead, L, S) * sc
    if is_causal:
        keep = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()
        s = s.masked_fill(~keep, float("-inf"))
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else s + mask
    lse = torch.logsumexp(s, dim=-1)
    p = torch.softmax(s, dim=-1)
    if dropout_p > 0.0:
        p = F.dropout(p, dropout_p)
    p3 = p.reshape(-1, L, S)
    out = ic.executor.matmul(base + ".pv", p3, v3, lambda: torch.bmm(p3, v3))
    return out.reshape(*lead, L, v.shape[-1]), lse.to(torch.float32)


_HANDLERS = {
    aten.mm.default: _h_mm,
    aten.addmm.default: _h_addmm,
    aten.bmm.default: _h_bmm,
    aten.baddbmm.default: _h_baddbmm,
    aten.convolution.default: _h_conv,
    aten._scaled_dot_product_flash_attention_for_cpu.default: _h_sdpa_cpu,
}
