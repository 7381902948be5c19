"""Real workloads for the format sweep and the mixed-precision search.

    from lowbit.sim.workloads import get_workload, register_workload, list_workloads
    wl = get_workload("digits-cnn")          # or "minilm", "tinylm"
    res = wl.evaluate(make_config("mxfp4", accum="fp32"))   # {"metric", "per_layer_sqnr", ...}

See :mod:`lowbit.sim.workloads.base` for the protocol and ``examples/custom_workload.py`` for
adding a model.
"""

from __future__ import annotations

from ..qconfig import make_config
from .base import (
    QUANTIZERS,
    LayerSpec,
    LayerwiseWorkload,
    is_builtin_workload,
    layer_gemm,
    register_workload,
    registered_workloads,
    sqnr_db,
    workload_factory,
)
from .digits_cnn import DigitsCNN
from .external import get_workload, list_workloads, resolve_workload
from .minilm import MiniLM
from .tinylm import TinyLM


def _digits_cnn():
    return DigitsCNN()


def _minilm():
    return MiniLM()


register_workload("digits-cnn", _digits_cnn)
register_workload("minilm", _minilm)
register_workload("tinylm", TinyLM)

DEFAULT_WORKLOAD = "digits-cnn"

__all__ = [
    "DEFAULT_WORKLOAD",
    "QUANTIZERS",
    "LayerSpec",
    "LayerwiseWorkload",
    "get_workload",
    "is_builtin_workload",
    "layer_gemm",
    "list_workloads",
    "make_config",
    "register_workload",
    "registered_workloads",
    "resolve_workload",
    "sqnr_db",
    "workload_factory",
]
