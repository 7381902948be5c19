"""Low-precision training experiment: does the NVFP4 pretraining recipe track high precision?

    python scripts/lowprec_training.py [--steps 300] [--seeds 0,1,2] [--out results/lowprec_training]

Trains the tinylm byte-level GPT (:mod:`lowbit.sim.workloads.tinylm_torch`, here d_model 64,
2 layers, 4 heads, context 32) on the committed CPython-library corpus
(:mod:`lowbit.sim.workloads.pycorpus`) from the same initialisation and data order per seed,
under four recipes of :func:`lowbit.sim.torch.train_recipe` applied to every nn.Linear:

* ``bf16``            every GEMM operand rounded to bfloat16 (the high-precision baseline);
* ``mxfp8``           MXFP8 E4M3 for all operands of all three GEMMs;
* ``nvfp4-rtn``       NVFP4 everywhere, round-to-nearest, 1-D blocks, no RHT, no BF16 layers;
* ``nvfp4-pretrain``  the published NVFP4 recipe (2-D weight blocks, SR on gradients, RHT-16
  on the weight-gradient GEMM, the last 16% of linear layers in BF16).

AdamW (lr 3e-3, betas 0.9/0.95, weight decay 0.1 on matrices), 20 warm-up steps then cosine,
batch 8 x 32 bytes, gradient clipping 1.0, one thread, deterministic. The GEMMs accumulate in float64 on the quantised
values (accumulator not modelled: an FP32 accumulator's rounding is orders of magnitude below
FP4 quantisation noise). Writes ``OUT/losses.csv`` (every step), ``OUT/table.md`` (final loss =
mean of the last 10% of steps, mean and min-max over seeds, gap to bf16 in % of the bf16 loss,
held-out loss, steps/s relative to float32 training of the same model) and ``OUT/loss.png``
(training loss, smoothed over 10 steps, band = min-max over seeds).
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # tiny GEMMs: one thread each is fastest and reproducible

import argparse  # noqa: E402
import csv  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from lowbit.sim.torch import train_recipe  # noqa: E402
from lowbit.sim.workloads.pycorpus import eval_windows, load_corpus  # noqa: E402
from lowbit.sim.workloads.tinylm_torch import (  # noqa: E402
    TinyLM,
    TinyLMConfig,
    adamw,
    sample_windows,
    set_lr,
)

RECIPES = ("bf16", "mxfp8", "nvfp4-rtn", "nvfp4-pretrain")
LABELS = {"float32": "float32 (torch)", "bf16": "BF16", "mxfp8": "MXFP8 (E4M3)",
          "nvfp4-rtn": "NVFP4, RTN only", "nvfp4-pretrain": "NVFP4 recipe (2-D W, SR, RHT, BF16 tail)"}
CONFIG = TinyLMConfig(ctx=32, d_model=64, n_layer=2, n_head=4)


def _loss(model, xb):
    x = torch.as_tensor(xb, dtype=torch.long)
    logits = model(x[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))


def run(recipe: str, seed: int, steps: int, batch: int = 8, lr: float = 3e-3, warmup: int = 20):
    """(per-step training losses, held-out loss, seconds) of one training run."""
    torch.manual_seed(seed)
    model = TinyLM(CONFIG)
    if recipe != "float32":
        train_recipe(model, recipe, seed=seed)
    train, heldout = load_corpus()
    rng = np.random.default_rng(seed)
    opt = adamw(model, lr)
    losses = []
    t0 = time.perf_counter()
    for step in range(steps):
        set_lr(opt, lr, step, steps, warmup)
        loss = _loss(model, sample_windows(rng, train, CONFIG.ctx, batch))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        held = _loss(model, eval_windows(heldout, 32, CONFIG.ctx + 1)).item()
    return np.array(losses), held, seconds


def _plot(curves: dict, steps: int, path: Path):
    """Left: training loss (10-step mean), band = min-max over seeds. Right: the paired gap
    to BF16 (same seed = same initialisation and batches), 25-step mean, band over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, az) = plt.subplots(1, 2, figsize=(11.5, 4.3))
    colors = dict(zip(RECIPES, ("tab:blue", "tab:orange", "tab:green", "tab:red")))

    def smooth(v, k):
        return np.convolve(v, np.ones(k) / k, mode="valid")

    for r, L in curves.items():
        sm = np.stack([smooth(v, 10) for v in L])
        x = np.arange(sm.shape[1]) + 10
        ax.plot(x, sm.mean(0), label=LABELS[r], lw=1.3, color=colors[r])
        ax.fill_between(x, sm.min(0), sm.max(0), alpha=0.2, color=colors[r])
        gap = np.stack([smooth(v - b, 25) for v, b in zip(L, curves["bf16"])])
        x = np.arange(gap.shape[1]) + 25
        az.plot(x, gap.mean(0), label=LABELS[r], lw=1.5, color=colors[r])
        az.fill_between(x, gap.min(0), gap.max(0), alpha=0.2, color=colors[r])
    ax.set(xlabel="training step", ylabel="training loss (nats / byte, 10-step mean)",
           title="Byte-level GPT on CPython sources (band: seeds)")
    ax.set_ylim(top=4.0)
    az.axhline(0.0, color="k", lw=0.6)
    az.set(xlabel="training step", ylabel="loss - BF16 loss, same seed (25-step mean)",
           title="Gap to BF16 (band: min-max over 3 seeds)")
    az.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _read_curves(path: Path) -> dict:
    rows = list(csv.DictReader(path.open()))
    out: dict = {}
    for r in rows:
        out.setdefault(r["recipe"], {}).setdefault(int(r["seed"]), []).append(float(r["loss"]))
    return {k: [np.array(v[s]) for s in sorted(v)] for k, v in out.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default="results/lowprec_training")
    ap.add_argument("--plot-only", action="store_true", help="redraw OUT/loss.png from OUT/losses.csv")
    args = ap.parse_args(argv)
    if args.plot_only:
        c = _read_curves(Path(args.out) / "losses.csv")
        _plot({r: c[r] for r in RECIPES}, len(c["bf16"][0]), Path(args.out) / "loss.png")
        return 0
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    curves, held, secs = {}, {}, {}
    rows = []
    for r in ("float32",) + RECIPES:
        res = [run(r, s, args.steps) for s in seeds]
        curves[r] = [x[0] for x in res]
        held[r] = [x[1] for x in res]
        secs[r] = float(np.mean([x[2] for x in res]))
        for s, (L, _, _) in zip(seeds, res):
            rows += [{"recipe": r, "seed": s, "step": i + 1, "loss": v} for i, v in enumerate(L)]
        print(f"{r}: final losses {[round(float(np.mean(L[-args.steps // 10:])), 4) for L in curves[r]]}",
              flush=True)
    with (out / "losses.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["recipe", "seed", "step", "loss"])
        w.writeheader()
        w.writerows(rows)
    tail = max(args.steps // 10, 1)
    final = {r: np.array([np.mean(L[-tail:]) for L in curves[r]]) for r in curves}
    base = final["bf16"]
    md = ["| recipe | final train loss (mean [min, max] over seeds) | gap to BF16 | "
          "held-out loss | steps/s | vs float32 |", "|---|---|---:|---:|---:|---:|"]
    for r in curves:
        gap = 100 * (final[r] - base) / base
        md.append(f"| {LABELS[r]} | {final[r].mean():.4f} [{final[r].min():.4f}, "
                  f"{final[r].max():.4f}] | {gap.mean():+.2f}% [{gap.min():+.2f}, {gap.max():+.2f}] | "
                  f"{np.mean(held[r]):.4f} | {args.steps / secs[r]:.1f} | "
                  f"{secs['float32'] / secs[r]:.3f}x |")
    table = "\n".join(md)
    (out / "table.md").write_text(table + "\n")
    _plot({r: curves[r] for r in RECIPES}, args.steps, out / "loss.png")
    print(table)
    print(f"wrote {out / 'losses.csv'}, {out / 'table.md'}, {out / 'loss.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
