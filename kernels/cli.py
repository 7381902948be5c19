"""``lowbit kernels validate`` (CLI hook; see :mod:`lowbit.kernels.validate`)."""
from __future__ import annotations

from .validate import main


def register(subparsers) -> None:
    p = subparsers.add_parser("kernels", help="validate the Triton / numba kernels on this machine")
    sub = p.add_subparsers(dest="kernels_command", metavar="ACTION")
    v = sub.add_parser("validate", help="kernel checks vs lowbit.formats, bit for bit")
    v.add_argument("--json", help="write the results to this JSON file")
    v.add_argument("--no-interpreter", action="store_true",
                   help="without a GPU, skip the Triton checks instead of interpreting them")
    v.set_defaults(func=_validate)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _validate(args) -> int:
    argv = []
    if args.json:
        argv += ["--json", args.json]
    if args.no_interpreter:
        argv.append("--no-interpreter")
    return main(argv)
