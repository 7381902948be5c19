"""Named formats: canonical names plus the aliases users already type (ml_dtypes / torch / OCP).

``get_format("fp8_e4m3")``, ``get_format("float8_e4m3fn")``, ``get_format("e4m3")`` all give the
OCP E4M3 (``fn``) format. Any ``e{E}m{M}`` (IEEE-style, with Inf/NaN and subnormals) and
``ue{E}m{M}`` / ``e{E}m{M}fn`` / ``e{E}m{M}fnuz`` (``_inf`` suffix: Inf below the top NaN) are
built on the fly, as is every IEEE P3109 format under its gfloat / pychop name
``p3109_k{K}p{P}{s|u}{e|f}`` or its P3109 name ``binary{K}p{P}`` (signed extended by default; a
``se`` / ``sf`` / ``ue`` / ``uf`` suffix picks signedness and domain), e.g. ``p3109_k8p3``,
``binary8p3``, ``binary8p4uf``. Fixed point: ``q3.4`` / ``uq1.7`` (Qm.n, sign bit not counted in
``m``) and the HLS spellings ``ap_fixed<8,4>``, ``ap_ufixed<8,1,AP_RND_CONV,AP_SAT>`` (see
:mod:`lowbit.formats.int_format`).
"""

from __future__ import annotations

import re

from lowbit.formats.block_format import BlockFormat
from lowbit.formats.float_format import FloatFormat, p3109
from lowbit.formats.int_format import IntFormat, ap_fixed, fixed_point

F = FloatFormat

_FLOATS = {
    "fp32": F(8, 23, name="fp32"),
    "tf32": F(8, 10, name="tf32"),
    "bf16": F(8, 7, name="bf16"),
    "fp16": F(5, 10, name="fp16"),
    "fp8_e4m3": F(4, 3, nan="fn", name="fp8_e4m3"),
    "fp8_e5m2": F(5, 2, name="fp8_e5m2"),
    "fp8_e4m3fnuz": F(4, 3, nan="fnuz", name="fp8_e4m3fnuz"),
    "fp8_e5m2fnuz": F(5, 2, nan="fnuz", name="fp8_e5m2fnuz"),
    "fp8_e3m4": F(3, 4, name="fp8_e3m4"),
    "fp6_e2m3": F(2, 3, nan=None, name="fp6_e2m3"),
    "fp6_e3m2": F(3, 2, nan=None, name="fp6_e3m2"),
    "fp4_e2m1": F(2, 1, nan=None, name="fp4_e2m1"),
    "e8m0": F(8, 0, bias=127, signed=False, subnormals=False, zero=False, nan="fn", name="e8m0"),
    "ue4m3": F(4, 3, signed=False, nan="fn", name="ue4m3"),
    "ue5m3": F(5, 3, signed=False, nan="fn", name="ue5m3"),
}

# gfloat's ``p3109_binary8_formats`` collection; any other K/P is built on the fly
for _k, _p, _s, _d in ([(8, 1, s, "extended") for s in (True, False)]
                       + [(8, p, s, d) for p in (3, 4) for s in (True, False)
                          for d in ("extended", "finite")]
                       + [(8, 7, True, "finite"), (8, 8, False, "finite")]):
    _f = p3109(_k, _p, signed=_s, domain=_d)
    _FLOATS[_f.name] = _f

_INTS = {}
for _b in range(2, 9):
    _INTS[f"int{_b}"] = IntFormat(_b, name=f"int{_b}")
    _INTS[f"uint{_b}"] = IntFormat(_b, signed=False, name=f"uint{_b}")
_INTS["int16"] = IntFormat(16, name="int16")
_INTS["int32"] = IntFormat(32, name="int32")

_E8M0 = _FLOATS["e8m0"]
_MXINT8_EL = IntFormat(8, narrow=True, frac_bits=6, name="mxint8_element")


def _mx(el, name):
    return BlockFormat(_FLOATS[el] if isinstance(el, str) else el, _E8M0, 32, "floor", name=name)


