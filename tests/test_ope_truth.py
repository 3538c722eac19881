"""Ground truth V(pi) and the estimate-vs-truth table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recsim_causal.ope import DM, DR, IPS, estimate_all_intervals, ope_table, policy_value


def test_policy_value_is_the_mean_of_pi_times_q():
    rng = np.random.default_rng(0)
    pi = rng.dirichlet(np.ones(4), size=50)
    q = rng.random((50, 4))
    assert policy_value(pi, q) == pytest.approx(np.mean(np.sum(pi * q, axis=1)), rel=1e-13)
    # identical to DM with the oracle as the reward model
    assert policy_value(pi, q) == DM().estimate_policy_value(action_dist=pi, estimated_rewards_by_reg_model=q)


def test_policy_value_with_positions():
    rng = np.random.default_rng(1)
    n, K, L = 30, 5, 3
    pi = rng.dirichlet(np.ones(K), size=(n, L)).transpose(0, 2, 1)
    q = rng.random((n, K, L))
    pos = rng.integers(0, L, n)
    expected = np.mean([pi[i, :, pos[i]] @ q[i, :, pos[i]] for i in range(n)])
    assert policy_value(pi, q, position=pos) == pytest.approx(expected, rel=1e-13)
    q2 = q[:, :, 0]  # slot-independent oracle broadcasts over the slots
    expected2 = np.mean([pi[i, :, pos[i]] @ q2[i] for i in range(n)])
    assert policy_value(pi, q2, position=pos) == pytest.approx(expected2, rel=1e-13)
    with pytest.raises(ValueError, match="position is required"):
        policy_value(pi, q)


def test_ope_table_fields_and_coverage():
    rng = np.random.default_rng(2)
    n, K = 2000, 3
    pi_b = np.full((n, K), 1 / K)
    pi_e = rng.dirichlet(np.ones(K), size=n)
    q = rng.uniform(0.2, 0.8, size=(n, K))
    a = rng.integers(0, K, n)
    r = rng.binomial(1, q[np.arange(n), a]).astype(float)
    arrays = dict(reward=r, action=a, pscore=pi_b[np.arange(n), a], action_dist=pi_e,
                  estimated_rewards_by_reg_model=q)  # fmt: skip
    truth = policy_value(pi_e, q)
    intervals = estimate_all_intervals([IPS(), DR()], n_bootstrap_samples=300, random_state=0, **arrays)
    points = {"ipw": IPS().estimate_policy_value(**arrays), "dr": DR().estimate_policy_value(**arrays)}
    table = ope_table(points, truth, intervals=intervals)
    row = table["dr"]
    assert row["error"] == pytest.approx(points["dr"] - truth)
    assert row["relative_error"] == pytest.approx(abs(points["dr"] - truth) / truth)
    assert row["ci_low"] == intervals["dr"]["95.0% CI (lower)"]
    assert row["covers"] == (row["ci_low"] <= truth <= row["ci_high"])
    json.dumps(table)  # JSON-ready
    # interval dicts alone: their "mean" is the estimate
    t2 = ope_table(intervals, truth)
    assert t2["ipw"]["estimate"] == intervals["ipw"]["mean"] and t2["ipw"]["covers"] is not None
    t3 = ope_table({"x": 1.0}, 0.0)
    assert t3["x"]["relative_error"] is None and t3["x"]["covers"] is None
