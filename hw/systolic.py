"""R x C systolic arrays of int8 MAC processing elements and a tiled-GEMM simulation driver.

Output-stationary (:func:`systolic_os`): PE(i, j) owns C[i, j] of an R x C output tile.  Row i
of the A tile enters the left edge skewed by i cycles, column j of the B tile enters the top
skewed by j cycles; operands move one PE per cycle (registered), so PE(i, j) sees
``A[i, k]`` and ``B[k, j]`` in cycle ``k + i + j`` and does ``acc += a*b``.
Per output tile: 1 clear cycle + ``K + R + C - 2`` compute cycles; the R*C accumulators are read
in parallel (no drain cycles) in the next cycle, which overlaps with the next tile's clear.

    cycles_OS = ceil(M/R) * ceil(N/C) * (K + R + C - 1) + 1

Weight-stationary (:func:`systolic_ws`): PE(i, j) holds ``W[i, j] = B[k0 + i, n0 + j]``; weights
are shifted in from the top, one row per cycle (R load cycles).  Activations ``A[m, k0 + i]``
enter row i skewed by i cycles and move right; partial sums move down, so column j's bottom
output for row m appears in compute cycle ``m + R + j``.  Per (K-tile, N-tile): ``R`` load +
``M + R + C - 2`` compute cycles; the last output is read during the next tile's first load
cycle.  Partial sums of different K tiles are added in the output buffer (outside the array).

    cycles_WS = ceil(K/R) * ceil(N/C) * (M + 2R + C - 2) + 1

(The "+ 1" is the final read-out cycle.)  :func:`systolic_cycles` runs the RTL in PyRTL
simulation on random int8 matrices, checks the GEMM against numpy and returns the cycle count.
"""

from __future__ import annotations

import math

import numpy as np
import pyrtl

from lowbit.hw.widths import acc_width

DATAFLOWS = ("OS", "WS")
"""Dataflows the RTL implements (SCALE-Sim names; :mod:`lowbit.cost_models.array` adds IS)."""


def systolic_os(a_in, b_in, clr, terms: int):
    """Output-stationary array; ``a_in``: R row inputs, ``b_in``: C column inputs (int8).
    Returns the R x C list of accumulator registers (signed ``acc_width("int8", "int8", terms)``
    bits: ``terms`` accumulations never overflow)."""
    R, C = len(a_in), len(b_in)
    w = acc_width("int8", "int8", terms)
    accs = [[None] * C for _ in range(R)]
    a_row = list(a_in)
    b_col = list(b_in)
    for i in range(R):
        for j in range(C):
            a, b = a_row[i], b_col[j]
            acc = pyrtl.Register(w, name=f"acc_{i}_{j}")
            p = pyrtl.signed_mult(a, b)[:len(a) + len(b)].sign_extended(w)
            acc.next <<= pyrtl.select(clr, pyrtl.Const(0, w), (acc + p)[:w])
            ar, br = pyrtl.Register(len(a)), pyrtl.Register(len(b))
            ar.next <<= a
            br.next <<= b
            a_row[i], b_col[j] = ar, br
            accs[i][j] = acc
    return accs


def systolic_ws(w_in, load, a_in):
    """Weight-stationary array; ``w_in``: C column weight inputs, ``a_in``: R row inputs.
    Returns the C bottom-row partial-sum registers (signed ``acc_width("int8", "int8", R)`` bits)."""
    R, C = len(a_in), len(w_in)
    pw = acc_width("int8", "int8", R)
    wcol = list(w_in)
    psum = [pyrtl.Const(0, pw) for _ in range(C)]
    a_row = list(a_in)
    for i in range(R):
        for j in range(C):
            wr = pyrtl.Register(len(w_in[0]), name=f"w_{i}_{j}")
            wr.next <<= pyrtl.select(load, wcol[j], wr)
            wcol[j] = wr
            a = a_row[i]
            p = pyrtl.signed_mult(a, wr)[:len(a) + len(wr)].sign_extended(pw)
            pr = pyrtl.Register(pw, name=f"ps_{i}_{j}")
            pr.next <<= (psum[j] + p)[:pw]
            psum[j] = pr
            ar = pyrtl.Register(len(a))
            ar.next <<= a
            a_row[i] = ar
    return psum


def build_os(R=4, C=4, terms=1024, **_):
    a = [pyrtl.Input(8, f"a{i}") for i in range(R)]
    b = [pyrtl.Input(8, f"b{j}") for j in range(C)]
    accs = systolic_os(a, b, pyrtl.Input(1, "clr"), terms)
    for i in range(R):
        for j in range(C):
            o = pyrtl.Output(len(accs[i][j]), f"c_{i}_{j}")
            o <<= accs[i][j]


def build_ws(R=4, C=4, **_):
    w = [pyrtl.Input(8, f"w{j}") for j in range(C)]
    a = [pyrtl.Input(8, f"a{i}") for i in range(R)]
    ps = systolic_ws(w, pyrtl.Input(1, "load"), a)
    for j in range(C):
        o = pyrtl.Output(len(ps[j]), f"y{j}")
        o <<= ps[j]


