"""Co-simulation: run a unit's PyRTL netlist on numpy vectors and compare every output with the
bit-exact reference (:mod:`lowbit.hw.reference`: lowbit.formats decode/encode + exact integers).

    res = cosim("fp_fma", a="fp8_e4m3", b="fp8_e4m3", acc="fp32", exhaustive=True,
                sim="compiled")
    res.vectors, res.mismatches, res.examples      # examples: operands/expected/got in hex

``sim``: "fast" (``pyrtl.FastSimulation``, generated Python) or "compiled"
(``pyrtl.CompiledSimulation``, generated C compiled with gcc: slower start, much faster per
vector).  Sequential units are driven cycle by cycle with ``clr``/``en`` streams and compared
every cycle.  Pipelined units (``stages``) run the same vectors followed by ``latency`` flush
cycles of zeros and output cycle ``t + latency`` is compared with reference cycle ``t``
(:func:`aligned_run`). Systolic arrays are checked on random tiled GEMMs (vectors = output
elements).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pyrtl

from lowbit.hw.systolic import run_gemm
from lowbit.hw.units import UNITS, build_unit, param_text, unit_params

SIMULATORS = ("fast", "compiled")


@dataclass
class CosimResult:
    unit: str
    params: dict
    vectors: int
    mismatches: int
    seconds: float
    sim: str
    examples: list = field(default_factory=list)

    def __str__(self):
        p = param_text(self.params)
        s = (f"{self.unit} [{p}] sim={self.sim}: {self.vectors} vectors checked, "
             f"{self.mismatches} mismatches ({self.seconds:.2f} s)")
        for e in self.examples:
            s += "\n  " + " ".join(f"{k}={v}" for k, v in e.items())
        return s


def _ints(x):
    return [int(v) for v in np.asarray(x, dtype=object).ravel()]


def simulate(block_outputs, vecs: dict, sim: str = "fast") -> dict:
    """Step the current working block with ``vecs`` (name -> per-cycle values); returns
    name -> list of output values per cycle."""
    if sim not in SIMULATORS:
        raise ValueError(f"sim={sim!r}; allowed: {SIMULATORS}")
    tracer = pyrtl.SimulationTrace(wires_to_track=block_outputs)
    cls = pyrtl.FastSimulation if sim == "fast" else pyrtl.CompiledSimulation
    s = cls(tracer=tracer)
    s.step_multiple({k: _ints(v) for k, v in vecs.items()})
    return {w.name: s.tracer.trace[w.name] for w in block_outputs}


def padded(vecs: dict, latency: int) -> dict:
    """``vecs`` followed by ``latency`` cycles of zero inputs (flushes a pipeline)."""
    if not latency:
        return vecs
    return {k: np.concatenate([np.asarray(v, dtype=object), np.zeros(latency, dtype=object)])
            for k, v in vecs.items()}


def aligned(got: dict, latency: int, n: int) -> dict:
    """Output traces shifted back by ``latency`` cycles: entry t is output cycle t + latency."""
    return {k: list(v)[latency:latency + n] for k, v in got.items()}


def cosim(unit: str, n: int = 100_000, exhaustive: bool = False, sim: str = "fast",
          seed: int = 0, max_report: int = 10, **params) -> CosimResult:
    """Co-simulate ``unit`` (see :data:`lowbit.hw.units.UNITS`) and count mismatches.

    ``exhaustive=True`` uses every operand pair where the unit supports it (operand formats of
    <= 8 bits: 256 pairs for FP4 x FP4, 65 536 for FP8 x FP8 / INT8 x INT8); otherwise ``n``
    random vectors with edge values mixed in.
    """
    kw = unit_params(unit, **params)
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    if unit.startswith("systolic"):
        return _cosim_systolic(unit, kw, n, rng, t0, max_report)
    u = UNITS[unit]
    vecs = u.vectors(n, rng, exhaustive, **kw)
    exp = u.expected(vecs, **kw)
    lat = u.latency(**kw)
    build_unit(unit, **kw)
    outs = [w for w in pyrtl.working_block().wirevector_subset(pyrtl.Output)]
    nvec = len(next(iter(vecs.values())))
    got = aligned(simulate(outs, padded(vecs, lat), sim), lat, nvec)
    bad = np.zeros(nvec, dtype=bool)
    widths = {w.name: len(w) for w in outs}
    for name, e in exp.items():
        g = got[name]
        m = (1 << widths[name]) - 1
        bad |= np.array([(int(x) & m) != int(y) for x, y in zip(e, g)], dtype=bool)
    examples = []
    for i in np.nonzero(bad)[0][:max_report]:
        ex = {"cycle": int(i)}
        ex.update({k: hex(int(v[i])) for k, v in vecs.items()})
        ex.update({f"exp_{k}": hex(int(v[i]) & ((1 << widths[k]) - 1)) for k, v in exp.items()})
        ex.update({f"got_{k}": hex(int(got[k][i])) for k in exp})
        examples.append(ex)
    return CosimResult(unit, kw, nvec, int(bad.sum()), time.perf_counter() - t0, sim, examples)


def _cosim_systolic(unit, kw, n, rng, t0, max_report):
    R, C = kw["R"], kw["C"]
    df = "OS" if unit.endswith("os") else "WS"
    checked = bad = 0
    examples = []
    while checked < n:
        M, N, K = (int(x) for x in rng.integers(1, 3 * max(R, C) + 1, size=3))
        A = rng.integers(-128, 128, size=(M, K))
        B = rng.integers(-128, 128, size=(K, N))
        A[rng.random(A.shape) < 0.1] = -128
        got, cyc = run_gemm(A, B, R, C, df)
        ref = A @ B
        checked += ref.size
        nb = int((got != ref).sum())
        bad += nb
        if nb and len(examples) < max_report:
            examples.append({"M": M, "N": N, "K": K, "cycles": cyc, "mismatches": nb})
    return CosimResult(unit, kw, checked, bad, time.perf_counter() - t0, "fast", examples)
