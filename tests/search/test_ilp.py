"""ILP vs exhaustive enumeration, budgets, infeasibility and solver selection (synthetic)."""

import itertools

import numpy as np
import pytest

from lowbit.sim.search import (
    CostTable,
    InfeasibleBudgetError,
    brute_force,
    resolve_budgets,
    select_solver,
    solve,
)
from lowbit.sim.search import ilp as ilp_mod


def _instance(seed, L=5, F=4, area_mode="sum"):
    rng = np.random.default_rng(seed)
    sens = rng.gamma(1.0, 1.0, (L, F))
    per = {"energy": rng.uniform(1, 10, (L, F)), "memory": rng.integers(1, 20, (L, F)).astype(float)}
    shared = {"area": rng.uniform(1, 5, F)}
    return sens, CostTable([f"l{i}" for i in range(L)], [f"f{j}" for j in range(F)], per, shared,
                           area_mode=area_mode)


def _enumerate(sens, table, budgets, ties=()):
    """Independent reference: plain itertools loop over all F^L assignments."""
    L, F = sens.shape
    idx = {n: i for i, n in enumerate(table.layers)}
    best, arg = float("inf"), None
    for ch in itertools.product(range(F), repeat=L):
        if any(ch[idx[a]] != ch[idx[b]] for a, b in ties):
            continue
        ok = True
        for m, b in budgets.items():
            if m in table.per_layer:
                c = sum(table.per_layer[m][i, j] for i, j in enumerate(ch))
            else:
                vals = [table.shared[m][j] for j in set(ch)]
                c = sum(vals) if table.area_mode == "sum" else max(vals)
            ok &= c <= b
        if ok:
            s = sum(sens[i, j] for i, j in enumerate(ch))
            if s < best:
                best, arg = s, ch
    return best, arg


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("area_mode", ["sum", "max"])
def test_ilp_equals_enumeration(seed, area_mode):
    sens, t = _instance(seed, area_mode=area_mode)
    for m, fracs in (("energy", (0.45, 0.6, 0.8)), ("memory", (0.5, 0.7)), ("area", (0.4, 0.7))):
        for fr in fracs:
            b = {m: fr * t.max_uniform(m)}
            if m == "area":  # combined with a per-layer budget
                b["energy"] = 0.7 * t.max_uniform("energy")
            ref, ref_ch = _enumerate(sens, t, b)
            assert brute_force(sens, t, b)[0] == pytest.approx(ref, abs=1e-12)
            if ref_ch is None:
                with pytest.raises(InfeasibleBudgetError):
                    solve(sens, t, b)
                continue
            a = solve(sens, t, b)
            assert a.sensitivity == pytest.approx(ref, rel=1e-9, abs=1e-12)
            for mm, bb in b.items():
                assert a.costs[mm] <= bb * (1 + 1e-9)


def test_ilp_ties_and_minimize_cost():
    sens, t = _instance(7, L=6, F=3)
    ties = [("l0", "l3"), ("l1", "l2")]
    b = {"energy": 0.6 * t.max_uniform("energy")}
    ref, ch = _enumerate(sens, t, b, ties)
    a = solve(sens, t, b, ties=ties)
    assert a.sensitivity == pytest.approx(ref, rel=1e-9)
    assert a.choice[0] == a.choice[3] and a.choice[1] == a.choice[2]
    # min energy s.t. sensitivity <= bound, against enumeration
    bound = ref * 1.3
    best = min(sum(t.per_layer["energy"][i, j] for i, j in enumerate(c))
               for c in itertools.product(range(3), repeat=6)
               if sum(sens[i, j] for i, j in enumerate(c)) <= bound)
    a2 = solve(sens, t, {}, minimize="energy", max_sensitivity=bound)
    assert a2.costs["energy"] == pytest.approx(best, rel=1e-9)
    assert a2.sensitivity <= bound * (1 + 1e-9)


