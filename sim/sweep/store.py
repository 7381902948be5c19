"""SQLite store of finished sweep points (``results.sqlite`` in the output folder).

One row per point key, written and committed by the coordinating process as soon as the point
finishes (successfully: ``status='ok'`` with its result JSON; or with ``status='error'`` and
the error text). A sweep that is interrupted and re-run skips every key already present, so
no finished point is recomputed or lost. Only the coordinating process writes (workers return
results), so there is no write contention even on a Dask cluster.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path

SCHEMA_VERSION = "1"
_COLUMNS = ("key", "workload", "format", "accum", "quantizer", "version", "status", "metric",
            "bits_per_element", "result_json", "error", "seconds", "finished_at")


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def _sanitize(o):
    """JSON has no inf/nan: encode non-finite floats as strings "inf", "-inf", "nan"."""
    if isinstance(o, dict):
        return {k: _sanitize(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_sanitize(v) for v in o]
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


class ResultStore:
    """Durable map point-key -> result row."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=30)
            self.conn.execute("PRAGMA synchronous=NORMAL")
            tables = {r[0] for r in self.conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
            if "points" in tables:
                cols = [r[1] for r in self.conn.execute("PRAGMA table_info(points)")]
                if tuple(cols) != _COLUMNS:
                    raise sqlite3.DatabaseError(f"unexpected columns {cols}")
                self.conn.execute("SELECT count(*) FROM points").fetchone()
                check = self.conn.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise sqlite3.DatabaseError(f"integrity check failed: {check}")
            else:
                with self.conn:
                    self.conn.execute(
                        "CREATE TABLE points (key TEXT PRIMARY KEY, workload TEXT, format TEXT,"
                        " accum TEXT, quantizer TEXT, version TEXT, status TEXT, metric REAL,"
                        " bits_per_element REAL, result_json TEXT, error TEXT, seconds REAL,"
                        " finished_at REAL)")
                    self.conn.execute(
                        "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT)")
                    self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)",
                                      (SCHEMA_VERSION,))
        except sqlite3.DatabaseError as exc:
            raise ValueError(
                f"results store {self.path} is corrupt or not a lowbit sweep database ({exc}); "
                "delete it or choose another --out"
            ) from exc

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def finished(self, include_errors: bool = True) -> set[str]:
        q = "SELECT key FROM points" + ("" if include_errors else " WHERE status='ok'")
        return {r[0] for r in self.conn.execute(q)}

    def put(self, point, status: str, result: dict | None = None, error: str | None = None,
            seconds: float = 0.0) -> None:
        """Insert / replace the row of ``point`` and commit immediately."""
        result = _sanitize(result or {})
        metric = result.get("metric")
        metric = metric if isinstance(metric, float) else None
        bpe = result.get("bits_per_element")
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO points VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (point.key, point.workload, point.format, point.accum, point.quantizer,
                 point.version, status, metric, bpe,
                 json.dumps(result, default=_json_default, sort_keys=True), error,
                 float(seconds), time.time()))

    def get(self, key: str) -> dict | None:
        cur = self.conn.execute("SELECT * FROM points WHERE key=?", (key,))
        row = cur.fetchone()
        if row is None:
            return None
        d = dict(zip(_COLUMNS, row))
        d["result"] = _restore(json.loads(d.pop("result_json") or "{}"))
        return d

    def rows(self, keys) -> list[dict]:
        """Rows for ``keys`` in that order (missing keys skipped)."""
        out = []
        for k in keys:
            r = self.get(k)
            if r is not None:
                out.append(r)
        return out
