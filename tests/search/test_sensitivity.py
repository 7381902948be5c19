"""Sensitivity estimators and cost coefficients against independent references."""

import numpy as np
import pytest

from lowbit.sim.search import (
    build_cost_table,
    hutchinson_traces,
    parse_candidates,
    proxy_sensitivity,
    storage_bits,
)
from lowbit.sim.search.sensitivity import with_weights


def test_hutchinson_quadratic():
    rng = np.random.default_rng(0)
    # diagonal Hessian: every Rademacher probe gives the exact trace
    d = rng.uniform(0.5, 2.0, 30)
    params = {"a": rng.normal(size=(5, 6)), "b": rng.normal(size=4)}
    db = rng.uniform(1, 3, 4)

    def grad(p):
        return {"a": d.reshape(5, 6) * p["a"], "b": db * p["b"]}

    tr = hutchinson_traces(grad, params, n_probe=3)
    assert tr["a"][0] == pytest.approx(d.sum(), rel=1e-6)
    assert tr["b"][0] == pytest.approx(db.sum(), rel=1e-6)
    # dense SPD block: unbiased, within 4 standard errors
    A = rng.normal(size=(20, 20))
    H = A @ A.T / 20
    tr = hutchinson_traces(lambda p: {"w": H @ p["w"]}, {"w": rng.normal(size=20)}, n_probe=200)
    m, se = tr["w"]
    assert abs(m - np.trace(H)) < 4 * se


def test_fd_hvp_matches_exact_last_layer_hessian(digits):
    """Finite-difference HVP of digits-cnn's cross-entropy w.r.t. fc2 equals the closed form
    H v = (1/N) sum_n (diag(p_n) - p_n p_n^T) V a_n a_n^T (logits are linear in W_fc2)."""
    wl = digits
    x = wl.calibration_data()[:32]
    y = np.asarray(wl.forward(x, None)).argmax(1)
    cap = {}
    logits = wl.forward(x, None, capture=cap)
    a = cap["fc2"]["input"]
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    W = wl.layer("fc2").weight.astype(np.float64)
    V = np.random.default_rng(1).choice([-1.0, 1.0], size=W.shape)
    u = V @ a.T  # (10, N)
    gu = p.T * u - p.T * (p.T * u).sum(0, keepdims=True)
    exact = gu @ a / len(x)
    eps = 1e-4 * np.sqrt(np.mean(W * W))
    gp = with_weights(wl, {"fc2": W + eps * V}).loss_and_grads(x, y)["weight_grads"]["fc2"]
    gm = with_weights(wl, {"fc2": W - eps * V}).loss_and_grads(x, y)["weight_grads"]["fc2"]
    fd = (gp - gm) / (2 * eps)
    np.testing.assert_allclose(fd, exact, rtol=1e-5, atol=1e-9 * np.abs(exact).max())
    assert wl.layer("fc2").weight is not None  # original untouched
    np.testing.assert_array_equal(wl.layer("fc2").weight, W.astype(wl.layer("fc2").weight.dtype))


def test_storage_bits_hand_counts():
    shape = (64, 512)
    n = 64 * 512
    assert storage_bits("mxfp4", shape) == 4 * n + 8 * 64 * 16  # E8M0 per 32
    assert storage_bits("nvfp4", shape) == 4 * n + 8 * 64 * 32 + 32  # UE4M3 per 16 + FP32
    assert storage_bits("int8_pc", shape) == 8 * n + 32 * 64  # FP32 per channel
    assert storage_bits("int4_g128", shape) == 4 * n + 32 * 64 * 4
    assert storage_bits("fp8_e4m3", shape) == 8 * n
    assert storage_bits("mxfp4", (10, 64)) == 4 * 640 + 8 * 10 * 2


def test_cost_table_digits(digits):
    cands = parse_candidates("fp8_e4m3,mxfp4,int8,int4")
    assert [c.name for c in cands] == ["fp8_e4m3", "mxfp4", "int8_pc", "int4_pc"]
    t = build_cost_table(digits.layers(), cands)
    macs = np.array([s.macs for s in digits.layers()])
    np.testing.assert_array_equal(t.per_layer["bops"][:, 0], macs * 64)
    np.testing.assert_array_equal(t.per_layer["bops"][:, 3], macs * 16)
    for m in ("energy", "memory", "area"):  # 4-bit candidates are cheaper than 8-bit ones
        assert t.uniform(m, 3) < t.uniform(m, 2) and t.uniform(m, 1) < t.uniform(m, 0)
    # 4-bit operands pack 2 MACs per PE cycle unless memory bound
    assert np.all(t.per_layer["latency"][:, 3] <= t.per_layer["latency"][:, 2])


def test_proxy_matches_independent_nsr(digits):
    from lowbit.formats import quantize

    cands = parse_candidates("int8,mxfp4")
    s = proxy_sensitivity(digits, cands, n_calib=16)
    w = digits.layer("fc1").weight_2d.astype(np.float64)
    x = digits.capture_float_inputs(digits.calibration_data()[:16])["fc1"]
    q = lambda v, f: np.asarray(quantize(v, f, axis=-1), np.float64)  # noqa: E731
    ref = (np.sum((q(w, "mxfp4") - w) ** 2) / np.sum(w * w)
           + np.sum((q(x, "mxfp4") - x) ** 2) / np.sum(x * x))
    assert s.values[2, 1] == pytest.approx(ref, rel=1e-12)
    assert np.all(s.values[:, 0] < s.values[:, 1])  # int8 per-channel beats mxfp4 everywhere


def test_hessian_and_direct_on_digits(digits):
    from lowbit.sim.search import direct_sensitivity, hessian_sensitivity

    cands = parse_candidates("int8,int4")
    h = hessian_sensitivity(digits, cands, n_calib=32, n_probe=2)
    assert h.details["hessian"] == "hutchinson-fd"
    assert np.all(np.isfinite(h.values)) and np.all(h.values >= 0)
    assert set(h.details["traces"]) == {"conv1", "conv2", "fc1", "fc2"}
    # 4-bit damage exceeds 8-bit damage for every layer (weights and activations)
    assert np.all(h.values[:, 1] > h.values[:, 0])
    d = direct_sensitivity(digits, cands, n_calib=32)
    assert np.all(d.values[:, 1] > d.values[:, 0])
    # direct = output NSR with only that layer quantised (independent recomputation)
    x = digits.calibration_data()[:32]
    ref = digits.forward(x, None)
    out = digits.forward(x, {"fc2": cands[1].config()})
    assert d.values[3, 1] == pytest.approx(np.sum((out - ref) ** 2) / np.sum(ref ** 2), rel=1e-12)
