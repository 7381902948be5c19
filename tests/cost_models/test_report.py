"""`lowbit report` produces its files; bad input errors; claims are computed."""

import csv

import pytest

from lowbit.cost_models.report import build_report, claims, read_sweep


def test_build_report_files(tmp_path):
    res = build_report("digits-cnn", ["int8", "mxfp4", "int4/int8"], "asic", tmp_path)
    p = res["paths"]
    for k in ("md", "html", "formats_csv", "layers_csv", "calibration_csv", "pareto_energy",
              "pareto_area"):
        assert p[k].exists() and p[k].stat().st_size > 0, k
    html = p["html"].read_text()
    assert "data:image/png;base64," in html and "<table>" in html
    rows = list(csv.DictReader(p["formats_csv"].open()))
    assert [r["format"] for r in rows] == ["int8", "mxfp4", "int4/int8"]
    assert float(rows[1]["w_bits"]) == pytest.approx(4.25)
    # layers.csv: one row per (format, layer); energy terms add up
    lay = list(csv.DictReader(p["layers_csv"].open()))
    assert len(lay) % 3 == 0 and len(lay) >= 3
    r0 = lay[0]
    assert float(r0["e_total_pj"]) == pytest.approx(
        float(r0["e_compute_pj"]) + float(r0["e_sram_pj"]) + float(r0["e_dram_pj"]))
    assert "van Baalen" in p["md"].read_text()


def test_report_reads_sweep(tmp_path):
    (tmp_path / "results.csv").write_text(
        "workload,format,accum,quantizer,status,metric_name,metric\n"
        "digits-cnn,int8,fp32,rtn,ok,accuracy,0.97\n"
        "digits-cnn,int8,exact,rtn,ok,accuracy,0.98\n"
        "digits-cnn,mxfp4,fp32,rtn,ok,accuracy,0.95\n"
        "digits-cnn,int4,fp32,rtn,error,accuracy,\n")
    assert read_sweep(tmp_path)["values"] == {"int8": 0.98, "mxfp4": 0.95}
    res = build_report("digits-cnn", ["int8", "mxfp4"], "ice40", tmp_path)
    assert [t["metric"] for t in res["totals"]] == [0.98, 0.95]


def test_cli(tmp_path, capsys):
    from lowbit.main import main

    assert main(["report", "--formats", "int8,fp8_e4m3", "--target", "xilinx",
                 "--out", str(tmp_path)]) == 0
    assert (tmp_path / "report.html").exists()
    assert main(["report", "--target", "gpu", "--out", str(tmp_path)]) == 2
    assert "--target" in capsys.readouterr().err
    assert main(["report", "--formats", "fp9", "--out", str(tmp_path)]) == 2
    assert main(["report", "--workload", "nope", "--out", str(tmp_path)]) == 2
    assert main(["report", "--dataflow", "XX", "--out", str(tmp_path)]) == 2


def test_claims_ratios_sane():
    c = claims()
    fx = c["fp8_e4m3/int8 [fixed]"]
    f32 = c["fp8_e4m3/int8 [fp32-acc]"]
    assert 0.5 < fx["area"] < 3 and f32["energy"] > fx["energy"]
    assert c["mxfp4/int4 [32-lane int4 dot]"]["area"] > 0
