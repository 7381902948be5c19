"""The mixed-precision ILP (PuLP) and the solver choice.

Variables: ``x[l, f]`` binary, 1 when layer ``l`` runs in candidate ``f``;
``sum_f x[l, f] = 1`` for every layer. Optional ties ``(a, b)``: ``x[a, f] = x[b, f]`` for all f
(e.g. the two GEMMs of a residual pair share a format).

Shared-array area (not a per-layer sum): one binary ``y[f]`` per candidate, "format f is used
anywhere", with ``y[f] >= x[l, f]`` for every layer. ``area_mode="sum"`` (default):
``area = sum_f y[f] * A_f`` (one datapath per supported format); ``"max"``: a continuous
``area >= A_f * y[f]`` for every f (the widest datapath subsumes the others). The ``y`` only
appear when area is budgeted or minimised; since area is minimised or bounded above, the
solver never sets a ``y`` to 1 without need, so ``y = max_l x[l, f]`` at the optimum.

Problems:

* ``minimize="sensitivity"`` (default): ``min sum_lf s[l, f] x[l, f]`` subject to
  ``cost_m(x) <= budget_m`` for every budgeted metric m. With ``tiebreak`` (default) a second
  ILP keeps the optimal sensitivity (``<= opt + 1e-9*|opt| + 1e-12``) and minimises the first
  budgeted metric, so equal-sensitivity optima resolve to the cheapest.
* ``minimize=<metric>``: ``min cost_metric(x)`` subject to ``sum s x <= max_sensitivity``
  and the budgets.

Solver (never PuLP's default ``solve()``): :func:`select_solver` ``"auto"`` = HiGHS
(``pulp.HiGHS(msg=False)``, needs ``highspy``) -> the CBC bundled with PuLP
(``PULP_CBC_CMD(msg=0)``, PuLP < 4) -> ``COIN_CMD`` (a ``cbc`` on PATH); relative gap 0 so
the answer is the exact optimum.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass, field

import numpy as np

from .costs import CostTable, fmt_cost

SOLVERS = ("auto", "highs", "cbc", "coin")


class InfeasibleBudgetError(ValueError):
    """No assignment meets the budgets; ``cheapest`` maps each offending metric to the
    cheapest achievable cost (absolute units)."""

    def __init__(self, msg: str, cheapest: dict | None = None):
        super().__init__(msg)
        self.cheapest = cheapest or {}


def _highs(gap0: bool):
    import pulp

    if importlib.util.find_spec("highspy") is None or not hasattr(pulp, "HiGHS"):
        return None
    s = pulp.HiGHS(msg=False, gapRel=0.0 if gap0 else None)
    return s if s.available() else None


def _cbc(gap0: bool):
    import pulp

    if not hasattr(pulp, "PULP_CBC_CMD"):  # removed in PuLP 4
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = pulp.PULP_CBC_CMD(msg=0, gapRel=0.0 if gap0 else None)
    return s if s.available() else None


def _coin(gap0: bool):
    import pulp

    if not hasattr(pulp, "COIN_CMD"):
        return None
    s = pulp.COIN_CMD(msg=0, gapRel=0.0 if gap0 else None)
    return s if s.available() else None


_FACTORIES = {"highs": _highs, "cbc": _cbc, "coin": _coin}


def available_solvers() -> list[str]:
    """Names of the solvers usable here, in the ``auto`` preference order."""
    return [n for n in ("highs", "cbc", "coin") if _FACTORIES[n](True) is not None]


def select_solver(name: str = "auto", exact: bool = True):
    """``(pulp solver object, name)``. ``auto``: HiGHS, else bundled CBC, else COIN_CMD.

    ValueError (naming ``--solver``) when the requested solver is unknown or unavailable.
    """
    if name not in SOLVERS:
        raise ValueError(f"--solver: unknown {name!r}; allowed: {', '.join(SOLVERS)}")
    order = ("highs", "cbc", "coin") if name == "auto" else (name,)
    for n in order:
        s = _FACTORIES[n](exact)
        if s is not None:
            return s, n
    if name == "auto":
        raise ValueError("--solver: no MILP solver available: pip install highspy, or use "
                         "PuLP < 4 (bundled CBC), or put a `cbc` binary on PATH")
    raise ValueError(f"--solver: {name!r} is not available here; available: "
                     f"{', '.join(available_solvers()) or 'none'}")


@dataclass
class Assignment:
    """A solved (or evaluated) assignment: ``formats`` {layer: candidate}, ``choice``
    (candidate index per layer), predicted ``sensitivity`` and ``costs`` {metric: value}."""

    formats: dict
    choice: list
    sensitivity: float
    costs: dict
    status: str = "Optimal"
    solver: str = ""
    label: str = ""
    budget: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        return tuple(int(c) for c in self.choice)

    @property
    def uniform(self) -> bool:
        return len(set(self.choice)) == 1


def make_assignment(choice, sens: np.ndarray, table: CostTable, **kw) -> Assignment:
    choice = [int(c) for c in choice]
    s = float(sens[np.arange(len(choice)), choice].sum())
    costs = {m: table.total(m, choice) for m in table.metrics}
    fm = {ln: table.candidates[c] for ln, c in zip(table.layers, choice)}
    return Assignment(fm, choice, s, costs, **kw)


def tie_pairs(ties, layers) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)`` of layers that must get the same candidate: for every tie group
    (an iterable of layer names) its first layer paired with each of the others.  Unknown
    names raise ValueError naming ``--tie`` and listing the layers."""
    idx = {n: i for i, n in enumerate(layers)}
    out = []
    for t in ties or ():
        names = list(t)
        for n in names:
            if n not in idx:
                raise ValueError(f"--tie: unknown layer {n!r}; layers: {', '.join(layers)}")
        out += [(idx[names[0]], idx[n]) for n in names[1:]]
    return out


