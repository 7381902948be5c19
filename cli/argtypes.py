"""Argument types of the ``lowbit`` command line: one meaning per option name, checked while
parsing, one error path.

Every function here is an ``argparse`` ``type=`` callable: it returns the converted value or
raises :class:`argparse.ArgumentTypeError` whose text states the allowed values; argparse
prefixes the option (``argument --k: ...``) and :class:`lowbit.main.Parser` prints that as one
line and exits with status 2, before the command does any work.

:data:`OPTION_TYPES` maps an option's ``dest`` to its check, and :func:`install_option_type`
(called by :class:`lowbit.main.Parser` for every option any sub-package adds) installs it on
every sub-command that has such an option: ``--out`` is a folder to write into
and ``--k`` a positive block size in every command, including commands added later, and the
sub-packages (which sit below ``lowbit`` in the import layers) need not import this module.
String defaults are checked too (argparse converts them).  The checks have no side effects
(nothing is created): a folder that does not exist yet is accepted when its nearest existing
ancestor is a writable folder.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from lowbit.formats.accum import ACCUM_FORMS, parse_accum
from lowbit.formats.multiplier import MULTIPLIER_FORMS, parse_multiplier

_INT_RE = re.compile(r"[+-]?\d+")


def _int(text: str, lo: int) -> int:
    s = str(text).strip()
    if not _INT_RE.fullmatch(s) or int(s) < lo:
        raise argparse.ArgumentTypeError(f"expected an integer >= {lo}, got {text!r}")
    return int(s)


def positive_int(text: str) -> int:
    """An integer >= 1 (``"0"``, ``"-3"``, ``"1.5"``, ``"x"`` rejected)."""
    return _int(text, 1)


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    return _int(text, 0)


def positive_float(text: str) -> float:
    """A finite number > 0 (``"0"``, ``"-1"``, ``"inf"``, ``"nan"`` rejected)."""
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not (v > 0 and v != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return v


def _writable_folder_or_creatable(p: Path, what: str) -> None:
    """``p`` is a writable folder, or does not exist and its nearest existing ancestor is a
    writable folder (so ``mkdir -p p`` can succeed)."""
    probe = p
    while not probe.exists():
        if probe.is_symlink():  # dangling link: mkdir would fail
            raise argparse.ArgumentTypeError(f"{what} {str(p)!r}: {str(probe)!r} is a broken link")
        parent = probe.parent
        if parent == probe:
            break
        probe = parent
    if not probe.is_dir():
        where = "" if probe == p else f"{what} {str(p)!r}: "
        raise argparse.ArgumentTypeError(
            f"{where}{str(probe)!r} is a file, not a folder; give a folder path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{what} {str(p)!r}: folder {str(probe)!r} is not writable")


def output_dir(text: str) -> str:
    """A folder to write into: non-empty, not an existing file, creatable/writable."""
    if not str(text).strip():
        raise argparse.ArgumentTypeError("expected a folder path, got an empty string")
    _writable_folder_or_creatable(Path(text), "folder")
    return str(text)


def output_file(text: str) -> str:
    """A file to (over)write: non-empty, not a folder, in an existing writable folder.
    ``"-"`` (standard output) is accepted as is."""
    if text == "-":
        return text
    if not str(text).strip():
        raise argparse.ArgumentTypeError("expected a file path or '-', got an empty string")
    p = Path(text)
    if p.is_dir() or str(text).endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file path such as "
                                         f"{str(p / 'out.v')!r}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(
            f"{text!r}: folder {str(parent)!r} does not exist (create it first)")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise argparse.ArgumentTypeError(f"{text!r} is not writable")
    return str(text)


def nonempty_text(text: str) -> str:
    """Any string with a non-blank character (e.g. a comma-separated list)."""
    if not str(text).strip(" ,\t\n"):
        raise argparse.ArgumentTypeError("expected a non-empty value, got an empty string")
    return str(text)


def accumulators(text: str) -> str:
    """One or more comma-separated accumulator spellings accepted by
    :func:`lowbit.formats.accum.parse_accum` (``fp32``, ``fp32,int32``)."""
    nonempty_text(text)
    for item in (t.strip() for t in str(text).split(",")):
        if not item:
            continue
        try:
            parse_accum(item)
        except (ValueError, TypeError):
            raise argparse.ArgumentTypeError(
                f"unknown accumulator {item!r}; allowed forms: {'; '.join(ACCUM_FORMS)}") from None
    return str(text)


def multipliers(text: str) -> str:
    """One or more comma-separated multiplier models accepted by
    :func:`lowbit.formats.multiplier.parse_multiplier` (``exact``, ``lmul``, ``lmul_l3``)."""
    nonempty_text(text)
    for item in (t.strip() for t in str(text).split(",")):
        if not item:
            continue
        try:
            parse_multiplier(item)
        except (ValueError, TypeError):
            raise argparse.ArgumentTypeError(
                f"unknown multiplier {item!r}; allowed: {'; '.join(MULTIPLIER_FORMS)}") from None
    return str(text)


# IEEE 1364-2005 reserved words plus the IEEE 1800-2017 (SystemVerilog) additions that
# Verilator and Icarus reject as identifiers by default.
VERILOG_KEYWORDS = frozenset("""
always and assign automatic begin buf bufif0 bufif1 case casex casez cell cmos config deassign
default defparam design disable edge else end endcase endconfig endfunction endgenerate
endmodule endprimitive endspecify endtable endtask event for force forever fork function
generate genvar highz0 highz1 if ifnone incdir include initial inout input instance integer
join large liblist library localparam macromodule medium module nand negedge nmos nor
noshowcancelled not notif0 notif1 or output parameter pmos posedge primitive pull0 pull1
pulldown pullup pulsestyle_onevent pulsestyle_ondetect rcmos real realtime reg release repeat
rnmos rpmos rtran rtranif0 rtranif1 scalared showcancelled signed small specify specparam
strong0 strong1 supply0 supply1 table task time tran tranif0 tranif1 tri tri0 tri1 triand
trior trireg unsigned use uwire vectored wait wand weak0 weak1 while wire wor xnor xor
alias always_comb always_ff always_latch assert assume before bind bins binsof bit break byte
chandle class clocking const constraint context continue cover covergroup coverpoint cross
dist do endclass endclocking endgroup endinterface endpackage endprogram endproperty
endsequence enum expect export extends extern final first_match foreach forkjoin iff
ignore_bins illegal_bins import inside int interface intersect join_any join_none local logic
longint matches modport new null package packed priority program property protected pure rand
randc randcase randsequence ref return sequence shortint shortreal solve static string struct
super tagged this throughout timeprecision timeunit type typedef union unique var virtual void
wait_order wildcard with within
""".split())

_VERILOG_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def verilog_identifier(text: str) -> str:
    """A Verilog module name: ``[A-Za-z_][A-Za-z0-9_$]*`` and no reserved word."""
    if not _VERILOG_ID.fullmatch(str(text)):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a Verilog identifier; allowed: a letter or '_' followed by "
            "letters, digits, '_' or '$'")
    if text in VERILOG_KEYWORDS:
        raise argparse.ArgumentTypeError(f"{text!r} is a Verilog/SystemVerilog reserved word")
    return str(text)


#: option dest -> check, for every sub-command (see the module docstring)
OPTION_TYPES = {
    # folders and files written
    "out": output_dir,
    "build_dir": output_dir,
    "output": output_file,
    # names that end up in generated code
    "module": verilog_identifier,
    # counts and sizes
    "k": positive_int,
    "n": positive_int,
    "hdl_n": positive_int,
    "n_acc": positive_int,
    "terms": positive_int,
    "R": positive_int,
    "C": positive_int,
    "rows": positive_int,
    "cols": positive_int,
    "workers": positive_int,
    "stages": nonnegative_int,
    "seed": nonnegative_int,
    "front_points": nonnegative_int,
    "node": positive_float,
    "worker_timeout": positive_float,
    "claim_lease": positive_float,
    # lists that must not be empty
    "formats": nonempty_text,
    "candidates": nonempty_text,
    "quantizer": nonempty_text,
    "cal_targets": nonempty_text,
    "sweep": nonempty_text,
    "accum": accumulators,
    "multiplier": multipliers,
}

_REPLACEABLE = (None, int, float, str)  # a parser's own custom type= is kept


def install_option_type(action: argparse.Action) -> argparse.Action:
    """Give ``action`` (just added to a parser) the check :data:`OPTION_TYPES` holds for its
    ``dest``; options with a custom ``type`` callable, with ``choices`` or without a value
    (flags) keep their own behaviour."""
    check = OPTION_TYPES.get(action.dest)
    if check is not None and action.type in _REPLACEABLE and not action.choices \
            and action.nargs != 0:
        action.type = check
    return action


__all__ = ["OPTION_TYPES", "VERILOG_KEYWORDS", "accumulators", "install_option_type", "multipliers",
           "nonempty_text", "nonnegative_int", "output_dir", "output_file", "positive_float",
           "positive_int", "verilog_identifier"]
