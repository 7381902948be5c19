"""Unit definitions: block-scaled dot products (MX, NVFP4), FPGA primitives, systolic arrays.

``stages`` of the dot units: 0 = combinational; 1 = registered output; 2 = + a cut after the
adder tree; 3 = + a cut after the element products (:data:`DOT_CUTS`). Latency = ``stages``
cycles; co-simulation shifts the combinational reference by that much.
"""

from __future__ import annotations

import numpy as np

from lowbit.formats import IntFormat, decode, resolve
from lowbit.hw import features, fpga, mxdot, reference, systolic
from lowbit.hw.defs_arith import check_stages
from lowbit.hw.unit import Pipe, Unit, inp, mask, out
from lowbit.hw.vectors import random_codes
from lowbit.hw.widths import acc_width, operand_format, product_frac_bits

DOT_STAGES = (0, 1, 2, 3)
DOT_CUTS = ("out", "isum", "products")


def _dot_cuts(stages=0, **_):
    return DOT_CUTS[:int(stages)]


def _pack(codes, bits):
    res = []
    for row in codes.tolist():
        v = 0
        for i, c in enumerate(row):
            v |= int(c) << (i * bits)
        res.append(v)
    return np.array(res, dtype=object)


def _unpack(bus, bits, k):
    return np.array([[(int(x) >> (i * bits)) & ((1 << bits) - 1) for i in range(k)]
                     for x in bus], dtype=np.int64)


def _check_k(k):
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"--k={k!r}: block size must be an integer >= 1")
    return int(k)


def _chk_mx(a="fp8_e4m3", k=32, stages=0, **_):
    f = operand_format(resolve(a, kind=("float", "int", "block"), arg="--a"))
    return {"a": f, "k": _check_k(k), "stages": check_stages(stages, DOT_STAGES)}


def _b_mx_dot(a, k, stages, **_):
    d, isum, sexp = mxdot.mx_dot(inp("a", k * a.bits), inp("b", k * a.bits), inp("xa", 8),
                                 inp("xb", 8), a, k, pipe=Pipe(_dot_cuts(stages)))
    out("dot", d)
    out("isum", isum)
    out("sexp", sexp)


def _scale_codes(n, rng, lo, hi, nan_code):
    s = rng.integers(lo, hi + 1, size=n, dtype=np.int64)
    s[rng.random(n) < 0.03] = nan_code
    return s


def _v_mx_dot(n, rng, exhaustive, a, k, **_):
    f = a
    ea = random_codes(f, n * k, rng, 0.05).reshape(n, k)
    eb = random_codes(f, n * k, rng, 0.05).reshape(n, k)
    xa = rng.integers(0, 255, size=n)
    xb = np.clip(254 - xa + rng.integers(-140, 140, size=n), 0, 254)
    xa[rng.random(n) < 0.02] = 255
    xb[rng.random(n) < 0.02] = 255
    if not isinstance(f, IntFormat):
        # NaN/Inf elements only in ~10% of the blocks, so that most blocks test the numeric path
        fin = np.nonzero(np.isfinite(f.values()))[0]
        clean = rng.random(n) >= 0.10
        for e in (ea, eb):
            bad = ~np.isfinite(decode(e, f)) & clean[:, None]
            e[bad] = rng.choice(fin, size=int(bad.sum()))
        # 15% of the blocks: B = -A elementwise (massive cancellation)
        m = rng.random(n) < 0.15
        eb[m] = ea[m] ^ (1 << (f.bits - 1))
    return {"a": _pack(ea, f.bits), "b": _pack(eb, f.bits), "xa": xa, "xb": xb}


def _dot_ref(ea, eb, f, scale_int, scale_S, nan_extra):
    """fp32 codes of RNE(scale * sum ea*eb) with exact integer arithmetic."""
    if isinstance(f, IntFormat):  # plain two's complement (0x80 = -2.0 for MXINT8)
        va = np.ldexp(reference.int_values(ea, f).astype(np.float64), -f.frac_bits)
        vb = np.ldexp(reference.int_values(eb, f).astype(np.float64), -f.frac_bits)
    else:
        va, vb = decode(ea, f), decode(eb, f)
    with np.errstate(invalid="ignore"):
        p = va * vb
    F = product_frac_bits(f, f)
    fin = np.isfinite(p)
    P = reference.exact_int(np.where(fin, p, 0.0), F).reshape(p.shape)
    isum = P.sum(axis=1)
    nan = np.isnan(p).any(axis=1) | (np.isposinf(p).any(axis=1) & np.isneginf(p).any(axis=1)) | nan_extra
    pinf, ninf = np.isposinf(p).any(axis=1), np.isneginf(p).any(axis=1)
    tot = [int(i) * int(s) for i, s in zip(isum, scale_int)]
    codes = reference.round_ints(tot, F + scale_S, "fp32")
    codes = np.where(pinf, 0x7F800000, np.where(ninf, 0xFF800000, codes))
    return np.where(nan, 0x7FC00000, codes), isum