def test_shared_area_counts_union_of_formats():
    # best per layer: a -> big, b -> cheap (sensitivity 0) but that needs both datapaths
    sens = np.array([[1.0, 0.0], [0.0, 1.0]])
    t = CostTable(["a", "b"], ["cheap", "big"], {"energy": np.ones((2, 2))},
                  {"area": np.array([1.0, 10.0])})
    assert t.total("area", [1, 0]) == 11.0
    # 10.5: the mix (area 1 + 10) does not fit; the tie-break picks the cheaper uniform
    assert solve(sens, t, {"area": 10.5}).choice == [0, 0]
    assert solve(sens, t, {"area": 11.0}).choice == [1, 0]
    t.area_mode = "max"  # widest datapath subsumes the narrow one
    assert t.total("area", [1, 0]) == 10.0
    assert solve(sens, t, {"area": 10.0}).choice == [1, 0]
    assert solve(sens, t, {"area": 9.9}).choice == [0, 0]


def test_infeasible_budget_message():
    sens, t = _instance(3)
    cheapest = t.min_total("energy")
    with pytest.raises(InfeasibleBudgetError) as ei:
        solve(sens, t, {"energy": 0.5 * cheapest})
    msg = str(ei.value)
    assert "infeasible" in msg and "cheapest feasible" in msg
    assert f"energy={cheapest / t.max_uniform('energy'):.4g}" in msg
    assert ei.value.cheapest["energy"] == pytest.approx(cheapest)
    # jointly infeasible while each budget alone is feasible
    b = {"energy": t.min_total("energy") * 1.001, "memory": t.min_total("memory") * 1.001}
    if _enumerate(sens, t, b)[1] is None:
        with pytest.raises(InfeasibleBudgetError, match="not all of them together"):
            solve(sens, t, b)


def test_budget_parsing_fraction_and_units():
    _, t = _instance(0)
    ab, fr = resolve_budgets(["energy=0.5", "memory=4bytes"], t)
    assert ab["energy"] == pytest.approx(0.5 * t.max_uniform("energy"))
    assert ab["memory"] == 32.0 and fr["memory"] == pytest.approx(32.0 / t.max_uniform("memory"))
    assert resolve_budgets("energy=2nJ", t)[0]["energy"] == 2000.0
    for bad, match in (("speed=0.5", "unknown metric"), ("energy=-1", "positive"),
                       ("energy=3parsecs", "unit"), ("energy", "METRIC=VALUE")):
        with pytest.raises(ValueError, match=match):
            resolve_budgets(bad, t)


def test_solver_selection(monkeypatch):
    import importlib.util

    import pulp

    s, name = select_solver("auto")
    assert name == "highs" and isinstance(s, pulp.HiGHS)  # highspy is installed
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n == "highspy" else real(n, *a))
    s, name = select_solver("auto")
    if ilp_mod._cbc(True) is not None:
        assert name == "cbc" and isinstance(s, pulp.PULP_CBC_CMD)
        sens, t = _instance(1)
        b = {"energy": 0.6 * t.max_uniform("energy")}
        assert solve(sens, t, b, solver="auto").solver == "cbc"
        assert solve(sens, t, b).sensitivity == pytest.approx(_enumerate(sens, t, b)[0])
    else:
        assert name == "coin"
    with pytest.raises(ValueError, match="not available"):
        select_solver("highs")
    # nothing available -> clear error
    for n in ("highs", "cbc", "coin"):
        monkeypatch.setitem(ilp_mod._FACTORIES, n, lambda exact: None)
    with pytest.raises(ValueError, match="no MILP solver"):
        select_solver("auto")
    with pytest.raises(ValueError, match="allowed"):
        select_solver("gurobi")


def test_default_solve_never_called(monkeypatch):
    """solve() must always pass an explicit solver to LpProblem.solve."""
    import pulp

    seen = []
    orig = pulp.LpProblem.solve

    def spy(self, solver=None, **kw):
        seen.append(solver)
        return orig(self, solver, **kw)

    monkeypatch.setattr(pulp.LpProblem, "solve", spy)
    sens, t = _instance(2)
    solve(sens, t, {"energy": 0.7 * t.max_uniform("energy")})
    assert seen and all(s is not None for s in seen)
