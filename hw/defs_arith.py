"""Unit definitions: integer and minifloat multipliers and MACs (one :class:`Unit` each).

=============  ==========  ====================================================================
unit           family      datapath
=============  ==========  ====================================================================
int_mul        int mult    exact product, :func:`~lowbit.hw.widths.product_width` bits
int_mac        int MAC     ``acc <= (clr?0:acc) + (en?a*b:0)``; ``acc=Exact()`` (overflow-free
                           for ``terms`` adds, :func:`~lowbit.hw.widths.acc_width`) or
                           ``IntAccum(bits, "wrap"|"saturate")``
fp_mul         fp mult     exact minifloat product as signed fixed point + NaN/Inf flags
fp_fma         fp MAC      combinational ``RNE(c + a*b)`` in ``acc`` (a FloatAccum)
fp_mac         fp MAC      registered FloatAccum(acc) MAC (RNE after every add)
kulisch_mac    Kulisch     exact fixed-point accumulator (``acc=Exact()``), ``terms`` adds
=============  ==========  ====================================================================

Pipelining (``stages``, MACs only): latency in cycles from an operand to the accumulator that
contains its product. ``stages=1`` is the single-cycle MAC; each further stage activates one
register cut of :data:`MAC_CUTS` (in that order). Co-simulation checks the pipelined unit
against the same reference shifted by ``stages - 1`` cycles.
"""

from __future__ import annotations

import numpy as np

from lowbit.formats import decode, resolve
from lowbit.formats.accum import Exact, FloatAccum, IntAccum, parse_accum
from lowbit.hw import features, fpmac, fpmul, intmac, lmul, reference
from lowbit.hw.unit import Pipe, Unit, inp, mask, out
from lowbit.hw.vectors import acc_operands, all_pairs, random_codes
from lowbit.hw.widths import acc_width, product_width

MAC_STAGES = (1, 2, 3)
MAC_CUTS = {"int_mac": ("product", "split"), "fp_mac": ("product", "decode"),
            "kulisch_mac": ("product", "fixed")}
"""Register cuts added by ``stages`` = 2, 3 (first entry at 2 stages, both at 3)."""
SEG = 16  # fp_mac reference: cycles per clear segment


def _cuts(unit):
    def f(stages=1, **_):
        return MAC_CUTS[unit][:int(stages) - 1]
    return f


def int_fmt(f, arg="a"):
    return resolve(f, kind="int", arg=f"--{arg}")


def float_fmt(f, arg="a"):
    return fpmul.as_float_format(resolve(f, kind="float", arg=f"--{arg}"))


def check_stages(stages, allowed=MAC_STAGES):
    if stages not in allowed:
        raise ValueError(f"--stages={stages!r}; allowed: {', '.join(map(str, allowed))}")
    return int(stages)


def check_terms(terms):
    if not isinstance(terms, (int, np.integer)) or terms < 1:
        raise ValueError(f"--terms={terms!r}: must be an integer >= 1")
    return int(terms)


# ---------------------------------------------------------------- integer multiplier / MAC
def _chk_int_mul(a="int8", b="int8", structure="dadda", **_):
    if structure not in intmac.MULT_STRUCTURES:
        raise ValueError(f"--structure={structure!r}; allowed: {', '.join(intmac.MULT_STRUCTURES)}")
    return {"a": int_fmt(a), "b": int_fmt(b, "b"), "structure": structure}


def _b_int_mul(a, b, structure, **_):
    p = intmac.int_multiply(inp("a", a.bits), inp("b", b.bits), (a.signed, b.signed), structure)
    out("p", p[:product_width(a, b)])


def _int_pairs(n, rng, exhaustive, a, b):
    if exhaustive:
        return all_pairs(a.bits, b.bits)
    return random_codes(a, n, rng), random_codes(b, n, rng)


def _v_int_mul(n, rng, exhaustive, a, b, **_):
    x, y = _int_pairs(n, rng, exhaustive, a, b)
    return {"a": x, "b": y}


def _e_int_mul(v, a, b, **_):
    return {"p": mask(reference.int_values(v["a"], a) * reference.int_values(v["b"], b),
                      product_width(a, b))}


