"""The ``lowbit`` command line.

Each sub-package contributes its sub-commands through a module exposing
``register(subparsers) -> None``; the functions it registers receive the parsed
``argparse.Namespace`` and return an exit code.

    lowbit formats [show NAME] [--json]      (lowbit.formats.cli)
    lowbit sweep ...                         (lowbit.sim.cli)
    lowbit search ...                        (lowbit.sim.search_cli)
    lowbit rtl UNIT ... / lowbit cosim UNIT  (lowbit.hw.cli)
    lowbit report ...                        (lowbit.cost_models.cli)
"""

from __future__ import annotations

import argparse
import importlib
import sys

# module path -> sub-commands it registers (used only for the error message when missing)
COMMAND_MODULES = (
    "lowbit.formats.cli",
    "lowbit.sim.cli",
    "lowbit.sim.search_cli",
    "lowbit.hw.cli",
    "lowbit.kernels.cli",
    "lowbit.cost_models.cli",
)


def build_parser() -> argparse.ArgumentParser:
    from lowbit import __version__

    parser = argparse.ArgumentParser(
        prog="lowbit",
        description="Bit-exact low-precision formats, simulators, RTL and cost models.",
    )
    parser.add_argument("--version", action="version", version=f"lowbit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for modname in COMMAND_MODULES:
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:  # that package has no CLI (yet)
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, PermissionError) as exc:
        print(f"lowbit {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
