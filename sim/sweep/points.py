"""Sweep points: what one (workload, format, accumulator, quantizer) evaluation is.

A point's identity is its key ``workload|format|accum|quantizer|version``; ``version`` is the
workload's version (a hash of its weights) plus :data:`SWEEP_VERSION`, so a changed model or
changed sweep semantics never reuses stale results.

``format`` is one registry name used for weights and activations, or ``"WFMT/AFMT"`` for
different weight and activation formats (e.g. ``int4_g128/fp8_e4m3``), optionally followed by
``@MUL``, the multiplier model of the GEMMs (:func:`lowbit.formats.parse_multiplier`:
``fp8_e4m3@lmul`` multiplies the e4m3 codes with L-Mul; no suffix = exact products).
``build_points(..., multipliers=["exact", "lmul"])`` (``lowbit sweep --multiplier``) adds the
suffix to every format whose element formats the multiplier supports.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import lowbit.formats as lf
from lowbit.formats.accum import parse_accum
from lowbit.formats.multiplier import parse_multiplier

from ..quantizers.compose import parse_quantizer
from ..workloads import get_workload

SWEEP_VERSION = "sweep2"  # sweep2: per-sample metrics with bootstrap intervals

DEFAULT_WORKLOADS = ("tinylm",)
DEFAULT_FORMATS = (
    "fp32", "fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp4_e2m1", "fp4_e2m1_pc", "mxfp8_e4m3",
    "mxfp6_e2m3", "mxfp4", "nvfp4", "int8_pc", "int4_pc", "int4_g128",
)
DEFAULT_ACCUMS = ("fp32",)
DEFAULT_QUANTIZERS = ("rtn",)


@dataclass(frozen=True)
class SweepPoint:
    workload: str
    format: str
    accum: str
    quantizer: str
    version: str

    @property
    def key(self) -> str:
        return "|".join((self.workload, self.format, self.accum, self.quantizer, self.version))

    @property
    def weight_format(self) -> str:
        return split_format(self.format)[0]

    @property
    def act_format(self) -> str:
        return split_format(self.format)[1]

    @property
    def multiplier(self) -> str:
        """The multiplier model's name (``"exact"`` without an ``@MUL`` suffix)."""
        return split_format(self.format)[2]

    def to_dict(self) -> dict:
        return asdict(self)


def split_list(values) -> list[str]:
    """Accept ["a,b", "c"] or "a,b" -> ["a", "b", "c"] (order kept, duplicates dropped)."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for v in values:
        for item in str(v).split(","):
            item = item.strip()
            if item and item not in out:
                out.append(item)
    return out


def split_format(spec: str) -> tuple[str, str, str]:
    """``"W[/A][@MUL]"`` -> ``(W, A or W, MUL or "exact")`` (no validation)."""
    fmts, _, mul = str(spec).partition("@")
    parts = fmts.split("/")
    return parts[0], parts[1] if len(parts) > 1 else parts[0], mul or "exact"


def _element(f):
    return f.element if f.kind == "block" else f


def validate_format(spec: str) -> str:
    """Check ``FMT``, ``WFMT/AFMT`` and an ``@MUL`` suffix against the format registry and the
    multiplier models (ValueError naming the problem otherwise)."""
    fmts, at, mul = str(spec).partition("@")
    parts = fmts.split("/")
    if len(parts) > 2 or not all(parts) or (at and not mul):
        raise ValueError(f"--formats: bad entry {spec!r}; use FMT, WFMT/AFMT, optionally @MUL")
    objs = []
    for p in parts:
        try:
            objs.append(lf.resolve(p))
        except (ValueError, KeyError) as exc:
            raise ValueError(
                f"--formats: unknown format {p!r}; allowed: {', '.join(lf.list_formats())}"
            ) from exc
    if at:
        try:
            model = parse_multiplier(mul)
            model.check(_element(objs[-1]), _element(objs[0]))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"--formats {spec!r}: {exc}") from exc
    return spec


def with_multiplier(spec: str, multiplier: str) -> str | None:
    """``spec`` with the ``@multiplier`` suffix (``spec`` itself for ``"exact"``), or ``None``
    when the multiplier cannot multiply its element formats (e.g. L-Mul on integers)."""
    if parse_multiplier(multiplier).is_exact:
        return spec
    try:
        return validate_format(f"{spec.partition('@')[0]}@{multiplier}")
    except ValueError:
        return None


def build_points(workload: str, formats=None, accums=None, quantizers=None,
                 version: str | None = None, multipliers=None) -> list[SweepPoint]:
    """Validated cross product formats x accums x quantizers for one workload.

    ``multipliers`` (e.g. ``["exact", "lmul"]``): every format once per multiplier model that
    can multiply its element formats (``FMT@MUL``; a format no listed multiplier supports
    is kept with exact products). Raises ValueError naming the bad argument (unknown workload,
    format, accumulator, quantizer, multiplier) and the allowed values.
    """
    wl = get_workload(workload)  # ValueError lists the workloads
    fmts = split_list(formats) or list(DEFAULT_FORMATS)
    accs = split_list(accums) or list(DEFAULT_ACCUMS)
    qs = split_list(quantizers) or list(DEFAULT_QUANTIZERS)
    for f in fmts:
        validate_format(f)
    muls = split_list(multipliers)
    for m in muls:
        try:
            parse_multiplier(m)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"--multiplier: {exc}") from exc
    if muls:
        expanded = []
        for f in fmts:
            got = [g for g in (with_multiplier(f, m) for m in muls) if g is not None]
            for g in got or [f]:
                if g not in expanded:
                    expanded.append(g)
        fmts = expanded
    for a in accs:
        try:
            parse_accum(a)
        except ValueError as exc:
            raise ValueError(f"--accum: {exc}") from exc
    qs = list(dict.fromkeys(parse_quantizer(q).name for q in qs))  # canonical names
    ver = version or f"{getattr(wl, 'version', '0')}+{SWEEP_VERSION}"
    return [SweepPoint(workload, f, a, q, ver) for f, a, q in itertools.product(fmts, accs, qs)]
