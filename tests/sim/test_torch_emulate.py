"""lowbit.sim.torch.emulate: float path == torch, every GEMM == lowbit.sim.qmatmul bit for bit."""

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_models import ExplicitAttention, SmallCNN, TinyEncoder, make_data

from lowbit.sim import QuantConfig, qconv2d, qmatmul
from lowbit.sim.torch import emulate, emulated_layers, list_gemms

CFGS = [QuantConfig("mxfp4", "mxfp4", "fp32"), QuantConfig("int8_pc", "int8_pc", "int32"),
        QuantConfig("nvfp4", "fp8_e4m3", "fp16"), QuantConfig("fp8_e5m2", None, "bf16_chunk4")]


def _np(t):
    return t.detach().double().numpy()


def _unfold_khwc(x, w, stride, padding, dilation):
    """Independent im2col: torch's F.unfold ((c, kh, kw) order) re-ordered to (kh, kw, c)."""
    n, c = x.shape[:2]
    _, _, kh, kw = w.shape
    u = F.unfold(x, (kh, kw), dilation=dilation, padding=padding, stride=stride)
    L = u.shape[-1]
    return u.reshape(n, c, kh, kw, L).permute(0, 4, 2, 3, 1).reshape(n * L, kh * kw * c)


def _capture_modules(model, types):
    cap = {}
    for name, m in model.named_modules():
        if isinstance(m, types):
            m.register_forward_hook(lambda mod, a, o, n=name: cap.__setitem__(n, (a[0], o)))
    return cap


def test_float_path_equals_torch():
    torch.manual_seed(0)
    x, _, ids, _ = make_data()
    for model, inp in ((SmallCNN().double(), x.double()), (TinyEncoder().double().eval(), ids)):
        ref = model(inp)
        assert torch.equal(emulate(model, None)(inp), ref)
        assert torch.equal(emulate(model, {"nothing.*": CFGS[0]})(inp), ref)


@pytest.mark.parametrize("cfg", CFGS, ids=str)
def test_every_layer_equals_qmatmul(cfg):
    torch.manual_seed(1)
    x, _, ids, _ = make_data(n=4)
    cnn = emulate(SmallCNN().double(), cfg)
    cap = _capture_modules(cnn, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Conv1d))
    cnn(x.double())
    assert set(cap) == {"conv1", "conv2", "conv1d", "fc1", "fc2"}
    for name in ("fc1", "fc2"):
        xin, out = cap[name]
        m = dict(cnn.named_modules())[name]
        ref = qmatmul(_np(xin), _np(m.weight).T, cfg) + _np(m.bias)
        np.testing.assert_array_equal(_np(out), ref)
    for name in ("conv1", "conv2"):
        xin, out = cap[name]
        m = dict(cnn.named_modules())[name]
        args = dict(stride=m.stride, padding=m.padding, dilation=m.dilation)
        np.testing.assert_array_equal(
            _np(out), qconv2d(_np(xin), _np(m.weight), _np(m.bias), cfg, groups=m.groups, **args))
        # independent im2col (F.unfold) per group against qmatmul
        G, O = m.groups, m.weight.shape[0]
        og, cg = O // G, m.weight.shape[1]
        for g in range(G):
            wg = m.weight[g * og:(g + 1) * og]
            cols = _unfold_khwc(xin[:, g * cg:(g + 1) * cg], wg, **args)
            w2 = _np(wg).transpose(0, 2, 3, 1).reshape(og, -1)
            if cfg.weight is not None and getattr(cfg.weight, "tensor_scale", False):
                continue  # a per-tensor weight scale is shared across groups (documented)
            y = qmatmul(_np(cols), w2.T, cfg) + _np(m.bias)[g * og:(g + 1) * og]
            got = _np(out)[:, g * og:(g + 1) * og].transpose(0, 2, 3, 1).reshape(-1, og)
            np.testing.assert_array_equal(got, y)
    xin, out = cap["conv1d"]
    m = cnn.conv1d
    ref = qconv2d(_np(xin)[:, :, None], _np(m.weight)[:, :, None], _np(m.bias), cfg,
                  padding=(0, 1))[:, :, 0]
    np.testing.assert_array_equal(_np(out), ref)


