"""Closed-form performance / traffic model of an R x C systolic MAC array.

A layer is a (grouped) GEMM ``O[M, N] = A[M, K] @ B[K, N]`` repeated ``groups`` times:
A = activations (conv: im2col rows, M = output pixels * batch, K = Cin/groups*kh*kw),
B = weights (N = output channels / groups). Everything is vectorised over layers (numpy
arrays in, arrays out), so whole networks take well under a millisecond.

Dataflows (SCALE-Sim convention, Samajdar et al. 2018/2020) map two GEMM dimensions onto
the array rows / columns (spatial, S_r x S_c) and stream the third (temporal, T):

=========  ==================  ==============  ===========
dataflow   rows (S_r)          cols (S_c)      streamed T
=========  ==================  ==============  ===========
OS         M                   N               K
WS         K                   N               M
IS         K                   M               N
=========  ==================  ==============  ===========

Folds: F_r = ceil(S_r / R), F_c = ceil(S_c / C), F = groups * F_r * F_c.

Cycles per fold (``fill="serial"``, SCALE-Sim paper): ``2R + C + T - 2`` -- R cycles to
load the stationary operand (WS / IS) or drain the R result rows (OS), R + C - 2 cycles of
skew (fill + drain of the wavefront) and T cycles of streaming. Total = F * (2R + C + T - 2).
``fill="overlapped"`` models double-buffered stationary registers: the next fold's
preload / drain hides under streaming, total = F * max(T, R) + (R + C - 2) + R.
``fill="rtl"`` (default) is the cycle count of lowbit.hw's systolic RTL + driver
(hw/systolic.py): OS reads the R x C accumulators in parallel (1 clear cycle per tile
instead of R drain cycles), WS / IS load the stationary operand in R cycles; one final
read-out cycle:

    OS:      F * (T + R + C - 1) + 1
    WS, IS:  F * (T + 2R + C - 2) + 1

Utilisation = MACs / (R * C * cycles); mapping efficiency = MACs / (F * R * C * T).

SRAM traffic in elements (reads of A, B; writes / reads of outputs and partial sums):

========  ==============  ==============  =========================  ===================
dataflow  A reads         B reads         output writes              psum reads
========  ==============  ==============  =========================  ===================
OS        M K F_c         K N F_r         M N                        0
WS        M K F_c         K N             M N F_r                    M N (F_r - 1)
IS        M K             K N F_c         M N F_r                    M N (F_r - 1)
========  ==============  ==============  =========================  ===================

(times ``groups``). Bytes = elements * bits / 8 with ``bits_per_element`` of each
operand's format (block scales included: MXFP4 4.25, NVFP4 4.5), partial sums at
``psum_bits`` (accumulator width), final outputs at the output format's bits.

DRAM traffic (two-level model with one scratchpad per operand, ``buffers`` in bytes):
an operand whose unique footprint fits its buffer is fetched once (U bytes); otherwise
every SRAM read pass refetches it: min(SRAM read bytes, U * passes). Outputs are written
once. Partial sums (WS / IS, K split over ``F_r`` row folds): the folds of one column fold run
back to back (the loop order the SRAM counts above already use: A is re-read once per column
fold), so the live partial sums are one column fold's outputs, ``T * min(S_c, C)`` values
(``T`` = M for WS, N for IS) of one group; when that set does not fit the output buffer the
partial sums spill (reads + writes go to DRAM). Tiling ``T`` to avoid such a spill is not
modelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DATAFLOWS", "FILLS", "ArrayConfig", "gemm_model", "layers_to_gemm", "network_model"]

DATAFLOWS = ("OS", "WS", "IS")
FILLS = ("rtl", "serial", "overlapped")


@dataclass(frozen=True)
class ArrayConfig:
    """Array geometry, dataflow and memory system.

    rows, cols: R x C PEs. dataflow: OS / WS / IS. fill: "rtl" | "serial" | "overlapped".
    buffers: scratchpad bytes for (A, B, O). freq_mhz: clock for latency in seconds.
    """

    rows: int = 16
    cols: int = 16
    dataflow: str = "WS"
    fill: str = "rtl"
    buffers: tuple = (64 * 1024, 64 * 1024, 64 * 1024)
    freq_mhz: float = 500.0

    def __post_init__(self):
        if self.dataflow not in DATAFLOWS:
            raise ValueError(f"dataflow: unknown {self.dataflow!r}; allowed: {', '.join(DATAFLOWS)}")
        if self.fill not in FILLS:
            raise ValueError(f"fill: unknown {self.fill!r}; allowed: {', '.join(FILLS)}")
        if int(self.rows) < 1 or int(self.cols) < 1:
            raise ValueError(f"rows, cols: must be >= 1 (got {self.rows} x {self.cols})")
        if len(self.buffers) != 3 or min(self.buffers) < 0:
            raise ValueError("buffers: expected three non-negative byte sizes (A, B, O)")


def _ceil_div(a, b):
    return -(-a // b)


def gemm_model(M, K, N, cfg: ArrayConfig = ArrayConfig(), groups=1, a_bits=8.0, b_bits=8.0,
               out_bits=8.0, psum_bits=32.0, a_unique=None, a_tensor_bits=0.0,
               b_tensor_bits=0.0) -> dict:
    """Cycles, utilisation and traffic of (arrays of) grouped GEMMs on ``cfg``.

    M, K, N, groups: ints or integer arrays (broadcast). a_bits / b_bits / out_bits:
    storage bits per element of A, B and the final output; psum_bits: partial sums.
    a_unique: unique A elements per group (conv input footprint, < M*K with im2col);
    default M*K. a_tensor_bits / b_tensor_bits: per-tensor constants (NVFP4's FP32 tensor
    scale = 32 bits) read once per layer from SRAM and DRAM. Returns a dict of float64 / int64 arrays (see module doc for formulas):
    macs, folds, cycles, util, map_eff, sram_{a,b}_reads, sram_o_writes, sram_psum_reads
    (elements), sram_bytes_{a,b,o}, sram_bytes, dram_bytes_{a,b,o}, dram_bytes, seconds.
    """
    M, K, N, G = (np.asarray(x, dtype=np.int64) for x in (M, K, N, groups))
    if np.any(M < 1) or np.any(K < 1) or np.any(N < 1) or np.any(G < 1):
        raise ValueError("M, K, N, groups: must all be >= 1")
    R, C = int(cfg.rows), int(cfg.cols)
    df = cfg.dataflow
    Sr, Sc, T = {"OS": (M, N, K), "WS": (K, N, M), "IS": (K, M, N)}[df]
    Fr, Fc = _ceil_div(Sr, R), _ceil_div(Sc, C)
    F = G * Fr * Fc
    macs = G * M * K * N
    if cfg.fill == "serial":
        cycles = F * (2 * R + C + T - 2)
    elif cfg.fill == "rtl":
        cycles = F * (T + R + C - 1) + 1 if df == "OS" else F * (T + 2 * R + C - 2) + 1
    else:
        cycles = F * np.maximum(T, R) + (R + C - 2) + R
    util = macs / (R * C * cycles)
    map_eff = macs / (F * R * C * T)
    MK, KN, MN = M * K, K * N, M * N
    if df == "OS":
        a_rd, b_rd, o_wr, ps_rd = MK * Fc, KN * Fr, MN, 0 * MN
        a_pass, b_pass, ps_folds = Fc, Fr, 1 + 0 * Fr
    elif df == "WS":
        a_rd, b_rd, o_wr, ps_rd = MK * Fc, KN, MN * Fr, MN * (Fr - 1)
        a_pass, b_pass, ps_folds = Fc, 1 + 0 * Fc, Fr
    else:  # IS
        a_rd, b_rd, o_wr, ps_rd = MK, KN * Fc, MN * Fr, MN * (Fr - 1)
        a_pass, b_pass, ps_folds = 1 + 0 * Fc, Fc, Fr
    a_rd, b_rd, o_wr, ps_rd = (G * x for x in (a_rd, b_rd, o_wr, ps_rd))
    a_bits, b_bits, out_bits, psum_bits = (np.asarray(x, float) for x in
                                           (a_bits, b_bits, out_bits, psum_bits))
    ta, tb = float(a_tensor_bits) / 8, float(b_tensor_bits) / 8
    sb_a = a_rd * a_bits / 8 + ta
    sb_b = b_rd * b_bits / 8 + tb
    final_wr = G * MN
    sb_o = (final_wr * out_bits + (o_wr - final_wr) * psum_bits + ps_rd * psum_bits) / 8
    # DRAM: unique footprints
    au = G * (np.asarray(a_unique, dtype=np.int64) if a_unique is not None else MK)
    ua, ub = au * a_bits / 8 + ta, G * KN * b_bits / 8 + tb
    buf_a, buf_b, buf_o = (float(x) for x in cfg.buffers)
    da = np.where(ua <= buf_a, ua, np.minimum(sb_a, ua * a_pass))
    db = np.where(ub <= buf_b, ub, np.minimum(sb_b, ub * b_pass))
    psum_fp = T * np.minimum(Sc, C) * psum_bits / 8  # live psums: one column fold, one group
    spill = (ps_folds > 1) & (psum_fp > buf_o)
    do = final_wr * out_bits / 8 + np.where(spill, sb_o - final_wr * out_bits / 8, 0.0)
    return {
        "macs": macs, "folds": F, "cycles": cycles, "util": util, "map_eff": map_eff,
        "sram_a_reads": a_rd, "sram_b_reads": b_rd, "sram_o_writes": o_wr,
        "sram_psum_reads": ps_rd, "sram_bytes_a": sb_a, "sram_bytes_b": sb_b,
        "sram_bytes_o": sb_o, "sram_bytes": sb_a + sb_b + sb_o,
        "dram_bytes_a": da, "dram_bytes_b": db, "dram_bytes_o": do,
        "dram_bytes": da + db + do, "seconds": cycles / (cfg.freq_mhz * 1e6),
    }


def layers_to_gemm(layers) -> dict:
    """GEMM shapes of workload layers (``lowbit.sim.workloads`` LayerSpec or dicts).

    Accepts objects / dicts with ``name``, ``kind`` ("linear" | "conv2d"), ``weight``
    (or ``weight_shape``), ``macs`` and ``in_shape`` (per-sample), and optional
    ``attrs['groups']``. N = out channels / groups, K = weight.size / out channels,
    M = macs / weight.size (output pixels or tokens per inference), a_unique = input
    elements per group (conv: prod(in_shape) / groups; linear: M*K). Also accepts dicts with explicit M, K, N[, groups].
    """
    out = {"name": [], "M": [], "K": [], "N": [], "groups": [], "a_unique": [], "macs": []}
    for i, L in enumerate(layers):
        def g(k, d=None, L=L):
            return L.get(k, d) if isinstance(L, dict) else getattr(L, k, d)
        name = g("name", f"layer{i}")
        if g("M") is not None:
            M, K, N, G = int(g("M")), int(g("K")), int(g("N")), int(g("groups", 1) or 1)
            au = int(g("a_unique", M * K) or M * K)
        else:
            wshape = tuple(g("weight_shape") or np.shape(g("weight")))
            if not wshape:
                raise ValueError(f"layers: layer {name!r} has no weight / weight_shape")
            attrs = g("attrs") or {}
            G = int(attrs.get("groups", 1) or 1)
            wsize = int(np.prod(wshape))
            O = int(wshape[0])
            N, K = O // G, wsize // O
            macs = int(g("macs"))
            M = max(1, macs // wsize)
            ins = g("in_shape")
            # conv: the unique input footprint (im2col duplicates it); linear: M*K (in_shape
            # is per token, M = tokens)
            conv = str(g("kind", "")).startswith("conv") and ins is not None
            au = int(np.prod(ins)) // G if conv else M * K
        out["name"].append(str(name))
        for k, v in (("M", M), ("K", K), ("N", N), ("groups", G), ("a_unique", au),
                     ("macs", M * K * N * G)):
            out[k].append(v)
    return {k: (np.array(v) if k != "name" else v) for k, v in out.items()}


def network_model(layers, cfg: ArrayConfig = ArrayConfig(), a_bits=8.0, b_bits=8.0,
                  out_bits=None, psum_bits=32.0, a_tensor_bits=0.0, b_tensor_bits=0.0) -> dict:
    """Per-layer :func:`gemm_model` of a list of layers, plus ``name`` and ``totals``.

    Scalar bits apply to all layers; arrays give per-layer formats (mixed precision).
    out_bits defaults to a_bits (outputs re-quantised to the next layer's activation format).
    """
    g = layers_to_gemm(layers)
    r = gemm_model(g["M"], g["K"], g["N"], cfg, g["groups"], a_bits, b_bits,
                   a_bits if out_bits is None else out_bits, psum_bits, g["a_unique"],
                   a_tensor_bits, b_tensor_bits)
    r["name"] = g["name"]
    r["totals"] = {k: float(np.sum(v)) for k, v in r.items()
                   if k not in ("name", "util", "map_eff")}
    t = r["totals"]
    t["util"] = t["macs"] / (cfg.rows * cfg.cols * t["cycles"]) if t["cycles"] else 0.0
    return r
