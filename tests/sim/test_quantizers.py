"""Quantisers: FWHT, RTN scale search, SmoothQuant, GPTQ on real (digits-cnn) weights."""

from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

import lowbit.formats as lf
from lowbit.sim.gemm import im2col, qlinear
from lowbit.sim.operands import quantize_elem
from lowbit.sim.qconfig import QuantConfig
from lowbit.sim.quantizers import (
    block_hadamard,
    block_scales,
    fwht,
    gptq_quantize,
    quantize_with_scales,
    rotate_linear,
    rtn_quantize,
    smoothquant,
    smoothquant_scales,
    tensor_scale,
)

# --------------------------------------------------------------------------- Hadamard


@pytest.mark.parametrize("n", [1, 2, 4, 8, 16, 32, 64, 256])
def test_fwht_matches_scipy_hadamard(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal((3, n))
    H = scipy.linalg.hadamard(n) / np.sqrt(n)
    np.testing.assert_allclose(fwht(x), x @ H.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fwht(fwht(x)), x, rtol=1e-12, atol=1e-12)  # orthonormal, H = H^T
    np.testing.assert_allclose(np.linalg.norm(fwht(x), axis=1), np.linalg.norm(x, axis=1))
    # along another axis
    np.testing.assert_allclose(fwht(x.T, axis=0), (x @ H.T).T, rtol=1e-12, atol=1e-12)


def test_fwht_rejects_non_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        fwht(np.ones(12))


def test_block_hadamard_is_block_diagonal_rotation():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 96))
    R = scipy.linalg.block_diag(*[scipy.linalg.hadamard(32) / np.sqrt(32)] * 3)
    np.testing.assert_allclose(block_hadamard(x, 32), x @ R.T, atol=1e-12)
    w = rng.standard_normal((5, 96))
    xr, wr = rotate_linear(x, w, 32)
    np.testing.assert_allclose(xr @ wr.T, x @ w.T, atol=1e-10)
    # rotation spreads an outlier over its block: smaller MXFP4 error on outlier data
    w[:, 7] *= 40
    e_plain = np.sum((x @ w.T - qlinear(x, w, None, QuantConfig("mxfp4", "mxfp4", "exact"))) ** 2)
    e_rot = np.sum((x @ w.T - qlinear(xr, block_hadamard(w, 32), None,
                                      QuantConfig("mxfp4", "mxfp4", "exact"))) ** 2)
    assert e_rot < e_plain


# --------------------------------------------------------------------------- element / scales


@pytest.mark.parametrize("name", ["fp16", "bf16", "fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp6_e3m2",
                                  "fp4_e2m1", "fp8_e4m3fnuz", "tf32", "int4", "int8", "uint4"])
def test_element_rounding_matches_lowbit_formats(name):
    """``quantize_elem`` is ``lowbit.formats.quantize(..., overflow="saturate")`` and keeps NaN."""
    rng = np.random.default_rng(1)
    f = lf.get_format(name)
    mx = float(f.max)
    x = np.concatenate([rng.standard_normal(2000) * mx / 3, rng.standard_normal(500) * mx * 2,
                        rng.standard_normal(500) * float(f.min_normal) * 4])
    vals = lf.decode(np.arange(2 ** min(f.bits, 12)), f) if f.bits <= 12 else np.array([])
    vals = vals[np.isfinite(vals)]
    mids = (np.sort(vals)[1:] + np.sort(vals)[:-1]) / 2  # exact ties
    x = np.concatenate([x, vals, mids])
    np.testing.assert_array_equal(quantize_elem(x, f),
                                  np.asarray(lf.quantize(x, f, overflow="saturate"), dtype=float))
    assert np.isnan(quantize_elem(np.array([1.0, np.nan]), f)[1])


