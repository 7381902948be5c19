"""Triton quantize / dequantize kernels: FP8 (E4M3/E5M2), MXFP8/MXFP4 and NVFP4.

All rounding is integer bit manipulation on the float32 bit pattern (``x.to(tl.uint32,
bitcast=True)``), exactly as production kernels do it, so the same code gives identical
bits natively and in Triton's CPU interpreter (whose own ``.to(tl.float8e4nv)`` rounds ties
upwards instead of to even, see docs/kernels.md). Inputs are float32, bfloat16 or float16
torch tensors (upcast to float32 exactly in-register); every conversion rounds once from
the source value.

Conventions (the rules implemented; see docs/kernels.md for the spec references):

- FP8 (OCP OFP8): round to nearest even, **saturating** (|x| > max -> ±max, ±Inf -> ±max as
  CUDA ``.satfinite``); NaN -> sign | 0x7F (E4M3) or sign | 0x7E (E5M2).
- MX (OCP MX v1.0): 1-D blocks of 32 along the last axis, ragged tail zero-padded.
  E8M0 scale exponent: ``floor``  = floor(log2 amax) - emax_elem (spec s6.3),
  ``rceil`` = ceil(log2(amax / max_elem)) computed exactly (no float32 division);
  clamped to [-127, 127]; amax == 0 -> 2^-127 (byte 0x00); a NaN/Inf in the block -> 0xFF.
  Elements are V_i / 2^s rounded RNE with saturation (exponent arithmetic, exact).
- NVFP4: TransformerEngine recipe (``reference_nvfp4.py``), see :func:`nvfp4_quantize`.
- FP4 codes are packed two per byte, element 2j in the low nibble (OCP/ONNX/PTX order).

Shapes: ``x`` is (..., K); it is viewed as (M, K). Outputs: codes (M, K) uint8 or packed
(M, ceil(K/2)) uint8; scales (M, ceil(K/block)) uint8.
"""
from __future__ import annotations

import numpy as np

from . import spec as S
from ._triton import AVAILABLE, require, tl, triton

