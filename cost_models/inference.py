"""Energy, latency and area per inference of a workload on the array, per format and layer.

    E_layer = MACs * E_mac(w_fmt, a_fmt)                      (compute, pJ)
            + SRAM bytes * E_sram(buffer size)                (on-chip traffic)
            + DRAM bytes * E_dram                             (off-chip traffic)

with E_mac from :func:`lowbit.cost_models.energy.mac_energy`, traffic from
:func:`lowbit.cost_models.array.network_model` (bytes use bits_per_element including block
scales) and memory energies from :mod:`lowbit.cost_models.energy`. The MAC is the registry unit
of :func:`lowbit.cost_models.unit_cost.mac_unit` for the explicit accumulator ``acc`` (every
result row names it in ``arch``). Array area = R*C PEs x the unit's sky130 area per MAC (um^2
at 130 nm, scaled to ``node_nm`` by (node/130)^2); ``array_cost`` = R*C x the per-MAC cost on
``target``.

A "format spec" is a registry name used for weights and activations ("mxfp4") or
"WFMT/AFMT" ("int4/int8").
"""

from __future__ import annotations

import numpy as np

from lowbit.formats import BlockFormat, IntFormat, resolve
from lowbit.formats.accum import parse_accum
from lowbit.formats.multiplier import parse_multiplier
from lowbit.hw.widths import acc_width
from lowbit.sim.workloads import get_workload

from .array import ArrayConfig, gemm_model, layers_to_gemm
from .energy import dram_pj_per_byte, mac_energy, scale_area, sram_pj_per_byte
from .unit_cost import mac_cost, mac_operand

__all__ = ["split_spec", "spec_multiplier", "evaluate_format", "workload_layers"]


def split_spec(spec: str) -> tuple[str, str]:
    """'w/a' -> (w, a); 'f' -> (f, f). Validates both names. A multiplier suffix ``@MUL``
    (see :func:`spec_multiplier`) is allowed and ignored here."""
    parts = str(spec).partition("@")[0].split("/")
    if len(parts) not in (1, 2) or not all(parts):
        raise ValueError(f"--formats: bad format spec {spec!r}; expected NAME, WFMT/AFMT, "
                         "optionally @MUL")
    w, a = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    resolve(w, arg="--formats"), resolve(a, arg="--formats")
    return w, a


def spec_multiplier(spec: str) -> str:
    """The multiplier model of a format spec ``W[/A][@MUL]`` (``"exact"`` without a suffix;
    the sweep's spelling, :mod:`lowbit.sim.sweep.points`)."""
    mul = str(spec).partition("@")[2]
    return parse_multiplier(mul or "exact").name


def _tensor_scale_bits(f) -> float:
    return 32.0 if isinstance(f, BlockFormat) and f.tensor_scale else 0.0


def _int_elements(w, a) -> tuple[bool, list]:
    el = [mac_operand(resolve(f)) for f in (w, a)]
    return all(isinstance(f, IntFormat) for f in el), el


def workload_layers(name: str):
    """Layers of a registered ``lowbit.sim`` workload (ValueError if unknown / missing)."""
    try:
        return get_workload(name).layers()
    except ValueError as exc:
        raise ValueError(f"--workload: {exc}") from exc


def evaluate_format(spec: str, layers, cfg: ArrayConfig = ArrayConfig(), acc="exact",
                    node_nm: float = 45.0, target: str = "gates", terms: int = 1024) -> dict:
    """Per-layer and total area / energy / latency of ``layers`` in format ``spec`` with MACs
    accumulating in ``acc`` (an accumulator model or its string; "exact" = Kulisch / exact
    integer register of ``terms`` sums).

    Returns {"spec", "w", "a", "arch", "layers": [dict per layer], "totals": {...}}. Energies
    in pJ (totals also in uJ), area in um^2, ``mac_cost`` in the target's metric.
    """
    w, a = split_spec(spec)
    wf, af = resolve(w), resolve(a)
    accm = parse_accum(acc)
    g = layers_to_gemm(layers)
    ints, el = _int_elements(w, a)
    if ints and accm.kind == "exact":   # exact integer partial sums of each layer's K
        psb = np.array([acc_width(el[0], el[1], int(max(k, 1))) for k in g["K"]], float)
    elif ints and accm.kind == "int":
        psb = float(accm.bits)
    else:
        psb = 32.0                        # fp32 partial sums between folds
    net = gemm_model(g["M"], g["K"], g["N"], cfg, g["groups"], af.bits_per_element,
                     wf.bits_per_element, af.bits_per_element, psb, g["a_unique"],
                     _tensor_scale_bits(af), _tensor_scale_bits(wf))
    net["name"] = g["name"]
    mul = spec_multiplier(spec)
    em = mac_energy(w, a, accm, terms=terms, node_nm=node_nm, multiplier=mul)["pj"]
    mc = mac_cost(w, a, accm, target=target, terms=terms, multiplier=mul)
    mc_s = mac_cost(w, a, accm, target="sky130", terms=terms, multiplier=mul)
    mc_g = mac_cost(w, a, accm, target="gates", terms=terms, multiplier=mul)
    buf_avg = float(np.mean(cfg.buffers))
    e_sram = sram_pj_per_byte(buf_avg, node_nm)
    e_dram = dram_pj_per_byte(node_nm)
    comp = net["macs"] * em
    sram = net["sram_bytes"] * e_sram
    dram = net["dram_bytes"] * e_dram
    rows = []
    for i, name in enumerate(net["name"]):
        rows.append({"format": spec, "layer": name, "macs": int(net["macs"][i]),
                     "cycles": int(net["cycles"][i]), "util": float(net["util"][i]),
                     "sram_bytes": float(net["sram_bytes"][i]),
                     "dram_bytes": float(net["dram_bytes"][i]),
                     "e_compute_pj": float(comp[i]), "e_sram_pj": float(sram[i]),
                     "e_dram_pj": float(dram[i]),
                     "e_total_pj": float(comp[i] + sram[i] + dram[i])})
    pes = cfg.rows * cfg.cols
    mac_um2 = scale_area(mc_s["cost"], node_nm, from_nm=130.0)
    cycles = float(np.sum(net["cycles"]))
    tot = {
        "format": spec, "arch": mc["arch"], "acc": accm.name, "w_bits": wf.bits_per_element,
        "a_bits": af.bits_per_element, "mac_ge": mc_g["cost"], "mac_area_um2": mac_um2,
        "mac_cost": mc["cost"], "mac_cost_unit": mc["metric"], "mac_ff": mc["ff"],
        "mac_pj": em, "array_area_um2": pes * mac_um2,
        "array_cost": pes * mc["cost"], "macs": int(np.sum(net["macs"])), "cycles": cycles,
        "latency_us": cycles / cfg.freq_mhz, "util": float(np.sum(net["macs"])) / (pes * cycles),
        "sram_bytes": float(np.sum(net["sram_bytes"])), "dram_bytes": float(np.sum(net["dram_bytes"])),
        "e_compute_uj": float(np.sum(comp)) * 1e-6, "e_sram_uj": float(np.sum(sram)) * 1e-6,
        "e_dram_uj": float(np.sum(dram)) * 1e-6,
    }
    tot["e_total_uj"] = tot["e_compute_uj"] + tot["e_sram_uj"] + tot["e_dram_uj"]
    return {"spec": spec, "w": w, "a": a, "arch": mc["arch"], "layers": rows, "totals": tot}