def _chk_int_mac(a="int8", b="int8", acc="exact", terms=1024, structure="dadda", stages=1, **_):
    p = _chk_int_mul(a, b, structure)
    acc = parse_accum(acc)
    if acc.kind == "float":
        raise ValueError(f"--acc={acc.name}: int_mac takes exact or int<bits>[_sat]; "
                         "use fp_mac for a float accumulator")
    return {**p, "acc": acc, "terms": check_terms(terms), "stages": check_stages(stages)}


def int_mac_width(a, b, acc, terms, **_) -> int:
    """Accumulator register width: ``IntAccum.bits`` or the overflow-free ``acc_width``."""
    return acc.bits if isinstance(acc, IntAccum) else acc_width(a, b, terms)


def _b_int_mac(a, b, acc, terms, structure, stages, **_):
    x, y = inp("a", a.bits), inp("b", b.bits)
    clr, en = inp("clr", 1), inp("en", 1)
    over = acc.overflow if isinstance(acc, IntAccum) else "wrap"
    out("acc", intmac.int_mac(x, y, int_mac_width(a, b, acc, terms), (a.signed, b.signed),
                              structure, clr, en, over, pipe=Pipe(_cuts("int_mac")(stages))))


def seq_ctrl(n, rng, seg=SEG):
    """clr on the first cycle of every ``seg``-cycle segment; en set 90% of the time."""
    clr = (np.arange(n) % seg == 0).astype(np.int64)
    en = (rng.random(n) < 0.9).astype(np.int64)
    return clr, en


def _v_int_mac(n, rng, exhaustive, a, b, **_):
    v = _v_int_mul(n, rng, exhaustive, a, b)
    v["clr"], v["en"] = seq_ctrl(len(v["a"]), rng)
    return v


def _e_int_mac(v, a, b, acc, terms, **_):
    w = int_mac_width(a, b, acc, terms)
    over = acc.overflow if isinstance(acc, IntAccum) else "wrap"
    p = reference.int_values(v["a"], a) * reference.int_values(v["b"], b)
    return {"acc": mask(reference.int_acc_trace(p, v["clr"], v["en"], w, over), w)}


# ---------------------------------------------------------------- minifloat multiplier
def _chk_fp_mul(a="fp8_e4m3", b="fp8_e4m3", **_):
    return {"a": float_fmt(a), "b": float_fmt(b, "b")}


def _fp_pairs(n, rng, exhaustive, a, b):
    if exhaustive and a.bits + b.bits <= 16:
        return all_pairs(a.bits, b.bits)
    return random_codes(a, n, rng), random_codes(b, n, rng)


def _b_fp_mul(a, b, **_):
    p = fpmul.fp_multiply(inp("a", a.bits), inp("b", b.bits), a, b)
    out("p", p.fixed)
    out("nan", p.is_nan)
    out("inf", p.is_inf)


def _v_fp_mul(n, rng, exhaustive, a, b, **_):
    x, y = _fp_pairs(n, rng, exhaustive, a, b)
    return {"a": x, "b": y}


def _e_fp_mul(v, a, b, **_):
    fixed, nan, inf, _ = reference.product_fixed(v["a"], v["b"], a, b)
    return {"p": mask(fixed, product_width(a, b)), "nan": nan.astype(np.int64),
            "inf": inf.astype(np.int64)}


# ---------------------------------------------------------------- L-Mul multiplier
def _chk_lmul_mul(a="fp8_e4m3", b="fp8_e4m3", mul="lmul", **_):
    p = _chk_fp_mul(a, b)
    name = lmul.check_multiplier(mul, p["a"], p["b"])
    if name == "exact":
        raise ValueError("--mul=exact: lmul_mul is the L-Mul unit (lmul, lmul_l<k>); use fp_mul "
                         "for the exact product")
    return {**p, "mul": name}


def _b_lmul_mul(a, b, mul, **_):
    p = lmul.lmul_multiply(inp("a", a.bits), inp("b", b.bits), a, b, mul)
    out("p", p.fixed)
    out("nan", p.is_nan)
    out("inf", p.is_inf)


def _e_lmul_mul(v, a, b, mul, **_):
    fixed, nan, inf, _ = reference.product_fixed(v["a"], v["b"], a, b, mul)
    return {"p": mask(fixed, lmul.lmul_width(a, b) + 1), "nan": nan.astype(np.int64),
            "inf": inf.astype(np.int64)}


