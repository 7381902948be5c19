"""SQLite store of sweep points (``results.sqlite`` in a workload's output folder).

Rows (table ``points``): one per point key, written and committed as soon as the point finishes:
``status`` is ``"ok"`` (result JSON), ``"overflow"`` (finished, but some layer output holds
Inf/NaN: the result is kept and flagged, ``error`` says where) or ``"error"`` (the error text).
A re-run skips every finished key, so nothing finished is recomputed or lost.

Claims (table ``claims``: key, owner, host, pid, heartbeat): several processes - several
``lowbit sweep`` runs on one ``--out``, or Dask clients sharing a file system - share the work
without computing a point twice.  A process claims a key in one ``BEGIN IMMEDIATE`` transaction
(only if the key is unfinished and unclaimed, or its claim is stale), refreshes the heartbeat of
its claims while it runs, and replaces the claim by the result row in one transaction.  A claim
is stale when its heartbeat is older than the lease (default :data:`DEFAULT_LEASE_S`), or when
it was made on this host by a process that no longer exists (a ``kill -9``); a stale claim is
taken over.  The store runs in WAL mode: readers (the report) never wait for a writer.

Damage is named, never silent: an empty (0-byte) file, a file that is not a lowbit store, a
failed integrity check -> :class:`StoreError`; a store that cannot be written ->
:class:`StoreReadOnlyError`; a single corrupt row (unknown status, unreadable JSON) is left out
of :meth:`ResultStore.rows` and :meth:`ResultStore.finished` with a ``RuntimeWarning``, so the
report still works and the sweep recomputes the point.  A new store is created under a temporary
name and linked into place complete, so lowbit itself never leaves a 0-byte or half-made store.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = "2"
STATUSES = ("ok", "overflow", "error")
DEFAULT_LEASE_S = 120.0
_COLUMNS = ("key", "workload", "format", "accum", "quantizer", "version", "status", "metric",
            "bits_per_element", "result_json", "error", "seconds", "finished_at")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS points (key TEXT PRIMARY KEY, workload TEXT, format TEXT,"
    " accum TEXT, quantizer TEXT, version TEXT, status TEXT, metric REAL,"
    " bits_per_element REAL, result_json TEXT, error TEXT, seconds REAL, finished_at REAL)",
    "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT, host TEXT,"
    " pid INTEGER, heartbeat REAL)",
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)",
)


class StoreError(ValueError):
    """The results store cannot be used (empty, corrupt, not a lowbit store)."""


class StoreReadOnlyError(StoreError):
    """The results store cannot be written."""


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def json_safe(o):
    """JSON has no inf/nan: encode non-finite floats as strings "inf", "-inf", "nan"."""
    if isinstance(o, dict):
        return {k: json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [json_safe(v) for v in o]
    try:
        f = float(o) if not isinstance(o, (str, bool, int)) and o is not None else None
    except (TypeError, ValueError):
        f = None
    if f is not None:
        return f if math.isfinite(f) else str(f)
    return o


def _restore(o):
    if isinstance(o, dict):
        return {k: _restore(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_restore(v) for v in o]
    if o in ("inf", "-inf", "nan"):
        return float(o)
    return o


# ------------------------------------------------------------------------------ claim owners


@dataclass(frozen=True)
class ClaimOwner:
    """Who holds a claim: a unique id, the host name and the process id."""

    id: str
    host: str
    pid: int

    @classmethod
    def new(cls) -> ClaimOwner:
        host = socket.gethostname()
        return cls(f"{host}:{os.getpid()}:{uuid.uuid4().hex[:12]}", host, os.getpid())


def pid_alive(pid: int) -> bool:
    """True if process ``pid`` exists on this host and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:  # Linux: 'Z' (zombie) / 'X' (dead) state
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def claim_is_stale(host: str, pid: int, heartbeat: float, now: float, lease_s: float) -> bool:
    """The stale-owner rule: heartbeat older than ``lease_s``, or made on this host by a
    process that is gone."""
    if now - heartbeat > lease_s:
        return True
    return host == socket.gethostname() and not pid_alive(int(pid))


# ------------------------------------------------------------------------------ the store


def _problem(d: dict) -> str | None:
    """Why row ``d`` (column -> value) is unusable, or None."""
    if d["status"] not in STATUSES:
        return f"unknown status {d['status']!r}"
    if not all(isinstance(d[c], str) for c in ("key", "workload", "format", "accum")):
        return "missing point fields"
    try:
        res = json.loads(d["result_json"] or "{}")
    except (TypeError, ValueError) as exc:
        return f"unreadable result JSON ({exc})"
    if not isinstance(res, dict):
        return "result JSON is not an object"
    if d["status"] != "error" and not res:
        return f"status {d['status']!r} without a result"
    return None


