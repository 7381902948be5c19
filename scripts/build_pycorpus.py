"""Build ``sim/workloads/data/pycorpus.txt.xz``: the tinylm training / held-out corpus.

The corpus is a fixed selection of CPython 3.11 standard-library modules (``Lib/*.py``; Python
Software Foundation License Version 2, a permissive licence that allows redistribution with
the licence notice, see ``sim/workloads/data/PYCORPUS_LICENSE.txt``). The committed file is the
output of this script run against CPython 3.11.7's ``Lib/``; re-running it against another
3.11.x may change a few bytes, so the workload always reads the committed file, never the
installed library.

Format (UTF-8 text, xz-compressed): a header line ``# pycorpus v1 split=<train|heldout>
file=<path> bytes=<n> sha256=<hex>`` before each file's text. The loader splits on those
lines.

    python scripts/build_pycorpus.py [--lib /path/to/python3.11]
"""

from __future__ import annotations

import argparse
import hashlib
import lzma
import sysconfig
from pathlib import Path

TRAIN_FILES = (
    "argparse.py", "ast.py", "calendar.py", "collections/__init__.py", "configparser.py",
    "contextlib.py", "csv.py", "dataclasses.py", "datetime.py", "difflib.py", "enum.py",
    "fractions.py", "functools.py", "heapq.py", "ipaddress.py", "json/decoder.py",
    "json/encoder.py", "logging/__init__.py", "pathlib.py", "pprint.py", "random.py",
    "shutil.py", "statistics.py", "string.py", "tempfile.py", "textwrap.py", "threading.py",
    "tokenize.py", "traceback.py", "uuid.py", "weakref.py", "zipfile.py", "gettext.py",
    "base64.py",
)
HELDOUT_FILES = ("queue.py", "sched.py", "bisect.py", "selectors.py", "shlex.py", "glob.py",
                 "fnmatch.py", "copy.py")
OUT = Path(__file__).resolve().parents[1] / "sim" / "workloads" / "data" / "pycorpus.txt.xz"


def build(lib: Path, out: Path = OUT) -> Path:
    parts = []
    for split, files in (("train", TRAIN_FILES), ("heldout", HELDOUT_FILES)):
        for f in files:
            text = (lib / f).read_text(encoding="utf-8")
            text = "".join(ch if ord(ch) < 128 else "?" for ch in text)  # ASCII only
            data = text.encode("ascii")
            sha = hashlib.sha256(data).hexdigest()
            parts.append(f"# pycorpus v1 split={split} file={f} bytes={len(data)} sha256={sha}\n")
            parts.append(text if text.endswith("\n") else text + "\n")
    out.write_bytes(lzma.compress("".join(parts).encode("ascii"), preset=9))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lib", default=sysconfig.get_paths()["stdlib"],
                    help="CPython Lib/ folder (default: this interpreter's)")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args()
    print(build(Path(a.lib), Path(a.out)))
