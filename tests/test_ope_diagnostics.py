"""Overlap diagnostics, interval validity and WARNING lines on logs that should alarm a reader."""

from __future__ import annotations

import numpy as np
import pytest

from recsim_causal.ope.evaluate import evaluate_target
from recsim_causal.ope import DM, DR, IPS, SNIPS
from recsim_causal.ope.diagnostics import diagnostic_warnings, interval_validity, overlap_diagnostics

CI = {"method": ["bootstrap", "normal", "bernstein"], "n_bootstrap_samples": 200, "alpha": 0.05}
ESTIMATORS = {"dm": DM(), "ipw": IPS(), "snipw": SNIPS(estimator_name="snipw"), "dr": DR()}


def test_hand_example():
    # weights [1, 1, 2, 0]: ESS = 4^2 / 6; K = 2: threshold 1/20
    pi_b = np.array([[0.5, 0.5], [0.5, 0.5], [0.98, 0.02], [1.0, 0.0]])
    pi_e = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.0, 1.0]])
    action = np.array([0, 1, 0, 0])
    pscore = pi_b[np.arange(4), action]
    w = pi_e[np.arange(4), action] / pscore
    np.testing.assert_allclose(w, [1, 1, 0.5 / 0.98, 0])
    d = overlap_diagnostics(w, pscore, 2, action_dist=pi_e, pi_b=pi_b)
    assert d["ess"] == pytest.approx(w.sum() ** 2 / (w**2).sum())
    # target mass on actions with pi_b < 1/20: row 2 puts .5 on action 1 (.02), row 3 puts 1 on action 1 (0)
    assert d["low_support_share"] == pytest.approx((0.5 + 1.0) / 4) and d["low_support_source"] == "pi_b"
    assert d["pscore_one_share"] == pytest.approx(0.25)
    lines = diagnostic_warnings(d, "t")
    assert any(line.startswith("WARNING t: too few rounds") for line in lines)
    assert any(line.startswith("WARNING t: support: 37.5%") for line in lines)


def _log(n, K, rng, pscore_of):
    action = rng.integers(0, K, n)
    pscore = pscore_of(action)
    reward = (rng.random(n) < 0.3).astype(float)
    return dict(reward=reward, action=action, pscore=pscore, estimated_rewards_by_reg_model=np.full((n, K), 0.3))


def test_near_deterministic_logger_is_flagged_and_intervals_invalid():
    # an online LinUCB-like log: 99.5% of pscores are 1; a uniform target
    rng = np.random.default_rng(0)
    n, K = 4000, 100
    arrays = _log(n, K, rng, lambda a: np.where(rng.random(len(a)) < 0.995, 1.0, 0.5))
    res = evaluate_target("random", ESTIMATORS, arrays, np.full((n, K), 1 / K), ci=CI, seed=0, reward_bounds=(0, 1))
    assert any("near-deterministic logger: 99.5%" in w for w in res["warnings"])
    for est in ("ipw", "snipw", "dr"):
        for m in CI["method"]:
            assert res["estimators"][est]["intervals"][m]["interval_valid"] is False


def test_tiny_pscores_blow_up_dr_and_are_flagged():
    rng = np.random.default_rng(1)
    n, K = 5000, 10
    arrays = _log(n, K, rng, lambda a: np.where(np.arange(len(a)) % 100 == 0, 1e-12, 0.1))
    res = evaluate_target("random", ESTIMATORS, arrays, np.full((n, K), 1 / K), ci=CI, seed=0, reward_bounds=(0, 1))
    assert res["diagnostics"]["ess"] < 100 and res["diagnostics"]["max_weight"] > 1e10
    assert any("effective sample size" in w for w in res["warnings"])
    assert any("support" in w and "logged rows" in w for w in res["warnings"])
    for est in ("ipw", "dr"):
        assert res["estimators"][est]["intervals"]["bootstrap"]["interval_valid"] is False
    # the finite-sample bound keeps its guarantee: it is wide, not wrong
    bern = res["estimators"]["ipw"]["intervals"]["bernstein"]
    assert bern["ci_low"] <= 0.0 + 1e-12 and bern["ci_high"] >= 1.0 - 1e-12


def test_four_rounds_never_give_a_valid_tight_interval():
    rng = np.random.default_rng(2)
    arrays = _log(4, 3, rng, lambda a: np.full(len(a), 1 / 3))
    res = evaluate_target("random", ESTIMATORS, arrays, np.full((4, 3), 1 / 3), ci=CI, seed=0, reward_bounds=(0, 1))
    assert any("too few rounds (4 < 100)" in w for w in res["warnings"])
    assert all(not r["intervals"][m]["interval_valid"] for r in res["estimators"].values() for m in CI["method"])