@pytest.mark.parametrize("name", ["mxfp4", "mxfp8_e4m3", "nvfp4", "int4_g128", "int8_pc", "mxint8"])
def test_block_scales_reproduce_format_rtn(name):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 256)) * np.exp2(rng.integers(-4, 4, (6, 256)))
    f = lf.get_format(name)
    T = tensor_scale(x, f)
    S = block_scales(x, f, T)
    bs = 256 // S.shape[1]
    q = quantize_with_scales(x.reshape(6, -1, bs), (S * T)[:, :, None], f.element).reshape(6, 256)
    ref = np.asarray(lf.quantize(x, f, axis=-1), dtype=float)
    if getattr(f.scale, "mbits", 0) == 0:  # power-of-two scales: bit-identical
        np.testing.assert_array_equal(q, ref)
    else:  # x/s vs x*(1/s) may differ by one ulp before rounding: rare element ties
        assert np.mean(q != ref) < 1e-3
        np.testing.assert_allclose(q, ref, rtol=0.35)


# --------------------------------------------------------------------------- RTN


@pytest.mark.parametrize("name", ["mxfp4", "int4_g128", "nvfp4"])
def test_rtn_amax_equals_format_and_mse_not_worse(name):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 256)) * 2
    ref = np.asarray(lf.quantize(x, name, axis=-1), dtype=float)
    q_amax = rtn_quantize(x, name, method="amax")
    if name != "nvfp4":
        np.testing.assert_array_equal(q_amax, ref)
    e_amax = np.sum((x - q_amax) ** 2)
    q_mse = rtn_quantize(x, name, method="mse")
    assert np.sum((x - q_mse) ** 2) <= e_amax
    q_pct = rtn_quantize(x, name, method="percentile", percentile=90)
    assert np.abs(q_pct).max() <= np.abs(q_amax).max() + 1e-12
    # mse result is on the format grid: re-quantising with the same method is idempotent
    np.testing.assert_array_equal(rtn_quantize(q_mse, name, method="amax", axis=-1) != 0,
                                  q_mse != 0)


def test_rtn_element_formats_and_axis():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((16, 10)) * 100
    # per-tensor amax scaling into E4M3: max maps to 448 * s exactly
    q = rtn_quantize(x, "fp8_e4m3", method="amax", granularity="tensor")
    assert np.isclose(np.abs(q).max(), np.abs(x).max(), rtol=2**-4)
    s = np.float32(np.abs(x).max() / 448.0)
    np.testing.assert_array_equal(q, float(s) * np.asarray(lf.quantize(x / float(s), "fp8_e4m3")))
    # method none = plain element rounding; axis handling for block formats
    np.testing.assert_array_equal(rtn_quantize(x, "fp8_e4m3", method="none"),
                                  lf.quantize(x, "fp8_e4m3", overflow="saturate"))
    xt = rng.standard_normal((64, 3))
    np.testing.assert_array_equal(rtn_quantize(xt, "mxfp4", axis=0),
                                  lf.quantize(xt, "mxfp4", axis=0))
    with pytest.raises(ValueError, match="method"):
        rtn_quantize(x, "int4", method="best")


# --------------------------------------------------------------------------- SmoothQuant


def test_smoothquant_scales_and_invariance():
    # hand case: act max [8, 1], weight column max [2, 4], alpha 0.5 -> s = [sqrt(8/2), sqrt(1/4)]
    s = smoothquant_scales(np.array([8.0, 1.0]), np.array([[2.0, -4.0], [1.0, 1.0]]), 0.5)
    np.testing.assert_allclose(s, [2.0, 0.5])
    rng = np.random.default_rng(5)
    x = rng.standard_normal((50, 32))
    x[:, 3] *= 50  # activation outlier channel
    w = rng.standard_normal((8, 32))
    s, ws = smoothquant(x, w, alpha=0.5)
    np.testing.assert_allclose((x / s) @ ws.T, x @ w.T, rtol=1e-10, atol=1e-10)
    cfg = QuantConfig("int8_pc", "int8_pt", "int32")
    e0 = np.sum((qlinear(x, w, None, cfg) - x @ w.T) ** 2)
    e1 = np.sum((qlinear(x / s, ws, None, cfg) - x @ w.T) ** 2)
    assert e1 < e0
    with pytest.raises(ValueError):
        smoothquant_scales(np.ones(2), np.ones((2, 2)), alpha=1.5)