def systolic_cycles_formula(R, C, M, N, K, dataflow="OS") -> int:
    """Closed-form cycle count achieved by the RTL + driver (see module docstring)."""
    if dataflow == "OS":
        return math.ceil(M / R) * math.ceil(N / C) * (K + R + C - 1) + 1
    if dataflow == "WS":
        return math.ceil(K / R) * math.ceil(N / C) * (M + 2 * R + C - 2) + 1
    raise ValueError(f"dataflow={dataflow!r}; allowed: {', '.join(DATAFLOWS)}")


def _s(v, w):
    return v - (1 << w) if v >= (1 << (w - 1)) else v


def run_gemm(A, B, R, C, dataflow="OS", sim_cls=None):
    """Run int8 GEMM ``A @ B`` (A: M x K, B: K x N, int values in [-128, 127]) on the simulated
    array; returns ``(result int64 M x N, cycles)``."""
    A, B = np.asarray(A, dtype=np.int64), np.asarray(B, dtype=np.int64)
    M, K = A.shape
    N = B.shape[1]
    pyrtl.reset_working_block()
    if dataflow == "OS":
        build_os(R, C, terms=max(K, 1))
    elif dataflow == "WS":
        build_ws(R, C)
    else:
        raise ValueError(f"dataflow={dataflow!r}; allowed: {', '.join(DATAFLOWS)}")
    sim = (sim_cls or pyrtl.FastSimulation)(tracer=None) if sim_cls is not pyrtl.CompiledSimulation \
        else pyrtl.CompiledSimulation()
    outs = {w.name: len(w) for w in pyrtl.working_block().wirevector_subset(pyrtl.Output)}
    cycles = 0
    out = np.zeros((M, N), dtype=np.int64)

    def step(d):
        nonlocal cycles
        sim.step(d)
        cycles += 1

    u8 = lambda v: int(v) & 0xFF  # noqa: E731
    if dataflow == "OS":
        zero = {**{f"a{i}": 0 for i in range(R)}, **{f"b{j}": 0 for j in range(C)}}
        pending = None
        for m0 in range(0, M, R):
            for n0 in range(0, N, C):
                step({**zero, "clr": 1})
                if pending:
                    _read_os(sim, outs, out, *pending)
                for t in range(K + R + C - 2):
                    d = {"clr": 0}
                    for i in range(R):
                        k = t - i
                        d[f"a{i}"] = u8(A[m0 + i, k]) if 0 <= k < K and m0 + i < M else 0
                    for j in range(C):
                        k = t - j
                        d[f"b{j}"] = u8(B[k, n0 + j]) if 0 <= k < K and n0 + j < N else 0
                    step(d)
                pending = (m0, n0, R, C, M, N)
        step({**zero, "clr": 1})
        _read_os(sim, outs, out, *pending)
        return out, cycles
    # weight stationary
    zero_a = {f"a{i}": 0 for i in range(R)}
    pend = []
    for k0 in range(0, K, R):
        for n0 in range(0, N, C):
            for t in range(R):   # load: the row loaded first ends at the bottom
                d = {**zero_a, "load": 1}
                for j in range(C):
                    k = k0 + R - 1 - t
                    d[f"w{j}"] = u8(B[k, n0 + j]) if k < K and n0 + j < N else 0
                step(d)
                _collect(sim, outs, out, pend, cycles - 1)
            base = cycles
            for j in range(C):   # output of (m, j) visible in compute cycle m + R + j
                for m in range(M):
                    if n0 + j < N:
                        pend.append((base + m + R + j, m, n0 + j, f"y{j}"))
            for t in range(M + R + C - 2):
                d = {"load": 0, **{f"w{j}": 0 for j in range(C)}}
                for i in range(R):
                    m = t - i
                    d[f"a{i}"] = u8(A[m, k0 + i]) if 0 <= m < M and k0 + i < K else 0
                step(d)
                _collect(sim, outs, out, pend, cycles - 1)
    step({**zero_a, "load": 0, **{f"w{j}": 0 for j in range(C)}})
    _collect(sim, outs, out, pend, cycles - 1)
    assert not pend, "systolic WS driver: outputs not collected"
    return out, cycles


def _read_os(sim, outs, out, m0, n0, R, C, M, N):
    for i in range(R):
        for j in range(C):
            if m0 + i < M and n0 + j < N:
                name = f"c_{i}_{j}"
                out[m0 + i, n0 + j] = _s(sim.inspect(name), outs[name])


def _collect(sim, outs, out, pend, cyc):
    keep = []
    for item in pend:
        t, m, n, name = item
        if t == cyc:
            out[m, n] += _s(sim.inspect(name), outs[name])
        else:
            keep.append(item)
    pend[:] = keep


def systolic_cycles(R, C, M, N, K, dataflow="OS", seed: int = 0) -> int:
    """Cycle count of an M x N x K int8 GEMM on the R x C array, measured by simulating the RTL
    (the result is checked against numpy; AssertionError on a mismatch)."""
    rng = np.random.default_rng(seed)
    A = rng.integers(-128, 128, size=(M, K))
    B = rng.integers(-128, 128, size=(K, N))
    got, cycles = run_gemm(A, B, R, C, dataflow)
    ref = A @ B
    if not np.array_equal(got, ref):
        bad = np.argwhere(got != ref)[:5]
        raise AssertionError(f"systolic {dataflow} GEMM mismatch at {bad.tolist()}")
    return cycles
