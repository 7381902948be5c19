"""Run sweep points and store each as it ends; nothing finished is lost, nothing is computed twice.

:func:`run_sweep` is one loop over a back-end of :mod:`lowbit.sim.sweep.backends` (this process,
``workers`` spawned processes, or the Dask scheduler ``scheduler``):

1. claim as many unfinished points as the back-end can run now (:meth:`ResultStore.claim`:
   points finished, or claimed by another live sweep on the same store, are left alone);
2. submit them; store each outcome as it arrives (the claim is replaced by the row);
3. when nothing is left to claim but other sweeps still hold claims, wait for them (their
   results count as reused); a claim whose owner died is taken over (stale-owner rule in
   :mod:`lowbit.sim.sweep.store`).

A heartbeat thread refreshes this sweep's claims every ``lease_s / 3`` seconds.

Outcomes: :func:`evaluate_point` never raises for an ordinary exception (``status="error"``,
the sweep goes on); a point whose layer or model outputs hold Inf/NaN is stored with
``status="overflow"`` (result kept, ``error`` names the layers).

Stopping: Ctrl-C (``KeyboardInterrupt``) kills the workers / cancels the Dask tasks, releases
this sweep's claims and raises :class:`SweepInterrupted` ("N of M points stored ..."): every
finished point is already committed, so re-running the same command resumes.  Dask: no worker
for ``worker_timeout_s`` -> :class:`NoWorkersError`; a lost scheduler -> the running points are
stored as failed (retried by the next run) and :class:`SchedulerLostError` is raised once.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from dataclasses import replace

import cloudpickle
import numpy as np

from lowbit.sim.workloads import (
    get_workload,
    is_builtin_workload,
    make_config,
    registered_workloads,
    workload_factory,
)

from .backends import Dask, NoWorkersError, Processes, SchedulerLostError, Serial
from .points import SweepPoint
from .store import DEFAULT_LEASE_S, ClaimOwner, ResultStore, StoreReadOnlyError

DEFAULT_WORKER_TIMEOUT_S = 300.0
POLL_S = 0.5  # longest wait for an outcome before looking at the store again
IDLE_S = 0.02


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep; ``str()`` says how many points are stored and where."""


def nonfinite_layers(result: dict) -> dict:
    """``{layer or "output": count}`` of non-finite values a workload reported in ``result``
    (``result["nonfinite"]``); without that field, layers whose output SQNR is NaN (the SQNR of
    an output with Inf/NaN)."""
    if isinstance(result.get("nonfinite"), dict):
        return {k: int(v) for k, v in result["nonfinite"].items() if v}
    sq = result.get("per_layer_sqnr") or {}
    return {k: -1 for k, v in sq.items() if isinstance(v, float) and np.isnan(v)}


def evaluate_point(point: dict) -> dict:
    """Evaluate one point (a ``SweepPoint`` as dict) in the current process.

    Returns ``{"status": "ok" | "overflow", "result": {...}, "seconds": s}`` (``"error"`` names
    the layers with Inf/NaN for an overflow) or ``{"status": "error", "error": "Type: message",
    "traceback": str, "seconds": s}``.
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
        out = {"status": "ok", "result": res, "seconds": time.perf_counter() - t0}
        bad = nonfinite_layers(res)
        if bad:
            out["status"] = "overflow"
            out["error"] = "Inf/NaN in the outputs of " + ", ".join(
                k if n < 0 else f"{k} ({n} values)" for k, n in bad.items())
        return out
    except Exception as exc:  # noqa: BLE001 - a failing point is data, not a crash
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(), "seconds": time.perf_counter() - t0}


def _bits_per_element(fmt) -> float:
    """Storage bits per element incl. amortised block scales; 32.0 for unquantised (fp32)."""
    return 32.0 if fmt is None else float(fmt.bits_per_element)


def _record(store: ResultStore, point: SweepPoint, out: dict) -> str:
    status = out.get("status")
    if status in ("ok", "overflow"):
        store.put(point, status, out["result"], error=out.get("error"),
                  seconds=out.get("seconds", 0.0))
    else:
        status = "error"
        store.put(point, "error", None, error=out.get("error", "unknown error"),
                  seconds=out.get("seconds", 0.0))
    return status


def pending_points(points, store: ResultStore, retry_failed: bool = False):
    done = store.finished(include_errors=not retry_failed)
    return [p for p in points if p.key not in done]


class _Heartbeat:
    """Refresh ``owner``'s claims every ``period_s`` on a connection of its own."""

    def __init__(self, path, owner: ClaimOwner, period_s: float):
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, args=(path, owner, period_s),
                                   name="lowbit-sweep-heartbeat", daemon=True)
        self._t.start()

    def _run(self, path, owner, period_s):
        try:
            st = ResultStore(path)
        except ValueError:  # the main connection reports the store's problems
            return
        with st:
            while not self._stop.wait(period_s):
                try:
                    st.heartbeat(owner)
                except ValueError:  # store busy: the next beat retries
                    pass

    def stop(self):
        self._stop.set()
        self._t.join(timeout=10)


