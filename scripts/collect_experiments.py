"""Assemble ``docs/experiments.md`` from the experiments' outputs.

    lowbit experiment mr-gptq && lowbit experiment minifloat-vs-int && \
    lowbit experiment fp8-vs-int8 && lowbit experiment mixed-precision
    python scripts/collect_experiments.py [--results results/experiments] [--sweep results/sweep]

Copies each experiment's ``plot.png`` to ``docs/img/experiments/NAME.png`` and writes the
tables (``OUT/NAME/table.md``) under one heading each, after the default sweep's table
(``results/sweep/report.md``, when present).
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ("mr-gptq", "minifloat-vs-int", "fp8-vs-int8", "mixed-precision")
INTRO = """# Experiments that tell formats apart

Every number below was produced by the committed commands on this repository's workloads
(`tinylm`: a byte-level decoder-only transformer trained by `scripts/train_tinylm.py` on a
committed selection of CPython's library sources, emulated in numpy with every GEMM -- attention
included -- in the listed format; `digits-cnn`; `minilm`). Metrics carry 95% percentile-bootstrap
intervals over the evaluation samples (2,000 resamples, seed 0, the same resamples for every
format, so differences are paired: `lowbit.sim.stats`); a difference marked `*` or
"significant" has a paired interval that excludes 0. Re-run everything with `make experiments`.
"""


def main(results: Path, sweep: Path, out: Path) -> Path:
    img = out.parent / "img" / "experiments"
    img.mkdir(parents=True, exist_ok=True)
    parts = [INTRO]
    rep = sweep / "report.md"
    if rep.exists():
        body = rep.read_text().split("\n", 1)[1]
        body = re.sub(r"\(\[full report\]\([^)]*\)\)", "", body)
        parts.append("## The default sweep (`lowbit sweep`, `make demo`)\n" + body)
    for name in ORDER:
        t = results / name / "table.md"
        if not t.exists():
            continue
        text = t.read_text()
        title, body = text.split("\n", 1)
        png = results / name / "plot.png"
        if png.exists():
            shutil.copy(png, img / f"{name}.png")
            body = body.replace("(plot.png)", f"(img/experiments/{name}.png)")
        body = re.sub(r"Full sweep report: `[^`]*`\.", "", body)
        parts.append("## " + title.lstrip("# ") + "\n" + body)
    out.write_text("\n\n".join(p.strip() for p in parts) + "\n")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=str(ROOT / "results" / "experiments"))
    ap.add_argument("--sweep", default=str(ROOT / "results" / "sweep"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "experiments.md"))
    a = ap.parse_args()
    print(main(Path(a.results), Path(a.sweep), Path(a.out)))
