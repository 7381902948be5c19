"""``lowbit rtl`` / ``lowbit cosim`` sub-commands.

    lowbit rtl UNIT --a fp8_e4m3 --b fp8_e4m3 --acc fp32 [--stages 2] -o x.v
    lowbit cosim UNIT --a fp8_e4m3 --b fp8_e4m3 --acc fp32 [--exhaustive] [--n 100000]
                 [--sim fast|compiled] [--hdl icarus|verilator]

``add_unit_options`` / ``unit_options`` are shared with ``lowbit cost`` (same unit, same
parameters, same registry).
"""

from __future__ import annotations

import sys

from lowbit.hw.cosim import SIMULATORS, cosim
from lowbit.hw.hdl import run_hdl
from lowbit.hw.units import UNITS, export_verilog, unit_params

UNIT_OPTIONS = ("a", "b", "acc", "k", "terms", "stages", "structure", "R", "C")


def add_unit_options(p):
    p.add_argument("unit", help="one of: " + ", ".join(UNITS))
    p.add_argument("--a", help="operand / element format of A (e.g. fp8_e4m3, fp4_e2m1, int8)")
    p.add_argument("--b", help="operand format of B")
    p.add_argument("--acc", help="accumulator: exact (Kulisch), fp32 / fp16 / bf16[_sat] "
                                 "(float accumulator), int<bits>[_sat] (integer register)")
    p.add_argument("--k", type=int, help="block size of mx_dot / nvfp4_dot")
    p.add_argument("--terms", type=int, help="sums an exact accumulator holds without overflow")
    p.add_argument("--stages", type=int, help="pipeline stages (MACs 1-3, dot units 0-3)")
    p.add_argument("--structure", help="int multiplier: array | wallace | dadda")
    p.add_argument("--R", type=int, help="systolic rows")
    p.add_argument("--C", type=int, help="systolic columns")


def unit_options(args) -> dict:
    """Checked unit parameters from parsed options (ValueError names unknown / unused ones)."""
    if args.unit not in UNITS:
        raise ValueError(f"UNIT={args.unit!r}; allowed: {', '.join(UNITS)}")
    given = {k: getattr(args, k) for k in UNIT_OPTIONS if getattr(args, k) is not None}
    unit_params(args.unit, **given)
    return given


def _rtl(args) -> int:
    src = export_verilog(args.unit, module_name=args.module, **unit_options(args))
    if args.output in (None, "-"):
        sys.stdout.write(src)
    else:
        with open(args.output, "w") as f:
            f.write(src)
        print(f"wrote {args.output} ({len(src.splitlines())} lines, module {args.module})")
    return 0


def _cosim(args) -> int:
    if args.sim not in SIMULATORS:
        raise ValueError(f"--sim={args.sim!r}; allowed: {SIMULATORS}")
    p = unit_options(args)
    r = cosim(args.unit, n=args.n, exhaustive=args.exhaustive, sim=args.sim, seed=args.seed, **p)
    print(f"pyrtl: {r}")
    rc = 0 if r.mismatches == 0 else 1
    if args.hdl:
        h = run_hdl(args.unit, args.hdl, n=args.hdl_n or args.n, exhaustive=args.exhaustive,
                    seed=args.seed, build_dir=args.build_dir, **p)
        print(f"{args.hdl}: {h['vectors']} vectors checked, {h['mismatches']} mismatches "
              f"(build {h['build_s']:.1f} s, run {h['run_s']:.1f} s)")
        for e in h["examples"]:
            print("  ", e)
        rc = rc or (0 if h["mismatches"] == 0 else 1)
    return rc


def register(subparsers) -> None:
    p = subparsers.add_parser("rtl", help="export a PyRTL hardware unit as Verilog")
    add_unit_options(p)
    p.add_argument("-o", "--output", help="output .v file (default: stdout)")
    p.add_argument("--module", default="toplevel", help="Verilog module name")
    p.set_defaults(func=_rtl)
    q = subparsers.add_parser("cosim", help="co-simulate a hardware unit against the emulator")
    add_unit_options(q)
    q.add_argument("--n", type=int, default=100_000, help="random vectors (default 100000)")
    q.add_argument("--exhaustive", action="store_true", help="every operand pair (<= 8-bit ops)")
    q.add_argument("--sim", default="compiled", help="PyRTL simulator: fast | compiled")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--hdl", help="also run the Verilog: icarus | verilator")
    q.add_argument("--hdl-n", dest="hdl_n", type=int, help="vectors for the HDL run (default --n)")
    q.add_argument("--build-dir", dest="build_dir", help="HDL build dir (default ~/.cache)")
    q.set_defaults(func=_cosim)
