"""The format sweep: evaluate a workload over formats x accumulators x quantizers.

    from lowbit.sim.sweep import sweep
    summary = sweep("digits-cnn", formats=["fp32", "mxfp4"], accums=["fp32"], out="results/s")

Each workload's results go to ``OUT/<workload>/`` (a store holds one workload; ``OUT/report.md``
indexes them). Every finished point is committed to ``OUT/<workload>/results.sqlite`` as it
completes; re-running the same
sweep resumes: successful points are never recomputed; points stored with an error are retried
(``retry_failed=False`` / ``--keep-failed`` keeps them). Several sweeps on one ``out`` share the
points (claims in the store, see :mod:`lowbit.sim.sweep.store`; ``lease_s``: how long a silent
claim holds); ``worker_timeout_s``: how long a Dask scheduler may have no worker. ``scheduler="tcp://host:port"`` runs the
points on a Dask cluster; ``workers=N`` on N local processes; ``workers=1`` in-process.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lowbit.sim.workloads import get_workload

from .points import (
    DEFAULT_ACCUMS,
    DEFAULT_FORMATS,
    DEFAULT_QUANTIZERS,
    DEFAULT_WORKLOADS,
    SWEEP_VERSION,
    SweepPoint,
    build_points,
    split_list,
)
from .report import write_outputs
from .runner import DEFAULT_WORKER_TIMEOUT_S, evaluate_point, run_sweep
from .store import DEFAULT_LEASE_S, ResultStore

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


def workload_dir(out, workload: str, display_name: str | None = None) -> Path:
    """``OUT/<name>/``: where one workload's store and reports live; ``name`` is the workload's
    own name (``display_name``, e.g. a TorchWorkload's) or its registry key, reduced to
    letters, digits, '.', '_' and '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", display_name or workload).strip("_") or "workload"
    return Path(out) / name


def sweep(workload=None, formats=None, accums=None, quantizers=None,
          out=DEFAULT_OUT, scheduler: str | None = None, workers: int | None = None,
          progress: bool = True, plots: bool = True, retry_failed: bool = True,
          multipliers=None, worker_timeout_s: float = DEFAULT_WORKER_TIMEOUT_S,
          lease_s: float = DEFAULT_LEASE_S) -> dict:
    """Run (or resume) a sweep and write its outputs into ``OUT/<workload>/``.

    ``workload``: a name, a comma-separated string or a list (default
    :data:`DEFAULT_WORKLOADS`). Returns ``{"stats", "rows", "paths", "points"}`` for a single
    workload, and ``{"workloads": {name: that dict}, "stats", "paths"}`` (``paths["md"]`` the
    index ``OUT/report.md``) for several. ValueError for bad arguments. ``multipliers``:
    multiplier models crossed with the formats (see :func:`build_points`)."""
    names = split_list(workload) or list(DEFAULT_WORKLOADS)
    plan = {n: build_points(n, formats, accums, quantizers, multipliers=multipliers)
            for n in names}  # validate first
    root = prepare_out_dir(out)
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    res = {}
    for name, points in plan.items():
        wl = get_workload(name)
        out_dir = prepare_out_dir(workload_dir(root, name, getattr(wl, "name", None)))
        wl.reference()  # float reference (also needed by the report)
        with ResultStore(out_dir / "results.sqlite") as store:
            check_store_workload(store, name)
            stats = run_sweep(points, store, workers=workers, scheduler=scheduler,
                              progress=progress, retry_failed=retry_failed,
                              worker_timeout_s=worker_timeout_s, lease_s=lease_s)
            rows = store.rows([p.key for p in points])
        paths = write_outputs(out_dir, rows, wl, stats, plots=plots)
        res[name] = {"stats": stats, "rows": rows, "paths": paths, "points": points}
    if len(res) == 1:
        return next(iter(res.values()))
    total = {k: sum(r["stats"][k] for r in res.values())
             for k in ("total", "skipped", "computed", "failed", "overflow", "by_others",
                       "seconds")}
    return {"workloads": res, "stats": total, "paths": {"md": write_index(root, res)}}


def check_store_workload(store: ResultStore, workload: str) -> None:
    """Refuse a store that already holds points of another workload (ValueError naming it)."""
    other = sorted({r[0] for r in store.conn.execute("SELECT DISTINCT workload FROM points")}
                   - {workload})
    if other:
        raise ValueError(f"--out: {store.path} holds results of workload(s) {other}, not "
                         f"{workload!r}; sweeps of different workloads go to OUT/<workload>/")


def write_index(root: Path, res: dict) -> Path:
    """``OUT/report.md``: each workload's report table, linked."""
    lines = ["# Format sweep", ""]
    for name, r in res.items():
        md = r["paths"]["md"]
        body = md.read_text().split("## Assumptions")[0].split("\n", 1)[1]
        rel = md.relative_to(root)
        lines += [f"## {name} ([full report]({rel}))", body.strip(), ""]
    p = Path(root) / "report.md"
    p.write_text("\n".join(lines) + "\n")
    return p


__all__ = [
    "DEFAULT_ACCUMS", "DEFAULT_FORMATS", "DEFAULT_OUT", "DEFAULT_QUANTIZERS",
    "DEFAULT_WORKLOADS", "SWEEP_VERSION", "ResultStore", "SweepPoint", "build_points",
    "evaluate_point", "prepare_out_dir", "run_sweep", "sweep", "workload_dir", "write_index",
    "write_outputs",
]
