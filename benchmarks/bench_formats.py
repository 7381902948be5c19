"""Throughput of lowbit.formats element and block quantisation vs ml_dtypes, gfloat and pychop.

One run, same input (2^24 float32 values, standard normal times 4): elements/second for

* element formats fp8_e4m3, fp4_e2m1: ``encode`` (codes) and ``quantize`` (values);
  ml_dtypes ``astype(dtype)`` / ``astype(dtype).astype(float32)``, gfloat ``encode_ndarray`` /
  ``round_ndarray``, pychop ``Chop(e, m)`` (IEEE-style E4M3/E2M1: a different top binade, shown
  for scale only);
* block formats mxfp4, nvfp4, int4_g128: ``quantize`` (quantise + dequantise);
  gfloat ``quantize_block`` per block (MXFP4; NVFP4 emulated with a UE4M3 scale callable and a
  numpy tensor scale; no INT group format in gfloat), pychop ``mx_quantize`` (MXFP4 only).

The slow libraries run on a slice of the input (grown until one call takes >= 0.3 s) and are
scaled to elements/second. lowbit's numba kernels are warmed up first; the compile time of the
first call is reported separately. Times are the best of ``--repeat`` calls.

Memory-bound ratios (issue 14 item 5), same run and input: element casts against a plain numpy
cast of the same bytes (``x.view(uint32).astype(uint8)``; target >= 0.8x for fp8 / fp4
``encode`` and ``quantize``), block formats against the element cast of their element format
(``quantize(x2d, "mxfp4")`` vs ``quantize(x, "fp4_e2m1")``; target >= 0.5x), 2-D input of rows
of 4096. ``--ratios-only`` prints only that table.

Usage: ``python benchmarks/bench_formats.py [--log2n 24] [--repeat 3] [--budget 0.3]``
Needs the ``bench`` extra (gfloat, pychop); columns for a missing library show "n/a".
"""

from __future__ import annotations

import argparse
import importlib.metadata as md_meta
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor

import ml_dtypes
import numba
import numpy as np
from numba import njit

from lowbit.formats import buffers, encode, quantize
from lowbit.formats.buffers import CACHE_ENV

try:
    import gfloat
    from gfloat.formats import (
        format_info_mxfp4_e2m1,
        format_info_ocp_e2m1,
        format_info_ocp_e4m3,
    )
except ImportError:  # pragma: no cover
    gfloat = None
try:
    import pychop
except ImportError:  # pragma: no cover
    pychop = None


def best_time(fn, repeat):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def rate_full(fn, x, repeat):
    """Elements/second of fn over the whole array."""
    return x.size / best_time(lambda: fn(x), repeat)


def rate_slice(fn, x, repeat, budget, start=1 << 10, multiple=32):
    """Elements/second of a slow fn: grow the slice until one call takes >= budget seconds."""
    n = max(start, multiple)
    while True:
        n = min(n, x.size)
        n -= n % multiple
        t = best_time(lambda n=n: fn(x[:n]), 1)
        if t >= budget or n >= x.size:
            break
        n *= max(2, int(budget / max(t, 1e-6)))
    t = best_time(lambda n=n: fn(x[:n]), max(1, repeat - 1)) if t < 5 else t
    return n / t, n


def gfloat_mx_block(fi):
    def run(v):
        blocks = v.astype(np.float64).reshape(-1, 32)
        out = np.empty_like(blocks)
        for i in range(blocks.shape[0]):
            out[i] = gfloat.quantize_block(fi, blocks[i], gfloat.compute_scale_amax)
        return out
    return run


def gfloat_nvfp4():
    """NVFP4 through gfloat: BlockFormatInfo(E2M1, k=16, E4M3 scale) with a custom scale rule
    (UE4M3 RNE of amax_b / 6) after dividing by the FP32 tensor scale amax / (6 * 448) in numpy.
    Agrees with lowbit's codes (values to one float32 ulp of the final product)."""
    fi = gfloat.BlockFormatInfo("nvfp4", format_info_ocp_e2m1, 16, format_info_ocp_e4m3)

    def scale(_emax, vals):
        amax = float(np.max(np.abs(vals)))
        s = float(gfloat.round_ndarray(format_info_ocp_e4m3, np.array([min(amax / 6, 448.0)]))[0])
        return s if s > 0 else 1.0

    def run(v):
        v = v.astype(np.float64)
        ts = float(np.abs(v).max()) / 2688.0 or 1.0
        blocks = (v / ts).reshape(-1, 16)
        out = np.empty_like(blocks)
        for i in range(blocks.shape[0]):
            out[i] = gfloat.quantize_block(fi, blocks[i], scale)
        return out * ts
    return run


