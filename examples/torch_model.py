"""Your own PyTorch models through lowbit: format sweep, mixed-precision search, cost report.

Run:  .venv/bin/python examples/torch_model.py [--out results/torch_model]

Two user-defined models, trained here in a few seconds on scikit-learn's bundled 8x8 digits:
a CNN (``DigitCNN``) and a small transformer that reads the image as a sequence of 8 rows
(``RowTransformer``). For each, the lowbit part is the 12 lines of :func:`study`: wrap the
model in a ``TorchWorkload``, sweep formats, run the ILP search under a memory budget and
write the hardware cost report. The same workloads work from the command line:

    lowbit sweep  --workload examples/torch_model.py:make_transformer_workload --formats fp8_e4m3,mxfp4
    lowbit search --workload examples/torch_model.py:make_cnn_workload --budget memory=0.5
    lowbit report --workload examples/torch_model.py:make_cnn_workload --formats int8_pc,mxfp4
"""

from __future__ import annotations

import argparse
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits

from lowbit.cost_models.report import build_report
from lowbit.sim.search import search, write_outputs
from lowbit.sim.sweep import sweep
from lowbit.sim.torch import TorchWorkload
from lowbit.sim.workloads import register_workload


# ----------------------------------------------------------------------------- your models
class DigitCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, groups=2)
        self.fc = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        return self.fc(x.flatten(1))


class RowTransformer(nn.Module):
    def __init__(self, d=32, heads=4, layers=2):
        super().__init__()
        self.embed = nn.Linear(8, d)
        self.pos = nn.Parameter(torch.zeros(8, d))
        layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, 10)

    def forward(self, x):  # x (N, 1, 8, 8): 8 rows of 8 pixels
        return self.head(self.encoder(self.embed(x[:, 0]) + self.pos).mean(1))


@lru_cache(maxsize=1)
def digits():
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return x[perm[:1300]], y[perm[:1300]], x[perm[1300:]], y[perm[1300:]]


def train(model, epochs=8, seed=0):
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # tiny models: one thread is fastest (and fair to parallel tests)
    x, y, _, _ = digits()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


@lru_cache(maxsize=None)
def make_cnn_workload():
    torch.manual_seed(0)
    x, y, xt, yt = digits()
    return TorchWorkload(train(DigitCNN()), calib=(x[:256], y[:256]), eval=(xt, yt),
                         metric="top1", name="digit-cnn")


@lru_cache(maxsize=None)
def make_transformer_workload():
    torch.manual_seed(0)
    x, y, xt, yt = digits()
    return TorchWorkload(train(RowTransformer()), calib=(x[:256], y[:256]), eval=(xt, yt),
                         metric="top1", name="row-transformer")


# ----------------------------------------------------------------------------- lowbit part
def study(name, wl, out):
    register_workload(name, lambda: wl, overwrite=True)
    res = sweep(name, formats=["fp32", "fp8_e4m3", "mxfp8_e4m3", "mxfp6_e2m3", "mxfp4", "nvfp4",
                               "int8_pc", "int4_pc"], accums=["fp32"],
                out=f"{out}/{name}/sweep", workers=1, progress=False)
    print(res["paths"]["md"].read_text().split("\n\n![")[0])
    s = search(name, "fp8_e4m3,mxfp6_e2m3,mxfp4,nvfp4,int8,int4", "memory=0.6",
               metric="hessian", n_front=4)
    write_outputs(s, f"{out}/{name}/search")
    print("search @ 60% memory:", s.assignment.formats, "measured top1:", s.points[0]["measured"])
    rep = build_report(name, ["int8_pc", "mxfp8_e4m3", "mxfp4", "nvfp4"],
                       out=f"{out}/{name}/report", sweep=f"{out}/{name}/sweep")
    print("report:", rep["paths"]["md"])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="results/torch_model")
    args = ap.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    study("digit-cnn", make_cnn_workload(), args.out)
    study("row-transformer", make_transformer_workload(), args.out)
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    raise SystemExit(main())