def _backend(points, workers, scheduler, worker_timeout_s):
    if scheduler:
        return Dask(evaluate_point, scheduler, worker_timeout_s)
    if workers > 1 and len(points) > 1:
        return Processes(evaluate_point, workers, _workloads_payload(
            {p.workload for p in points}))
    return Serial(evaluate_point)


def run_sweep(points: list[SweepPoint], store: ResultStore, workers: int = 1,
              scheduler: str | None = None, progress: bool = True,
              retry_failed: bool = False, lease_s: float = DEFAULT_LEASE_S,
              worker_timeout_s: float = DEFAULT_WORKER_TIMEOUT_S, poll_s: float = POLL_S) -> dict:
    """Evaluate the points not yet in ``store`` (see the module docstring); returns counts
    ``{"total", "skipped", "computed", "failed", "overflow", "by_others", "seconds"}``
    (``skipped``: finished before this run; ``by_others``: finished meanwhile by another sweep
    on the same store; ``failed``: stored with an error by this run)."""
    t_start = time.time()
    retry_before = t_start if retry_failed else None
    by_key = {p.key: p for p in points}
    done0 = store.finished(retry_errors_before=retry_before)
    todo = [k for k in by_key if k not in done0]
    stats = {"total": len(points), "skipped": len(points) - len(todo), "computed": 0,
             "failed": 0, "overflow": 0, "by_others": 0, "seconds": 0.0}
    t0 = time.perf_counter()
    if not todo:
        return stats
    if store.readonly:
        raise StoreReadOnlyError(f"results store {store.path} is opened read-only; "
                                 f"{len(todo)} point(s) are not computed")
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(points), initial=stats["skipped"], desc="sweep", unit="pt")
    owner = ClaimOwner.new()
    beat = _Heartbeat(store.path, owner, max(lease_s / 3.0, 0.05))
    backend = None
    remaining = list(todo)  # not finished by anyone (as far as this run knows)

    def finished_here(key, out):
        status = _record(store, by_key[key], out)
        stats["computed"] += 1
        stats["failed"] += status == "error"
        stats["overflow"] += status == "overflow"
        remaining.remove(key)
        if bar is not None:
            p = by_key[key]
            bar.set_postfix_str(f"{p.format}/{p.accum}", refresh=False)
            bar.update(1)

    try:
        backend = _backend([by_key[k] for k in todo], workers, scheduler, worker_timeout_s)
        while remaining:
            running = set(backend.running())
            free = backend.capacity() - len(running)
            if free > 0:
                cands = [k for k in remaining if k not in running]
                for k in store.claim(cands, owner, free, lease_s, retry_before):
                    backend.submit(k, by_key[k].to_dict())
            if backend.running():
                for key, out in backend.wait(poll_s):
                    finished_here(key, out)
                continue
            # nothing of ours is running: the rest is finished or held by other live sweeps
            fin = store.finished(retry_errors_before=retry_before)
            for k in [k for k in remaining if k in fin]:
                remaining.remove(k)
                stats["by_others"] += 1
                if bar is not None:
                    bar.update(1)
            if remaining:
                claimable = (not store.claimed_by_others(remaining, owner, lease_s)
                             and backend.capacity() > 0)
                # claimable now (a stale or released claim): claim on the next turn; else wait
                time.sleep(IDLE_S if claimable else poll_s)
        backend.close()
    except KeyboardInterrupt:
        if backend is not None:
            backend.abort()
        stored = stats["skipped"] + stats["computed"] + stats["by_others"]
        raise SweepInterrupted(
            f"{stored} of {len(points)} points stored in {store.path}; rerun the same command "
            "to resume") from None
    except SchedulerLostError as exc:
        lost = list(backend.running()) if backend is not None else []
        kept = stats["skipped"] + stats["computed"] + stats["by_others"]
        for k in lost:
            _record(store, by_key[k], {"status": "error", "error": f"SchedulerLostError: {exc}"})
            stats["failed"] += 1
        if backend is not None:
            backend.abort()
        raise SchedulerLostError(
            f"{exc}; {len(lost)} running point(s) stored as failed (a rerun retries them), "
            f"{kept} finished point(s) kept in {store.path}") from None
    except BaseException:
        if backend is not None:
            backend.abort()
        raise
    finally:
        beat.stop()
        try:
            store.release(owner)
        except ValueError:
            pass
        if bar is not None:
            bar.close()
        stats["seconds"] = time.perf_counter() - t0
    return stats


def _workloads_payload(names) -> bytes | None:
    """cloudpickle of the factories of user-registered workloads (by value, so a class defined
    in a script or test module is usable in a spawned worker); None if all are built in."""
    registered = set(registered_workloads())
    facs = {n: workload_factory(n) for n in names
            if n in registered and not is_builtin_workload(n)}
    if not facs:
        return None
    for f in facs.values():
        mod = sys.modules.get(getattr(f, "__module__", "") or "")
        if mod is not None and not mod.__name__.startswith("lowbit."):
            try:
                cloudpickle.register_pickle_by_value(mod)
            except (ValueError, TypeError):
                pass
    return cloudpickle.dumps(facs)


__all__ = ["DEFAULT_WORKER_TIMEOUT_S", "NoWorkersError", "SchedulerLostError", "SweepInterrupted",
           "evaluate_point", "nonfinite_layers", "pending_points", "run_sweep"]
