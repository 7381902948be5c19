"""Generic cocotb 2.x test bench for exported units (run by :func:`lowbit.hw.hdl.run_hdl`).

:func:`~lowbit.hw.hdl.run_hdl` runs a stand-alone copy of this file in the simulator, so it must
import nothing from ``lowbit`` (the package import costs seconds per simulator start).

Vectors and expected outputs come from a JSON file named by ``$LOWBIT_HDL_VECTORS``
(``{"inputs": {name: [hex...]}, "expected": {name: [hex...]}}``, one entry per cycle); every cycle
the bench sets the inputs after the falling clock edge, waits 1 ns, compares every output with
the expected value (PyRTL semantics: outputs = f(inputs, register state) in the same cycle) and
the rising edge advances the registers.  The summary is written to ``$LOWBIT_HDL_RESULT``.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, Timer


@cocotb.test()
async def run_vectors(dut):
    with open(os.environ["LOWBIT_HDL_VECTORS"]) as f:
        spec = json.load(f)
    ins = {k: [int(x, 16) for x in v] for k, v in spec["inputs"].items()}
    exp = {k: [int(x, 16) for x in v] for k, v in spec["expected"].items()}
    n = len(next(iter(ins.values())))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    if hasattr(dut, "rst"):
        dut.rst.value = 1
        for k in ins:
            getattr(dut, k).value = 0
        await FallingEdge(dut.clk)
        await FallingEdge(dut.clk)
        dut.rst.value = 0
    handles_in = {k: getattr(dut, k) for k in ins}
    handles_out = {k: getattr(dut, k) for k in exp}
    bad, examples = 0, []
    for t in range(n):
        for k, h in handles_in.items():
            h.value = ins[k][t]
        await Timer(1, unit="ns")
        row_bad = False
        for k, h in handles_out.items():
            v = h.value
            got = v.to_unsigned() if hasattr(v, "to_unsigned") else int(v)
            if got != exp[k][t]:
                row_bad = True
                if len(examples) < 10:
                    examples.append({"cycle": t, "out": k, "exp": hex(exp[k][t]), "got": hex(got),
                                     **{i: hex(ins[i][t]) for i in ins}})
        bad += row_bad
        await FallingEdge(dut.clk)
    with open(os.environ["LOWBIT_HDL_RESULT"], "w") as f:
        json.dump({"vectors": n, "mismatches": bad, "examples": examples}, f)
    assert bad == 0, f"{bad} of {n} vectors mismatch, e.g. {examples[:3]}"
