"""OBP's vocabulary on our worlds: SimulatedLog.to_obp() has the keys, shapes and dtypes of OBP
0.5's synthetic bandit_feedback, and OffPolicyEvaluation has OBP's methods and arguments."""

import numpy as np
import pytest

from recsim_causal.agents import RandomPolicy
from recsim_causal.ope import DM, DR, IPS, SNIPS, OffPolicyEvaluation, evaluate, simulate_log


@pytest.fixture(scope="module")
def log():
    return simulate_log("default", "linucb", 8_000, epsilon=0.3, seed=5, train_rounds=1_000, n_items=6)


def test_to_obp_has_obps_keys_shapes_and_dtypes(log):
    bf = log.to_obp()
    n, K = 8_000, 6
    # obp/dataset/synthetic.py (0.5.x): SyntheticBanditDataset.obtain_batch_bandit_feedback's dict
    for key in ("n_rounds", "n_actions", "context", "action_context", "action", "position", "reward",
                "expected_reward", "pi_b", "pscore"):
        assert key in bf, key
    assert bf["n_rounds"] == n and bf["n_actions"] == K
    assert isinstance(bf["n_rounds"], int) and isinstance(bf["n_actions"], int)
    assert bf["context"].ndim == 2 and bf["context"].shape[0] == n and bf["context"].dtype == np.float64
    assert bf["action_context"].ndim == 2 and bf["action_context"].shape[0] == K
    assert bf["action"].shape == (n,) and np.issubdtype(bf["action"].dtype, np.integer)
    assert bf["position"] is None  # one slot: OBP's synthetic data has position=None
    assert bf["reward"].shape == (n,) and bf["expected_reward"].shape == (n, K)
    assert bf["pi_b"].shape == (n, K, 1) and bf["pscore"].shape == (n,)
    np.testing.assert_allclose(bf["pi_b"].sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_array_equal(bf["pscore"], bf["pi_b"][np.arange(n), bf["action"], 0])
    # OBP's calc_ground_truth_policy_value: average of expected_reward weighted by action_dist[:, :, 0]
    pi = np.full((n, K, 1), 1 / K)
    obp_truth = np.average(bf["expected_reward"], weights=pi[:, :, 0], axis=1).mean()
    assert log.truth(RandomPolicy(n_actions=K)) == pytest.approx(obp_truth, rel=1e-12)


def test_off_policy_evaluation_with_obps_names(log, tmp_path):
    bf = log.to_obp()
    n, K = bf["n_rounds"], bf["n_actions"]
    action_dist = np.full((n, K, 1), 1 / K)
    q_hat = np.asarray(bf["expected_reward"])[:, :, None]  # the oracle as the reward model: DM is exact
    ope = OffPolicyEvaluation(bandit_feedback=bf, ope_estimators=[IPS(), SNIPS(), DM(), DR()])
    values = ope.estimate_policy_values(action_dist=action_dist, estimated_rewards_by_reg_model=q_hat)
    assert set(values) == {"ipw", "snipw", "dm", "dr"}
    truth = log.truth(RandomPolicy(n_actions=K))
    assert values["dm"] == pytest.approx(truth, rel=1e-12)  # sum_a pi(a|x) q(x, a), averaged: the truth itself
    same = evaluate(log, {"uniform": RandomPolicy(n_actions=K)}, ["ipw", "snipw"], ci="normal")
    for r in same.records:
        assert values[r.estimator] == pytest.approx(r.estimate, rel=1e-12)
    intervals = ope.estimate_intervals(action_dist=action_dist, estimated_rewards_by_reg_model=q_hat,
                                       n_bootstrap_samples=200, random_state=0)
    assert set(intervals["ipw"]) == {"mean", "95.0% CI (lower)", "95.0% CI (upper)"}
    assert intervals["ipw"]["95.0% CI (lower)"] <= truth <= intervals["ipw"]["95.0% CI (upper)"]
    value_df, interval_df = ope.summarize_off_policy_estimates(action_dist=action_dist,
                                                               estimated_rewards_by_reg_model=q_hat,
                                                               n_bootstrap_samples=100, random_state=0)
    assert list(value_df.columns) == ["estimated_policy_value", "relative_estimated_policy_value"]
    assert value_df.loc["ipw", "relative_estimated_policy_value"] == pytest.approx(values["ipw"] / bf["reward"].mean())
    assert list(interval_df.index) == ["ipw", "snipw", "dm", "dr"]
    se = ope.evaluate_performance_of_estimators(truth, action_dist=action_dist, estimated_rewards_by_reg_model=q_hat)
    assert se["ipw"] == pytest.approx((values["ipw"] - truth) ** 2)
    rel = ope.summarize_estimators_comparison(truth, action_dist=action_dist, estimated_rewards_by_reg_model=q_hat,
                                              metric="relative-ee")
    assert rel.loc["dr", "relative-ee"] == pytest.approx(abs(values["dr"] - truth) / truth)
    path = ope.visualize_off_policy_estimates(action_dist=action_dist, estimated_rewards_by_reg_model=q_hat,
                                              n_bootstrap_samples=50, random_state=0, fig_dir=tmp_path)
    assert path.name == "estimated_policy_value.png" and path.stat().st_size > 1000
    with pytest.raises(ValueError, match=r"^metric: expected one of relative-ee, se"):
        ope.evaluate_performance_of_estimators(truth, action_dist=action_dist, metric="mse")
