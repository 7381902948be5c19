"""OCP MX v1.0 section 6 dot products (also NVFP4 and any symmetric lowbit block format).

Spec 6.1: ``Dot(A, B) = X_A * X_B * sum_i P_A[i] * P_B[i]`` for one block of k elements;
spec 6.2: ``DotGeneral`` sums the block dot products of a longer vector into an FP32
accumulator.  The spec leaves the internal precision and order implementation-defined; this
module fixes them:

* inner (per-block) sum: EXACT.  Element products are fixed-point numbers on the grid
  ``2**(lsb_A + lsb_B)`` (lsb = smallest subnormal exponent, or ``-frac_bits`` for MXINT8);
  when ``max|P_A| * max|P_B| * k`` spans <= 53 bits above that grid (MXFP8-E4M3, MXFP6, MXFP4,
  MXINT8, NVFP4) a float64 running sum is exact (an integer sum in disguise); otherwise
  (MXFP8-E5M2) an exact expansion sum is used.
* block term ``X_A * X_B * inner``: carried exactly (power-of-two scales; UE4M3 / fp32 scales
  via a Dekker product).
* across blocks, in K order, per the accumulator model: ``"fp32"`` (default, spec 6.2) rounds once
  per block add with RNE; ``"exact"`` keeps the exact sum (one final rounding to float64); any
  other float format (``"bf16"``, ``"fp16"``...) or ``int<b>[_sat]`` (inner sums in the integer
  register on the element grid, exact across blocks).
* NVFP4 per-tensor FP32 scales multiply the accumulated result once at the end (GEMM epilogue
  ``alpha = s_A * s_B``), in float64.
* A NaN scale (E8M0 0xFF) makes the block term NaN, which propagates to the result.
"""

from __future__ import annotations

import numpy as np

from lowbit.formats.accum import parse_accum

from .checks import real_array
from .engine import block_path_ok, gemm_nt
from .operands import Operand, element_grid, prepare, quantize_elem, resolve, scale_sig_bits


def mx_matmul(a, b, fmt_a, fmt_b=None, accum="fp32") -> np.ndarray:
    """``a @ b`` with a: (N, K) and b: (K, M) quantised to block formats along K, then
    multiplied per the MX dot rules above.  ``fmt_b`` defaults to ``fmt_a``."""
    fa = resolve(fmt_a, "fmt_a")
    fb = resolve(fmt_a if fmt_b is None else fmt_b, "fmt_b")
    acc = parse_accum(accum)
    if not block_path_ok(acc):
        raise ValueError(f"mx_matmul: accum {acc.name!r} must be exact, int*, or a sequential "
                         "un-chunked float accumulator")
    a = real_array(a, "mx_matmul", "a", min_ndim=1)
    b = real_array(b, "mx_matmul", "b")
    a = np.atleast_2d(a)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"mx_matmul: shapes {a.shape} and {b.shape} do not match (N, K) @ (K, M)")
    if a.size == 0 or b.size == 0:  # empty sums
        return np.zeros((a.shape[0], b.shape[1]))
    A = prepare(a, fa)
    B = prepare(b.T, fb)
    return gemm_nt(A, B, acc, dot="block")


def mx_dot(a, b, fmt_a, fmt_b=None, accum="fp32") -> float:
    """Dot product of two 1-D vectors (length K) quantised to MX/NVFP4 block formats."""
    a = real_array(a, "mx_dot", "a")
    b = real_array(b, "mx_dot", "b")
    if a.ndim != 1 or b.shape != a.shape:
        raise ValueError(f"mx_dot: a {a.shape} and b {b.shape} must be 1-D vectors of one length")
    a, b = a.reshape(1, -1), b.reshape(-1, 1)
    return float(mx_matmul(a, b, fmt_a, fmt_b, accum)[0, 0])


def mx_dot_encoded(Pa, Xa, Pb, Xb, block_size, elem_a, elem_b=None, accum="fp32",
                   tensor_scale_a=1.0, tensor_scale_b=1.0, scale_fmt=None) -> np.ndarray:
    """Dot products of already-encoded operands.

    Pa (N, K) / Pb (M, K): element VALUES (decoded, before scaling), K a multiple of
    ``block_size``; Xa (N, K//block_size) / Xb (M, ...): decoded block scales; ``elem_a`` /
    ``elem_b``: element formats (for the exactness analysis); ``scale_fmt``: format of the
    scales (``None``: FP32).  Returns (N, M) float64 = ``ts_a * ts_b * DotGeneral``.
    """
    ea = resolve(elem_a, "elem_a")
    eb = resolve(elem_a if elem_b is None else elem_b, "elem_b")
    sfmt = resolve(scale_fmt, "scale_fmt")
    acc = parse_accum(accum)
    if not block_path_ok(acc):
        raise ValueError(f"mx_dot_encoded: accum {acc.name!r} must be exact, int*, or a "
                         "sequential un-chunked float accumulator")

    def op(P, X, e, t, name):
        P = np.ascontiguousarray(np.atleast_2d(P), dtype=np.float64)
        X = np.ascontiguousarray(np.atleast_2d(X), dtype=np.float64)
        if P.shape[1] != X.shape[1] * block_size:
            raise ValueError(f"element shape {P.shape} does not match scales {X.shape} x "
                             f"block_size {block_size}")
        if not np.array_equal(quantize_elem(P, e), P, equal_nan=True):
            raise ValueError(f"mx_dot_encoded: {name} holds values that are not {e.name} "
                             "element values")
        sb, lsb, pmax = element_grid(e)
        vals = (P.reshape(P.shape[0], -1, block_size) * (X * t)[:, :, None]).reshape(P.shape)
        return Operand(fmt=e, values=vals, elements=P, scales=X, tensor_scale=float(t),
                       block_len=int(block_size), is_block=True,
                       sig_bits=sb + scale_sig_bits(sfmt), lsb=lsb, pmax=pmax)

    return gemm_nt(op(Pa, Xa, ea, tensor_scale_a, "Pa"), op(Pb, Xb, eb, tensor_scale_b, "Pb"), acc,
                   dot="block")
