"""The tinylm network in PyTorch: the definition the training script uses and other code reuses.

Importing this module imports torch (an optional dependency: ``pip install lowbit[kernels]``);
the numpy emulation in :mod:`lowbit.sim.workloads.tinylm` does not need it.

Architecture (GPT-style decoder, pre-norm, no biases)::

    bytes (B, T) -> token embedding (256, d) + learned position embedding (T_max, d)
    n_layer x [ x += proj(attn(qkv(rmsnorm(x))))        causal, n_head heads of d/n_head
                x += fc2(gelu(fc1(rmsnorm(x)))) ]       MLP d -> 4d -> d, exact erf GELU
    rmsnorm -> head (d -> 256) -> next-byte logits

RMSNorm: ``x / sqrt(mean(x^2) + eps) * g`` with eps = 1e-5. Linear weights are (out, in)
(``y = x @ W.T``). Parameter names match the safetensors file and the numpy workload:
``tok_emb``, ``pos_emb``, ``l{i}.norm1``, ``l{i}.qkv``, ``l{i}.proj``, ``l{i}.norm2``,
``l{i}.fc1``, ``l{i}.fc2``, ``norm_f``, ``head`` (``.weight`` suffix).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class TinyLMConfig:
    vocab: int = 256
    ctx: int = 128
    d_model: int = 128
    n_layer: int = 4
    n_head: int = 4
    mlp_mult: int = 4
    norm_eps: float = 1e-5

    def to_dict(self) -> dict:
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Block(nn.Module):
    def __init__(self, c: TinyLMConfig):
        super().__init__()
        d = c.d_model
        self.n_head = c.n_head
        self.norm1 = RMSNorm(d, c.norm_eps)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.norm2 = RMSNorm(d, c.norm_eps)
        self.fc1 = nn.Linear(d, c.mlp_mult * d, bias=False)
        self.fc2 = nn.Linear(c.mlp_mult * d, d, bias=False)

    def forward(self, x):
        B, T, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(d, dim=-1)
        h, dh = self.n_head, d // self.n_head
        q, k, v = (t.view(B, T, h, dh).transpose(1, 2) for t in (q, k, v))
        s = (q @ k.transpose(-2, -1)) / math.sqrt(dh)
        mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
        s = s.masked_fill(mask, float("-inf"))
        a = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, d)
        x = x + self.proj(a)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class TinyLM(nn.Module):
    def __init__(self, c: TinyLMConfig = TinyLMConfig()):
        super().__init__()
        self.config = c
        self.tok_emb = nn.Embedding(c.vocab, c.d_model)
        self.pos_emb = nn.Embedding(c.ctx, c.d_model)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.norm_f = RMSNorm(c.d_model, c.norm_eps)
        self.head = nn.Linear(c.d_model, c.vocab, bias=False)
        self.apply(self._init)
        for b in self.blocks:  # GPT-2: residual projections scaled by 1/sqrt(2 n_layer)
            for lin in (b.proj, b.fc2):
                nn.init.normal_(lin.weight, std=0.02 / math.sqrt(2 * c.n_layer))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, idx):
        """Next-byte logits (B, T, vocab) for byte ids ``idx`` (B, T), T <= ctx."""
        T = idx.shape[1]
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device))
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm_f(x))

    def flat_state(self) -> dict:
        """Parameters under the flat names of the safetensors file (see module docstring)."""
        out = {"tok_emb.weight": self.tok_emb.weight, "pos_emb.weight": self.pos_emb.weight,
               "norm_f.weight": self.norm_f.weight, "head.weight": self.head.weight}
        for i, b in enumerate(self.blocks):
            for n in ("norm1", "qkv", "proj", "norm2", "fc1", "fc2"):
                out[f"l{i}.{n}.weight"] = getattr(b, n).weight
        return out

    def load_flat_state(self, tensors: dict) -> None:
        """Copy flat-named tensors (numpy or torch) into the parameters (shapes must match)."""
        with torch.no_grad():
            for k, p in self.flat_state().items():
                t = torch.as_tensor(tensors[k], dtype=p.dtype)
                if tuple(t.shape) != tuple(p.shape):
                    raise ValueError(f"{k}: shape {tuple(t.shape)} != {tuple(p.shape)}")
                p.copy_(t)


def nll_per_token(model: TinyLM, windows) -> torch.Tensor:
    """Next-byte negative log-likelihood (nats) of every position of (B, T+1) byte windows:
    inputs ``windows[:, :-1]``, targets ``windows[:, 1:]``; returns (B, T)."""
    w = torch.as_tensor(windows, dtype=torch.long)
    logits = model(w[:, :-1])
    return F.cross_entropy(logits.transpose(1, 2), w[:, 1:], reduction="none")


# --- training recipe shared by scripts/train_tinylm.py and scripts/lowprec_training.py --------
WEIGHT_DECAY = 0.1
ADAM_BETAS = (0.9, 0.95)
MIN_LR_SCALE = 0.02


def adamw(model: nn.Module, lr: float) -> torch.optim.AdamW:
    """AdamW (betas 0.9 / 0.95) with weight decay 0.1 on the 2-D weights except the embeddings
    and none on the rest (norms, biases, embeddings)."""
    decay = [p for n, p in model.named_parameters() if p.ndim == 2 and "emb" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim == 2 and "emb" not in n)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                              {"params": other, "weight_decay": 0.0}], lr=lr, betas=ADAM_BETAS)


def set_lr(opt: torch.optim.Optimizer, lr: float, step: int, steps: int, warmup: int) -> None:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``steps``; the scale
    never goes below ``MIN_LR_SCALE``."""
    f = (step + 1) / warmup if step < warmup else \
        0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
    for g in opt.param_groups:
        g["lr"] = lr * max(f, MIN_LR_SCALE)


def sample_windows(rng, data, ctx: int, batch: int):
    """``batch`` random byte windows of ``ctx + 1`` bytes from ``data`` ((batch, ctx + 1))."""
    starts = rng.integers(0, len(data) - ctx - 1, size=batch)
    return np.stack([data[s:s + ctx + 1] for s in starts])

