"""Per-layer hardware cost of each candidate format (the ILP's cost coefficients).

Metrics (``METRICS``; all "lower is better"):

============  ======  ===============================================================  ========
metric        unit    per-layer value of layer l in candidate f                        kind
============  ======  ===============================================================  ========
``energy``    pJ      compute + SRAM + DRAM energy per inference:                      additive
                      ``lowbit.cost_models.inference.evaluate_format`` (Horowitz-45nm
                      anchored per-MAC energy x MACs + array traffic x pJ/byte)
``latency``   cycles  ``max(array_cycles / pack_f, dram_bytes / dram_bytes_per_cycle)``  additive
                      array cycles of an R x C systolic array
                      (``lowbit.cost_models.array``), ``pack_f = max(1, 8 //
                      max(w_bits, a_bits))`` MACs per PE per cycle (a BitFusion-style
                      precision-scalable PE built for 8 bits: 4-bit operands run 2
                      MACs/cycle), memory roofline with ``dram_bytes_per_cycle``
``memory``    bits    weight storage incl. scales: params x element bits +             additive
                      scales x scale bits (+ zero points, + a 32-bit tensor scale)
``bops``      -       MACs x w_element_bits x a_element_bits (per inference)           additive
``area``      um^2    area of the shared R x C MAC array that supports every format    shared
                      used anywhere: ``sum_f y_f * A_f`` (``area_mode="sum"``: one
                      datapath per format, no sharing; the default, an upper bound) or
                      ``max_f y_f * A_f`` (``"max"``: the widest datapath is assumed to
                      subsume the narrower ones; a lower bound). ``A_f`` = R*C x
                      per-MAC sky130 area of ``lowbit.cost_models.unit_cost.mac_cost``
                      scaled from 130 nm to ``node_nm`` (default 45 nm)
============  ======  ===============================================================  ========

"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import lowbit.formats as lf
from lowbit.cost_models.array import ArrayConfig
from lowbit.cost_models.inference import evaluate_format

from .candidates import Candidate

METRICS = ("energy", "latency", "memory", "bops", "area")
ADDITIVE = ("energy", "latency", "memory", "bops")
SHARED = ("area",)
METRIC_UNITS = {"energy": "pJ", "latency": "cycles", "memory": "bits", "bops": "bit-ops",
         "area": "um^2"}
AREA_MODES = ("sum", "max")


@dataclass
class CostTable:
    """Cost coefficients. ``per_layer[m]`` (L, F) for additive metrics, ``shared[m]`` (F,) for
    shared ones (area); ``layers`` / ``candidates`` label the axes."""

    layers: list
    candidates: list
    per_layer: dict
    shared: dict
    units: dict = field(default_factory=lambda: dict(METRIC_UNITS))
    area_mode: str = "sum"
    source: str = "cost_models"
    notes: dict = field(default_factory=dict)

    @property
    def metrics(self) -> list:
        return [m for m in METRICS if m in self.per_layer or m in self.shared]

    def check_metric(self, m: str) -> str:
        if m not in self.metrics:
            raise ValueError(f"--budget: unknown metric {m!r}; allowed: {', '.join(self.metrics)}")
        return m

    def total(self, metric: str, choice) -> float:
        """Cost of an assignment ``choice`` (sequence of candidate indices, one per layer)."""
        idx = np.asarray(choice, dtype=int)
        if metric in self.per_layer:
            return float(self.per_layer[metric][np.arange(len(idx)), idx].sum())
        vals = self.shared[metric][np.unique(idx)]
        return float(vals.sum() if self.area_mode == "sum" else vals.max())

    def uniform(self, metric: str, j: int) -> float:
        return self.total(metric, [j] * len(self.layers))

    def max_uniform(self, metric: str) -> float:
        """Cost of the most expensive uniform candidate (the reference of budget fractions)."""
        return max(self.uniform(metric, j) for j in range(len(self.candidates)))

    def min_total(self, metric: str) -> float:
        """Cheapest achievable cost of ``metric`` on its own (any assignment)."""
        if metric in self.per_layer:
            return float(self.per_layer[metric].min(axis=1).sum())
        return float(self.shared[metric].min())

    def rows(self) -> list[dict]:
        """Flat table rows (layer, candidate, metric values; area is the shared per-format)."""
        out = []
        for i, ln in enumerate(self.layers):
            for j, c in enumerate(self.candidates):
                r = {"layer": ln, "candidate": c}
                for m in self.per_layer:
                    r[m] = float(self.per_layer[m][i, j])
                for m in self.shared:
                    r[m + "_shared"] = float(self.shared[m][j])
                out.append(r)
        return out


# ------------------------------------------------------------------------------ formats


def element_bits(fmt) -> int:
    """Element (code) bits of a format name / object, scales excluded."""
    f = lf.resolve(fmt)
    return int((f.element if f.kind == "block" else f).bits)


def storage_bits(fmt, shape) -> float:
    """Exact storage bits of an (M, K) operand quantised along K, scales included.

    Element formats: bits x M*K; block formats: ``BlockFormat.storage_bits`` (elements, one
    scale per block, zero points, per-tensor FP32 scale).
    """
    f = lf.resolve(fmt)
    M, K = int(shape[0]), int(np.prod(shape[1:]))
    if f.kind != "block":
        return float(f.bits * M * K)
    return float(f.storage_bits((M, K), axis=-1))


# ------------------------------------------------------------------------------ table


def build_cost_table(layers, candidates: list[Candidate], rows: int = 16, cols: int = 16,
                     dataflow: str = "WS", dram_bytes_per_cycle: float = 16.0,
                     area_mode: str = "sum", node_nm: float = 45.0,
                     acc="exact") -> CostTable:
    """Cost coefficients of every (layer, candidate) for ``layers`` (LayerSpec list); the MACs
    accumulate in ``acc`` (the search's accumulator: the hardware unit matches the numerics)."""
    if area_mode not in AREA_MODES:
        raise ValueError(f"--area-mode: unknown {area_mode!r}; allowed: {', '.join(AREA_MODES)}")
    L, F = len(layers), len(candidates)
    per = {m: np.zeros((L, F)) for m in ADDITIVE}
    area = np.zeros(F)
    source = "cost_models"
    cfg = ArrayConfig(rows=rows, cols=cols, dataflow=dataflow)
    macs = np.array([int(s.macs) for s in layers], dtype=float)
    for j, c in enumerate(candidates):
        wb, ab = element_bits(c.weight), element_bits(c.act)
        pack = max(1, 8 // max(wb, ab))
        per["bops"][:, j] = macs * wb * ab
        per["memory"][:, j] = [storage_bits(c.weight, s.weight_2d.shape) for s in layers]
        spec = c.weight if c.weight == c.act else f"{c.weight}/{c.act}"
        r = evaluate_format(spec, layers, cfg, acc=acc, node_nm=node_nm)
        per["energy"][:, j] = [x["e_total_pj"] for x in r["layers"]]
        cyc = np.array([x["cycles"] for x in r["layers"]], dtype=float)
        dram = np.array([x["dram_bytes"] for x in r["layers"]], dtype=float)
        area[j] = r["totals"]["array_area_um2"]
        per["latency"][:, j] = np.maximum(np.ceil(cyc / pack), np.ceil(dram / dram_bytes_per_cycle))
    notes = {"array": f"{rows}x{cols} {dataflow}", "acc": str(acc), "dram_bytes_per_cycle": dram_bytes_per_cycle,
             "area_mode": area_mode, "node_nm": node_nm}
    return CostTable([s.name for s in layers], [c.name for c in candidates], per,
                     {"area": area}, area_mode=area_mode, source=source, notes=notes)


def fmt_cost(metric: str, value: float) -> str:
    """Human-readable value with the metric's unit (engineering prefixes)."""
    u = METRIC_UNITS.get(metric, "")
    if metric == "energy":
        for s, k in (("uJ", 1e6), ("nJ", 1e3)):
            if abs(value) >= k:
                return f"{value / k:.4g} {s}"
        return f"{value:.4g} pJ"
    if metric == "memory":
        return f"{value / 8 / 1024:.4g} KiB" if value >= 8192 else f"{value:.0f} bits"
    if metric == "area":
        return f"{value / 1e6:.4g} mm^2" if value >= 1e5 else f"{value:.4g} um^2"
    if math.isfinite(value) and abs(value) >= 1e6:
        return f"{value:.4g} {u}"
    return f"{value:.6g} {u}".strip()
