"""The ``lowbit`` command line.

Each sub-package contributes its sub-commands through a module exposing
``register(subparsers) -> None``; the functions it registers receive the parsed
``argparse.Namespace`` and return an exit code.

    lowbit formats [show NAME] [--json]      (lowbit.formats.cli)
    lowbit sweep ...                         (lowbit.sim.cli)
    lowbit search ...                        (lowbit.sim.search_cli)
    lowbit rtl UNIT ... / lowbit cosim UNIT  (lowbit.hw.cli)
    lowbit report ...                        (lowbit.cost_models.cli)
    lowbit experiment NAME                   (lowbit.experiment_cli)

Errors (one path for every sub-command):

* a bad option value is rejected while parsing (``type=`` callables of :mod:`lowbit.argtypes`,
  installed by option name on every sub-command);
  :class:`Parser` prints ``lowbit CMD: error: argument --opt: ...`` as ONE line and exits 2;
* a ``ValueError`` / ``TypeError`` raised by lowbit's own code (the innermost frame of the
  traceback is a ``lowbit.*`` module: a named, checked error) and an ``OSError`` (a file the
  command cannot read or write) print ``lowbit CMD: error: <message>`` and exit 2;
* an exception whose class lowbit defines (e.g. ``NoWorkersError`` of the sweep) prints one
  line and exits 1;
* ``KeyboardInterrupt`` prints one line and exits 130 (128 + SIGINT, the shell convention);
* anything else is a bug and keeps its traceback.  ``LOWBIT_DEBUG=1`` re-raises every
  exception (full traceback) instead of the one-line message.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from lowbit import __version__
from lowbit.argtypes import install_option_type

# module path -> sub-commands it registers (used only for the error message when missing)
COMMAND_MODULES = (
    "lowbit.formats.cli",
    "lowbit.sim.cli",
    "lowbit.sim.search_cli",
    "lowbit.hw.cli",
    "lowbit.kernels.cli",
    "lowbit.cost_models.cli",
    "lowbit.experiment_cli",
)

EXIT_USAGE = 2  # bad arguments (argparse's convention)
EXIT_FAILED = 1  # a named runtime failure
EXIT_INTERRUPTED = 130  # 128 + SIGINT
DEBUG_ENV = "LOWBIT_DEBUG"


class Parser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors are one line ``PROG: error: MESSAGE`` (exit 2), without
    the usage block, and whose options get the check :data:`lowbit.argtypes.OPTION_TYPES`
    holds for their name; sub-parsers inherit the class."""

    def add_argument(self, *args, **kwargs):
        return install_option_type(super().add_argument(*args, **kwargs))

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {' '.join(str(message).split())}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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


def _raised_by_lowbit(exc: BaseException) -> bool:
    """True if the innermost Python frame of ``exc``'s traceback is lowbit code (a checked
    error raised on purpose), False if it comes from a library (a bug lowbit did not catch)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    name = tb.tb_frame.f_globals.get("__name__", "")
    return name == "lowbit" or name.startswith("lowbit.")


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {exc.filename!r}" if exc.filename is not None else ""
        return f"{exc.strerror}:{where}".rstrip(":")
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help / --version / a parse error (already printed)
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    prog = f"lowbit {args.command}"
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        if debug:
            raise
        detail = _one_line(exc) if str(exc) else "stopped"
        print(f"{prog}: interrupted: {detail}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if debug:
            raise
        if isinstance(exc, OSError) or (isinstance(exc, (ValueError, TypeError))
                                        and _raised_by_lowbit(exc)):
            code = EXIT_USAGE
        elif type(exc).__module__.startswith("lowbit."):
            code = EXIT_FAILED
        else:
            raise
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
