"""Sweep reports: per-workload folders, intervals and significance in the outputs, the
``lowbit report --sweep`` join (aliases, workload check, which row it took), readable numbers."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from lowbit.cost_models.report import canonical_spec, read_sweep
from lowbit.sim import fidelity as fd
from lowbit.sim.sweep import ResultStore, check_store_workload, sweep
from lowbit.sim.sweep.plots import core_range, symlog_axis
from lowbit.sim.sweep.report import fmt_num, p_text
from lowbit.sim.workloads import LayerSpec, LayerwiseWorkload, register_workload


class Cls(LayerwiseWorkload):
    """A 2-layer classifier on 120 fixed random inputs with fidelity metrics."""

    name, metric_name, version = "cls-test", "top1", "c1"

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(5)
        self.w1 = rng.standard_normal((32, 48)).astype(np.float32)
        self.w2 = rng.standard_normal((10, 32)).astype(np.float32)
        self.x = 0.02 * rng.standard_normal((120, 48))  # below FP4's smallest subnormal
        self.y = np.argmax(self.x @ self.w1.T.clip(0) @ self.w2.T, 1)

    def _build_layers(self):
        return [LayerSpec("l1", "linear", self.w1, None, 32 * 48, (48,), (32,)),
                LayerSpec("l2", "linear", self.w2, None, 10 * 32, (32,), (10,))]

    def _forward(self, x, ctx):
        return self._gemm("l2", np.maximum(self._gemm("l1", x, ctx), 0), ctx)

    def eval_inputs(self):
        return self.x

    def _metric(self, out, ref):
        return {"metric": float(np.mean(out.argmax(1) == self.y))}

    def fidelity(self, out, ref_out):
        return {"top1": fd.accuracy_metric(out, self.y), "kl": fd.kl_metric(ref_out, out),
                "agreement": fd.agreement_metric(ref_out, out), "sqnr": fd.sqnr_metric(ref_out, out)}


register_workload("cls-test", Cls, overwrite=True)


def test_sweep_outputs_intervals_and_significance(tmp_path):
    res = sweep("cls-test", ["fp32", "int8_pc", "fp4_e2m1", "mxfp4", "nvfp4"], ["exact"],
                out=tmp_path, workers=1, progress=False)
    d = tmp_path / "cls-test"
    rows = list(csv.DictReader(open(d / "results.csv")))
    by = {r["format"]: r for r in rows}
    for r in rows:
        assert float(r["metric_lo"]) <= float(r["metric"]) <= float(r["metric_hi"])
        assert r["kl_lo"] and r["sqnr_hi"] and r["agreement"]
    assert by["fp32"]["distinguishable"] == "False"  # exact arithmetic: identical predictions
    assert by["fp4_e2m1"]["distinguishable"] == "True"  # unscaled FP4 collapses the logits
    md = (d / "report.md").read_text()
    assert "## What is significant" in md and "mxfp4 vs nvfp4" in md
    n_q = sum(by[f]["distinguishable"] == "True" for f in by if f != "fp32")
    assert f"Quantised formats only (FP32 excluded): {n_q} of 4 differ" in md
    assert n_q >= 1 and ("p < 0.001" in md or "p = " in md)
    assert "Unscaled (values rounded to the element grid" in md and "`fp4_e2m1`" in md
    assert "Output SQNR = 10 log10" in md and "percentile bootstrap" in md
    assert (d / "pairwise.csv").read_text().count("\n") == 1 + 10  # 5 points -> 10 pairs
    assert {p.name for p in d.glob("*.png")} == {"fidelity.png", "metric_vs_bits.png",
                                                "sqnr_heatmap.png"}
    # the store refuses another workload's points
    with ResultStore(d / "results.sqlite") as st:
        with pytest.raises(ValueError, match="holds results of workload"):
            check_store_workload(st, "digits-cnn")
    assert res["stats"]["computed"] == 5


def test_report_sweep_join_aliases_workload_and_row(tmp_path):
    p = tmp_path / "cls-test"
    p.mkdir()
    with open(p / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, ["workload", "format", "accum", "quantizer", "status",
                                "metric_name", "metric"])
        w.writeheader()
        w.writerow(dict(workload="cls-test", format="mxfp8", accum="fp32", quantizer="rtn",
                        status="ok", metric_name="top1", metric="0.90"))
        w.writerow(dict(workload="cls-test", format="mxfp8_e4m3", accum="exact",
                        quantizer="gptq", status="ok", metric_name="top1", metric="0.95"))
        w.writerow(dict(workload="cls-test", format="int8/int8", accum="exact", quantizer="rtn",
                        status="ok", metric_name="top1", metric="0.97"))
    s = read_sweep(tmp_path, "cls-test")  # sweep root: finds cls-test/results.csv
    assert s["values"] == {"mxfp8_e4m3": 0.95, "int8": 0.97}
    assert s["rows"]["mxfp8_e4m3"] == "exact / gptq"
    assert canonical_spec("float8_e4m3fn/fp8") == "fp8_e4m3"
    with pytest.raises(ValueError, match=r"holds results of workload\(s\) \['cls-test'\]"):
        read_sweep(p, "digits-cnn")


def test_numbers_and_axes_are_readable():
    assert fmt_num(99.5, 1) == "99.5" and fmt_num(float("inf")) == "inf"
    assert fmt_num(-0.00001, 2) == "0.00" and fmt_num(3.2e-9) == "3.20e-09"
    # one far outlier: the axis shows the cluster, the outlier is flagged
    lo, hi, out = core_range([0.98, 0.981, 0.985, 0.99, 0.09])
    assert out.tolist() == [False, False, False, False, True] and 0.9 < lo < 0.98 < 0.99 < hi < 1.0
    assert core_range([1.0, 2.0, 3.0, 4.0])[0] is None  # evenly spread: full range


def test_p_value_text_states_the_bootstrap_resolution():
    assert p_text(0.0) == "p < 0.001"  # 2 / 2000 resamples: no resample crossed 0
    assert p_text(0.031) == "p = 0.031" and p_text(1.0) == "p = 1.000"


def test_symlog_axis_keeps_every_interval_and_plain_ticks():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    symlog_axis(ax, [0.001, 0.5, 600.0], [-0.002, 0.3, 500.0], [0.004, 0.7, 700.0])
    lo, hi = ax.get_ylim()
    assert ax.get_yscale() == "symlog" and lo <= -0.002 and hi >= 700.0
    ticks = list(ax.get_yticks())
    assert ticks == [0.0, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]
    assert ax.yaxis.get_major_formatter()(100.0, 0) == "100"
    plt.close(fig)
