"""lowbit.sim: layer-level numeric simulation of quantized models.

* :class:`QuantConfig` and the accumulator models of :mod:`lowbit.formats.accum` (:class:`Exact`, :class:`FloatAccum`,
  :class:`IntAccum`, :func:`parse_accum`)
* quantized GEMM / linear / conv (:func:`qmatmul`, :func:`qlinear`, :func:`qconv2d`) and OCP MX
  section 6 dot products (:func:`mx_dot`, :func:`mx_matmul`)
* quantizers (:mod:`lowbit.sim.quantizers`: RTN, SmoothQuant, GPTQ, block Hadamard)
* workloads (:mod:`lowbit.sim.workloads`), the format sweep (:mod:`lowbit.sim.sweep`) and the
  mixed-precision search (:mod:`lowbit.sim.search`)
"""

from lowbit.formats.accum import AccumModel, Exact, FloatAccum, IntAccum, parse_accum
from lowbit.sim.gemm import qconv2d, qlinear, qlinear_prequant, qmatmul
from lowbit.sim.mxdot import mx_dot, mx_matmul
from lowbit.sim.qconfig import QuantConfig, make_config

__all__ = [
    "QuantConfig", "make_config", "AccumModel", "Exact", "FloatAccum", "IntAccum", "parse_accum",
    "qmatmul", "qlinear", "qlinear_prequant", "qconv2d", "mx_dot", "mx_matmul",
]
