"""Assemble ``docs/experiments.md`` from the experiments' outputs.

    lowbit experiment mr-gptq && lowbit experiment minifloat-vs-int && \
    lowbit experiment fp8-vs-int8 && lowbit experiment mixed-precision
    python scripts/collect_experiments.py [--results results/experiments] [--sweep results/sweep]

Copies each experiment's ``plot.png`` to ``docs/img/experiments/NAME.png`` and writes the
tables (``OUT/NAME/table.md``) under one heading each, after the default sweep's table
(``results/sweep/<workload>/report.md``), between the markers of its block in
docs/experiments.md (other sections of the file are kept).
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ("mr-gptq", "minifloat-vs-int", "fp8-vs-int8", "mixed-precision")
BEGIN, END = "<!-- collect_experiments: begin -->", "<!-- collect_experiments: end -->"
INTRO = """## Experiments that tell formats apart (the seed papers)

Every number below was produced by the committed commands on this repository's workloads
(`tinylm`: a byte-level decoder-only transformer trained by `scripts/train_tinylm.py` on a
committed selection of CPython's library sources, emulated in numpy with every GEMM -- attention
included -- in the listed format; `digits-cnn`; `minilm`). Metrics carry 95% percentile-bootstrap
intervals over the evaluation samples (2,000 resamples, seed 0, the same resamples for every
format, so differences are paired: `lowbit.sim.stats`); a difference marked `*` or
"significant" has a paired interval that excludes 0. Re-run everything with `make experiments`
(default workload tinylm; `--workload digits-cnn` or `minilm` for the others); the heading of
every table names its workload and its first line the exact command. Wall times are those of
the shared two-core machine the tables were made on, at a load average of 2.5-3 from other
jobs: the default sweep below took 58 s with the numba kernels compiled, 77 s with an empty
numba cache as on a fresh clone (the kernels compile in each worker).
"""


def main(results: Path, sweep: Path, out: Path) -> Path:
    img = out.parent / "img" / "experiments"
    img.mkdir(parents=True, exist_ok=True)
    parts = [INTRO]
    reps = [sweep / "report.md"] if (sweep / "report.md").exists() else \
        sorted(sweep.glob("*/report.md"))
    for rep in reps:
        body = rep.read_text().split("\n", 1)[1]
        body = re.sub(r"\(\[full report\]\([^)]*\)\)", "", body)
        for png in rep.parent.glob("*.png"):  # the plots travel with the table
            dst = f"sweep_{rep.parent.name}_{png.name}"
            shutil.copy(png, img / dst)
            body = body.replace(f"({png.name})", f"(img/experiments/{dst})")
        parts.append(f"### The default sweep (`lowbit sweep`, `make demo`): {rep.parent.name}\n"
                     + body.replace("\n## ", "\n#### "))
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
        parts.append("### " + title.lstrip("# ") + "\n" + body)
    block = BEGIN + "\n" + "\n\n".join(p.strip() for p in parts) + "\n" + END
    old = out.read_text() if out.exists() else "# Experiments\n"
    if BEGIN in old and END in old:  # replace our block, keep every other section
        new = old.split(BEGIN)[0] + block + old.split(END, 1)[1]
    else:  # first run: our block right after the title
        head, _, rest = old.partition("\n")
        new = head + "\n\n" + block + "\n\n" + rest.lstrip("\n")
    out.write_text(new)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=str(ROOT / "results" / "experiments"))
    ap.add_argument("--sweep", default=str(ROOT / "results" / "sweep"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "experiments.md"))
    a = ap.parse_args()
    print(main(Path(a.results), Path(a.sweep), Path(a.out)))