# ---------------------------------------------------------------- float-accumulator MACs
def _float_acc(acc, unit):
    acc = parse_accum(acc)
    if not isinstance(acc, FloatAccum) or acc.order != "sequential" or acc.chunk is not None:
        raise ValueError(f"--acc={acc.name}: {unit} takes a sequential float accumulator "
                         "(fp32, fp16, bf16, ..., optionally _sat); use kulisch_mac for exact "
                         "and int_mac for int<bits>")
    fpmul.as_float_format(acc.fmt)
    return acc


def _chk_fp_fma(a="fp8_e4m3", b="fp8_e4m3", acc="fp32", **_):
    return {**_chk_fp_mul(a, b), "acc": _float_acc(acc, "fp_fma")}


def _b_fp_fma(a, b, acc, **_):
    fc = acc.fmt
    out("y", fpmac.fp_fma_step(inp("a", a.bits), inp("b", b.bits), inp("c", fc.bits), a, b, fc,
                               acc.overflow))


def _v_fp_fma(n, rng, exhaustive, a, b, acc, **_):
    x, y = _fp_pairs(n, rng, exhaustive, a, b)
    with np.errstate(invalid="ignore"):
        p = decode(x, a) * decode(y, b)
    return {"a": x, "b": y, "c": acc_operands(p, acc.fmt, rng)}


def _e_fp_fma(v, a, b, acc, **_):
    return {"y": reference.fma_codes(v["a"], v["b"], v["c"], a, b, acc.fmt, acc.overflow)}


def _chk_fp_mac(a="fp8_e4m3", b="fp8_e4m3", acc="fp32", stages=1, **_):
    return {**_chk_fp_mul(a, b), "acc": _float_acc(acc, "fp_mac"),
            "stages": check_stages(stages)}


def _chk_lmul_mac(a="fp8_e4m3", b="fp8_e4m3", acc="fp32", stages=1, mul="lmul", **_):
    p = _chk_fp_mac(a, b, acc, stages)
    m = lmul.check_multiplier(mul, p["a"], p["b"])
    if m == "exact":
        raise ValueError("--mul=exact: lmul_mac is the L-Mul MAC (lmul, lmul_l<k>); use fp_mac "
                         "for exact products")
    return {**p, "mul": m}


def _b_fp_mac(a, b, acc, stages, mul="exact", **_):
    out("acc", fpmac.fp_mac(inp("a", a.bits), inp("b", b.bits), a, b, acc.fmt,
                            clr=inp("clr", 1), en=inp("en", 1), overflow=acc.overflow,
                            pipe=Pipe(_cuts("fp_mac")(stages)),
                            multiply=lmul.product_generator(mul)))


def _v_fp_mac(n, rng, exhaustive, a, b, **_):
    x, y = _fp_pairs(n, rng, exhaustive, a, b)
    m = len(x) - len(x) % SEG
    v = {"a": x[:m], "b": y[:m]}
    v["clr"], v["en"] = seq_ctrl(m, rng, SEG)
    return v


def _e_fp_mac(v, a, b, acc, mul="exact", **_):
    A, B = v["a"].reshape(-1, SEG), v["b"].reshape(-1, SEG)
    en = v["en"].reshape(-1, SEG).astype(bool)
    st = np.zeros(A.shape[0], dtype=np.int64)
    res = np.zeros(A.shape, dtype=np.int64)
    for k in range(SEG):
        res[:, k] = st                           # register value before this cycle's update
        base = np.zeros_like(st) if k == 0 else st
        st = np.where(en[:, k], reference.fma_codes(A[:, k], B[:, k], base, a, b, acc.fmt,
                                                   acc.overflow, mul), base)
    res = res.ravel()
    res[::SEG] = np.concatenate([[0], st[:-1]])  # first cycle of a segment shows the previous one
    return {"acc": res}


# ---------------------------------------------------------------- Kulisch MAC
def _chk_kulisch(a="fp8_e4m3", b="fp8_e4m3", acc="exact", terms=1024, stages=1, **_):
    acc = parse_accum(acc)
    if not isinstance(acc, Exact):
        raise ValueError(f"--acc={acc.name}: kulisch_mac is the exact accumulator (acc=exact); "
                         "use fp_mac for a float accumulator")
    return {**_chk_fp_mul(a, b), "acc": acc, "terms": check_terms(terms),
            "stages": check_stages(stages)}


