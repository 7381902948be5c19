"""Bridge to ``lowbit.hw``'s PyRTL generators: Verilog of hw/'s units for calibration.

hw/ is written concurrently; this module is the single place that knows its API
(``lowbit.hw.intmac.int_multiply / int_mac``, ``lowbit.hw.fpmul.fp_multiply``,
``lowbit.hw.fpmac.kulisch_mac``). ``export(kind, **params)`` returns ``(verilog, params)``
with the *actual* widths of hw's unit (e.g. its accumulator width) or None when hw/ lacks
the unit. hw's signed "array" multiplier is ``pyrtl.signed_mult`` (operands sign-extended
to n+m bits), so its feature style is "sext" (see :func:`lowbit.cost_models.units.mult_features`).
"""

from __future__ import annotations

import io
import math


def _verilog() -> str:
    import pyrtl

    buf = io.StringIO()
    pyrtl.output_to_verilog(buf, module_name="top")
    return buf.getvalue()


def export(kind: str, **params):
    """(Verilog text of module ``top``, params incl. actual widths and style="hw") or None."""
    import pyrtl

    from .refunits import fresh_block

    fresh_block()
    try:
        if kind in ("int_mult", "int_mac"):
            from lowbit.hw.intmac import acc_width, int_mac, int_multiply

            n, m, s = int(params["bits_a"]), int(params["bits_b"]), bool(params.get("signed", True))
            a, b = pyrtl.Input(n, "a"), pyrtl.Input(m, "b")
            if kind == "int_mult":
                o = pyrtl.Output(n + m, "p")
                o <<= int_multiply(a, b, s, "array")
                return _verilog(), {**params, "style": "hw"}
            k = max(0, int(params["acc_bits"]) - n - m)
            clr = pyrtl.Input(1, "clr")
            acc = int_mac(a, b, 2 ** k, s, "array", clr=clr, name="acc")  # name=None fails in pyrtl 1.0.3
            o = pyrtl.Output(len(acc), "y")
            o <<= acc
            assert len(acc) == acc_width(n, m, 2 ** k, s, s)
            return _verilog(), {**params, "acc_bits": len(acc), "style": "hw"}
        if kind in ("fp_mult", "fp_mac"):
            from lowbit.hw.fpmac import kulisch_mac
            from lowbit.hw.fpmul import fp_multiply, product_width

            e, mb = int(params["ebits"]), int(params["mbits"])
            fmt = f"e{e}m{mb}"
            a, b = pyrtl.Input(1 + e + mb, "a"), pyrtl.Input(1 + e + mb, "b")
            pw = product_width(fmt, fmt)
            if kind == "fp_mult":
                o = pyrtl.Output(pw, "p")
                o <<= fp_multiply(a, b, fmt, fmt).fixed
                return _verilog(), {**params, "style": "hw", "product_bits": pw}
            n_acc = 2 ** max(0, int(params["acc_bits"]) - pw)
            clr = pyrtl.Input(1, "clr")
            acc, fnan, fpi, fni = kulisch_mac(a, b, fmt, fmt, n_acc, clr=clr)
            o = pyrtl.Output(len(acc), "y")
            o <<= acc
            f = pyrtl.Output(3, "flags")
            f <<= pyrtl.concat(fnan, fpi, fni)
            return _verilog(), {**params, "acc_bits": len(acc), "style": "hw",
                                "product_bits": pw, "n_acc_log2": int(math.log2(n_acc))}
        if kind == "fp_acc_mac":
            from lowbit.hw.units import export_verilog

            v = export_verilog("fp_mac", module_name="top", a=params["a"], b=params["a"],
                               acc=params["acc"])
            return v, {**params, "style": "hw"}
        return None
    finally:
        pyrtl.reset_working_block()