def _build(sens, table, budgets, ties, objective, extra_le=None):
    """PuLP problem; ``objective`` = "sensitivity" or a metric name; ``extra_le`` = list of
    (kind, bound) with kind "sensitivity" or a metric."""
    import pulp

    L, F = sens.shape
    prob = pulp.LpProblem("lowbit_mixed_precision", pulp.LpMinimize)

    def var(name, cat="Binary", low=None):
        # PuLP >= 3.3 attaches variables to the model (the 4.x API); older: LpVariable
        if hasattr(prob, "add_variable"):
            return prob.add_variable(name, lowBound=low, cat=cat)
        return pulp.LpVariable(name, lowBound=low, cat=cat)

    x = [[var(f"x_{i}_{j}") for j in range(F)] for i in range(L)]
    for i in range(L):
        prob += pulp.lpSum(x[i]) == 1, f"one_{i}"
    for k, (a, b) in enumerate(tie_pairs(ties, table.layers)):
        for j in range(F):
            prob += x[a][j] == x[b][j], f"tie_{k}_{j}"
    used = {m for m in list(budgets) + [objective] + [k for k, _ in (extra_le or [])]}
    y, exprs = None, {}
    if any(m in table.shared for m in used):
        y = [var(f"y_{j}") for j in range(F)]
        for i in range(L):
            for j in range(F):
                prob += y[j] >= x[i][j], f"use_{i}_{j}"

    def expr(m):
        if m in exprs:
            return exprs[m]
        if m == "sensitivity":
            e = pulp.lpSum(float(sens[i, j]) * x[i][j] for i in range(L) for j in range(F))
        elif m in table.per_layer:
            c = table.per_layer[m]
            e = pulp.lpSum(float(c[i, j]) * x[i][j] for i in range(L) for j in range(F))
        elif table.area_mode == "sum":
            e = pulp.lpSum(float(table.shared[m][j]) * y[j] for j in range(F))
        else:
            a = var(f"{m}_max", cat="Continuous", low=0)
            for j in range(F):
                prob.addConstraint(a >= float(table.shared[m][j]) * y[j], f"{m}_max_{j}")
            e = a
        exprs[m] = e
        return e

    prob += expr(objective)
    for m, bnd in budgets.items():
        prob += expr(m) <= float(bnd), f"budget_{m}"
    for k, (m, bnd) in enumerate(extra_le or []):
        prob += expr(m) <= float(bnd), f"bound_{k}_{m}"
    return prob, x


class _QuietFd1:
    """Context manager: C-level stdout (fd 1) to /dev/null. highspy prints its copyright
    banner from C++ on every ``Highs()`` even with ``msg=False``."""

    def __enter__(self):
        import os
        import sys

        self.saved = None
        try:
            sys.stdout.flush()
            self.saved = os.dup(1)
            self.null = open(os.devnull, "w")
            os.dup2(self.null.fileno(), 1)
        except (OSError, ValueError, AttributeError):
            self.saved = None
        return self

    def __exit__(self, *exc):
        import os

        if self.saved is not None:
            os.dup2(self.saved, 1)
            os.close(self.saved)
            self.null.close()
        return False


def _solve_quiet(prob, solver):
    if type(solver).__name__ != "HiGHS":
        return prob.solve(solver)
    with _QuietFd1():
        return prob.solve(solver)


def _run(prob, x, solver):
    import pulp

    _solve_quiet(prob, solver)
    status = pulp.LpStatus[prob.status]
    if status != "Optimal":
        return status, None
    choice = [int(np.argmax([v.value() or 0.0 for v in row])) for row in x]
    return status, choice