def _b_kulisch(a, b, terms, stages, **_):
    acc, nan, pinf, ninf = fpmac.kulisch_mac(inp("a", a.bits), inp("b", b.bits), a, b,
                                             acc_width(a, b, terms), clr=inp("clr", 1),
                                             en=inp("en", 1), pipe=Pipe(_cuts("kulisch_mac")(stages)))
    out("acc", acc)
    out("nan", nan)
    out("pinf", pinf)
    out("ninf", ninf)


def _v_kulisch(n, rng, exhaustive, a, b, **_):
    v = _v_fp_mul(n, rng, exhaustive, a, b)
    v["clr"], v["en"] = seq_ctrl(len(v["a"]), rng)
    return v


def _e_kulisch(v, a, b, terms, **_):
    fixed, nan, inf, p = reference.product_fixed(v["a"], v["b"], a, b)
    w = acc_width(a, b, terms)
    clr, en = v["clr"], v["en"]
    accs = reference.int_acc_trace(fixed, clr, en, w, "wrap")
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
    return {"acc": mask(accs, w), **{k: np.array(x) for k, x in fl.items()}}


DEFS = [
    Unit("int_mul", "int mult", "integer multiplier (array / wallace / dadda)", _b_int_mul,
         _v_int_mul, _e_int_mul, features.int_mul, dict(a="int8", b="int8", structure="dadda"),
         check=_chk_int_mul),
    Unit("int_mac", "int MAC", "registered integer MAC (exact or int<bits> wrap/saturate)",
         _b_int_mac, _v_int_mac, _e_int_mac, features.int_mac,
         dict(a="int8", b="int8", acc="exact", terms=1024, structure="dadda", stages=1), True,
         _chk_int_mac, MAC_STAGES, _cuts("int_mac")),
    Unit("fp_mul", "fp mult", "exact minifloat multiplier -> signed fixed point + NaN/Inf flags",
         _b_fp_mul, _v_fp_mul, _e_fp_mul, features.fp_mul, dict(a="fp8_e4m3", b="fp8_e4m3"),
         check=_chk_fp_mul),
    Unit("lmul_mul", "fp mult", "L-Mul approximate multiplier (Luo & Sun 2024): one integer "
         "adder over the bit fields -> signed fixed point + NaN/Inf flags", _b_lmul_mul,
         _v_fp_mul, _e_lmul_mul, features.lmul_mul, dict(a="fp8_e4m3", b="fp8_e4m3", mul="lmul"),
         check=_chk_lmul_mul),
    Unit("fp_fma", "fp MAC", "combinational MAC step RNE(c + a*b) in the float accumulator",
         _b_fp_fma, _v_fp_fma, _e_fp_fma, features.fp_fma,
         dict(a="fp8_e4m3", b="fp8_e4m3", acc="fp32"), check=_chk_fp_fma),
    Unit("fp_mac", "fp MAC", "registered float-accumulator MAC (RNE after every add)",
         _b_fp_mac, _v_fp_mac, _e_fp_mac, features.fp_mac,
         dict(a="fp8_e4m3", b="fp8_e4m3", acc="fp32", stages=1), True, _chk_fp_mac,
         MAC_STAGES, _cuts("fp_mac")),
    Unit("lmul_mac", "fp MAC", "registered float-accumulator MAC whose product is L-Mul "
         "(lmul_mul) instead of the exact product", _b_fp_mac, _v_fp_mac, _e_fp_mac,
         features.fp_mac, dict(a="fp8_e4m3", b="fp8_e4m3", acc="fp32", stages=1, mul="lmul"),
         True, _chk_lmul_mac, MAC_STAGES, _cuts("fp_mac")),
    Unit("kulisch_mac", "Kulisch", "registered exact fixed-point (Kulisch) minifloat MAC",
         _b_kulisch, _v_kulisch, _e_kulisch, features.kulisch_mac,
         dict(a="fp8_e4m3", b="fp8_e4m3", acc="exact", terms=1024, stages=1), True,
         _chk_kulisch, MAC_STAGES, _cuts("kulisch_mac")),
]

__all__ = ["DEFS", "MAC_STAGES", "MAC_CUTS", "int_mac_width", "seq_ctrl", "float_fmt", "int_fmt",
           "check_stages"]
