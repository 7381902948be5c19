"""Run Yosys on a unit's Verilog and parse ``stat -json``; cached, parallel.

Targets (Yosys 0.23 recipes):

=========  =====================================================================  ==========
target     script (after ``read_verilog``)                                        metrics
=========  =====================================================================  ==========
gates      ``synth -top T; abc -g AND,NAND,OR,NOR,XOR,XNOR,MUX``                   ge, gates, ff
ice40      ``synth_ice40 -top T``                                                 lut, carry, ff
xc7        ``synth_xilinx -family xc7 -nodsp -noiopad -noclkbuf -top T``          lut, carry, ff, muxf
sky130     ``synth -top T; dfflibmap -liberty L; abc -liberty L; opt_clean``      um2, cells, ff,
                                                                                  depth, delay_ps
=========  =====================================================================  ==========

followed by ``tee -q -o stat.json stat -json`` (``-q`` alone suppresses ``stat``). ``L`` is the
shipped area-only sky130_fd_sc_hd subset (:mod:`lowbit.cost_models.sky130`, source stated in the
file); ``um2`` sums its cell areas, ``depth`` / ``delay_ps`` are the logic-depth delay estimate of
the mapped netlist (:func:`lowbit.cost_models.sky130.depth_delay`).

Gate equivalents (``ge``) weight each generic cell by its Nangate45 X1 area relative to
NAND2_X1 (0.798 um^2): NOT 0.67, NAND/NOR 1.0, AND/OR 1.33, XOR/XNOR 2.0, MUX 2.33,
DFF 5.67 (DFF_X1 4.522 um^2). ``ff`` counts flip-flop bits.

Results are cached as JSON under ``cache_dir`` (default ``$LOWBIT_CACHE`` or
``~/.cache/lowbit/yosys``), keyed by sha256(Yosys version, script, Verilog text).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from lowbit.hw.units import export_verilog

from . import sky130

__all__ = ["TARGETS", "GE_WEIGHTS", "SynthResult", "yosys_version", "synthesize", "synth_cache_dir",
           "synth_unit", "synth_many", "have_yosys"]

TARGETS = {
    "gates": "synth -top {top}; abc -g AND,NAND,OR,NOR,XOR,XNOR,MUX",
    "ice40": "synth_ice40 -top {top}",
    "xc7": "synth_xilinx -family xc7 -nodsp -noiopad -noclkbuf -top {top}",
    "sky130": "synth -top {top}; dfflibmap -liberty {lib}; abc -liberty {lib}; opt_clean",
}
GE_WEIGHTS = {"$_NOT_": 0.67, "$_NAND_": 1.0, "$_NOR_": 1.0, "$_AND_": 1.33, "$_OR_": 1.33,
              "$_XOR_": 2.0, "$_XNOR_": 2.0, "$_MUX_": 2.33, "$_ANDNOT_": 1.33,
              "$_ORNOT_": 1.33, "$_BUF_": 0.0}
DFF_GE = 5.67


def have_yosys() -> bool:
    return shutil.which("yosys") is not None


@lru_cache(maxsize=1)
def yosys_version() -> str:
    """``yosys -V`` first line, e.g. 'Yosys 0.23 (git sha1 7ce5011c24b)'."""
    if not have_yosys():
        raise FileNotFoundError("yosys: not found on PATH (apt-get install yosys)")
    return subprocess.run(["yosys", "-V"], capture_output=True, text=True,
                          check=True).stdout.strip()


@dataclass
class SynthResult:
    """Parsed Yosys statistics. ``metrics``: target-specific counts (see module doc)."""

    target: str
    cells: dict
    metrics: dict
    seconds: float = 0.0
    cached: bool = False
    key: str = ""
    meta: dict = field(default_factory=dict)


def _is_ff(cell: str) -> bool:
    c = cell.upper()
    return ("DFF" in c or c.startswith("FD") or "SDFF" in c or c.startswith("$_DLATCH")
            or c.startswith("SB_DFF") or c.startswith("SKY130_FD_SC_HD__DF"))


def _metrics(target: str, cells: dict, extra: dict | None = None) -> dict:
    ff = sum(v for k, v in cells.items() if _is_ff(k))
    if target == "gates":
        gates = {k: v for k, v in cells.items() if not _is_ff(k)}
        ge = sum(GE_WEIGHTS.get(k, 1.0) * v for k, v in gates.items()) + DFF_GE * ff
        return {"ge": round(ge, 2), "gates": sum(gates.values()), "ff": ff}
    if target == "ice40":
        return {"lut": cells.get("SB_LUT4", 0), "carry": cells.get("SB_CARRY", 0), "ff": ff}
    if target == "sky130":
        return {"um2": round(sky130.cell_area(cells), 3), "cells": sum(cells.values()), "ff": ff,
                **(extra or {})}
    if target == "xc7":
        lut = sum(v for k, v in cells.items() if k.startswith("LUT") and k[3:].isdigit())
        return {"lut": lut, "carry": cells.get("CARRY4", 0), "ff": ff,
                "muxf": cells.get("MUXF7", 0) + cells.get("MUXF8", 0),
                "dsp": cells.get("DSP48E1", 0)}
    raise ValueError(f"target: unknown {target!r}; allowed: {', '.join(TARGETS)}")


def synth_cache_dir(cache_dir=None) -> Path:
    if cache_dir is None:
        cache_dir = os.environ.get("LOWBIT_CACHE") or Path.home() / ".cache" / "lowbit" / "yosys"
    p = Path(cache_dir)
    p.mkdir(parents=True, exist_ok=True)
    return p


def synthesize(verilog: str, target: str = "gates", top: str = "top", cache_dir=None,
               use_cache: bool = True, timeout: float = 1800.0) -> SynthResult:
    """Synthesize Verilog text with Yosys for ``target``; returns parsed cell counts.

    Raises ValueError for an unknown target, FileNotFoundError if yosys is missing,
    RuntimeError with Yosys' stderr tail when synthesis fails.
    """
    import time

    if target not in TARGETS:
        raise ValueError(f"target: unknown {target!r}; allowed: {', '.join(TARGETS)}")
    script = TARGETS[target].format(top=top, lib=sky130.LIBERTY)
    ver = yosys_version()
    # keyed by the script template and the library's content, not its path on this machine
    tmpl = TARGETS[target].format(top=top, lib=f"sky130:{sky130.library_sha()}")
    key = hashlib.sha256(f"{ver}\n{tmpl}\n{verilog}".encode()).hexdigest()[:32]
    cdir = synth_cache_dir(cache_dir)
    cfile = cdir / f"{key}.json"
    if use_cache and cfile.exists():
        try:
            d = json.loads(cfile.read_text())
            return SynthResult(target, d["cells"], _metrics(target, d["cells"], d.get("extra")),
                               d["seconds"], True, key, d.get("meta", {}))
        except (json.JSONDecodeError, KeyError):
            pass
    with tempfile.TemporaryDirectory(prefix="lowbit_yosys_") as td:
        vf, sf = Path(td) / "unit.v", Path(td) / "stat.json"
        vf.write_text(verilog)
        nf = Path(td) / "net.json"
        net = f"; write_json {nf}" if target == "sky130" else ""
        cmd = f"read_verilog {vf}; {script}; tee -q -o {sf} stat -json{net}"
        t0 = time.perf_counter()
        r = subprocess.run(["yosys", "-q", "-p", cmd], capture_output=True, text=True,
                           timeout=timeout)
        dt = time.perf_counter() - t0
        if r.returncode != 0 or not sf.exists():
            raise RuntimeError(f"yosys failed ({target}): {(r.stderr or r.stdout)[-800:]}")
        stat = json.loads(sf.read_text())
        extra = sky130.depth_delay(json.loads(nf.read_text()), top) if net else None
    mods = stat.get("modules", {})
    mod = mods.get("\\" + top) or (next(iter(mods.values())) if mods else None)
    if mod is None:
        raise RuntimeError(f"yosys produced no module statistics for {top!r}")
    cells = dict(mod.get("num_cells_by_type", {}))
    meta = {"yosys": ver, "script": tmpl}
    res = SynthResult(target, cells, _metrics(target, cells, extra), dt, False, key, meta)
    tmp = cfile.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"cells": cells, "seconds": dt, "meta": meta, "extra": extra}))
    os.replace(tmp, cfile)
    return res


def synth_unit(unit: str, target: str = "gates", cache_dir=None, **params) -> SynthResult:
    """Synthesize registry unit ``unit`` (exactly what ``lowbit rtl`` exports; cached)."""
    r = synthesize(export_verilog(unit, module_name="top", **params), target, cache_dir=cache_dir)
    r.meta = {**r.meta, "unit": unit}
    return r


def _job(args):
    unit, target, cache_dir, params = args
    return synth_unit(unit, target, cache_dir=cache_dir, **params)


def synth_many(jobs, processes: int | None = None, progress: bool = True,
               cache_dir=None) -> list[SynthResult]:
    """Synthesize many ``(unit, target, params)`` jobs in a process pool (tqdm bar)."""
    from tqdm import tqdm

    items = [(j[0], j[1], cache_dir, dict(j[2])) for j in jobs]
    n = processes or max(1, min(len(items), os.cpu_count() or 1))
    if n == 1:
        return [_job(a) for a in tqdm(items, disable=not progress, desc="yosys")]
    with ProcessPoolExecutor(max_workers=n) as ex:
        return list(tqdm(ex.map(_job, items), total=len(items), disable=not progress,
                         desc="yosys"))
