"""The one error path of the ``lowbit`` command: bad arguments end with ONE line
``lowbit CMD: error: ...`` naming the argument and what is allowed, exit status 2, before any
work is done and without a traceback; interrupts exit 130; genuine bugs keep their traceback;
``LOWBIT_DEBUG=1`` re-raises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import lowbit.formats.cli as formats_cli
from lowbit.main import main

BIN = Path(sys.executable).parent


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("not a folder")
    (tmp_path / "DIR").mkdir()
    return tmp_path


FP = ["--a", "fp8_e4m3", "--b", "fp8_e4m3"]
CASES = [
    # (argv, substrings of the one error line)
    (["rtl", "mx_dot", "--k", "0"], ["lowbit rtl: error: argument --k:", "integer >= 1", "'0'"]),
    (["rtl", "mx_dot", "--k", "-4"], ["argument --k:", "integer >= 1", "'-4'"]),
    (["rtl", "mx_dot", "--k", "2.5"], ["argument --k:", "integer >= 1", "'2.5'"]),
    (["rtl", "fp_mac", *FP, "--acc", "fp32", "-o", "DIR"],
     ["argument -o/--output: 'DIR' is a folder", "file path"]),
    (["rtl", "fp_mac", *FP, "--acc", "fp32", "-o", "DIR/"], ["argument -o/--output:", "folder"]),
    (["rtl", "fp_mac", *FP, "--acc", "fp32", "-o", "missing/x.v"],
     ["argument -o/--output:", "folder 'missing' does not exist"]),
    (["rtl", "fp_mac", *FP, "--acc", "fp32", "-o", ""], ["argument -o/--output:", "empty"]),
    (["rtl", "fp_mac", *FP, "--acc", "fp32", "--module", "bad name;"],
     ["argument --module: 'bad name;' is not a Verilog identifier", "allowed: a letter or '_'"]),
    (["rtl", "fp_mac", *FP, "--acc", "fp32", "--module", "9lives"], ["not a Verilog identifier"]),
    (["rtl", "fp_mac", *FP, "--acc", "fp32", "--module", "wire"], ["'wire' is a Verilog"]),
    (["rtl", "fp_mac", *FP, "--acc", "fp32", "--module", "logic"], ["reserved word"]),
    (["rtl", "nope"], ["lowbit rtl: error:", "UNIT='nope'; allowed:", "mx_dot"]),
    (["rtl"], ["lowbit rtl: error:", "required: unit"]),
    (["cosim", "fp_mul", *FP, "--n", "0"], ["lowbit cosim: error: argument --n:", ">= 1"]),
    (["cosim", "fp_mul", *FP, "--hdl-n", "0"], ["argument --hdl-n:", ">= 1"]),
    (["cosim", "fp_mul", *FP, "--seed", "-1"], ["argument --seed:", ">= 0"]),
    (["cosim", "fp_mul", *FP, "--hdl", "icarus", "--build-dir", "FILE"],
     ["argument --build-dir: 'FILE' is a file, not a folder"]),
    (["cosim", "fp_mul", *FP, "--build-dir", "FILE/sub"],
     ["argument --build-dir:", "'FILE' is a file, not a folder"]),
    (["cosim", "fp_mul", *FP, "--build-dir", ""], ["argument --build-dir:", "empty"]),
    (["report", "--out", "FILE"], ["lowbit report: error: argument --out: 'FILE' is a file"]),
    (["report", "--formats", ""], ["argument --formats:", "empty"]),
    (["report", "--formats", ","], ["argument --formats:", "empty"]),
    (["report", "--out", ""], ["argument --out:", "empty"]),
    (["report", "--rows", "0"], ["argument --rows:", ">= 1"]),
    (["report", "--node", "-7"], ["argument --node:", "> 0"]),
    (["report", "--node", "nan"], ["argument --node:", "> 0"]),
    (["report", "--target", "gpu"], ["--target", "allowed: gates"]),
    (["report", "--calibrate", "--cal-targets", ""], ["argument --cal-targets:", "empty"]),
    (["search", "--out", "FILE"], ["lowbit search: error: argument --out: 'FILE' is a file"]),
    (["search", "--out", ""], ["argument --out:", "empty"]),
    (["search", "--accum", "fp64x"], ["argument --accum: unknown accumulator 'fp64x'",
                                      "allowed forms: exact"]),
    (["search", "--front-points", "-1"], ["argument --front-points:", ">= 0"]),
    (["search", "--candidates", ""], ["argument --candidates:", "empty"]),
    (["search", "--quantizer", "awq"], ["argument --quantizer: bad quantizer 'awq'"]),
    (["search", "--array", "0x4"], ["--array", "positive integers"]),
    (["sweep", "--out", ""], ["lowbit sweep: error: argument --out:", "empty"]),
    (["sweep", "--out", "FILE"], ["argument --out: 'FILE' is a file"]),
    (["sweep", "--formats", ""], ["argument --formats:", "empty"]),
    (["sweep", "--workers", "0"], ["argument --workers:", ">= 1"]),
    (["sweep", "--accum", " "], ["argument --accum:", "empty"]),
    (["formats", "show", "fp9_x"], ["lowbit formats: error:", "unknown format 'fp9_x'"]),
    (["nosuch"], ["lowbit: error:", "invalid choice: 'nosuch'"]),
]


@pytest.mark.parametrize("argv, needles", CASES, ids=[" ".join(c[0]) or "-" for c in CASES])
def test_bad_arguments_one_line_exit_2(files, capsys, argv, needles):
    before = sorted(p.name for p in files.rglob("*"))
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (rc, err)
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)
    assert sorted(p.name for p in files.rglob("*")) == before  # nothing was written
    assert "sensitivity" not in out + err  # search: checked before any computation


def test_real_command_line_prints_one_line(files):
    """The installed ``lowbit`` program (not just main()): one stderr line, exit 2."""
    r = subprocess.run([str(BIN / "lowbit"), "cosim", "mx_dot", "--k", "0"], capture_output=True,
                       text=True, timeout=300, cwd=files)
    assert r.returncode == 2 and r.stdout == "", r
    assert r.stderr == "lowbit cosim: error: argument --k: expected an integer >= 1, got '0'\n"


def test_valid_paths_still_work(files):
    assert main(["rtl", "int_mul", "--a", "int4", "--b", "int4", "-o", "DIR/m.v",
                 "--module", "mul_4x4"]) == 0
    assert "module mul_4x4(" in (files / "DIR" / "m.v").read_text()


def _boom_from_numpy(args):
    import numpy as np

    np.zeros(2).reshape(3)  # a library ValueError: stands for a bug lowbit did not check


def test_genuine_bug_keeps_its_traceback(monkeypatch):
    monkeypatch.setattr(formats_cli, "cmd_formats", _boom_from_numpy)
    with pytest.raises(ValueError, match="cannot reshape"):
        main(["formats"])


def _named(args):
    from lowbit.formats import get_format

    get_format("fp9_x")  # raises inside lowbit: a checked, named error


def test_named_error_one_line_and_debug_reraises(monkeypatch, capsys):
    monkeypatch.setattr(formats_cli, "cmd_formats", _named)
    monkeypatch.delenv("LOWBIT_DEBUG", raising=False)
    assert main(["formats"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lowbit formats: error: unknown format 'fp9_x'") and err.count("\n") == 1
    monkeypatch.setenv("LOWBIT_DEBUG", "1")
    with pytest.raises(ValueError, match="fp9_x"):
        main(["formats"])


class NamedFailure(RuntimeError):
    pass


NamedFailure.__module__ = "lowbit.sim.sweep.runner"  # stands for a class lowbit defines


@pytest.mark.parametrize("exc, code, line", [
    (KeyboardInterrupt(), 130, "lowbit formats: interrupted: stopped\n"),
    (KeyboardInterrupt("3 of 9 points stored"), 130,
     "lowbit formats: interrupted: 3 of 9 points stored\n"),
    (IsADirectoryError(21, "Is a directory", "out.v"), 2,
     "lowbit formats: error: Is a directory: 'out.v'\n"),
    (NamedFailure("no Dask workers for 300 s"), 1,
     "lowbit formats: error: no Dask workers for 300 s\n"),
])
def test_interrupt_oserror_and_named_runtime_errors(monkeypatch, capsys, exc, code, line):
    def raise_it(args):
        raise exc

    monkeypatch.setattr(formats_cli, "cmd_formats", raise_it)
    monkeypatch.delenv("LOWBIT_DEBUG", raising=False)
    assert main(["formats"]) == code
    assert capsys.readouterr().err == line


def test_foreign_runtime_error_is_not_hidden(monkeypatch):
    def raise_it(args):
        raise RuntimeError("numba internal failure")

    monkeypatch.setattr(formats_cli, "cmd_formats", raise_it)
    with pytest.raises(RuntimeError):
        main(["formats"])


def test_help_and_version_return_0(capsys):
    assert main(["--version"]) == 0 and "lowbit" in capsys.readouterr().out
    assert main(["rtl", "--help"]) == 0 and "--module" in capsys.readouterr().out
    assert main([]) == 2
