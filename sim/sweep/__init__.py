"""The format sweep: evaluate a workload over formats x accumulators x quantizers.

    from lowbit.sim.sweep import sweep
    summary = sweep("digits-cnn", formats=["fp32", "mxfp4"], accums=["fp32"], out="results/s")

Every finished point is committed to ``OUT/results.sqlite`` as it completes; re-running the same
sweep resumes: successful points are never recomputed; points stored with an error are retried
(``retry_failed=False`` / ``--keep-failed`` keeps them). ``scheduler="tcp://host:port"`` runs the
points on a Dask cluster; ``workers=N`` on N local processes; ``workers=1`` in-process.
"""

from __future__ import annotations

import os
from pathlib import Path

from .points import (
    DEFAULT_ACCUMS,
    DEFAULT_FORMATS,
    DEFAULT_QUANTIZERS,
    SWEEP_VERSION,
    SweepPoint,
    build_points,
)
from .report import write_outputs
from .runner import evaluate_point, run_sweep
from .store import ResultStore

DEFAULT_OUT = "results/sweep"


def prepare_out_dir(out) -> Path:
    """Create ``out`` and check it is a writable folder (ValueError naming it otherwise)."""
    p = Path(out)
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe = p / ".lowbit-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"--out {str(out)!r} is not a writable folder ({exc.strerror or exc})") from exc
    return p


def sweep(workload: str = "digits-cnn", formats=None, accums=None, quantizers=None,
          out=DEFAULT_OUT, scheduler: str | None = None, workers: int | None = None,
          progress: bool = True, plots: bool = True, retry_failed: bool = True) -> dict:
    """Run (or resume) a sweep and write its outputs; returns
    ``{"stats", "rows", "paths", "points"}``. ValueError for bad arguments."""
    points = build_points(workload, formats, accums, quantizers)
    out_dir = prepare_out_dir(out)
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    from lowbit.sim.workloads import get_workload

    wl = get_workload(workload)
    wl.reference()  # float reference (also needed by the report)
    with ResultStore(out_dir / "results.sqlite") as store:
        stats = run_sweep(points, store, workers=workers, scheduler=scheduler,
                          progress=progress, retry_failed=retry_failed)
        rows = store.rows([p.key for p in points])
    paths = write_outputs(out_dir, rows, wl, stats, plots=plots)
    return {"stats": stats, "rows": rows, "paths": paths, "points": points}


__all__ = [
    "DEFAULT_ACCUMS", "DEFAULT_FORMATS", "DEFAULT_OUT", "DEFAULT_QUANTIZERS", "SWEEP_VERSION",
    "ResultStore", "SweepPoint", "build_points", "evaluate_point", "prepare_out_dir",
    "run_sweep", "sweep", "write_outputs",
]
