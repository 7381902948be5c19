"""Block-scaled FP4 GEMM kernels (Triton dot_scaled / dequant+dot, numba) bit for bit against
lowbit.sim.mxdot (OCP MX s6 dot with an FP32 accumulator, one rounding per block) and against
an exact per-block reference written here (Fractions for the block dots)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from lowbit.sim import mxdot


def _variants(backend):
    return ["dot_scaled", "dequant"] if backend.name == "triton" else [None]


def _values(H, packed, K, bs):
    from lowbit.formats import decode
    v = decode(H.unpack_low_first(packed, K), "fp4_e2m1")
    return np.pad(v, ((0, 0), (0, (-K) % bs)))


_REF_CACHE = {}


def _block_reference(Pa, Xa, Pb, Xb, bs, alpha=None):
    """Exact block dots (Fractions), each rounded to float32 and accumulated in float32 in K
    order; optional epilogue fp32(float64(acc) * alpha). Cached: both backends quantize to the
    same bits, so the reference is computed once per session."""
    key = (Pa.tobytes(), Xa.tobytes(), Pb.tobytes(), Xb.tobytes(), bs, alpha)
    if key not in _REF_CACHE:
        _REF_CACHE[key] = _block_reference_uncached(Pa, Xa, Pb, Xb, bs, alpha)
    return _REF_CACHE[key]


def _block_reference_uncached(Pa, Xa, Pb, Xb, bs, alpha):
    M, N, nb = Pa.shape[0], Pb.shape[0], Xa.shape[1]
    out = np.empty((M, N), np.float32)
    for m in range(M):
        for n in range(N):
            acc = np.float32(0)
            for b in range(nb):
                sl = slice(b * bs, (b + 1) * bs)
                if np.isnan(Xa[m, b]) or np.isnan(Xb[n, b]):
                    acc = np.float32(np.nan)
                    continue
                d = sum((Fraction(float(p)) * Fraction(float(q)) for p, q in
                         zip(Pa[m, sl], Pb[n, sl])), Fraction(0))
                acc = np.float32(acc + np.float32(float(d * Fraction(float(Xa[m, b]))
                                                        * Fraction(float(Xb[n, b])))))
            out[m, n] = acc if alpha is None else np.float32(np.float64(acc) * alpha)
    return out


def _sim(Pa, Xa, Pb, Xb, bs, **kw):
    return mxdot.mx_dot_encoded(Pa, Xa, Pb, Xb, bs, "fp4_e2m1", accum="fp32", **kw)


def test_mxfp4_gemm(backend, H, rng):
    from lowbit.formats import decode
    M, N, K = 19, 17, 100  # ragged M, N (tiles of 16) and K (blocks of 32), odd packing
    a = H.random_matrix(rng, M, K, spread=6)
    b = H.random_matrix(rng, N, K, spread=6)
    a[3, 40] = np.nan  # NaN scale -> row 3 all NaN
    ca, sa = backend.mx_quantize(a, "mxfp4", "floor")
    cb, sb = backend.mx_quantize(b, "mxfp4", "rceil")
    Pa, Pb = _values(H, ca, K, 32), _values(H, cb, K, 32)
    Xa, Xb = decode(sa, "e8m0"), decode(sb, "e8m0")
    sim = _sim(Pa, Xa, Pb, Xb, 32).astype(np.float32)
    ref = _block_reference(Pa, Xa, Pb, Xb, 32)
    assert H.same_bits_or_both_nan(sim, ref)
    assert np.isnan(ref[3]).all() and np.isfinite(np.delete(ref, 3, axis=0)).all()
    for v in _variants(backend):
        got = backend.mxfp4_gemm(ca, sa, cb, sb, K, variant=v)
        assert got.shape == (M, N) and got.dtype == np.float32
        assert H.same_bits_or_both_nan(got, ref), v


def test_nvfp4_gemm(backend, H, rng):
    from lowbit.formats import decode
    M, N, K = 17, 20, 72
    a = H.random_matrix(rng, M, K, spread=4)
    b = H.random_matrix(rng, N, K, spread=4)
    ca, sa, ta = backend.nvfp4_quantize(a)
    cb, sb, tb = backend.nvfp4_quantize(b)
    Pa, Pb = _values(H, ca, K, 16), _values(H, cb, K, 16)
    Xa, Xb = decode(sa, "ue4m3"), decode(sb, "ue4m3")
    alpha = float(ta) * float(tb)
    ref = _block_reference(Pa, Xa, Pb, Xb, 16, alpha=alpha)
    sim = _sim(Pa, Xa, Pb, Xb, 16, tensor_scale_a=float(ta), tensor_scale_b=float(tb),
               scale_fmt="ue4m3").astype(np.float32)
    assert H.same_bits_or_both_nan(sim, ref)
    got = backend.nvfp4_gemm(ca, sa, ta, cb, sb, tb, K)
    assert H.same_bits_or_both_nan(got, ref)


def test_mxfp4_gemm_hand_worked(backend):
    """A = [6, 0.5, ...] (X=1), B = [-1, 2, ...] (X=2^-3): 6*-1*2^-3 + 0.5*2*2^-3 = -0.625;
    second block: 4 * 4 * 2^(1-3) = 4 -> -0.625 + 4 = 3.375."""
    K = 64
    a = np.zeros((1, K), np.float32)
    b = np.zeros((1, K), np.float32)
    a[0, :2] = [6, 0.5]
    b[0, :3] = [-0.125, 0.25, 0.75]  # amax 0.75 -> X = 2^-3 (floor: floor(log2 .75)-2 = -3)
    a[0, 32] = 8.0  # X = 2^1, element 4
    b[0, 32] = 0.5  # X = 2^-3, element 4
    ca, sa = backend.mx_quantize(a, "mxfp4", "floor")
    cb, sb = backend.mx_quantize(b, "mxfp4", "floor")
    assert list(sa[0]) == [127, 128] and list(sb[0]) == [124, 124]
    for v in _variants(backend):
        got = backend.mxfp4_gemm(ca, sa, cb, sb, K, variant=v)
        assert got[0, 0] == np.float32(3.375), v


def test_gemm_rejects_bad_shapes(backend):
    c = np.zeros((2, 16), np.uint8)
    s = np.zeros((2, 1), np.uint8)
    with pytest.raises(ValueError, match="packed codes"):
        backend.mxfp4_gemm(c, s, c, s, 64)


def test_validate_reference_gemm_is_the_sim_model(H, rng):
    """lowbit.kernels.validate.reference_block_gemm (what `lowbit kernels validate` compares the
    kernels with) equals lowbit.sim.mxdot and the Fraction reference, NaN blocks included."""
    from lowbit.formats import decode
    from lowbit.kernels import numba_quant as nq
    from lowbit.kernels.validate import reference_block_gemm
    K = 96
    a = H.random_matrix(rng, 7, K, spread=8)
    b = H.random_matrix(rng, 5, K, spread=8)
    a[2, 5] = np.inf
    ca, sa = nq.mx_quantize(a, "mxfp4", "floor")
    cb, sb = nq.mx_quantize(b, "mxfp4", "rceil")
    Pa, Pb = _values(H, ca, K, 32), _values(H, cb, K, 32)
    Xa, Xb = decode(sa, "e8m0"), decode(sb, "e8m0")
    got = reference_block_gemm(Pa, Xa, Pb, Xb, 32)
    assert H.same_bits_or_both_nan(got, _block_reference(Pa, Xa, Pb, Xb, 32))
    assert H.same_bits_or_both_nan(got, _sim(Pa, Xa, Pb, Xb, 32).astype(np.float32))
