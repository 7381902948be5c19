"""``lowbit experiment NAME``: the seed papers' experiments (registered by ``lowbit.main``).

    lowbit experiment list
    lowbit experiment mr-gptq [--workload tinylm] [--out results/experiments] [--workers N]
"""

from __future__ import annotations

from lowbit.experiments import DEFAULT_OUT, EXPERIMENTS, run_experiment


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "experiment", help="run one of the seed papers' experiments (list: lowbit experiment list)",
        description="Run a paper experiment; writes OUT/NAME/table.md (with the paper's claim), "
        "CSV tables, plot.png and the underlying sweep. Experiments: " + "; ".join(
            f"{k}: {v[1]}" for k, v in EXPERIMENTS.items()))
    p.add_argument("name", help="experiment name, or 'list'")
    p.add_argument("--workload", default="tinylm",
                   help="workload (default tinylm; mixed-precision uses hessian sensitivity on "
                   "workloads with gradients, e.g. digits-cnn)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes for the sweeps (default min(2, cores))")
    p.set_defaults(func=run_experiment_command)


def run_experiment_command(args) -> int:
    if args.name == "list":
        for k, (_, desc) in EXPERIMENTS.items():
            print(f"{k:18s} {desc}")
        return 0
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    kw = {"workload": args.workload}
    if args.name != "mixed-precision":
        kw["workers"] = args.workers
    res = run_experiment(args.name, args.out, **kw)
    print(res["table"].read_text())
    print(f"-> {res['table']}")
    return 0
