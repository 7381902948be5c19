"""Quantize / dequantize kernels (Triton through the interpreter, and numba) bit for bit
against lowbit.formats, ml_dtypes and exact Fraction arithmetic, on edge-complete vectors:
every representable value, every rounding midpoint and its float32 neighbours (at several
block scales), NaN, ±Inf, zeros, float32 subnormals, overflow, ragged K."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

FP8 = ["fp8_e4m3", "fp8_e5m2"]
MX = ["mxfp8", "mxfp8_e5m2", "mxfp4"]
RULES = ["floor", "rceil"]


@pytest.mark.parametrize("fmt", FP8)
def test_fp8_quantize_edges(backend, H, fmt):
    from lowbit.formats import encode
    x = H.fp8_edge_vector(fmt)
    got = backend.fp8_quantize(x, fmt)
    assert got.dtype == np.uint8 and got.shape == x.shape
    np.testing.assert_array_equal(got, encode(x, fmt))
    # independent oracle: ml_dtypes RNE with an exact clip (±Inf -> ±max, CUDA .satfinite)
    fin = ~np.isnan(x)
    np.testing.assert_array_equal(got[fin], H.mld_saturating_codes(x[fin], fmt))
    nan_mag = {"fp8_e4m3": 0x7F, "fp8_e5m2": 0x7E}[fmt]
    np.testing.assert_array_equal(got[np.isnan(x)] & 0x7F, nan_mag)
    maxc = {"fp8_e4m3": 0x7E, "fp8_e5m2": 0x7B}[fmt]
    np.testing.assert_array_equal(got[np.isinf(x)], np.where(x[np.isinf(x)] > 0, maxc, maxc | 0x80))
    # hand-worked: the E4M3 top tie 464 -> 448 (even), 465 -> saturate; E5M2 61440 -> max
    if fmt == "fp8_e4m3":
        np.testing.assert_array_equal(
            backend.fp8_quantize(np.array([464, 465, -1e9, 2.0 ** -10], np.float32), fmt),
            [0x7E, 0x7E, 0xFE, 0x00])


@pytest.mark.parametrize("fmt", FP8)
def test_fp8_quantize_random_and_bf16(backend, H, fmt, rng):
    from lowbit.formats import encode
    x = H.random_matrix(rng, 16, 64, spread=20)
    np.testing.assert_array_equal(backend.fp8_quantize(x, fmt), encode(x, fmt))
    if backend.name == "triton":
        torch = backend.torch
        xb = torch.from_numpy(x).to(torch.bfloat16)
        got = backend.q.fp8_quantize(xb, fmt).numpy()
        np.testing.assert_array_equal(got, encode(xb.float().numpy(), fmt))


@pytest.mark.parametrize("fmt", FP8)
def test_fp8_dequantize_all_codes(backend, H, fmt):
    from lowbit.formats import decode
    c = np.arange(256, dtype=np.uint8)
    got = backend.fp8_dequantize(c, fmt)
    assert H.same_bits_or_both_nan(got, decode(c, fmt).astype(np.float32))
    ref = c.view(H.MLD[fmt]).astype(np.float32)
    assert H.same_bits_or_both_nan(got, ref)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("fmt", MX)
def test_mx_quantize_edges(backend, H, fmt, rule):
    x = H.mx_edge_matrix(fmt)
    codes, scales = backend.mx_quantize(x, fmt, rule)
    rc, rs, rdeq = H.formats_mx(x, fmt, rule)
    np.testing.assert_array_equal(scales, rs)
    np.testing.assert_array_equal(codes, rc)
    deq = backend.mx_dequantize(codes, scales, x.shape[1], fmt)
    assert H.same_bits_or_both_nan(deq, rdeq)

    # independent oracles, block by block: exact scale exponent, ml_dtypes element rounding
    elem = H.MX_ELEM[fmt]
    ecodes = H.unpack_low_first(codes, x.shape[1]) if elem == "fp4_e2m1" else codes
    for r in range(x.shape[0]):
        blk = x[r]
        if not np.isfinite(blk).all():
            assert scales[r, 0] == 0xFF and not ecodes[r].any()
            continue
        s = H.mx_scale_exp_exact(np.abs(blk).max(), elem, rule)
        assert scales[r, 0] == s + 127, (r, blk)
        scaled = (blk.astype(np.float64) * 2.0 ** -s).astype(np.float32)
        assert np.array_equal(scaled.astype(np.float64), blk.astype(np.float64) * 2.0 ** -s)
        np.testing.assert_array_equal(ecodes[r], H.mld_saturating_codes(scaled, elem))


@pytest.mark.parametrize("fmt", MX)
def test_mx_random_ragged(backend, H, fmt, rng):
    x = H.random_matrix(rng, 5, 77, spread=30)  # K = 77: ragged last block, odd K for FP4
    for rule in RULES:
        codes, scales = backend.mx_quantize(x, fmt, rule)
        rc, rs, rdeq = H.formats_mx(x, fmt, rule)
        np.testing.assert_array_equal(scales, rs)
        np.testing.assert_array_equal(codes, rc)
        assert H.same_bits_or_both_nan(backend.mx_dequantize(codes, scales, 77, fmt), rdeq)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_triton_low_precision_inputs(H, rng, dtype):
    """bf16 / fp16 inputs are upcast exactly in-register: same bits as float32 inputs."""
    tr = H.get("triton")
    torch = tr.torch
    x = torch.from_numpy(H.random_matrix(rng, 4, 64, spread=3)).to(getattr(torch, dtype))
    xf = x.float().numpy()
    for fmt in ("mxfp8", "mxfp4"):
        got = [t.numpy() for t in tr.q.mx_quantize(x, fmt, "rceil")]
        for a, b in zip(got, H.formats_mx(xf, fmt, "rceil")[:2]):
            np.testing.assert_array_equal(a, b)
    c, s, ts = tr.q.nvfp4_quantize(x)
    rc, rs, rts, _ = H.formats_nvfp4(xf)
    np.testing.assert_array_equal(c.numpy(), rc)
    np.testing.assert_array_equal(s.numpy(), rs)


def test_mxfp4_pack_order_hand_worked(backend):
    # block max 6 -> X = 1; [0.5, -3, 6, 1] -> codes 1, 0xD, 7, 2 -> bytes 0xD1, 0x27
    x = np.zeros((1, 32), np.float32)
    x[0, :4] = [0.5, -3.0, 6.0, 1.0]
    codes, scales = backend.mx_quantize(x, "mxfp4", "floor")
    assert scales[0, 0] == 127
    assert list(codes[0, :2]) == [0xD1, 0x27]


def test_mxfp4_pack_matches_formats_pack(backend, H, rng):
    from lowbit.formats import encode, pack
    x = H.random_matrix(rng, 1, 64)
    codes, _ = backend.mx_quantize(x, "mxfp4", "floor")
    np.testing.assert_array_equal(codes[0], pack(encode(x, "mxfp4").codes[0], "fp4_e2m1"))


def _nvfp4_edge_matrix(H, rng):
    v = H.pos_values("fp4_e2m1")
    mids = (v[1:] + v[:-1]) / 2
    rows = []
    for sb in (448.0, 1.0, 0.0625, 2.0 ** -9, 13.0):  # block scale targets (tensor amax 2688)
        vals = np.concatenate([v, mids]) * sb
        vals32 = vals.astype(np.float32)
        nb = np.concatenate([np.nextafter(vals32, np.float32(np.inf)),
                             np.nextafter(vals32, np.float32(0))])
        allv = np.concatenate([vals32, nb, -vals32])
        allv = allv[np.abs(allv) <= 6 * sb]
        allv = np.concatenate([allv, np.zeros((-len(allv)) % 15, np.float32)]).reshape(-1, 15)
        pin = np.full((len(allv), 1), 6 * sb, np.float32)
        rows.append(np.concatenate([pin, allv], axis=1))
    x = np.concatenate(rows)
    extra = rng.standard_normal((6, 16)).astype(np.float32)
    extra[0, 3] = np.nan
    extra[1, 0] = -np.inf
    extra[2] = 0
    extra[3] *= np.float32(1e-40)  # underflows the UE4M3 range -> smallest scale 2^-9
    extra[4] *= 100  # large block, below the tensor amax
    x = np.concatenate([x, extra]).astype(np.float32)
    x[0, 0] = 2688.0  # tensor amax -> S = 1
    return x.reshape(-1, 48) if x.shape[0] % 3 == 0 else x


def test_nvfp4_lowbit_profile_edges(backend, H, rng):
    x = _nvfp4_edge_matrix(H, rng)
    codes, scales, ts = backend.nvfp4_quantize(x)
    rc, rs, rts, rdeq = H.formats_nvfp4(x)
    assert float(ts) == rts
    np.testing.assert_array_equal(scales, rs)
    np.testing.assert_array_equal(codes, rc)
    assert H.same_bits_or_both_nan(backend.nvfp4_dequantize(codes, scales, x.shape[1], ts), rdeq)


@pytest.mark.parametrize("case", ["subnormal_tensor", "all_zero", "nan_only_block"])
def test_nvfp4_tensor_scale_edges(backend, H, case):
    """Tensor-scale corner cases: amax/2688 underflows float32 (-> smallest subnormal), an
    all-zero tensor (-> S = 1), a tensor whose only finite blocks are zero next to a NaN block."""
    x = np.zeros((2, 32), np.float32)
    if case == "subnormal_tensor":
        x[0] = np.float32(1e-45) * np.arange(32)
        x[1] = -np.float32(1e-44)
    elif case == "nan_only_block":
        x[0, :16] = np.nan
        x[0, 16:] = 1e30  # huge, but in a NaN-free block: sets the tensor amax
    codes, scales, ts = backend.nvfp4_quantize(x)
    rc, rs, rts, rdeq = H.formats_nvfp4(x)
    assert float(ts) == rts
    np.testing.assert_array_equal(scales, rs)
    np.testing.assert_array_equal(codes, rc)
    assert H.same_bits_or_both_nan(backend.nvfp4_dequantize(codes, scales, 32, ts), rdeq)


def test_nvfp4_lowbit_profile_vs_fractions(backend, H, rng):
    """Exact-arithmetic oracle: S = fp32(amax/2688); s_b = RNE_ue4m3((amax_b/6)/S) (>= 2^-9 for a
    nonzero block); q = RNE_e2m1(x / (s_b S)), all in Fractions."""
    x = _nvfp4_edge_matrix(H, rng)
    x = x[np.isfinite(x).all(axis=1)][:24]  # finite rows only (a NaN row is tested above)
    x = x.reshape(-1, 16)
    codes, scales, ts = backend.nvfp4_quantize(x)
    amax = float(np.abs(x).max())
    S = Fraction(float(np.float32(amax / 2688.0)))
    assert Fraction(float(ts)) == S
    e4 = [Fraction(float(v)) for v in H.pos_values("fp8_e4m3")]
    e2 = [Fraction(float(v)) for v in H.pos_values("fp4_e2m1")]
    q = H.unpack_low_first(codes, 16)
    for r in range(x.shape[0]):
        ab = Fraction(float(np.abs(x[r]).max()))
        si = H.rne_fraction(ab / 6 / S, e4)
        if si == 0 and ab > 0:
            si = 1
        assert scales[r, 0] == si, r
        d = e4[si] * S
        for k in range(16):
            xv = Fraction(float(x[r, k]))
            want = 0 if d == 0 else H.rne_fraction(abs(xv) / d, e2)
            assert q[r, k] & 7 == want, (r, k, float(xv))


def _te_reference(x):
    """TransformerEngine reference_nvfp4.py in numpy float32 (ml_dtypes casts from float32)."""
    import ml_dtypes
    f = np.float32
    amax = f(np.abs(x).max())
    ge = np.minimum(f(2688.0) / amax, f(3.4028235e38))
    gd = f(1.0) / ge
    blk = x.reshape(x.shape[0], -1, 16)
    vmax = np.abs(blk).max(axis=-1)
    s = np.minimum(vmax * (ge * (f(1.0) / f(6.0))), f(448.0)).astype(ml_dtypes.float8_e4m3fn)
    sf = s.astype(np.float32)
    with np.errstate(divide="ignore"):
        enc = np.minimum(f(1.0) / (sf * gd), f(3.4028235e38))
    y = np.clip(blk * enc[..., None], f(-6), f(6)).astype(ml_dtypes.float4_e2m1fn)
    return y.view(np.uint8).reshape(x.shape) & 0xF, s.view(np.uint8), gd


def test_nvfp4_te_profile(backend, H, rng):
    x = H.random_matrix(rng, 8, 64, spread=6)
    x[0, :16] = 0  # zero block: reciprocal capped at FLT_MAX
    codes, scales, gd = backend.nvfp4_quantize(x, profile="te")
    rq, rs, rgd = _te_reference(x)
    assert np.float32(gd) == rgd
    np.testing.assert_array_equal(scales, rs)
    np.testing.assert_array_equal(H.unpack_low_first(codes, 64), rq)


def test_backends_agree_on_random(H, rng):
    """numba and Triton give identical bytes on a larger random tensor (all operations)."""
    pytest.importorskip("torch")
    pytest.importorskip("triton")
    nb, tr = H.get("numba"), H.get("triton")
    x = H.random_matrix(rng, 32, 96, spread=40)
    for fmt in MX:
        for a, b in zip(nb.mx_quantize(x, fmt, "rceil"), tr.mx_quantize(x, fmt, "rceil")):
            np.testing.assert_array_equal(a, b)
    for prof in ("lowbit", "te"):
        for a, b in zip(nb.nvfp4_quantize(x, prof), tr.nvfp4_quantize(x, prof)):
            np.testing.assert_array_equal(a, b)


def test_bad_arguments(H):
    from lowbit.kernels import numba_quant as nq
    with pytest.raises(ValueError, match="fmt='mxint8'.*integer elements"):
        nq.mx_quantize(np.zeros((1, 32), np.float32), "mxint8")
    with pytest.raises(ValueError, match="fmt='fp8_e4m3fnuz'.*NaN scheme 'fnuz'"):
        nq.fp8_quantize(np.zeros(4, np.float32), "fp8_e4m3fnuz")
    with pytest.raises(ValueError, match="fmt='bf16'.*wider than 8 bits"):
        nq.fp8_quantize(np.zeros(4, np.float32), "bf16")
    with pytest.raises(ValueError, match="unknown format"):
        nq.fp8_quantize(np.zeros(4, np.float32), "fp9")
    # table-index audit: 6-bit codes above 63 would read past the 64-entry value table
    with pytest.raises(ValueError, match="codes must be in 0..63"):
        nq.mx_dequantize(np.full((1, 32), 200, np.uint8), np.full((1, 1), 127, np.uint8), 32,
                         "mxfp6_e2m3")
    with pytest.raises(ValueError, match="codes must be"):
        nq.mx_dequantize(np.zeros((1, 31), np.uint8), np.zeros((1, 1), np.uint8), 32, "mxfp8")
    with pytest.raises(ValueError, match="codes must be in 0..63"):
        nq.fp8_dequantize(np.array([64], np.uint8), "fp6_e3m2")
    with pytest.raises(ValueError, match="scale_rule"):
        nq.mx_quantize(np.zeros((1, 32), np.float32), "mxfp8", "even")
    with pytest.raises(ValueError, match="profile"):
        nq.nvfp4_quantize(np.zeros((1, 16), np.float32), profile="torchao")


SHORT_OPERANDS = [  # (what, codes shape, scales shape, K): each smaller than K needs
    ("mx packed codes too narrow", (1, 1), (1, 1), 32),
    ("mx scales too narrow", (2, 16), (2, 0), 32),
    ("mx fewer code rows than scale rows", (1, 16), (3, 1), 32),
    ("mx 1-D codes", (16,), (1, 1), 32),
]


@pytest.mark.parametrize("what,cshape,sshape,K", SHORT_OPERANDS)
def test_dequantize_and_gemm_refuse_operands_smaller_than_K(backend, what, cshape, sshape, K):
    """Table-index audit: the dequantize and GEMM kernels read codes[r, k >> 1] and
    scales[r, k // block] for every k < K; operands too small for K used to be read past their
    end (nvfp4_dequantize of a (1, 1) array with K=4096 returned 4096 values of whatever memory
    followed). They are now refused by shape, on both backends."""
    c, s = np.zeros(cshape, np.uint8), np.zeros(sshape, np.uint8)
    with pytest.raises(ValueError, match="codes must be .* and scales"):
        backend.mx_dequantize(c, s, K, "mxfp4")
    nv_s = np.zeros((sshape[0], 2 * sshape[1]) if len(sshape) == 2 else sshape, np.uint8)
    with pytest.raises(ValueError, match="codes must be .* and scales"):
        backend.nvfp4_dequantize(c, nv_s, K, 1.0)
    good_c, good_s = np.zeros((2, 16), np.uint8), np.zeros((2, 1), np.uint8)
    with pytest.raises(ValueError, match="a: packed codes must be"):
        backend.mxfp4_gemm(c, s, good_c, good_s, K)
    with pytest.raises(ValueError, match="b: packed codes must be"):
        backend.nvfp4_gemm(good_c, np.zeros((2, 2), np.uint8), 1.0, c, nv_s, 1.0, K)


@pytest.mark.parametrize("fmt", FP8)
def test_numba_fp8_table_equals_bit_manipulation(H, fmt):
    """The table path covers every (sign, exponent, kept mantissa, sticky) class: compare it with
    the per-element encoder on each class with remainders 0, 1, half-1, half, half+1, max."""
    from lowbit.kernels import numba_quant as nq
    k, _ = nq.fp8_table(fmt)
    sh = 23 - k
    top = np.arange(1 << (k + 9), dtype=np.uint64) << np.uint64(sh)
    rem = np.array([0, 1, (1 << (sh - 1)) - 1, 1 << (sh - 1), (1 << (sh - 1)) + 1,
                    (1 << sh) - 1], np.uint64)
    u = (top[:, None] | rem[None, :]).reshape(-1).astype(np.uint32)
    x = u.view(np.float32)
    np.testing.assert_array_equal(nq.fp8_quantize(x, fmt), nq.fp8_quantize(x, fmt, table=False))


# ---------------------------------------------------------------- the kernels' view of formats


def _kernel_families():
    from lowbit.kernels import spec as S
    return S.kernel_formats()


def test_every_registered_format_has_a_kernel_verdict():
    """Each registered format either has kernel constants or a reason naming what the kernels
    lack; the OCP / NVIDIA formats the kernels exist for are all accepted."""
    fam = _kernel_families()
    for name in ("fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp6_e3m2", "fp4_e2m1"):
        assert fam[name] == "element", (name, fam[name])
    for name in ("mxfp8_e4m3", "mxfp8_e5m2", "mxfp6_e2m3", "mxfp6_e3m2", "mxfp4"):
        assert fam[name] == "mx", (name, fam[name])
    assert fam["nvfp4"] == "nvfp4"
    for name, verdict in fam.items():
        assert verdict in ("element", "mx", "nvfp4") or "do not implement" in verdict \
            or "have no kernels" in verdict, (name, verdict)


@pytest.mark.parametrize("name", [n for n, f in _kernel_families().items() if f == "element"])
def test_element_spec_agrees_with_the_format(name):
    """Kernel constants derived from the format object = the format: every code decodes to the
    format's value, and both numba paths (table and bit manipulation) encode edge vectors and
    every value / midpoint exactly as lowbit.formats under the kernels' policy."""
    from lowbit.formats import decode, encode, get_format
    from lowbit.kernels import numba_quant as nq
    from lowbit.kernels import spec as S
    from lowbit.kernels import vectors as V
    f = get_format(name)
    e = S.element_spec(f)
    v = f.values()
    fin = np.isfinite(v)
    assert e.max == float(np.max(v[fin])) and e.maxcode == int(np.argmax(np.where(fin, v, -1)))
    assert (e.nancode >= 0) == bool(np.isnan(v).any())
    if e.nancode >= 0:
        assert np.isnan(v[e.nancode])
    assert e.emax == int(np.floor(np.log2(e.max)))
    c = np.arange(1 << f.bits, dtype=np.uint8)
    got = nq.fp8_dequantize(c, name)
    an, bn = np.isnan(got), np.isnan(v)
    assert np.array_equal(an, bn) and np.array_equal(got[~an], v[~bn].astype(np.float32))
    x = V.fp8_vector(name)
    ref = encode(x, name, overflow="saturate", nan_input="zero")
    np.testing.assert_array_equal(nq.fp8_quantize(x, name), ref)
    np.testing.assert_array_equal(nq.fp8_quantize(x, name, table=False), ref)
    assert np.array_equal(decode(ref, name)[~np.isnan(x)], quantize_ref(x, name)[~np.isnan(x)])


def quantize_ref(x, name):
    from lowbit.formats import quantize
    return quantize(x.astype(np.float64), name, overflow="saturate", nan_input="zero")


@pytest.mark.parametrize("name", [n for n, f in _kernel_families().items() if f == "mx"])
def test_mx_spec_agrees_with_the_format(H, name):
    from dataclasses import replace

    from lowbit.formats import encode, get_format
    from lowbit.kernels import numba_quant as nq
    from lowbit.kernels import vectors as V
    x = V.mx_matrix(name)
    for rule in RULES:
        qt = encode(x, replace(get_format(name), scale_rule=rule, name=None))
        c, s = nq.mx_quantize(x, name, rule)
        packed = get_format(name).element.bits == 4
        np.testing.assert_array_equal(c, H.pack_low_first(qt.codes) if packed else qt.codes)
        np.testing.assert_array_equal(s, qt.scale_codes)
        assert H.same_bits_or_both_nan(nq.mx_dequantize(c, s, x.shape[1], name),
                                       qt.dequantize().astype(np.float32))


def test_formats_built_by_hand_run_on_the_kernels(H, rng):
    """Format objects, not names: FloatFormat(4, 3, nan="fn") is OCP E4M3 by another name, an
    MX format over it with blocks of 16 and RCEIL, and an IEEE-style E3M2 element."""
    from lowbit.formats import BlockFormat, FloatFormat, encode, get_format
    from lowbit.kernels import numba_quant as nq
    e4m3 = FloatFormat(4, 3, nan="fn")
    x = H.fp8_edge_vector("fp8_e4m3")
    np.testing.assert_array_equal(nq.fp8_quantize(x, e4m3), nq.fp8_quantize(x, "fp8_e4m3"))
    e3m2 = FloatFormat(3, 2)  # IEEE-style: top binade Inf / NaN
    np.testing.assert_array_equal(nq.fp8_quantize(x, e3m2),
                                  encode(x, e3m2, overflow="saturate"))
    mx16 = BlockFormat(e4m3, get_format("e8m0"), 16, "rceil")
    y = H.random_matrix(rng, 6, 40, spread=20)
    qt = encode(y, mx16)
    c, s = nq.mx_quantize(y, mx16)
    np.testing.assert_array_equal(c, qt.codes)
    np.testing.assert_array_equal(s, qt.scale_codes)
