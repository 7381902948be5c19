"""numba CPU block-scaled GEMM over packed FP4 operands (MXFP4 and NVFP4).

Same operands and the same accumulation model as :mod:`lowbit.kernels.triton_gemm` (and
``lowbit.sim.mxdot.mx_dot_encoded(..., accum="fp32")``): ``C = A @ B^T`` along K, per scale
block an exact inner sum of the element values in units of the element's smallest subnormal
``u`` (E2M1: ``u = 1/2``, the values 2*e2m1 are integers in {0, 1, 2, 3, 4, 6, 8, 12}; float32
FMAs vectorised over N, exact because every partial sum is an integer below 2^24, checked per
format), the block term ``inner * u^2 * X_A * X_B`` (exact in float64, rounded once to float32),
accumulated in float32 with one RNE rounding per block in K order; NVFP4 epilogue
``fp32(float64(acc) * (ts_A * ts_B))``. Output float32 (M, N); rows run in parallel. Element
and scale values come from the lowbit.formats objects (:mod:`lowbit.kernels.spec`).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import spec as S


@njit(cache=True)
def _unpack_blocks(codes, K, bs, nb, lut):
    """Packed codes (R, ceil(K/2)) -> float32 (nb, R, bs) element values in units u (``lut``),
    zero padded."""
    R = codes.shape[0]
    out = np.zeros((nb, R, bs), np.float32)
    for r in range(R):
        for k in range(K):
            out[k // bs, r, k % bs] = lut[(codes[r, k >> 1] >> ((k & 1) * 4)) & 0xF]
    return out


def _scale_values(s, table, mask):
    """float64 block scales (R, nb) from scale bytes through the scale format's value table."""
    return table[np.ascontiguousarray(s, np.uint8) & mask]


def _integer_units(spec):
    """(element values / u as float32, u^2) with u the smallest subnormal; ValueError when a
    block's partial sums could leave the exact float32 integers."""
    fmt = spec.elem.fmt
    u = fmt.min_subnormal
    units = fmt.values() / u
    top = float(np.nanmax(np.abs(units[np.isfinite(units)])))
    if spec.elem.bits != 4 or np.any(units[np.isfinite(units)] % 1) or \
            top * top * spec.block >= 2.0 ** 24:
        raise ValueError(f"fmt={spec.fmt.name!r}: the FP4 GEMM needs 4-bit elements whose block "
                         "dot products are exact float32 integers")
    return units.astype(np.float32), u * u


@njit(cache=True, parallel=True)
def _gemm_fused(A, Bt, SA, SB, unit2, acc):
    """A (nb, M, bs), Bt (nb, bs, N): element values in units u. Per row m and block b: the
    block dots d[n] = sum_k A*Bt (float32, exact: integer partial sums < 2^24, vectorised over
    n), then acc[m, n] = fp32(acc + fp32(d[n] * u^2 * SA[m, b] * SB[n, b])), blocks in K order."""
    nb, M, bs = A.shape
    N = Bt.shape[2]
    for m in prange(M):
        d = np.empty(N, np.float32)
        for b in range(nb):
            d[:] = 0
            for k in range(bs):
                a = A[b, m, k]
                if a != 0:
                    for n in range(N):
                        d[n] += a * Bt[b, k, n]
            sa = SA[m, b] * unit2
            for n in range(N):
                acc[m, n] = acc[m, n] + np.float32(np.float64(d[n]) * (sa * SB[n, b]))


@njit(cache=True)
def _epilogue(acc, alpha):
    M, N = acc.shape
    for m in range(M):
        for n in range(N):
            acc[m, n] = np.float32(np.float64(acc[m, n]) * alpha)


def _run(a_codes, a_scales, b_codes, b_scales, K, spec, scale_fmt, alpha=None):
    bs = spec.block
    nbk = -(-K // bs)
    a_codes = np.ascontiguousarray(a_codes, np.uint8)
    b_codes = np.ascontiguousarray(b_codes, np.uint8)
    for name, c, s in (("a", a_codes, a_scales), ("b", b_codes, b_scales)):
        S.check_block_operands(c, np.asarray(s), K, bs, packed=True, name=name)
    units, unit2 = _integer_units(spec)
    A = _unpack_blocks(a_codes, K, bs, nbk, units)
    Bt = np.ascontiguousarray(_unpack_blocks(b_codes, K, bs, nbk, units).transpose(0, 2, 1))
    table = scale_fmt.values()
    mask = (1 << scale_fmt.bits) - 1
    SA = _scale_values(a_scales, table, mask)
    SB = _scale_values(b_scales, table, mask)
    M, N = A.shape[1], Bt.shape[2]
    acc = np.zeros((M, N), np.float32)
    _gemm_fused(A, Bt, SA, SB, unit2, acc)
    if alpha is not None:
        _epilogue(acc, float(alpha))
    return acc


def mxfp4_gemm(a_codes, a_scales, b_codes, b_scales, K, fmt="mxfp4"):
    """MXFP4 x MXFP4 -> float32 (M, N); operands as returned by numba_quant.mx_quantize."""
    spec = S.mx_spec(fmt)
    return _run(a_codes, a_scales, b_codes, b_scales, K, spec, spec.fmt.scale)


def nvfp4_gemm(a_codes, a_scales, a_ts, b_codes, b_scales, b_ts, K, fmt="nvfp4"):
    """NVFP4 x NVFP4 -> float32 (M, N); alpha = a_ts * b_ts applied in float64 at the end."""
    spec = S.nvfp4_spec(fmt)
    return _run(a_codes, a_scales, b_codes, b_scales, K, spec, spec.fmt.scale,
                alpha=float(a_ts) * float(b_ts))
