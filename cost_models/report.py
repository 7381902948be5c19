"""``lowbit report``: per-format area / energy / latency of a workload on a MAC array, the
FP8-vs-INT8 comparison per accumulator architecture, the calibration error per target and unit
family, and the iCE40 place-and-route table. Markdown + self-contained HTML + PNG + CSV (table
writers: :mod:`lowbit.sim.tables`).

Every number in the report is computed when it is written (unit models, calibration and P&R
data shipped in ``cost_models/data``); every cost row names its architecture (registry unit and
parameters).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from lowbit.formats import resolve
from lowbit.sim.tables import html_page, markdown_table, write_csv
from lowbit.sim.workloads import get_workload, list_workloads

from .array import ArrayConfig
from .calibrate import family_table
from .energy import dram_pj_per_byte, mac_energy, sram_pj_per_byte
from .inference import evaluate_format, spec_multiplier, split_spec, workload_layers
from .plots import pareto_plots
from .pnr import load_pnr
from .unit_cost import METRIC, TARGETS, load_calibration, mac_cost

__all__ = ["DEFAULT_FORMATS", "DEFAULT_ACCS", "arch_comparison", "build_report", "read_sweep",
           "canonical_spec", "pnr_rows", "FP8_INT8_BAND"]

DEFAULT_FORMATS = ("int8_pc", "int4_pc", "int4_g128", "fp8_e4m3", "fp8_e5m2", "fp6_e2m3",
                   "fp4_e2m1", "mxfp8", "mxfp6_e2m3", "mxfp4", "nvfp4", "mxint8")
DEFAULT_ACCS = ("exact", "fp32")
FP8_INT8_BAND = (1.5, 2.8)
"""van Baalen et al., arXiv 2303.17951: FP8 is "50-180% less efficient" than INT8 in dedicated
hardware, i.e. an FP8 / INT8 cost ratio of 1.5-2.8."""
COMPARISON = (("int8", "exact"), ("int8", "int32"), ("fp8_e4m3", "exact"), ("fp8_e4m3", "fp32"),
              ("fp8_e4m3", "fp16"), ("fp8_e4m3", "bf16"), ("fp8_e5m2", "exact"),
              ("fp8_e5m2", "fp32"), ("fp8_e5m2", "fp16"))


def canonical_spec(spec: str) -> str:
    """``W/A`` or ``F`` with every part resolved to its canonical registry name (aliases such as
    ``mxfp8`` -> ``mxfp8_e4m3``); ``W/W`` -> ``W``; a multiplier suffix ``@MUL`` is kept in its
    canonical spelling and dropped when exact."""
    parts = [resolve(x).name for x in str(spec).partition("@")[0].split("/")]
    out = parts[0] if len(set(parts)) == 1 else "/".join(parts)
    mul = spec_multiplier(spec)
    return out if mul == "exact" else f"{out}@{mul}"


def read_sweep(path, workload: str | None = None) -> dict:
    """Metric per format from a sweep's results.csv: ``{"metric_name", "values": {canonical
    format: metric}, "rows": {canonical format: "accum / quantizer" of the row taken},
    "ci": {canonical format: (lo, hi)} (the row's 95% bootstrap interval, where the sweep has
    one), "higher_is_better", "path"}`` ({} if absent).

    ``path`` is a results.csv, its folder, or a sweep root holding ``<workload>/results.csv``.
    Only status-ok rows of ``workload`` are read (ValueError naming the workloads the file has
    when there are none); formats are joined by canonical name; per format the best row is
    taken (max, or min for lower-is-better metrics such as perplexity), ties to the first.
    """
    p = Path(path)
    if p.is_dir():
        p = p / workload / "results.csv" if workload and (p / workload / "results.csv").exists() \
            else p / "results.csv"
    if not p.exists():
        return {}
    with p.open() as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("status", "ok") == "ok"]
    have = sorted({r.get("workload", "") for r in rows})
    if workload is not None:
        rows = [r for r in rows if r.get("workload", workload) == workload]
        if not rows and have:
            raise ValueError(f"--sweep: {p} holds results of workload(s) {have}, not "
                             f"{workload!r}; pass --workload {have[0]} or another sweep")
    hib = True
    if workload is not None and workload in list_workloads():
        hib = bool(getattr(get_workload(workload), "higher_is_better", True))
    best: dict = {}
    taken: dict = {}
    ci: dict = {}
    name = "metric"
    for row in rows:
        try:
            m = float(row.get("metric", "nan"))
        except ValueError:
            continue
        if math.isnan(m):
            continue
        name = row.get("metric_name") or name
        f = canonical_spec(row.get("format", ""))
        if f not in best or (m > best[f] if hib else m < best[f]):
            best[f] = m
            taken[f] = f"{row.get('accum', '?')} / {row.get('quantizer', '?')}"
            try:
                ci[f] = (float(row["metric_lo"]), float(row["metric_hi"]))
            except (KeyError, TypeError, ValueError):
                ci.pop(f, None)
    return ({"metric_name": name, "values": best, "rows": taken, "ci": ci,
             "higher_is_better": hib, "path": str(p)} if best else {})


def _fmax(unit: str, params_text: str, pnr: dict | None):
    for r in (pnr or {}).get("rows", []):
        if r["unit"] == unit and r["params"] == params_text:
            return r["fmax_mhz"]
    return None


def _band(v: float) -> str:
    lo, hi = FP8_INT8_BAND
    return "inside" if lo <= v <= hi else ("below" if v < lo else "above")


def _sky130_delay(unit: str, params_text: str, cal: dict | None):
    for r in (cal or {}).get("units", []):
        if r["target"] == "sky130" and r["unit"] == unit and r["params"] == params_text:
            return r.get("delay_ps")
    return None


def arch_comparison(pnr: dict | None = None, cal: dict | None = None) -> list[dict]:
    """FP8 vs INT8 MAC per accumulator architecture: cost on every target, energy, ratios to the
    INT8 MAC with the exact (overflow-free, 1024 sums) accumulator, iCE40 Fmax and the sky130
    logic-depth delay estimate where measured."""
    cal = cal if cal is not None else load_calibration()
    rows = []
    for fmt, acc in COMPARISON:
        r = {"format": fmt, "acc": acc}
        for t in TARGETS:
            c = mac_cost(fmt, fmt, acc, target=t)
            r[t] = c["cost"]
        r["arch"] = c["arch"]
        r["pj"] = mac_energy(fmt, fmt, acc)["pj"]
        unit_ptxt = c["arch"][:-1].split("(", 1)
        r["fmax_mhz"] = _fmax(*unit_ptxt, pnr) or ""
        r["delay_ps"] = _sky130_delay(*unit_ptxt, cal) or ""
        rows.append(r)
    ref = rows[0]
    for r in rows:
        for k in ("gates", "sky130", "ice40", "xc7", "pj"):
            r[f"{k}_x"] = r[k] / ref[k]
        r["band"] = _band(r["sky130_x"]) if r["format"].startswith("fp8") else ""
    return rows


def pnr_rows(pnr: dict | None = None) -> list[dict]:
    pnr = pnr if pnr is not None else load_pnr()
    return list((pnr or {}).get("rows", []))


def _calibration_md(cal: dict | None) -> list[str]:
    if not cal:
        return ["No calibration data (run `lowbit report --calibrate --write-data`).", ""]
    s = cal["mape"]
    tg = list(s)
    return [f"{cal['yosys']}, {cal['date']}; fit: {cal['fit']}. Metrics: "
            + ", ".join(f"{t} = {cal['metric'][t]}" for t in tg) + ".", "",
            "Held-out MAPE (%) per unit family and target (units never used in the fit):", "",
            markdown_table(family_table(s, "test"), ["family", *tg], {t: "{:.1f}" for t in tg}),
            "", "Training MAPE (%):", "",
            markdown_table(family_table(s, "train"), ["family", *tg], {t: "{:.1f}" for t in tg}),
            ""]


def build_report(workload: str = "digits-cnn", formats=DEFAULT_FORMATS, target: str = "gates",
                 out="results/report", cfg: ArrayConfig = ArrayConfig(), node_nm: float = 45.0,
                 sweep=None, accs=DEFAULT_ACCS) -> dict:
    """Write report.md / report.html / PNGs / CSVs into ``out``; returns their paths and rows.

    ``accs``: accumulator architectures; each format is evaluated with every one that has a
    hardware unit for it (a float accumulator needs float operands)."""
    if target not in TARGETS:
        raise ValueError(f"--target={target!r}; allowed: {', '.join(TARGETS)}")
    specs = [s for f in formats for s in str(f).split(",") if s]
    if not specs:
        raise ValueError("--formats: empty list")
    for s in specs:
        split_spec(s)
    layers = workload_layers(workload)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pnr = load_pnr()
    res, skipped, seen = [], [], set()
    for s in specs:
        for acc in accs:
            try:
                r = evaluate_format(s, layers, cfg, acc=acc, node_nm=node_nm, target=target)
            except ValueError as e:
                skipped.append(f"{s} with acc={acc}: {e}")
                continue
            if (s, r["arch"]) not in seen:   # block dot units do not depend on acc: one row
                seen.add((s, r["arch"]))
                res.append(r)
    if not res:
        raise ValueError("--formats / --acc: no format has a hardware unit for the accumulators")
    totals = [r["totals"] for r in res]
    layer_rows = [{**row, "acc": r["totals"]["acc"]} for r in res for row in r["layers"]]
    sweep_data = read_sweep(sweep if sweep else out, workload) \
        if (sweep or (out / "results.csv").exists()) else {}
    if sweep and not sweep_data:
        raise FileNotFoundError(f"--sweep: no usable results.csv at {sweep}")
    for t in totals:
        key = canonical_spec(t["format"])
        t["metric"] = sweep_data.get("values", {}).get(key, "")
        t["sweep_row"] = sweep_data.get("rows", {}).get(key, "")
        unit, ptxt = t["arch"][:-1].split("(", 1)
        t["fmax_mhz"] = _fmax(unit, ptxt, pnr) or ""
    cal = load_calibration()
    comp = arch_comparison(pnr, cal)
    cal_rows = (cal or {}).get("units", [])
    pr = pnr_rows(pnr)
    paths = {"formats_csv": write_csv(out / "formats.csv", totals),
             "layers_csv": write_csv(out / "layers.csv", layer_rows),
             "calibration_csv": write_csv(out / "calibration.csv", cal_rows,
                                          ["target", "unit", "params", "family", "split", "yosys",
                                           "model", "err_pct", "delay_ps", "depth"]),
             "comparison_csv": write_csv(out / "fp8_vs_int8.csv", comp),
             "pnr_csv": write_csv(out / "ice40_pnr.csv", pr)}
    pngs = pareto_plots(out, totals, sweep_data, canonical_spec)
    m = METRIC[target]
    md = [f"# lowbit cost report: {workload}", "",
          f"Array {cfg.rows}x{cfg.cols} {cfg.dataflow} ({cfg.fill} fill) at {cfg.freq_mhz:g} MHz, "
          f"buffers A/B/O = {'/'.join(str(b // 1024) for b in cfg.buffers)} KiB, node "
          f"{node_nm:g} nm, target {target} ({m}). Each row's `arch` is the lowbit.hw unit that "
          "implements the MAC (lowbit rtl exports it). Energies: Horowitz ISSCC 2014 (45 nm) "
          "anchors; unit costs from the Yosys-calibrated models; area um^2 from sky130_fd_sc_hd "
          f"cells (130 nm) scaled by (node/130)^2; Fmax: iCE40 UP5K after nextpnr.", "",
          "Memory energy per byte moved (array model `lowbit.cost_models.array`: each operand "
          "fetched from DRAM once when it fits its buffer, refetched per pass otherwise; partial "
          "sums spill only when one column fold's outputs do not fit the output buffer): SRAM "
          f"{sram_pj_per_byte(sum(cfg.buffers) / 3, node_nm):.2f} pJ/byte (Horowitz ISSCC 2014 "
          f"64-bit reads, at the mean buffer size), DRAM {dram_pj_per_byte(node_nm):.0f} pJ/byte "
          "(Han et al., NeurIPS 2015: 640 pJ per 32-bit access, the low end of Horowitz' "
          "1.3-2.6 nJ per 64 bits; HBM-class memory is several times lower). One inference = "
          "one evaluation sample of the workload (its GEMM MACs per sample; tinylm: one "
          "128-byte window, attention matmuls not counted).", "",
          "## Per format and accumulator (whole inference)", "",
          markdown_table(totals, ["format", "arch", "w_bits", "mac_cost", "mac_ge",
                                  "mac_area_um2", "mac_pj", "fmax_mhz", "array_area_um2",
                                  "cycles", "util", "e_total_uj", "metric", "sweep_row"],
                         {"w_bits": "{:.2f}", "mac_cost": "{:.1f}", "mac_ge": "{:.0f}",
                          "mac_area_um2": "{:.0f}", "mac_pj": "{:.3f}", "fmax_mhz": "{:.1f}",
                          "array_area_um2": "{:.0f}", "cycles": "{:.0f}", "util": "{:.3f}",
                          "e_total_uj": "{:.4f}"},
                         {"mac_cost": f"MAC ({m})", "mac_ge": "MAC (GE)",
                          "mac_area_um2": "MAC (um^2)", "mac_pj": "pJ/MAC",
                          "fmax_mhz": "iCE40 Fmax (MHz)", "array_area_um2": "array (um^2)",
                          "e_total_uj": "energy (uJ)"}), ""]
    if sweep_data:
        md += [f"metric: {sweep_data['metric_name']} of {workload} from {sweep_data['path']} "
               "(formats joined by canonical name; per format the best row, its accumulator / "
               "quantizer in sweep_row).", ""]
    md += [f"Not evaluated (no hardware unit): {'; '.join(skipped)}.", ""] if skipped else []
    md += ["## Per layer", "",
           markdown_table(layer_rows, ["format", "acc", "layer", "macs", "cycles", "util",
                                       "sram_bytes", "dram_bytes", "e_compute_pj", "e_sram_pj",
                                       "e_dram_pj", "e_total_pj"],
                          {"util": "{:.3f}", "sram_bytes": "{:.0f}", "dram_bytes": "{:.0f}",
                           "e_compute_pj": "{:.0f}", "e_sram_pj": "{:.0f}", "e_dram_pj": "{:.0f}",
                           "e_total_pj": "{:.0f}"}), "",
           "## FP8 vs INT8 per accumulator architecture", "",
           "Per-MAC cost of each architecture and its ratio to the INT8 MAC with an exact "
           "(overflow-free over 1024 sums) accumulator. `band`: where the sky130 area ratio sits "
           f"against the {FP8_INT8_BAND[0]}-{FP8_INT8_BAND[1]}x FP8/INT8 cost band of van Baalen "
           "et al. (arXiv 2303.17951, FP8 with float accumulation). sky130 delay: logic-depth "
           "estimate of the mapped netlist (longest register-to-register / I/O path, each "
           "sky130_fd_sc_hd cell at its tt_025C_1v80 NLDM delay for 53 ps slew and 3.5 fF load; "
           "no wires), for units in the calibration set.", "",
           markdown_table(comp, ["arch", "gates", "sky130", "ice40", "xc7", "pj", "fmax_mhz",
                                 "delay_ps", "gates_x", "sky130_x", "ice40_x", "xc7_x", "pj_x", "band"],
                          {**{k: "{:.0f}" for k in ("gates", "sky130", "ice40", "xc7")},
                           "pj": "{:.3f}", "fmax_mhz": "{:.1f}", "delay_ps": "{:.0f}",
                           **{f"{k}_x": "{:.2f}" for k in ("gates", "sky130", "ice40", "xc7",
                                                            "pj")}},
                          {"gates": "GE", "sky130": "um^2", "ice40": "LUT4", "xc7": "LUT6",
                           "pj": "pJ", "fmax_mhz": "iCE40 Fmax (MHz)",
                           "delay_ps": "sky130 delay (ps)", "gates_x": "GE x",
                           "sky130_x": "um^2 x", "ice40_x": "LUT4 x", "xc7_x": "LUT6 x",
                           "pj_x": "pJ x"}), "",
           "## iCE40 place and route (UP5K, nextpnr)", ""]
    if pr:
        md += [f"{(pnr or {}).get('provenance', {}).get('method', '')}", "",
               markdown_table(pr, ["unit", "params", "stages", "unit_lut", "ff", "fmax_mhz",
                                   "macs_per_s_per_lut"],
                              {"fmax_mhz": "{:.1f}", "macs_per_s_per_lut": "{:.3g}"},
                              {"unit_lut": "LUT4", "ff": "FF (incl. harness)",
                               "fmax_mhz": "Fmax (MHz)", "macs_per_s_per_lut": "MAC/s per LUT"}),
               ""]
    else:
        md += ["No place-and-route data (run `lowbit report --pnr`).", ""]
    md += ["## Calibration: Yosys-measured vs modelled", "", *_calibration_md(cal)]
    for p in pngs:
        md.append(f"![{p.stem}]({p.name})")
    text = "\n".join(md) + "\n"
    paths["md"] = out / "report.md"
    paths["md"].write_text(text)
    paths["html"] = out / "report.html"
    paths["html"].write_text(html_page(text, pngs))
    for p in pngs:
        paths[p.stem] = p
    return {"paths": paths, "totals": totals, "comparison": comp}
