"""Off-policy selection metrics against scipy.stats and hand-computed examples."""

import math

import numpy as np
import pytest
from scipy import stats

from recsim_causal.ope.selection import (kendall, ndcg_at_k, regret_at_k, select, selection_metrics,
                                         sharpe_ratio_at_k, spearman)

TRUE = [0.5, 0.3, 0.9, 0.1]
EST = [0.6, 0.2, 0.4, 0.5]  # the estimator ranks: policy 0, 3, 2, 1


@pytest.mark.parametrize("seed", range(6))
def test_rank_correlations_equal_scipy_with_and_without_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 30))
    est, tru = rng.normal(size=n), rng.normal(size=n)
    if seed % 2:  # ties on both sides
        est, tru = np.round(est, 0), np.round(tru, 0)
    assert spearman(est, tru) == pytest.approx(stats.spearmanr(est, tru).statistic, abs=1e-12)
    assert kendall(est, tru) == pytest.approx(stats.kendalltau(est, tru).statistic, abs=1e-12)


def test_constant_input_has_no_correlation():
    assert spearman([1.0, 1.0, 1.0], [0.1, 0.2, 0.3]) is None
    assert kendall([0.1, 0.2, 0.3], [2.0, 2.0, 2.0]) is None


def test_regret_by_hand():
    assert regret_at_k(EST, TRUE, 1) == pytest.approx(0.4)  # picks 0.5, best is 0.9
    assert regret_at_k(EST, TRUE, 2) == pytest.approx(0.4)  # {0.5, 0.1}
    assert regret_at_k(EST, TRUE, 3) == pytest.approx(0.0)  # {0.5, 0.1, 0.9}
    assert regret_at_k(TRUE, TRUE, 1) == 0.0


def test_ndcg_by_hand():
    # gains V - min V = [0.4, 0.2, 0.8, 0.0]; top 2 by the estimate: gains 0.4, 0.0
    ideal = 0.8 + 0.4 / math.log2(3)
    assert ndcg_at_k(EST, TRUE, 2) == pytest.approx(0.4 / ideal)
    assert ndcg_at_k(TRUE, TRUE, 3) == pytest.approx(1.0)
    assert ndcg_at_k(EST, [0.2, 0.2, 0.2, 0.2], 2) is None


def test_sharpe_ratio_by_hand():
    # top 2 true values 0.5, 0.1: best 0.5, sd (ddof 1) = sqrt(0.08); baseline 0.2
    assert sharpe_ratio_at_k(EST, TRUE, 2, 0.2) == pytest.approx(0.3 / math.sqrt(0.08))
    # top 3: 0.5, 0.1, 0.9: best 0.9, sd = 0.4
    assert sharpe_ratio_at_k(EST, TRUE, 3, 0.2) == pytest.approx(0.7 / 0.4)
    assert sharpe_ratio_at_k(EST, TRUE, 2, 0.95) == 0.0  # nothing better than the logger
    assert sharpe_ratio_at_k(EST, TRUE, 1, 0.2) is None  # sd of one value: undefined


def test_select_ranks_each_estimator():
    names = ["a", "b", "c", "d"]
    truth = dict(zip(names, TRUE))
    out = select({"good": truth, "bad": dict(zip(names, EST))}, truth, ks=(1, 2), baseline=0.2)
    assert out["good"]["ranking"] == ["c", "a", "b", "d"] and out["good"]["selected"] == "c"
    assert out["good"]["metrics"]["spearman"] == pytest.approx(1.0)
    assert out["good"]["metrics"]["regret@1"] == 0.0
    assert out["bad"]["selected"] == "a" and out["bad"]["metrics"]["regret@1"] == pytest.approx(0.4)
    assert set(out["bad"]["metrics"]) == {"spearman", "kendall", "regret@1", "ndcg@1", "sharpe@1",
                                          "regret@2", "ndcg@2", "sharpe@2"}


def test_bad_input_is_one_line():
    with pytest.raises(ValueError, match="one value per candidate"):
        selection_metrics([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"k: expected an int in \[1, 4\]"):
        regret_at_k(EST, TRUE, 5)
    with pytest.raises(ValueError, match="estimates.x: no estimate for policy 'b'"):
        select({"x": {"a": 1.0}}, {"a": 1.0, "b": 2.0})
    with pytest.raises(ValueError, match="finite"):
        spearman([1.0, float("nan")], [1.0, 2.0])


def test_an_estimator_without_a_finite_estimate_for_every_policy_cannot_rank():
    names = ["a", "b", "c"]
    truth = dict(zip(names, [0.1, 0.5, 0.3]))
    out = select({"sntis": {"a": 1.0, "b": float("nan"), "c": 0.2}, "dm": truth}, truth, ks=(1,))
    assert out["sntis"]["ranking"] is None and out["sntis"]["metrics"] is None
    assert out["sntis"]["reason"].startswith("no finite estimate for 1 of 3 candidates (first 'b')")
    assert out["dm"]["selected"] == "b"
