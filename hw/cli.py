"""``lowbit rtl`` / ``lowbit cosim`` sub-commands.

    lowbit rtl UNIT --a fp8_e4m3 --b fp8_e4m3 --acc fp32 -o x.v
    lowbit cosim UNIT --a fp8_e4m3 --b fp8_e4m3 --acc fp32 [--exhaustive] [--n 100000]
                 [--sim fast|compiled] [--hdl icarus|verilator]
"""

from __future__ import annotations

import sys

from lowbit.hw.units import UNITS


def _add_common(p):
    p.add_argument("unit", help="one of: " + ", ".join(UNITS))
    p.add_argument("--a", help="operand / element format of A (e.g. fp8_e4m3, fp4_e2m1, int8)")
    p.add_argument("--b", help="operand format of B")
    p.add_argument("--acc", help="accumulator float format (fp32, fp16, bf16, ...)")
    p.add_argument("--k", type=int, help="block size of mx_dot / nvfp4_dot")
    p.add_argument("--n-acc", dest="n_acc", type=int, help="accumulations without overflow")
    p.add_argument("--structure", help="int multiplier: array | wallace | dadda")
    p.add_argument("--R", type=int, help="systolic rows")
    p.add_argument("--C", type=int, help="systolic columns")


def _params(args) -> dict:
    if args.unit not in UNITS:
        raise ValueError(f"UNIT={args.unit!r}; allowed: {', '.join(UNITS)}")
    out = {k: getattr(args, k) for k in ("a", "b", "acc", "k", "n_acc", "structure", "R", "C")}
    allowed = set(UNITS[args.unit].defaults)
    extra = [k for k, v in out.items() if v is not None and k not in allowed]
    if extra:
        raise ValueError(f"unit {args.unit}: options {extra} not used; it takes "
                         f"{sorted(allowed) or 'no options'}")
    return {k: v for k, v in out.items() if v is not None}


def _rtl(args) -> int:
    from lowbit.hw.units import export_verilog

    src = export_verilog(args.unit, module_name=args.module, **_params(args))
    if args.output in (None, "-"):
        sys.stdout.write(src)
    else:
        with open(args.output, "w") as f:
            f.write(src)
        print(f"wrote {args.output} ({len(src.splitlines())} lines, module {args.module})")
    return 0


def _cosim(args) -> int:
    from lowbit.hw.cosim import SIMULATORS, cosim

    if args.sim not in SIMULATORS:
        raise ValueError(f"--sim={args.sim!r}; allowed: {SIMULATORS}")
    p = _params(args)
    r = cosim(args.unit, n=args.n, exhaustive=args.exhaustive, sim=args.sim, seed=args.seed, **p)
    print(f"pyrtl: {r}")
    rc = 0 if r.mismatches == 0 else 1
    if args.hdl:
        from lowbit.hw.hdl import run_hdl

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
    _add_common(p)
    p.add_argument("-o", "--output", help="output .v file (default: stdout)")
    p.add_argument("--module", default="toplevel", help="Verilog module name")
    p.set_defaults(func=_rtl)
    q = subparsers.add_parser("cosim", help="co-simulate a hardware unit against the emulator")
    _add_common(q)
    q.add_argument("--n", type=int, default=100_000, help="random vectors (default 100000)")
    q.add_argument("--exhaustive", action="store_true", help="every operand pair (<= 8-bit ops)")
    q.add_argument("--sim", default="compiled", help="PyRTL simulator: fast | compiled")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--hdl", help="also run the Verilog: icarus | verilator")
    q.add_argument("--hdl-n", dest="hdl_n", type=int, help="vectors for the HDL run (default --n)")
    q.add_argument("--build-dir", dest="build_dir", help="HDL build dir (default ~/.cache)")
    q.set_defaults(func=_cosim)
