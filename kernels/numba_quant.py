"""numba CPU kernels: fused single-pass quantize / dequantize for FP8, MXFP8/MXFP4 and NVFP4.

Same rules as :mod:`lowbit.kernels.triton_quant` (see its docstring for the rounding / NaN /
scale conventions). Each block is read once; its amax, scale and codes are computed in
registers and written once (FP4 packed two per byte, low nibble first). Outer loops are
``prange`` over rows (``parallel=True``).

Every format constant comes from the :mod:`lowbit.formats` objects through
:mod:`lowbit.kernels.spec` (any format :func:`~lowbit.kernels.spec.element_spec` /
``mx_spec`` / ``nvfp4_spec`` accepts, e.g. ``FloatFormat(4, 3, nan="fn")``).

Rounding: the reference is the integer bit-manipulation encoder (:func:`_rne_code`, the same
algorithm as the Triton kernels). For speed, element codes are gathered from the lookup table of
:func:`lowbit.formats.rounding_table` (index = sign, exponent, top mantissa bits, sticky; proved
equal to exact rounding there), with an exact power-of-two block scale applied as an
exponent-field subtraction; float32 subnormal inputs and scaled values that leave the normal
float32 range take the bit-manipulation path. NVFP4 ``lowbit`` rounds x / (s_b*S) by exact
float64 comparisons with the element midpoints. Dequantization gathers from the formats' value
tables (``fmt.values()`` as float32, exact).

Inputs: numpy float32 arrays (float16 / ml_dtypes.bfloat16 are upcast exactly first), shape
(..., K), blocks along the last axis. Outputs are numpy uint8 arrays shaped like the Triton
kernels' outputs: codes (M, K) or packed (M, ceil(K/2)), scales (M, ceil(K/block)).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from lowbit.formats import rounding_table

from . import spec as S

FMAX32 = np.float32(S.FP32_MAX)


@njit(cache=True)
def _rne_code(a, s, mbits, bias, maxcode):
    """Magnitude code of RNE(|x| / 2^s), saturating. a: |x| float32 bits (not NaN), int64."""
    if a == 0:
        return 0
    e32 = a >> 23
    man = a & 0x7FFFFF
    if e32 > 0 and e32 - 127 + bias - s >= 1:  # normal result: add-and-shift RNE on the bits
        sh = 23 - mbits
        r = a + ((1 << (sh - 1)) - 1) + ((a >> sh) & 1)
        return min((r >> sh) - ((127 - bias + s) << mbits), maxcode)
    if e32 > 0:
        m = man | 0x800000
        et = e32 - 127 + bias - s
    else:  # float32 subnormal: normalise so that m is in [2^23, 2^24)
        m = man
        et = 1 - 127 + bias - s
        while m < 0x800000:
            m <<= 1
            et -= 1
    sh = (23 - mbits) + max(1 - et, 0)
    sh = min(sh, 30)
    q = m >> sh
    rem = m & ((1 << sh) - 1)
    half = 1 << (sh - 1)
    if rem > half or (rem == half and (q & 1) == 1):
        q += 1
    code = ((max(et, 1) - 1) << mbits) + q
    return min(code, maxcode)


@njit(cache=True)
def _encode(u, s, mbits, bias, maxcode, nancode, signbit):
    """Signed code of RNE(x / 2^s) for float32 bits u (uint32 as int64), saturating; NaN ->
    sign | nancode, or +0 for a format without NaN (lowbit.formats ``nan_input="zero"``)."""
    a = u & 0x7FFFFFFF
    sgn = signbit if (u >> 31) else 0
    if a > 0x7F800000:
        return (nancode | sgn) if nancode >= 0 else 0
    return _rne_code(a, s, mbits, bias, maxcode) | sgn


@njit(cache=True)
def _mx_exp(amax, emax, maxman, rceil, emin):
    """Scale exponent of a block with float32 amax bits: FLOOR floor(log2 amax) - emax, RCEIL
    ceil(log2(amax / max)) (mantissa field above the max's -> one more), at least ``emin``."""
    e = (amax >> 23) - 127
    if rceil and (amax & 0x7FFFFF) > maxman:
        e += 1
    return max(e - emax, emin)


@njit(cache=True, parallel=True)
def _fp8_quant(u, mbits, bias, maxcode, nancode, infcode, signbit, out):
    for i in prange(u.shape[0]):
        ui = np.int64(u[i])
        if infcode >= 0 and (ui & 0x7FFFFFFF) == 0x7F800000:
            out[i] = infcode | (signbit if ui >> 31 else 0)
        else:
            out[i] = _encode(ui, 0, mbits, bias, maxcode, nancode, signbit)


@njit(cache=True, parallel=True)
def _gather(c, lut, out):
    for i in prange(c.shape[0]):
        out[i] = lut[c[i]]


@njit(cache=True)
def _elem(v, s, tab, sh, mbits, bias, maxcode, nancode, signbit):
    """Code of RNE(x / 2^s) for float32 bits v: when x / 2^s is a normal float32 the division is
    the exponent-field subtraction and the code comes from the rounding table; otherwise (a
    float32 subnormal input or a scaled value below the normal range) the bit-manipulation
    encoder."""
    e32 = (v >> 23) & 0xFF
    if e32 > 0 and e32 - s >= 1:
        w = v - (s << 23)
        return tab[((w >> sh) << 1) | ((w & ((1 << sh) - 1)) != 0)]
    return _encode(v, s, mbits, bias, maxcode, nancode, signbit)


@njit(cache=True, parallel=True)
def _mx_quant(u, K, bs, el, sc, rceil, pack, tab, sh, codes, scales):
    """el = (mbits, bias, maxcode, nancode, signbit, emax, maxman) of the element,
    sc = (bias, emin, nancode) of the E8M0-style scale."""
    for r in prange(u.shape[0]):
        _mx_row(u, r, K, bs, el, sc, rceil, pack, tab, sh, codes, scales)


@njit(cache=True)
def _mx_row(u, r, K, bs, el, sc, rceil, pack, tab, sh, codes, scales):
    mbits, bias, maxcode, nancode, signbit, emax, maxman = el
    sbias, semin, snan = sc
    nbk = scales.shape[1]
    for kb in range(nbk):
        k0 = kb * bs
        k1 = min(k0 + bs, K)
        amax = 0
        for k in range(k0, k1):
            amax = max(amax, np.int64(u[r, k]) & 0x7FFFFFFF)
        if amax >= 0x7F800000:  # NaN/Inf in the block: scale NaN, codes 0
            scales[r, kb] = snan
            if pack:
                for k in range(k0, k1, 2):
                    codes[r, k >> 1] = 0
            else:
                for k in range(k0, k1):
                    codes[r, k] = 0
            continue
        s = _mx_exp(amax, emax, maxman, rceil, semin)
        scales[r, kb] = s + sbias
        if pack:
            for k in range(k0, k1, 2):
                lo = _elem(np.int64(u[r, k]), s, tab, sh, mbits, bias, maxcode, nancode, signbit)
                hi = 0
                if k + 1 < k1:
                    hi = _elem(np.int64(u[r, k + 1]), s, tab, sh, mbits, bias, maxcode, nancode,
                               signbit)
                codes[r, k >> 1] = lo | (hi << 4)
        else:
            mask = (1 << sh) - 1
            for k in range(k0, k1):
                v = np.int64(u[r, k])
                e32 = (v >> 23) & 0xFF
                if e32 > 0 and e32 - s >= 1:  # same as _elem, written out (3x faster here)
                    w = v - (s << 23)
                    codes[r, k] = tab[((w >> sh) << 1) | ((w & mask) != 0)]
                else:
                    codes[r, k] = _encode(v, s, mbits, bias, maxcode, nancode, signbit)


@njit(cache=True, parallel=True)
def _mx_dequant(codes, scales, K, bs, lut, slut, packed, out):
    """out = lut[code] * slut[scale byte] (one float32 product = one rounding of the exact value)."""
    M = out.shape[0]
    for r in prange(M):
        for k in range(K):
            if packed:
                c = (codes[r, k >> 1] >> ((k & 1) * 4)) & 0xF
            else:
                c = codes[r, k]
            out[r, k] = lut[c] * slut[scales[r, k // bs]]


@njit(cache=True, inline="always")
def _rne_code64(a, mbits, bias, maxcode):
    """Magnitude code of RNE(|y|) for float64 bits a (int64, finite, > 0), saturating."""
    e64 = a >> 52
    man = a & 0xFFFFFFFFFFFFF
    if e64 > 0:
        m = man | 0x10000000000000
        et = e64 - 1023 + bias
    else:
        m = man
        et = 1 - 1023 + bias
    sh = min((52 - mbits) + max(1 - et, 0), 62)
    q = m >> sh
    rem = m & ((np.int64(1) << sh) - 1)
    half = np.int64(1) << (sh - 1)
    if rem > half or (rem == half and (q & 1) == 1):
        q += 1
    return min(((max(et, 1) - 1) << mbits) + q, maxcode)


@njit(cache=True, inline="always")
def _midpoint_code(xv, ub, thr, signbit):
    """Signed code of RNE(|x| / div) given thr = the element midpoints times div (exact float64
    products): the number of midpoints below |x|, a tie at midpoint j going to the even code."""
    ax = abs(np.float64(xv))
    c = 0
    for j in range(thr.shape[0]):
        if ax > thr[j] or (ax == thr[j] and (j & 1) == 1):
            c += 1
    return c | (signbit if ub >> 31 else 0)


@njit(cache=True, parallel=True)
def _nvfp4_quant(u, x, K, bs, el, sc, mids, slut, te, ts, mult, gdec, codes, scales):
    """u: float32 bits (M, K) (int view), x: the same data as float32.
    el = (mbits, bias, maxcode, nancode, signbit, max) of the element,
    sc = (mbits, bias, maxcode, nancode) of the unsigned block-scale format."""
    for r in prange(u.shape[0]):
        _nvfp4_row(u, x, r, K, bs, el, sc, mids, slut, te, np.float64(ts), mult, gdec, codes,
                   scales)


@njit(cache=True)
def _nvfp4_row(u, x, r, K, bs, el, sc, mids, slut, te, ts64, mult, gdec, codes, scales):
    """Bitcasts of computed floats go through per-row scratch buffers viewed as integers."""
    embits, ebias, emaxcode, enan, esign, elmax = el
    smbits, sbias, smaxcode, snan = sc
    nbk = scales.shape[1]
    f32 = np.empty(bs, np.float32)
    f32b = f32.view(np.uint32)
    f64 = np.empty(1, np.float64)
    f64b = f64.view(np.int64)
    thr = np.empty(mids.shape[0], np.float64)
    for kb in range(nbk):
        k0 = kb * bs
        k1 = min(k0 + bs, K)
        amax = 0
        kmax = k0
        for k in range(k0, k1):
            ak = np.int64(u[r, k]) & 0x7FFFFFFF
            if ak > amax:
                amax = ak
                kmax = k
        if amax >= 0x7F800000:  # NaN/Inf in the block: scale NaN, codes 0
            scales[r, kb] = snan
            for k in range(k0, k1, 2):
                codes[r, k >> 1] = 0
            continue
        amaxf = abs(x[r, kmax])
        n = k1 - k0
        if te:
            f32[0] = amaxf * mult
            scode = _rne_code(np.int64(f32b[0]), 0, smbits, sbias, smaxcode)
            p = slut[scode] * gdec
            enc = FMAX32 if p == 0 else min(np.float32(1.0) / p, FMAX32)
            for k in range(n):
                f32[k] = x[r, k0 + k] * enc
            for k in range(0, n, 2):
                lo = _encode(np.int64(f32b[k]), 0, embits, ebias, emaxcode, enan, esign)
                hi = 0
                if k + 1 < n:
                    hi = _encode(np.int64(f32b[k + 1]), 0, embits, ebias, emaxcode, enan, esign)
                codes[r, (k0 + k) >> 1] = lo | (hi << 4)
        else:
            f64[0] = (np.float64(amaxf) / elmax) / ts64
            scode = _rne_code64(f64b[0], smbits, sbias, smaxcode) if f64[0] > 0 else 0
            if scode == 0 and amax > 0:
                scode = 1
            div = np.float64(slut[scode]) * ts64
            if div == 0:
                div = 1.0
            # RNE(|x| / div) without dividing: compare |x| with the midpoints times div (exact
            # float64 products); a tie goes to the even code. Same result as the rounded
            # float64 quotient (its error cannot cross or create a midpoint).
            for j in range(mids.shape[0]):
                thr[j] = mids[j] * div
            for k in range(0, n, 2):
                lo = _midpoint_code(x[r, k0 + k], u[r, k0 + k], thr, esign)
                hi = 0
                if k + 1 < n:
                    hi = _midpoint_code(x[r, k0 + k + 1], u[r, k0 + k + 1], thr, esign)
                codes[r, (k0 + k) >> 1] = lo | (hi << 4)
        scales[r, kb] = scode


@njit(cache=True, parallel=True)
def _nvfp4_dequant(codes, scales, K, bs, smask, lut, slut, gdec, out):
    M = out.shape[0]
    for r in prange(M):
        for k in range(K):
            c = (codes[r, k >> 1] >> ((k & 1) * 4)) & 0xF
            out[r, k] = (lut[c] * slut[scales[r, k // bs] & smask]) * gdec


# ----------------------------------------------------------------------------- wrappers


def _bits2d(x):
    """float32 bit patterns (M, K) of x (float32 / float16 / bfloat16, exact upcast)."""
    x = np.asarray(x)
    if x.dtype != np.float32:
        if x.dtype.kind != "f" and x.dtype.name != "bfloat16":
            raise ValueError(f"x.dtype={x.dtype}: numba kernels accept float32, float16, bfloat16")
        if x.dtype == np.float64:
            raise ValueError("x.dtype=float64: the kernels quantize float32/bf16/fp16 inputs; "
                             "use lowbit.formats for float64 (single rounding from float64)")
        x = x.astype(np.float32)
    x = np.ascontiguousarray(x)
    K = x.shape[-1] if x.ndim else 1
    return x.reshape(-1, K).view(np.uint32), K


def _elem_args(e: S.ElemSpec):
    return (e.mbits, e.bias, e.maxcode, e.nancode, e.signbit)


def fp8_quantize(x, fmt="fp8_e4m3", table=True):
    """float32 -> uint8 codes of a float element format of at most 8 bits (FP8, FP6, FP4 one
    code per byte): RNE, saturating (Inf -> +-max), NaN -> sign|NaN code (+0 without NaN).

    ``table=True`` (default) gathers from :func:`fp8_table` (lowbit.formats' rounding table);
    ``False`` runs the bit-manipulation encoder per element. Both give identical codes."""
    e = S.element_spec(fmt)
    u, _ = _bits2d(x)
    out = np.empty(u.size, np.uint8)
    if table:
        k, tab = fp8_table(e)
        _fp8_gather(u.reshape(-1), 23 - k, tab, out)
    else:
        _fp8_quant(u.reshape(-1), *_elem_args(e)[:4], e.infcode, e.signbit, out)
    return out.reshape(np.shape(x))


def fp8_table(fmt):
    """(k, uint8 table): ``table[(u >> (23-k)) << 1 | sticky]`` is the code of the float32 with
    bits u under the kernels' policy (RNE, saturating, NaN -> sign|NaN code or +0): the table of
    :func:`lowbit.formats.rounding_table` for float32 input (overflow="saturate",
    nan_input="zero"), whose equality with exact rounding is proved there."""
    e = S.element_spec(fmt)
    k, tab = rounding_table(e.fmt, rounding="rne", overflow="saturate", nan_input="zero")
    if int(tab.max()) > 0xFF:
        raise ValueError(f"fmt={e.name!r}: rounding table holds codes above 0xFF")
    return k, tab.astype(np.uint8)


@njit(cache=True, parallel=True)
def _fp8_gather(u, sh, tab, out):
    mask = (np.uint32(1) << np.uint32(sh)) - np.uint32(1)
    for i in prange(u.shape[0]):
        v = u[i]
        out[i] = tab[((v >> np.uint32(sh)) << np.uint32(1)) | np.uint32((v & mask) != 0)]


def fp8_dequantize(codes, fmt="fp8_e4m3"):
    """uint8 codes of a float element format -> float32 values (the format's value table)."""
    e = S.element_spec(fmt)
    c = np.ascontiguousarray(codes, dtype=np.uint8)
    if c.size and int(c.max()) >= (1 << e.bits):
        raise ValueError(f"codes must be in 0..{(1 << e.bits) - 1} for {e.name}")
    out = np.empty(c.size, np.float32)
    _gather(c.reshape(-1), e.values32(), out)
    return out.reshape(c.shape)


def mx_quantize(x, fmt="mxfp8", scale_rule=None):
    """-> (codes uint8 (M, K), packed (M, ceil(K/2)) for 4-bit elements, scale bytes
    (M, ceil(K/block))). ``scale_rule`` None: the format's own ("floor" for the OCP MX ones)."""
    m = S.mx_spec(fmt)
    e = m.elem
    rceil = S.check_scale_rule(scale_rule, m) == "rceil"
    u, K = _bits2d(x)
    M = u.shape[0]
    nbk = -(-K // m.block)
    pack = e.bits == 4
    codes = np.empty((M, (K + 1) // 2 if pack else K), np.uint8)
    scales = np.empty((M, nbk), np.uint8)
    k, tab = fp8_table(e)
    _mx_quant(u, K, m.block, (*_elem_args(e), e.emax, e.maxman),
              (m.scale_bias, m.scale_emin, m.scale_nancode), rceil, pack, tab, 23 - k, codes,
              scales)
    return codes, scales


def mx_dequantize(codes, scales, K, fmt="mxfp8"):
    """(codes, scale bytes) -> float32 (M, K); codes of a non-packed element format must be below
    2**bits (the value table's length: checked, a larger code would read past it)."""
    m = S.mx_spec(fmt)
    scales = np.ascontiguousarray(scales, np.uint8)
    codes = np.ascontiguousarray(codes, np.uint8)
    packed = m.elem.bits == 4
    S.check_block_operands(codes, scales, K, m.block, packed)
    if not packed and codes.size and int(codes.max()) >= (1 << m.elem.bits):
        raise ValueError(f"codes must be in 0..{(1 << m.elem.bits) - 1} for {m.elem.name}")
    out = np.empty((scales.shape[0], K), np.float32)
    _mx_dequant(codes, scales, K, m.block, m.elem.values32(), m.scale_values32(), packed, out)
    return out


def nvfp4_quantize(x, profile="lowbit", tensor_amax=None, fmt="nvfp4"):
    """NVFP4 (see triton_quant.nvfp4_quantize for the two profiles) ->
    (packed codes (M, ceil(K/2)), scale bytes (M, ceil(K/block)), float32 tensor decode scale)."""
    S.check_profile(profile)
    sp = S.nvfp4_spec(fmt)
    e, s = sp.elem, sp.scale
    u, K = _bits2d(x)
    M = u.shape[0]
    if tensor_amax is None:
        tensor_amax = _finite_block_amax(u, sp.block)
    ts, gd, mult = S.nvfp4_host_scalars(tensor_amax, sp)
    codes = np.empty((M, (K + 1) // 2), np.uint8)
    scales = np.empty((M, -(-K // sp.block)), np.uint8)
    _nvfp4_quant(u, u.view(np.float32), K, sp.block, (*_elem_args(e), e.max),
                 (s.mbits, s.bias, s.maxcode, s.nancode), sp.midpoints(), s.values32(),
                 profile == "te", np.float32(ts), np.float32(mult), np.float32(gd), codes, scales)
    return codes, scales, (gd if profile == "te" else ts)


@njit(cache=True)
def _finite_block_amax_bits(u, bs):
    M, K = u.shape
    best = 0
    for r in range(M):
        for k0 in range(0, K, bs):
            am = 0
            for k in range(k0, min(k0 + bs, K)):
                am = max(am, np.int64(u[r, k]) & 0x7FFFFFFF)
            if am < 0x7F800000:
                best = max(best, am)
    return best


def _finite_block_amax(u, bs):
    """max |x| over the blocks without NaN/Inf (0.0 if none), from float32 bits (M, K)."""
    return float(np.array(_finite_block_amax_bits(u, bs), np.uint32).view(np.float32))


def nvfp4_dequantize(codes, scales, K, global_decode, fmt="nvfp4"):
    sp = S.nvfp4_spec(fmt)
    scales = np.ascontiguousarray(scales, np.uint8)
    codes = np.ascontiguousarray(codes, np.uint8)
    S.check_block_operands(codes, scales, K, sp.block, packed=True)
    out = np.empty((scales.shape[0], K), np.float32)
    _nvfp4_dequant(codes, scales, K, sp.block,
                   (1 << sp.scale.bits) - 1, sp.elem.values32(), sp.scale.values32(),
                   np.float32(global_decode), out)
    return out
