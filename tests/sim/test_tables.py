"""The report writers every layer shares (lowbit.sim.tables): Markdown, CSV, Pareto."""

import csv

import pytest

from lowbit.sim.tables import (
    markdown_grid,
    markdown_table,
    pareto_front,
    pareto_mask,
    write_csv,
    write_grid_csv,
)


def test_pareto_mask_by_hand():
    # (cost, value): (2, 0.6) is dominated by (2, 0.7); (3, 0.7) by (2, 0.7)
    assert pareto_mask([1.0, 2.0, 2.0, 3.0], [0.5, 0.7, 0.6, 0.7]) == [True, True, False, False]
    # lower is better (perplexity): (3, 8.5) is dominated by (2, 8.0)
    assert pareto_mask([1.0, 2.0, 3.0], [9.0, 8.0, 8.5], higher_is_better=False) == [True, True,
                                                                                       False]
    # equal points are both kept; a strictly better point removes them
    assert pareto_mask([1.0, 1.0], [0.5, 0.5]) == [True, True]
    assert pareto_mask([1.0, 1.0, 1.0], [0.5, 0.5, 0.6]) == [False, False, True]


def test_pareto_front_agrees_with_the_mask():
    costs = [3.0, 1.0, 2.0, 2.0, 5.0, 4.0]
    values = [0.9, 0.2, 0.5, 0.4, 0.95, 0.1]
    pts = [{"cost": c, "value": v, "i": i} for i, (c, v) in enumerate(zip(costs, values))]
    front = pareto_front(pts)
    mask = pareto_mask(costs, values)
    assert sorted(p["i"] for p in front) == [i for i, m in enumerate(mask) if m]
    assert [p["cost"] for p in front] == sorted(p["cost"] for p in front)


def test_markdown_writers():
    assert markdown_grid(["a", "b"], [[1, "x"], [2.5, "y"]], "rl").split("\n") == [
        "| a | b |", "|---:|---|", "| 1 | x |", "| 2.5 | y |"]
    with pytest.raises(ValueError, match="align must have one character per column"):
        markdown_grid(["a", "b"], [], "r")
    t = markdown_table([{"f": "mxfp4", "v": 0.12345}, {"f": "nvfp4"}], ["f", "v"],
                       {"v": "{:.2f}"}, {"v": "value"})
    assert t.split("\n") == ["| f | value |", "|---|---|", "| mxfp4 | 0.12 |", "| nvfp4 |  |"]


def test_csv_writers(tmp_path):
    p = write_csv(tmp_path / "a.csv", [{"x": 1, "y": 2}, {"y": 3, "z": 4}])
    assert list(csv.reader(p.open())) == [["x", "y", "z"], ["1", "2", ""], ["", "3", "4"]]
    p = write_csv(tmp_path / "b.csv", [{"x": 1, "extra": 9}], ["x", "y"])
    assert list(csv.reader(p.open())) == [["x", "y"], ["1", ""]]
    p = write_grid_csv(tmp_path / "c.csv", ["h1", "h2"], [[1, "a,b"]])
    assert list(csv.reader(p.open())) == [["h1", "h2"], ["1", "a,b"]]


def test_split_outliers_keeps_a_broken_network_off_the_scale():
    from lowbit.cost_models.plots import split_outliers

    top1 = [0.985, 0.978, 0.98, 0.895, 0.0956, 0.991]
    assert split_outliers(top1) == [False, False, False, False, True, False]
    ppl = [6.46, 6.48, 7.2, 643.4, 6.94]  # lower is better
    assert split_outliers(ppl, higher_is_better=False) == [False, False, False, True, False]
    assert split_outliers([0.9, 0.8, 0.7, 0.6]) == [False] * 4  # evenly spread: nothing off
    assert split_outliers([1.0, 0.0]) == [False, False]  # too few points to call one broken