def _e_mx_dot(v, a, k, **_):
    ea, eb = _unpack(v["a"], a.bits, k), _unpack(v["b"], a.bits, k)
    sexp = v["xa"] + v["xb"]
    # scale = 2^(sexp - 254): integer 2^sexp with S = 254 extra fraction bits
    codes, isum = _dot_ref(ea, eb, a, [1 << int(s) for s in sexp], 254,
                           (v["xa"] == 255) | (v["xb"] == 255))
    return {"dot": codes, "isum": mask(isum, acc_width(a, a, k)), "sexp": sexp}


def _chk_nvfp4(k=16, stages=0, **_):
    return {"k": _check_k(k), "stages": check_stages(stages, DOT_STAGES)}


def _b_nvfp4(k, stages, **_):
    d, isum = mxdot.nvfp4_dot(inp("a", 4 * k), inp("b", 4 * k), inp("sa", 7), inp("sb", 7), k,
                              pipe=Pipe(_dot_cuts(stages)))
    out("dot", d)
    out("isum", isum)


def _v_nvfp4(n, rng, exhaustive, k, **_):
    v = _v_mx_dot(n, rng, False, operand_format("fp4_e2m1"), k)
    return {"a": v["a"], "b": v["b"], "sa": _scale_codes(n, rng, 0, 0x7E, 0x7F),
            "sb": _scale_codes(n, rng, 0, 0x7E, 0x7F)}


def _e_nvfp4(v, k, **_):
    f = operand_format("fp4_e2m1")
    ea, eb = _unpack(v["a"], 4, k), _unpack(v["b"], 4, k)
    uf = resolve("ue4m3")
    s = decode(v["sa"], uf) * decode(v["sb"], uf)
    ok = np.isfinite(s)
    sint = reference.exact_int(np.where(ok, s, 0.0), 20)
    codes, isum = _dot_ref(ea, eb, f, sint, 20, ~ok)
    return {"dot": codes, "isum": mask(isum, acc_width(f, f, k))}


def _chk_signed(signed=True, **_):
    return {"signed": bool(signed)}


def _chk_array(R=4, C=4, terms=1024, **_):
    for n, v in (("R", R), ("C", C), ("terms", terms)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"--{n}={v!r}: must be an integer >= 1")
    return {"R": int(R), "C": int(C), "terms": int(terms)}


def _v_lut_mul8(n, rng, exhaustive, **kw):
    """All 65 536 pairs when ``exhaustive``, else ``n`` random int8 code pairs (edges mixed in)."""
    if exhaustive:
        return fpga.vectors_mul8(n, rng, True, **kw)
    f = resolve("int8")
    return {"a": random_codes(f, n, rng), "b": random_codes(f, n, rng)}


DEFS = [
    Unit("mx_dot", "dot", "MX block dot (E8M0 scales, exact integer sum, one fp32 RNE)",
         _b_mx_dot, _v_mx_dot, _e_mx_dot, features.mx_dot, dict(a="fp8_e4m3", k=32, stages=0),
         check=_chk_mx, stage_range=DOT_STAGES, cuts=_dot_cuts),
    Unit("nvfp4_dot", "dot", "NVFP4 block dot (UE4M3 scales, one fp32 RNE)", _b_nvfp4,
         _v_nvfp4, _e_nvfp4, features.nvfp4_dot, dict(k=16, stages=0), check=_chk_nvfp4,
         stage_range=DOT_STAGES, cuts=_dot_cuts),
    Unit("lut_mul4", "fpga", "FPGA 4x4 multiplier as a 256-entry ROM (one LUT-RAM/LUT6 tree)",
         fpga.build_lut_mul4, fpga.vectors_mul4, fpga.expected_mul4, defaults=dict(signed=True),
         check=_chk_signed),
    Unit("lut_mul8", "fpga", "FPGA 8x8 multiplier from four 4x4 ROM partial products",
         fpga.build_lut_mul8, _v_lut_mul8, fpga.expected_mul8, defaults=dict(signed=True),
         check=_chk_signed),
    Unit("dsp_mac", "fpga", "FPGA DSP48-style int8 MAC: A/B/M/P registers, 48-bit accumulator",
         fpga.build_dsp_mac, fpga.vectors_dsp_mac, fpga.expected_dsp_mac, sequential=True),
    Unit("systolic_os", "array", "R x C output-stationary int8 systolic array",
         systolic.build_os, defaults=dict(R=4, C=4, terms=1024), sequential=True,
         check=_chk_array),
    Unit("systolic_ws", "array", "R x C weight-stationary int8 systolic array",
         systolic.build_ws, defaults=dict(R=4, C=4), sequential=True,
         check=lambda R=4, C=4, **_: {k: v for k, v in _chk_array(R, C).items() if k != "terms"}),
]
