"""Energy, latency and area per inference of a workload on the array, per format and layer.

    E_layer = MACs * E_mac(w_fmt, a_fmt)                      (compute, pJ)
            + SRAM bytes * E_sram(buffer size)                (on-chip traffic)
            + DRAM bytes * E_dram                             (off-chip traffic)

with E_mac from :func:`lowbit.cost_models.energy.mac_energy`, traffic from
:func:`lowbit.cost_models.array.network_model` (bytes use bits_per_element including block
scales) and memory energies from :mod:`lowbit.cost_models.energy`. Array area = R*C PEs x
per-MAC cost (:func:`lowbit.cost_models.units.mac_cost`).

A "format spec" is a registry name used for weights and activations ("mxfp4") or
"WFMT/AFMT" ("int4/int8").
"""

from __future__ import annotations

import numpy as np

from .array import ArrayConfig, network_model
from .energy import dram_pj_per_byte, mac_energy, scale_area, sram_pj_per_byte
from .fmt import hw_format
from .units import GE_UM2_45NM, acc_bits_for, mac_cost

__all__ = ["split_spec", "evaluate_format", "workload_layers"]


def split_spec(spec: str) -> tuple[str, str]:
    """'w/a' -> (w, a); 'f' -> (f, f). Validates both names."""
    parts = str(spec).split("/")
    if len(parts) not in (1, 2) or not all(parts):
        raise ValueError(f"--formats: bad format spec {spec!r}; expected NAME or WFMT/AFMT")
    w, a = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    hw_format(w), hw_format(a)
    return w, a


def workload_layers(name: str):
    """Layers of a registered ``lowbit.sim`` workload (ValueError if unknown / missing)."""
    from lowbit.sim.workloads import get_workload

    try:
        return get_workload(name).layers()
    except ValueError as exc:
        raise ValueError(f"--workload: {exc}") from exc


def _psum_bits(w, a, K) -> float:
    wf, af = hw_format(w), hw_format(a)
    if wf.block_size or af.block_size or wf.is_float or af.is_float:
        return 32.0  # fp32 partial sums between folds
    return float(acc_bits_for(w, a, int(max(K, 1))))


def evaluate_format(spec: str, layers, cfg: ArrayConfig = ArrayConfig(), node_nm: float = 45.0,
                    target: str = "gates") -> dict:
    """Per-layer and total area / energy / latency of ``layers`` in format ``spec``.

    Returns {"spec", "w", "a", "per_mac": {...}, "layers": [dict per layer], "totals": {...}}.
    Energies in pJ (totals also in uJ), area in um^2 (target gates) or LUTs (FPGA targets).
    """
    w, a = split_spec(spec)
    wf, af = hw_format(w), hw_format(a)
    net = network_model(layers, cfg, a_bits=af.bits_per_element, b_bits=wf.bits_per_element,
                        psum_bits=32.0, a_tensor_bits=af.tensor_scale_bits,
                        b_tensor_bits=wf.tensor_scale_bits)
    # integer partial sums at the Colbert width of each layer's reduction length
    if not (wf.is_float or af.is_float or wf.block_size or af.block_size):
        from .array import gemm_model, layers_to_gemm

        g = layers_to_gemm(layers)
        psb = np.array([_psum_bits(w, a, k) for k in g["K"]])
        r2 = gemm_model(g["M"], g["K"], g["N"], cfg, g["groups"], af.bits_per_element,
                        wf.bits_per_element, af.bits_per_element, psb, g["a_unique"])
        r2["name"], r2["totals"] = net["name"], net["totals"]
        net = r2
    em = mac_energy(w, a, node_nm=node_nm)["pj"]
    mc = mac_cost(w, a, target=target, node_nm=node_nm)
    mc_g = mac_cost(w, a, target="gates", node_nm=node_nm)
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
    area_um2 = scale_area(pes * mc_g["cost"] * GE_UM2_45NM, node_nm)
    cycles = float(np.sum(net["cycles"]))
    tot = {
        "format": spec, "w_bits": wf.bits_per_element, "a_bits": af.bits_per_element,
        "mac_ge": mc_g["cost"], "mac_area_um2": mc_g["cost"] * GE_UM2_45NM * (node_nm / 45) ** 2,
        "mac_cost": mc["cost"], "mac_cost_unit": mc["unit"], "mac_ff": mc["ff"],
        "mac_dsp48": mc["dsp48"], "mac_pj": em, "array_area_um2": area_um2,
        "array_cost": pes * mc["cost"], "macs": int(np.sum(net["macs"])), "cycles": cycles,
        "latency_us": cycles / cfg.freq_mhz, "util": float(net["totals"]["util"]),
        "sram_bytes": float(np.sum(net["sram_bytes"])), "dram_bytes": float(np.sum(net["dram_bytes"])),
        "e_compute_uj": float(np.sum(comp)) * 1e-6, "e_sram_uj": float(np.sum(sram)) * 1e-6,
        "e_dram_uj": float(np.sum(dram)) * 1e-6,
    }
    tot["e_total_uj"] = tot["e_compute_uj"] + tot["e_sram_uj"] + tot["e_dram_uj"]
    return {"spec": spec, "w": w, "a": a, "layers": rows, "totals": tot}
