"""Where sweep points run: this process, spawned local processes, or a Dask cluster.

Every back-end has the same small interface, used by :func:`lowbit.sim.sweep.runner.run_sweep`:

* ``capacity()`` - how many points it can run at once now (0: none, e.g. no Dask worker);
* ``submit(key, point_dict)`` - start one point (``evaluate_point`` on it);
* ``wait(timeout_s)`` - ``[(key, outcome), ...]`` of the points that finished (may be empty);
* ``running()`` - keys submitted and not yet returned by ``wait``;
* ``abort()`` - stop now: kill workers / cancel tasks, nothing more is returned;
* ``close()`` - normal shutdown.

Local worker processes never outlive the sweep: each one exits when its parent process is
gone - ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` on Linux (the kernel kills it the moment the parent
dies, whatever it is computing) and, on every OS, a watchdog thread that exits when
``os.getppid()`` changes.  Workers ignore SIGINT (Ctrl-C in a terminal reaches the whole process
group): the parent decides, stores what finished and kills them (:meth:`Processes.abort`).
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait

import cloudpickle

from lowbit.sim.workloads import register_workload

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCHDOG_PERIOD_S = 0.5
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


class NoWorkersError(RuntimeError):
    """The Dask scheduler had no worker for longer than the configured timeout."""


class SchedulerLostError(RuntimeError):
    """The connection to the Dask scheduler was lost while points were running."""


# ------------------------------------------------------------------------------ in-process


class Serial:
    """Points run one at a time in this process, inside ``wait``."""

    def __init__(self, evaluate):
        self._evaluate, self._queue = evaluate, []

    def capacity(self) -> int:
        return 1

    def submit(self, key, point):
        self._queue.append((key, point))

    def running(self) -> list:
        return [k for k, _ in self._queue]

    def wait(self, timeout_s):
        if not self._queue:
            return []
        key, point = self._queue[0]
        out = self._evaluate(point)
        self._queue.pop(0)
        return [(key, out)]

    def abort(self):
        self._queue.clear()

    def close(self):
        pass


# ------------------------------------------------------------------------------ local processes


def _die_with_parent(parent_pid: int) -> None:
    """Worker-side: exit when the parent process is gone (see the module docstring)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(WATCHDOG_PERIOD_S)
        os._exit(1)

    threading.Thread(target=watch, name="lowbit-parent-watchdog", daemon=True).start()


def _init_worker(parent_pid: int, payload: bytes | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)
    if payload:
        for name, fac in cloudpickle.loads(payload).items():
            register_workload(name, fac, overwrite=True)


class Processes:
    """``workers`` spawned processes (not forked: numba's OpenMP layer aborts in a forked
    child), one BLAS / numba thread each; ``payload``: cloudpickled custom workloads."""

    def __init__(self, evaluate, workers: int, payload: bytes | None):
        self._workers, self._futs = workers, {}
        saved = {k: os.environ.get(k) for k in _THREAD_VARS}
        os.environ.update(dict.fromkeys(_THREAD_VARS, "1"))  # inherited by the spawned workers
        self._saved = saved
        self._before = set(multiprocessing.active_children())
        self._ex = ProcessPoolExecutor(max_workers=workers,
                                       mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_init_worker,
                                       initargs=(os.getpid(), payload))
        self._evaluate = evaluate

    def capacity(self) -> int:
        return self._workers

    def submit(self, key, point):
        self._futs[self._ex.submit(self._evaluate, point)] = key

    def running(self) -> list:
        return list(self._futs.values())

    def wait(self, timeout_s):
        if not self._futs:
            return []
        done, _ = futures_wait(list(self._futs), timeout=timeout_s, return_when=FIRST_COMPLETED)
        out = []
        for f in done:
            key = self._futs.pop(f)
            try:
                res = f.result()
            except Exception as exc:  # the worker died (killed, out of memory)
                res = {"status": "error", "error": f"worker process died: {type(exc).__name__}: "
                                                   f"{exc}"}
            out.append((key, res))
        return out

    def workers(self) -> list:
        """This pool's worker processes (children started since the pool was made)."""
        return [p for p in multiprocessing.active_children() if p not in self._before]

    def abort(self):
        """Kill the workers now (running points are dropped), then shut the pool down."""
        procs = self.workers()
        for p in procs:
            p.kill()
        for p in procs:
            p.join(timeout=5)
        self._ex.shutdown(wait=False, cancel_futures=True)
        self._futs.clear()
        self._restore_env()

    def close(self):
        self._ex.shutdown(wait=True)
        self._restore_env()

    def _restore_env(self):
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ------------------------------------------------------------------------------ Dask


