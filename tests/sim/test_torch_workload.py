"""TorchWorkload / ONNX workloads through the Workload protocol, sweep, search, report and CLI."""

import csv
import textwrap
import warnings

import numpy as np
import pytest
import torch
from torch_models import SmallCNN, TinyEncoder, make_data

from lowbit.main import main
from lowbit.sim import QuantConfig, qlinear
from lowbit.sim.search import search
from lowbit.sim.sweep import sweep
from lowbit.sim.torch import TorchWorkload, emulate
from lowbit.sim.workloads import (
    get_workload,
    list_workloads,
    make_config,
    register_workload,
    resolve_workload,
)
from lowbit.sim.workloads.onnx_model import OnnxWorkload

CFG = make_config("mxfp4", accum="fp32")


def SmallCNN_seeded():
    torch.manual_seed(0)
    return SmallCNN()


def test_layers_shapes_macs_and_float_reference():
    x, y, _, _ = make_data()
    model = SmallCNN_seeded()
    wl = TorchWorkload(model, calib=x[:8], eval=(x, y), metric="top1")
    specs = {s.name: s for s in wl.layers()}
    assert list(specs) == ["conv1", "conv2", "conv1d", "fc1", "fc2"]
    assert specs["conv1"].macs == 8 * 8 * 8 * 3 * 9          # OH*OW*O*C*kh*kw per sample
    assert specs["conv2"].macs == 4 * 4 * 8 * 2 * 9 and specs["conv2"].attrs["groups"] == 4
    assert specs["conv1d"].weight.shape == (4, 8, 1, 3) and specs["conv1d"].macs == 16 * 4 * 24
    assert specs["fc1"].macs == 64 * 16 and specs["fc1"].in_shape == (64,)
    # float path: torch's own output bit for bit
    out = wl.forward(wl.eval_inputs(), None)
    np.testing.assert_array_equal(out, model.double()(x.double()).detach().numpy())


def test_quantized_forward_equals_emulate_and_qlinear():
    x, y, ids, t = make_data()
    enc = TinyEncoder().eval()
    wl = TorchWorkload(enc, calib=ids[:8], eval=(ids, t), metric="top1", batch_size=10)
    cap = {}
    out = wl.forward(wl.eval_inputs(), CFG, capture=cap)
    per_layer = {s.name: CFG for s in wl.layers()}  # attention matmuls stay float (matmuls="float")
    np.testing.assert_array_equal(out, emulate(enc.double(), per_layer)(ids).detach().numpy())
    wl_all = TorchWorkload(enc, calib=ids[:8], eval=(ids, t), metric="top1", matmuls="same")
    np.testing.assert_array_equal(wl_all.forward(wl_all.eval_inputs(), CFG),
                                  emulate(enc.double(), CFG)(ids).detach().numpy())
    s = wl.layer("encoder.layers.0.linear2")
    c = cap[s.name]
    assert c["input"].shape == (24 * 6, 32)
    np.testing.assert_array_equal(c["output"], qlinear(c["input"], s.weight, s.bias, CFG))
    cnn = SmallCNN_seeded()
    wl2 = TorchWorkload(cnn, calib=x[:8], eval=(x, y), metric="top1")
    np.testing.assert_array_equal(wl2.forward(wl2.eval_inputs(), CFG),
                                  emulate(cnn.double(), CFG)(x.double()).detach().numpy())


def test_metrics_and_errors():
    x, y, _, _ = make_data()
    m = SmallCNN_seeded()
    for metric, hib in (("top1", True), ("mse", False), ("cosine", True)):
        wl = TorchWorkload(m, calib=x, eval=(x, None) if metric == "cosine" else (
            x, y if metric == "top1" else torch.zeros(len(x), 5)), metric=metric)
        r = wl.evaluate(CFG)
        assert wl.higher_is_better is hib and np.isfinite(r["metric"])
    assert TorchWorkload(m, calib=x, eval=x, metric="cosine").evaluate(None)["metric"] == 1.0
    wl = TorchWorkload(m, calib=x, eval=(x, y), metric=lambda o, t: float((o.argmax(1) == t).mean()))
    assert wl.evaluate(None)["metric"] == TorchWorkload(m, calib=x, eval=(x, y),
                                                         metric="top1").evaluate(None)["metric"]
    with pytest.raises(ValueError, match="top1' needs eval targets"):
        TorchWorkload(m, calib=x, eval=x, metric="top1")
    with pytest.raises(ValueError, match="metric='acc'; allowed: top1, mse, cosine, perplexity"):
        TorchWorkload(m, calib=x, eval=x, metric="acc")
    # missing loss: named error from the Hessian metric
    wl = TorchWorkload(m, calib=x, eval=x, metric="cosine")
    with pytest.raises(ValueError, match="hessian metric needs a loss; pass TorchWorkload"):
        search(wl, "int8,int4", "memory=0.7", metric="hessian", front=False, measure=False)


