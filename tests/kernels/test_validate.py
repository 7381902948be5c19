"""lowbit.kernels.validate and accum_study: the CLI entry runs and its models are consistent."""
from __future__ import annotations

import numpy as np
import pytest


def test_validate_numba_checks_pass():
    from lowbit.kernels import validate
    rows = validate.run_checks(validate._NumbaOps(), gemm_size=(17, 16, 40))
    assert rows and all(r["ok"] for r in rows), [r for r in rows if not r["ok"]]
    assert {r["check"] for r in rows} >= {"quantize fp8_e4m3", "quantize mxfp4 rceil",
                                          "quantize nvfp4", "gemm mxfp4", "gemm nvfp4"}


def test_lane_model_matches_sim_sequential_fp32():
    """lanes1 without K panels is a sequential FP32 FMA chain = lowbit.sim accum 'fp32'."""
    from lowbit.kernels import accum_study as A
    from lowbit.sim.gemm import qmatmul
    a, b = A.make_operands(4, 5, 96, seed=1)
    P = a[:, None, :] * b[None, :, :]
    lanes = A._lanes(P, 1, True, None)
    sim = qmatmul(a, b.T, "fp32").astype(np.float32)
    np.testing.assert_array_equal(lanes.view(np.uint32), sim.view(np.uint32))
    # a K panel of the full length changes nothing; exact sums differ from sequential ones
    np.testing.assert_array_equal(A._lanes(P, 1, True, 96), lanes)


def test_scaled_mm_cpu_study_runs():
    pytest.importorskip("torch")
    from lowbit.kernels import accum_study as A
    a, b = A.make_operands(8, 8, 64, seed=2)
    t = A.scaled_mm(a, b)
    res = A.study(a, b, t)
    top, models = A.best(res)
    assert 0 < top <= 1 and models
    assert set(res) >= {"exact", "fp32", "lanes1_kc128"}


def test_cli_registers_validate():
    import argparse

    from lowbit.kernels import cli
    ap = argparse.ArgumentParser()
    cli.register(ap.add_subparsers(dest="command"))
    args = ap.parse_args(["kernels", "validate", "--no-study", "--no-interpreter"])
    assert args.func.__name__ == "_validate" and args.no_study and args.no_interpreter