def fmt_rate(r):
    if r is None:
        return "n/a"
    if r >= 1e9:
        return f"{r / 1e9:.2f} G"
    if r >= 1e6:
        return f"{r / 1e6:.1f} M"
    return f"{r / 1e3:.1f} k"


def fmt_ratio(a, b):
    return "n/a" if (a is None or b is None) else f"{a / b:.1f}x"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--log2n", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--budget", type=float, default=0.3,
                    help="seconds per call for the sliced (slow) libraries")
    ap.add_argument("--ratios-only", action="store_true",
                    help="only the memory-bound ratio table (no ml_dtypes / gfloat / pychop)")
    args = ap.parse_args(argv)

    n = 1 << args.log2n
    x = (np.random.default_rng(0).standard_normal(n) * 4).astype(np.float32)
    if args.ratios_only:
        print_ratios(x, args.repeat)
        return 0

    # ---------------- warm-up (numba compile), timed separately
    small = x[:4096]
    compile_s = {}
    warm = {
        "fp8_e4m3 encode": lambda v: encode(v, "fp8_e4m3", overflow="nonsat"),
        "fp8_e4m3 quantize": lambda v: quantize(v, "fp8_e4m3", overflow="nonsat"),
        "fp4_e2m1 encode": lambda v: encode(v, "fp4_e2m1"),
        "fp4_e2m1 quantize": lambda v: quantize(v, "fp4_e2m1"),
        "mxfp4 quantize": lambda v: quantize(v, "mxfp4"),
        "nvfp4 quantize": lambda v: quantize(v, "nvfp4"),
        "int4_g128 quantize": lambda v: quantize(v, "int4_g128"),
    }
    for k, fn in warm.items():
        t0 = time.perf_counter()
        fn(small)
        compile_s[k] = time.perf_counter() - t0
        fn(small)

    # sanity: lowbit agrees with ml_dtypes on the benchmark data
    for name, dt in (("fp8_e4m3", ml_dtypes.float8_e4m3fn), ("fp4_e2m1", ml_dtypes.float4_e2m1fn)):
        a = np.asarray(encode(x[: 1 << 20], name, overflow="nonsat"))
        b = x[: 1 << 20].astype(dt).view(np.uint8)
        assert np.array_equal(a, b), f"lowbit {name} disagrees with ml_dtypes"

    rows = []
    R = args.repeat
    B = args.budget

    # ---------------- element formats
    el = [("fp8_e4m3", ml_dtypes.float8_e4m3fn, "nonsat",
           format_info_ocp_e4m3 if gfloat else None, (4, 3)),
          ("fp4_e2m1", ml_dtypes.float4_e2m1fn, "saturate",
           format_info_ocp_e2m1 if gfloat else None, (2, 1))]
    for name, dt, ovf, gfi, (eb, mb) in el:
        lb_enc = rate_full(lambda v, f=name, o=ovf: encode(v, f, overflow=o), x, R)
        lb_q = rate_full(lambda v, f=name, o=ovf: quantize(v, f, overflow=o), x, R)
        md_enc = rate_full(lambda v, d=dt: v.astype(d), x, R)
        md_q = rate_full(lambda v, d=dt: v.astype(d).astype(np.float32), x, R)
        gf_enc = gf_q = pc_q = None
        if gfloat is not None:
            # gfloat saturates only with sat=True; its encode needs representable values
            gf_q, _ = rate_slice(lambda v, g=gfi: gfloat.round_ndarray(g, v, sat=True), x, R, B)
            gf_enc, _ = rate_slice(
                lambda v, g=gfi: gfloat.encode_ndarray(g, gfloat.round_ndarray(g, v, sat=True)),
                x, R, B)
        if pychop is not None:
            ch = pychop.Chop(exp_bits=eb, sig_bits=mb, rmode=1)
            pc_q, _ = rate_slice(lambda v, c=ch: c(v), x, R, B)
        rows.append((f"{name} encode", lb_enc, md_enc, gf_enc, None))
        rows.append((f"{name} quantize", lb_q, md_q, gf_q, pc_q))

    # ---------------- block formats
    for name in ("mxfp4", "nvfp4", "int4_g128"):
        lb = rate_full(lambda v, f=name: quantize(v, f), x, R)
        gf = pc = None
        if gfloat is not None and name == "mxfp4":
            gf, _ = rate_slice(gfloat_mx_block(format_info_mxfp4_e2m1), x, R, B)
        if gfloat is not None and name == "nvfp4":
            gf, _ = rate_slice(gfloat_nvfp4(), x, R, B)
        if pychop is not None and name == "mxfp4":
            pc, _ = rate_slice(lambda v: pychop.mx_quantize(v, "mxfp4_e2m1"), x, R, B)
        rows.append((f"{name} quantize (block)", lb, None, gf, pc))

    # ---------------- report
    threads = os.environ.get("NUMBA_NUM_THREADS", "default")
    print(f"# lowbit.formats throughput, {n:,} float32 values (N(0,4^2)), best of {R}")
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"NUMBA_NUM_THREADS={threads}, numpy {np.__version__}, ml_dtypes {ml_dtypes.__version__}"
          + (f", gfloat {md_meta.version('gfloat')}" if gfloat else "")
          + (f", pychop {md_meta.version('pychop')}" if pychop else ""))
    print()
    print("| operation | lowbit el/s | ml_dtypes el/s | lowbit/ml_dtypes | gfloat el/s | "
          "lowbit/gfloat | pychop el/s | lowbit/pychop |")
    print("|---|---|---|---|---|---|---|---|")
    for op, lb, md, gf, pc in rows:
        print(f"| {op} | {fmt_rate(lb)} | {fmt_rate(md)} | {fmt_ratio(lb, md)} | {fmt_rate(gf)} | "
              f"{fmt_ratio(lb, gf)} | {fmt_rate(pc)} | {fmt_ratio(lb, pc)} |")
    print()
    print("First-call (numba compile + run on 4096 values) seconds:")
    print("| call | seconds |")
    print("|---|---|")
    for k, v in compile_s.items():
        print(f"| {k} | {v:.2f} |")
    print()
    print("Targets: element formats >= 1.0x ml_dtypes; block formats >= 100x gfloat. "
          "pychop's Chop(e, m) is IEEE-style (its E4M3/E2M1 top binade differs from OCP).")
    print()
    print_ratios(x, R)
    return 0