class Dask:
    """Points as tasks on a ``distributed`` scheduler; results come back to this process.

    No worker for longer than ``worker_timeout_s`` (from the start, or after the last one
    left) -> :class:`NoWorkersError`; a lost scheduler connection -> :class:`SchedulerLostError`
    (raised by ``wait``; the caller stores the running points as failed).
    """

    def __init__(self, evaluate, address: str, worker_timeout_s: float, connect_timeout_s=10):
        from distributed import Client

        self._evaluate, self.address = evaluate, address
        self._timeout = float(worker_timeout_s)
        # distributed's own log lines ("event loop was unresponsive", the client's reconnect
        # attempts and its tracebacks when it gives up) would bury the sweep's one-line outcome
        # (a lost scheduler is SchedulerLostError, a failed task the point's error); quiet
        # while this client lives, all of them with LOWBIT_DEBUG=1
        self._quiet = os.environ.get("LOWBIT_DEBUG", "") in ("", "0")
        self._levels = {}
        if self._quiet:
            for name, level in (("distributed", logging.ERROR),
                                ("distributed.client", logging.CRITICAL + 1)):
                log = logging.getLogger(name)
                self._levels[name] = log.level
                log.setLevel(level)
        try:
            self.client = Client(address, timeout=f"{connect_timeout_s}s")
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"--scheduler: cannot connect to {address!r} ({exc})") from exc
        self._futs = {}
        self._lost_error = None
        self._idle_since = None
        self._threads = 0
        self.capacity()

    def capacity(self) -> int:
        """Total worker threads (+1, to keep them busy); 0 while there is no worker."""
        if self._lost_error is not None:
            raise self._lost_error
        try:
            threads = sum(self.client.nthreads().values())
        except Exception as exc:  # noqa: BLE001 - a comm error here means the scheduler is gone
            raise self._lost(exc) from exc
        now = time.monotonic()
        if threads:
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = now
        elif now - self._idle_since > self._timeout:
            raise NoWorkersError(
                f"Dask scheduler {self.address} has had no worker for {self._timeout:g} s "
                "(--worker-timeout); start workers (dask worker ADDRESS) and rerun: finished "
                "points are kept")
        self._threads = threads
        return threads + 1 if threads else 0

    def submit(self, key, point):
        self._futs[self.client.submit(self._evaluate, point, pure=False)] = key

    def running(self) -> list:
        return list(self._futs.values())

    def _lost(self, exc=None) -> SchedulerLostError:
        """The one error for a lost scheduler (short: distributed's own texts list every
        future); later calls raise the same."""
        if self._lost_error is None:
            why = "" if exc is None or "cancel" in type(exc).__name__.lower() \
                else f" ({type(exc).__name__})"
            self._lost_error = SchedulerLostError(
                f"lost the Dask scheduler {self.address}{why}")
        return self._lost_error

    def wait(self, timeout_s):
        """Outcomes of finished tasks; a lost scheduler is raised on the call AFTER the one
        that returned the tasks finished before the loss (so those are stored as results)."""
        from distributed import wait as dask_wait

        if self._lost_error is not None:
            raise self._lost_error
        if not self._futs:
            return []
        try:
            dask_wait(list(self._futs), timeout=timeout_s, return_when="FIRST_COMPLETED")
        except TimeoutError:
            pass
        except Exception as exc:  # noqa: BLE001 - comm errors: the scheduler is gone
            raise self._lost(exc) from exc
        out = []
        for f in [f for f in self._futs if f.done()]:
            if f.status == "cancelled":  # only a lost scheduler cancels our futures
                self._lost()
                continue
            key = self._futs.pop(f)
            try:
                res = f.result()
            except Exception as exc:  # noqa: BLE001 - the task failed on the worker side
                res = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
            out.append((key, res))
        if self.client.status in ("closing", "closed"):
            self._lost()
        if self._lost_error is not None and not out:
            raise self._lost_error
        return out

    def abort(self):
        try:
            if self._futs and self.client.status == "running":
                self.client.cancel(list(self._futs))
        finally:
            self._futs.clear()
            self.close()

    def close(self):
        """Close the client and give distributed's loggers their levels back."""
        try:
            self.client.close(timeout=5)
        except Exception:  # noqa: BLE001 - closing a client whose scheduler is gone
            pass
        finally:
            for name, level in self._levels.items():
                logging.getLogger(name).setLevel(level)


__all__ = ["Dask", "NoWorkersError", "Processes", "SchedulerLostError", "Serial"]