# --------------------------------------------------------------------------- GPTQ

NPZ = Path(__file__).resolve().parents[2] / "sim" / "workloads" / "data" / "digits_cnn.npz"


@pytest.fixture(scope="module")
def fc1_data():
    """Real weights (digits-cnn fc1, 64 x 512) and their real float inputs (conv features of the
    bundled scikit-learn digits, forward pass written here: conv-relu-conv-relu-maxpool2)."""
    if NPZ.exists():
        import importlib.util

        p = dict(np.load(NPZ))
        # scikit-learn's bundled digits.csv.gz, read without importing sklearn (slow import)
        loc = list(importlib.util.find_spec("sklearn").submodule_search_locations)[0]
        data = np.loadtxt(Path(loc) / "datasets" / "data" / "digits.csv.gz", delimiter=",",
                          max_rows=700)
        x = data[:, :-1].reshape(-1, 1, 8, 8) / 16.0

        def conv(x, w, b):
            cols, oh, ow = im2col(x, 3, 3, 1, 1)
            wm = w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1).astype(float)
            y = cols @ wm.T + b
            return np.maximum(y.reshape(x.shape[0], oh, ow, -1).transpose(0, 3, 1, 2), 0)

        a2 = conv(conv(x, p["conv1.weight"], p["conv1.bias"]), p["conv2.weight"], p["conv2.bias"])
        n, c, h, w = a2.shape
        F = a2.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5)).reshape(n, -1)
        return p["fc1.weight"].astype(float), F[:500], F[500:]
    # fallback: a trained scikit-learn MLP on the bundled digits
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    d = load_digits()
    X = d.data / 16.0
    m = MLPClassifier((128, 64), max_iter=200, random_state=0).fit(X[:1200], d.target[:1200])
    H1 = np.maximum(X @ m.coefs_[0] + m.intercepts_[0], 0)
    return m.coefs_[1].T.copy(), H1[:1000], H1[1000:]


@pytest.mark.parametrize("fmt", ["int4_g128", "mxfp4"])
def test_gptq_beats_rtn_on_real_weights(fc1_data, fmt):
    W, Xc, Xe = fc1_data
    rtn = np.asarray(lf.quantize(W, fmt, axis=-1), dtype=float)
    q, info = gptq_quantize(W, Xc, fmt, return_info=True)
    err = lambda Q: np.sum((Xe @ W.T - Xe @ Q.T) ** 2)  # noqa: E731 - held-out output error
    assert err(q) < 0.5 * err(rtn), (err(q), err(rtn))
    qa = gptq_quantize(W, Xc, fmt, act_order=True)
    assert err(qa) < 0.5 * err(rtn)
    # the result is in the format: element values on the grid under the recorded block scales
    f = lf.get_format(fmt)
    S = info["scales"]
    bs = W.shape[1] // S.shape[1]
    Pv = q.reshape(W.shape[0], -1, bs) / S[:, :, None]
    np.testing.assert_array_equal(Pv, np.asarray(lf.quantize(Pv, f.element), dtype=float))
    assert np.abs(Pv).max() <= float(f.element.max)
    if fmt == "mxfp4":  # E8M0 scales are powers of two
        np.testing.assert_array_equal(np.exp2(np.round(np.log2(S))), S)


def test_gptq_element_format_and_identity():
    rng = np.random.default_rng(7)
    W = rng.standard_normal((6, 40))
    X = rng.standard_normal((200, 40)) @ rng.standard_normal((40, 40))
    q = gptq_quantize(W, X, "fp8_e4m3")
    np.testing.assert_array_equal(q, np.asarray(lf.quantize(q, "fp8_e4m3"), dtype=float))
    err = lambda Q: np.sum((X @ W.T - X @ Q.T) ** 2)  # noqa: E731
    assert err(q) < err(np.asarray(lf.quantize(W, "fp8_e4m3"), dtype=float))
    # a dead input channel is zeroed, None returns the weights
    X[:, 5] = 0
    assert np.all(gptq_quantize(W, X, "fp8_e4m3")[:, 5] == 0)
    np.testing.assert_array_equal(gptq_quantize(W, X, None), W)


