"""`lowbit report` / `lowbit cost` produce their output; bad input errors; every row names its
architecture; the FP8-vs-INT8 table is per accumulator architecture."""

import csv
import json

import pytest

from lowbit.cost_models.report import arch_comparison, build_report, read_sweep
from lowbit.main import main


def test_build_report_files(tmp_path):
    res = build_report("digits-cnn", ["int8", "mxfp4", "int4/int8", "fp8_e4m3"], "gates",
                       tmp_path, accs=("exact", "fp32"))
    p = res["paths"]
    for k in ("md", "html", "formats_csv", "layers_csv", "calibration_csv", "comparison_csv",
              "pareto_energy", "pareto_area"):
        assert p[k].exists() and p[k].stat().st_size > 0, k
    html = p["html"].read_text()
    assert "data:image/png;base64," in html and "<table>" in html
    rows = list(csv.DictReader(p["formats_csv"].open()))
    # ints have no float-accumulator unit: int8 and int4/int8 only with exact
    # (mxfp4's dot unit is the same whatever the accumulator: one row)
    assert [(r["format"], r["acc"]) for r in rows] == [
        ("int8", "exact"), ("mxfp4", "exact"), ("int4/int8", "exact"), ("fp8_e4m3", "exact"),
        ("fp8_e4m3", "fp32")]
    assert all(r["arch"].split("(")[0] in ("int_mac", "mx_dot", "kulisch_mac", "fp_mac")
               for r in rows)
    assert float(rows[1]["w_bits"]) == pytest.approx(4.25)
    lay = list(csv.DictReader(p["layers_csv"].open()))
    r0 = lay[0]
    assert float(r0["e_total_pj"]) == pytest.approx(
        float(r0["e_compute_pj"]) + float(r0["e_sram_pj"]) + float(r0["e_dram_pj"]))
    md = p["md"].read_text()
    assert "FP8 vs INT8 per accumulator architecture" in md and "Held-out MAPE" in md
    assert "Not evaluated" in md and "int8 with acc=fp32" in md


def test_arch_comparison_per_accumulator():
    rows = arch_comparison()
    archs = [r["arch"].split("(")[0] for r in rows]
    assert archs[0] == "int_mac" and {"fp_mac", "kulisch_mac"} <= set(archs)
    assert rows[0]["sky130_x"] == pytest.approx(1.0)
    fp32 = next(r for r in rows if r["format"] == "fp8_e4m3" and r["acc"] == "fp32")
    fp16 = next(r for r in rows if r["format"] == "fp8_e4m3" and r["acc"] == "fp16")
    assert fp32["gates"] > fp16["gates"] and fp32["band"] in ("inside", "below", "above")


def test_report_reads_sweep(tmp_path):
    (tmp_path / "results.csv").write_text(
        "workload,format,accum,quantizer,status,metric_name,metric\n"
        "digits-cnn,int8,fp32,rtn,ok,accuracy,0.97\n"
        "digits-cnn,int8,exact,rtn,ok,accuracy,0.98\n"
        "digits-cnn,mxfp4,fp32,rtn,ok,accuracy,0.95\n"
        "digits-cnn,int4,fp32,rtn,error,accuracy,\n")
    assert read_sweep(tmp_path)["values"] == {"int8": 0.98, "mxfp4": 0.95}
    res = build_report("digits-cnn", ["int8", "mxfp4"], "ice40", tmp_path, accs=("exact",))
    assert [t["metric"] for t in res["totals"]] == [0.98, 0.95]


def test_report_cli(tmp_path, capsys):
    assert main(["report", "--formats", "int8,fp8_e4m3", "--target", "xc7", "--acc", "exact",
                 "--out", str(tmp_path)]) == 0
    assert (tmp_path / "report.html").exists()
    assert main(["report", "--target", "gpu", "--out", str(tmp_path)]) == 2
    assert "--target" in capsys.readouterr().err
    assert main(["report", "--formats", "fp9", "--out", str(tmp_path)]) == 2
    assert main(["report", "--workload", "nope", "--out", str(tmp_path)]) == 2
    assert main(["report", "--dataflow", "XX", "--out", str(tmp_path)]) == 2


def test_cost_cli_prices_the_rtl_unit(capsys):
    assert main(["cost", "fp_mac", "--a", "fp8_e4m3", "--b", "fp8_e4m3", "--acc", "fp16",
                 "--stages", "2", "--target", "ice40", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)[0]
    assert r["unit"] == "fp_mac" and r["metric"] == "LUT4" and r["latency"] == 1
    assert r["params_text"] == "a=fp8_e4m3 b=fp8_e4m3 acc=fp16 stages=2"
    assert main(["cost", "int_mul", "--a", "int4", "--b", "int4"]) == 0
    out = capsys.readouterr().out
    assert all(t in out for t in ("gates", "ice40", "xc7", "sky130"))
    assert main(["cost", "int_mul", "--acc", "fp32"]) == 2
    assert "not used" in capsys.readouterr().err
