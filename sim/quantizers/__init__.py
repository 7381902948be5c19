"""Weight / activation quantisers for the simulator: RTN with scale search, SmoothQuant scale
migration, GPTQ and block-wise Hadamard rotations (MR-GPTQ style), for any lowbit format."""

from .gptq import gptq_quantize, hessian
from .hadamard import block_hadamard, fwht, rotate_linear
from .rtn import rtn_quantize
from .scales import block_scales, quantize_with_scales, tensor_scale
from .smoothquant import smoothquant, smoothquant_scales

__all__ = [
    "gptq_quantize", "hessian", "rtn_quantize", "smoothquant", "smoothquant_scales",
    "fwht", "block_hadamard", "rotate_linear", "block_scales", "quantize_with_scales",
    "tensor_scale",
]
