"""The GEMM engine: ``out[n, m] = acc_k A[n, k] * W[m, k]`` for prepared operands
(:class:`~lowbit.sim.operands.Operand`, K last) under an accumulator model of
:mod:`lowbit.formats.accum`.

Semantics (the model; every path below computes exactly this)
--------------------------------------------------------------
*Element path* (dequantised values): every product ``a*b`` of quantised values is exact in
float64 when the two operands' significands need <= 53 bits together (any pair of formats up to
fp32 x fp32, MX with power-of-two scales); otherwise each product is carried exactly as a
Dekker pair ``hi + lo``.  Accumulation per the model:

* ``Exact``: the exact dot product, correctly rounded ONCE to float64.
* ``FloatAccum``: sequential / pairwise / chunked, one RNE rounding of the exact sum per add
  (TwoSum + residual-sign tie-break, :mod:`lowbit.sim.accum_round`).
* ``IntAccum``: the values must be integers on the operands' fixed-point grids (int formats:
  ``code``; float formats: multiples of their smallest subnormal); products are summed in the
  wrap/saturate register, the result is scaled back by the two grid units.

*Block path* (OCP MX v1.0 section 6): used when ``dot="block"``, or ``dot="auto"`` and both
operands are block formats (or one is and the accumulator is an ``IntAccum``) and the
accumulator is ``Exact``, ``IntAccum`` or a sequential un-chunked ``FloatAccum``.  Per K-block:
exact inner sum of element products (integer register for ``IntAccum``), scaled by the two
block scales, accumulated across blocks with the model (one rounding per block for
``FloatAccum``); per-tensor scales (NVFP4) multiply the result once at the end in float64 (the
epilogue ``alpha``).  Operands with different block lengths are aligned on ``gcd`` of the
lengths; element formats / ``None`` count as one block of length K.

Execution
---------
:mod:`lowbit.sim.fastpath` picks a fast path whenever it can PROVE, from the formats and the
data, that the path returns the reference result bit for bit (float64 BLAS where every partial
sum is exact, vectorised multi-core kernels for per-add rounding); otherwise the reference
kernels of :mod:`lowbit.sim.accum_kernels` run.  :func:`gemm_path` names the path.  Set the
environment variable ``LOWBIT_SLOW_GEMM=1`` to force the reference kernels (for comparison and
debugging).

Products are exact in every path above. A multiplier model other than the exact product
(``multiplier=``, :mod:`lowbit.formats.multiplier`: L-Mul, a function on codes) runs the
multiplier path :mod:`lowbit.sim.mulpath` instead, selected here before the fast paths, which
all rely on exact products.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from lowbit.formats.accum import Exact, FloatAccum, IntAccum, parse_accum
from lowbit.formats.multiplier import parse_multiplier

from . import accum_kernels as K_
from . import fastpath
from .accum_round import float_params
from .exactness import INT_GRID_BITS
from .mulpath import mul_gemm
from .operands import Operand, align_blocks, common_blocks

DOT_PATHS = ("auto", "block", "element")
REFERENCE_ELEMENT = "reference-element"
REFERENCE_BLOCK = "reference-block"
MULTIPLIER_ELEMENT = "multiplier-element"
MULTIPLIER_BLOCK = "multiplier-block"


# ------------------------------------------------------------------------------ dispatch


def block_path_ok(accum) -> bool:
    """Whether the block dot product supports accumulator model ``accum``: ``Exact``,
    ``IntAccum`` or a sequential un-chunked ``FloatAccum``."""
    if isinstance(accum, FloatAccum):
        return accum.order == "sequential" and accum.chunk is None
    return True


def _use_block(A: Operand, W: Operand, acc, dot: str) -> bool:
    if dot not in DOT_PATHS:
        raise ValueError(f"dot={dot!r}; allowed: {', '.join(DOT_PATHS)}")
    if dot == "block":
        if not block_path_ok(acc):
            raise ValueError("dot='block' needs accum exact, int*, or a sequential un-chunked "
                             f"float accumulator (got {acc.name})")
        return True
    if dot == "auto" and block_path_ok(acc):
        return (A.is_block and W.is_block) or (
            isinstance(acc, IntAccum) and (A.is_block or W.is_block))
    return False


def _check(A: Operand, W: Operand):
    if A.values.shape[1] != W.values.shape[1]:
        raise ValueError(f"K mismatch: {A.values.shape[1]} vs {W.values.shape[1]}")


def gemm_path(A: Operand, W: Operand, accum, dot: str = "auto", multiplier=None) -> str:
    """Name of the path :func:`gemm_nt` takes for these operands (a fast path of
    :mod:`lowbit.sim.fastpath`, ``"reference-element"`` / ``"reference-block"``, or
    ``"multiplier-element"`` / ``"multiplier-block"``)."""
    acc = parse_accum(accum)
    _check(A, W)
    use_block = _use_block(A, W, acc, dot)
    if not parse_multiplier(multiplier).is_exact:
        return MULTIPLIER_BLOCK if use_block else MULTIPLIER_ELEMENT
    fast = None if fastpath.slow_forced() else fastpath.choose(A, W, acc, use_block)
    if fast is not None:
        return fast.name
    return REFERENCE_BLOCK if use_block else REFERENCE_ELEMENT


def gemm_nt(A: Operand, W: Operand, accum, dot: str = "auto", multiplier=None) -> np.ndarray:
    """``A @ W.T`` (N, M) float64 for prepared (N, K) / (M, K) operands with accumulator model
    ``accum`` (AccumModel or string); ``dot``: ``"auto"`` | ``"block"`` | ``"element"``;
    ``multiplier``: a multiplier model or its string (``None`` / ``"exact"``: exact products)."""
    acc = parse_accum(accum)
    mul = parse_multiplier(multiplier)
    _check(A, W)
    use_block = _use_block(A, W, acc, dot)
    if A.values.shape[1] == 0 or A.values.shape[0] == 0 or W.values.shape[0] == 0:
        return np.zeros((A.values.shape[0], W.values.shape[0]))
    if not mul.is_exact:
        return mul_gemm(A, W, acc, use_block, mul)
    if (not use_block and isinstance(acc, FloatAccum) and acc.order == "pairwise"
            and A.sig_bits + W.sig_bits > 53):
        warnings.warn("pairwise accumulation with > 53 product significand bits: products "
                      "are rounded to float64 before the adder tree", stacklevel=3)
    fast = None if fastpath.slow_forced() else fastpath.choose(A, W, acc, use_block)
    if fast is not None:
        return fast.run()
    return reference_gemm(A, W, acc, use_block)


# ------------------------------------------------------------------------------ reference


def reference_gemm(A: Operand, W: Operand, acc, use_block: bool) -> np.ndarray:
    """The reference kernels (:mod:`lowbit.sim.accum_kernels`), no fast path."""
    return _block_gemm(A, W, acc) if use_block else _element_gemm(A, W, acc)


def _int_grid(op: Operand, values: np.ndarray, what: str):
    """Integer array and unit 2**lsb of an operand on its fixed-point grid."""
    lsb = 0 if op.lsb is None else op.lsb
    ints = np.ldexp(values, -lsb)
    if not np.all(np.isfinite(ints)) or not np.array_equal(ints, np.rint(ints)):
        raise ValueError(f"IntAccum: {what} values are not integers on the grid 2**{lsb}; "
                         "use an int format, dot='block' for block formats, or a float accumulator")
    if np.any(np.abs(ints) >= 2.0 ** INT_GRID_BITS):
        raise ValueError(f"IntAccum: {what} grid integers exceed 2**{INT_GRID_BITS}")
    return ints.astype(np.int64), 2.0 ** lsb


def _element_gemm(A: Operand, W: Operand, acc) -> np.ndarray:
    a, w = A.values, W.values
    if isinstance(acc, IntAccum):
        ia, ua = _int_grid(A, a, "activation")
        iw, uw = _int_grid(W, w, "weight")
        one_a, one_w = np.ones((ia.shape[0], 1)), np.ones((iw.shape[0], 1))
        return K_.block_gemm_int(ia, one_a, iw, one_w, block_len=max(ia.shape[1], 1),
                                 bits=acc.bits, saturate=acc.overflow == "saturate",
                                 unit=ua * uw)
    twoprod = A.sig_bits + W.sig_bits > 53
    if isinstance(acc, Exact):
        return K_.gemm_exact(a, w, twoprod=twoprod)
    fp = float_params(acc.fmt, acc.overflow)
    if acc.chunk is not None:
        return K_.gemm_chunk(a, w, chunk=acc.chunk, twoprod=twoprod, fp=fp)
    if acc.order == "pairwise":
        return K_.gemm_pairwise(a, w, fp)
    if twoprod:
        return K_.gemm_chunk(a, w, chunk=1, twoprod=True, fp=fp)
    return K_.gemm_seq(a, w, fp)


def _plain_inner_ok(A: Operand, W: Operand, bs: int) -> bool:
    """True if every partial inner sum of a block is a fixed-point number of <= 53 bits (from
    the formats' grids)."""
    if A.lsb is None or W.lsb is None:
        return False
    top = math.floor(math.log2(A.pmax * W.pmax)) + 1 + math.ceil(math.log2(max(bs, 1)))
    return top - (A.lsb + W.lsb) <= 53


def _block_gemm(A: Operand, W: Operand, acc) -> np.ndarray:
    bs, Kp = common_blocks(A, W)
    Pa, Sa = align_blocks(A, bs, Kp)
    Pw, Sw = align_blocks(W, bs, Kp)
    if isinstance(acc, IntAccum):
        ia, ua = _int_grid(A, Pa, "activation element")
        iw, uw = _int_grid(W, Pw, "weight element")
        out = K_.block_gemm_int(ia, Sa, iw, Sw, block_len=bs, bits=acc.bits,
                                saturate=acc.overflow == "saturate", unit=ua * uw)
    elif isinstance(acc, Exact):
        out = K_.block_gemm_exact(Pa, Sa, Pw, Sw, block_len=bs,
                                  plain=_plain_inner_ok(A, W, bs))
    else:
        out = K_.block_gemm_round(Pa, Sa, Pw, Sw, block_len=bs, plain=_plain_inner_ok(A, W, bs),
                                  fp=float_params(acc.fmt, acc.overflow))
    t = A.tensor_scale * W.tensor_scale
    return out * t if t != 1.0 else out


__all__ = ["gemm_nt", "gemm_path", "block_path_ok", "reference_gemm", "DOT_PATHS"]