def test_validity_rules():
    ok = {"n_rounds": 10_000, "ess": 5000.0, "ess_ratio": 0.5, "low_support_share": 0.0, "pscore_one_share": 0.0}
    assert interval_validity(IPS(), "bootstrap", ok) == (True, None)
    assert interval_validity(DM(), "bootstrap", ok)[0] is False
    assert interval_validity(IPS(lambda_=10.0), "normal", ok)[0] is False  # clipping bias
    assert interval_validity(IPS(), "bernstein", ok, reward_bounded=False)[0] is False
    assert interval_validity(DR(), "normal", ok, confounded=True)[1].startswith("confounded log")
    low_ess = dict(ok, ess=10.0, ess_ratio=0.001)  # below any calibrated rule (docs/trust.md)
    assert interval_validity(IPS(), "bootstrap", low_ess)[0] is False
    assert interval_validity(IPS(), "bernstein", low_ess) == (True, None)


def test_support_share_from_logged_rows_never_exceeds_one():
    # one row with pscore 1e-12 and target probability 1: the row estimate w 1{pscore < 1/(10K)}
    # is 1e12; the share it estimates is at most 1
    pscore = np.r_[1e-12, np.full(9, 0.5)]
    w = np.r_[1e12, np.ones(9)]
    d = overlap_diagnostics(w, pscore, 2)
    assert d["low_support_share"] == 1.0 and d["low_support_source"] == "logged rows"
    assert any("support: 100.0% of the target's mass" in line for line in diagnostic_warnings(d))


def test_slate_and_session_rows_are_marked_by_one_rule():
    from recsim_causal.ope import SelfNormalizedSlateStandardIPS, SlateIndependentIPS, SlateStandardIPS
    from recsim_causal.ope.diagnostics import row_validity, validity_rows

    # two slates of two slots: slate weights 2 and 0 (the target never takes the second slate)
    arrays = dict(slate_id=np.array([0, 0, 1, 1]), position=np.array([0, 1, 0, 1]), reward=np.array([1.0, 0, 0, 1]),
                  pscore=np.array([0.25, 0.25, 0.5, 0.5]), evaluation_policy_pscore=np.array([0.5, 0.5, 0, 0]),
                  pscore_item_position=np.full(4, 0.5), evaluation_policy_pscore_item_position=np.full(4, 0.5))
    d = SlateStandardIPS(len_list=2).weight_diagnostics(**arrays)
    assert d["n_rounds"] == 2 and d["max_weight"] == 2.0 and d["ess"] == pytest.approx(1.0)  # (2 + 0)^2 / 4
    # all weights 0: a self-normalized estimate is 0/0; the row says why
    zero = {**arrays, "evaluation_policy_pscore": np.zeros(4)}
    sn = SelfNormalizedSlateStandardIPS(len_list=2)
    est = sn.estimate_policy_value(**zero)
    assert np.isnan(est)
    assert row_validity(sn, "bootstrap", sn.weight_diagnostics(**zero), est) == (
        False, "estimate undefined: every importance weight is 0 (the target never takes what was logged)")
    rows = validity_rows({"iips": SlateIndependentIPS(len_list=2)}, {"iips": {"n_rounds": 5000, "ess": 5000.0}},
                         {"iips": 0.3}, "bootstrap", shared={"pscore_one_share": 0.0})
    assert rows["iips"]["interval_valid"] is False and rows["iips"]["invalid_reason"].startswith("assumes the independence")
    assert rows["iips"]["diagnostics"] == {"pscore_one_share": 0.0, "n_rounds": 5000, "ess": 5000.0}


def test_expected_ess_by_hand_and_by_monte_carlo():
    # x1: E[w^2] = 1^2 / 0.5 = 2; x2: 0.5^2 / 0.8 + 0.5^2 / 0.2 = 1.5625; mean 1.78125
    pi_b = np.array([[0.5, 0.5], [0.8, 0.2]])
    pi_e = np.array([[1.0, 0.0], [0.5, 0.5]])
    d = overlap_diagnostics(np.ones(2), np.full(2, 0.5), 2, action_dist=pi_e, pi_b=pi_b)
    assert d["expected_ess_ratio"] == pytest.approx(1 / 1.78125) and d["expected_ess"] == pytest.approx(2 / 1.78125)
    assert d["support_max_weight"] == pytest.approx(2.5)
    # the logged weights' mean square converges to E[w^2] (200k draws of the two contexts)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, 200_000)
    a = (rng.random(len(x)) >= pi_b[x, 0]).astype(int)
    w = pi_e[x, a] / pi_b[x, a]
    assert np.mean(w**2) == pytest.approx(1.78125, abs=4 * np.std(w**2) / np.sqrt(len(w)))
    # mass where the logger never acts: no finite second moment
    bad = overlap_diagnostics(np.ones(1), np.ones(1), 2, action_dist=np.array([[0.0, 1.0]]), pi_b=np.array([[1.0, 0.0]]))
    assert bad["expected_ess"] == 0.0 and bad["support_max_weight"] == np.inf