_BLOCKS = {
    "mxfp8_e4m3": _mx("fp8_e4m3", "mxfp8_e4m3"),
    "mxfp8_e5m2": _mx("fp8_e5m2", "mxfp8_e5m2"),
    "mxfp6_e3m2": _mx("fp6_e3m2", "mxfp6_e3m2"),
    "mxfp6_e2m3": _mx("fp6_e2m3", "mxfp6_e2m3"),
    "mxfp4": _mx("fp4_e2m1", "mxfp4"),
    "mxint8": _mx(_MXINT8_EL, "mxint8"),  # symmetric [-127, 127]/64, as microxcaling
    "mxint8_fullrange": _mx(IntFormat(8, frac_bits=6, name="int8_f6"), "mxint8_fullrange"),
    "nvfp4": BlockFormat(_FLOATS["fp4_e2m1"], _FLOATS["ue4m3"], 16, "amax", tensor_scale=True,
                         name="nvfp4"),
    "bfp8": BlockFormat(IntFormat(8, narrow=True, frac_bits=6, name="bfp8_element"), _E8M0, 16,
                        "floor", name="bfp8"),
    "bfp4": BlockFormat(IntFormat(4, narrow=True, frac_bits=2, name="bfp4_element"), _E8M0, 16,
                        "floor", name="bfp4"),
    "int8_pt": BlockFormat(_INTS["int8"], None, None, "amax", name="int8_pt"),
    "int8_pc": BlockFormat(IntFormat(8, narrow=True), None, -1, "amax", name="int8_pc"),
    "int4_pc": BlockFormat(IntFormat(4, narrow=True), None, -1, "amax", name="int4_pc"),
    "int8_g128": BlockFormat(IntFormat(8, narrow=True), None, 128, "amax", name="int8_g128"),
    "int4_g128": BlockFormat(IntFormat(4, narrow=True), None, 128, "amax", name="int4_g128"),
    "int4_g32": BlockFormat(IntFormat(4, narrow=True), None, 32, "amax", name="int4_g32"),
    "int4_g128_asym": BlockFormat(_INTS["uint4"], None, 128, "amax", symmetric=False,
                                  name="int4_g128_asym"),
    "int8_pc_asym": BlockFormat(_INTS["uint8"], None, -1, "amax", symmetric=False,
                                name="int8_pc_asym"),
}


def _scaled(element, group, name):
    """Symmetric scaled variant of an element format with an FP32 amax scale: per channel
    (``group == "pc"``), per tensor (``"pt"``) or per group of ``int(group)`` elements. INT
    elements use the narrow range [-(2^(b-1)-1), 2^(b-1)-1] (as int4_pc / int8_pc)."""
    if element.kind == "int":
        element = IntFormat(element.bits, narrow=True)
    bs = -1 if group == "pc" else None if group == "pt" else int(group)
    return BlockFormat(element, None, bs, "amax", name=name)


# minifloats get the same scaled variants as INT (fair FP-vs-INT comparisons); any other
# ``<element>_pc`` / ``_pt`` / ``_g<N>`` is built on the fly by get_format
for _el in ("fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp6_e3m2", "fp4_e2m1"):
    for _g in ("pc", "32", "128"):
        _n = f"{_el}_{'pc' if _g == 'pc' else 'g' + _g}"
        _BLOCKS[_n] = _scaled(_FLOATS[_el], _g, _n)

_ALIASES = {
    "float32": "fp32", "f32": "fp32", "single": "fp32",
    "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "f16": "fp16",
    "float8_e4m3fn": "fp8_e4m3", "e4m3": "fp8_e4m3", "e4m3fn": "fp8_e4m3", "fp8": "fp8_e4m3",
    "float8_e5m2": "fp8_e5m2", "e5m2": "fp8_e5m2",
    "float8_e4m3fnuz": "fp8_e4m3fnuz", "e4m3fnuz": "fp8_e4m3fnuz",
    "float8_e5m2fnuz": "fp8_e5m2fnuz", "e5m2fnuz": "fp8_e5m2fnuz",
    "float8_e3m4": "fp8_e3m4", "e3m4": "fp8_e3m4",
    "float6_e2m3fn": "fp6_e2m3", "e2m3": "fp6_e2m3", "fp6": "fp6_e2m3",
    "float6_e3m2fn": "fp6_e3m2", "e3m2": "fp6_e3m2",
    "float4_e2m1fn": "fp4_e2m1", "e2m1": "fp4_e2m1", "fp4": "fp4_e2m1",
    "float8_e8m0fnu": "e8m0", "e8m0fnu": "e8m0",
    "mxfp8": "mxfp8_e4m3", "mxfp6": "mxfp6_e2m3",
    "int8_per_tensor": "int8_pt", "int8_per_channel": "int8_pc", "int4_per_channel": "int4_pc",
}

_REGISTRY = {**_FLOATS, **_INTS, **_BLOCKS}
_ONTHEFLY = re.compile(r"^(u?)e(\d+)m(\d+)(fn|fnuz)?(_inf)?$")
_P3109 = re.compile(r"^(?:p3109_k|binary)(\d+)p(\d+)(?:([su])([ef]))?$")
_QMN = re.compile(r"^(u?)q(\d+)\.(\d+)$")
_AP_FIXED = re.compile(r"^ap_(u?)fixed<(-?\d+),(-?\d+)(?:,(\w+)(?:,(\w+)(?:,(\d+))?)?)?>$")
_FP_BITS = re.compile(r"^fp(\d+)_e(\d+)m(\d+)$")  # fp{B}_e{E}m{M}: finite-only minifloat
_SCALED = re.compile(r"^(.+)_(pc|pt|g(\d+))$")


def list_formats(kind: str | None = None) -> list[str]:
    """Canonical names; ``kind`` in {None, "float", "int", "block"}."""
    kinds = (None, "float", "int", "block")
    if kind not in kinds:
        raise ValueError(f"kind must be one of {list(kinds)}, got {kind!r}")
    return [n for n, f in _REGISTRY.items() if kind is None or f.kind == kind]


