"""Mixed-precision search: per-layer sensitivity x hardware cost -> ILP (PuLP) -> Pareto front.

    from lowbit.sim.search import search, write_outputs
    res = search("digits-cnn", "fp8_e4m3,mxfp6_e2m3,mxfp4,nvfp4,int8,int4",
                 budgets="energy=0.5", metric="direct")     # direct | hessian | proxy
    res.assignment.formats          # {layer: candidate}
    write_outputs(res, "results/search")

Building blocks: :func:`parse_candidates` (int8 -> int8_pc, int4 -> int4_pc),
:func:`build_cost_table` (energy / latency / memory / bops per layer, shared-array area),
:func:`compute_sensitivity`, :func:`solve` (the ILP), :func:`select_solver`,
:func:`greedy_path`, :func:`ilp_front`, :class:`Measurer`. CLI: ``lowbit search``.
"""

from .api import SearchResult, mark_pareto, search
from .budget import parse_budget_items, resolve_budgets
from .candidates import DEFAULT_CANDIDATES, INT_ALIASES, Candidate, parse_candidates
from .costs import METRIC_UNITS, METRICS, CostTable, build_cost_table, storage_bits
from .ilp import (
    SOLVERS,
    Assignment,
    InfeasibleBudgetError,
    available_solvers,
    brute_force,
    make_assignment,
    select_solver,
    solve,
)
from .pareto import Measurer, default_fractions, greedy_at, greedy_path, ilp_front, measure
from .report import summary_markdown, write_outputs
from .sensitivity import (
    SENSITIVITY_METRICS,
    SensitivityTable,
    compute_sensitivity,
    direct_sensitivity,
    hessian_sensitivity,
    hutchinson_traces,
    layer_hessian_traces,
    proxy_sensitivity,
)

__all__ = [
    "DEFAULT_CANDIDATES", "INT_ALIASES", "METRICS", "SENSITIVITY_METRICS", "SOLVERS", "METRIC_UNITS",
    "Assignment", "Candidate", "CostTable", "InfeasibleBudgetError", "Measurer",
    "SearchResult", "SensitivityTable", "available_solvers", "brute_force",
    "build_cost_table", "compute_sensitivity", "default_fractions", "direct_sensitivity",
    "greedy_at", "greedy_path", "hessian_sensitivity", "hutchinson_traces", "ilp_front",
    "layer_hessian_traces", "make_assignment", "mark_pareto", "measure", "parse_budget_items",
    "parse_candidates", "proxy_sensitivity", "resolve_budgets", "search", "select_solver",
    "solve", "storage_bits", "summary_markdown", "write_outputs",
]