def test_gptq_asymmetric_groups(fc1_data):
    W, Xc, Xe = fc1_data
    fmt = "int4_g128_asym"
    rtn = np.asarray(lf.quantize(W, fmt, axis=-1), dtype=float)
    q, info = gptq_quantize(W, Xc, fmt, return_info=True)
    err = lambda Q: np.sum((Xe @ W.T - Xe @ Q.T) ** 2)  # noqa: E731
    assert err(q) < 0.5 * err(rtn)
    S, Z = info["scales"], info["zero_points"]
    codes = q.reshape(W.shape[0], -1, 128) / S[:, :, None] + Z[:, :, None]
    np.testing.assert_allclose(codes, np.rint(codes), atol=1e-9)
    assert codes.min() > -1e-9 and codes.max() < 15 + 1e-9


def _gptq_reference(W, H, fmt, percdamp=0.01):
    """Straightforward GPTQ (Frantar et al. 2023, Alg. 1 without lazy batches), independent of
    lowbit.sim: one column at a time, the WHOLE rest of the matrix updated after each column,
    ``U`` from numpy's inverse and Cholesky; a group's scale by ``lowbit.formats.encode`` on
    the updated group when its first column is reached."""
    f = lf.get_format(fmt)
    W = np.array(W, dtype=float)
    M, K = W.shape
    H = np.array(H, dtype=float)
    H[np.diag_indices(K)] += percdamp * np.mean(np.diag(H))
    U = np.linalg.cholesky(np.linalg.inv(H)).T  # H^-1 = U^T U, U upper
    Q = np.zeros_like(W)
    g = 1 if f.kind != "block" else (K if f.block_size in (None, -1) else f.block_size)
    elem = f.element if f.kind == "block" else f
    s = np.ones(M)
    for c in range(K):
        if f.kind == "block" and c % g == 0:
            s = np.asarray(lf.encode(W[:, c:c + g], f, axis=-1).scales, dtype=float).reshape(M)
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(s != 0, W[:, c] / s, 0.0)
        Q[:, c] = s * np.asarray(lf.quantize(v, elem, overflow="saturate"), dtype=float)
        err = (W[:, c] - Q[:, c]) / U[c, c]
        W[:, c + 1:] -= np.outer(err, U[c, c + 1:])
    return Q


@pytest.mark.parametrize("fmt", ["int4_g128", "mxfp4", "fp8_e4m3", "int8_pc"])
def test_gptq_lazy_batches_match_the_plain_algorithm(fmt):
    """The blocked implementation (two levels of lazy updates, LAPACK inverse Cholesky, GEMM
    sums in another order) against the one-column-at-a-time algorithm: the same quantised
    weights up to rounding-order effects.  Stated tolerance: at most 0.2 % of the weights differ
    (a weight within ~1e-13 of a rounding tie may flip, and its row's later columns follow),
    and each differing weight is still on the format's grid."""
    rng = np.random.default_rng(3)
    K = 320
    W = rng.standard_normal((48, K))
    X = rng.standard_normal((600, K)) @ (np.eye(K) + 0.3 * rng.standard_normal((K, K)) / np.sqrt(K))
    H = 2.0 * X.T @ X / X.shape[0]
    q, info = gptq_quantize(W, X, fmt, blocksize=96, return_info=True)
    ref = _gptq_reference(W, H, fmt)
    assert np.mean(q != ref) <= 2e-3, np.mean(q != ref)
    f = lf.get_format(fmt)
    if f.kind == "block":
        S = info["scales"]
        bs = K if f.block_size in (None, -1) else f.block_size
        Sx = np.repeat(S, bs, axis=1)[:, :K]
        Pv = np.where(Sx != 0, q / np.where(Sx != 0, Sx, 1.0), 0.0)
        np.testing.assert_array_equal(Pv, np.asarray(lf.quantize(Pv, f.element), dtype=float))
    else:
        np.testing.assert_array_equal(q, np.asarray(lf.quantize(q, f), dtype=float))
