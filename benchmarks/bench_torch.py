"""PyTorch path vs numpy path on MiniLM (all-MiniLM-L6-v2), same configs, same run.

    .venv/bin/python benchmarks/bench_torch.py [--configs mxfp4/fp32,int8_pc/int32,nvfp4/fp32]

The numpy path is the built-in ``minilm`` workload (:mod:`lowbit.sim.workloads.minilm`). The
torch path is the same network written as a plain ``torch.nn.Module`` (below: BERT post-LN
encoder, exact GELU, mean pooling; linears applied to the real tokens only, as the numpy
workload does) with the same safetensors weights, wrapped in
:class:`lowbit.sim.torch.TorchWorkload`. Both evaluate the first ``--sentences`` sentences of
the minilm evaluation set with every linear in the given format; attention matmuls stay float in both. Prints seconds per
evaluation, the ratio torch / numpy (target <= 1.5) and both cosine metrics (they agree to
rounding: the non-GEMM ops are torch's vs numpy's float64 kernels).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from lowbit.sim.torch import TorchWorkload
from lowbit.sim.workloads import make_config
from lowbit.sim.workloads.minilm import (
    FFN,
    HEADS,
    HIDDEN,
    LN_EPS,
    N_LAYERS,
    MiniLM,
    load_sentences,
)

TARGET_RATIO = 1.5


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(HIDDEN, HIDDEN) for _ in range(3))
        self.attn_out = nn.Linear(HIDDEN, HIDDEN)
        self.ln1 = nn.LayerNorm(HIDDEN, eps=LN_EPS)
        self.ffn_in, self.ffn_out = nn.Linear(HIDDEN, FFN), nn.Linear(FFN, HIDDEN)
        self.ln2 = nn.LayerNorm(HIDDEN, eps=LN_EPS)

    def forward(self, x, mask, neg):
        B, L, _ = x.shape

        def lin(m, t):  # real tokens only
            out = t.new_zeros(B, L, m.out_features)
            out[mask] = m(t[mask])
            return out

        def heads(t):
            return t.reshape(B, L, HEADS, -1).transpose(1, 2)

        q, k, v = (heads(lin(m, x)) for m in (self.q, self.k, self.v))
        s = torch.softmax(q @ k.transpose(-1, -2) / (HIDDEN // HEADS) ** 0.5 + neg, -1)
        ctx = (s @ v).transpose(1, 2).reshape(B, L, HIDDEN)
        x = self.ln1(lin(self.attn_out, ctx) + x)
        return self.ln2(lin(self.ffn_out, F.gelu(lin(self.ffn_in, x))) + x)


class TorchMiniLM(nn.Module):
    def __init__(self, w: dict):
        super().__init__()
        self.word = nn.Embedding.from_pretrained(torch.tensor(w["embeddings.word_embeddings.weight"]))
        self.pos = nn.Parameter(torch.tensor(w["embeddings.position_embeddings.weight"]))
        self.tok = nn.Parameter(torch.tensor(w["embeddings.token_type_embeddings.weight"][0]))
        self.ln = nn.LayerNorm(HIDDEN, eps=LN_EPS)
        self.layers = nn.ModuleList(Layer() for _ in range(N_LAYERS))
        sd = {"ln.weight": w["embeddings.LayerNorm.weight"], "ln.bias": w["embeddings.LayerNorm.bias"]}
        names = {"q": "attention.self.query", "k": "attention.self.key",
                 "v": "attention.self.value", "attn_out": "attention.output.dense",
                 "ln1": "attention.output.LayerNorm", "ffn_in": "intermediate.dense",
                 "ffn_out": "output.dense", "ln2": "output.LayerNorm"}
        for i in range(N_LAYERS):
            for ours, theirs in names.items():
                for p in ("weight", "bias"):
                    sd[f"layers.{i}.{ours}.{p}"] = w[f"encoder.layer.{i}.{theirs}.{p}"]
        self.load_state_dict({k: torch.tensor(v) for k, v in sd.items()}, strict=False)

    def forward(self, ids, mask):
        L = ids.shape[1]
        x = self.ln(self.word(ids).to(self.pos.dtype) + self.pos[:L] + self.tok)
        neg = torch.zeros(mask.shape, dtype=x.dtype).masked_fill(~mask, torch.finfo(x.dtype).min)
        neg = neg[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask, neg)
        m = mask[..., None].to(x.dtype)
        emb = (x * m).sum(1) / m.sum(1).clamp_min(1e-9)
        return emb / emb.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _time(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = fn()
        best = min(best, time.perf_counter() - t0)
    return best, r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", default="mxfp4/fp32,int8_pc/int32,nvfp4/fp32",
                    help="FORMAT/ACCUM list (every linear in FORMAT, weights and activations)")
    ap.add_argument("--repeat", type=int, default=1, help="best of N timings (default 1)")
    ap.add_argument("--sentences", type=int, default=64,
                    help="first N sentences of the minilm evaluation set (default 64)")
    args = ap.parse_args(argv)
    ref = MiniLM(load_sentences()[: args.sentences])
    ids, mask = ref.eval_inputs()
    tw = TorchWorkload(TorchMiniLM(ref.w), calib=((torch.tensor(ids), torch.tensor(mask)), None),
                       eval=((torch.tensor(ids), torch.tensor(mask)), None), metric="cosine",
                       name="minilm-torch")
    assert [s.name.replace("layers.", "l") for s in tw.layers()] == [s.name for s in ref.layers()]
    ref.reference()
    tw.reference()
    print("| config | numpy s | torch s | torch / numpy | numpy cosine | torch cosine |")
    print("|---|---:|---:|---:|---:|---:|")
    worst = 0.0
    for spec in args.configs.split(","):
        fmt, acc = spec.split("/")
        cfg = make_config(fmt, accum=acc)
        tn, rn = _time(lambda cfg=cfg: ref.evaluate(cfg), args.repeat)
        tt, rt = _time(lambda cfg=cfg: tw.evaluate(cfg), args.repeat)
        worst = max(worst, tt / tn)
        print(f"| {spec} | {tn:.2f} | {tt:.2f} | {tt / tn:.2f} | {rn['metric']:.6f} | "
              f"{rt['metric']:.6f} |")
    print(f"\nworst torch/numpy ratio {worst:.2f} (target <= {TARGET_RATIO}): "
          f"{'PASS' if worst <= TARGET_RATIO else 'FAIL'}")
    return 0 if worst <= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
