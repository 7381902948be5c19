"""Run sweep points serially, on local processes, or on a Dask cluster, storing each as it ends.

Execution back-ends (chosen by :func:`run_sweep`):

* ``scheduler="tcp://HOST:PORT"`` — a running ``distributed`` scheduler; points are submitted
  as tasks (``evaluate_point``), results come back to this process and are stored here.
* ``workers > 1`` — ``concurrent.futures.ProcessPoolExecutor`` with spawned workers (fork is
  unsafe once numba's OpenMP threads exist); workloads registered at run time are shipped to
  the workers with cloudpickle.
* ``workers <= 1`` — in this process (deterministic, easiest to debug; used by the tests).

Every back-end calls the same :func:`evaluate_point`, which never raises for an ordinary
exception: the error is returned and recorded with ``status='error'``, and the sweep goes on.
``KeyboardInterrupt`` stops the sweep; finished points are already committed, so re-running
the same command resumes.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import replace

from lowbit.sim.workloads import (
    get_workload,
    is_builtin_workload,
    make_config,
    register_workload,
    registered_workloads,
    workload_factory,
)

from .points import SweepPoint
from .store import ResultStore


def evaluate_point(point: dict) -> dict:
    """Evaluate one point (a ``SweepPoint`` as dict) in the current process.

    Returns ``{"status": "ok", "result": {...}, "seconds": s}`` or
    ``{"status": "error", "error": "Type: message", "traceback": str, "seconds": s}``.
    """
    t0 = time.perf_counter()
    try:
        p = SweepPoint(**point)
        wl = get_workload(p.workload)
        cfg = replace(make_config(p.weight_format, p.act_format, p.accum),
                      multiplier=p.multiplier)
        res = dict(wl.evaluate(cfg, quantizer=p.quantizer))
        res["bits_per_element"] = _bits_per_element(cfg.weight)
        res["act_bits_per_element"] = _bits_per_element(cfg.act)
        return {"status": "ok", "result": res, "seconds": time.perf_counter() - t0}
    except Exception as exc:  # noqa: BLE001 - a failing point is data, not a crash
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(), "seconds": time.perf_counter() - t0}


def _bits_per_element(fmt) -> float:
    """Storage bits per element incl. amortised block scales; 32.0 for unquantised (fp32)."""
    return 32.0 if fmt is None else float(fmt.bits_per_element)


def _record(store: ResultStore, point: SweepPoint, out: dict) -> None:
    if out.get("status") == "ok":
        store.put(point, "ok", out["result"], seconds=out.get("seconds", 0.0))
    else:
        store.put(point, "error", None, error=out.get("error", "unknown error"),
                  seconds=out.get("seconds", 0.0))


def pending_points(points, store: ResultStore, retry_failed: bool = False):
    done = store.finished(include_errors=not retry_failed)
    return [p for p in points if p.key not in done]


def run_sweep(points: list[SweepPoint], store: ResultStore, workers: int = 1,
              scheduler: str | None = None, progress: bool = True,
              retry_failed: bool = False) -> dict:
    """Evaluate the points not yet in ``store``; returns counts
    ``{"total", "skipped", "computed", "failed", "seconds"}``."""
    todo = pending_points(points, store, retry_failed)
    stats = {"total": len(points), "skipped": len(points) - len(todo), "computed": 0,
             "failed": 0, "seconds": 0.0}
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(points), initial=stats["skipped"], desc="sweep", unit="pt")

    def done(point, out):
        _record(store, point, out)
        stats["computed"] += 1
        stats["failed"] += out.get("status") != "ok"
        if bar is not None:
            bar.set_postfix_str(f"{point.format}/{point.accum}", refresh=False)
            bar.update(1)

    try:
        if not todo:
            pass
        elif scheduler:
            _run_dask(todo, scheduler, done)
        elif workers > 1 and len(todo) > 1:
            _run_processes(todo, workers, done)
        else:
            for p in todo:
                done(p, evaluate_point(p.to_dict()))
    finally:
        if bar is not None:
            bar.close()
        stats["seconds"] = time.perf_counter() - t0
    return stats


def _custom_workloads_payload(names) -> bytes | None:
    """cloudpickle of the factories of user-registered workloads (by value, so a class defined
    in a script or test module is usable in a spawned worker)."""
    registered = set(registered_workloads())
    facs = {n: workload_factory(n) for n in names
            if n in registered and not is_builtin_workload(n)}
    if not facs:
        return None
    import cloudpickle

    for f in facs.values():
        mod = sys.modules.get(getattr(f, "__module__", "") or "")
        if mod is not None and not mod.__name__.startswith("lowbit."):
            try:
                cloudpickle.register_pickle_by_value(mod)
            except (ValueError, TypeError):
                pass
    return cloudpickle.dumps(facs)


def _init_worker(payload: bytes | None) -> None:
    if payload:
        import cloudpickle

        for name, fac in cloudpickle.loads(payload).items():
            register_workload(name, fac, overwrite=True)


def _run_processes(todo, workers, done):
    """Spawned worker processes (not fork: numba's OpenMP layer aborts in a forked child), one
    BLAS / numba thread each so ``workers`` processes use ``workers`` cores."""
    payload = _custom_workloads_payload({p.workload for p in todo})
    ctx = multiprocessing.get_context("spawn")
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update(dict.fromkeys(_THREAD_VARS, "1"))
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(payload,)) as ex:
            futs = {ex.submit(evaluate_point, p.to_dict()): p for p in todo}
            try:
                pending = set(futs)
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in finished:
                        try:
                            out = f.result()
                        except Exception as exc:  # worker died (killed, out of memory)
                            out = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
                        done(futs[f], out)
            except BaseException:  # Ctrl-C: drop queued points, do not wait for running ones
                ex.shutdown(wait=False, cancel_futures=True)
                raise
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def _run_dask(todo, scheduler, done):
    try:
        from distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - dask[distributed] is a dependency
        raise ValueError(f"--scheduler needs dask.distributed ({exc})") from exc
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"--scheduler: cannot connect to {scheduler!r} ({exc})") from exc
    try:
        futs = {}
        for p in todo:
            f = client.submit(evaluate_point, p.to_dict(), pure=False)
            futs[f] = p
        for f in as_completed(list(futs)):
            try:
                out = f.result()
            except Exception as exc:  # task lost / worker died
                out = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
            done(futs[f], out)
    finally:
        client.close()
