"""``lowbit report``: hardware cost report (registered by ``lowbit.main``).

    lowbit report [--workload digits-cnn] [--formats F1,F2 ...] [--target asic|ice40|xilinx]
                  [--out DIR] [--sweep PATH] [--rows R --cols C --dataflow WS|OS|IS]
                  [--node NM] [--calibrate [--cal-targets gates,ice40,xilinx] [--write-data]]

Without --calibrate: writes report.md / report.html / PNG / CSV into --out (reads sweep
accuracy from --sweep or DIR/results.csv when present). With --calibrate: synthesizes the
calibration units with Yosys (cached, parallel), fits the unit models and writes
calibration.json / calibration.csv / calibration.md into --out (and, with --write-data,
the shipped cost_models/data/calibration.json).
"""

from __future__ import annotations

from lowbit.sim.workloads import resolve_workload

from .report import markdown_table


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="area / energy / latency cost report",
                              description=__doc__.split("\n\n")[1])
    p.add_argument("--workload", default="digits-cnn",
                   help="workload name (default digits-cnn), path/to/file.py:function or "
                   "model.onnx with --data")
    p.add_argument("--data", default=None, metavar="DATA.npz",
                   help="data of an ONNX --workload: .npz with keys calib, eval_x, optional eval_y")
    p.add_argument("--formats", nargs="+", default=None, metavar="FMT",
                   help="format specs (comma or space separated; WFMT/AFMT allowed)")
    p.add_argument("--target", default="asic", help="asic | ice40 | xilinx (default asic)")
    p.add_argument("--out", default="results/report", help="output folder")
    p.add_argument("--sweep", default=None, help="sweep results.csv (or its folder)")
    p.add_argument("--rows", type=int, default=16)
    p.add_argument("--cols", type=int, default=16)
    p.add_argument("--dataflow", default="WS", help="WS | OS | IS")
    p.add_argument("--node", type=float, default=45.0, help="technology node in nm (default 45)")
    p.add_argument("--calibrate", action="store_true", help="run the Yosys calibration")
    p.add_argument("--cal-targets", default="gates,ice40,xilinx",
                   help="calibration targets (comma separated)")
    p.add_argument("--write-data", action="store_true",
                   help="with --calibrate: also update cost_models/data/calibration.json")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_report_command)


def run_report_command(args) -> int:
    from pathlib import Path

    from .array import ArrayConfig
    from .report import DEFAULT_FORMATS, build_report

    if args.calibrate:
        return _calibrate(args)
    cfg = ArrayConfig(rows=args.rows, cols=args.cols, dataflow=str(args.dataflow).upper())
    formats = args.formats or list(DEFAULT_FORMATS)
    res = build_report(resolve_workload(args.workload, args.data), formats, args.target, Path(args.out), cfg, args.node,
                       args.sweep)
    print(f"report: {len(res['totals'])} formats -> {res['paths']['md']} "
          f"({res['paths']['html'].name}, CSV, PNG)")
    return 0


def _calibrate(args) -> int:
    import json
    from pathlib import Path

    from .calibrate import run_calibration, write_calibration

    targets = [t for t in str(args.cal_targets).split(",") if t]
    cal = run_calibration(targets, progress=not args.no_progress)
    cal.setdefault("provenance", {})["command"] = (
        f"lowbit report --calibrate --cal-targets {','.join(targets)} --out {args.out}"
        + (" --write-data" if args.write_data else ""))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "calibration.json").write_text(json.dumps(cal, indent=1) + "\n")
    rows = [{"target": r["target"], "unit": f"{r['kind']}({','.join(f'{k}={v}' for k, v in r['params'].items())})",
             "split": r["split"], "yosys": r["yosys"], "model": r["model"],
             "err_pct": r["err_pct"]} for r in cal["units"]]
    import csv

    with (out / "calibration.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    md = [f"# Calibration ({cal['yosys']}, {cal['date']})", "",
          markdown_table([{"target": t, **v} for t, v in cal["mape"].items()], ["target", "train", "test"]),
          "", markdown_table(rows, ["target", "unit", "split", "yosys", "model", "err_pct"])]
    (out / "calibration.md").write_text("\n".join(md) + "\n")
    if args.write_data:
        write_calibration(cal)
    for t, v in cal["mape"].items():
        print(f"{t}: MAPE train {v['train']:.1f}% held-out {v['test']:.1f}%")
    return 0
