"""Sweep points: what one (workload, format, accumulator, quantizer) evaluation is.

A point's identity is its key ``workload|format|accum|quantizer|version``; ``version`` is the
workload's version (a hash of its weights) plus :data:`SWEEP_VERSION`, so a changed model or
changed sweep semantics never reuses stale results.

``format`` is one registry name used for weights and activations, or ``"WFMT/AFMT"`` for
different weight and activation formats (e.g. ``int4_g128/fp8_e4m3``).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import lowbit.formats as lf
from lowbit.formats.accum import parse_accum

from ..quantizers.compose import parse_quantizer

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
        return self.format.split("/")[0]

    @property
    def act_format(self) -> str:
        parts = self.format.split("/")
        return parts[1] if len(parts) > 1 else parts[0]

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


def validate_format(spec: str) -> str:
    """Check ``FMT`` or ``WFMT/AFMT`` against the format registry (ValueError otherwise)."""
    parts = spec.split("/")
    if len(parts) > 2 or not all(parts):
        raise ValueError(f"--formats: bad entry {spec!r}; use FMT or WFMT/AFMT")
    for p in parts:
        try:
            lf.resolve(p)
        except (ValueError, KeyError) as exc:
            raise ValueError(
                f"--formats: unknown format {p!r}; allowed: {', '.join(lf.list_formats())}"
            ) from exc
    return spec


def build_points(workload: str, formats=None, accums=None, quantizers=None,
                 version: str | None = None) -> list[SweepPoint]:
    """Validated cross product formats x accums x quantizers for one workload.

    Raises ValueError naming the bad argument (unknown workload, format, accumulator,
    quantizer) and the allowed values.
    """
    from lowbit.sim.workloads import get_workload

    wl = get_workload(workload)  # ValueError lists the workloads
    fmts = split_list(formats) or list(DEFAULT_FORMATS)
    accs = split_list(accums) or list(DEFAULT_ACCUMS)
    qs = split_list(quantizers) or list(DEFAULT_QUANTIZERS)
    for f in fmts:
        validate_format(f)
    for a in accs:
        try:
            parse_accum(a)
        except ValueError as exc:
            raise ValueError(f"--accum: {exc}") from exc
    qs = list(dict.fromkeys(parse_quantizer(q).name for q in qs))  # canonical names
    ver = version or f"{getattr(wl, 'version', '0')}+{SWEEP_VERSION}"
    return [SweepPoint(workload, f, a, q, ver) for f, a, q in itertools.product(fmts, accs, qs)]
