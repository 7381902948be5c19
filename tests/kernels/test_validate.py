"""lowbit.kernels.validate (the ``lowbit kernels validate`` command) and the _scaled_mm study in
benchmarks/study_scaled_mm.py."""
from __future__ import annotations

import argparse
import importlib.util
import os

import numpy as np
import pytest

from lowbit.kernels import cli, validate
from lowbit.sim.gemm import qmatmul

STUDY = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "study_scaled_mm.py")


def _study():
    spec = importlib.util.spec_from_file_location("study_scaled_mm", STUDY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_validate_numba_checks_pass():
    rows = validate.run_checks(validate._NumbaOps(), gemm_size=(17, 16, 40))
    assert rows and all(r["ok"] for r in rows), [r for r in rows if not r["ok"]]
    assert {r["check"] for r in rows} >= {"quantize fp8_e4m3", "quantize mxfp4 rceil",
                                          "quantize nvfp4", "gemm mxfp4", "gemm nvfp4",
                                          "quantize fp6_e2m3", "quantize mxfp6_e3m2 floor"}


def test_validate_detects_a_wrong_kernel():
    """A kernel that is off by one code on one input makes the check fail (the checks can fail)."""
    class Off(validate._NumbaOps):
        def fp8(self, x, f):
            c = super().fp8(x, f).copy()
            c[0] ^= 1
            return c

    rows = validate.run_checks(Off(), gemm_size=(4, 4, 32))
    bad = {r["check"] for r in rows if not r["ok"]}
    assert "quantize fp8_e4m3" in bad and "dequantize fp8_e4m3" not in bad


def test_lane_model_matches_sim_sequential_fp32():
    """lanes1 without K panels is a sequential FP32 FMA chain = lowbit.sim accum 'fp32'."""
    A = _study()
    a, b = A.make_operands(4, 5, 96, seed=1)
    P = a[:, None, :] * b[None, :, :]
    lanes = A._lanes(P, 1, True, None)
    sim = qmatmul(a, b.T, "fp32").astype(np.float32)
    np.testing.assert_array_equal(lanes.view(np.uint32), sim.view(np.uint32))
    # a K panel of the full length changes nothing; exact sums differ from sequential ones
    np.testing.assert_array_equal(A._lanes(P, 1, True, 96), lanes)


def test_scaled_mm_cpu_study_runs():
    pytest.importorskip("torch")
    A = _study()
    a, b = A.make_operands(8, 8, 64, seed=2)
    t = A.scaled_mm(a, b)
    res = A.study(a, b, t)
    top, models = A.best(res)
    assert 0 < top <= 1 and models
    assert set(res) >= {"exact", "fp32", "lanes1_kc128"}


def test_cli_registers_validate():
    ap = argparse.ArgumentParser()
    cli.register(ap.add_subparsers(dest="command"))
    args = ap.parse_args(["kernels", "validate", "--no-interpreter"])
    assert args.func.__name__ == "_validate" and args.no_interpreter