def _connect(uri: str, timeout: float) -> sqlite3.Connection:
    return sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)


class ResultStore:
    """Durable map point-key -> result row, plus the claims of running points.

    ``readonly=True`` opens an existing store for reading only (a report on a read-only file
    system); any write then raises :class:`StoreReadOnlyError`.
    """

    def __init__(self, path: str | Path, readonly: bool = False, timeout: float = 60.0):
        self.path = Path(path)
        self.readonly = readonly
        self._checked: dict[tuple, str | None] = {}
        self._warned: set[str] = set()
        if self.path.exists() and self.path.is_file() and self.path.stat().st_size == 0:
            raise StoreError(
                f"results store {self.path} is empty (0 bytes): lowbit never writes an empty "
                "store, so it was truncated or is not a sweep database; delete it or choose "
                "another --out")
        if not self.path.exists():
            if readonly:
                raise StoreError(f"results store {self.path} does not exist")
            self._create()
        try:
            if readonly:
                try:
                    self.conn = _connect(f"file:{self.path}?mode=ro", timeout)
                    self._validate()
                except sqlite3.OperationalError:  # WAL store without a writable -shm
                    self.conn = _connect(f"file:{self.path}?immutable=1", timeout)
                    self._validate()
            else:
                self.conn = _connect(f"file:{self.path}", timeout)
                self._validate()
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
                for stmt in _SCHEMA:  # stores of schema 1 gain the claims table
                    self.conn.execute(stmt)
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc) or "read-only" in str(exc):
                raise StoreReadOnlyError(
                    f"results store {self.path} is read-only ({exc}); make it writable or "
                    "choose another --out") from exc
            raise StoreError(f"results store {self.path} cannot be opened ({exc})") from exc
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"results store {self.path} is corrupt or not a lowbit sweep database ({exc}); "
                "delete it or choose another --out") from exc

    def _create(self) -> None:
        """Build a new store under a temporary name, then link it into place (atomic: another
        process creating the same store at the same time wins, and its store is used)."""
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        try:
            con = sqlite3.connect(str(tmp), isolation_level=None)
            try:
                for stmt in _SCHEMA:
                    con.execute(stmt)
                con.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
                con.execute("PRAGMA journal_mode=WAL")
            finally:
                con.close()
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass
            except OSError:  # file system without hard links
                if not self.path.exists():
                    os.replace(tmp, self.path)
        except OSError as exc:
            raise StoreReadOnlyError(
                f"results store {self.path} cannot be created ({exc.strerror or exc})") from exc
        finally:
            for p in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
                p.unlink(missing_ok=True)

    def _validate(self) -> None:
        tables = {r[0] for r in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        if "points" not in tables:
            raise sqlite3.DatabaseError("no 'points' table")
        cols = [r[1] for r in self.conn.execute("PRAGMA table_info(points)")]
        if tuple(cols) != _COLUMNS:
            raise sqlite3.DatabaseError(f"unexpected columns {cols}")
        check = self.conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _write(self, sql: str, args=()) -> None:
        """One statement in its own transaction (a named error if the store is read-only)."""
        self._transaction(lambda c: c.execute(sql, args))

    def _transaction(self, body):
        """``body(conn)`` inside ``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on error)."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._write_error(exc) from exc
        try:
            out = body(self.conn)
            self.conn.execute("COMMIT")
            return out
        except BaseException as exc:
            self.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise self._write_error(exc) from exc
            raise

    def _write_error(self, exc) -> Exception:
        if self.readonly or "readonly" in str(exc) or "read-only" in str(exc):
            return StoreReadOnlyError(f"results store {self.path} is read-only ({exc}); make "
                                      "it writable or choose another --out")
        return StoreError(f"results store {self.path}: write failed ({exc})")

    # -- rows --------------------------------------------------------------------------
    def _usable(self, d: dict) -> bool:
        sig = (d["key"], d["finished_at"], d["status"])
        if sig not in self._checked:
            self._checked[sig] = _problem(d)
        why = self._checked[sig]
        if why is not None and d["key"] not in self._warned:
            self._warned.add(d["key"])
            warnings.warn(f"results store {self.path}: row {d['key']!r} is corrupt ({why}); "
                          "it is ignored and the point will be recomputed", RuntimeWarning,
                          stacklevel=3)
        return why is None

    def _all_rows(self) -> list[dict]:
        cur = self.conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM points")
        return [dict(zip(_COLUMNS, r)) for r in cur]

    def finished(self, include_errors: bool = True,
                 retry_errors_before: float | None = None) -> set[str]:
        """Keys of usable finished rows.  Rows with status ``error`` count unless
        ``include_errors=False``, or unless they finished before ``retry_errors_before`` (a
        time.time() stamp: errors stored before this sweep started are retried, errors another
        process stored since then are not computed twice)."""
        out = set()
        for d in self._all_rows():
            if not self._usable(d):
                continue
            if d["status"] == "error" and (not include_errors or (
                    retry_errors_before is not None and d["finished_at"] < retry_errors_before)):
                continue
            out.add(d["key"])
        return out

    def put(self, point, status: str, result: dict | None = None, error: str | None = None,
            seconds: float = 0.0) -> None:
        """Insert / replace the row of ``point`` and drop its claim, in one transaction."""
        if status not in STATUSES:
            raise ValueError(f"status={status!r}; allowed: {', '.join(STATUSES)}")
        result = json_safe(result or {})
        metric = result.get("metric")
        metric = metric if isinstance(metric, float) else None
        bpe = result.get("bits_per_element")
        row = (point.key, point.workload, point.format, point.accum, point.quantizer,
               point.version, status, metric, bpe,
               json.dumps(result, default=_json_default, sort_keys=True), error,
               float(seconds), time.time())

        def body(c):
            c.execute(f"INSERT OR REPLACE INTO points VALUES ({','.join('?' * len(row))})", row)
            c.execute("DELETE FROM claims WHERE key=?", (point.key,))

        self._transaction(body)

    def get(self, key: str) -> dict | None:
        """The row of ``key`` (``result`` decoded), or None if absent or corrupt."""
        cur = self.conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM points WHERE key=?", (key,))
        row = cur.fetchone()
        if row is None:
            return None
        d = dict(zip(_COLUMNS, row))
        if not self._usable(d):
            return None
        d["result"] = _restore(json.loads(d.pop("result_json") or "{}"))
        return d

    def rows(self, keys) -> list[dict]:
        """Usable rows for ``keys`` in that order (missing and corrupt keys left out)."""
        out = []
        for k in keys:
            r = self.get(k)
            if r is not None:
                out.append(r)
        return out

    # -- claims ------------------------------------------------------------------------
    def claim(self, keys, owner: ClaimOwner, limit: int, lease_s: float = DEFAULT_LEASE_S,
              retry_errors_before: float | None = None) -> list[str]:
        """Claim up to ``limit`` of ``keys`` (in order) that are unfinished and unclaimed or
        claimed stale; returns the keys now held by ``owner``."""
        def body(c):
            now = time.time()
            done = self.finished(retry_errors_before=retry_errors_before)
            held = {r[0]: r[1:] for r in c.execute(
                "SELECT key, owner, host, pid, heartbeat FROM claims")}
            got = []
            for k in keys:
                if len(got) >= limit:
                    break
                if k in done:
                    continue
                h = held.get(k)
                if h is not None and h[0] != owner.id and not claim_is_stale(*h[1:], now, lease_s):
                    continue
                c.execute("INSERT OR REPLACE INTO claims VALUES (?,?,?,?,?)",
                          (k, owner.id, owner.host, owner.pid, now))
                got.append(k)
            return got

        return self._transaction(body) if limit > 0 else []

    def claimed_by_others(self, keys, owner: ClaimOwner,
                          lease_s: float = DEFAULT_LEASE_S) -> set[str]:
        """Keys of ``keys`` with a live claim of another owner."""
        now, want = time.time(), set(keys)
        return {k for k, o, host, pid, hb in self.conn.execute(
                    "SELECT key, owner, host, pid, heartbeat FROM claims")
                if k in want and o != owner.id and not claim_is_stale(host, pid, hb, now, lease_s)}

    def heartbeat(self, owner: ClaimOwner) -> None:
        self._write("UPDATE claims SET heartbeat=? WHERE owner=?", (time.time(), owner.id))

    def release(self, owner: ClaimOwner, keys=None) -> None:
        """Drop ``owner``'s claims (all, or those of ``keys``)."""
        if keys is None:
            self._write("DELETE FROM claims WHERE owner=?", (owner.id,))
        else:
            for k in keys:
                self._write("DELETE FROM claims WHERE owner=? AND key=?", (owner.id, k))


__all__ = ["DEFAULT_LEASE_S", "STATUSES", "ClaimOwner", "ResultStore", "StoreError",
           "StoreReadOnlyError", "claim_is_stale", "json_safe", "pid_alive"]
