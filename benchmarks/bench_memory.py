"""Peak memory of lowbit.formats conversions on a large float32 tensor, as a ratio to the input.

Each (format, operation) runs in a fresh subprocess: warm the numba kernels on a small input,
build the input (``--gib`` GiB of float32 standard normal values, 1 by default), run the
operation once and read the process's peak resident set size (``getrusage`` ``ru_maxrss``). The
ratio is ``peak RSS / input bytes``: it includes the input itself, the result and the Python /
numpy / numba process (about 0.2-0.3 GiB). Target: <= 2.5 for every format (issue 14).

Operations: ``quantize(x, fmt)`` (float32 result, the size of the input), ``encode(x, fmt)``
(codes; a QuantizedTensor for block formats) and ``decode`` of those codes to float32
(``decode(codes, fmt, dtype=np.float32)``, the input freed first: the codes and the result).

Usage: ``python benchmarks/bench_memory.py [--gib 1] [--formats fp8_e4m3,nvfp4,...|all]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from lowbit.formats import list_formats

FORMATS = ["fp8_e4m3", "fp8_e5m2", "fp6_e3m2", "fp4_e2m1", "bf16", "fp16", "e8m0", "p3109_k8p4se",
           "int8", "int4", "int16", "mxfp8_e4m3", "mxfp6_e2m3", "mxfp4", "mxint8", "nvfp4", "bfp8",
           "int4_g128", "int8_pc", "int8_pt", "int4_g128_asym", "fp8_e4m3_pc", "fp4_e2m1_g32"]
"""Default: every conversion path (fast arithmetic, lookup table, exact kernel; power-of-two,
amax, two-level and asymmetric block scales; per-block, per-channel and per-tensor rows).
``--formats all`` runs every registered format."""
OPS = ("quantize", "encode", "decode")

CHILD = r"""
import resource, sys, time
import numpy as np
from lowbit.formats import decode, encode, get_format, quantize
fmt, op, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
f = get_format(fmt)
small = np.random.default_rng(1).standard_normal((512, 256), dtype=np.float32)
quantize(small, f); encode(small, f)
if f.kind != "block":
    decode(encode(small, f), f, dtype=np.float32)
else:
    encode(small, f).dequantize(np.float32)
x = np.random.default_rng(0).standard_normal(n, dtype=np.float32).reshape(-1, 4096)
nbytes = x.nbytes
t0 = time.perf_counter()
if op == "quantize":
    y = quantize(x, f)
elif op == "encode":
    y = encode(x, f)
else:
    c = encode(x, f)
    del x
    y = c.dequantize(np.float32) if f.kind == "block" else decode(c, f, dtype=np.float32)
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(peak / nbytes, dt)
"""


def measure(fmt: str, op: str, n: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, fmt, op, str(n)], capture_output=True,
                         text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"{fmt} {op}: {out.stderr.strip().splitlines()[-1]}")
    ratio, dt = out.stdout.split()
    return float(ratio), float(dt)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=1.0, help="input size in GiB (float32)")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--json", help="write the table to this JSON file")
    a = ap.parse_args(argv)
    n = int(a.gib * (1 << 30)) // 4 // 4096 * 4096
    print(f"peak RSS / input bytes, input {n * 4 / 2**30:.2f} GiB float32 ({n:,} values), "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; target <= 2.5")
    print(f"{'format':16s}" + "".join(f"{op:>14s}" for op in OPS))
    rows = []
    worst = 0.0
    names = list_formats() if a.formats == "all" else a.formats.split(",")
    for fmt in names:
        cells = []
        for op in OPS:
            r, dt = measure(fmt, op, n)
            worst = max(worst, r)
            cells.append(f"{r:8.2f} ({dt:4.1f}s)")
            rows.append({"format": fmt, "op": op, "ratio": r, "seconds": dt})
        print(f"{fmt:16s}" + "".join(f"{c:>14s}" for c in cells))
    print(f"worst ratio {worst:.2f} ({'meets' if worst <= 2.5 else 'misses'} <= 2.5); "
          f"this process peaked at {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f}"
          f" GiB")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"gib": a.gib, "rows": rows, "time": time.time()}, fh, indent=1)
    return 0 if worst <= 2.5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
