"""End-to-end search: sensitivities x cost table -> ILP at a budget -> measured Pareto front.

    from lowbit.sim.search import search, write_outputs
    res = search("digits-cnn", "fp8_e4m3,mxfp6_e2m3,mxfp4,nvfp4,int8,int4",
                 budgets="energy=0.5", metric="direct")
    res.assignment.formats      # {layer: candidate}
    write_outputs(res, "results/search")
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from lowbit.formats.accum import parse_accum
from lowbit.sim.workloads import get_workload

from .budget import resolve_budgets
from .candidates import parse_candidates
from .costs import CostTable, build_cost_table
from .ilp import Assignment, make_assignment, solve
from .pareto import Measurer, default_fractions, greedy_at, greedy_path, ilp_front
from .sensitivity import SensitivityTable, compute_sensitivity


@dataclass
class SearchResult:
    workload: str
    metric_name: str
    sensitivity: SensitivityTable
    costs: CostTable
    candidates: list
    budgets: dict  # absolute
    budget_fractions: dict
    front_metric: str
    assignment: Assignment | None
    greedy: Assignment | None
    points: list = field(default_factory=list)  # rows of the measured front
    float_metric: float | None = None
    timings: dict = field(default_factory=dict)
    solver: str = ""
    ties: list = field(default_factory=list)


def _row(kind, a: Assignment, table: CostTable, fm: str, meas: dict | None, label=None):
    ref = table.max_uniform(fm)
    r = {"kind": kind, "label": label or a.label or kind,
         "assignment": " ".join(f"{k}:{v}" for k, v in a.formats.items()),
         "cost": a.costs[fm], "cost_fraction": a.costs[fm] / ref,
         "pred_sensitivity": a.sensitivity}
    for m, v in a.costs.items():
        r[f"{m}"] = v
    if a.budget:
        r["budget_fraction"] = a.budget.get(fm)
    if meas is not None:
        r["measured"] = meas.get("metric")
        for k in ("agreement", "metric_lo", "metric_hi"):
            if k in meas:
                r[k] = meas[k]
    return r


def mark_pareto(rows: list[dict], key: str = "measured") -> None:
    """Set ``row["pareto"]``: no other row has lower-or-equal cost and higher-or-equal
    ``key`` with one strict."""
    for r in rows:
        r["pareto"] = key in r and not any(
            o is not r and key in o and o["cost"] <= r["cost"] and o[key] >= r[key]
            and (o["cost"] < r["cost"] or o[key] > r[key]) for o in rows)


def search(workload="digits-cnn", candidates=None, budgets="energy=0.5", metric: str = "direct",
           ties=(), solver: str = "auto", minimize: str = "sensitivity",
           max_sensitivity: float | None = None, front: bool = True, n_front: int = 10,
           measure: bool = True, accum: str = "exact", quantizer: str = "rtn",
           cost_kw: dict | None = None, sens_kw: dict | None = None,
           sensitivity: SensitivityTable | None = None, progress=None) -> SearchResult:
    """Run the whole search; see the package docstring. ``budgets``: "m=v[,m=v]" / list / dict
    (fractions of the most expensive uniform candidate, or absolute with a unit)."""
    log = progress or (lambda *_: None)
    parse_accum(accum)  # checked before any computation (ValueError lists the allowed forms)
    wl = get_workload(workload) if isinstance(workload, str) else workload
    cands = parse_candidates(candidates)
    t0 = time.perf_counter()
    table = build_cost_table(wl.layers(), cands, **{"acc": accum, **(cost_kw or {})})
    t1 = time.perf_counter()
    babs, bfrac = resolve_budgets(budgets, table)
    if not babs and minimize == "sensitivity":
        raise ValueError("--budget: give at least one METRIC=VALUE (metrics: "
                         f"{', '.join(table.metrics)})")
    fm = next(iter(babs), minimize if minimize != "sensitivity" else "energy")
    # budgets are checked before the (slow) sensitivity pass: fail fast when infeasible
    if babs:
        zero = np.zeros((len(table.layers), len(cands)))
        solve(zero, table, babs, ties=ties, solver=solver, tiebreak=False)
    log(f"sensitivity ({metric}) ...")
    sens = sensitivity or compute_sensitivity(wl, cands, metric, **(sens_kw or {}))
    t2 = time.perf_counter()
    a = solve(sens.values, table, babs, ties=ties, minimize=minimize,
              max_sensitivity=max_sensitivity, solver=solver, label="ilp @ budget")
    a.budget = dict(bfrac)
    path = greedy_path(sens.values, table, fm, ties)
    g = greedy_at(path, babs)
    if g is not None:
        g.label, g.budget = "greedy @ budget", dict(bfrac)
    t3 = time.perf_counter()
    res = SearchResult(wl.name, getattr(wl, "metric_name", "metric"), sens, table,
                       [c.name for c in cands], babs, bfrac, fm, a, g, solver=a.solver,
                       ties=[list(t) for t in ties or ()])
    meas = Measurer(wl, cands, accum, quantizer) if measure else None
    rows = []

    def add(kind, asg, label=None):
        m = meas(asg.formats) if meas is not None else None
        rows.append(_row(kind, asg, table, fm, m, label))

    if measure:
        res.float_metric = float(wl.evaluate(None, quantizer)["metric"])
    if measure:
        log("measuring the assignment at the budget ...")
    add("ilp@budget", a)
    if g is not None:
        add("greedy@budget", g)
    if front:
        fr = default_fractions(table, fm, n_front) + list(bfrac.values())[:1]
        others = {m: v for m, v in babs.items() if m != fm}
        log(f"ILP front over {len(fr)} budgets of {fm} ...")
        for asg in ilp_front(sens.values, table, fm, fr, ties, solver, others):
            add("ilp", asg)
        for fr_ in sorted(set(fr)):
            ga = greedy_at(path, {fm: fr_ * table.max_uniform(fm), **others})
            if ga is not None:
                add("greedy", ga, "greedy")
        for j, c in enumerate(cands):
            add("uniform", make_assignment([j] * len(table.layers), sens.values, table),
                f"uniform {c.name}")
    mark_pareto([r for r in rows if r["kind"] in ("ilp", "uniform", "greedy")])
    # dedupe identical (kind, assignment) rows keeping the first
    seen, uniq = set(), []
    for r in rows:
        k = (r["kind"], r["assignment"])
        if k not in seen:
            seen.add(k)
            uniq.append(r)
    res.points = uniq
    t4 = time.perf_counter()
    res.timings = {"costs_s": t1 - t0, "sensitivity_s": t2 - t1, "ilp_s": t3 - t2,
                   "front_and_measure_s": t4 - t3}
    return res
