"""Format sweep: resume without recomputation, failure recording, local-process and Dask
execution equal to in-process execution, CLI outputs and error messages."""

from __future__ import annotations

import csv
import json
import sqlite3

import numpy as np
import pytest

from lowbit.main import main
from lowbit.sim.sweep import ResultStore, build_points, run_sweep, sweep
from lowbit.sim.workloads import LayerSpec, LayerwiseWorkload, register_workload

CALLS = {"n": 0, "interrupt_after": None, "fail_format": None}


class Tiny(LayerwiseWorkload):
    """Two-layer MLP on fixed random data; metric = cosine of the output with the float one.
    Counts evaluations in CALLS; can fail on one weight format or interrupt after k calls."""

    name = "tiny-test"
    metric_name = "cosine"
    version = "t1"

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.w1 = rng.standard_normal((24, 40)).astype(np.float32)
        self.w2 = rng.standard_normal((8, 24)).astype(np.float32)
        self.x = rng.standard_normal((32, 40))

    def _build_layers(self):
        return [LayerSpec("l1", "linear", self.w1, None, 24 * 40, (40,), (24,)),
                LayerSpec("l2", "linear", self.w2, None, 8 * 24, (24,), (8,))]

    def _forward(self, x, ctx):
        return self._gemm("l2", np.maximum(self._gemm("l1", x, ctx), 0), ctx)

    def eval_inputs(self):
        return self.x

    def _metric(self, out, ref):
        c = np.sum(out * ref) / (np.linalg.norm(out) * np.linalg.norm(ref))
        return {"metric": float(c)}

    def evaluate(self, configs=None, quantizer="rtn"):
        if CALLS["interrupt_after"] is not None and CALLS["n"] >= CALLS["interrupt_after"]:
            raise KeyboardInterrupt  # simulates Ctrl-C / a killed run mid-sweep
        CALLS["n"] += 1
        w_fmt = getattr(configs, "weight", None)
        if CALLS["fail_format"] and getattr(w_fmt, "name", w_fmt) == CALLS["fail_format"]:
            raise RuntimeError("boom: simulated failure")
        return super().evaluate(configs, quantizer)


register_workload("tiny-test", Tiny, overwrite=True)
FMTS = ["fp32", "fp8_e4m3", "mxfp4", "int4_g128", "nvfp4"]


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.update(n=0, interrupt_after=None, fail_format=None)


def _metrics(rows):
    return {(r["format"], r["accum"]): (r["status"], r["result"].get("metric"),
                                        r["result"].get("per_layer_sqnr")) for r in rows}


def test_resume_after_interrupt_recomputes_nothing(tmp_path):
    pts = build_points("tiny-test", FMTS, ["exact", "fp32"])
    assert len(pts) == 10
    # clean reference run
    with ResultStore(tmp_path / "clean.sqlite") as st:
        run_sweep(pts, st, workers=1, progress=False)
        clean = _metrics(st.rows([p.key for p in pts]))
    assert CALLS["n"] == 10
    # interrupted run: stops after 4 points
    CALLS.update(n=0, interrupt_after=4)
    db = tmp_path / "results.sqlite"
    with ResultStore(db) as st, pytest.raises(KeyboardInterrupt):
        run_sweep(pts, st, workers=1, progress=False)
    with ResultStore(db) as st:
        assert len(st.finished()) == 4
    # resume: only the 6 missing points are computed, results identical to the clean run
    CALLS.update(n=0, interrupt_after=None)
    with ResultStore(db) as st:
        stats = run_sweep(pts, st, workers=1, progress=False)
        resumed = _metrics(st.rows([p.key for p in pts]))
    assert CALLS["n"] == 6 and stats["skipped"] == 4 and stats["computed"] == 6
    assert resumed == clean
    # a third run computes nothing
    CALLS["n"] = 0
    with ResultStore(db) as st:
        assert run_sweep(pts, st, workers=1, progress=False)["computed"] == 0
    assert CALLS["n"] == 0


def test_failing_point_is_recorded_and_sweep_goes_on(tmp_path):
    CALLS["fail_format"] = "mxfp4"
    res = sweep("tiny-test", FMTS, ["exact"], out=tmp_path, workers=1, progress=False,
                plots=False)
    rows = {r["format"]: r for r in res["rows"]}
    assert res["stats"]["failed"] == 1 and len(rows) == 5
    assert rows["mxfp4"]["status"] == "error" and "boom" in rows["mxfp4"]["error"]
    assert all(rows[f]["status"] == "ok" for f in FMTS if f != "mxfp4")
    with open(tmp_path / "tiny-test" / "results.csv") as fh:
        csv_rows = {r["format"]: r for r in csv.DictReader(fh)}
    assert "RuntimeError: boom" in csv_rows["mxfp4"]["error"]
    # kept with retry_failed=False; retried (and now succeeding) by default; ok points never
    CALLS.update(n=0, fail_format=None)
    sweep("tiny-test", FMTS, ["exact"], out=tmp_path, workers=1, progress=False, plots=False,
          retry_failed=False)
    assert CALLS["n"] == 0
    res = sweep("tiny-test", FMTS, ["exact"], out=tmp_path, workers=1, progress=False,
                plots=False)
    assert CALLS["n"] == 1 and res["stats"]["failed"] == 0


