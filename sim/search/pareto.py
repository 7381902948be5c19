"""Budget sweeps, the greedy baseline and measurement of assignments on the emulated workload.

* :func:`ilp_front`: solve the ILP at each budget fraction of one metric, dedupe assignments.
* :func:`greedy_path`: the baseline. Start from every layer (or tie group) at its
  least-sensitive candidate; repeatedly apply the single-group format change that lowers the
  metric's cost with the smallest ``d_sensitivity / d_cost`` (negative d_sensitivity first),
  recording every step, until no change lowers the cost. :func:`greedy_at` picks the first
  state on the path that meets all budgets.
* :func:`measure`: run the workload's ``evaluate`` with the per-layer configs (the real
  emulated GEMMs, not the predicted sensitivity); cached per assignment.
"""

from __future__ import annotations

import numpy as np

from .costs import CostTable
from .ilp import Assignment, InfeasibleBudgetError, make_assignment, solve, tie_pairs


def _groups(table: CostTable, ties) -> list[list[int]]:
    """Layer index groups that must share a format (union-find over tie pairs)."""
    parent = list(range(len(table.layers)))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in tie_pairs(ties, table.layers):
        parent[find(a)] = find(b)
    g: dict = {}
    for i in range(len(table.layers)):
        g.setdefault(find(i), []).append(i)
    return list(g.values())


def greedy_path(sens, table: CostTable, metric: str, ties=()) -> list[Assignment]:
    sens = np.asarray(sens, float)
    groups = _groups(table, ties)
    F = sens.shape[1]
    choice = np.zeros(sens.shape[0], int)
    for g in groups:
        choice[g] = int(np.argmin(sens[g].sum(0)))
    path = [make_assignment(choice, sens, table, label="greedy")]
    while True:
        cur_c = table.total(metric, choice)
        cur_s = path[-1].sensitivity
        best, best_score = None, None
        for g in groups:
            for f in range(F):
                if f == choice[g[0]]:
                    continue
                trial = choice.copy()
                trial[g] = f
                dc = cur_c - table.total(metric, trial)
                if dc <= 0:
                    continue
                ds = float(sens[np.arange(len(trial)), trial].sum()) - cur_s
                score = (ds / dc, -dc)
                if best_score is None or score < best_score:
                    best, best_score = trial, score
        if best is None:
            return path
        choice = best
        path.append(make_assignment(choice, sens, table, label="greedy"))


def greedy_at(path: list[Assignment], budgets: dict) -> Assignment | None:
    for a in path:
        if all(a.costs[m] <= b * (1 + 1e-12) for m, b in budgets.items()):
            return a
    return None


def ilp_front(sens, table: CostTable, metric: str, fractions, ties=(), solver="auto",
              extra_budgets: dict | None = None) -> list[Assignment]:
    """Distinct ILP optima over budget ``fractions`` of ``metric`` (infeasible ones skipped)."""
    ref = table.max_uniform(metric)
    seen, out = set(), []
    for fr in sorted(set(float(f) for f in fractions)):
        b = dict(extra_budgets or {})
        b[metric] = fr * ref
        try:
            a = solve(sens, table, b, ties=ties, solver=solver, label="ilp")
        except InfeasibleBudgetError:
            continue
        a.budget = {metric: fr}
        if a.key not in seen:
            seen.add(a.key)
            out.append(a)
        else:
            prev = next(p for p in out if p.key == a.key)
            prev.budget.setdefault("fractions", []).append(fr)
    return out


def default_fractions(table: CostTable, metric: str, n: int = 12) -> list[float]:
    lo = table.min_total(metric) / table.max_uniform(metric)
    return [float(x) for x in np.linspace(lo, 1.0, n)]


class Measurer:
    """Evaluate assignments on the workload (cached by the tuple of candidate names)."""

    def __init__(self, wl, candidates, accum: str = "exact", quantizer: str = "rtn"):
        self.wl, self.accum, self.quantizer = wl, accum, quantizer
        self.cands = {c.name: c for c in candidates}
        self.cache: dict = {}

    def __call__(self, formats: dict) -> dict:
        key = tuple(formats[n] for n in sorted(formats))
        if key not in self.cache:
            cfgs = {ln: self.cands[c].config(self.accum) for ln, c in formats.items()}
            r = self.wl.evaluate(cfgs, self.quantizer)
            c = {k: v for k, v in r.items() if isinstance(v, (int, float, str))}
            if r.get("metric_ci"):
                c["metric_lo"], c["metric_hi"] = (float(v) for v in r["metric_ci"])
            self.cache[key] = c
        return self.cache[key]


def measure(wl, assignment: Assignment, candidates, accum: str = "exact",
            quantizer: str = "rtn") -> dict:
    """Workload metric dict of one assignment (uncached convenience wrapper)."""
    return Measurer(wl, candidates, accum, quantizer)(assignment.formats)
