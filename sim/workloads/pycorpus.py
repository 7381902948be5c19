"""The tinylm corpus: a fixed selection of CPython 3.11 standard-library sources.

``data/pycorpus.txt.xz`` (built by ``scripts/build_pycorpus.py``; Python Software Foundation
License Version 2, text in ``data/PYCORPUS_LICENSE.txt``) holds 34 training modules
(argparse.py, ast.py, ... ~1.5 MB) and 8 held-out modules (queue.py, sched.py, bisect.py,
selectors.py, shlex.py, glob.py, fnmatch.py, copy.py; ~77 kB), ASCII only. Tokens are bytes
(vocabulary 256), so there is no tokenizer to ship.

    train, heldout = load_corpus()        # uint8 arrays
    windows = eval_windows(heldout, n=48, length=129)   # (48, 129) uint8, evenly spaced
"""

from __future__ import annotations

import hashlib
import lzma
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

CORPUS = Path(__file__).resolve().parent / "data" / "pycorpus.txt.xz"
_HEADER = re.compile(r"^# pycorpus v1 split=(\w+) file=(\S+) bytes=(\d+) sha256=([0-9a-f]{64})$")


@lru_cache(maxsize=2)
def load_corpus(path: str | Path = CORPUS) -> tuple[np.ndarray, np.ndarray]:
    """(train, heldout) byte arrays (uint8) of the committed corpus; every file's SHA-256 is
    checked against its header (ValueError naming the file on a mismatch)."""
    text = lzma.decompress(Path(path).read_bytes()).decode("ascii")
    splits: dict[str, list[bytes]] = {"train": [], "heldout": []}
    lines = text.split("\n")
    i = 0
    while i < len(lines) and lines[i]:
        m = _HEADER.match(lines[i])
        if m is None:
            raise ValueError(f"{path}: bad corpus header line {i + 1}: {lines[i][:80]!r}")
        split, name, n, sha = m.group(1), m.group(2), int(m.group(3)), m.group(4)
        body: list[str] = []
        i += 1
        while i < len(lines) and not _HEADER.match(lines[i]):
            body.append(lines[i])
            i += 1
        data = "\n".join(body).encode("ascii")
        data = data[:n] if len(data) >= n else data + b"\n"
        if hashlib.sha256(data[:n]).hexdigest() != sha:
            raise ValueError(f"{path}: {name} does not match its SHA-256")
        splits[split].append(data[:n])
    return (np.frombuffer(b"".join(splits["train"]), np.uint8),
            np.frombuffer(b"".join(splits["heldout"]), np.uint8))


def eval_windows(data: np.ndarray, n: int, length: int) -> np.ndarray:
    """``n`` non-overlapping windows of ``length`` bytes, evenly spaced over ``data``
    (deterministic); (n, length) uint8. ValueError if they do not fit."""
    if n < 1 or length < 2:
        raise ValueError(f"eval_windows: need n >= 1 and length >= 2, got n={n}, length={length}")
    stride = len(data) // n
    if stride < length:
        raise ValueError(f"eval_windows: {n} windows of {length} bytes do not fit in "
                         f"{len(data)} bytes")
    starts = np.arange(n) * stride
    return np.stack([data[s:s + length] for s in starts])
