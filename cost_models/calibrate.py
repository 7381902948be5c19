"""Fit the analytic unit models' coefficients against Yosys and report their error.

Flow: :func:`run_calibration` synthesizes every unit of
:func:`lowbit.cost_models.calib_set.calibration_units` for each target (process pool,
cached), fits per-target coefficients on the "train" units with relative-error weighted
non-negative least squares (minimises sum((model - yosys)/yosys)^2, coefficients >= 0),
and reports MAPE on train and held-out ("test") units. :func:`write_calibration` stores
the result as ``cost_models/data/calibration.json`` (format version, Yosys version,
commands, date, coefficients, per-unit table, ``provenance``: the call, how many Yosys
results were synthesized vs read from the cache, and the CLI command when run through
``lowbit report --calibrate``); :mod:`lowbit.cost_models.units` loads it. Unit features are
computed per target (``unit_features(..., target=t)``: xc7 LUT packing, feature ``pk``).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from .calib_set import HW_ONLY_KINDS, calibration_units
from .synth import TARGETS as SYNTH_SCRIPTS
from .synth import synth_many, yosys_version
from .units import DEFAULT_COEF, FEATURES, TARGETS, cost, unit_features

__all__ = ["METRIC", "FIT_FEATURES", "FIXED", "fit", "evaluate", "run_calibration", "write_calibration",
           "rows_from_results", "mape"]

CALIBRATION_VERSION = 1
METRIC = {"gates": "ge", "ice40": "lut", "xilinx": "lut"}
# features fitted per target (lzc has no calibration unit yet: keeps its default)
FIT_FEATURES = ("pp", "csa", "cpa", "sgn", "sxt", "add", "shl", "neg", "fpa")
# coefficients fixed by construction, not fitted (accumulator adder and register widths are
# collinear in the MAC units): a flip-flop with synchronous clear is one $_SDFF_ cell
# (5.67 GE) in the gate netlist and a separate SB_DFFSR / FDRE cell (no LUT) on FPGAs.
# General shifter muxes ("mux": FP alignment / normalisation) appear in no calibration
# unit; they keep the cell cost (MUX2_X1 = 2.33 GE, 0.5 SB_LUT4, 0.35 LUT6).
# LUT-packed products ("pk", xc7 only: s_a + s_b <= 6 inputs) are one LUT6 per product bit
# by construction: the only integer units with packed products are the held-out 3x3 ones,
# and in the minifloat units the packed significand product is mostly absorbed into the
# following shifter LUTs, so a free coefficient would be unidentified (NNLS drives it to 0).
FIXED = {"gates": {"ff": 5.67, "mux": 2.33}, "ice40": {"ff": 0.0, "mux": 0.5},
         "xilinx": {"ff": 0.0, "mux": 0.35, "pk": 1.0}}


def mape(pred, true) -> float:
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    return float(np.mean(np.abs(pred - true) / np.maximum(true, 1e-9)) * 100) if len(true) else float("nan")


def rows_from_results(units, results_by_target: dict) -> list[dict]:
    """Join units and their Yosys metrics into rows {kind, params, split, target, yosys, features}."""
    rows = []
    for t, res in results_by_target.items():
        for (kind, params, split, *_), r in zip(units, res):
            actual = r.meta.get("params", params)
            rows.append({"kind": kind, "params": actual, "split": split, "target": t,
                         "yosys": float(r.metrics[METRIC[t]]), "ff": r.metrics.get("ff", 0),
                         "carry": r.metrics.get("carry", 0), "source": r.meta.get("source", "ref"),
                         "features": unit_features(kind, target=t, **actual)})
    return rows


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
    out = {**DEFAULT_COEF[target], **fixed}
    for f, c in zip(np.array(feats)[used], coef):
        out[str(f)] = round(float(c), 5)
    return out


def evaluate(rows: list[dict], coefs: dict) -> dict:
    """Add ``model`` to each row; returns MAPE per target / split / kind."""
    summary: dict = {}
    for r in rows:
        r["model"] = round(cost(r["features"], r["target"], coefs[r["target"]]), 2)
        r["err_pct"] = round(100 * (r["model"] - r["yosys"]) / r["yosys"], 1)
    for t in {r["target"] for r in rows}:
        s = summary.setdefault(t, {})
        for split in ("train", "test", "range"):
            sel = [r for r in rows if r["target"] == t and r["split"] == split]
            if not sel:
                continue
            s[split] = round(mape([r["model"] for r in sel], [r["yosys"] for r in sel]), 2)
            s[f"{split}_max_abs_err"] = round(max((abs(r["err_pct"]) for r in sel), default=0), 1)
            wide = [r for r in sel if not (r["kind"].startswith("int") and
                                           min(r["params"]["bits_a"], r["params"]["bits_b"]) <= 3)]
            s[f"{split}_ge4bit"] = round(mape([r["model"] for r in wide],
                                              [r["yosys"] for r in wide]), 2)
            for src in sorted({r.get("source", "ref") for r in sel}):
                ss = [r for r in sel if r.get("source", "ref") == src]
                s[f"{split}@{src}"] = round(mape([r["model"] for r in ss],
                                                 [r["yosys"] for r in ss]), 2)
            for kind in sorted({r["kind"] for r in sel}):
                ss = [r for r in sel if r["kind"] == kind]
                s[f"{split}:{kind}"] = round(mape([r["model"] for r in ss],
                                                  [r["yosys"] for r in ss]), 2)
    return summary


def run_calibration(targets=TARGETS, processes: int | None = None, progress: bool = True,
                    cache_dir=None, sources=("ref", "hw"), units=None,
                    hw_targets=("gates", "ice40"), validate: bool = True) -> dict:
    """Synthesize, fit and evaluate. Returns the calibration dict (see write_calibration).

    sources: "ref" (reference units) and/or "hw" (lowbit.hw's generators, when importable;
    synthesized for ``hw_targets`` only, synth_xilinx being slow). The fit is joint: the
    feature ``style`` distinguishes the two implementations.
    """
    base = units or calibration_units()
    bad = [t for t in targets if t not in TARGETS]
    if bad:
        raise ValueError(f"targets: unknown {bad}; allowed: {', '.join(TARGETS)}")
    rows = []
    n_cached = n_synth = 0
    for src in sources:
        tg = [t for t in targets if src == "ref" or t in hw_targets]
        if src == "hw":
            from .hw_bridge import export

            if export("int_mult", bits_a=2, bits_b=2, signed=True) is None:
                continue
        us = [u for u in base if src == "hw" or u[0] not in HW_ONLY_KINDS]
        jobs = [(k, t, p, src) for t in tg for k, p, _ in us]
        res = synth_many(jobs, processes=processes, progress=progress, cache_dir=cache_dir)
        n_cached += sum(1 for r in res if r.cached)
        n_synth += sum(1 for r in res if not r.cached)
        by_t = {t: res[i * len(us):(i + 1) * len(us)] for i, t in enumerate(tg)}
        rows += rows_from_results(us, by_t)
    coefs = {t: fit(rows, t) for t in targets}
    summary = evaluate(rows, coefs)
    validation = validate_composed(coefs, [t for t in hw_targets if t in targets],
                                   cache_dir=cache_dir, progress=progress) \
        if validate and "hw" in sources else []
    return {
        "version": CALIBRATION_VERSION,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "yosys": yosys_version(),
        "commands": {t: f"yosys -q -p 'read_verilog unit.v; {SYNTH_SCRIPTS[t].format(top='top')}; "
                        "tee -q -o stat.json stat -json'" for t in targets},
        "metric": {t: METRIC[t] for t in targets},
        "features": list(FEATURES),
        "fit": "relative-error NNLS on split=train; MAPE in percent",
        "fixed": FIXED,
        "provenance": {
            "call": f"run_calibration(targets={tuple(targets)}, sources={tuple(sources)}, "
                    f"hw_targets={tuple(hw_targets)}, validate={validate})",
            "yosys_runs": {"synthesized": n_synth, "from_cache": n_cached},
            "note": "cached results are keyed by sha256(Yosys version, script, Verilog), so "
                    "a cache hit is the same Yosys run on the same netlist text",
        },
        "coefficients": coefs,
        "mape": summary,
        "units": [{k: v for k, v in r.items()} for r in rows],
        "validation": validation,
    }


def write_calibration(cal: dict, path=None) -> Path:
    p = Path(path) if path else Path(__file__).with_name("data") / "calibration.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(cal, indent=1, sort_keys=False) + "\n")
    from .units import load_calibration

    load_calibration.cache_clear()
    return p


# composed units of lowbit.hw checked (not fitted) against Yosys: (hw unit, kwargs, model)
VALIDATION_UNITS = [
    ("mx_dot", {"a": "fp4_e2m1", "k": 8}, ("dot", "mxfp4", 8)),
    ("mx_dot", {"a": "fp4_e2m1", "k": 32}, ("dot", "mxfp4", 32)),
    ("nvfp4_dot", {"k": 16}, ("dot", "nvfp4", 16)),
]


def composed_features(spec, target: str | None = None) -> dict:
    """Model features of a VALIDATION_UNITS entry (hw style: NaN/Inf handling included)."""
    from .units import dot_features, mac_features

    if spec[0] == "dot":
        return dot_features(spec[1], spec[1], spec[2], accumulate=False, style="hw",
                            target=target)
    return mac_features(spec[1], spec[1], arch="float", acc_fmt=spec[2], style="hw",
                        target=target)


def validate_composed(coefs: dict, targets=("gates", "ice40"), cache_dir=None,
                      progress: bool = True) -> list[dict]:
    """Synthesize lowbit.hw's MX / NVFP4 dot units and FP-accumulator MACs and compare with the
    composed model; not used in the fit."""
    from tqdm import tqdm

    from lowbit.hw.units import export_verilog

    from .synth import synthesize

    rows = []
    for name, kw, spec in tqdm(VALIDATION_UNITS, disable=not progress, desc="validate"):
        v = export_verilog(name, module_name="top", **kw)
        for t in targets:
            f = composed_features(spec, t)
            r = synthesize(v, t, cache_dir=cache_dir)
            y = float(r.metrics[METRIC[t]])
            m = cost(f, t, coefs[t])
            rows.append({"unit": name, "params": kw, "target": t, "yosys": y,
                         "model": round(m, 1), "err_pct": round(100 * (m - y) / y, 1)})
    return rows
