"""The seed papers' experiments, one command each: ``lowbit experiment NAME``.

    from lowbit.experiments import EXPERIMENTS, run_experiment
    run_experiment("mr-gptq", out="results/experiments", workload="tinylm")

Each writes ``OUT/NAME/table.md`` (the table, the paper's claim beside what was measured),
``table.csv`` (and more CSVs), ``plot.png`` and the underlying sweep under ``OUT/NAME/sweep/``.
"""

from __future__ import annotations

from pathlib import Path

from . import fp8_int8, minifloat_int, mixed, mrgptq
from .common import DEFAULT_OUT

EXPERIMENTS = {
    "mr-gptq": (mrgptq.run, "MXFP4 vs NVFP4 under RTN, GPTQ, Hadamard+GPTQ and the MR-GPTQ "
                "scale search (Egiazarian et al. 2025)"),
    "minifloat-vs-int": (minifloat_int.run, "minifloats vs integers at 3-8 bits with FPGA LUT "
                         "cost (Aggarwal et al. 2023/24)"),
    "fp8-vs-int8": (fp8_int8.run, "FP8 vs INT8 MAC cost per accumulator architecture, with "
                    "accuracy (van Baalen et al. 2023)"),
    "mixed-precision": (mixed.run, "HAWQ-V3 / FLIQS-style ILP mixed precision over INT and FP "
                        "candidates"),
}


def run_experiment(name: str, out=DEFAULT_OUT, **kw) -> dict:
    """Run experiment ``name`` into ``out/name/``; ValueError listing the names otherwise."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; allowed: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name][0](Path(out) / name, **kw)


__all__ = ["DEFAULT_OUT", "EXPERIMENTS", "run_experiment"]