def test_key_includes_version(tmp_path):
    a = build_points("tiny-test", ["fp32"], ["exact"], version="v1")[0]
    b = build_points("tiny-test", ["fp32"], ["exact"], version="v2")[0]
    assert a.key != b.key and a.key == "tiny-test|fp32|exact|rtn|v1"


@pytest.mark.slow
def test_local_processes_equal_in_process(tmp_path):
    """Spawned workers (custom workload shipped by cloudpickle) give the in-process results."""
    pts = build_points("tiny-test", FMTS[:3], ["fp32"])
    with ResultStore(tmp_path / "a.sqlite") as st:
        run_sweep(pts, st, workers=1, progress=False)
        serial = _metrics(st.rows([p.key for p in pts]))
    with ResultStore(tmp_path / "b.sqlite") as st:
        run_sweep(pts, st, workers=2, progress=False)
        par = _metrics(st.rows([p.key for p in pts]))
    assert par == serial


@pytest.mark.slow
def test_dask_local_cluster_equals_local_run(tmp_path):
    distributed = pytest.importorskip("distributed")
    fmts, accs = ["fp32", "mxfp4", "int8_pc"], ["fp32"]
    local = sweep("digits-cnn", fmts, accs, out=tmp_path / "local", workers=1,
                  progress=False, plots=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  protocol="tcp://", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        remote = sweep("digits-cnn", fmts, accs, out=tmp_path / "dask",
                       scheduler=cluster.scheduler_address, progress=False, plots=False)
    assert remote["stats"]["computed"] == 3 and remote["stats"]["failed"] == 0
    assert _metrics(remote["rows"]) == _metrics(local["rows"])


def test_cli_default_outputs(tmp_path, capsys):
    rc = main(["sweep", "--workload", "tiny-test", "--formats", "fp32,mxfp4", "int8_pc",
               "--accum", "exact", "--workers", "1", "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    out = tmp_path / "tiny-test"  # one folder per workload
    for f in ("results.csv", "results.json", "report.md", "results.sqlite", "pairwise.csv",
              "metric_vs_bits.png", "sqnr_heatmap.png"):
        assert (out / f).stat().st_size > 0, f
    doc = json.loads((out / "results.json").read_text())
    assert [p["format"] for p in doc["points"]] == ["fp32", "mxfp4", "int8_pc"]
    assert doc["points"][0]["metric"] > 0.999999 > doc["points"][1]["metric"]
    assert doc["points"][1]["bits_per_element"] == 4.25
    assert "| mxfp4 | 4.25 | exact | rtn |" in (out / "report.md").read_text()
    assert "3 points (3 computed" in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["--formats", "fp9_e9m9"], "unknown format 'fp9_e9m9'"),
    (["--workload", "resnet-9000"], "unknown workload 'resnet-9000'; allowed: "),
    (["--accum", "fp64x"], "--accum: unknown accumulator 'fp64x'; allowed"),
    (["--quantizer", "awq"], "--quantizer: bad quantizer 'awq'; weight quantiser(s): rtn, gptq"),
    (["--quantizer", "hadamard:12+gptq"], "hadamard block 12 must be a power of two"),
    (["--scheduler", "localhost:8786"], "--scheduler: expected tcp://HOST:PORT"),
    (["--workers", "0"], "argument --workers: expected an integer >= 1, got '0'"),
])
def test_cli_bad_arguments_exit_2(tmp_path, capsys, argv, needle):
    rc = main(["sweep", "--out", str(tmp_path / "o"), "--no-progress", "--workers", "1",
               "--formats", "fp32", *argv])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err, err
    if "unknown format" in needle:
        assert "mxfp4" in err and "allowed" in err  # lists the allowed names


def test_cli_unwritable_out_and_corrupt_store(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    rc = main(["sweep", "--workload", "tiny-test", "--formats", "fp32", "--accum", "exact",
               "--out", str(blocker / "sub"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "argument --out:" in err and "is a file, not a folder" in err
    out = tmp_path / "corrupt"
    (out / "tiny-test").mkdir(parents=True)
    (out / "tiny-test" / "results.sqlite").write_bytes(b"this is not a database" * 100)
    rc = main(["sweep", "--workload", "tiny-test", "--formats", "fp32", "--accum", "exact",
               "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and "results.sqlite is corrupt" in err
    # a valid SQLite file with a foreign table layout is refused too
    other = tmp_path / "other"
    other.mkdir()
    con = sqlite3.connect(other / "results.sqlite")
    con.execute("CREATE TABLE points (a, b)")
    con.commit()
    con.close()
    with pytest.raises(ValueError, match="corrupt or not a lowbit sweep database"):
        ResultStore(other / "results.sqlite")
    # a real store with a damaged page in the middle
    good = tmp_path / "good"
    sweep("tiny-test", FMTS, ["exact"], out=good, workers=1, progress=False, plots=False)
    db = good / "tiny-test" / "results.sqlite"
    n = db.stat().st_size
    with open(db, "r+b") as fh:
        fh.seek(n // 2)
        fh.write(b"\xff" * (n // 4))
    with pytest.raises(ValueError, match="corrupt"):
        ResultStore(db)
