"""Triton block-scaled GEMM over packed FP4 operands: MXFP4 (E8M0 scales) and NVFP4 (UE4M3 scales
plus FP32 tensor scales).

``C[M, N] = A[M, K] @ B[N, K]^T`` with both operands quantized along K (the TN layout of the
hardware MMAs): packed E2M1 codes (rows, ceil(K/2)) uint8, low nibble first, and scale bytes
(rows, ceil(K/block)). Variants:

- ``mxfp4_gemm(..., variant="dot_scaled")``: ``tl.dot_scaled(a, sa, "e2m1", b, sb, "e2m1")``,
  the hardware block-scaled MMA on Blackwell (emulated elsewhere);
- ``variant="dequant"`` (and NVFP4, whose UE4M3 scales ``tl.dot_scaled`` does not take):
  decode codes and scales to float32 in registers, then ``tl.dot(..., input_precision="ieee")``.

Accumulation model (the one :func:`lowbit.sim.mxdot.mx_dot_encoded` calls ``accum="fp32"``,
OCP MX v1.0 s6.2): the K loop steps one scale block (BK = 32 for MX, 16 for NVFP4); each step's
block dot ``X_A X_B sum P_A P_B`` is computed by a fresh dot (exact: every FP4 x FP4 partial sum
is a multiple of 2^-2 * X_A X_B below 2^11 * X_A X_B, and the products of the scales are exact)
and added to the FP32 accumulator with one RNE rounding, blocks in K order. NVFP4's epilogue
multiplies by ``alpha = ts_A * ts_B`` in float64 and rounds once to float32, as the sim does.
Ragged K is zero-padded (code 0 = +0 contributes nothing); a NaN scale makes the output NaN.
"""
from __future__ import annotations

from lowbit.formats import get_format

from . import spec as S
from ._triton import AVAILABLE, require, tl, triton

