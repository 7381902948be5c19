"""Fidelity metrics and bootstrap intervals against known answers and independent references
(scipy.stats, closed forms, hand-worked values)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special
from scipy import stats as sps

from lowbit.sim import fidelity as fd
from lowbit.sim import stats


def test_bootstrap_ci_of_a_mean_matches_normal_theory():
    """n = 400 standard normals: the percentile interval of the mean is mean +- 1.96 s/sqrt(n)
    up to Monte-Carlo error, and matches scipy.stats.bootstrap (percentile method)."""
    x = np.random.default_rng(3).standard_normal(400)
    lo, hi = stats.ci(x, np.ones_like(x), "ratio")
    se = x.std(ddof=1) / math.sqrt(len(x))
    assert abs(lo - (x.mean() - 1.96 * se)) < 0.15 * se
    assert abs(hi - (x.mean() + 1.96 * se)) < 0.15 * se
    ref = sps.bootstrap((x,), np.mean, n_resamples=4000, method="percentile",
                        random_state=np.random.default_rng(1)).confidence_interval
    assert abs(lo - ref.low) < 0.15 * se and abs(hi - ref.high) < 0.15 * se


def test_bootstrap_coverage_of_a_known_mean():
    """200 data sets of 60 Exponential(1) draws: the 95% interval holds the true mean 1 in
    86-99% of them (the percentile bootstrap under-covers slightly for skewed data)."""
    rng = np.random.default_rng(7)
    hit = 0
    for _ in range(200):
        x = rng.exponential(1.0, 60)
        lo, hi = stats.ci(x, np.ones_like(x), "ratio", n_boot=500)
        hit += lo <= 1.0 <= hi
    assert 0.86 <= hit / 200 <= 0.99


def test_paired_test_type1_error_and_power():
    """Exchangeable pairs (null true): ~5% rejections; a 0.3-sd shift is always detected."""
    rng = np.random.default_rng(11)
    rej = 0
    for _ in range(200):
        base = rng.standard_normal(80)
        a, b = base + rng.standard_normal(80), base + rng.standard_normal(80)
        one = np.ones(80)
        rej += stats.paired_difference((a, one), (b, one), "ratio", n_boot=400)["significant"]
    assert 0.01 <= rej / 200 <= 0.11
    base = rng.standard_normal(80)
    d = stats.paired_difference((base + 0.3 + 0.1 * rng.standard_normal(80), np.ones(80)),
                                (base, np.ones(80)), "ratio")
    assert d["significant"] and d["lo"] > 0 and d["p"] < 0.01
    same = stats.paired_difference((base, np.ones(80)), (base, np.ones(80)), "ratio")
    assert same == {"diff": 0.0, "lo": 0.0, "hi": 0.0, "p": 1.0, "significant": False}


def test_holm_matches_hand_worked_example():
    # p sorted 0.01, 0.02, 0.03, 0.2 with alpha 0.05: 0.01 <= .0125, 0.02 > .0167 stops
    assert stats.holm([0.03, 0.01, 0.2, 0.02]) == [False, True, False, False]
    assert stats.holm([0.001, 0.01, 0.04]) == [True, True, True]
    assert stats.holm([float("nan"), 0.001]) == [False, True]


def test_kl_agreement_against_scipy():
    p = np.array([[0.5, 0.5], [0.1, 0.9]])
    q = np.array([[0.25, 0.75], [0.1, 0.9]])
    m = fd.kl_metric(np.log(p), np.log(q) + 3.0)  # logits: any offset per row
    ref = special.rel_entr(p, q).sum(1)
    np.testing.assert_allclose(m.num, ref, rtol=1e-12)
    assert m.value == pytest.approx(ref.mean(), rel=1e-12)
    assert m.num[0] == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3), rel=1e-12)
    a = fd.agreement_metric(np.array([[1, 2], [3, 1], [0, 5]]), np.array([[0, 1], [4, 0], [9, 1]]))
    assert a.value == pytest.approx(2 / 3)


def test_sqnr_perplexity_accuracy_known_values():
    ref = np.random.default_rng(0).standard_normal((30, 7))
    s = fd.sqnr_metric(ref, ref * 1.1)  # noise = 0.1 * signal -> exactly 20 dB
    assert s.value == pytest.approx(20.0, abs=1e-9)
    lo, hi = s.ci()
    assert lo == pytest.approx(20.0, abs=1e-9) and hi == pytest.approx(20.0, abs=1e-9)
    assert fd.sqnr_metric(ref, ref).value == math.inf
    V = 256  # uniform prediction over V bytes: perplexity exactly V
    pm = fd.perplexity_metric(np.zeros((4, 5, V)), np.zeros((4, 5), int))
    assert pm.value == pytest.approx(V, rel=1e-12) and pm.n == 4 and pm.den.sum() == 20
    acc = fd.accuracy_metric(np.eye(3)[[0, 1, 2, 2]], np.array([0, 1, 1, 2]))
    assert acc.value == 0.75


def test_recall_at_k_and_cosine():
    rng = np.random.default_rng(2)
    e = rng.standard_normal((40, 16))
    assert fd.recall_at_k_metric(e, e, 10).value == 1.0
    assert fd.cosine_metric(2 * e, e).value == pytest.approx(1.0)
    # a random embedding keeps ~ k/(n-1) of the neighbours by chance
    r = fd.recall_at_k_metric(rng.standard_normal((40, 16)), e, 10).value
    assert 0.05 < r < 0.5
    # hand-worked, k = 1: float nearest neighbours (cosine) of items 0..3 are [1, 0, 1, 2];
    # with item 1 moved onto item 2 they become [1 (tie 1/2 -> lower index), 2, 1, 1 (tie)]
    x = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    y = x.copy()
    y[1] = [0.0, 1.0]
    m = fd.recall_at_k_metric(y, x, 1)
    assert m.num.tolist() == [1.0, 0.0, 1.0, 0.0] and m.value == 0.5
    with pytest.raises(ValueError, match="recall@k"):
        fd.recall_at_k_metric(x, x, 4)


def test_sample_metric_json_roundtrip_and_errors():
    m = fd.kl_metric(np.zeros((3, 4)), np.ones((3, 4)))
    m2 = fd.SampleMetric.from_json(m.to_json())
    assert m2.value == m.value and m2.ci() == m.ci()
    with pytest.raises(ValueError, match="transform"):
        fd.SampleMetric("x", [1.0], [1.0], "log")
    with pytest.raises(ValueError, match="same samples"):
        stats.paired_difference(([1.0], [1.0]), ([1.0, 2.0], [1.0, 1.0]), "ratio")
