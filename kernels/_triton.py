"""Import Triton, falling back to its CPU interpreter when no GPU driver is present.

``TRITON_INTERPRET=1`` must be set before ``import triton`` (toolchain notes); this module
sets it when torch sees no CUDA device and the variable is unset, so the same kernels run
natively on a GPU and through the interpreter on a CPU-only machine.
"""
from __future__ import annotations

import os

try:
    import torch
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None

if "TRITON_INTERPRET" not in os.environ and (torch is None or not torch.cuda.is_available()):
    os.environ["TRITON_INTERPRET"] = "1"

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover
    triton = None
    tl = None

INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
AVAILABLE = triton is not None and torch is not None


def device() -> str:
    """Device that kernel inputs must live on: 'cuda' natively, 'cpu' in the interpreter."""
    return "cpu" if INTERPRETED else "cuda"


def require():
    if not AVAILABLE:
        raise ImportError("lowbit.kernels Triton kernels need `pip install lowbit[kernels]` "
                          "(torch==2.13.0, triton>=3.9)")
