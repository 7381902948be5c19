"""Every command and code block of README.md runs, so that a renamed function or option cannot
break a documented command unnoticed.

What is extracted from README.md (automatically: a new block or command is picked up):

* every fenced ```python block: all of them run IN ORDER in one fresh interpreter (the venv's
  Python, in a temporary folder), as a reader runs them top to bottom; a failure names the
  README line of the block;
* every command of a fenced ```bash / ```sh / ```console block (one per line, ``\\``
  continuations joined, ``# comments`` dropped), and every inline `code` span that starts with a
  command word (``lowbit``, ``make``, ``python``, ``source``, ...) and an argument, or names an ``examples/*.py``
  script.

Each command runs in bash in its own temporary folder that looks like the repository root (a
symbolic link to every top-level entry but ``results/``, so ``examples/...``, ``Makefile`` and
``.venv`` are where a reader has them and outputs stay out of the checkout), with this venv's
``bin`` first on PATH.
Most run exactly as written (:data:`AS_IS`); a long one runs as the small-input variant listed in
:data:`SMALL` together with the reason; one that reads files the python blocks write runs after
them in their folder (:data:`AFTER_PYTHON`).  ``test_every_readme_command_is_covered`` fails when
a README command is in no table (add it: to AS_IS if it takes seconds, else a small variant to
SMALL) or when a table entry is no longer in the README.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
COMMAND_WORDS = ("lowbit", "make", "python", "python3", "source", "bash", "pip", "pytest")
SHELL_LANGS = ("bash", "sh", "shell", "console")
TIMEOUT_S = 900

#: README commands run exactly as written
AS_IS = {
    "lowbit formats",
    "lowbit formats show fp4_e2m1",
    "lowbit rtl fp_mac --a fp8_e4m3 --b fp8_e4m3 --acc fp32 --stages 2 -o fp8_mac.v",
    "lowbit cosim lmul_mul --a fp8_e4m3 --b fp8_e4m3 --exhaustive",
    "lowbit cosim kulisch_mac --a fp4_e2m1 --b fp4_e2m1 --stages 3 --exhaustive",
    "lowbit cost fp_mac --a fp8_e4m3 --b fp8_e4m3 --acc fp32 --stages 2 --target ice40",
    "lowbit cost kulisch_mac --a fp8_e4m3 --b fp8_e4m3 --terms 1024",
    "lowbit cosim fp_mul --a fp8_e4m3 --b fp8_e4m3 --exhaustive",
    "lowbit report --workload digits-cnn --acc exact,fp32 --out results/report",
    "python examples/custom_workload.py",
    "python -m lowbit.kernels.validate",
    "lowbit experiment list",
    "lowbit sweep --workload digits-cnn --formats int4_g128/fp8_e4m3,fp4_e2m1_pc --accum fp32 "
    "--quantizer rtn,hadamard:16+gptq",
    "lowbit report --workload examples/torch_model.py:make_cnn_workload --formats int8_pc,mxfp4 "
    "--out results/digit-cnn-report",
}

_SWEEP_SMALL = "lowbit sweep --formats fp32,mxfp4 --no-progress --no-plots --workers 1"

#: README command -> (what this test runs instead, why).  ``{scheduler}``: the address of a
#: Dask LocalCluster this test starts.
SMALL = {
    "make demo": (
        "make -n demo | grep 'lowbit sweep --out results/sweep' >/dev/null",
        "make -n checks the target and its recipe; the sweep it runs is `lowbit sweep` below"),
    "make test": (
        "make -n test | grep pytest >/dev/null",
        "running the suite from inside the suite would recurse; make -n checks the recipe"),
    "make bench": (
        "make -n bench | grep bench_ >/dev/null",
        "benchmarks take minutes and are measured by hand (benchmarks/README.md)"),
    "make lint": (
        "make -n lint | grep 'ruff check' >/dev/null && ruff --version",
        "make -n checks the recipe (a real run could reinstall the venv); ruff is installed"),
    "source .venv/bin/activate": (
        "source .venv/bin/activate && command -v lowbit && lowbit --version",
        "activating the venv must give the lowbit command"),
    "lowbit sweep": (
        "lowbit sweep --formats mxfp4 --no-progress && test -s results/sweep/tinylm/report.md",
        "1 of the 13 default formats on the default workload (tinylm)"),
    "lowbit sweep --workload minilm --formats int8_pc,mxfp4,nvfp4": (
        "lowbit sweep --workload minilm --formats int8_pc --no-progress --no-plots --workers 1 "
        "&& test -s results/sweep/minilm/results.csv",
        "1 of the 3 formats: one MiniLM point takes tens of seconds"),
    "lowbit sweep --scheduler tcp://HOST:8786": (
        "lowbit sweep --scheduler {scheduler} --workload digits-cnn --formats fp32 --no-progress "
        "--no-plots && grep -q ',ok,' results/sweep/digits-cnn/results.csv",
        "a real Dask LocalCluster started by this test instead of HOST:8786; one digits-cnn "
        "point (a tinylm point takes a minute)"),
    "lowbit search --workload digits-cnn --candidates fp8_e4m3,mxfp6_e2m3,mxfp4,nvfp4,int8,int4 "
    "--budget energy=0.5 --out results/search": (
        "lowbit search --workload digits-cnn --candidates fp8_e4m3,mxfp4,int4 --budget energy=0.5 "
        "--front-points 2 --out results/search --quiet && test -s results/search/summary.md",
        "3 of the 6 candidates and a 2-point front"),
    "lowbit cosim mx_dot --a fp4_e2m1 --hdl icarus": (
        "lowbit cosim mx_dot --a fp4_e2m1 --hdl icarus --n 200",
        "200 random vectors instead of 100,000"),
    "lowbit report --calibrate": (
        "lowbit report --calibrate --cal-targets gates --no-progress --out results/cal "
        "&& test -s results/cal/calibration.md",
        "the generic-gates target only (Xilinx / iCE40 synthesis takes many minutes)"),
    "lowbit report --workload tinylm --sweep results/sweep --out results/report": (
        "lowbit sweep --workload digits-cnn --formats fp32,mxfp4 --no-progress --no-plots "
        "--workers 1 --out results/sweep && lowbit report --workload digits-cnn --sweep "
        "results/sweep --out results/report && grep -q mxfp4 results/report/report.md",
        "needs a sweep first: a 2-format digits-cnn one (a tinylm sweep takes minutes)"),
    "lowbit sweep --workload digits-cnn --formats fp8_e4m3,int8_pc --multiplier exact,lmul "
    "--out results/lmul": (
        "lowbit sweep --workload digits-cnn --formats fp8_e4m3 --multiplier exact,lmul "
        "--out results/lmul --workers 1 --no-progress --no-plots "
        "&& grep -q fp8_e4m3@lmul results/lmul/digits-cnn/results.csv",
        "2 of the 4 points: the exact and the L-Mul multiplier"),
    "lowbit report --workload digits-cnn --formats fp8_e4m3,fp8_e4m3@lmul,int8_pc --acc "
    "fp32,int32 --sweep results/lmul --out results/lmul_report": (
        "lowbit sweep --workload digits-cnn --formats fp8_e4m3 --multiplier exact,lmul "
        "--out results/lmul --workers 1 --no-progress --no-plots && lowbit report --workload "
        "digits-cnn --formats fp8_e4m3,fp8_e4m3@lmul,int8_pc --acc fp32,int32 --sweep "
        "results/lmul --out results/lmul_report && test -s results/lmul_report/report.md",
        "as written, after the 2-point version of the sweep above that it reads"),
    "python scripts/lowprec_training.py": (
        "python scripts/lowprec_training.py --steps 5 --seeds 0 --out results/lp "
        "&& test -s results/lp/table.md && test -s results/lp/loss.png",
        "5 training steps and one seed instead of 300 steps x 3 seeds (minutes)"),
    "lowbit experiment NAME '[--workload' 'W]'": (
        "lowbit experiment mr-gptq --workload digits-cnn --out results/experiments "
        "&& test -s results/experiments/mr-gptq/table.md",
        "on digits-cnn instead of tinylm (minutes)"),
    "lowbit experiment": (
        "lowbit experiment --help | grep mr-gptq >/dev/null",
        "the command named in prose; its help lists the experiments"),
    "lowbit rtl": (
        "lowbit rtl --help | grep -- --module >/dev/null",
        "the command named in prose; its help lists the options"),
    "make experiments": (
        "make -n experiments | grep 'lowbit experiment' >/dev/null",
        "make -n checks the recipe; `lowbit experiment mr-gptq` runs above"),
    "lowbit sweep --workload examples/torch_model.py:make_transformer_workload --formats "
    "fp8_e4m3,mxfp4,nvfp4 --accum fp32 --out results/row-transformer --workers 1": (
        "lowbit sweep --workload examples/torch_model.py:make_transformer_workload --formats mxfp4 "
        "--accum fp32 --out results/row-transformer --workers 1 --no-progress --no-plots",
        "1 of the 3 formats (the workload trains its transformer first)"),
    "python examples/torch_model.py": (
        "python examples/torch_model.py "
        "&& test -s results/torch_model/row-transformer/report/report.md",
        "as written (the script has no small-input mode; about a minute on an idle machine)"),
}


#: README commands that read files the README's python blocks write: they run, as written or
#: as the given variant, in ``test_readme_python_blocks`` after the blocks, in the same folder.
AFTER_PYTHON = {
    "lowbit sweep --workload results/my-cnn.onnx --data results/my-cnn.npz --formats "
    "mxfp4,int8_pc --out results/my-cnn-onnx --workers 1": (
        "lowbit sweep --workload results/my-cnn.onnx --data results/my-cnn.npz --formats "
        "mxfp4,int8_pc --out results/my-cnn-onnx --workers 1 --no-progress "
        "&& grep -rq ',ok,' --include=results.csv results/my-cnn-onnx",
        "the ONNX file and data come from the python block above it"),
}


# ------------------------------------------------------------------------ README parsing


def _blocks(text: str) -> list[tuple[str, str, int]]:
    """Fenced blocks: (language, code, line of the first code line)."""
    out, lang, buf, start = [], None, [], 0
    for i, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^\s*```\s*([\w+-]*)", line)
        if m and lang is None:
            lang, buf, start = m.group(1).lower() or "text", [], i + 1
        elif line.strip().startswith("```") and lang is not None:
            out.append((lang, textwrap.dedent("\n".join(buf)), start))
            lang = None
        elif lang is not None:
            buf.append(line)
    return out


_OPERATOR = set("();<>|&")


def _shell_commands(code: str) -> list[str]:
    """One command per logical line (``\\`` continuations joined, ``# comments`` dropped,
    whitespace normalised; ``|``, ``&&`` and ``;`` kept as operators)."""
    out, cur = [], ""
    for raw in code.splitlines():
        cur += raw.rstrip()
        if cur.endswith("\\"):
            cur = cur[:-1] + " "
            continue
        lex = shlex.shlex(cur, posix=True, punctuation_chars=True)
        lex.whitespace_split, lex.commenters = True, "#"
        toks = list(lex)
        if toks[:1] == ["$"]:  # console prompt
            toks = toks[1:]
        if toks:
            out.append(" ".join(t if set(t) <= _OPERATOR else shlex.quote(t) for t in toks))
        cur = ""
    return out


def _outside_fences(text: str) -> str:
    return re.sub(r"^\s*```.*?^\s*```", "", text, flags=re.S | re.M)


def readme_commands(text: str) -> list[str]:
    """Every command of README.md, in order, without duplicates."""
    cmds = [c for lang, code, _ in _blocks(text) if lang in SHELL_LANGS
            for c in _shell_commands(code)]
    for span in re.findall(r"`([^`\n]+)`", _outside_fences(text)):
        span = span.strip()
        words = span.split()
        if len(words) > 1 and words[0] in COMMAND_WORDS:  # a bare `lowbit` names the program
            cmds += _shell_commands(span)
        elif re.fullmatch(r"examples/[\w./-]+\.py", span):
            cmds.append(f"python {span}")
    return list(dict.fromkeys(cmds))


def python_blocks(text: str) -> list[tuple[str, int]]:
    return [(code, line) for lang, code, line in _blocks(text) if lang in ("python", "py")]


TEXT = README.read_text()
COMMANDS = readme_commands(TEXT)
STANDALONE = [c for c in COMMANDS if c not in AFTER_PYTHON]


# ------------------------------------------------------------------------ tests


def test_every_readme_command_is_covered():
    missing = [c for c in COMMANDS if c not in AS_IS and c not in SMALL and c not in AFTER_PYTHON]
    stale = sorted((AS_IS | set(SMALL) | set(AFTER_PYTHON)) - set(COMMANDS))
    overlap = (AS_IS & set(SMALL)) | ((AS_IS | set(SMALL)) & set(AFTER_PYTHON))
    assert not overlap, f"commands in more than one table: {sorted(overlap)}"
    assert not missing, ("README commands not covered by tests/test_readme.py; add each to AS_IS "
                         "(runs in seconds), a small-input variant to SMALL, or to AFTER_PYTHON "
                         "(it reads what the python blocks write):\n  "
                         + "\n  ".join(missing))
    assert not stale, "entries of AS_IS / SMALL no longer in README.md:\n  " + "\n  ".join(stale)


def test_readme_parser_finds_blocks_and_commands():
    """The extraction itself: continuations joined, comments dropped, inline spans included."""
    md = ("Run `lowbit formats` or `make x`; not `get_format`.\n```bash\nlowbit a --b c \\\n"
          "      --d e      # note\n\nmake q\n```\n```python\nprint(1)\n```\n")
    assert readme_commands(md) == ["lowbit a --b c --d e", "make q", "lowbit formats", "make x"]
    assert python_blocks(md) == [("print(1)", 9)]
    assert _shell_commands("$ a 'b c' | d && e  # x") == ["a 'b c' | d && e"]
    assert len(COMMANDS) >= 10 and len(python_blocks(TEXT)) >= 4


@pytest.fixture(scope="module")
def scheduler():
    import distributed  # a core dependency (dask[distributed])

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  protocol="tcp://", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def _repo_like(folder: Path) -> None:
    """Make ``folder`` look like the repository root: links to its top-level entries."""
    for entry in ROOT.iterdir():
        if entry.name not in ("results", ".git"):
            (folder / entry.name).symlink_to(entry)


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("LOWBIT_DEBUG", None)
    return env


def _run_command(command: str, run: str, folder: Path) -> None:
    r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", run], cwd=folder, env=_env(),
                       capture_output=True, text=True, timeout=TIMEOUT_S)
    assert r.returncode == 0, (f"README command {command!r} ran as {run!r}: exit {r.returncode}\n"
                               f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    assert "Traceback" not in r.stderr, r.stderr[-3000:]


@pytest.mark.parametrize("command", STANDALONE)
def test_readme_command(command, tmp_path, request):
    if command in AS_IS:
        run = command
    elif command in SMALL:
        run = SMALL[command][0]
    else:
        pytest.fail(f"README command {command!r} is not covered: add it to AS_IS or SMALL")
    if "{scheduler}" in run:
        run = run.format(scheduler=request.getfixturevalue("scheduler"))
    _repo_like(tmp_path)
    _run_command(command, run, tmp_path)


DRIVER = """
import json, sys, traceback
ns = {"__name__": "__main__"}
for block in json.load(open(sys.argv[1])):
    code = "\\n" * (block["line"] - 1) + block["code"]  # README line numbers in tracebacks
    try:
        exec(compile(code, block["file"], "exec"), ns)
    except BaseException:
        traceback.print_exc()
        sys.exit(f"README.md python block at line {block['line']} failed")
"""


def test_readme_python_blocks(tmp_path):
    """All python blocks in order in one interpreter, then the AFTER_PYTHON commands."""
    _repo_like(tmp_path)
    blocks = [{"code": c, "line": ln, "file": str(README)} for c, ln in python_blocks(TEXT)]
    (tmp_path / "blocks.json").write_text(json.dumps(blocks))
    (tmp_path / "driver.py").write_text(DRIVER)
    r = subprocess.run([sys.executable, "driver.py", "blocks.json"], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=TIMEOUT_S)
    assert r.returncode == 0, r.stderr[-5000:]
    for command in COMMANDS:
        if command in AFTER_PYTHON:
            _run_command(command, AFTER_PYTHON[command][0], tmp_path)