def test_perplexity_metric():
    torch.manual_seed(0)
    lm = torch.nn.Sequential(torch.nn.Embedding(32, 16), torch.nn.Linear(16, 32))
    _, _, ids, _ = make_data()
    tgt = ids.clone()
    tgt[:, 0] = -100
    wl = TorchWorkload(lm, calib=(ids, tgt), eval=(ids, tgt), metric="perplexity")
    logits = lm.double()(ids)
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, 32), tgt.reshape(-1)).detach()
    assert wl.evaluate(None)["metric"] == pytest.approx(float(torch.exp(ref)), rel=1e-12)
    assert not wl.higher_is_better


def test_hessian_trace_equals_exact_hessian():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    x = torch.randn(10, 3)
    y = torch.randint(0, 2, (10,))
    wl = TorchWorkload(model, calib=(x, y), eval=(x, y), metric="top1")
    m64 = wl.model
    exact = {}
    for name in ("0", "2"):
        w = dict(m64.named_parameters())[f"{name}.weight"]

        def f(wv, name=name, w=w):
            out = torch.func.functional_call(m64, {f"{name}.weight": wv}, (x.double(),))
            return torch.nn.functional.cross_entropy(out, y)

        h = torch.autograd.functional.hessian(f, w.detach().clone())
        exact[name] = float(h.reshape(w.numel(), w.numel()).diagonal().sum())
    ex = wl.hessian_traces(n_calib=10, method="exact")
    for n in exact:
        assert ex[n][0] == pytest.approx(exact[n], rel=1e-10, abs=1e-12)
    hu = wl.hessian_traces(n_calib=10, n_probe=64, seed=1)
    for n in exact:
        mean, se = hu[n]
        assert abs(mean - exact[n]) <= 5 * se + 1e-12


def _write_user_file(tmp_path):
    p = tmp_path / "user_model.py"
    p.write_text(textwrap.dedent('''
        import torch
        from lowbit.sim.torch import TorchWorkload

        def make_workload():
            torch.manual_seed(0)
            model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                                        torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3))
            g = torch.Generator().manual_seed(1)
            x = torch.randn(16, 1, 6, 6, generator=g)
            y = model(x).argmax(1)
            return TorchWorkload(model, calib=(x, y), eval=(x, y), metric="top1", name="user")
    '''))
    return p


def test_cli_sweep_search_report_with_file_spec(tmp_path, capsys):
    p = _write_user_file(tmp_path)
    spec = f"{p}:make_workload"
    out = tmp_path / "sweep"
    rc = main(["sweep", "--workload", spec, "--formats", "fp32,mxfp4,int4_pc", "--accum", "fp32",
               "--out", str(out), "--workers", "1", "--no-progress", "--no-plots"])
    assert rc == 0
    rows = list(csv.DictReader((out / "user" / "results.csv").open()))  # OUT/<workload name>/
    assert [r["format"] for r in rows] == ["fp32", "mxfp4", "int4_pc"]
    assert float(rows[0]["metric"]) == 1.0
    rc = main(["search", "--workload", spec, "--candidates", "int8,int4", "--budget",
               "memory=0.7", "--metric", "hessian", "--front-points", "2", "--out",
               str(tmp_path / "search"), "--quiet"])
    assert rc == 0 and (tmp_path / "search" / "summary.md").is_file()
    rc = main(["report", "--workload", spec, "--formats", "int8_pc,mxfp4", "--out",
               str(tmp_path / "report")])
    assert rc == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "0" in text and "3" in text
    assert main(["sweep", "--workload", f"{tmp_path}/nope.py:make", "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["sweep", "--workload", f"{p}:missing_fn", "--out", str(out)]) == 2
    assert "has no function 'missing_fn'" in capsys.readouterr().err


def _export_onnx(model, x, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x[:2],), str(path), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}})