if AVAILABLE:
    from .triton_quant import _decode, _pow2_to_f32

    @triton.jit
    def _load_fp4_tile(c_ptr, s_ptr, rows, nrows, k, K, stride_c, nbk, BS: tl.constexpr,
                       NV: tl.constexpr, EEBITS: tl.constexpr, EMBITS: tl.constexpr,
                       EBIAS: tl.constexpr, ESUB: tl.constexpr, ESPECIALS: tl.constexpr,
                       SEBITS: tl.constexpr, SMBITS: tl.constexpr, SBIAS: tl.constexpr,
                       SSUB: tl.constexpr, SSPECIALS: tl.constexpr, SMASK: tl.constexpr,
                       SNAN: tl.constexpr):
        """float32 values [R, BK] of rows x k: decode(element) * decode(scale); the scale is a
        float format (NV: decoded like an element, after masking to SMASK) or a power of two
        2^(byte - SBIAS) with NaN byte SNAN."""
        mask = (rows < nrows)[:, None] & (k < K)[None, :]
        byte = tl.load(c_ptr + rows.to(tl.int64)[:, None] * stride_c + (k >> 1)[None, :],
                       mask=mask, other=0)
        c = (byte.to(tl.int32) >> ((k & 1) * 4)[None, :]) & 0xF
        sc = tl.load(s_ptr + rows.to(tl.int64)[:, None] * nbk + (k // BS)[None, :],
                     mask=mask, other=0).to(tl.int32)
        if NV:
            scale = _decode(sc & SMASK, SEBITS, SMBITS, SBIAS, SSUB, SSPECIALS)
        else:
            scale = _pow2_to_f32(sc, SBIAS, SNAN)
        return _decode(c, EEBITS, EMBITS, EBIAS, ESUB, ESPECIALS) * scale

    @triton.jit
    def _fp4_gemm_kernel(a_ptr, sa_ptr, b_ptr, sb_ptr, c_ptr, alpha_ptr, M, N, K, nbk,
                         stride_a, stride_b, stride_c, MODE: tl.constexpr, BM: tl.constexpr,
                         BN: tl.constexpr, BS: tl.constexpr, EEBITS: tl.constexpr,
                         EMBITS: tl.constexpr, EBIAS: tl.constexpr, ESUB: tl.constexpr,
                         ESPECIALS: tl.constexpr, SEBITS: tl.constexpr, SMBITS: tl.constexpr,
                         SBIAS: tl.constexpr, SSUB: tl.constexpr, SSPECIALS: tl.constexpr,
                         SMASK: tl.constexpr, SNAN: tl.constexpr):
        """MODE 0: MXFP4 via tl.dot_scaled; 1: MXFP4 dequant + dot; 2: NVFP4 dequant + dot."""
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
        rm = pid_m * BM + tl.arange(0, BM)
        rn = pid_n * BN + tl.arange(0, BN)
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        KB = (K + 1) // 2
        for kb in range(0, nbk):
            if MODE == 0:
                kk = kb * (BS // 2) + tl.arange(0, BS // 2)
                a = tl.load(a_ptr + rm.to(tl.int64)[:, None] * stride_a + kk[None, :],
                            mask=(rm < M)[:, None] & (kk < KB)[None, :], other=0)
                b = tl.load(b_ptr + rn.to(tl.int64)[None, :] * stride_b + kk[:, None],
                            mask=(rn < N)[None, :] & (kk < KB)[:, None], other=0)
                sa = tl.load(sa_ptr + rm.to(tl.int64)[:, None] * nbk + kb + tl.arange(0, 1)[None, :],
                             mask=(rm < M)[:, None], other=SBIAS)
                sb = tl.load(sb_ptr + rn.to(tl.int64)[:, None] * nbk + kb + tl.arange(0, 1)[None, :],
                             mask=(rn < N)[:, None], other=SBIAS)
                acc += tl.dot_scaled(a, sa, "e2m1", b, sb, "e2m1")
            else:
                k = kb * BS + tl.arange(0, BS)
                va = _load_fp4_tile(a_ptr, sa_ptr, rm, M, k, K, stride_a, nbk, BS, MODE == 2,
                                    EEBITS, EMBITS, EBIAS, ESUB, ESPECIALS, SEBITS, SMBITS,
                                    SBIAS, SSUB, SSPECIALS, SMASK, SNAN)
                vb = _load_fp4_tile(b_ptr, sb_ptr, rn, N, k, K, stride_b, nbk, BS, MODE == 2,
                                    EEBITS, EMBITS, EBIAS, ESUB, ESPECIALS, SEBITS, SMBITS,
                                    SBIAS, SSUB, SSPECIALS, SMASK, SNAN)
                acc += tl.dot(va, tl.trans(vb), input_precision="ieee")
        if MODE == 2:  # MODE_NV_DEQUANT: the tensor-scale epilogue
            alpha = tl.load(alpha_ptr)
            out = (acc.to(tl.float64) * alpha).to(tl.float32)
        else:
            out = acc
        tl.store(c_ptr + rm.to(tl.int64)[:, None] * stride_c + rn[None, :], out,
                 mask=(rm < M)[:, None] & (rn < N)[None, :])


MODE_DOT_SCALED, MODE_MX_DEQUANT, MODE_NV_DEQUANT = 0, 1, 2


def _format_args(spec, nv: bool) -> dict:
    """The element's and the scale's decode constants for ``_fp4_gemm_kernel``."""
    e = spec.elem
    if spec.elem.bits != 4:
        raise ValueError(f"fmt={spec.fmt.name!r}: the FP4 GEMM needs 4-bit elements")
    kw = dict(EEBITS=e.ebits, EMBITS=e.mbits, EBIAS=e.bias, ESUB=e.subscale,
              ESPECIALS=e.specials)
    if nv:
        s = spec.scale
        kw.update(SEBITS=s.ebits, SMBITS=s.mbits, SBIAS=s.bias, SSUB=s.subscale,
                  SSPECIALS=s.specials, SMASK=(1 << s.bits) - 1, SNAN=s.nancode)
    else:
        kw.update(SEBITS=0, SMBITS=0, SBIAS=spec.scale_bias, SSUB=0.0, SSPECIALS=0, SMASK=0,
                  SNAN=spec.scale_nancode)
    return kw


def _gemm(a_codes, a_scales, b_codes, b_scales, K, mode, spec, alpha=1.0, bm=16, bn=16):
    import torch
    require()
    bs = spec.block
    a_codes, b_codes = a_codes.contiguous(), b_codes.contiguous()
    a_scales, b_scales = a_scales.contiguous(), b_scales.contiguous()
    M, N = a_codes.shape[0], b_codes.shape[0]
    nbk = -(-K // bs)
    for name, c, s in (("a", a_codes, a_scales), ("b", b_codes, b_scales)):
        if c.dtype != torch.uint8 or s.dtype != torch.uint8:
            raise ValueError(f"{name}_codes/{name}_scales must be uint8 tensors")
        S.check_block_operands(c, s, K, bs, packed=True, name=name)
    out = torch.empty((M, N), dtype=torch.float32, device=a_codes.device)
    al = torch.tensor([float(alpha)], dtype=torch.float64, device=a_codes.device)
    grid = (triton.cdiv(M, bm), triton.cdiv(N, bn))
    _fp4_gemm_kernel[grid](a_codes, a_scales, b_codes, b_scales, out, al, M, N, K, nbk,
                           a_codes.stride(0), b_codes.stride(0), out.stride(0), mode, BM=bm,
                           BN=bn, BS=bs, **_format_args(spec, mode == MODE_NV_DEQUANT))
    return out


def mxfp4_gemm(a_codes, a_scales, b_codes, b_scales, K, variant="dot_scaled", fmt="mxfp4"):
    """MXFP4 x MXFP4 GEMM -> float32 (M, N). variant: "dot_scaled" (OCP MXFP4 only: E2M1
    elements, E8M0 scales, blocks of 32) | "dequant"."""
    if variant not in ("dot_scaled", "dequant"):
        raise ValueError(f"variant={variant!r}: choose 'dot_scaled' or 'dequant'")
    spec = S.mx_spec(fmt)
    if variant == "dot_scaled" and spec.fmt != get_format("mxfp4"):
        raise ValueError(f"fmt={spec.fmt.name!r}: variant='dot_scaled' is the hardware OCP MXFP4 "
                         "MMA; use variant='dequant'")
    mode = MODE_DOT_SCALED if variant == "dot_scaled" else MODE_MX_DEQUANT
    return _gemm(a_codes, a_scales, b_codes, b_scales, K, mode, spec)


def nvfp4_gemm(a_codes, a_scales, a_ts, b_codes, b_scales, b_ts, K, fmt="nvfp4"):
    """NVFP4 x NVFP4 GEMM -> float32 (M, N): per-block FP32 accumulation, epilogue
    fp32(float64(acc) * (a_ts * b_ts)) with the tensor decode scales a_ts, b_ts."""
    return _gemm(a_codes, a_scales, b_codes, b_scales, K, MODE_NV_DEQUANT, S.nvfp4_spec(fmt),
                 alpha=float(a_ts) * float(b_ts))
