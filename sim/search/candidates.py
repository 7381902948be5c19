"""Candidate formats of the mixed-precision search and their names.

A candidate is one registry name of :mod:`lowbit.formats` used for both the weights and the
activations of a layer, or ``"WFMT/AFMT"`` for different weight / activation formats.

Bare integer names map to a *scaled* integer format (an unscaled ``int4`` cannot hold real
weights): ``int8 -> int8_pc`` and ``int4 -> int4_pc`` (:data:`INT_ALIASES`): symmetric narrow
INT with one FP32 scale per row of the (rows, K) GEMM operand, i.e. per output channel for the
weights and per token / output pixel (dynamic) for the activations. Pass the explicit names
(``int4_g128``, ``int8_pt`` ...) for other granularities.
"""

from __future__ import annotations

from dataclasses import dataclass

import lowbit.formats as lf
from lowbit.sim.qconfig import make_config

INT_ALIASES = {"int8": "int8_pc", "int4": "int4_pc"}

DEFAULT_CANDIDATES = ("fp8_e4m3", "mxfp6_e2m3", "mxfp4", "nvfp4", "int8", "int4")


@dataclass(frozen=True)
class Candidate:
    """One candidate: ``name`` as the user wrote it (after aliasing), weight / act formats."""

    name: str
    weight: str
    act: str

    def config(self, accum: str = "exact"):
        """The :class:`QuantConfig` of a layer in this candidate."""
        return make_config(self.weight, self.act, accum=accum)


def _canon(name: str) -> str:
    n = name.strip()
    n = INT_ALIASES.get(n.lower(), n)
    lf.resolve(n)  # ValueError listing the allowed names
    return n


def parse_candidates(spec) -> list[Candidate]:
    """Candidates from ``"a,b,c"`` or an iterable of names / ``W/A`` pairs / Candidates.

    Raises ValueError (naming ``--candidates``) for unknown names, duplicates or < 1 entry.
    """
    if spec is None:
        spec = DEFAULT_CANDIDATES
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[Candidate] = []
    for it in items:
        if isinstance(it, Candidate):
            out.append(it)
            continue
        it = str(it).strip()
        if not it:
            continue
        parts = it.split("/")
        if len(parts) > 2:
            raise ValueError(f"--candidates: bad entry {it!r}; expected FMT or WFMT/AFMT")
        try:
            w = _canon(parts[0])
            a = _canon(parts[-1])
        except ValueError as exc:
            raise ValueError(f"--candidates: {exc}") from exc
        out.append(Candidate(w if len(parts) == 1 else f"{w}/{a}", w, a))
    if not out:
        raise ValueError("--candidates: need at least one format")
    names = [c.name for c in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"--candidates: duplicate entries {dup} (int8/int4 map to "
                         f"{INT_ALIASES['int8']}/{INT_ALIASES['int4']})")
    return out