def cheapest(table: CostTable, metric: str, ties=(), solver="auto") -> float:
    """Cheapest achievable ``metric`` (honouring ties) -- used for infeasibility messages."""
    if not ties:
        return table.min_total(metric)
    s, _ = select_solver(solver)
    zero = np.zeros((len(table.layers), len(table.candidates)))
    prob, x = _build(zero, table, {}, ties, metric)
    status, choice = _run(prob, x, s)
    return table.total(metric, choice) if choice is not None else float("inf")


def _infeasible_msg(table, budgets, ties, solver, fraction_of=None) -> InfeasibleBudgetError:
    parts, cheap = [], {}
    for m, b in budgets.items():
        c = cheapest(table, m, ties, solver)
        cheap[m] = c
        ref = table.max_uniform(m)
        flag = " <- below the cheapest" if b < c * (1 - 1e-12) else ""
        parts.append(f"{m}: budget {fmt_cost(m, b)} ({b / ref:.4g} of the most expensive "
                     f"uniform candidate); cheapest feasible {fmt_cost(m, c)} "
                     f"(= {m}={c / ref:.4g}){flag}")
    joint = "" if any(b < cheap[m] * (1 - 1e-12) for m, b in budgets.items()) else (
        " (each budget is reachable alone, but not all of them together)")
    return InfeasibleBudgetError("--budget: infeasible" + joint + ": " + "; ".join(parts), cheap)


def solve(sens, table: CostTable, budgets: dict | None = None, ties=(), minimize: str = "sensitivity",
          max_sensitivity: float | None = None, solver: str = "auto", tiebreak: bool = True,
          label: str = "ilp") -> Assignment:
    """Solve the mixed-precision ILP (see the module docstring).

    sens: (L, F) sensitivities (rows = ``table.layers``, columns = ``table.candidates``).
    budgets: {metric: absolute upper bound} (use :func:`lowbit.sim.search.resolve_budgets`
    for fractions / units). Raises :class:`InfeasibleBudgetError` with the cheapest feasible
    cost of each budgeted metric when no assignment fits.
    """
    sens = np.asarray(sens, dtype=float)
    budgets = {table.check_metric(m): float(v) for m, v in (budgets or {}).items()}
    if sens.shape != (len(table.layers), len(table.candidates)):
        raise ValueError(f"sensitivity shape {sens.shape} != (layers, candidates) "
                         f"{(len(table.layers), len(table.candidates))}")
    s, sname = select_solver(solver)
    extra = []
    if minimize != "sensitivity":
        table.check_metric(minimize)
        if max_sensitivity is not None:
            extra.append(("sensitivity", float(max_sensitivity)))
    prob, x = _build(sens, table, budgets, ties, minimize, extra)
    status, choice = _run(prob, x, s)
    if choice is None:
        if status == "Infeasible" and budgets and minimize == "sensitivity":
            raise _infeasible_msg(table, budgets, ties, solver)
        if status == "Infeasible":
            raise InfeasibleBudgetError(f"infeasible problem (max_sensitivity={max_sensitivity}, "
                                        f"budgets={budgets})")
        raise RuntimeError(f"ILP solver {sname} returned status {status}")
    if tiebreak and minimize == "sensitivity" and (budgets or table.metrics):
        opt = float(sens[np.arange(len(choice)), choice].sum())
        m2 = next(iter(budgets), "energy" if "energy" in table.metrics else table.metrics[0])
        prob2, x2 = _build(sens, table, budgets, ties, m2,
                           [("sensitivity", opt + 1e-9 * abs(opt) + 1e-12)])
        st2, ch2 = _run(prob2, x2, s)
        if ch2 is not None:
            choice = ch2
    return make_assignment(choice, sens, table, status=status, solver=sname, label=label,
                           budget=dict(budgets))


def brute_force(sens, table: CostTable, budgets: dict, ties=()) -> tuple[float, list | None]:
    """Exhaustive reference (F^L assignments, vectorised): (min sensitivity, choice) or
    (inf, None). For tests and tiny problems only."""
    sens = np.asarray(sens, float)
    L, F = sens.shape
    grid = np.stack(np.meshgrid(*[np.arange(F)] * L, indexing="ij"), -1).reshape(-1, L)
    ok = np.ones(len(grid), bool)
    for a, b in tie_pairs(ties, table.layers):
        ok &= grid[:, a] == grid[:, b]
    rows = np.arange(L)
    for m, bnd in budgets.items():
        if m in table.per_layer:
            tot = table.per_layer[m][rows, grid].sum(1)
        else:
            used = np.zeros((len(grid), F), bool)
            used[np.arange(len(grid))[:, None], grid] = True
            v = np.where(used, table.shared[m][None, :], 0.0)
            tot = v.sum(1) if table.area_mode == "sum" else v.max(1)
        ok &= tot <= bnd
    if not ok.any():
        return float("inf"), None
    obj = np.where(ok, sens[rows, grid].sum(1), np.inf)
    k = int(np.argmin(obj))
    return float(obj[k]), grid[k].tolist()
