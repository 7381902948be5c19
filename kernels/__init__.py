"""lowbit.kernels: Triton and numba kernels that run the lowbit number formats on real kernel code.

Modules (imported lazily so that numba/torch/triton load only when used):

- :mod:`lowbit.kernels.triton_quant`: Triton FP8 / MXFP8 / MXFP4 / NVFP4 quantize + dequantize
- :mod:`lowbit.kernels.triton_gemm`:  Triton block-scaled FP4 GEMM (tl.dot_scaled, dequant+dot)
- :mod:`lowbit.kernels.numba_quant`:  numba fused single-pass versions of the quantizers
- :mod:`lowbit.kernels.numba_gemm`:   numba block-scaled FP4 GEMM
- :mod:`lowbit.kernels.spec`:         the kernels' constants, derived from the format objects
- :mod:`lowbit.kernels.validate`:     ``python -m lowbit.kernels.validate`` (GPU or CPU)

All kernels round with integer bit manipulation on the float32 bit pattern and are checked bit
for bit against :mod:`lowbit.formats` and the block-scaled GEMM model
(docs/kernels.md).
Triton runs through its CPU interpreter (TRITON_INTERPRET=1, set automatically when torch sees
no CUDA device and the variable is unset) or natively on a GPU.
"""
import importlib

__all__ = ["triton_quant", "triton_gemm", "numba_quant", "numba_gemm", "spec", "vectors",
           "validate"]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
