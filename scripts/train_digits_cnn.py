"""Train the ``digits-cnn`` workload of ``lowbit.sim`` and write its weights.

Data: scikit-learn's bundled 8x8 digits (1797 images, no download), pixel values 0..16
scaled to [0, 1]. Fixed stratified split: ``train_test_split(test_size=0.25,
random_state=0, stratify=y)`` -> 1347 train / 450 test images.

Network (NCHW / OIHW, the layout lowbit.sim.workloads.digits_cnn runs in numpy):
    conv1  1->16, 3x3, pad 1  -> ReLU
    conv2 16->32, 3x3, pad 1  -> ReLU -> 2x2 max-pool (8x8 -> 4x4)
    fc1   512->64             -> ReLU
    fc2    64->10             (logits)

Deterministic: fixed seeds, single thread, deterministic torch algorithms. Run:
    .venv/bin/python scripts/train_digits_cnn.py [--out sim/workloads/data/digits_cnn.npz]
and commit the .npz (about 150 KB). The script prints the fp32 test accuracy computed with the
numpy inference of the package, which is also stored in the file as ``test_accuracy``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

SEED = 0
EPOCHS = 60
BATCH = 64
LR = 2e-3
WEIGHT_DECAY = 1e-4


def split_indices(y):
    """(train_idx, test_idx) of the fixed stratified split."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=0.25, random_state=0, stratify=y)
    return tr.astype(np.int64), te.astype(np.int64)


def load_split():
    """Return (x_train, y_train, x_test, y_test); x float32 (N, 1, 8, 8) in [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = d.target.astype(np.int64)
    tr, te = split_indices(y)
    return x[tr], y[tr], x[te], y[te]


def train(epochs: int = EPOCHS) -> dict[str, np.ndarray]:
    import torch
    import torch.nn as nn

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    xtr, ytr, xte, yte = load_split()
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64), nn.ReLU(),
        nn.Linear(64, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    gen = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), BATCH):
            idx = perm[i:i + BATCH]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        sched.step()
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    return {
        "conv1.weight": sd["0.weight"], "conv1.bias": sd["0.bias"],
        "conv2.weight": sd["2.weight"], "conv2.bias": sd["2.bias"],
        "fc1.weight": sd["6.weight"], "fc1.bias": sd["6.bias"],
        "fc2.weight": sd["8.weight"], "fc2.bias": sd["8.bias"],
    }


def main(argv=None) -> int:
    here = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(here / "sim" / "workloads" / "data" / "digits_cnn.npz"))
    p.add_argument("--epochs", type=int, default=EPOCHS)
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    params = train(args.epochs)
    from sklearn.datasets import load_digits

    tr, te = split_indices(load_digits().target)
    np.savez_compressed(args.out, train_idx=tr, test_idx=te, **params)
    # accuracy with the package's numpy inference (fp32 weights, float64 arithmetic)
    from lowbit.sim.workloads.digits_cnn import DigitsCNN, load_digits_split

    load_digits_split.cache_clear()
    acc = DigitsCNN(path=args.out).fp32_accuracy()
    np.savez_compressed(args.out, test_accuracy=np.float64(acc), train_idx=tr, test_idx=te,
                        **params)
    print(f"wrote {args.out}: fp32 test accuracy {acc:.6f} ({round(acc * 450)}/450)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
