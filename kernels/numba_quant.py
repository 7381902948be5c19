"""numba CPU kernels: fused single-pass quantize / dequantize for FP8, MXFP8/MXFP4 and NVFP4.

Same rules as :mod:`lowbit.kernels.triton_quant` (see its docstring for the rounding / NaN /
scale conventions). Each block is read once; its amax, scale and codes are computed in
registers and written once (FP4 packed two per byte, low nibble first). Outer loops are
``prange`` over rows (``parallel=True``).

Rounding: the reference is the integer bit-manipulation encoder (:func:`_rne_code`, the same
algorithm as the Triton kernels). For speed, element codes are gathered from a small table built
by that encoder (:func:`fp8_table`: index = sign, exponent, top mbits+1 mantissa bits, sticky),
with an exact power-of-two block scale applied as an exponent-field subtraction; float32
subnormal inputs take the bit-manipulation path. NVFP4 ``lowbit`` rounds x / (s_b*S) by exact
float64 comparisons with the E2M1 midpoints. Dequantization uses value tables.

Inputs: numpy float32 arrays (float16 / ml_dtypes.bfloat16 are upcast exactly first), shape
(..., K), blocks along the last axis. Outputs are numpy uint8 arrays shaped like the Triton
kernels' outputs: codes (M, K) or packed (M, ceil(K/2)), scales (M, ceil(K/block)).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

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
    """Signed code of RNE(x / 2^s) for float32 bits u (uint32 as int64); NaN -> nancode."""
    a = u & 0x7FFFFFFF
    sgn = signbit if (u >> 31) else 0
    if a > 0x7F800000:
        return (nancode if nancode >= 0 else 0) | sgn
    return _rne_code(a, s, mbits, bias, maxcode) | sgn


@njit(cache=True)
def _decode(c, ebits, mbits, bias, specials):
    """float32 value of a code (exact: built in float64 with ldexp, then cast).
    specials: 0 none, 1 E4M3 'fn' NaN, 2 IEEE Inf/NaN."""
    mag = c & ((1 << (ebits + mbits)) - 1)
    neg = (c >> (ebits + mbits)) & 1
    e = mag >> mbits
    m = mag & ((1 << mbits) - 1)
    if specials == 1 and mag == (1 << (ebits + mbits)) - 1:
        return np.float32(np.nan)
    if specials == 2 and e == (1 << ebits) - 1:
        v = np.inf if m == 0 else np.nan
    elif e == 0:
        v = math.ldexp(float(m), 1 - bias - mbits)
    else:
        v = math.ldexp(float(m + (1 << mbits)), e - bias - mbits)
    return np.float32(-v if neg else v)


@njit(cache=True)
def _lut(n, ebits, mbits, bias, specials):
    out = np.empty(n, np.float32)
    for c in range(n):
        out[c] = _decode(c, ebits, mbits, bias, specials)
    return out


@njit(cache=True)
def _e8m0_lut():
    out = np.empty(256, np.float32)
    for c in range(255):
        out[c] = np.float32(math.ldexp(1.0, c - 127))
    out[255] = np.nan
    return out


@njit(cache=True)
def _mx_exp(amax, emax, maxman, rceil):
    e = (amax >> 23) - 127
    if rceil and (amax & 0x7FFFFF) > maxman:
        e += 1
    return max(e - emax, -127)


@njit(cache=True, parallel=True)
def _fp8_quant(u, mbits, bias, maxcode, nancode, infcode, out):
    for i in prange(u.shape[0]):
        ui = np.int64(u[i])
        if infcode >= 0 and (ui & 0x7FFFFFFF) == 0x7F800000:
            out[i] = infcode | ((ui >> 31) << 7)
        else:
            out[i] = _encode(ui, 0, mbits, bias, maxcode, nancode, 0x80)


@njit(cache=True, parallel=True)
def _fp8_dequant(c, lut, out):
    for i in prange(c.shape[0]):
        out[i] = lut[c[i]]


@njit(cache=True)
def _elem(v, s, tab, sh, mbits, bias, maxcode, nancode, signbit):
    """Code of RNE(x / 2^s) for float32 bits v: when x / 2^s is a normal float32 the division is
    the exponent-field subtraction and the code comes from the rounding table (see fp8_table);
    otherwise (float32 subnormal input) the bit-manipulation encoder."""
    e32 = (v >> 23) & 0xFF
    if e32 > 0 and e32 - s >= 1:
        w = v - (s << 23)
        return tab[((w >> sh) << 1) | ((w & ((1 << sh) - 1)) != 0)]
    return _encode(v, s, mbits, bias, maxcode, nancode, signbit)


@njit(cache=True, parallel=True)
def _mx_quant(u, K, bs, mbits, bias, maxcode, nancode, emax, maxman, rceil, pack, tab, sh, codes,
              scales):
    for r in prange(u.shape[0]):
        _mx_row(u, r, K, bs, mbits, bias, maxcode, nancode, emax, maxman, rceil, pack, tab, sh,
                codes, scales)


@njit(cache=True)
def _mx_row(u, r, K, bs, mbits, bias, maxcode, nancode, emax, maxman, rceil, pack, tab, sh, codes,
            scales):
    nbk = scales.shape[1]
    if True:
        for kb in range(nbk):
            k0 = kb * bs
            k1 = min(k0 + bs, K)
            amax = 0
            for k in range(k0, k1):
                amax = max(amax, np.int64(u[r, k]) & 0x7FFFFFFF)
            s = _mx_exp(amax, emax, maxman, rceil)
            if amax >= 0x7F800000:  # NaN/Inf in the block: scale NaN, codes 0
                scales[r, kb] = 255
                if pack:
                    for k in range(k0, k1, 2):
                        codes[r, k >> 1] = 0
                else:
                    for k in range(k0, k1):
                        codes[r, k] = 0
                continue
            scales[r, kb] = s + 127
            if pack:
                for k in range(k0, k1, 2):
                    lo = _elem(np.int64(u[r, k]), s, tab, sh, 1, 1, 7, -1, 0x8)
                    hi = 0
                    if k + 1 < k1:
                        hi = _elem(np.int64(u[r, k + 1]), s, tab, sh, 1, 1, 7, -1, 0x8)
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
                        codes[r, k] = _encode(v, s, mbits, bias, maxcode, nancode, 0x80)


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


_E2M1_MIDS = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])


@njit(cache=True, inline="always")
def _e2m1_cmp(xv, ub, thr):
    ax = abs(np.float64(xv))
    c = 0
    for j in range(7):
        if ax > thr[j] or (ax == thr[j] and (j & 1) == 1):
            c += 1
    return c | (8 if ub >> 31 else 0)


@njit(cache=True, parallel=True)
def _nvfp4_quant(u, x, K, te, ts, mult, gdec, codes, scales):
    """u: float32 bits (M, K) (int view), x: the same data as float32. Bitcasts of computed
    floats go through a per-row scratch buffer viewed as integers."""
    for r in prange(u.shape[0]):
        _nvfp4_row(u, x, r, K, te, np.float64(ts), mult, gdec, codes, scales)


@njit(cache=True)
def _nvfp4_row(u, x, r, K, te, ts64, mult, gdec, codes, scales):
    nbk = scales.shape[1]
    if True:
        f32 = np.empty(16, np.float32)
        f32b = f32.view(np.uint32)
        f64 = np.empty(16, np.float64)
        f64b = f64.view(np.int64)
        thr = np.empty(7, np.float64)
        for kb in range(nbk):
            k0 = kb * 16
            k1 = min(k0 + 16, K)
            amax = 0
            kmax = k0
            for k in range(k0, k1):
                ak = np.int64(u[r, k]) & 0x7FFFFFFF
                if ak > amax:
                    amax = ak
                    kmax = k
            if amax >= 0x7F800000:  # NaN/Inf in the block: scale NaN (0x7F), codes 0
                scales[r, kb] = 0x7F
                for k in range(k0, k1, 2):
                    codes[r, k >> 1] = 0
                continue
            amaxf = abs(x[r, kmax])
            n = k1 - k0
            if te:
                f32[0] = amaxf * mult
                sc = _rne_code(np.int64(f32b[0]), 0, 3, 7, 0x7E)
                p = _decode(sc, 4, 3, 7, 1) * gdec
                enc = FMAX32 if p == 0 else min(np.float32(1.0) / p, FMAX32)
                for k in range(n):
                    f32[k] = x[r, k0 + k] * enc
                for k in range(n, 16):
                    f32[k] = 0
                for k in range(0, n, 2):
                    lo = _encode(np.int64(f32b[k]), 0, 1, 1, 7, -1, 0x8)
                    hi = _encode(np.int64(f32b[k + 1]), 0, 1, 1, 7, -1, 0x8) if k + 1 < n else 0
                    codes[r, (k0 + k) >> 1] = lo | (hi << 4)
            else:
                f64[0] = (np.float64(amaxf) / 6.0) / ts64
                sc = _rne_code64(f64b[0], 3, 7, 0x7E) if f64[0] > 0 else 0
                if sc == 0 and amax > 0:
                    sc = 1
                div = np.float64(_decode(sc, 4, 3, 7, 1)) * ts64
                if div == 0:
                    div = 1.0
                # RNE_e2m1(|x| / div) without dividing: compare |x| with the 7 midpoints times
                # div (exact float64 products); a tie goes to the even code. Same result as the
                # rounded float64 quotient (its error cannot cross or create a midpoint).
                for j in range(7):
                    thr[j] = _E2M1_MIDS[j] * div
                for k in range(0, n, 2):
                    lo = _e2m1_cmp(x[r, k0 + k], u[r, k0 + k], thr)
                    hi = 0
                    if k + 1 < n:
                        hi = _e2m1_cmp(x[r, k0 + k + 1], u[r, k0 + k + 1], thr)
                    codes[r, (k0 + k) >> 1] = lo | (hi << 4)
            scales[r, kb] = sc


@njit(cache=True, parallel=True)
def _nvfp4_dequant(codes, scales, K, lut, slut, gdec, out):
    M = out.shape[0]
    for r in prange(M):
        for k in range(K):
            c = (codes[r, k >> 1] >> ((k & 1) * 4)) & 0xF
            out[r, k] = (lut[c] * slut[scales[r, k >> 4] & 0x7F]) * gdec


# ----------------------------------------------------------------------------- wrappers

_SPECIALS = {"fp8_e4m3": 1, "fp8_e5m2": 2, "fp4_e2m1": 0}
_EBITS = {"fp8_e4m3": 4, "fp8_e5m2": 5, "fp4_e2m1": 2}


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


def fp8_quantize(x, fmt="fp8_e4m3", table=True):
    """float32 -> uint8 FP8 codes (RNE, saturating, Inf -> ±max, NaN -> sign|NaN code).

    ``table=True`` (default) gathers from :func:`fp8_table`, a cache of the bit-manipulation
    encoder over every (sign, exponent, top mbits+1 mantissa bits, sticky) class; ``False``
    runs the bit-manipulation encoder per element. Both give identical codes."""
    e = S.element_spec(fmt)
    if e.bits != 8:
        raise ValueError(f"fmt={fmt!r}: fp8_quantize supports fp8_e4m3, fp8_e5m2")
    u, _ = _bits2d(x)
    out = np.empty(u.size, np.uint8)
    if table:
        k, tab = fp8_table(e.name)
        _fp8_gather(u.reshape(-1), 23 - k, tab, out)
    else:
        _fp8_quant(u.reshape(-1), e.mbits, e.bias, e.maxcode, e.nancode, e.infcode, out)
    return out.reshape(np.shape(x))


_TABLES = {}


def fp8_table(fmt):
    """(k, uint8 table) with table[(u >> (23-k)) << 1 | sticky] = code of float32 bits u
    (FP8 E4M3/E5M2 and FP4 E2M1; for E2M1 a NaN entry holds 0, never used: MX/NVFP4 blocks
    holding NaN are zeroed).

    k = mbits + 1 keeps the round bit of every normal result; subnormal results round at a
    higher bit and fp32 subnormal inputs all round to ±0, so everything below the k kept
    mantissa bits only matters through the sticky bit. Built by the bit-manipulation encoder
    (2^(k+10) entries: 16 Ki for E4M3, 8 Ki for E5M2)."""
    e = S.element_spec(fmt)
    if e.name not in _TABLES:
        k = e.mbits + 1
        idx = np.arange(1 << (k + 10), dtype=np.uint64)
        rep = (((idx >> np.uint64(1)) << np.uint64(23 - k)) | (idx & np.uint64(1))).astype(np.uint32)
        tab = np.empty(rep.size, np.uint8)
        _build_table(rep, e.mbits, e.bias, e.maxcode, e.nancode, e.infcode, 0x80 if e.bits == 8
                     else 0x8, tab)
        _TABLES[e.name] = (k, tab)
    return _TABLES[e.name]


@njit(cache=True)
def _build_table(u, mbits, bias, maxcode, nancode, infcode, signbit, out):
    for i in range(u.shape[0]):
        ui = np.int64(u[i])
        if infcode >= 0 and (ui & 0x7FFFFFFF) == 0x7F800000:
            out[i] = infcode | (signbit if ui >> 31 else 0)
        else:
            out[i] = _encode(ui, 0, mbits, bias, maxcode, nancode, signbit)


@njit(cache=True, parallel=True)
def _fp8_gather(u, sh, tab, out):
    mask = (np.uint32(1) << np.uint32(sh)) - np.uint32(1)
    for i in prange(u.shape[0]):
        v = u[i]
        out[i] = tab[((v >> np.uint32(sh)) << np.uint32(1)) | np.uint32((v & mask) != 0)]


def fp8_dequantize(codes, fmt="fp8_e4m3"):
    e = S.element_spec(fmt)
    c = np.ascontiguousarray(codes, dtype=np.uint8)
    out = np.empty(c.size, np.float32)
    _fp8_dequant(c.reshape(-1), _lut(256, _EBITS[e.name], e.mbits, e.bias, _SPECIALS[e.name]), out)
    return out.reshape(c.shape)


def mx_quantize(x, fmt="mxfp8", scale_rule="floor"):
    """-> (codes uint8 (M, K) or packed (M, ceil(K/2)), E8M0 scale bytes (M, ceil(K/32)))."""
    e, bs = S.mx_spec(fmt)
    rceil = S.check_scale_rule(scale_rule) == "rceil"
    u, K = _bits2d(x)
    M = u.shape[0]
    nbk = -(-K // bs)
    pack = e.bits == 4
    codes = np.empty((M, (K + 1) // 2 if pack else K), np.uint8)
    scales = np.empty((M, nbk), np.uint8)
    k, tab = fp8_table(e.name)
    _mx_quant(u, K, bs, e.mbits, e.bias, e.maxcode, e.nancode, e.emax, e.maxman, rceil, pack,
              tab, 23 - k, codes, scales)
    return codes, scales


def mx_dequantize(codes, scales, K, fmt="mxfp8"):
    e, bs = S.mx_spec(fmt)
    scales = np.ascontiguousarray(scales, np.uint8)
    out = np.empty((scales.shape[0], K), np.float32)
    lut = _lut(1 << e.bits, _EBITS[e.name], e.mbits, e.bias, _SPECIALS[e.name])
    _mx_dequant(np.ascontiguousarray(codes, np.uint8), scales, K, bs, lut, _e8m0_lut(),
                e.bits == 4, out)
    return out


def nvfp4_quantize(x, profile="lowbit", tensor_amax=None):
    """NVFP4 (see triton_quant.nvfp4_quantize for the two profiles) ->
    (packed codes (M, ceil(K/2)), UE4M3 scale bytes (M, ceil(K/16)), float32 tensor decode scale)."""
    if profile not in S.NVFP4_PROFILES:
        raise ValueError(f"profile={profile!r}: choose one of {S.NVFP4_PROFILES}")
    u, K = _bits2d(x)
    M = u.shape[0]
    if tensor_amax is None:
        tensor_amax = _finite_block_amax(u, 16)
    ts = S.nvfp4_tensor_scale(tensor_amax)
    _, gd, mult = S.nvfp4_global_scales(tensor_amax)
    codes = np.empty((M, (K + 1) // 2), np.uint8)
    scales = np.empty((M, -(-K // 16)), np.uint8)
    _nvfp4_quant(u, u.view(np.float32), K, profile == "te", np.float32(ts), np.float32(mult),
                 np.float32(gd), codes, scales)
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


def nvfp4_dequantize(codes, scales, K, global_decode):
    scales = np.ascontiguousarray(scales, np.uint8)
    out = np.empty((scales.shape[0], K), np.float32)
    _nvfp4_dequant(np.ascontiguousarray(codes, np.uint8), scales, K, _lut(16, 2, 1, 1, 0),
                   _lut(128, 4, 3, 7, 1), np.float32(global_decode), out)
    return out
