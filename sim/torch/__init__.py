"""lowbit.sim.torch: run your own PyTorch model through lowbit.sim (``pip install lowbit[torch]``).

* :func:`emulate` - a copy of a model whose Linear / Conv1d / Conv2d layers and activation
  matmuls / attention run through lowbit.sim's quantised GEMM with per-layer
  :class:`~lowbit.sim.QuantConfig` (:mod:`lowbit.sim.torch.emulate`);
* :func:`list_gemms` - the GEMMs of a forward pass (names, shapes, MACs);
* :class:`TorchWorkload` - a model + data + metric as a lowbit workload for ``sweep``,
  ``search`` and ``report`` (:mod:`lowbit.sim.torch.workload`);
* :func:`train_recipe` - low-precision training emulation: every Linear / Conv2d runs its
  forward, input-gradient and weight-gradient GEMMs in configured formats, rounding, block
  orientation, random Hadamard transform and accumulator (:mod:`lowbit.sim.torch.training`,
  named recipes in :mod:`lowbit.sim.torch.recipes`).

torch is an optional dependency: ``import lowbit`` / ``lowbit.sim`` never import it; importing
this package without torch raises ImportError naming the extra to install.
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("lowbit.sim.torch needs PyTorch: pip install 'lowbit[torch]' "
                      "(torch==2.13.0, CPU build)") from exc

from .emulate import ConfigLookup, emulate, emulated_layers, list_gemms
from .recipes import RECIPES, train_recipe
from .training import GemmSpec, QConv2d, QLinear, TensorQuant, TrainConfig
from .workload import METRICS, ModelInputs, TorchWorkload

__all__ = ["METRICS", "RECIPES", "ConfigLookup", "GemmSpec", "ModelInputs", "QConv2d", "QLinear",
           "TensorQuant", "TorchWorkload", "TrainConfig", "emulate", "emulated_layers",
           "list_gemms", "train_recipe"]
