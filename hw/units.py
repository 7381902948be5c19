"""Registry of exportable / co-simulatable units.

Every unit has a builder that creates named ``pyrtl.Input``/``Output`` wires in a fresh working
block, a vector generator and a bit-exact reference.  ``UNITS`` lists the names;
:func:`build_unit` builds one and :func:`export_verilog` returns its Verilog text.

Format keywords (names or format objects): ``a``, ``b`` (operand / element formats), ``acc``
(accumulator float format); integer units use ``a``/``b`` = ``int8``/``uint8``/... .
Other keywords: ``n_acc`` (accumulations without overflow, default 1024), ``k`` (block size),
``structure`` (array / wallace / dadda), ``R``/``C`` (systolic array shape).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pyrtl

from lowbit.formats import IntFormat, decode
from lowbit.hw import fpga, fpmac, fpmul, intmac, mxdot, reference, systolic
from lowbit.hw.vectors import acc_operands, all_pairs, fmt_of, random_codes


@dataclass
class Unit:
    name: str
    doc: str
    build: Callable            # (**kw) -> None, builds into the working block
    vectors: Callable          # (n, rng, exhaustive, **kw) -> dict[str, np.ndarray]  (per cycle)
    expected: Callable         # (vecs, **kw) -> dict[str, np.ndarray]  (per cycle, unsigned)
    defaults: dict = field(default_factory=dict)
    sequential: bool = False


def _in(name, w):
    return pyrtl.Input(w, name)


def _out(name, wire):
    o = pyrtl.Output(len(wire), name)
    o <<= wire
    return o


def _mask(x, w):
    return np.array([int(v) & ((1 << w) - 1) for v in np.asarray(x, dtype=object).ravel()],
                    dtype=object)


def _int_fmt(f):
    f = fmt_of(f)
    if not isinstance(f, IntFormat):
        raise ValueError(f"--a/--b: integer unit needs int formats (int8, uint8, ...), got {f.name}")
    return f


# ---------------------------------------------------------------- integer multiplier / MAC
def _b_int_mul(a="int8", b="int8", structure="dadda", **_):
    fa, fb = _int_fmt(a), _int_fmt(b)
    x, y = _in("a", fa.bits), _in("b", fb.bits)
    _out("p", intmac.int_multiply(x, y, (fa.signed, fb.signed), structure))


def _v_int_mul(n, rng, exhaustive, a="int8", b="int8", **_):
    fa, fb = _int_fmt(a), _int_fmt(b)
    if exhaustive:
        x, y = all_pairs(fa.bits, fb.bits)
    else:
        x, y = random_codes(fa, n, rng), random_codes(fb, n, rng)
    return {"a": x, "b": y}


def _sv(codes, f):
    c = np.asarray(codes, dtype=np.int64)
    return np.where(c >= (1 << (f.bits - 1)), c - (1 << f.bits), c) if f.signed else c


def _e_int_mul(v, a="int8", b="int8", structure="dadda", **_):
    fa, fb = _int_fmt(a), _int_fmt(b)
    w = fa.bits + fb.bits + (1 if fa.signed != fb.signed else 0)
    return {"p": _mask(_sv(v["a"], fa) * _sv(v["b"], fb), w)}


def _seq_ctrl(n, rng, seg=16):
    clr = (np.arange(n) % seg == 0).astype(np.int64)
    en = (rng.random(n) < 0.9).astype(np.int64)
    return clr, en


def _b_int_mac(a="int8", b="int8", n_acc=1024, structure="dadda", **_):
    fa = _int_fmt(a)
    _int_fmt(b)
    x, y = _in("a", fa.bits), _in("b", fmt_of(b).bits)
    clr, en = _in("clr", 1), _in("en", 1)
    _out("acc", intmac.int_mac(x, y, n_acc, fa.signed, structure, clr, en))


def _v_int_mac(n, rng, exhaustive, a="int8", b="int8", **_):
    v = _v_int_mul(n, rng, exhaustive, a, b)
    v["clr"], v["en"] = _seq_ctrl(len(v["a"]), rng)
    return v


def _int_acc_trace(p, clr, en):
    out, acc = [], 0
    for pi, c, e in zip(p.tolist(), clr.tolist(), en.tolist()):
        out.append(acc)
        acc = (0 if c else acc) + (pi if e else 0)
    return out


def _e_int_mac(v, a="int8", b="int8", n_acc=1024, **_):
    fa, fb = _int_fmt(a), _int_fmt(b)
    w = intmac.acc_width(fa.bits, fb.bits, n_acc, fa.signed, fb.signed)
    p = _sv(v["a"], fa) * _sv(v["b"], fb)
    return {"acc": _mask(_int_acc_trace(p, v["clr"], v["en"]), w)}


# ---------------------------------------------------------------- minifloat multiplier
def _fp_pairs(n, rng, exhaustive, a, b):
    fa, fb = fmt_of(a), fmt_of(b)
    if exhaustive and fa.bits + fb.bits <= 16:
        return all_pairs(fa.bits, fb.bits)
    return random_codes(fa, n, rng), random_codes(fb, n, rng)


def _b_fp_mul(a="fp8_e4m3", b="fp8_e4m3", **_):
    fa, fb = fpmul.as_float_format(a), fpmul.as_float_format(b)
    p = fpmul.fp_multiply(_in("a", fa.bits), _in("b", fb.bits), fa, fb)
    _out("p", p.fixed)
    _out("nan", p.is_nan)
    _out("inf", p.is_inf)


def _v_fp_mul(n, rng, exhaustive, a="fp8_e4m3", b="fp8_e4m3", **_):
    x, y = _fp_pairs(n, rng, exhaustive, a, b)
    return {"a": x, "b": y}


def _e_fp_mul(v, a="fp8_e4m3", b="fp8_e4m3", **_):
    fixed, nan, inf, _ = reference.product_fixed(v["a"], v["b"], a, b)
    return {"p": _mask(fixed, fpmul.product_width(a, b)), "nan": nan.astype(np.int64),
            "inf": inf.astype(np.int64)}


# ---------------------------------------------------------------- minifloat MACs
def _b_fp_fma(a="fp8_e4m3", b="fp8_e4m3", acc="fp32", **_):
    fa, fb, fc = (fpmul.as_float_format(f) for f in (a, b, acc))
    _out("y", fpmac.fp_fma_step(_in("a", fa.bits), _in("b", fb.bits), _in("c", fc.bits),
                                fa, fb, fc))


def _v_fp_fma(n, rng, exhaustive, a="fp8_e4m3", b="fp8_e4m3", acc="fp32", **_):
    x, y = _fp_pairs(n, rng, exhaustive, a, b)
    with np.errstate(invalid="ignore"):
        p = decode(x, fmt_of(a)) * decode(y, fmt_of(b))
    return {"a": x, "b": y, "c": acc_operands(p, acc, rng)}


def _e_fp_fma(v, a="fp8_e4m3", b="fp8_e4m3", acc="fp32", **_):
    return {"y": reference.fma_codes(v["a"], v["b"], v["c"], a, b, acc)}


def _b_fp_mac(a="fp8_e4m3", b="fp8_e4m3", acc="fp32", **_):
    fa, fb, fc = (fpmul.as_float_format(f) for f in (a, b, acc))
    _out("acc", fpmac.fp_mac(_in("a", fa.bits), _in("b", fb.bits), fa, fb, fc,
                             clr=_in("clr", 1), en=_in("en", 1)))


SEG = 16


def _v_fp_mac(n, rng, exhaustive, a="fp8_e4m3", b="fp8_e4m3", **_):
    x, y = _fp_pairs(n, rng, exhaustive, a, b)
    m = len(x) - len(x) % SEG
    v = {"a": x[:m], "b": y[:m]}
    v["clr"], v["en"] = _seq_ctrl(m, rng, SEG)
    return v


def _e_fp_mac(v, a="fp8_e4m3", b="fp8_e4m3", acc="fp32", **_):
    A, B = v["a"].reshape(-1, SEG), v["b"].reshape(-1, SEG)
    en = v["en"].reshape(-1, SEG).astype(bool)
    st = np.zeros(A.shape[0], dtype=np.int64)
    out = np.zeros(A.shape, dtype=np.int64)
    for k in range(SEG):
        out[:, k] = st                           # register value before this cycle's update
        base = np.zeros_like(st) if k == 0 else st
        st = np.where(en[:, k], reference.fma_codes(A[:, k], B[:, k], base, a, b, acc), base)
    out = out.ravel()
    out[::SEG] = np.concatenate([[0], st[:-1]])  # first cycle of a segment shows the previous one
    return {"acc": out}


def _b_kulisch(a="fp8_e4m3", b="fp8_e4m3", n_acc=1024, **_):
    fa, fb = fpmul.as_float_format(a), fpmul.as_float_format(b)
    acc, nan, pinf, ninf = fpmac.kulisch_mac(_in("a", fa.bits), _in("b", fb.bits), fa, fb, n_acc,
                                             clr=_in("clr", 1), en=_in("en", 1))
    _out("acc", acc)
    _out("nan", nan)
    _out("pinf", pinf)
    _out("ninf", ninf)


def _v_kulisch(n, rng, exhaustive, a="fp8_e4m3", b="fp8_e4m3", **_):
    v = _v_fp_mul(n, rng, exhaustive, a, b)
    v["clr"], v["en"] = _seq_ctrl(len(v["a"]), rng)
    return v


def _e_kulisch(v, a="fp8_e4m3", b="fp8_e4m3", n_acc=1024, **_):
    fixed, nan, inf, p = reference.product_fixed(v["a"], v["b"], a, b)
    w = fpmac.kulisch_width(a, b, n_acc)
    clr, en = v["clr"], v["en"]
    acc = _int_acc_trace(fixed, clr, en)
    fl = {"nan": [], "pinf": [], "ninf": []}
    sn = sp = sm = 0
    for i in range(len(clr)):
        fl["nan"].append(sn)
        fl["pinf"].append(sp)
        fl["ninf"].append(sm)
        if clr[i]:
            sn = sp = sm = 0
        if en[i]:
            sp |= int(inf[i] and p[i] > 0)
            sm |= int(inf[i] and p[i] < 0)
            sn |= int(nan[i]) | (sp & sm)
    return {"acc": _mask(acc, w), **{k: np.array(x) for k, x in fl.items()}}


# ---------------------------------------------------------------- MX / NVFP4 dot
def _pack(codes, bits):
    out = []
    for row in codes.tolist():
        v = 0
        for i, c in enumerate(row):
            v |= int(c) << (i * bits)
        out.append(v)
    return np.array(out, dtype=object)


def _unpack(bus, bits, k):
    return np.array([[(int(x) >> (i * bits)) & ((1 << bits) - 1) for i in range(k)]
                     for x in bus], dtype=np.int64)


def _b_mx_dot(a="fp8_e4m3", k=32, **_):
    f = mxdot._elem(a)
    d, isum, sexp = mxdot.mx_dot(_in("a", k * f.bits), _in("b", k * f.bits), _in("xa", 8),
                                 _in("xb", 8), f, k)
    _out("dot", d)
    _out("isum", isum)
    _out("sexp", sexp)


def _scale_codes(n, rng, lo, hi, nan_code):
    s = rng.integers(lo, hi + 1, size=n, dtype=np.int64)
    m = rng.random(n)
    s[m < 0.03] = nan_code
    return s


def _v_mx_dot(n, rng, exhaustive, a="fp8_e4m3", k=32, **_):
    f = mxdot._elem(a)
    ea, eb = random_codes(f, n * k, rng, 0.05).reshape(n, k), random_codes(f, n * k, rng, 0.05).reshape(n, k)
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
        va = np.ldexp(_sv(ea, f).astype(np.float64), -f.frac_bits)
        vb = np.ldexp(_sv(eb, f).astype(np.float64), -f.frac_bits)
    else:
        va, vb = decode(ea, f), decode(eb, f)
    with np.errstate(invalid="ignore"):
        p = va * vb
    _, F = mxdot.elem_product_info(f)
    fin = np.isfinite(p)
    P = reference.exact_int(np.where(fin, p, 0.0), F).reshape(p.shape)
    isum = P.sum(axis=1)
    nan = np.isnan(p).any(axis=1) | (np.isposinf(p).any(axis=1) & np.isneginf(p).any(axis=1)) | nan_extra
    pinf, ninf = np.isposinf(p).any(axis=1), np.isneginf(p).any(axis=1)
    tot = [int(i) * int(s) for i, s in zip(isum, scale_int)]
    codes = reference.round_ints(tot, F + scale_S, "fp32")
    codes = np.where(pinf, 0x7F800000, np.where(ninf, 0xFF800000, codes))
    return np.where(nan, 0x7FC00000, codes), isum


def _e_mx_dot(v, a="fp8_e4m3", k=32, **_):
    f = mxdot._elem(a)
    ea, eb = _unpack(v["a"], f.bits, k), _unpack(v["b"], f.bits, k)
    sexp = v["xa"] + v["xb"]
    # scale = 2^(sexp - 254): integer 2^sexp with S = 254 extra fraction bits
    codes, isum = _dot_ref(ea, eb, f, [1 << int(s) for s in sexp], 254,
                           (v["xa"] == 255) | (v["xb"] == 255))
    return {"dot": codes, "isum": _mask(isum, mxdot.isum_width(f, k)), "sexp": sexp}


def _b_nvfp4(k=16, **_):
    d, isum = mxdot.nvfp4_dot(_in("a", 4 * k), _in("b", 4 * k), _in("sa", 7), _in("sb", 7), k)
    _out("dot", d)
    _out("isum", isum)


def _v_nvfp4(n, rng, exhaustive, k=16, **_):
    v = _v_mx_dot(n, rng, False, "fp4_e2m1", k)
    return {"a": v["a"], "b": v["b"], "sa": _scale_codes(n, rng, 0, 0x7E, 0x7F),
            "sb": _scale_codes(n, rng, 0, 0x7E, 0x7F)}


def _e_nvfp4(v, k=16, **_):
    f = fmt_of("fp4_e2m1")
    ea, eb = _unpack(v["a"], 4, k), _unpack(v["b"], 4, k)
    uf = fmt_of("ue4m3")
    s = decode(v["sa"], uf) * decode(v["sb"], uf)
    ok = np.isfinite(s)
    sint = reference.exact_int(np.where(ok, s, 0.0), 20)
    codes, isum = _dot_ref(ea, eb, f, sint, 20, ~ok)
    return {"dot": codes, "isum": _mask(isum, mxdot.isum_width(f, k))}


def _v_lut_mul8(n, rng, exhaustive, **kw):
    """All 65 536 pairs when ``exhaustive``, else ``n`` random int8 code pairs (edges mixed in)."""
    if exhaustive:
        return fpga.vectors_mul8(n, rng, True, **kw)
    f = fmt_of("int8")
    return {"a": random_codes(f, n, rng), "b": random_codes(f, n, rng)}


UNITS: dict[str, Unit] = {}


def _reg(_name, _doc, _build, _vec, _exp, _seq=False, **defaults):
    UNITS[_name] = Unit(_name, _doc, _build, _vec, _exp, defaults, _seq)


_reg("int_mul", "integer multiplier (array/wallace/dadda)", _b_int_mul, _v_int_mul, _e_int_mul,
     a="int8", b="int8", structure="dadda")
_reg("int_mac", "registered integer MAC, overflow-free accumulator", _b_int_mac, _v_int_mac,
     _e_int_mac, True, a="int8", b="int8", n_acc=1024, structure="dadda")
_reg("fp_mul", "exact minifloat multiplier -> signed fixed point + NaN/Inf flags", _b_fp_mul,
     _v_fp_mul, _e_fp_mul, a="fp8_e4m3", b="fp8_e4m3")
_reg("fp_fma", "combinational MAC step RNE(c + a*b) in the accumulator format", _b_fp_fma,
     _v_fp_fma, _e_fp_fma, a="fp8_e4m3", b="fp8_e4m3", acc="fp32")
_reg("fp_mac", "registered float-accumulator MAC (RNE after every add)", _b_fp_mac, _v_fp_mac,
     _e_fp_mac, True, a="fp8_e4m3", b="fp8_e4m3", acc="fp32")
_reg("kulisch_mac", "registered exact fixed-point (Kulisch) minifloat MAC", _b_kulisch,
     _v_kulisch, _e_kulisch, True, a="fp8_e4m3", b="fp8_e4m3", n_acc=1024)
_reg("mx_dot", "MX block dot (E8M0 scales, exact integer sum, one fp32 RNE)", _b_mx_dot,
     _v_mx_dot, _e_mx_dot, a="fp8_e4m3", k=32)
_reg("nvfp4_dot", "NVFP4 16-element dot (UE4M3 scales, one fp32 RNE)", _b_nvfp4, _v_nvfp4,
     _e_nvfp4, k=16)
_reg("lut_mul4", "FPGA 4x4 multiplier as a 256-entry ROM (one LUT-RAM/LUT6 tree)",
     fpga.build_lut_mul4, fpga.vectors_mul4, fpga.expected_mul4, signed=True)
_reg("lut_mul8", "FPGA 8x8 multiplier from four 4x4 ROM partial products", fpga.build_lut_mul8,
     _v_lut_mul8, fpga.expected_mul8, signed=True)
_reg("dsp_mac", "FPGA DSP48-style int8 MAC: A/B/M/P registers, 48-bit accumulator",
     fpga.build_dsp_mac, fpga.vectors_dsp_mac, fpga.expected_dsp_mac, True)
_reg("systolic_os", "R x C output-stationary int8 systolic array", systolic.build_os,
     None, None, True, R=4, C=4, n_acc=1024)
_reg("systolic_ws", "R x C weight-stationary int8 systolic array", systolic.build_ws,
     None, None, True, R=4, C=4)


def unit_kwargs(name: str, **kw) -> dict:
    """Defaults of ``name`` updated with the non-None ``kw``."""
    if name not in UNITS:
        raise ValueError(f"unit {name!r}; allowed: {', '.join(UNITS)}")
    out = dict(UNITS[name].defaults)
    out.update({k: v for k, v in kw.items() if v is not None})
    return out


def build_unit(name: str, **kw) -> pyrtl.Block:
    """Reset the working block and build ``name`` into it; returns the block."""
    kw = unit_kwargs(name, **kw)
    pyrtl.reset_working_block()
    UNITS[name].build(**kw)
    return pyrtl.working_block()


def export_verilog(unit_name: str, module_name: str = "toplevel", **formats) -> str:
    """Verilog text (``pyrtl.output_to_verilog``; module ``module_name`` with ``clk`` and a
    synchronous ``rst``) of unit ``unit_name`` built with ``formats`` / parameters."""
    import io

    build_unit(unit_name, **formats)
    buf = io.StringIO()
    pyrtl.output_to_verilog(buf, module_name=module_name)
    return buf.getvalue()


def unit_names() -> list[str]:
    return list(UNITS)
