"""Overlap diagnostics, interval validity and WARNING lines on logs that should alarm a reader (and
none on logs that should not)."""

from __future__ import annotations

import numpy as np
import pytest

from recsim_causal.ope.evaluate import evaluate_target
from recsim_causal.ope import DM, DR, IPS, SNIPS
from recsim_causal.ope.diagnostics import VALIDITY, interval_validity, log_reason, overlap_diagnostics

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
    # the verdict names the quantity, its value and the limit; the support share is a fact, not a verdict
    assert log_reason("ipw", "bootstrap", d) == "too few rounds (4 < 100)"
    assert log_reason("ipw", "bootstrap", dict(d, n_rounds=10_000)) is not None  # ESS 1.78 on 10,000 rounds


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
    assert res["diagnostics"]["ess"] == pytest.approx(50.0) and res["diagnostics"]["max_weight"] == pytest.approx(1e11)
    # ESS (50 rows of weight 1e11: 50) is at the calibrated minimum; the max weight is past its limit
    assert any(w.startswith("WARNING random: ipw, snipw, dr (bootstrap) not valid: max weight 1e+11 > "
                            "1,000, the calibrated maximum") for w in res["warnings"])
    assert not any("support" in w for w in res["warnings"])  # a diagnostic (low_support_share), not a verdict
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


def test_slate_and_session_rows_are_marked_by_one_rule():
    from recsim_causal.ope import SelfNormalizedSlateStandardIPS, SlateIndependentIPS, SlateStandardIPS
    from recsim_causal.ope.diagnostics import row_verdict, validity_rows

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
    assert row_verdict(sn, "bootstrap", sn.weight_diagnostics(**zero), est)[:2] == (
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


def _two_action_log(n, p_rare, seed):
    """A logger taking action 1 with probability p_rare, a target always taking it: every weight is
    0 or 1 / p_rare, so E[w^2] = 1 / p_rare (expected ESS n p_rare) and the logged ESS is the number
    of rows with action 1."""
    rng = np.random.default_rng(seed)
    action = (rng.random(n) < p_rare).astype(int)
    pi_b = np.tile([1 - p_rare, p_rare], (n, 1))
    arrays = dict(reward=(rng.random(n) < 0.3).astype(float), action=action, pscore=pi_b[np.arange(n), action],
                  pi_b=pi_b, estimated_rewards_by_reg_model=np.full((n, 2), 0.3))
    return arrays, np.tile([0.0, 1.0], (n, 1))


def test_a_row_is_invalid_with_its_reason_and_one_warning_or_valid_and_silent():
    th = VALIDITY["dr"]
    ci = {"method": ["bootstrap", "bernstein"], "n_bootstrap_samples": 50, "alpha": 0.05}
    ests = {"ipw": IPS(), "dr": DR(), "dm": DM()}
    # expected ESS n p = 40 < the calibrated minimum 50 (its share p = 0.4% passes the minimum share)
    n, p = 10_000, 0.004
    assert n * p < th["min_ess"] and p > th["min_ess_ratio"]
    arrays, pi_e = _two_action_log(n, p, seed=0)
    res = evaluate_target("rare", ests, arrays, pi_e, ci=ci, seed=0, reward_bounds=(0, 1))
    d = res["diagnostics"]
    assert d["expected_ess"] == pytest.approx(40.0) and d["ess"] == pytest.approx(arrays["action"].sum())
    dr = res["estimators"]["dr"]
    assert dr["interval_valid"] is False
    assert dr["invalid_reason"] == ("expected effective sample size 40.0 < 50, the calibrated minimum (0.40% of n = "
                                    "10,000): bootstrap intervals under-cover")
    assert f"WARNING rare: dr (bootstrap) not valid: {dr['invalid_reason']}" in res["warnings"]
    assert dr["intervals"]["bernstein"]["interval_valid"] is True  # the finite-sample bound keeps its guarantee
    # every WARNING goes with an invalid row and repeats its reason; DM's (by design) is in its row only
    rows = res["estimators"]
    for line in res["warnings"]:
        assert any(not r["interval_valid"] and line.endswith(f"not valid: {r['invalid_reason']}") for r in rows.values())
    assert not any("dm" in line.split("not valid")[0] for line in res["warnings"])

    # expected ESS n p = 100 and the logged one ~ 100: valid, no WARNING, though all the target's
    # mass is on an action the logger takes with probability 0.01 < 1/(10K) (a fact, reported)
    arrays, pi_e = _two_action_log(10_000, 0.01, seed=1)
    res = evaluate_target("rare", ests, arrays, pi_e, ci=ci, seed=0, reward_bounds=(0, 1))
    assert res["diagnostics"]["expected_ess"] == pytest.approx(100.0) and res["diagnostics"]["low_support_share"] == 1.0
    assert res["estimators"]["ipw"]["interval_valid"] and res["estimators"]["dr"]["interval_valid"]
    assert res["warnings"] == []


def test_slate_and_session_rows_speak_the_same_vocabulary():
    from recsim_causal.ope import SlateStandardIPS
    from recsim_causal.ope.diagnostics import per_unit_ess, validity_rows, verdict_warnings

    # 5,000 units, two positions; position 1's weights: 20 of 100, the rest 0, so its ESS is 20
    w = np.ones((5000, 2))
    w[:, 1] = 0.0
    w[:20, 1] = 100.0
    diag = per_unit_ess(w, column="position")
    assert diag["ess"] == pytest.approx(20.0) and diag["ess_at"] == 1
    rows = validity_rows({"sips": SlateStandardIPS(len_list=2)}, {"sips": diag}, {"sips": 0.3}, "normal",
                         shared={"pscore_one_share": 0.0}, reward_bounded=False)
    reason = rows["sips"]["invalid_reason"]
    assert reason == ("logged effective sample size 20.0 < 50, the calibrated minimum (0.40% of n = 5,000 at "
                      "position 1): normal intervals under-cover")
    assert verdict_warnings("t", {k: r["verdict"] for k, r in rows.items()}, "normal") == [
        f"WARNING t: sips (normal) not valid: {reason}"]
