"""``lowbit report`` and ``lowbit cost`` (registered by ``lowbit.main``).

    lowbit cost UNIT [--a F --b F --acc A --k N --terms T --stages S ...]
                [--target gates|ice40|xc7|sky130] [--json]
    lowbit report [--workload digits-cnn] [--formats F1,F2 ...] [--acc exact,fp32]
                  [--target gates|ice40|xc7|sky130] [--out DIR] [--sweep PATH]
                  [--rows R --cols C --dataflow WS|OS|IS] [--node NM]
    lowbit report --calibrate [--cal-targets gates,ice40,xc7,sky130] [--write-data]
    lowbit report --pnr [--write-data]

``lowbit cost`` prices exactly the unit ``lowbit rtl`` exports with the same options (one
registry, :mod:`lowbit.hw.units`). ``--calibrate`` synthesizes the calibration units with Yosys
(cached, parallel), fits the unit models, prints the held-out MAPE per target and unit family
and writes calibration.json / .csv / .md into --out (with --write-data also the shipped
cost_models/data/calibration.json). ``--pnr`` places and routes the MAC / dot units at 1-3
stages on an iCE40 UP5K (nextpnr) and writes ice40_pnr.json into --out (and the shipped copy).
"""

from __future__ import annotations

import json
from pathlib import Path

from lowbit.hw.cli import add_unit_options, unit_options
from lowbit.sim.tables import markdown_table, write_csv
from lowbit.sim.workloads import resolve_workload

from .array import ArrayConfig
from .calibrate import family_table, run_calibration, write_calibration
from .pnr import PNR_DATA, run_pnr_table
from .report import DEFAULT_FORMATS, build_report
from .unit_cost import TARGETS, unit_cost


def register(subparsers) -> None:
    c = subparsers.add_parser("cost", help="cost of a hardware unit (gates, iCE40, xc7, sky130)")
    add_unit_options(c)
    c.add_argument("--target", default=None,
                   help="gates | ice40 | xc7 | sky130 (default: all four)")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=run_cost_command)
    p = subparsers.add_parser("report", help="area / energy / latency cost report",
                              description=__doc__.split("\n\n")[1])
    p.add_argument("--workload", default="digits-cnn",
                   help="workload name (default digits-cnn), path/to/file.py:function or "
                   "model.onnx with --data")
    p.add_argument("--data", default=None, metavar="DATA.npz",
                   help="data of an ONNX --workload: .npz with keys calib, eval_x, optional eval_y")
    p.add_argument("--formats", nargs="+", default=None, metavar="FMT",
                   help="format specs (comma or space separated; WFMT/AFMT allowed)")
    p.add_argument("--acc", default="exact,fp32",
                   help="accumulator architectures, comma separated (default exact,fp32)")
    p.add_argument("--target", default="gates", help="gates | ice40 | xc7 | sky130")
    p.add_argument("--out", default="results/report", help="output folder")
    p.add_argument("--sweep", default=None, help="sweep results.csv (or its folder)")
    p.add_argument("--rows", type=int, default=16)
    p.add_argument("--cols", type=int, default=16)
    p.add_argument("--dataflow", default="WS", help="WS | OS | IS")
    p.add_argument("--node", type=float, default=45.0, help="technology node in nm (default 45)")
    p.add_argument("--calibrate", action="store_true", help="run the Yosys calibration")
    p.add_argument("--cal-targets", default="gates,ice40,xc7,sky130",
                   help="calibration targets (comma separated)")
    p.add_argument("--pnr", action="store_true", help="run iCE40 place and route (nextpnr)")
    p.add_argument("--write-data", action="store_true",
                   help="with --calibrate / --pnr: also update the shipped data in cost_models/data")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_report_command)


def run_cost_command(args) -> int:
    params = unit_options(args)
    targets = [args.target] if args.target else list(TARGETS)
    rows = [unit_cost(args.unit, t, **params) for t in targets]
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if k != "params"} for r in rows], indent=1))
        return 0
    r0 = rows[0]
    print(f"{args.unit}({r0['params_text']}) [{r0['family']}], latency {r0['latency']} "
          f"extra cycle(s), {r0['ff']} register bits")
    for r in rows:
        print(f"  {r['target']:7s} {r['cost']:12.1f} {r['metric']}")
    return 0


def run_report_command(args) -> int:
    if args.calibrate:
        return _calibrate(args)
    if args.pnr:
        return _pnr(args)
    cfg = ArrayConfig(rows=args.rows, cols=args.cols, dataflow=str(args.dataflow).upper())
    formats = args.formats or list(DEFAULT_FORMATS)
    accs = [a for a in str(args.acc).split(",") if a]
    res = build_report(resolve_workload(args.workload, args.data), formats, args.target,
                       Path(args.out), cfg, args.node, args.sweep, accs)
    print(f"report: {len(res['totals'])} format/accumulator rows -> {res['paths']['md']} "
          f"({res['paths']['html'].name}, CSV, PNG)")
    return 0


def _calibrate(args) -> int:
    targets = [t for t in str(args.cal_targets).split(",") if t]
    cal = run_calibration(targets, progress=not args.no_progress)
    cal["provenance"]["command"] = (f"lowbit report --calibrate --cal-targets "
                                    f"{','.join(targets)}" + (" --write-data" if args.write_data
                                                              else ""))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "calibration.json").write_text(json.dumps(cal, indent=1) + "\n")
    write_csv(out / "calibration.csv", cal["units"],
              ["target", "unit", "params", "family", "split", "yosys", "model", "err_pct"])
    tables = {s: markdown_table(family_table(cal["mape"], s), ["family", *targets],
                                {t: "{:.1f}" for t in targets}) for s in ("test", "train")}
    (out / "calibration.md").write_text(
        f"# Calibration ({cal['yosys']}, {cal['date']})\n\nHeld-out MAPE (%)\n\n{tables['test']}"
        f"\n\nTraining MAPE (%)\n\n{tables['train']}\n")
    if args.write_data:
        write_calibration(cal)
    print("held-out MAPE (%) per unit family and target (never fitted):")
    print(tables["test"])
    print("training MAPE (%):")
    print(tables["train"])
    return 0


def _pnr(args) -> int:
    table = run_pnr_table(progress=not args.no_progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(table, indent=1) + "\n"
    (out / "ice40_pnr.json").write_text(text)
    if args.write_data:
        PNR_DATA.write_text(text)
    print(markdown_table(table["rows"], ["unit", "params", "unit_lut", "ff", "fmax_mhz",
                                         "macs_per_s_per_lut"],
                         {"fmax_mhz": "{:.1f}", "macs_per_s_per_lut": "{:.3g}"}))
    return 0
