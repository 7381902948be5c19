"""`lowbit rtl` / `lowbit cosim` sub-commands."""

import pytest

from lowbit.main import main


def test_rtl_writes_verilog(tmp_path, capsys):
    out = tmp_path / "x.v"
    assert main(["rtl", "fp_mac", "--a", "fp8_e4m3", "--b", "fp8_e4m3", "--acc", "fp16",
                 "-o", str(out)]) == 0
    src = out.read_text()
    assert "module toplevel(clk, rst, a, b, clr, en, acc);" in src
    assert "output[15:0] acc;" in src


def test_cosim_prints_counts(capsys):
    assert main(["cosim", "fp_mul", "--a", "fp4_e2m1", "--b", "fp4_e2m1", "--exhaustive",
                 "--sim", "fast"]) == 0
    out = capsys.readouterr().out
    assert "256 vectors checked, 0 mismatches" in out


@pytest.mark.parametrize("argv,msg", [
    (["cosim", "nope"], "allowed"),
    (["cosim", "int_mul", "--acc", "fp32"], "not used"),
    (["cosim", "fp_mul", "--sim", "slow"], "--sim"),
])
def test_cli_errors(argv, msg, capsys):
    assert main(argv) == 2
    assert msg in capsys.readouterr().err
