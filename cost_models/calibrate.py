"""Fit the unit cost models' coefficients against Yosys and report their held-out error.

Flow (:func:`run_calibration`): synthesize every unit of
:func:`lowbit.cost_models.calib_units.calibration_units` -- registry units, exactly what
``lowbit rtl`` exports -- for each target (process pool, cached by Yosys version, script and
Verilog text), fit per-target coefficients on the "train" units with relative-error weighted
non-negative least squares (minimises sum(((model - yosys) / yosys)^2), coefficients >= 0),
and report MAPE per target, split and unit family on train and held-out ("test") units.
:func:`write_calibration` stores the result as ``cost_models/data/calibration.json`` (format
version, Yosys version, commands, date, coefficients, per-unit table, provenance);
:mod:`lowbit.cost_models.unit_cost` loads it.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from lowbit.hw.unit import FAMILIES
from lowbit.hw.units import UNITS, param_text, unit_features, unit_params

from .calib_units import calibration_units
from .synth import TARGETS as SYNTH_SCRIPTS
from .synth import synth_cache_dir, synth_many, yosys_version
from .unit_cost import CALIBRATION_PATH, DEFAULT_COEF, METRIC, TARGETS, cost, load_calibration

__all__ = ["FIT_FEATURES", "FIXED", "YOSYS_METRIC", "fit", "evaluate", "run_calibration",
           "write_calibration", "mape", "family_table"]

CALIBRATION_VERSION = 2
YOSYS_METRIC = {"gates": "ge", "ice40": "lut", "xc7": "lut", "sky130": "um2"}
FIT_FEATURES = ("pp", "csa", "tree", "ks", "lx", "cpa", "sxt", "add", "acc", "shl", "mux", "neg", "lzc",
                "fpa", "rnd", "ff")
# fixed by construction, not fitted: a flip-flop with synchronous clear is one $_SDFF_ cell
# (5.67 GE) in the generic netlist and a separate SB_DFF* / FD* cell (no LUT) on FPGAs.
# LUT-packed products ("pk", xc7 only: s_a + s_b <= 8 inputs) count their LUT6s exactly
# (one per product bit, 2 / 4 for a bit that is a 7 / 8-input wide LUT).
FIXED = {"gates": {"ff": 5.67}, "ice40": {"ff": 0.0}, "xc7": {"ff": 0.0, "pk": 1.0},
         "sky130": {}}


def mape(pred, true) -> float:
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    return float(np.mean(np.abs(pred - true) / np.maximum(true, 1e-9)) * 100) if len(true) \
        else float("nan")


def fit(rows: list[dict], target: str) -> dict:
    """Relative-error NNLS fit of FIT_FEATURES on the train rows of one target."""
    tr = [r for r in rows if r["target"] == target and r["split"] == "train"]
    if not tr:
        raise ValueError(f"target: no training rows for {target!r}")
    fixed = FIXED.get(target, {})
    feats = [f for f in FIT_FEATURES if f not in fixed]
    A = np.array([[r["features"].get(f, 0) for f in feats] for r in tr], float)
    y = np.array([r["yosys"] - sum(c * r["features"].get(f, 0) for f, c in fixed.items())
                  for r in tr], float)
    yw = np.array([r["yosys"] for r in tr], float)
    used = A.any(axis=0)
    coef, _ = nnls(A[:, used] / yw[:, None], y / yw)
    res = {**DEFAULT_COEF[target], **fixed}
    for f, c in zip(np.array(feats)[used], coef):
        res[str(f)] = round(float(c), 5)
    return res


def evaluate(rows: list[dict], coefs: dict) -> dict:
    """Add ``model`` / ``err_pct`` to each row; returns ``{target: {split: MAPE, split_max:
    max |error|, "split:family": MAPE}}``."""
    summary: dict = {}
    for r in rows:
        r["model"] = round(cost(r["features"], r["target"], coefs[r["target"]]), 2)
        r["err_pct"] = round(100 * (r["model"] - r["yosys"]) / r["yosys"], 1)
    for t in sorted({r["target"] for r in rows}):
        s = summary.setdefault(t, {})
        for split in ("train", "test", "range"):
            sel = [r for r in rows if r["target"] == t and r["split"] == split]
            if not sel:
                continue
            s[split] = round(mape([r["model"] for r in sel], [r["yosys"] for r in sel]), 2)
            s[f"{split}_max"] = round(max(abs(r["err_pct"]) for r in sel), 1)
            for fam in FAMILIES:
                ss = [r for r in sel if r["family"] == fam]
                if ss:
                    s[f"{split}:{fam}"] = round(mape([r["model"] for r in ss],
                                                     [r["yosys"] for r in ss]), 2)
    return summary


def family_table(summary: dict, split: str = "test") -> list[dict]:
    """Rows ``{"family", <target>: MAPE ...}`` (plus an "all" row) of one split."""
    fams = [f for f in FAMILIES if any(f"{split}:{f}" in v for v in summary.values())]
    rows = [{"family": f, **{t: summary[t].get(f"{split}:{f}", "") for t in summary}}
            for f in fams]
    rows.append({"family": "all", **{t: summary[t].get(split, "") for t in summary}})
    return rows


def rows_from_results(units, results_by_target: dict) -> list[dict]:
    """Join units and their Yosys metrics into rows (features per target)."""
    rows = []
    for t, res in results_by_target.items():
        for (name, params, split), r in zip(units, res):
            p = unit_params(name, **params)
            rows.append({"unit": name, "kw": dict(params), "params": param_text(p),
                         "family": UNITS[name].family,
                         "split": split, "target": t, "yosys": float(r.metrics[YOSYS_METRIC[t]]),
                         "ff": r.metrics.get("ff", 0), "key": r.key, "cells": r.cells,
                         **({"delay_ps": r.metrics["delay_ps"], "depth": r.metrics["depth"]}
                            if t == "sky130" else {}),
                         "features": unit_features(name, target=t, **p)})
    return rows


def run_calibration(targets=TARGETS, processes: int | None = None, progress: bool = True,
                    cache_dir=None, units=None) -> dict:
    """Synthesize, fit and evaluate. Returns the calibration dict (see write_calibration)."""
    units = units or calibration_units()
    bad = [t for t in targets if t not in TARGETS]
    if bad:
        raise ValueError(f"targets: unknown {bad}; allowed: {', '.join(TARGETS)}")
    jobs = [(name, t, p) for t in targets for name, p, _ in units]
    seeded = seed_cache(load_calibration(), cache_dir)
    res = synth_many(jobs, processes=processes, progress=progress, cache_dir=cache_dir)
    by_t = {t: res[i * len(units):(i + 1) * len(units)] for i, t in enumerate(targets)}
    rows = rows_from_results(units, by_t)
    coefs = {t: fit(rows, t) for t in targets}
    summary = evaluate(rows, coefs)
    n_cached = sum(1 for r in res if r.cached)
    return {
        "version": CALIBRATION_VERSION,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "yosys": yosys_version(),
        "commands": {t: f"yosys -q -p 'read_verilog unit.v; {SYNTH_SCRIPTS[t]}; "
                        "tee -q -o stat.json stat -json'" for t in targets},
        "metric": {t: METRIC[t] for t in targets},
        "fit": "relative-error NNLS on split=train; MAPE in percent; held-out = split test",
        "fixed": {t: FIXED[t] for t in targets},
        "provenance": {
            "call": f"run_calibration(targets={tuple(targets)})",
            "units": "lowbit.cost_models.calib_units.CALIBRATION_UNITS (registry units, "
                     "exported by lowbit.hw.units.export_verilog)",
            "yosys_runs": {"synthesized": len(res) - n_cached, "from_cache": n_cached,
                           "cache_entries_seeded_from_shipped_data": seeded},
            "note": "cached results are keyed by sha256(Yosys version, script, Verilog), so a "
                    "cache hit is the same Yosys run on the same netlist text; the shipped "
                    "calibration.json carries each unit's key and cell counts and seeds the cache",
        },
        "coefficients": coefs,
        "mape": summary,
        "units": [{k: v for k, v in r.items() if k != "features"} for r in rows],
    }


def seed_cache(cal: dict | None, cache_dir=None) -> int:
    """Write the shipped rows' Yosys results (cell counts, keyed like :func:`synthesize`'s cache)
    into the cache; a unit whose Verilog, script or Yosys version changed has another key and is
    synthesized again. Returns the number of entries written."""
    n = 0
    d = synth_cache_dir(cache_dir)
    for r in (cal or {}).get("units", []):
        f = d / f"{r['key']}.json" if r.get("key") and "cells" in r else None
        if f is None or f.exists():
            continue
        extra = {k: r[k] for k in ("depth", "delay_ps") if k in r} or None
        f.write_text(json.dumps({"cells": r["cells"], "seconds": 0.0, "extra": extra,
                                 "meta": {"seeded_from": "cost_models/data/calibration.json"}}))
        n += 1
    return n


def write_calibration(cal: dict, path=None) -> Path:
    p = Path(path) if path else CALIBRATION_PATH
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(cal, indent=1) + "\n")
    load_calibration.cache_clear()
    return p