def test_transformer_layers_and_attention_matmuls():
    torch.manual_seed(2)
    _, _, ids, _ = make_data(n=3)
    enc = TinyEncoder().double().eval()
    names = [g["name"] for g in list_gemms(enc, ids)]
    assert names[:6] == ["encoder.layers.0.self_attn.in_proj", "encoder.layers.0.self_attn.sdpa.qk",
                         "encoder.layers.0.self_attn.sdpa.pv",
                         "encoder.layers.0.self_attn.out_proj", "encoder.layers.0.linear1",
                         "encoder.layers.0.linear2"]
    assert names[-1] == "head" and len(names) == 13
    cfg = CFGS[0]
    em = emulate(enc, {"encoder.layers.1.linear1": cfg})
    cap = _capture_modules(em, (torch.nn.Linear,))
    em(ids)
    xin, out = cap["encoder.layers.1.linear1"]
    m = em.encoder.layers[1].linear1
    ref = qmatmul(_np(xin).reshape(-1, 16), _np(m.weight).T, cfg) + _np(m.bias)
    np.testing.assert_array_equal(_np(out).reshape(-1, 32), ref)
    seen = emulated_layers(em)
    assert seen["encoder.layers.1.linear1"] == "linear"
    assert seen["encoder.layers.0.self_attn.sdpa"].startswith("attention")
    # unknown layer names are reported when example inputs are given
    with pytest.raises(ValueError, match="no layer matches.*encoder.layers.9"):
        emulate(enc, {"encoder.layers.9.*": cfg}, example_inputs=(ids,))


def test_activation_matmuls_equal_qmatmul():
    torch.manual_seed(3)
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    m = ExplicitAttention().double()
    cfg = QuantConfig("mxfp8_e4m3", "fp8_e4m3", "fp32")
    em = emulate(m, {"matmul": cfg, "matmul_1": cfg, "sdpa.*": cfg})
    got = em(x)
    q, k, v = (_np(t) for t in m.qkv(x).chunk(3, dim=-1))
    s = np.stack([qmatmul(q[i], k[i].T, cfg) for i in range(2)]) / 4.0
    p = _np(torch.softmax(torch.from_numpy(s), -1))
    a = np.stack([qmatmul(p[i], v[i], cfg) for i in range(2)])
    s2 = np.stack([qmatmul(q[i], k[i].T, cfg) for i in range(2)]) * (1 / np.sqrt(16))
    p2 = _np(torch.softmax(torch.from_numpy(s2), -1))
    b = np.stack([qmatmul(p2[i], v[i], cfg) for i in range(2)])
    np.testing.assert_array_equal(_np(got), a + b)
    assert {"matmul", "matmul_1", "sdpa.qk", "sdpa.pv"} <= set(emulated_layers(em))


def test_float32_model_rounds_once():
    torch.manual_seed(4)
    m = torch.nn.Linear(40, 7)
    x = torch.randn(6, 40)
    cfg = CFGS[0]
    y = emulate(m, cfg)(x)
    assert y.dtype == torch.float32
    ref = (qmatmul(_np(x), _np(m.weight).T, cfg) + _np(m.bias)).astype(np.float32)
    np.testing.assert_array_equal(y.detach().numpy(), ref)


def test_backward_is_straight_through():
    torch.manual_seed(5)
    m = torch.nn.Linear(8, 3).double()
    x = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    emulate(m, CFGS[0], inplace=True)(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.tile(m.weight.sum(0).detach().numpy(), (4, 1)))


def test_bad_config_and_transposed_conv():
    with pytest.raises(ValueError, match="configs"):
        emulate(torch.nn.Linear(2, 2), 3.5)
    ct = torch.nn.ConvTranspose2d(2, 2, 3)
    with pytest.raises(ValueError, match="transposed"):
        emulate(ct, CFGS[0])(torch.randn(1, 2, 4, 4))
    emulate(ct, None)(torch.randn(1, 2, 4, 4))  # float: fine


def test_lowbit_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import lowbit, lowbit.sim, lowbit.sim.workloads, lowbit.sim.search, lowbit.sim.sweep\n"
            "try:\n    import lowbit.sim.torch\nexcept ImportError as e:\n    print('IE', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "IE lowbit.sim.torch needs PyTorch: pip install 'lowbit[torch]'" in out.stdout