def test_onnx_export_gives_same_sweep_rows(tmp_path):
    x, y, _, _ = make_data()
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=2, dilation=2), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 8, 3, stride=2, groups=4), torch.nn.ReLU(),
                                torch.nn.MaxPool2d(3), torch.nn.Flatten(),
                                torch.nn.Linear(8, 5)).eval()
    _export_onnx(model, x, tmp_path / "cnn.onnx")
    np.savez(tmp_path / "data.npz", calib=x[:8].numpy(), eval_x=x.numpy(), eval_y=y.numpy())
    register_workload("test-torch-cnn", lambda: TorchWorkload(model, calib=x[:8], eval=(x, y),
                                                              metric="top1"), overwrite=True)
    kw = dict(formats=["fp32", "mxfp4", "int8_pc"], accums=["fp32"], quantizers=["rtn", "gptq"],
              workers=1, progress=False, plots=False)
    a = sweep("test-torch-cnn", out=tmp_path / "a", **kw)["rows"]
    rc = main(["sweep", "--workload", str(tmp_path / "cnn.onnx"), "--data",
               str(tmp_path / "data.npz"), "--formats", "fp32,mxfp4,int8_pc", "--accum", "fp32",
               "--quantizer", "rtn,gptq", "--out", str(tmp_path / "b"), "--workers", "1",
               "--no-progress", "--no-plots"])
    assert rc == 0
    key = resolve_workload(str(tmp_path / "cnn.onnx"), str(tmp_path / "data.npz"))
    res = sweep(key, out=tmp_path / "b", **kw)  # resumes the CLI's store: nothing recomputed
    assert res["stats"]["computed"] == 0
    b = res["rows"]
    assert len(a) == len(b) == 6
    for ra, rb in zip(a, b):
        assert (ra["format"], ra["quantizer"]) == (rb["format"], rb["quantizer"])
        assert ra["result"]["metric"] == rb["result"]["metric"]
        sa, sb = ra["result"]["per_layer_sqnr"], rb["result"]["per_layer_sqnr"]
        assert list(sa) == list(sb) == ["0", "2", "6"]
        for k in sa:  # quantised outputs identical; float references differ in the last ulp
            assert sa[k] == pytest.approx(sb[k], rel=1e-9)


def test_onnx_unsupported_op_and_missing_data(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("FancyOp", ["x"], ["y"], name="fancy_0", domain="com.example")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                            helper.make_opsetid("com.example", 1)])
    onnx.save(m, tmp_path / "bad.onnx")
    with pytest.raises(ValueError, match="ONNX node 'fancy_0' \\(op type 'FancyOp'"):
        OnnxWorkload(tmp_path / "bad.onnx", np.zeros((1, 2)), np.zeros((1, 2)))
    assert main(["sweep", "--workload", str(tmp_path / "bad.onnx"), "--out",
                 str(tmp_path / "o")]) == 2
    np.savez(tmp_path / "d.npz", calib=np.zeros((1, 2)))
    with pytest.raises(ValueError, match="missing key\\(s\\) \\['eval_x'\\]"):
        OnnxWorkload.from_files(tmp_path / "bad.onnx", tmp_path / "d.npz")


def test_entry_point_group(tmp_path, monkeypatch):
    p = _write_user_file(tmp_path)
    dist = tmp_path / "site" / "lowbit_user_pkg-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lowbit-user-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[lowbit.workloads]\nmy-ep-model = user_model:make_workload\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.syspath_prepend(str(p.parent))
    assert "my-ep-model" in list_workloads()
    wl = get_workload("my-ep-model")
    assert [s.name for s in wl.layers()] == ["0", "3"]
    assert wl.evaluate(QuantConfig("int8_pc", "int8_pc", "fp32"))["metric"] == 1.0


def test_input_transforms_reach_grouped_convolutions():
    """SmoothQuant / Hadamard rotate a layer's input and weight together; in a grouped conv the
    rotation must reach every group, else the near-lossless fp32 point loses its SQNR."""
    x, y, _, _ = make_data()
    wl = TorchWorkload(SmallCNN_seeded(), calib=x, eval=(x, y), metric="top1")
    for q in ("smoothquant+rtn", "hadamard+rtn"):
        sq = wl.evaluate(make_config("fp32", accum="exact"), quantizer=q)["per_layer_sqnr"]
        assert sq["conv2"] > 100.0, (q, sq)
