"""lowbit.formats: bit-accurate emulation of low-precision number formats.

Descriptors (:class:`FloatFormat`, :class:`IntFormat`, :class:`BlockFormat`), a registry of named
formats (:func:`get_format`), the accumulator and multiplier models of the numeric contract
(:mod:`~lowbit.formats.accum`, :mod:`~lowbit.formats.multiplier`), element conversion with every rounding mode (:func:`quantize`,
:func:`encode`, :func:`decode`), one generic block engine (MX, NVFP4, BFP, scaled INT) returning
:class:`QuantizedTensor`, sub-byte packing and error metrics. Nothing here imports the rest of
lowbit.
"""

from lowbit.formats._codec import OVERFLOW_ALIASES, ROUNDING_ALIASES, rounding_mode
from lowbit.formats._kernel import (
    NAN_INPUT,
    OVERFLOW,
    ROUNDING,
    STOCHASTIC_ROUNDING,
    SUBNORMAL_OUTPUT,
)
from lowbit.formats.accum import ACCUM_KINDS, AccumModel, Exact, FloatAccum, IntAccum, parse_accum
from lowbit.formats.api import decode, encode, quantize
from lowbit.formats.block_format import SCALE_RULES, BlockFormat
from lowbit.formats.buffers import release_buffers
from lowbit.formats.chunking import stochastic_bits
from lowbit.formats.convert import rounding_table
from lowbit.formats.float_format import FloatFormat, p3109
from lowbit.formats.int_format import IntFormat, ap_fixed, fixed_point
from lowbit.formats.metrics import clipped_fraction, code_histogram, mse, sqnr_db
from lowbit.formats.multiplier import (
    MULTIPLIER_KINDS,
    CodeMul,
    ExactMul,
    LMul,
    MulModel,
    parse_multiplier,
)
from lowbit.formats.pack import pack, packed_nbytes, unpack
from lowbit.formats.qtensor import QuantizedTensor
from lowbit.formats.registry import (
    FORMAT_KINDS,
    FORMAT_TYPES,
    get_format,
    list_formats,
    register_format,
    resolve,
)
from lowbit.formats.scale_rules import POW2_RULES, exponent_range, pow2_exponent

__all__ = [
    "FloatFormat", "IntFormat", "BlockFormat", "QuantizedTensor", "SCALE_RULES",
    "ROUNDING", "OVERFLOW", "NAN_INPUT", "SUBNORMAL_OUTPUT",
    "STOCHASTIC_ROUNDING", "ROUNDING_ALIASES", "OVERFLOW_ALIASES", "rounding_mode",
    "p3109", "fixed_point", "ap_fixed",
    "get_format", "list_formats", "register_format", "resolve", "FORMAT_TYPES", "FORMAT_KINDS",
    "POW2_RULES", "pow2_exponent", "exponent_range",
    "quantize", "encode", "decode", "release_buffers", "rounding_table", "stochastic_bits", "pack", "unpack", "packed_nbytes",
    "AccumModel", "Exact", "FloatAccum", "IntAccum", "parse_accum", "ACCUM_KINDS",
    "MulModel", "ExactMul", "LMul", "CodeMul", "parse_multiplier", "MULTIPLIER_KINDS",
    "mse", "sqnr_db", "clipped_fraction", "code_histogram",
]
