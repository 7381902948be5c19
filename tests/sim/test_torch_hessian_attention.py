"""Hessian traces of a model with attention: ``torch.nn.functional.scaled_dot_product_attention``
picks a fused CPU kernel whose backward has no derivative, so double backward failed
("derivative for aten::_scaled_dot_product_flash_attention_for_cpu_backward is not implemented",
`python examples/torch_model.py`).  The exact trace is compared with torch.func's Hessian."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lowbit.sim.torch import TorchWorkload


class TinyAttention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = torch.nn.Linear(4, 12)
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x):  # x (N, T, 4); 2 heads of 2: 4-D (N, heads, T, d) takes the fused kernel
        n, t, _ = x.shape
        q, k, v = (z.reshape(n, t, 2, 2).transpose(1, 2) for z in self.qkv(x).chunk(3, dim=-1))
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, t, 4)
        return self.head(a.mean(1))


def test_exact_hessian_trace_through_attention():
    torch.manual_seed(0)
    model = TinyAttention()  # float32: the dtype the fused CPU attention kernel takes
    x, y = torch.randn(6, 5, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    wl = TorchWorkload(model, calib=(x, y), eval=(x, y), metric="top1", name="tiny-attn")
    tr = wl.hessian_traces(n_calib=6, method="exact")

    def loss_of(name):
        params = dict(model.named_parameters())

        def f(w):
            out = torch.func.functional_call(model, {**params, name: w}, (x,))
            return F.cross_entropy(out, y)
        return f

    for layer in ("qkv", "head"):
        w = dict(model.named_parameters())[f"{layer}.weight"].detach()
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
            h = torch.func.hessian(loss_of(f"{layer}.weight"))(w).reshape(w.numel(), w.numel())
        ref = float(h.diagonal().sum())
        assert abs(tr[layer][0] - ref) <= 1e-4 * max(1.0, abs(ref)), (layer, tr[layer][0], ref)