if AVAILABLE:

    @triton.jit
    def _rne_code(a, s, MBITS: tl.constexpr, BIAS: tl.constexpr, MAXCODE: tl.constexpr):
        """Magnitude code of RNE(|x| / 2^s) in (MBITS, BIAS), saturated at MAXCODE.

        a: int32 bits of |x| (finite or Inf, not NaN); s: int32 exponent (exact division).
        """
        e32 = a >> 23
        is_norm = e32 > 0
        man = a & 0x7FFFFF
        m = tl.where(is_norm, man | 0x800000, man)
        e_in = tl.where(is_norm, e32, 1)
        # normalise float32 subnormals (count leading zeros by binary search): m in [2^23, 2^24)
        for k in tl.static_range(5):
            step: tl.constexpr = 16 >> k
            small = m < (1 << (24 - step))
            m = tl.where(small, m << step, m)
            e_in = tl.where(small, e_in - step, e_in)
        e_t = e_in - 127 + BIAS - s
        sh = (23 - MBITS) + tl.maximum(1 - e_t, 0)
        sh = tl.minimum(sh, 30)
        q = m >> sh
        rem = m & ((1 << sh) - 1)
        half = 1 << (sh - 1)
        up = (rem > half) | ((rem == half) & ((q & 1) == 1))
        q = q + up.to(tl.int32)
        code = ((tl.maximum(e_t, 1) - 1) << MBITS) + q
        code = tl.where(a == 0, 0, code)
        return tl.minimum(code, MAXCODE)

    @triton.jit
    def _split_bits(xf):
        u = xf.to(tl.uint32, bitcast=True)
        sign = (u >> 31).to(tl.int32)
        a = (u & 0x7FFFFFFF).to(tl.int32)
        return sign, a

    @triton.jit
    def _encode(xf, s, MBITS: tl.constexpr, BIAS: tl.constexpr, MAXCODE: tl.constexpr,
                NANCODE: tl.constexpr, SIGNBIT: tl.constexpr, INFCODE: tl.constexpr = -1):
        """Full signed code of RNE(x / 2^s), saturating; NaN -> NANCODE (or 0 if none);
        ±Inf -> ±INFCODE when INFCODE >= 0, else ±max (CUDA .satfinite)."""
        sign, a = _split_bits(xf)
        code = _rne_code(a, s, MBITS, BIAS, MAXCODE)
        if INFCODE >= 0:
            code = tl.where(a == 0x7F800000, INFCODE, code)
        if NANCODE >= 0:
            code = tl.where(a > 0x7F800000, NANCODE, code)
        else:  # no NaN code: +0 (the sign of a NaN carries no value)
            code = tl.where(a > 0x7F800000, 0, code)
            sign = tl.where(a > 0x7F800000, 0, sign)
        return code | (sign * SIGNBIT)

    @triton.jit
    def _decode(c, EBITS: tl.constexpr, MBITS: tl.constexpr, BIAS: tl.constexpr,
                SUBSCALE: tl.constexpr, SPECIALS: tl.constexpr):
        """float32 value of code c (int32). SPECIALS: 0 none, 1 E4M3 'fn' NaN, 2 IEEE Inf/NaN."""
        mag = c & ((1 << (EBITS + MBITS)) - 1)
        neg = ((c >> (EBITS + MBITS)) & 1) == 1
        e = mag >> MBITS
        m = mag & ((1 << MBITS) - 1)
        nbits = ((e - BIAS + 127) << 23) | (m << (23 - MBITS))
        if SPECIALS == 1:  # E4M3 'fn': S.1111.111 is NaN
            nbits = tl.where(mag == (1 << (EBITS + MBITS)) - 1, 0x7FC00000, nbits)
        if SPECIALS == 2:  # IEEE-like: top exponent is Inf (m == 0) or NaN
            top = e == (1 << EBITS) - 1
            nbits = tl.where(top, tl.where(m == 0, 0x7F800000, 0x7FC00000), nbits)
        v = tl.where(e == 0, m.to(tl.float32) * SUBSCALE, nbits.to(tl.float32, bitcast=True))
        return tl.where(neg, -v, v)

    @triton.jit
    def _pow2_to_f32(sc, SBIAS: tl.constexpr, SNAN: tl.constexpr):
        """float32 value 2^(sc - SBIAS) of a power-of-two (E8M0-style) scale byte sc (int32),
        NaN for SNAN; a float32 subnormal below 2^-126 (E8M0 0x00 = 2^-127)."""
        e = sc - SBIAS
        bits = tl.where(e >= -126, (e + 127) << 23, 1 << tl.maximum(e + 149, 0))
        bits = tl.where(sc == SNAN, 0x7FC00000, bits)
        return bits.to(tl.float32, bitcast=True)

    @triton.jit
    def _fp8_quant_kernel(x_ptr, y_ptr, n, MBITS: tl.constexpr, BIAS: tl.constexpr,
                          MAXCODE: tl.constexpr, NANCODE: tl.constexpr, SIGNBIT: tl.constexpr,
                          INFCODE: tl.constexpr, BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        xf = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        code = _encode(xf, 0, MBITS, BIAS, MAXCODE, NANCODE, SIGNBIT, INFCODE)
        tl.store(y_ptr + offs, code.to(tl.uint8), mask=mask)

    @triton.jit
    def _fp8_dequant_kernel(c_ptr, y_ptr, n, EBITS: tl.constexpr, MBITS: tl.constexpr,
                            BIAS: tl.constexpr, SUBSCALE: tl.constexpr, SPECIALS: tl.constexpr,
                            BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        c = tl.load(c_ptr + offs, mask=mask, other=0).to(tl.int32)
        tl.store(y_ptr + offs, _decode(c, EBITS, MBITS, BIAS, SUBSCALE, SPECIALS), mask=mask)

    @triton.jit
    def _block_ids(nblocks, nbk, TB: tl.constexpr):
        b = tl.program_id(0) * TB + tl.arange(0, TB)
        row = b // nbk
        kb = b - row * nbk
        return b < nblocks, row.to(tl.int64), kb

    @triton.jit
    def _load_pair_blocks(x_ptr, K, nbk, nblocks, stride_x, BS: tl.constexpr, TB: tl.constexpr):
        """TB blocks of BS elements as even / odd halves (for two-per-byte FP4 packing), the
        pair index j, the even-element mask and each block's amax bits (int32)."""
        valid, row, kb = _block_ids(nblocks, nbk, TB)
        j = tl.arange(0, BS // 2)[None, :]
        ce = kb[:, None] * BS + 2 * j
        me = valid[:, None] & (ce < K)
        mo = valid[:, None] & (ce + 1 < K)
        base = x_ptr + row[:, None] * stride_x
        xe = tl.load(base + ce, mask=me, other=0.0).to(tl.float32)
        xo = tl.load(base + ce + 1, mask=mo, other=0.0).to(tl.float32)
        _, ae = _split_bits(xe)
        _, ao = _split_bits(xo)
        amax = tl.maximum(tl.max(ae, axis=1), tl.max(ao, axis=1))
        return valid, row, kb, j, me, xe, xo, amax

    @triton.jit
    def _mx_scale(amax, EMAX: tl.constexpr, MAXMAN: tl.constexpr, RCEIL: tl.constexpr,
                  SEMIN: tl.constexpr, SBIAS: tl.constexpr, SNAN: tl.constexpr):
        """Power-of-two scale exponent s (int32, at least SEMIN) and its byte s + SBIAS (SNAN
        for a block holding NaN/Inf) for block amax bits (int32)."""
        e = (amax >> 23) - 127
        if RCEIL:
            e = e + ((amax & 0x7FFFFF) > MAXMAN).to(tl.int32)
        s = tl.maximum(e - EMAX, SEMIN)
        byte = tl.where(amax >= 0x7F800000, SNAN, s + SBIAS)
        return s, byte

    @triton.jit
    def _mx_quant_kernel(x_ptr, c_ptr, s_ptr, K, nbk, nblocks, stride_x, stride_c,
                         MBITS: tl.constexpr, BIAS: tl.constexpr, MAXCODE: tl.constexpr,
                         NANCODE: tl.constexpr, SIGNBIT: tl.constexpr, EMAX: tl.constexpr,
                         MAXMAN: tl.constexpr, RCEIL: tl.constexpr, SEMIN: tl.constexpr,
                         SBIAS: tl.constexpr, SNAN: tl.constexpr, BS: tl.constexpr,
                         TB: tl.constexpr):
        valid, row, kb = _block_ids(nblocks, nbk, TB)
        col = kb[:, None] * BS + tl.arange(0, BS)[None, :]
        mask = valid[:, None] & (col < K)
        xf = tl.load(x_ptr + row[:, None] * stride_x + col, mask=mask, other=0.0).to(tl.float32)
        _, a = _split_bits(xf)
        amax = tl.max(a, axis=1)
        s, byte = _mx_scale(amax, EMAX, MAXMAN, RCEIL, SEMIN, SBIAS, SNAN)
        code = _encode(xf, s[:, None], MBITS, BIAS, MAXCODE, NANCODE, SIGNBIT)
        code = tl.where((amax >= 0x7F800000)[:, None], 0, code)
        tl.store(c_ptr + row[:, None] * stride_c + col, code.to(tl.uint8), mask=mask)
        tl.store(s_ptr + row * nbk + kb, byte.to(tl.uint8), mask=valid)

    @triton.jit
    def _mxfp4_quant_kernel(x_ptr, c_ptr, s_ptr, K, nbk, nblocks, stride_x, stride_c,
                            MBITS: tl.constexpr, BIAS: tl.constexpr, MAXCODE: tl.constexpr,
                            NANCODE: tl.constexpr, SIGNBIT: tl.constexpr, EMAX: tl.constexpr,
                            MAXMAN: tl.constexpr, RCEIL: tl.constexpr, SEMIN: tl.constexpr,
                            SBIAS: tl.constexpr, SNAN: tl.constexpr, BS: tl.constexpr,
                            TB: tl.constexpr):
        valid, row, kb, j, me, xe, xo, amax = _load_pair_blocks(x_ptr, K, nbk, nblocks, stride_x,
                                                                BS, TB)
        s, byte = _mx_scale(amax, EMAX, MAXMAN, RCEIL, SEMIN, SBIAS, SNAN)
        lo = _encode(xe, s[:, None], MBITS, BIAS, MAXCODE, NANCODE, SIGNBIT)
        hi = _encode(xo, s[:, None], MBITS, BIAS, MAXCODE, NANCODE, SIGNBIT)
        bad = (amax >= 0x7F800000)[:, None]
        lo = tl.where(bad, 0, lo)
        hi = tl.where(bad, 0, hi)
        tl.store(c_ptr + row[:, None] * stride_c + kb[:, None] * (BS // 2) + j,
                 (lo | (hi << 4)).to(tl.uint8), mask=me)
        tl.store(s_ptr + row * nbk + kb, byte.to(tl.uint8), mask=valid)

    @triton.jit
    def _mx_dequant_kernel(c_ptr, s_ptr, y_ptr, K, nbk, nblocks, stride_c, stride_y,
                           EBITS: tl.constexpr, MBITS: tl.constexpr, BIAS: tl.constexpr,
                           SUBSCALE: tl.constexpr, SPECIALS: tl.constexpr, PACKED: tl.constexpr,
                           SBIAS: tl.constexpr, SNAN: tl.constexpr, BS: tl.constexpr,
                           TB: tl.constexpr):
        valid, row, kb = _block_ids(nblocks, nbk, TB)
        col = kb[:, None] * BS + tl.arange(0, BS)[None, :]
        mask = valid[:, None] & (col < K)
        if PACKED:
            byte = tl.load(c_ptr + row[:, None] * stride_c + (col >> 1), mask=mask, other=0)
            c = (byte.to(tl.int32) >> ((col & 1) * 4)) & 0xF
        else:
            c = tl.load(c_ptr + row[:, None] * stride_c + col, mask=mask, other=0).to(tl.int32)
        sc = tl.load(s_ptr + row * nbk + kb, mask=valid, other=SBIAS).to(tl.int32)
        v = _decode(c, EBITS, MBITS, BIAS, SUBSCALE, SPECIALS) * _pow2_to_f32(sc, SBIAS,
                                                                              SNAN)[:, None]
        tl.store(y_ptr + row[:, None] * stride_y + col, v, mask=mask)

    @triton.jit
    def _rne_code64(a, MBITS: tl.constexpr, BIAS: tl.constexpr, MAXCODE: tl.constexpr):
        """Magnitude code of RNE(|y|) for float64 bits a (int64, finite), saturating."""
        e64 = a >> 52
        is_norm = e64 > 0
        man = a & 0xFFFFFFFFFFFFF
        m = tl.where(is_norm, man | 0x10000000000000, man)
        e_t = tl.where(is_norm, e64, 1) - 1023 + BIAS
        sh = (52 - MBITS) + tl.maximum(1 - e_t, 0)
        sh = tl.minimum(sh, 62)
        one = tl.full(sh.shape, 1, tl.int64)
        q = m >> sh
        rem = m & ((one << sh) - 1)
        half = one << (sh - 1)
        up = (rem > half) | ((rem == half) & ((q & 1) == 1))
        q = q + up.to(tl.int64)
        code = ((tl.maximum(e_t, 1) - 1) << MBITS) + q
        return tl.minimum(code, MAXCODE).to(tl.int32)

    @triton.jit
    def _elem_exact(xf, div, MBITS: tl.constexpr, BIAS: tl.constexpr, MAXCODE: tl.constexpr,
                    SIGNBIT: tl.constexpr):
        """Signed element code of RNE(x / div), one rounding: float64 quotient (exact enough,
        see docs) then integer RNE on its bits, saturating. x float32, div float64 > 0."""
        y = xf.to(tl.float64) / div
        u = y.to(tl.int64, bitcast=True)
        neg = (u < 0).to(tl.int32)
        return _rne_code64(u & 0x7FFFFFFFFFFFFFFF, MBITS, BIAS, MAXCODE) | (neg * SIGNBIT)

    @triton.jit
    def _nvfp4_quant_kernel(x_ptr, c_ptr, s_ptr, K, nbk, nblocks, stride_x, stride_c,
                            ts, mult, gdec, MBITS: tl.constexpr, BIAS: tl.constexpr,
                            MAXCODE: tl.constexpr, NANCODE: tl.constexpr, SIGNBIT: tl.constexpr,
                            ELMAX: tl.constexpr, SEBITS: tl.constexpr, SMBITS: tl.constexpr,
                            SBIAS: tl.constexpr, SMAXCODE: tl.constexpr, SSUB: tl.constexpr,
                            SSPECIALS: tl.constexpr, SNAN: tl.constexpr, TE: tl.constexpr,
                            BS: tl.constexpr, TB: tl.constexpr):
        """NVFP4 quantize, one block of 16 per tile row.

        TE=False (profile "lowbit", = lowbit.formats): s_b = ue4m3_RNE_sat((amax_b / 6) / ts)
        in float64 (nonzero block -> at least 2^-9); q = e2m1_RNE_sat(x / (s_b * ts)) exactly.
        TE=True (TransformerEngine recipe, all float32): s_b = e4m3(min(amax_b * mult, 448));
        enc = min(1/(s_b*gdec), FLT_MAX); q = e2m1(clamp(x * enc, +-6)).
        Blocks holding NaN/Inf: scale byte 0x7F (NaN), codes 0 (both profiles)."""
        valid, row, kb, j, me, xe, xo, amax = _load_pair_blocks(x_ptr, K, nbk, nblocks, stride_x,
                                                                BS, TB)
        bad = amax >= 0x7F800000
        amax = tl.where(bad, 0, amax)
        amaxf = amax.to(tl.float32, bitcast=True)
        if TE:
            _, tb = _split_bits(amaxf * mult)
            scode = _rne_code(tb, 0, SMBITS, SBIAS, SMAXCODE)
            p = _decode(scode, SEBITS, SMBITS, SBIAS, SSUB, SSPECIALS) * gdec
            p_safe = tl.where(p == 0.0, 1.0, p)
            enc = tl.minimum(tl.math.div_rn(tl.full(p.shape, 1.0, tl.float32), p_safe),
                             3.4028234663852886e38)
            enc = tl.where(p == 0.0, 3.4028234663852886e38, enc)
            lo = _encode(xe * enc[:, None], 0, MBITS, BIAS, MAXCODE, NANCODE, SIGNBIT)
            hi = _encode(xo * enc[:, None], 0, MBITS, BIAS, MAXCODE, NANCODE, SIGNBIT)
        else:
            ts64 = tl.cast(ts, tl.float64)
            t = (amaxf.to(tl.float64) / ELMAX) / ts64
            scode = _rne_code64(t.to(tl.int64, bitcast=True), SMBITS, SBIAS, SMAXCODE)
            scode = tl.where((scode == 0) & (amax > 0), 1, scode)
            div = _decode(scode, SEBITS, SMBITS, SBIAS, SSUB, SSPECIALS).to(tl.float64) * ts64
            div = tl.where(div == 0.0, 1.0, div)
            lo = _elem_exact(xe, div[:, None], MBITS, BIAS, MAXCODE, SIGNBIT)
            hi = _elem_exact(xo, div[:, None], MBITS, BIAS, MAXCODE, SIGNBIT)
        lo = tl.where(bad[:, None], 0, lo)
        hi = tl.where(bad[:, None], 0, hi)
        scode = tl.where(bad, SNAN, scode)
        tl.store(c_ptr + row[:, None] * stride_c + kb[:, None] * (BS // 2) + j,
                 (lo | (hi << 4)).to(tl.uint8), mask=me)
        tl.store(s_ptr + row * nbk + kb, scode.to(tl.uint8), mask=valid)

    @triton.jit
    def _nvfp4_dequant_kernel(c_ptr, s_ptr, y_ptr, K, nbk, nblocks, stride_c, stride_y, gdec,
                              EBITS: tl.constexpr, MBITS: tl.constexpr, BIAS: tl.constexpr,
                              SUB: tl.constexpr, SPECIALS: tl.constexpr, SEBITS: tl.constexpr,
                              SMBITS: tl.constexpr, SBIAS: tl.constexpr, SSUB: tl.constexpr,
                              SSPECIALS: tl.constexpr, SMASK: tl.constexpr, BS: tl.constexpr,
                              TB: tl.constexpr):
        valid, row, kb = _block_ids(nblocks, nbk, TB)
        col = kb[:, None] * BS + tl.arange(0, BS)[None, :]
        mask = valid[:, None] & (col < K)
        byte = tl.load(c_ptr + row[:, None] * stride_c + (col >> 1), mask=mask, other=0)
        c = (byte.to(tl.int32) >> ((col & 1) * 4)) & 0xF
        sc = tl.load(s_ptr + row * nbk + kb, mask=valid, other=0).to(tl.int32)
        sb = _decode(sc & SMASK, SEBITS, SMBITS, SBIAS, SSUB, SSPECIALS)
        v = (_decode(c, EBITS, MBITS, BIAS, SUB, SPECIALS) * sb[:, None]) * gdec
        tl.store(y_ptr + row[:, None] * stride_y + col, v, mask=mask)


# ----------------------------------------------------------------------------- host wrappers


def _as_2d(x):
    import torch
    require()
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.ascontiguousarray(x))
    if x.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"x.dtype={x.dtype}: kernels accept float32, bfloat16, float16")
    x = x.contiguous()
    K = x.shape[-1] if x.dim() else 1
    return x.reshape(-1, K), K


def _decode_args(e: S.ElemSpec):
    """(EBITS, MBITS, BIAS, SUBSCALE, SPECIALS) of ``_decode``."""
    return e.ebits, e.mbits, e.bias, e.subscale, e.specials


def _mx_args(m: S.MXSpec, rceil: bool):
    e = m.elem
    return dict(MBITS=e.mbits, BIAS=e.bias, MAXCODE=e.maxcode, NANCODE=e.nancode,
                SIGNBIT=e.signbit, EMAX=e.emax, MAXMAN=e.maxman, RCEIL=rceil, SEMIN=m.scale_emin,
                SBIAS=m.scale_bias, SNAN=m.scale_nancode)


def fp8_quantize(x, fmt="fp8_e4m3", block=1024):
    """x (any shape, fp32/bf16/fp16) -> uint8 codes of a float element format of at most 8 bits,
    RNE, saturating (Inf -> +-max), NaN -> sign|NaN code (+0 without NaN)."""
    import torch
    e = S.element_spec(fmt)
    x2, _ = _as_2d(x)
    y = torch.empty(x2.shape, dtype=torch.uint8, device=x2.device)
    n = x2.numel()
    _fp8_quant_kernel[(triton.cdiv(n, block),)](x2, y, n, e.mbits, e.bias, e.maxcode, e.nancode,
                                                e.signbit, e.infcode, BLOCK=block)
    return y.reshape(x.shape)


def fp8_dequantize(codes, fmt="fp8_e4m3", block=1024):
    """uint8 element codes -> float32 values (NaN codes -> NaN, IEEE Inf codes -> +-Inf)."""
    import torch
    e = S.element_spec(fmt)
    c = codes.contiguous()
    y = torch.empty(c.shape, dtype=torch.float32, device=c.device)
    n = c.numel()
    _fp8_dequant_kernel[(triton.cdiv(n, block),)](c, y, n, *_decode_args(e), BLOCK=block)
    return y


def mx_quantize(x, fmt="mxfp8", scale_rule=None, tb=16):
    """MX quantize along the last axis. Returns (codes, scales) as uint8 tensors: codes (M, K),
    packed (M, ceil(K/2)) for 4-bit elements; scale bytes (M, ceil(K/block)).
    ``scale_rule`` None: the format's own."""
    import torch
    m = S.mx_spec(fmt)
    e, bs = m.elem, m.block
    rceil = S.check_scale_rule(scale_rule, m) == "rceil"
    x2, K = _as_2d(x)
    M = x2.shape[0]
    nbk = triton.cdiv(K, bs)
    nblocks = M * nbk
    scales = torch.empty((M, nbk), dtype=torch.uint8, device=x2.device)
    grid = (triton.cdiv(nblocks, tb),)
    if e.bits == 4:
        codes = torch.empty((M, (K + 1) // 2), dtype=torch.uint8, device=x2.device)
        _mxfp4_quant_kernel[grid](x2, codes, scales, K, nbk, nblocks, x2.stride(0),
                                  codes.stride(0), **_mx_args(m, rceil), BS=bs, TB=tb)
    else:
        codes = torch.empty((M, K), dtype=torch.uint8, device=x2.device)
        _mx_quant_kernel[grid](x2, codes, scales, K, nbk, nblocks, x2.stride(0), codes.stride(0),
                               **_mx_args(m, rceil), BS=bs, TB=tb)
    return codes, scales


def mx_dequantize(codes, scales, K, fmt="mxfp8", tb=16):
    """(codes, scale bytes) -> float32 (M, K). A NaN scale byte makes its whole block NaN."""
    import torch
    m = S.mx_spec(fmt)
    e, bs = m.elem, m.block
    codes = codes.contiguous()
    scales = scales.contiguous()
    S.check_block_operands(codes, scales, K, bs, packed=e.bits == 4)
    M = scales.shape[0]
    nbk = triton.cdiv(K, bs)
    y = torch.empty((M, K), dtype=torch.float32, device=codes.device)
    _mx_dequant_kernel[(triton.cdiv(M * nbk, tb),)](
        codes, scales, y, K, nbk, M * nbk, codes.stride(0), y.stride(0), *_decode_args(e),
        e.bits == 4, m.scale_bias, m.scale_nancode, BS=bs, TB=tb)
    return y


def nvfp4_quantize(x, profile="lowbit", tensor_amax=None, tb=16, fmt="nvfp4"):
    """NVFP4 quantize along the last axis (blocks of 16, UE4M3 block scales, FP32 tensor scale;
    every constant from the ``fmt`` object, see :func:`lowbit.kernels.spec.nvfp4_spec`).

    profile "lowbit" (default) reproduces lowbit.formats ``nvfp4`` bit for bit: tensor scale
    S = fp32(amax_t / 2688) over the blocks without NaN/Inf (1.0 for an all-zero tensor), block
    scale RNE((amax_b/6)/S) into UE4M3, elements RNE(x / (s_b*S)) with a single rounding.
    profile "te" follows TransformerEngine's reference_nvfp4.py (FP32 ops, folded reciprocals).

    Returns (packed codes (M, ceil(K/2)) uint8, UE4M3 scale bytes (M, ceil(K/16)) uint8,
    tensor decode scale as a float32: value = e2m1 * s_b * that)."""
    import torch
    S.check_profile(profile)
    sp = S.nvfp4_spec(fmt)
    e, s = sp.elem, sp.scale
    x2, K = _as_2d(x)
    M = x2.shape[0]
    if tensor_amax is None:
        tensor_amax = _finite_block_amax(x2, sp.block)
    ts, gd, mult = S.nvfp4_host_scalars(tensor_amax, sp)
    bs = sp.block
    nbk = triton.cdiv(K, bs)
    nblocks = M * nbk
    codes = torch.empty((M, (K + 1) // 2), dtype=torch.uint8, device=x2.device)
    scales = torch.empty((M, nbk), dtype=torch.uint8, device=x2.device)
    _nvfp4_quant_kernel[(triton.cdiv(nblocks, tb),)](
        x2, codes, scales, K, nbk, nblocks, x2.stride(0), codes.stride(0), float(ts), float(mult),
        float(gd), MBITS=e.mbits, BIAS=e.bias, MAXCODE=e.maxcode, NANCODE=e.nancode,
        SIGNBIT=e.signbit, ELMAX=e.max, SEBITS=s.ebits, SMBITS=s.mbits, SBIAS=s.bias,
        SMAXCODE=s.maxcode, SSUB=s.subscale, SSPECIALS=s.specials, SNAN=s.nancode,
        TE=profile == "te", BS=bs, TB=tb)
    return codes, scales, (gd if profile == "te" else ts)


def _finite_block_amax(x2, bs):
    """max |x| over the blocks (of bs along the last axis) that hold no NaN/Inf; 0 if none."""
    import torch
    M, K = x2.shape
    if x2.numel() == 0:
        return 0.0
    pad = (-K) % bs
    xp = torch.nn.functional.pad(x2.float(), (0, pad)).reshape(M, -1, bs)
    ok = torch.isfinite(xp).all(dim=-1, keepdim=True)
    return float(torch.where(ok, xp.abs(), torch.zeros((), dtype=xp.dtype)).max())


def nvfp4_dequantize(codes, scales, K, global_decode, tb=16, fmt="nvfp4"):
    """(packed element codes, scale bytes, float32 global decode scale) -> float32 (M, K):
    value = fl(fl(elem * s_block) * global_decode) (the first product is exact)."""
    import torch
    sp = S.nvfp4_spec(fmt)
    e, s = sp.elem, sp.scale
    codes = codes.contiguous()
    scales = scales.contiguous()
    S.check_block_operands(codes, scales, K, sp.block, packed=True)
    M = scales.shape[0]
    nbk = triton.cdiv(K, sp.block)
    y = torch.empty((M, K), dtype=torch.float32, device=codes.device)
    _nvfp4_dequant_kernel[(triton.cdiv(M * nbk, tb),)](
        codes, scales, y, K, nbk, M * nbk, codes.stride(0), y.stride(0), float(global_decode),
        *_decode_args(e), *_decode_args(s), (1 << s.bits) - 1, BS=sp.block, TB=tb)
    return y
