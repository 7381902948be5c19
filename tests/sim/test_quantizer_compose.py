"""Quantiser compositions (smoothquant / hadamard / rtn / gptq / mrgptq) on small layers:
parsing, exact-arithmetic invariance of the transforms, the MR-GPTQ scale search never losing
to plain GPTQ on the GPTQ objective, and the workload path equal to a hand-composed reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import hadamard

from lowbit.formats import quantize
from lowbit.sim.gemm import qlinear
from lowbit.sim.qconfig import QuantConfig
from lowbit.sim.quantizers import gptq_quantize
from lowbit.sim.quantizers.compose import parse_quantizer, quantize_layer, rotation_block
from lowbit.sim.workloads import LayerSpec, LayerwiseWorkload, make_config


@pytest.mark.parametrize("spec, name", [
    ("rtn", "rtn"), ("GPTQ", "gptq"), ("smoothquant", "smoothquant+rtn"),
    ("hadamard", "hadamard+rtn"), ("hadamard+gptq", "hadamard+gptq"),
    ("hadamard:16+mrgptq", "hadamard:16+mrgptq"), ("smoothquant:0.8+hadamard+gptq",
                                                   "smoothquant:0.8+hadamard+gptq"),
    ("smoothquant:0.5+rtn", "smoothquant+rtn"),
])
def test_parse_canonical_names(spec, name):
    assert parse_quantizer(spec).name == name


@pytest.mark.parametrize("bad, needle", [
    ("awq", "bad quantizer 'awq'"), ("gptq+hadamard", "bad quantizer"),
    ("hadamard+smoothquant", "bad quantizer"), ("hadamard:12", "power of two"),
    ("smoothquant:1.5", "must be in [0, 1]"), ("rtn+gptq", "bad quantizer"), ("", "bad"),
])
def test_parse_errors(bad, needle):
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        parse_quantizer(bad)


def test_rotation_block_defaults():
    s = parse_quantizer("hadamard+rtn")
    assert rotation_block(s, "mxfp4", 256) == 32 and rotation_block(s, "nvfp4", 256) == 16
    assert rotation_block(s, "int4_g128", 256) == 128 and rotation_block(s, "int8_pc", 64) == 32
    assert rotation_block(s, "mxfp4", 48) is None  # K not a multiple of 32: not rotated
    assert rotation_block(parse_quantizer("hadamard:64"), "mxfp4", 128) == 64


def _layer(seed=0, M=24, K=64, N=200):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, K)) * np.exp(rng.standard_normal(K))  # channel outliers
    return rng.standard_normal((M, K)), x


def test_transforms_are_exact_in_float():
    """With no rounding (float format) every transform leaves x @ W.T unchanged, and the
    rotation is scipy's Sylvester Hadamard matrix / sqrt(b) block-diagonal."""
    w, x = _layer()
    for spec in ("smoothquant+rtn", "hadamard:16+rtn", "smoothquant:0.7+hadamard+rtn"):
        lq = quantize_layer(w, x, None, spec)
        np.testing.assert_allclose(lq.transform_input(x) @ lq.w.T, x @ w.T, rtol=1e-12,
                                   atol=1e-12)
    lq = quantize_layer(w, x, None, "hadamard:16+rtn")
    R = np.kron(np.eye(4), hadamard(16) / 4.0)
    np.testing.assert_allclose(lq.w, w @ R, atol=1e-13)


def test_smoothquant_moves_outliers_to_weights():
    w, x = _layer()
    lq = quantize_layer(w, x, "int8_pc", "smoothquant:0.5")
    xs = lq.transform_input(x)
    s = np.abs(x).max(0) ** 0.5 / np.abs(w).max(0) ** 0.5
    np.testing.assert_allclose(lq.in_scale, s, rtol=1e-12)
    assert np.abs(xs).max(0).std() < np.abs(x).max(0).std()


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4", "int4_g32", "fp4_e2m1_pc"])
def test_mrgptq_scale_search_not_worse_than_gptq(fmt):
    """The search contains the rule's own scale (c = 1), so per group the GPTQ objective can
    only go down; measured on the layer output error tr(dW H dW^T)."""
    w, x = _layer(1)
    H = x.T @ x / len(x)

    def err(q):
        d = q - w
        return float(np.einsum("ij,jk,ik->", d, H, d))

    g = gptq_quantize(w, x, fmt)
    m = gptq_quantize(w, x, fmt, scale_search=True)
    assert err(m) <= err(g) * 1.0001
    # the searched weights are still on the format's grid: re-quantising changes nothing for
    # element grids with a per-row scale
    if fmt == "fp4_e2m1_pc":
        s = np.abs(m).max(1, keepdims=True) / 6.0
        np.testing.assert_allclose(quantize(m / s, "fp4_e2m1"), m / s, rtol=0, atol=1e-12)


class _Two(LayerwiseWorkload):
    name, metric_name = "compose-test", "cosine"

    def __init__(self):
        super().__init__()
        self.w, self.x = _layer(2, M=16, K=64, N=96)

    def _build_layers(self):
        return [LayerSpec("l", "linear", self.w.astype(np.float32), None, 16 * 64, (64,), (16,))]

    def _forward(self, x, ctx):
        return self._gemm("l", x, ctx)

    def eval_inputs(self):
        return self.x

    def _metric(self, out, ref):
        return {"metric": float(np.sum(out * ref) / np.linalg.norm(out) / np.linalg.norm(ref))}


@pytest.mark.parametrize("q", ["hadamard+rtn", "hadamard+gptq", "smoothquant+rtn",
                               "smoothquant+hadamard:16+mrgptq"])
def test_workload_path_equals_hand_composition(q):
    """evaluate() with a composed quantiser = transform by hand, then the quantised linear
    layer of the sim core (W in the transformed basis, activations quantised after x R)."""
    wl = _Two()
    cfg = make_config("mxfp4", accum="exact")
    out = wl.forward(wl.x, cfg, q)
    lq = quantize_layer(wl.w.astype(np.float32).astype(np.float64), wl.x, "mxfp4", q)
    xt = lq.transform_input(wl.x)
    if lq.values is None:
        ref = qlinear(xt, lq.w, None, QuantConfig("mxfp4", "mxfp4", "exact"))
    else:
        ref = qlinear(xt, lq.values, None, QuantConfig(None, "mxfp4", "exact"))
    np.testing.assert_array_equal(out, ref)
    assert wl.evaluate(cfg, q)["metric"] > 0.9