@njit(cache=True, nogil=True)
def _copy(u, out):
    """``out[i] = u[i]`` (narrowed to ``out``'s dtype)."""
    for i in range(u.shape[0]):
        out[i] = u[i]


_COPY_POOL = ThreadPoolExecutor(max_workers=max(numba.get_num_threads(), 1))


def _copy_all_cores(u, out):
    """:func:`_copy` on every core, one slice per thread: the memory-bound ceiling of a
    conversion that reads float32 and writes ``out``'s bytes per element. Plain threads running
    a GIL-free kernel, as lowbit's conversions do (a numba ``prange`` here used OpenMP, whose
    threads keep spinning after the loop and slowed the case timed next)."""
    n = max(numba.get_num_threads(), 1)
    step = -(-u.shape[0] // n)
    parts = [_COPY_POOL.submit(_copy, u[s:s + step], out[s:s + step])
             for s in range(0, u.shape[0], step)]
    for p in parts:
        p.result()


def fresh_pages(fn):
    """``fn`` with lowbit's output-buffer cache off (``LOWBIT_BUFFER_CACHE_MB=0``): every
    result of 32 MiB or more is then new memory from the system, zero-filled page by page."""
    def run(*a, **k):
        old = os.environ.get(CACHE_ENV)
        os.environ[CACHE_ENV] = "0"
        try:
            return fn(*a, **k)
        finally:
            if old is None:
                del os.environ[CACHE_ENV]
            else:
                os.environ[CACHE_ENV] = old
    return run


def interleaved_rates(cases, n, repeat):
    """Elements/second (``n`` elements per call) of every callable in ``cases``, best of
    ``repeat`` rounds; each round calls every case once in turn, so a baseline and the
    operations divided by it are timed minutes apart at most and under the same load."""
    best = dict.fromkeys(cases, np.inf)
    for _ in range(repeat):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: n / t for name, t in best.items()}


RATIO_ELEMENTS = ("fp8_e4m3", "fp4_e2m1")
RATIO_BLOCKS = (("mxfp8_e4m3", "fp8_e4m3"), ("mxfp4", "fp4_e2m1"), ("nvfp4", "fp4_e2m1"),
                ("mxfp6_e2m3", "fp6_e2m3"), ("int4_g128", "int4"))


