"""A small workload for the sweep robustness tests, loaded by ``--workload FILE.py:make`` in the
sweep processes, their spawned workers and Dask workers.  Controlled by environment variables:

* ``SLOWWL_LOG``: file to which every evaluation appends ``pid format accum start|end``;
* ``SLOWWL_SLEEP``: seconds each evaluation sleeps, ``"0.5"`` or ``"fp32=0,mxfp4=30"``
  (format=seconds, ``*`` for the rest);
* ``SLOWWL_BARRIER``: a folder; before its first evaluation a process writes ``ready-<pid>``
  there and waits until ``go`` exists (so that concurrent sweeps all hold a claim first).
"""

import os
import time
from pathlib import Path

import numpy as np

from lowbit.sim.workloads import LayerSpec, LayerwiseWorkload

FORMATS = ["fp32", "fp8_e4m3", "fp8_e5m2", "mxfp4", "nvfp4", "int8_pc", "int4_pc", "fp6_e2m3"]


def _sleep_for(fmt: str) -> float:
    spec = os.environ.get("SLOWWL_SLEEP", "0")
    if "=" not in spec:
        return float(spec)
    table = dict(item.split("=") for item in spec.split(","))
    return float(table.get(fmt, table.get("*", 0)))


def _log(*words):
    path = os.environ.get("SLOWWL_LOG")
    if path:
        with open(path, "a") as fh:  # one short O_APPEND write per line: atomic
            fh.write(" ".join(str(w) for w in words) + "\n")


class SlowMLP(LayerwiseWorkload):
    name = "slow-mlp"
    metric_name = "cosine"
    version = "s1"

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.w1 = rng.standard_normal((16, 32)).astype(np.float32)
        self.w2 = rng.standard_normal((4, 16)).astype(np.float32)
        self.x = rng.standard_normal((8, 32))
        self._waited = False

    def _build_layers(self):
        return [LayerSpec("l1", "linear", self.w1, None, 16 * 32, (32,), (16,)),
                LayerSpec("l2", "linear", self.w2, None, 4 * 16, (16,), (4,))]

    def _forward(self, x, ctx):
        return self._gemm("l2", np.maximum(self._gemm("l1", x, ctx), 0), ctx)

    def eval_inputs(self):
        return self.x

    def _metric(self, out, ref):
        return {"metric": float(np.sum(out * ref) / (np.linalg.norm(out) * np.linalg.norm(ref)))}

    def evaluate(self, configs=None, quantizer="rtn"):
        fmt = getattr(getattr(configs, "weight", None), "name", "none")
        acc = getattr(getattr(configs, "accum", None), "name", "none")
        barrier = os.environ.get("SLOWWL_BARRIER")
        if barrier and not self._waited:
            Path(barrier, f"ready-{os.getpid()}").write_text("")
            while not Path(barrier, "go").exists():
                time.sleep(0.05)
            self._waited = True
        _log(os.getpid(), fmt, acc, "start")
        time.sleep(_sleep_for(fmt))
        res = super().evaluate(configs, quantizer)
        _log(os.getpid(), fmt, acc, "end")
        return res


def make():
    return SlowMLP()
