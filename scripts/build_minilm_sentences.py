"""Build ``sim/workloads/data/docstring_sentences.txt``: the minilm evaluation set.

1,000 real English sentences written by people: the first sentence of the docstrings of
CPython 3.11's standard-library modules, classes and functions (Python Software Foundation
License Version 2, see ``sim/workloads/data/PYCORPUS_LICENSE.txt``). Selection (deterministic):
modules in sorted path order under ``Lib/`` (no tests, no idlelib / lib2to3 / turtledemo /
ensurepip / site-packages), docstrings in ``ast.walk`` order; a sentence is kept when it has
8-30 words, starts with an upper-case letter, ends with a full stop, contains only letters,
digits, spaces and , . ; : ' - and is not a duplicate (case-insensitive). The committed file is
the output against CPython 3.11.7; the workload always reads the committed file.

    python scripts/build_minilm_sentences.py [--lib /path/to/python3.11] [--n 1000]
"""

from __future__ import annotations

import argparse
import ast
import re
import sysconfig
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "sim" / "workloads" / "data" / "docstring_sentences.txt"
SKIP = ("test", "tests", "idlelib", "lib2to3", "turtledemo", "ensurepip", "site-packages",
        "__pycache__")
OK = re.compile(r"^[A-Z][A-Za-z0-9 ,.;:'\-]+\.$")


def first_sentence(doc: str) -> str:
    text = " ".join(doc.strip().split("\n\n")[0].split())
    m = re.match(r"^(.+?\.)(\s|$)", text)
    return m.group(1) if m else ""


def sentences(lib: Path):
    for path in sorted(lib.rglob("*.py")):
        rel = path.relative_to(lib)
        if any(part in SKIP or part.startswith("test") for part in rel.parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    yield first_sentence(doc)


def build(lib: Path, n: int = 1000, out: Path = OUT) -> Path:
    seen, keep = set(), []
    for s in sentences(lib):
        if not OK.match(s) or not 8 <= len(s.split()) <= 30 or s.lower() in seen:
            continue
        seen.add(s.lower())
        keep.append(s)
        if len(keep) == n:
            break
    if len(keep) < n:
        raise SystemExit(f"only {len(keep)} sentences found under {lib}")
    out.write_text("\n".join(keep) + "\n")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lib", default=sysconfig.get_paths()["stdlib"])
    ap.add_argument("--n", type=int, default=1000)
    a = ap.parse_args()
    print(build(Path(a.lib), a.n))
