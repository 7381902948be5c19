"""Benchmark: the closed-form array model and per-inference energy over whole networks.

    .venv/bin/python benchmarks/bench_array_model.py

Prints milliseconds per call for digits-cnn / minilm (when lowbit.sim provides them) and a
synthetic 10 000-layer network, for each dataflow.
"""

from __future__ import annotations

import time

import numpy as np

from lowbit.cost_models.array import ArrayConfig, network_model
from lowbit.cost_models.inference import evaluate_format


def _time(fn, reps=20):
    fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps * 1e3


def main() -> None:
    rng = np.random.default_rng(0)
    synth = [{"name": f"l{i}", "M": int(m), "K": int(k), "N": int(n)}
             for i, (m, k, n) in enumerate(rng.integers(1, 4096, size=(10_000, 3)))]
    nets = {"synthetic-10k": synth}
    try:
        from lowbit.sim.workloads import get_workload, list_workloads

        for name in list_workloads():
            try:
                nets[name] = get_workload(name).layers()
            except Exception as exc:  # noqa: BLE001 - a workload may need data not present
                print(f"skip {name}: {exc}")
    except ImportError:
        pass
    print(f"{'network':16s} {'layers':>7s} " + " ".join(f"{d:>9s}" for d in ("OS", "WS", "IS"))
          + "   evaluate_format(mxfp4)")
    for name, layers in nets.items():
        ts = [_time(lambda d=d, L=layers: network_model(L, ArrayConfig(32, 32, d))) for d in
              ("OS", "WS", "IS")]
        ef = _time(lambda L=layers: evaluate_format("mxfp4", L), reps=3)
        print(f"{name:16s} {len(layers):7d} " + " ".join(f"{t:7.3f}ms" for t in ts)
              + f"   {ef:8.2f} ms")


if __name__ == "__main__":
    main()
