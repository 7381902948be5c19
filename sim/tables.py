"""Result-table writers shared by every report (sweep report, search summary, cost report,
experiments): Markdown tables, CSV files, a Pareto front and a small Markdown -> HTML page.

It imports nothing from lowbit, so every layer that writes a report (``lowbit.sim.sweep``,
``lowbit.sim.search``, ``lowbit.cost_models``, ``lowbit.experiments``) reads these writers from
here, below all of them in the dependency direction.
"""

from __future__ import annotations

import base64
import csv
import html
from pathlib import Path

__all__ = ["markdown_table", "markdown_grid", "write_csv", "write_grid_csv", "pareto_front",
           "pareto_mask", "html_page"]


def markdown_table(rows: list[dict], cols: list[str], fmt: dict | None = None,
                   headers: dict | None = None) -> str:
    """Markdown table of ``rows`` (dicts) with columns ``cols``. ``fmt[col]`` is a format string
    (applied to numbers) or a callable (applied to any value but "" / None); ``headers[col]``
    is the column's printed label (default: the key)."""
    fmt, headers = fmt or {}, headers or {}
    res = ["| " + " | ".join(headers.get(c, c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = []
        for c in cols:
            v, f = r.get(c, ""), fmt.get(c)
            if callable(f) and v != "" and v is not None:
                cells.append(f(v))
            elif isinstance(f, str) and isinstance(v, (int, float)) and not isinstance(v, bool):
                cells.append(f.format(v))
            else:
                cells.append(str(v))
        res.append("| " + " | ".join(cells) + " |")
    return "\n".join(res)


def markdown_grid(header: list[str], rows: list[list], align: str | None = None) -> str:
    """Markdown table of pre-formatted cells: ``header`` labels, ``rows`` lists of cells (``str()``
    of each), ``align`` one character per column (``"l"`` or ``"r"``; default all left)."""
    al = align or "l" * len(header)
    if len(al) != len(header):
        raise ValueError(f"align must have one character per column ({len(header)}), got {al!r}")
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---:" if a == "r" else "---" for a in al) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def write_csv(path, rows: list[dict], fields: list[str] | None = None) -> Path:
    """Write ``rows`` to ``path``; columns ``fields`` or the union of the rows' keys in first-seen
    order (missing values empty). An empty ``rows`` writes just the header (or nothing)."""
    path = Path(path)
    keys = list(fields or [])
    if not fields:
        for r in rows:
            keys += [k for k in r if k not in keys]
    with path.open("w", newline="") as fh:
        if keys:
            w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
    return path


def write_grid_csv(path, header: list[str], rows: list[list]) -> Path:
    """Write a header line and the rows (lists of cells) to ``path`` as CSV."""
    path = Path(path)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def pareto_front(points, cost_key: str = "cost", value_key: str = "value") -> list:
    """The points (dicts) not dominated under *minimise cost, maximise value*, by ascending cost.
    A point dominates another when it is no costlier, no worse and strictly better in one."""
    pts = sorted(points, key=lambda p: (p[cost_key], -p[value_key]))
    front, best = [], None
    for p in pts:
        if best is None or p[value_key] > best:
            front.append(p)
            best = p[value_key]
    return front


def pareto_mask(costs, values, higher_is_better: bool = True) -> list[bool]:
    """``mask[i]`` is True when point ``i`` is Pareto-optimal under *minimise cost, optimise
    value*: no other point is no costlier and no worse, and strictly better in one of the two.
    Equal points are all kept."""
    sign = 1.0 if higher_is_better else -1.0
    pts = [(float(c), sign * float(v)) for c, v in zip(costs, values)]
    return [not any(c2 <= c and v2 >= v and (c2 < c or v2 > v) for c2, v2 in pts)
            for c, v in pts]


def html_page(md_text: str, pngs=(), title: str = "lowbit report") -> str:
    """Self-contained HTML of a Markdown text limited to headings, tables and paragraphs, with
    the PNG files ``pngs`` embedded (base64)."""
    body, table = [], []

    def flush():
        if table:
            body.append("<table>")
            for i, r in enumerate(table):
                if i == 1:
                    continue
                tag = "th" if i == 0 else "td"
                cells = [c.strip() for c in r.strip().strip("|").split("|")]
                body.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells)
                            + "</tr>")
            body.append("</table>")
            table.clear()

    for ln in md_text.split("\n"):
        if ln.startswith("|"):
            table.append(ln)
            continue
        flush()
        if ln.startswith("!["):
            continue
        if ln.startswith("#"):
            n = len(ln) - len(ln.lstrip("#"))
            body.append(f"<h{n}>{html.escape(ln[n:].strip())}</h{n}>")
        elif ln.strip():
            body.append(f"<p>{html.escape(ln)}</p>")
    flush()
    for p in pngs:
        b64 = base64.b64encode(Path(p).read_bytes()).decode()
        body.append(f'<p><img alt="{Path(p).name}" src="data:image/png;base64,{b64}"></p>')
    css = ("body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:"
           "collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{css}</style></head><body>{''.join(body)}</body></html>")
