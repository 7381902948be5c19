"""Sweeps that lose nothing, tested with real processes, signals and a real Dask scheduler:

* Ctrl-C (SIGINT to the process group, as a terminal sends it) stores the finished points,
  stops the running ones at once, prints one line, exits 130; the rerun computes only the rest;
* ``kill -9`` of ``lowbit sweep`` takes its worker processes with it, and the rerun takes over
  the dead sweep's claims at once;
* two sweeps on one ``--out`` compute every point exactly once between them;
* a 0-byte store is an error, a corrupt row is skipped (warning) and recomputed, a read-only
  store is a named error before anything is computed;
* Dask: no worker for ``worker_timeout_s`` -> NoWorkersError; a killed scheduler -> the running
  points stored as failed and one message;
* Inf/NaN outputs (NVFP4 x NVFP4 with an FP16 accumulator on digits-cnn) -> status "overflow",
  flagged in the report.

The workload is ``sweep_slow_workload.py`` (sleeps and logs per evaluation, see its docstring).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lowbit.main import main
from lowbit.sim.sweep import ResultStore, build_points, run_sweep, sweep
from lowbit.sim.sweep.backends import NoWorkersError
from lowbit.sim.sweep.runner import DEFAULT_WORKER_TIMEOUT_S, SweepInterrupted, evaluate_point
from lowbit.sim.sweep.store import ClaimOwner, StoreError, StoreReadOnlyError, pid_alive

WL = Path(__file__).with_name("sweep_slow_workload.py")
SPEC = f"{WL}:make"
# this interpreter, not the console scripts next to it: a script's #! line may name another
# environment's Python (a copied virtualenv), which would test another checkout's lowbit
LOWBIT = [sys.executable, "-m", "lowbit.main"]
DASK = [sys.executable, "-m", "dask"]
FORMATS = ["fp32", "fp8_e4m3", "fp8_e5m2", "mxfp4", "nvfp4", "int8_pc"]


def _env(tmp, sleep="0", **extra):
    env = dict(os.environ, SLOWWL_LOG=str(tmp / "log"), SLOWWL_SLEEP=sleep, **extra)
    env.pop("LOWBIT_DEBUG", None)
    return env


def _cmd(out, formats=FORMATS, *extra):
    return [*LOWBIT, "sweep", "--workload", SPEC, "--formats", ",".join(formats),
            "--accum", "exact", "--out", str(out), "--no-progress", "--no-plots", *extra]


def _log(tmp) -> list[tuple[int, str, str]]:
    p = tmp / "log"
    if not p.exists():
        return []
    return [(int(a), f, ev) for a, f, _, ev in (ln.split() for ln in p.read_text().splitlines())]


def _db(out) -> Path:
    return out / "slow-mlp" / "results.sqlite"


def _statuses(out) -> dict:
    if not _db(out).exists():
        return {}
    con = sqlite3.connect(f"file:{_db(out)}?mode=ro", uri=True)
    try:
        return dict(con.execute("SELECT format, status FROM points"))
    except sqlite3.OperationalError:  # the table is being created
        return {}
    finally:
        con.close()


def _rows_text(out) -> list:
    if not _db(out).exists():
        return []
    con = sqlite3.connect(f"file:{_db(out)}?mode=ro", uri=True)
    try:
        return list(con.execute("SELECT format, status, substr(error, 1, 300) FROM points"))
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def _claims(out) -> int:
    if not _db(out).exists():
        return 0
    con = sqlite3.connect(f"file:{_db(out)}?mode=ro", uri=True)
    try:
        return con.execute("SELECT count(*) FROM claims").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def _no_failed_points(out) -> bool:
    """True, or AssertionError at once naming the points stored with an error (a wait for
    running points would otherwise run into its timeout)."""
    bad = [r for r in _rows_text(out) if r[1] == "error"]
    if bad:
        raise AssertionError(f"points failed: {bad}")
    return True


def _wait(cond, timeout, what, what_now=None):
    t = time.monotonic()
    while not cond():
        if time.monotonic() - t > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}"
                                 + (f": {what_now()}" if what_now else ""))
        time.sleep(0.1)


def _finish(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_ctrl_c_stores_finished_points_exits_130_and_resumes(tmp_path):
    out = tmp_path / "o"
    proc = subprocess.Popen(_cmd(out, FORMATS, "--workers", "2"), start_new_session=True,
                            env=_env(tmp_path, "fp32=0,fp8_e4m3=0,*=120"), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # the two quick points are stored and two 120 s points are running in the workers
    _wait(lambda: len(_statuses(out)) == 2 and
          sum(ev == "start" for _, f, ev in _log(tmp_path) if f not in ("fp32", "fp8_e4m3")) == 2,
          240, "2 stored and 2 running points")
    workers = {pid for pid, _, _ in _log(tmp_path)}
    t = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    rc, _, err = _finish(proc)
    assert time.monotonic() - t < 60  # the 120 s points were not waited for
    assert rc == 130, err
    assert err.strip().splitlines()[-1] == (
        f"lowbit sweep: interrupted: 2 of 6 points stored in {_db(out)}; rerun the same "
        "command to resume") and "Traceback" not in err, err
    assert _statuses(out) == {"fp32": "ok", "fp8_e4m3": "ok"}
    _wait(lambda: not any(pid_alive(p) for p in workers), 30, "the workers to exit")
    # the rerun computes the 4 other points only
    n = len(_log(tmp_path))
    r = subprocess.run(_cmd(out, FORMATS, "--workers", "2"), env=_env(tmp_path), text=True,
                       capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "6 points (4 computed, 2 reused, 0 failed)" in r.stdout
    assert sorted(f for _, f, ev in _log(tmp_path)[n:] if ev == "start") == sorted(FORMATS[2:])
    assert set(_statuses(out).values()) == {"ok"} and len(_statuses(out)) == 6


def test_kill_9_takes_the_workers_along_and_rerun_takes_over_its_claims(tmp_path):
    out = tmp_path / "o"
    proc = subprocess.Popen(_cmd(out, FORMATS, "--workers", "2"), env=_env(tmp_path, "600"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait(lambda: sum(ev == "start" for *_, ev in _log(tmp_path)) == 2, 240,
          "2 points running in worker processes")
    workers = {pid for pid, _, _ in _log(tmp_path)}
    assert proc.pid not in workers and len(workers) == 2
    proc.kill()  # SIGKILL: no cleanup runs in the parent
    proc.wait()
    _wait(lambda: not any(pid_alive(p) for p in workers), 30,
          "the workers of the killed sweep to exit")
    # the dead sweep's claims are taken over at once (same host, process gone), not after the
    # one-hour lease
    t = time.monotonic()
    r = subprocess.run(_cmd(out, FORMATS, "--workers", "2", "--claim-lease", "3600"),
                       env=_env(tmp_path), text=True, capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "6 points (6 computed, 0 reused, 0 failed)" in r.stdout
    assert time.monotonic() - t < 600


def test_two_sweeps_on_one_out_compute_each_point_once(tmp_path):
    out, barrier = tmp_path / "o", tmp_path / "barrier"
    barrier.mkdir()
    env = _env(tmp_path, "0.2", SLOWWL_BARRIER=str(barrier))
    procs = [subprocess.Popen(_cmd(out, FORMATS, "--workers", "1"), env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    # both sweeps hold a claim before either computes anything
    _wait(lambda: len(list(barrier.glob("ready-*"))) == 2, 240, "both sweeps to start")
    (barrier / "go").write_text("")
    results = [_finish(p, 600) for p in procs]
    for rc, _, err in results:
        assert rc == 0, err
    starts = [(pid, f) for pid, f, ev in _log(tmp_path) if ev == "start"]
    why = (starts, [o.splitlines()[0] for _, o, _ in results], _rows_text(out))
    assert sorted(f for _, f in starts) == sorted(FORMATS), why  # every point exactly once
    assert {pid for pid, _ in starts} == {p.pid for p in procs}, why  # and both did some
    computed = [int(o.split(" computed")[0].split("(")[-1]) for _, o, _ in results]
    assert sum(computed) == 6 and min(computed) >= 1, why
    assert any("by other sweeps" in o for _, o, _ in results), why
    assert set(_statuses(out).values()) == {"ok"} and len(_statuses(out)) == 6
    with ResultStore(_db(out)) as st:
        assert st.conn.execute("SELECT count(*) FROM claims").fetchone()[0] == 0


def test_stale_owner_rule(tmp_path):
    """A live claim is respected; one whose heartbeat is older than the lease, or whose process
    on this host is gone, is taken over."""
    pts = build_points(SPEC, FORMATS[:3], ["exact"])
    keys = [p.key for p in pts]
    with ResultStore(tmp_path / "s.sqlite") as st:
        a, b = ClaimOwner.new(), ClaimOwner.new()
        assert st.claim(keys, a, 2) == keys[:2]
        assert st.claim(keys, b, 3) == keys[2:]  # a's claims are live
        assert st.claimed_by_others(keys, b) == set(keys[:2])
        st.conn.execute("UPDATE claims SET heartbeat = heartbeat - 100 WHERE owner = ?", (a.id,))
        assert st.claim(keys, b, 3, lease_s=60) == keys  # a's heartbeat is 100 s old
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        st.conn.execute("UPDATE claims SET owner = 'x', pid = ? WHERE key = ?", (dead.pid, keys[0]))
        c = ClaimOwner.new()
        assert st.claim(keys, c, 3, lease_s=3600) == [keys[0]]  # its process is gone
        st.put(pts[1], "ok", {"metric": 1.0})
        assert st.claim(keys, c, 3, lease_s=0) == [keys[0], keys[2]]  # finished: never claimed
        assert st.claimed_by_others(keys, a, lease_s=3600) == {keys[0], keys[2]}
        st.release(c)
        assert st.claimed_by_others(keys, a, lease_s=3600) == set()


def test_empty_corrupt_and_read_only_stores(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SLOWWL_LOG", str(tmp_path / "log"))
    monkeypatch.setenv("SLOWWL_SLEEP", "0")
    if True:
        # a 0-byte store is damage, not a new store
        out = tmp_path / "o"
        _db(out).parent.mkdir(parents=True)
        _db(out).write_bytes(b"")
        rc = main(["sweep", "--workload", SPEC, "--formats", "fp32", "--accum", "exact",
                   "--out", str(out), "--no-progress", "--no-plots", "--workers", "1"])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and "is empty (0 bytes)" in err, err
        with pytest.raises(StoreError, match="0 bytes"):
            ResultStore(_db(out))
        _db(out).unlink()
        # corrupt rows are skipped with a warning and recomputed; the report is written
        fm = FORMATS[:4]
        sweep(SPEC, fm, ["exact"], out=out, workers=1, progress=False, plots=False)
        con = sqlite3.connect(_db(out))
        con.execute("UPDATE points SET status = 'bogus' WHERE format = 'fp8_e4m3'")
        con.execute("UPDATE points SET result_json = '{not json' WHERE format = 'mxfp4'")
        con.commit()
        con.close()
        with ResultStore(_db(out), readonly=True) as st, pytest.warns(RuntimeWarning,
                                                                      match="corrupt"):
            rows = st.rows([p.key for p in build_points(SPEC, fm, ["exact"])])
        assert [r["format"] for r in rows] == ["fp32", "fp8_e5m2"]
        n = len(_log(tmp_path))
        with pytest.warns(RuntimeWarning, match="recomputed"):
            res = sweep(SPEC, fm, ["exact"], out=out, workers=1, progress=False, plots=False)
        assert sorted(f for _, f, ev in _log(tmp_path)[n:] if ev == "start") == ["fp8_e4m3",
                                                                                   "mxfp4"]
        assert res["stats"]["computed"] == 2 and len(res["rows"]) == 4
        assert (out / "slow-mlp" / "report.md").stat().st_size > 0
        # a read-only store: reading works, the sweep stops with a named error before computing
        pts = build_points(SPEC, FORMATS, ["exact"])
        with ResultStore(_db(out), readonly=True) as st:
            assert len(st.rows([p.key for p in pts])) == 4
            n = len(_log(tmp_path))
            with pytest.raises(StoreReadOnlyError, match="read-only"):
                run_sweep(pts, st, workers=1, progress=False)
            with pytest.raises(StoreReadOnlyError, match=str(_db(out))):
                st.put(pts[0], "ok", {"metric": 1.0})
        assert len(_log(tmp_path)) == n
        with pytest.raises(StoreError, match="does not exist"):
            ResultStore(tmp_path / "none.sqlite", readonly=True)


def test_interrupt_in_process_releases_claims(tmp_path, monkeypatch):
    """The serial back-end: KeyboardInterrupt mid-sweep -> SweepInterrupted naming the count;
    the store keeps the finished point and no claim."""
    monkeypatch.setenv("SLOWWL_LOG", str(tmp_path / "log"))
    pts = build_points(SPEC, FORMATS[:3], ["exact"])
    calls = {"n": 0}
    real = evaluate_point

    def flaky(point):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(point)

    monkeypatch.setattr("lowbit.sim.sweep.runner.evaluate_point", flaky)
    with ResultStore(tmp_path / "s.sqlite") as st:
        with pytest.raises(SweepInterrupted, match="1 of 3 points stored"):
            run_sweep(pts, st, workers=1, progress=False)
        assert len(st.finished()) == 1
        assert st.conn.execute("SELECT count(*) FROM claims").fetchone()[0] == 0


@pytest.fixture
def no_worker_cluster():
    import distributed

    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp://",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def test_dask_without_workers_is_a_named_error(tmp_path, no_worker_cluster, capsys):
    pts = build_points(SPEC, FORMATS[:2], ["exact"])
    t = time.monotonic()
    with ResultStore(tmp_path / "s.sqlite") as st:
        with pytest.raises(NoWorkersError, match=r"no worker for 1\.5 s \(--worker-timeout\)"):
            run_sweep(pts, st, scheduler=no_worker_cluster, worker_timeout_s=1.5,
                      progress=False)
        assert st.finished() == set()
        assert st.conn.execute("SELECT count(*) FROM claims").fetchone()[0] == 0
    assert time.monotonic() - t < 60
    rc = main(["sweep", "--workload", SPEC, "--formats", "fp32", "--accum", "exact", "--out",
               str(tmp_path / "o"), "--no-progress", "--no-plots", "--scheduler",
               no_worker_cluster, "--worker-timeout", "1"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "has had no worker for 1 s" in err, err
    assert DEFAULT_WORKER_TIMEOUT_S == 5 * 60  # the default when --worker-timeout is not given


def _scheduler_address(path) -> str | None:
    """The address in a ``--scheduler-file``, None while it is missing or half written."""
    try:
        return json.loads(path.read_text())["address"]
    except (OSError, ValueError, KeyError):
        return None


def test_killed_dask_scheduler_marks_running_points_failed_once(tmp_path):
    env = _env(tmp_path, "fp32=0,*=600")
    sched = subprocess.Popen([*DASK, "scheduler", "--host", "127.0.0.1", "--port",
                              "0", "--no-dashboard", "--scheduler-file",
                              str(tmp_path / "sched.json")], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        _wait(lambda: _scheduler_address(tmp_path / "sched.json"), 120, "the scheduler")
        addr = _scheduler_address(tmp_path / "sched.json")
        worker = subprocess.Popen([*DASK, "worker", addr, "--nthreads", "2",
                                   "--no-dashboard", "--no-nanny"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out = tmp_path / "o"
        proc = subprocess.Popen(_cmd(out, FORMATS[:4], "--scheduler", addr), env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _wait(lambda: _no_failed_points(out) and _statuses(out) == {"fp32": "ok"}
              and _claims(out) == 3 and
              sum(ev == "start" for _, f, ev in _log(tmp_path) if f != "fp32") == 2, 240,
              "1 stored point, 2 running and 1 queued (2 worker threads + 1)",
              lambda: (_rows_text(out), _claims(out), _log(tmp_path)))
        sched.kill()
        rc, _, err = _finish(proc, 180)
        assert rc == 1, err
        lines = [ln for ln in err.splitlines() if "lost the Dask scheduler" in ln]
        assert len(lines) == 1 and "Traceback" not in err, err
        assert err.strip() == lines[0], err  # nothing else: no reconnect log, no warnings
        assert lines[0].startswith("lowbit sweep: error: lost the Dask scheduler")
        assert "3 running point(s) stored as failed" in lines[0]
        assert "1 finished point(s) kept" in lines[0]
        assert _statuses(out) == {"fp32": "ok", "fp8_e4m3": "error", "fp8_e5m2": "error",
                                  "mxfp4": "error"}
        with ResultStore(_db(out), readonly=True) as st:
            errs = [r["error"] for r in st.rows([p.key for p in build_points(
                SPEC, FORMATS[:4], ["exact"])]) if r["status"] == "error"]
        assert len(errs) == 3 and all(e.startswith("SchedulerLostError") for e in errs)
    finally:
        for p in (sched, worker):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def test_inf_outputs_are_stored_as_overflow_and_flagged(tmp_path):
    """NVFP4 x NVFP4 with an FP16 accumulator: every block sum of element x block scale products
    exceeds 65504 before the per-tensor scales are applied, so the outputs are Inf (top-1 0.1);
    that is stored as status "overflow", not "ok", and the report says so."""
    pts = build_points("digits-cnn", ["nvfp4"], ["fp16", "fp32"])
    over = evaluate_point(pts[0].to_dict())
    assert over["status"] == "overflow" and "Inf/NaN in the outputs of conv1" in over["error"]
    assert over["result"]["nonfinite"]["output"] == over["result"]["nonfinite"]["fc2"] > 0
    res = sweep("digits-cnn", ["nvfp4"], ["fp16", "fp32"], out=tmp_path, workers=1,
                progress=False, plots=False)
    st = {r["accum"]: r["status"] for r in res["rows"]}
    assert st == {"fp16": "overflow", "fp32": "ok"}
    assert res["stats"]["overflow"] == 1 and res["stats"]["failed"] == 0
    md = (tmp_path / "digits-cnn" / "report.md").read_text()
    assert "**overflow** (Inf/NaN)" in md and "**Overflow:** 1 point(s)" in md
    assert ",overflow," in (tmp_path / "digits-cnn" / "results.csv").read_text()