def register_format(name: str, fmt) -> None:
    """Add a user format under ``name`` (errors on a clash with an existing name)."""
    key = name.lower()
    if key in _REGISTRY or key in _ALIASES:
        raise ValueError(f"format name {name!r} is already registered")
    _REGISTRY[key] = fmt


def get_format(name):
    """Format object for a canonical name, an alias, an ``e{E}m{M}`` spelling, ``fp{B}_e{E}m{M}``
    (finite-only minifloat) or ``<element>_pc|_pt|_g<N>`` (FP32-scaled variant; a format object
    is returned as it is; see :func:`resolve` for kind checks)."""
    if not isinstance(name, str):
        return resolve(name)
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key in _REGISTRY:
        return _REGISTRY[key]
    m = _FP_BITS.match(key)
    if m and int(m.group(1)) == 1 + int(m.group(2)) + int(m.group(3)) and int(m.group(2)) >= 1:
        # like OCP FP6 / FP4: no Inf / NaN, every code finite, subnormals
        return FloatFormat(int(m.group(2)), int(m.group(3)), nan=None, name=key)
    m = _SCALED.match(key)
    if m and (m.group(3) is None or int(m.group(3)) > 0):
        try:
            el = get_format(m.group(1))
        except ValueError:
            el = None
        if el is not None and el.kind in ("float", "int") and el.signed:
            return _scaled(el, m.group(3) or m.group(2), key)
    m = _ONTHEFLY.match(key)
    if m:
        unsigned, e, mb, nan = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
        inf = True if m.group(5) else None
        return FloatFormat(e, mb, signed=not unsigned, nan=nan or "ieee", inf=inf, name=key)
    m = _P3109.match(key)
    if m:
        k, p = int(m.group(1)), int(m.group(2))
        signed, domain = m.group(3) != "u", "finite" if m.group(4) == "f" else "extended"
        return p3109(k, p, signed=signed, domain=domain)
    m = _QMN.match(key)
    if m:
        return fixed_point(int(m.group(2)), int(m.group(3)), signed=not m.group(1))
    m = _AP_FIXED.match(key.replace(" ", ""))
    if m:
        q, o, n = m.group(4) or "AP_TRN", m.group(5) or "AP_WRAP", int(m.group(6) or 0)
        return ap_fixed(int(m.group(2)), int(m.group(3)), q, o, n, signed=not m.group(1))
    raise ValueError(f"unknown format {name!r}; known formats: {', '.join(list_formats())} "
                     f"(aliases: {', '.join(sorted(_ALIASES))}; or any e<E>m<M>[fn|fnuz][_inf], "
                     f"p3109_k<K>p<P>[s|u][e|f], binary<K>p<P>[s|u][e|f], [u]q<m>.<n>, "
                     f"ap_[u]fixed<W,I[,Q[,O]]>, fp<B>_e<E>m<M> (finite-only minifloat, "
                     f"B = 1+E+M) or <element>_pc|_pt|_g<N> (FP32-scaled per channel / tensor / "
                     f"group of N))")


FORMAT_TYPES = (FloatFormat, IntFormat, BlockFormat)
FORMAT_KINDS = ("float", "int", "block", "element")
"""Values of ``resolve(kind=...)``: a format's own ``kind`` or ``"element"`` (float or int)."""


def resolve(fmt, kind=None, *, optional: bool = False, arg: str = "fmt"):
    """The format object for ``fmt``: a registry name / alias / ``e{E}m{M}`` spelling, or a
    :class:`FloatFormat` / :class:`IntFormat` / :class:`BlockFormat` (returned as it is).

    This is the one place a name becomes a format: every layer (sim, hw, cost_models, kernels)
    calls it. ``kind`` restricts the result: ``"float"``, ``"int"``, ``"block"``, ``"element"``
    (float or int) or a tuple of those; a format of another kind raises ValueError naming
    ``arg`` and the allowed kinds. ``optional=True`` lets ``None`` through (returns ``None``:
    "not quantised"); otherwise ``None`` is a TypeError. Unknown names raise ValueError listing
    the known ones.
    """
    kinds = (kind,) if isinstance(kind, str) else tuple(kind or ())
    for k in kinds:
        if k not in FORMAT_KINDS:
            raise ValueError(f"kind must be one of {list(FORMAT_KINDS)} or a tuple of them, "
                             f"got {k!r}")
    if fmt is None:
        if optional:
            return None
        raise TypeError(f"{arg} must be a format name or format object, got None")
    if isinstance(fmt, str):
        out = get_format(fmt)
    elif isinstance(fmt, FORMAT_TYPES):
        out = fmt
    else:
        raise TypeError(f"{arg} must be a format name (str), FloatFormat, IntFormat or "
                        f"BlockFormat, got {type(fmt).__name__}")
    if kinds:
        ok = out.kind in kinds or ("element" in kinds and out.kind in ("float", "int"))
        if not ok:
            raise ValueError(f"{arg}={out.name!r} is a {out.kind} format; allowed here: "
                             f"{' or '.join(kinds)} formats")
    return out
