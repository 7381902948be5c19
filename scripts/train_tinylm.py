"""Train the tinylm workload's weights (``sim/workloads/data/tinylm.safetensors``).

Byte-level decoder-only transformer (:mod:`lowbit.sim.workloads.tinylm_torch`) trained on the
training split of the committed CPython-library corpus (:mod:`lowbit.sim.workloads.pycorpus`)
with AdamW (lr 2e-3, betas (0.9, 0.95), weight decay 0.1 on matrices), linear warm-up (50 steps) then
cosine decay over 2,000 steps, batch 16 random windows of 128 bytes, gradient clipping 1.0, float32 on CPU,
seeded and with deterministic algorithms, so a re-run on the same torch version and thread
count reproduces the weights. Held-out perplexity is printed at the end and stored in the file's
metadata together with the command and the torch version.

    python scripts/train_tinylm.py [--steps 2000] [--threads 2] [--d-model 256] [--n-layer 4]
                                   [--n-head 8] [--out PATH]

The committed weights were made by the defaults (d_model 256, 4 layers, 8 heads: 3.31 M
parameters; 7-8 minutes on two cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lowbit.sim.workloads.pycorpus import eval_windows, load_corpus
from lowbit.sim.workloads.tinylm_torch import (
    TinyLM,
    TinyLMConfig,
    adamw,
    nll_per_token,
    sample_windows,
    set_lr,
)

OUT = Path(__file__).resolve().parents[1] / "sim" / "workloads" / "data" / "tinylm.safetensors"


def heldout_ppl(model, heldout, ctx, n=64) -> float:
    model.eval()
    with torch.no_grad():
        nll = nll_per_token(model, eval_windows(heldout, n, ctx + 1))
    model.train()
    return float(torch.exp(nll.mean()))


D_MODEL, N_LAYER, N_HEAD = 256, 4, 8  # the committed model's shape


def train(steps=2000, batch=16, lr=2e-3, warmup=50, seed=0, threads=2, out=OUT, log_every=100,
          d_model=D_MODEL, n_layer=N_LAYER, n_head=N_HEAD):
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    cfg = TinyLMConfig(d_model=d_model, n_layer=n_layer, n_head=n_head)
    model = TinyLM(cfg)
    train_data, heldout = load_corpus()
    rng = np.random.default_rng(seed)
    opt = adamw(model, lr)
    t0 = time.time()
    for step in range(steps):
        set_lr(opt, lr, step, steps, warmup)
        xb = sample_windows(rng, train_data, cfg.ctx, batch)
        loss = nll_per_token(model, xb).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"step {step:5d} loss {loss.item():.4f} ({time.time() - t0:.0f} s)", flush=True)
    ppl = heldout_ppl(model, heldout, cfg.ctx)
    print(f"held-out perplexity (64 windows of {cfg.ctx}): {ppl:.4f}")
    from safetensors.torch import save_file

    meta = {"config": json.dumps(cfg.to_dict()), "torch": torch.__version__,
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "steps": str(steps), "seed": str(seed), "threads": str(threads),
            "heldout_ppl_64x128": f"{ppl:.6f}"}
    save_file({k: v.detach().contiguous() for k, v in model.flat_state().items()}, str(out),
              metadata=meta)
    return model, ppl


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--d-model", type=int, default=D_MODEL)
    ap.add_argument("--n-layer", type=int, default=N_LAYER)
    ap.add_argument("--n-head", type=int, default=N_HEAD)
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args()
    train(a.steps, a.batch, a.lr, seed=a.seed, threads=a.threads, out=Path(a.out),
          d_model=a.d_model, n_layer=a.n_layer, n_head=a.n_head)
