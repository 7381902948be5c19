"""Low-precision training emulation: every GEMM as configured (vs lowbit.sim.qmatmul and
lowbit.formats.quantize on the captured operands), SR unbiasedness, RHT, 2-D blocks, recipes."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

import lowbit.formats as lf
from lowbit.sim import QuantConfig, qmatmul
from lowbit.sim.torch.recipes import RECIPES, train_recipe
from lowbit.sim.torch.training import (
    GemmSpec,
    QConv2d,
    QLinear,
    TensorQuant,
    TrainConfig,
    apply_rht,
    quantize_operand,
)

CFG = TrainConfig(
    fprop=GemmSpec(TensorQuant("mxfp4"), TensorQuant("nvfp4"), accum="fp32"),
    dgrad=GemmSpec(TensorQuant("fp8_e5m2", rounding="stochastic", sr_bits=8),
                   TensorQuant("mxfp8_e4m3"), accum="fp16"),
    wgrad=GemmSpec(TensorQuant("nvfp4", rounding="stochastic"), TensorQuant("int8_pc"), rht=16,
                   accum="exact"),
    seed=7)


def _layer(cfg=CFG, k=48, m=24, seed=0):
    torch.manual_seed(seed)
    lin = nn.Linear(k, m).double()
    q = QLinear(lin, cfg, "lin")
    q.state.capture = {}
    return lin, q


def test_each_gemm_quantized_as_configured():
    lin, q = _layer()
    x = torch.randn(32, 48, dtype=torch.float64, requires_grad=True)
    y = q(x)
    dy = torch.randn_like(y)
    y.backward(dy)
    cap = q.state.capture
    xn, wn, dyn = x.detach().numpy(), lin.weight.detach().numpy(), dy.numpy()
    # fprop: operands are lowbit.formats RNE quantisations along K; output == qmatmul + bias
    f = cap["fprop"]
    np.testing.assert_array_equal(f["a_q"], lf.quantize(xn, "mxfp4", axis=-1))
    np.testing.assert_array_equal(f["b_q"], lf.quantize(wn, "nvfp4", axis=-1))
    # RNE 1-D operands go to lowbit.sim in their formats (MX block-dot path, as in inference)
    ref = qmatmul(xn, wn.T, QuantConfig(weight="nvfp4", act="mxfp4", accum="fp32"))
    np.testing.assert_array_equal(f["out"], ref)
    np.testing.assert_array_equal(y.detach().numpy(), ref + lin.bias.detach().numpy())
    # dgrad: dY stochastically rounded (seeded), W^T in MXFP8 along M, fp16 accumulation
    d = cap["dgrad"]
    np.testing.assert_array_equal(d["a"], dyn)
    np.testing.assert_array_equal(d["b"], wn.T)
    np.testing.assert_array_equal(d["b_q"], lf.quantize(wn.T, "mxfp8_e4m3", axis=-1))
    assert not np.array_equal(d["a_q"], lf.quantize(dyn, "fp8_e5m2"))  # SR, not RNE
    grid_lo = lf.quantize(dyn, "fp8_e5m2", rounding="rdown")
    grid_hi = lf.quantize(dyn, "fp8_e5m2", rounding="rup")
    assert np.all((d["a_q"] == grid_lo) | (d["a_q"] == grid_hi))
    np.testing.assert_array_equal(
        d["out"], qmatmul(d["a_q"], d["b"].T, QuantConfig(weight="mxfp8_e4m3", accum="fp16")))
    np.testing.assert_array_equal(x.grad.numpy(), d["out"])
    # wgrad: RHT-16 on both operands along N, then NVFP4-SR x INT8, exact accumulation
    w = cap["wgrad"]
    np.testing.assert_allclose(w["a"] @ w["b"].T, dyn.T @ xn, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(w["b_q"], lf.quantize(w["b"], "int8_pc", axis=-1))
    np.testing.assert_array_equal(
        w["out"], qmatmul(w["a_q"], w["b"].T, QuantConfig(weight="int8_pc", accum="exact")))
    np.testing.assert_array_equal(lin.weight.grad.numpy(), w["out"])
    np.testing.assert_array_equal(lin.bias.grad.numpy(), dyn.sum(0))


def test_sr_seeded_per_step_and_reproducible():
    outs = []
    for _ in range(2):
        lin, q = _layer()
        gen = torch.Generator().manual_seed(1)
        x = torch.randn(32, 48, dtype=torch.float64, generator=gen)
        dy = torch.randn(32, 24, dtype=torch.float64, generator=gen)
        grads = []
        for _ in range(2):
            lin.weight.grad = None
            q(x).backward(dy)
            grads.append(lin.weight.grad.clone())
        assert not torch.equal(grads[0], grads[1])  # a new SR draw every step
        outs.append(grads)
    assert all(torch.equal(a, b) for a, b in zip(*outs))  # same seed, same draws


def test_stochastic_rounding_gradient_is_unbiased_rne_is_not():
    """dW = Q(dY)^T X over S seeds.  Each Q(dY_mn) is lo or hi (grid neighbours, gap D_mn) with
    E = dY_mn under SR, so dW_mk has variance <= sum_n X_nk^2 D_mn^2 / 4 and the mean over S
    independent seeds deviates by more than z * sqrt(var / S) with probability < 2 exp(-z^2/2)
    (Hoeffding); z = 6 over the 24 entries gives a false-alarm rate < 4e-7."""
    rng = np.random.default_rng(0)
    n, m, k, S, z = 64, 4, 6, 400, 6.0
    x = rng.standard_normal((n, k))
    lo_grid = lf.quantize(rng.uniform(0.5, 4.0, (n, m)), "fp8_e4m3", rounding="rdown")
    gap = lf.quantize(np.nextafter(lo_grid, np.inf), "fp8_e4m3", rounding="rup") - lo_grid
    dy = lo_grid + 0.3 * gap  # crafted: 30% of the way to the next grid point
    exact = dy.T @ x
    bound = z * np.sqrt((x ** 2).T @ (gap ** 2) / 4).T / math.sqrt(S)

    def mean_dw(rounding):
        cfg = TrainConfig(wgrad=GemmSpec(TensorQuant("fp8_e4m3", rounding=rounding)))
        lin = nn.Linear(k, m, bias=False).double()
        q = QLinear(lin, cfg, "l")
        xt = torch.tensor(x)
        acc = np.zeros((m, k))
        for s in range(S):
            q.state.config = TrainConfig(wgrad=cfg.wgrad, seed=s)
            lin.weight.grad = None
            q(xt).backward(torch.tensor(dy))
            acc += lin.weight.grad.numpy()
        return acc / S

    err_sr = np.abs(mean_dw("stochastic") - exact)
    assert np.all(err_sr <= bound)
    err_rne = np.abs(mean_dw("rne") - exact)
    rne_bias = np.abs((lo_grid - dy).T @ x)  # RNE rounds every entry down to lo
    np.testing.assert_allclose(err_rne, rne_bias, rtol=1e-9)
    assert np.max(err_rne / bound) > 3


def test_rht_is_orthonormal_and_cancels():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((5, 48)), rng.standard_normal((7, 48))
    ta, tb = apply_rht(a, 16, seed=11), apply_rht(b, 16, seed=11)
    np.testing.assert_allclose(ta @ tb.T, a @ b.T, rtol=1e-12, atol=1e-12)
    T = apply_rht(np.eye(16), 16, seed=11)  # rows: T applied to the unit vectors
    np.testing.assert_allclose(T @ T.T, np.eye(16), atol=1e-15)
    assert not np.allclose(np.abs(T), 0.25) or not np.allclose(T, apply_rht(np.eye(16), 16, 12))
    # length not a multiple of 16: zero padding keeps the dot products
    c, d = rng.standard_normal((2, 20)), rng.standard_normal((3, 20))
    np.testing.assert_allclose(apply_rht(c, 16, 1) @ apply_rht(d, 16, 1).T, c @ d.T, rtol=1e-12)
    # an outlier block is spread: max |.| drops by up to sqrt(16)
    e = np.zeros((1, 16))
    e[0, 3] = 8.0
    assert np.max(np.abs(apply_rht(e, 16, 0))) == 2.0


def test_2d_blocks_transpose_consistent():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((48, 32)) * np.exp(rng.standard_normal((48, 1)))
    t2 = TensorQuant("nvfp4", block="2d")
    np.testing.assert_array_equal(quantize_operand(w, t2, 0), quantize_operand(w.T, t2, 0).T)
    t1 = TensorQuant("nvfp4")
    assert not np.array_equal(quantize_operand(w, t1, 0), quantize_operand(w.T, t1, 0).T)
    # in a layer: the W used by fprop is exactly the W^T used by dgrad
    cfg = TrainConfig(GemmSpec(t1, t2), GemmSpec(t1, t2), GemmSpec())
    lin, q = _layer(cfg, k=32, m=48)
    q(torch.randn(16, 32, dtype=torch.float64)).sum().backward()
    np.testing.assert_array_equal(q.state.capture["fprop"]["b_q"], q.state.capture["dgrad"]["b_q"].T)


def _clipped_input_grad(fmt, values):
    """dL/dx of sum(Q(x) @ ones) under the clipped STE with ``fmt`` on x."""
    cfg = TrainConfig(GemmSpec(TensorQuant(fmt), TensorQuant()), estimator="clipped")
    lin = nn.Linear(len(values), 1, bias=False).double()
    with torch.no_grad():
        lin.weight.fill_(1.0)
    x = torch.tensor([values], dtype=torch.float64, requires_grad=True)
    QLinear(lin, cfg, "c")(x).sum().backward()
    return x.grad.numpy()


def test_clipped_ste():
    # per-tensor INT8: the maximum defines the scale, nothing saturates
    np.testing.assert_array_equal(_clipped_input_grad("int8_pt", [0.1, 0.2, 0.3, 7.0]),
                                  [[1.0, 1.0, 1.0, 1.0]])
    # fp8_e4m3 (max 448): 500 and -1000 saturate
    np.testing.assert_array_equal(_clipped_input_grad("fp8_e4m3", [1.0, 500.0, -1000.0]),
                                  [[1.0, 0.0, 0.0]])


def test_lsq_learns_the_step():
    lsq_cfg = TrainConfig(GemmSpec(TensorQuant("int4"), TensorQuant("int4")), estimator="lsq")
    torch.manual_seed(3)
    lin = nn.Linear(8, 3).double()
    q = QLinear(lin, lsq_cfg, "lsq")
    x = torch.randn(5, 8, dtype=torch.float64)
    q(x).sum().backward()
    steps = [m.step for m in q.lsq]
    assert all(s.grad is not None and s.grad != 0 for s in steps)
    s = steps[1].detach()
    w = lin.weight.detach()
    n = torch.round(torch.clamp(w / s, -8, 7))
    # the forward value is exactly round(clamp(w / s)) * s, on the int4 grid times the step
    assert torch.equal(q.lsq[1](lin.weight).detach(), n * s)
    assert n.abs().max() <= 8 and len(torch.unique(n)) > 2


def test_conv_matches_linear_on_patches():
    torch.manual_seed(5)
    conv = nn.Conv2d(4, 6, 3, padding=1, stride=2, groups=2).double()
    cfg = TrainConfig(GemmSpec(TensorQuant("mxfp8_e4m3"), TensorQuant("mxfp8_e4m3")))
    qc = QConv2d(conv, cfg, "conv")
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    from lowbit.sim import qconv2d

    ref = qconv2d(x.numpy(), conv.weight.detach().numpy(), conv.bias.detach().numpy(),
                  QuantConfig("mxfp8_e4m3", "mxfp8_e4m3", "exact"), stride=2, padding=1, groups=2)
    np.testing.assert_allclose(qc(x).detach().numpy(), ref, rtol=1e-13, atol=1e-13)
    qc(x).sum().backward()
    assert conv.weight.grad.shape == conv.weight.shape


def test_recipes_convert_and_train():
    torch.manual_seed(0)
    x = torch.randn(64, 16)
    y = x[:, :4].argmax(1)
    for r in RECIPES:
        torch.manual_seed(0)
        m = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                          nn.Linear(32, 4))
        train_recipe(m, r)
        assert all(isinstance(m[i], QLinear) for i in (0, 2, 4))
        opt = torch.optim.Adam(m.parameters(), 1e-2)
        losses = []
        for _ in range(8):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(m(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < losses[0], r
    m = train_recipe(nn.Sequential(*[nn.Linear(8, 8) for _ in range(7)]), "nvfp4-pretrain")
    assert list(m.lowbit_recipe.values()) == ["nvfp4-pretrain"] * 5 + ["bf16"] * 2
    assert m[6].state.config.fprop.a.fmt.name == "bf16"
    assert m[0].state.config.wgrad.rht == 16 and m[0].state.config.fprop.b.block == "2d"
    m = train_recipe(nn.Sequential(nn.Linear(8, 8)), {"fprop": {"a": {"fmt": "int8_pt"}}})
    assert m[0].state.config.fprop.a.fmt.name == "int8_pt"
    with pytest.raises(ValueError, match="recipe='fp3'; allowed: bf16, nvfp4-pretrain"):
        train_recipe(nn.Sequential(nn.Linear(2, 2)), "fp3")
    with pytest.raises(ValueError, match="block='2d' needs a 1-D block format"):
        TensorQuant("fp8_e4m3", block="2d")
