"""``lowbit formats``: table of every registered format; ``lowbit formats show NAME``."""

from __future__ import annotations

import json
import math

import numpy as np

from lowbit.formats.registry import get_format, list_formats


def _props(name: str) -> dict:
    f = get_format(name)
    if f.kind == "block":
        bs = f.block_size
        return {"name": name, "kind": "block", "element": f.element.name,
                "scale": "fp32" if f.scale is None else f.scale.name,
                "block_size": list(bs) if isinstance(bs, tuple) else bs,
                "scale_rule": f.scale_rule if isinstance(f.scale_rule, str) else "callable",
                "tensor_scale": f.tensor_scale, "symmetric": f.symmetric,
                "bits_per_element": f.bits_per_element, "max": f.element.max}
    d = {"name": name, "kind": f.kind, "bits": f.bits, "max": f.max,
         "min_normal": f.min_normal, "min_subnormal": f.min_subnormal, "eps": f.eps,
         "emax": f.emax, "emin": f.emin, "has_inf": f.has_inf, "has_nan": f.has_nan}
    if f.kind == "float":
        d.update(ebits=f.ebits, mbits=f.mbits, bias=f.bias, signed=f.signed, nan_scheme=f.nan)
        d["num_finite"] = f.num_finite if f.bits <= 20 else None
    else:
        d.update(qmin=f.qmin, qmax=f.qmax, frac_bits=f.frac_bits, num_finite=f.num_finite)
    return d


def _fmt_num(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            e = math.log2(abs(v))
            return f"2^{int(e)}" if e == int(e) else f"{v:.4g}"
        return f"{v:g}"
    return str(v)


def cmd_formats(args) -> int:
    if args.action == "show":
        if not args.name:
            raise ValueError("lowbit formats show needs a format NAME "
                             f"(one of: {', '.join(list_formats())})")
        f = get_format(args.name)
        el = f.element if f.kind == "block" else f
        if el.bits > 8:
            raise ValueError(f"format {args.name!r} has {el.bits}-bit codes; "
                             "'show' lists every code of formats with at most 8 bits")
        vals = el.values()
        rows = [{"code": c, "hex": f"0x{c:02x}", "bits": format(c, f"0{el.bits}b"),
                 "value": None if np.isnan(v) else float(v)} for c, v in enumerate(vals)]
        if args.json:
            print(json.dumps({"format": _props(args.name), "codes": rows}, indent=1))
            return 0
        if f.kind == "block":
            print(f"{args.name}: element {el.name}, block {f.block_size}, scale "
                  f"{'fp32' if f.scale is None else f.scale.name} ({f.scale_rule})")
        print(f"{'code':>4} {'hex':>5} {'bits':>{max(el.bits, 4)}}  value")
        for r in rows:
            v = "NaN" if r["value"] is None else repr(r["value"])
            print(f"{r['code']:>4} {r['hex']:>5} {r['bits']:>{max(el.bits, 4)}}  {v}")
        return 0
    names = list_formats()
    props = [_props(n) for n in names]
    if args.json:
        print(json.dumps(props, indent=1))
        return 0
    cols = ["name", "kind", "bits", "max", "min_normal", "min_subnormal", "eps", "emax", "emin",
            "num_finite", "has_inf", "has_nan"]
    table = []
    for p in props:
        if p["kind"] == "block":
            table.append([p["name"], "block", f"{p['bits_per_element']:g}/el", _fmt_num(p["max"]),
                          f"elem {p['element']}", f"scale {p['scale']}",
                          f"k={p['block_size']}", p["scale_rule"], "", "", "", ""])
        else:
            table.append([_fmt_num(p.get(c)) for c in cols])
    widths = [max(len(str(r[i])) for r in table + [cols]) for i in range(len(cols))]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in table:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)))
    return 0


def register(sub) -> None:
    p = sub.add_parser("formats", help="list formats and their properties; 'show NAME' lists codes")
    p.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    p.add_argument("name", nargs="?", help="format name for 'show'")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_formats)
