"""Add your own model to the lowbit format sweep in a few lines.

Run:  .venv/bin/python examples/custom_workload.py
It registers a tiny two-layer MLP as workload "my-mlp", evaluates it under a few formats, then
runs the same sweep machinery as `lowbit sweep --workload my-mlp` (results in results/my-mlp).

A workload = the quantisable GEMM layers (LayerSpec), a numpy forward pass that sends every such
layer through ``self._gemm(name, x2d, ctx)``, evaluation inputs and a metric. Quantisation of
weights (RTN / GPTQ), activations, accumulation, per-layer SQNR and activation capture are done
by the base class.
"""

import numpy as np

from lowbit.sim.sweep import sweep
from lowbit.sim.workloads import LayerSpec, LayerwiseWorkload, make_config, register_workload


class MyMLP(LayerwiseWorkload):
    name = "my-mlp"
    metric_name = "cosine"  # higher is better
    version = "1"           # bump when the weights change: the sweep cache keys on it

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.w1 = (rng.standard_normal((64, 32)) / 6).astype(np.float32)   # (out, in)
        self.w2 = (rng.standard_normal((10, 64)) / 8).astype(np.float32)
        self.x = rng.standard_normal((256, 32))                          # evaluation inputs

    def _build_layers(self):
        return [LayerSpec("fc1", "linear", self.w1, None, macs=64 * 32, in_shape=(32,), out_shape=(64,)),
                LayerSpec("fc2", "linear", self.w2, None, macs=10 * 64, in_shape=(64,), out_shape=(10,))]

    def _forward(self, x, ctx):
        h = np.maximum(self._gemm("fc1", x, ctx), 0.0)
        return self._gemm("fc2", h, ctx)

    def eval_inputs(self):
        return self.x

    def _metric(self, out, ref_out):  # out: quantised model output, ref_out: float reference
        cos = np.sum(out * ref_out, 1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(ref_out, axis=1))
        return {"metric": float(cos.mean())}


register_workload("my-mlp", MyMLP)

if __name__ == "__main__":
    wl = MyMLP()
    for fmt in ("int8_pc", "mxfp4", "nvfp4"):
        r = wl.evaluate(make_config(fmt, accum="fp32"))            # same config for every layer
        print(f"{fmt:8s} cosine={r['metric']:.5f} per-layer SQNR (dB)="
              f"{ {k: round(v, 1) for k, v in r['per_layer_sqnr'].items()} }")
    mixed = {"fc1": make_config("mxfp4", accum="fp32"), "fc2": make_config("fp8_e4m3", accum="fp32")}
    print("mixed   cosine=%.5f" % wl.evaluate(mixed)["metric"])    # per-layer configs
    res = sweep("my-mlp", formats=["fp32", "fp8_e4m3", "mxfp4", "int4_g128"], accums=["fp32"],
                out="results/my-mlp", workers=1, progress=False)
    print(res["paths"]["md"].read_text())
