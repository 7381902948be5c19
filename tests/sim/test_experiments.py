"""The paper experiments' building blocks (cheap parts; the full runs are `make experiments`):
the registry and CLI, the Pareto rule, the minifloat/INT format list, the FP8/INT8 cost table,
and the mr-gptq table on a tiny workload."""

from __future__ import annotations

import numpy as np
import pytest

from lowbit.experiments import EXPERIMENTS, fp8_int8, minifloat_int, mrgptq, run_experiment
from lowbit.formats import resolve
from lowbit.main import main
from lowbit.sim import fidelity as fd
from lowbit.sim.workloads import LayerSpec, LayerwiseWorkload, make_config, register_workload


def test_registry_and_cli(capsys):
    assert set(EXPERIMENTS) == {"mr-gptq", "minifloat-vs-int", "fp8-vs-int8", "mixed-precision"}
    assert main(["experiment", "list"]) == 0
    assert "mr-gptq" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown experiment 'nope'; allowed: mr-gptq"):
        run_experiment("nope")


def test_minifloat_int_formats_cover_3_to_8_bits_scaled_alike():
    fm = minifloat_int.formats()
    bits = {resolve(f).element.bits for f in fm}
    assert bits == {3, 4, 5, 6, 7, 8}
    for f in fm:
        r = resolve(f)
        assert r.block_size == -1 and r.scale is None  # FP32 scale per channel for all
    e1 = resolve("fp4_e1m2").values()  # an E1 minifloat has a uniform (integer-like) grid
    pos = np.unique(np.abs(e1[np.isfinite(e1)]))
    assert np.allclose(np.diff(pos), pos[1] - pos[0])


def test_fp8_int8_cost_table():
    rows = fp8_int8.cost_rows()
    assert rows[0]["fmt"] == "int8" and rows[0]["r_ge"] == 1.0
    assert {r["arch"] for r in rows[1:]} == {a[0] for a in fp8_int8.ARCHS}
    for r in rows[1:]:
        assert r["r_pj"] > 1.0  # an FP8 MAC never costs less energy than INT8 here
    by = {(r["arch"], r["fmt"]): r for r in rows}
    # a wider (FP32) accumulator costs more than an FP16 one for the same product
    assert by[("FP32 accumulator", "fp8_e4m3")]["ge"] > by[("FP16 accumulator", "fp8_e4m3")]["ge"]


class Small(LayerwiseWorkload):
    name, metric_name, version = "exp-small", "top1", "s1"

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(9)
        self.w = (rng.standard_normal((10, 64)) * np.exp(rng.standard_normal(64))).astype(
            np.float32)
        self.x = rng.standard_normal((60, 64))
        self.y = np.argmax(self.x @ self.w.T, 1)

    def _build_layers(self):
        return [LayerSpec("fc", "linear", self.w, None, 640, (64,), (10,))]

    def _forward(self, x, ctx):
        return self._gemm("fc", x, ctx)

    def eval_inputs(self):
        return self.x

    def _metric(self, out, ref):
        return {"metric": float(np.mean(out.argmax(1) == self.y))}

    def fidelity(self, out, ref_out):
        return {"top1": fd.accuracy_metric(out, self.y), "kl": fd.kl_metric(ref_out, out)}


register_workload("exp-small", Small, overwrite=True)


def test_minifloat_int_table_and_plot_on_a_small_workload(tmp_path):
    res = minifloat_int.run(tmp_path, workload="exp-small", workers=1)
    assert [r[1] for r in res["rows"]] == minifloat_int.formats()
    text = res["table"].read_text()
    assert "Pareto front (xc7 LUTs vs top1" in text and "**Paper's claim.**" in text
    assert res["png"].stat().st_size > 0


def test_mrgptq_table_on_a_small_workload(tmp_path):
    res = mrgptq.run(tmp_path, workload="exp-small", workers=1)
    text = res["table"].read_text()
    assert ("| quantizer | MXFP4 top1 | NVFP4 top1 | MXFP4 − float | NVFP4 − float | "
            "MXFP4 − NVFP4 |") in text
    # the "− float" cells are the paired differences to the float model's per-sample metric
    wl = Small()
    ref = wl.reference()["fidelity"]["top1"]
    got = wl.fidelity(wl.forward(wl.eval_inputs(), {"fc": make_config("mxfp4", accum="exact")}),
                      wl.reference()["out"])["top1"]
    d = got.compare(ref)
    assert res["rows"][0][3].startswith(f"{d['diff']:.4f} [{d['lo']:.4f}, {d['hi']:.4f}]")
    assert [r[0] for r in res["rows"]] == list(mrgptq.QUANTIZERS)
    assert "**Paper's claim.**" in text and "MXFP4 scale search (mrgptq vs gptq)" in text
    assert res["png"].stat().st_size > 0 and (tmp_path / "table.csv").is_file()


def test_mixed_precision_paired_verdicts_on_a_small_workload(tmp_path):
    from lowbit.experiments import mixed

    res = mixed.run(tmp_path, workload="exp-small", budgets=(0.3, 0.6))
    assert [r[0] for r in res["rows"]] == ["INT", "INT", "FP", "FP", "INT+FP", "INT+FP"]
    # at 0.3x BOPs the single layer must take a 4-bit x 4-bit candidate (6 x 6 bits = 0.56x)
    assert res["rows"][0][5] == "fc:int4_pc" and res["rows"][2][5] == "fc:fp4_e2m1_pc"
    assert len(res["verdicts"]) == 2 and all("INT+FP − INT = " in v for v in res["verdicts"])
    assert "Δ vs float [95% CI]" in res["table"].read_text() and res["png"].stat().st_size > 0
