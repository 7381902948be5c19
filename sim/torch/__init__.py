"""lowbit.sim.torch: run your own PyTorch model through lowbit.sim (``pip install lowbit[torch]``).

* :func:`emulate` - a copy of a model whose Linear / Conv1d / Conv2d layers and activation
  matmuls / attention run through lowbit.sim's quantised GEMM with per-layer
  :class:`~lowbit.sim.QuantConfig` (:mod:`lowbit.sim.torch.emulate`);
* :func:`list_gemms` - the GEMMs of a forward pass (names, shapes, MACs);
* :class:`TorchWorkload` - a model + data + metric as a lowbit workload for ``sweep``,
  ``search`` and ``report`` (:mod:`lowbit.sim.torch.workload`).

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
from .workload import METRICS, ModelInputs, TorchWorkload

__all__ = ["METRICS", "ConfigLookup", "ModelInputs", "TorchWorkload", "emulate",
           "emulated_layers", "list_gemms"]
