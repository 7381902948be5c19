"""Budget parsing: ``metric=value`` where value is a fraction of the most expensive uniform
candidate's cost (``energy=0.5``) or absolute with a unit suffix (``energy=3uJ``,
``memory=16KiB``, ``latency=4000cycles``, ``area=0.2mm2``, ``bops=2e8bops``)."""

from __future__ import annotations

import re

from .costs import CostTable

UNIT_SCALE = {
    "energy": {"pj": 1.0, "nj": 1e3, "uj": 1e6, "mj": 1e9, "j": 1e12},
    "latency": {"cycles": 1.0, "cycle": 1.0, "cyc": 1.0, "kcycles": 1e3, "mcycles": 1e6},
    "memory": {"bits": 1.0, "bit": 1.0, "b": 1.0, "byte": 8.0, "bytes": 8.0, "kb": 8e3,
               "kib": 8192.0, "mb": 8e6, "mib": 8 * 1024.0 ** 2},
    "bops": {"bops": 1.0, "kbops": 1e3, "mbops": 1e6, "gbops": 1e9},
    "area": {"um2": 1.0, "mm2": 1e6},
}
_NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"


def parse_budget_items(items) -> dict:
    """``["energy=0.5", "area=0.3,memory=8KiB"]`` -> {metric: (number, unit or None)}."""
    out = {}
    if isinstance(items, str):
        items = [items]
    for item in items or ():
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            if "=" not in part:
                raise ValueError(f"--budget: bad entry {part!r}; expected METRIC=VALUE "
                                 f"(e.g. energy=0.5 or energy=3uJ)")
            m, v = (s.strip() for s in part.split("=", 1))
            mm = re.fullmatch(_NUM + r"\s*([A-Za-z0-9^]*)", v)
            if not mm:
                raise ValueError(f"--budget: bad value {v!r} for {m}")
            unit = mm.group(2).lower().replace("^", "") or None
            out[m.lower()] = (float(mm.group(1)), unit)
    return out


def resolve_budgets(items, table: CostTable) -> tuple[dict, dict]:
    """({metric: absolute budget}, {metric: fraction of the most expensive uniform}).

    A bare number is a fraction of the cost of the most expensive uniform candidate (must be
    > 0); a number with a unit is absolute. ValueError naming ``--budget`` otherwise.
    """
    parsed = items if isinstance(items, dict) else parse_budget_items(items)
    absb, frac = {}, {}
    for m, val in parsed.items():
        table.check_metric(m)
        v, unit = val if isinstance(val, tuple) else (float(val), None)
        ref = table.max_uniform(m)
        if unit is None:
            if not v > 0:
                raise ValueError(f"--budget: {m}={v} must be a positive fraction")
            absb[m], frac[m] = v * ref, v
        else:
            scales = UNIT_SCALE.get(m, {})
            if unit not in scales:
                raise ValueError(f"--budget: unit {unit!r} not allowed for {m}; allowed: "
                                 f"{', '.join(scales) or 'none (fractions only)'}")
            absb[m] = v * scales[unit]
            frac[m] = absb[m] / ref
    return absb, frac
