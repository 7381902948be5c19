"""numba CPU block-scaled GEMM over packed FP4 operands (MXFP4 and NVFP4).

Same operands and the same accumulation model as :mod:`lowbit.kernels.triton_gemm` (and
``lowbit.sim.mxdot.mx_dot_encoded(..., accum="fp32")``): ``C = A @ B^T`` along K, per scale
block an exact inner sum of the doubled E2M1 values (2*e2m1 is an integer in
{0, 1, 2, 3, 4, 6, 8, 12}; float32 FMAs vectorised over N, exact because every partial sum
is an integer below 2^13), the block term ``inner/4 * X_A * X_B`` (exact in float64, rounded
once to float32), accumulated in float32 with one RNE rounding per block in K order; NVFP4
epilogue ``fp32(float64(acc) * (ts_A * ts_B))``. Output float32 (M, N); the accumulation runs rows in parallel.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from . import spec as S

_E2M1X2 = np.array([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12], np.float32)


@njit(cache=True)
def _unpack_blocks(codes, K, bs, nb, lut):
    """Packed codes (R, ceil(K/2)) -> float32 (nb, R, bs) doubled E2M1 values, zero padded."""
    R = codes.shape[0]
    out = np.zeros((nb, R, bs), np.float32)
    for r in range(R):
        for k in range(K):
            out[k // bs, r, k % bs] = lut[(codes[r, k >> 1] >> ((k & 1) * 4)) & 0xF]
    return out


@njit(cache=True)
def _scales_f64(s, nv):
    R, nb = s.shape
    out = np.empty((R, nb), np.float64)
    for r in range(R):
        for b in range(nb):
            c = np.int64(s[r, b])
            if nv:
                c &= 0x7F
                e = c >> 3
                m = c & 7
                if c == 0x7F:
                    out[r, b] = np.nan
                elif e == 0:
                    out[r, b] = m * 2.0 ** -9
                else:
                    out[r, b] = (8 + m) * 2.0 ** (e - 10)
            else:
                out[r, b] = np.nan if c == 255 else 2.0 ** (c - 127)
    return out


@njit(cache=True, parallel=True)
def _gemm_fused(A, Bt, SA, SB, acc):
    """A (nb, M, bs), Bt (nb, bs, N): doubled E2M1 values. Per row m and block b: the block dots
    d[n] = sum_k A*Bt (float32, exact: integer partial sums < 2^13, vectorised over n), then
    acc[m, n] = fp32(acc + fp32(d[n] / 4 * SA[m, b] * SB[n, b])), blocks in K order."""
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
            sa = SA[m, b] * 0.25
            for n in range(N):
                acc[m, n] = acc[m, n] + np.float32(np.float64(d[n]) * (sa * SB[n, b]))


@njit(cache=True)
def _epilogue(acc, alpha):
    M, N = acc.shape
    for m in range(M):
        for n in range(N):
            acc[m, n] = np.float32(np.float64(acc[m, n]) * alpha)


def _run(a_codes, a_scales, b_codes, b_scales, K, bs, nv, alpha=None):
    nbk = -(-K // bs)
    a_codes = np.ascontiguousarray(a_codes, np.uint8)
    b_codes = np.ascontiguousarray(b_codes, np.uint8)
    for name, c, s in (("a", a_codes, a_scales), ("b", b_codes, b_scales)):
        if c.shape[1] != (K + 1) // 2 or np.shape(s) != (c.shape[0], nbk):
            raise ValueError(f"{name}: packed codes must be (rows, ceil(K/2)) and scales "
                             f"(rows, ceil(K/{bs})); got {c.shape}, {np.shape(s)}")
    A = _unpack_blocks(a_codes, K, bs, nbk, _E2M1X2)
    Bt = np.ascontiguousarray(_unpack_blocks(b_codes, K, bs, nbk, _E2M1X2).transpose(0, 2, 1))
    SA = _scales_f64(np.ascontiguousarray(a_scales, np.uint8), nv)
    SB = _scales_f64(np.ascontiguousarray(b_scales, np.uint8), nv)
    M, N = A.shape[1], Bt.shape[2]
    acc = np.zeros((M, N), np.float32)
    _gemm_fused(A, Bt, SA, SB, acc)
    if alpha is not None:
        _epilogue(acc, float(alpha))
    return acc


def mxfp4_gemm(a_codes, a_scales, b_codes, b_scales, K):
    """MXFP4 x MXFP4 -> float32 (M, N); operands as returned by numba_quant.mx_quantize."""
    return _run(a_codes, a_scales, b_codes, b_scales, K, S.MX_FORMATS["mxfp4"][1], False)


def nvfp4_gemm(a_codes, a_scales, a_ts, b_codes, b_scales, b_ts, K):
    """NVFP4 x NVFP4 -> float32 (M, N); alpha = a_ts * b_ts applied in float64 at the end."""
    return _run(a_codes, a_scales, b_codes, b_scales, K, S.NVFP4_BLOCK, True,
                alpha=float(a_ts) * float(b_ts))
