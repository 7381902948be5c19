"""``lowbit sweep``: the format sweep command (registered by ``lowbit.main``).

    lowbit sweep [--workload tinylm[,digits-cnn]|file.py:func|model.onnx --data d.npz]
                 [--formats F1,F2,...] [--accum exact,fp32] [--quantizer rtn,gptq,hadamard+gptq]
                 [--out results/sweep] [--scheduler tcp://HOST:PORT]
                 [--workers N] [--worker-timeout S] [--claim-lease S] [--keep-failed]
                 [--no-progress] [--no-plots]

Ctrl-C stores the finished points and exits 130 (rerun to resume); several sweeps on one --out
share its points (claims in the store); exit 1 when a point failed or Dask lost its scheduler /
had no worker for --worker-timeout seconds.

Bad arguments raise ValueError naming the argument and the allowed values (exit code 2).
"""

from __future__ import annotations

from lowbit.sim.quantizers.compose import QUANTIZER_HELP
from lowbit.sim.sweep import sweep
from lowbit.sim.sweep.points import (
    DEFAULT_ACCUMS,
    DEFAULT_FORMATS,
    DEFAULT_WORKLOADS,
    split_list,
)
from lowbit.sim.sweep.runner import DEFAULT_WORKER_TIMEOUT_S
from lowbit.sim.sweep.store import DEFAULT_LEASE_S
from lowbit.sim.workloads import resolve_workload


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="evaluate a workload over number formats and accumulators",
        description="Run (or resume) a format sweep on real workloads; writes results.csv, "
        "results.json, pairwise.csv, report.md (metrics with 95%% bootstrap intervals, what is "
        "significant, assumptions), PNG plots and results.sqlite into OUT/<workload>/ and an "
        "index OUT/report.md.",
    )
    p.add_argument("--workload", nargs="+", default=None, metavar="NAME",
                   help="workload(s), comma or space separated: registered names (tinylm, "
                   "digits-cnn, minilm, an installed lowbit.workloads entry point), "
                   "path/to/file.py:function returning a Workload (e.g. a TorchWorkload), or "
                   f"model.onnx with --data; default: {','.join(DEFAULT_WORKLOADS)}")
    p.add_argument("--data", default=None, metavar="DATA.npz",
                   help="data of an ONNX --workload: .npz with keys calib, eval_x, optional eval_y")
    p.add_argument("--formats", nargs="+", default=None, metavar="FMT",
                   help="formats (comma or space separated; WFMT/AFMT for different weight and "
                   f"activation formats); default: {','.join(DEFAULT_FORMATS)}")
    p.add_argument("--accum", nargs="+", default=None, metavar="ACC",
                   help=f"accumulators; default: {','.join(DEFAULT_ACCUMS)}")
    p.add_argument("--quantizer", nargs="+", default=None, metavar="Q",
                   help=QUANTIZER_HELP + " (default rtn)")
    p.add_argument("--multiplier", nargs="+", default=None, metavar="MUL",
                   help="multiplier models crossed with the formats: exact, lmul (L-Mul, Luo & "
                   "Sun 2024), lmul_l<k>; a format the model cannot multiply (L-Mul on "
                   "integers) keeps exact products. Same as the format spelling FMT@MUL "
                   "(default: exact)")
    p.add_argument("--out", default="results/sweep",
                   help="output folder; each workload writes OUT/<workload>/ (default results/sweep)")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="run the points on this Dask scheduler instead of local processes")
    p.add_argument("--worker-timeout", type=float, default=DEFAULT_WORKER_TIMEOUT_S,
                   metavar="SECONDS", help="with --scheduler: give up (exit 1, finished points "
                   "kept) when the scheduler has had no worker this long (default %(default)g)")
    p.add_argument("--claim-lease", type=float, default=DEFAULT_LEASE_S, metavar="SECONDS",
                   help="a point claimed by another sweep on the same --out whose heartbeat is "
                   "older than this is taken over (a dead process on this host at once; default "
                   "%(default)g)")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default min(2, cores); 1 = in-process)")
    p.add_argument("--keep-failed", action="store_true",
                   help="do not retry points stored with an error (default: retry them)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.set_defaults(func=run_sweep_command)


def run_sweep_command(args) -> int:
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.scheduler is not None and not str(args.scheduler).startswith(
            ("tcp://", "tls://", "inproc://", "ucx://")):
        raise ValueError(f"--scheduler: expected tcp://HOST:PORT, got {args.scheduler!r}")
    names = [resolve_workload(w, args.data)
             for w in (split_list(args.workload) or DEFAULT_WORKLOADS)]
    res = sweep(names, args.formats, args.accum, args.quantizer, out=args.out,
                scheduler=args.scheduler, workers=args.workers,
                progress=not args.no_progress, plots=not args.no_plots,
                retry_failed=not args.keep_failed, multipliers=args.multiplier,
                worker_timeout_s=args.worker_timeout, lease_s=args.claim_lease)
    st = res["stats"]
    extra = "".join(f", {st[k]} {what}" for k, what in (
        ("by_others", "by other sweeps"), ("overflow", "overflowed")) if st.get(k))
    print(f"{st['total']} points ({st['computed']} computed, {st['skipped']} reused, "
          f"{st['failed']} failed{extra}) in {st['seconds']:.1f} s -> "
          f"{res['paths']['md'].parent}")
    print(res["paths"]["md"].read_text().split("## Assumptions")[0].rstrip())
    return 1 if st["failed"] else 0