def print_ratios(x, repeat):
    """Element casts vs a plain numpy uint32 -> uint8 cast of the same array, and block formats
    vs the element cast of their element format, all measured in this run (interleaved)."""
    x2 = x.reshape(-1, 4096)
    u = x.view(np.uint32)
    for f in RATIO_ELEMENTS + tuple(b for b, _ in RATIO_BLOCKS):
        encode(x2[:16], f)  # compile / build tables outside the timings
        quantize(x2[:16], f)
    encode(x[:4096], "fp6_e2m3")
    quantize(x[:4096], "int4")
    _copy_all_cores(u[:4096], np.empty(4096, np.uint8))
    _copy_all_cores(u[:4096], np.empty(4096, np.uint32))
    buf, own, dst32 = np.empty_like(x), x.copy(), np.empty(x.size, np.uint32)
    cases = {
        "cast": lambda: u.astype(np.uint8),
        "cast32": lambda: u.astype(np.float32),
        "ceiling encode": lambda: _copy_all_cores(u, np.empty(u.size, np.uint8)),
        "ceiling quantize": lambda: _copy_all_cores(u, buffers.empty(u.size, np.uint32)),
        "ceiling quantize fresh": fresh_pages(lambda: _copy_all_cores(
            u, buffers.empty(u.size, np.uint32))),
        "copy into buffer": lambda: _copy_all_cores(u, dst32),
    }
    for f in RATIO_ELEMENTS + ("fp6_e2m3", "int4"):
        cases[f, "encode"] = lambda f=f: encode(x, f)
        cases[f, "quantize"] = lambda f=f: quantize(x, f)
    for f in RATIO_ELEMENTS:
        cases[f, "quantize", "fresh pages"] = fresh_pages(lambda f=f: quantize(x, f))
        cases[f, "quantize", "out=buffer"] = lambda f=f: quantize(x, f, out=buf)
        cases[f, "quantize", "in place, out=x"] = lambda f=f: quantize(own, f, out=own)
    for b, _ in RATIO_BLOCKS:
        cases[b, "encode"] = lambda b=b: encode(x2, b)
        cases[b, "quantize"] = lambda b=b: quantize(x2, b)
    r = interleaved_rates(cases, x.size, repeat)
    cast, cast32 = r["cast"], r["cast32"]
    print(f"Memory-bound ratios, {x.size:,} float32 values, best of {repeat} interleaved rounds, "
          f"load {os.getloadavg()[0]:.1f}, output-buffer cache {buffers.cache_limit_bytes() >> 20}"
          f" MiB (numpy uint32->uint8 cast of the same array: {fmt_rate(cast)} el/s; "
          f"uint32->float32 cast, which writes as many bytes as quantize: {fmt_rate(cast32)} "
          f"el/s; a numba copy on {numba.get_num_threads()} threads, the ceiling of a conversion "
          f"writing the same bytes: {fmt_rate(r['ceiling encode'])} el/s to a fresh uint8 array "
          f"(encode), {fmt_rate(r['ceiling quantize'])} el/s to a 4-byte array from lowbit's "
          f"buffer cache (quantize), {fmt_rate(r['ceiling quantize fresh'])} el/s to fresh "
          f"zero-filled pages, {fmt_rate(r['copy into buffer'])} el/s into an existing array)")
    print("| operation | lowbit el/s | baseline | ratio | target | vs uint32->float32 cast | "
          "copy ceiling / numpy uint8 cast | lowbit / copy ceiling |")
    print("|---|---|---|---|---|---|---|---|")
    ceiling = {"encode": r["ceiling encode"], "quantize": r["ceiling quantize"],
               "fresh pages": r["ceiling quantize fresh"], "out=buffer": r["copy into buffer"],
               "in place, out=x": r["copy into buffer"]}
    for f in RATIO_ELEMENTS:
        for key in ((f, "encode"), (f, "quantize"), (f, "quantize", "fresh pages"),
                    (f, "quantize", "out=buffer"), (f, "quantize", "in place, out=x")):
            v, c = r[key], ceiling[key[-1]]
            label = f"{f} {key[1]}" + (f" ({key[2]})" if len(key) > 2 else "")
            print(f"| {label} | {fmt_rate(v)} | numpy cast | {v / cast:.2f}x | >= 0.8x | "
                  f"{v / cast32:.2f}x | {c / cast:.2f}x | {v / c:.2f}x |")
    for b, e in RATIO_BLOCKS:
        for op in ("encode", "quantize"):
            v = r[b, op]
            print(f"| {b} {op} | {fmt_rate(v)} | {e} {op} | {v / r[e, op]:.2f}x | >= 0.5x | "
                  f"{v / cast32:.2f}x | | |")


if __name__ == "__main__":
    raise SystemExit(main())
