"""The shipped validity rule: calibrated thresholds for every family, and on a small replicated
world with an exact V(pi) the intervals it marks valid cover, the ones it refuses do not."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recsim_causal.ope import DR, IPS, SNDR, SNIPS, estimate_all_intervals
from recsim_causal.ope.diagnostics import (
    CALIBRATION_FILE,
    ESS_SOURCES,
    FAMILIES,
    VALIDITY,
    overlap_diagnostics,
    row_verdict,
)

ESTIMATORS = [IPS(), SNIPS(), DR(), SNDR()]


def test_shipped_thresholds_are_calibrated_for_every_family():
    shipped = json.loads(CALIBRATION_FILE.read_text())
    assert shipped["replications"] >= 200 and shipped["target_coverage"] >= 0.93
    for family in FAMILIES:
        th = shipped["thresholds"][family]
        assert th is not None and th["ess_source"] in ESS_SOURCES, family
        assert VALIDITY[family]["calibrated"] is True
    # the calibration's own record: every calibrated estimator's valid-marked intervals cover
    for key, cov in shipped["pooled_valid_coverage"].items():
        assert cov is not None and cov >= shipped["target_coverage"], key


class World:
    """M context types, K actions, known probabilities: V(pi) = sum_m p_m sum_a pi(a|m) q(m,a)."""

    def __init__(self, M=10, K=20, seed=0):
        rng = np.random.default_rng(seed)
        self.p = rng.dirichlet(np.ones(M) * 5)
        self.q = rng.uniform(0.1, 0.6, size=(M, K))
        self.pi_b = 0.1 / K + 0.9 * rng.dirichlet(np.ones(K) * 2, size=M)  # a logger with 10% uniform exploration
        self.targets = {
            # close to the logger: the weights' expected ESS is a large share of n
            "spread": 0.5 * self.pi_b + 0.5 / K,
            # all mass on each context's least-logged action: weights up to ~ 200, a handful of rows carry it
            "concentrated": np.eye(K)[self.pi_b.argmin(axis=1)],
        }

    def truth(self, pi_e):
        return float(self.p @ (pi_e * self.q).sum(axis=1))

    def sample(self, n, rng):
        m = rng.choice(len(self.p), size=n, p=self.p)
        a = (self.pi_b[m].cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
        r = rng.binomial(1, self.q[m, a]).astype(float)
        qhat = np.clip(self.q[m] + 0.1, 0, 1)  # a biased reward model, independent of the log: DR corrects it
        return m, dict(reward=r, action=a, pscore=self.pi_b[m, a], estimated_rewards_by_reg_model=qhat)


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")  # SNIPS: 0/0 weights
def test_valid_marked_intervals_cover_and_refused_ones_do_not():
    # normal intervals on 300 logs, bootstrap intervals (the costly ones) on the first 100
    world, n, reps, boot_reps = World(), 1000, 300, 100
    rng = np.random.default_rng(7)
    hits, marked = {}, {}
    for rep in range(reps):
        m_idx, arrays = world.sample(n, rng)
        for t, pi in world.targets.items():
            pe, pb = pi[m_idx], world.pi_b[m_idx]
            w = pe[np.arange(n), arrays["action"]] / arrays["pscore"]
            diag = overlap_diagnostics(w, arrays["pscore"], pe.shape[1], action_dist=pe, pi_b=pb)
            for method in ("normal", "bootstrap") if rep < boot_reps else ("normal",):
                out = estimate_all_intervals(ESTIMATORS, method=method, n_bootstrap_samples=200, random_state=rep,
                                             action_dist=pe, **arrays)
                for e in ESTIMATORS:
                    iv, key = out[e.estimator_name], (t, e.estimator_name, method)
                    hits.setdefault(key, []).append(iv["95.0% CI (lower)"] <= world.truth(pi) <= iv["95.0% CI (upper)"])
                    marked.setdefault(key, []).append(row_verdict(e, method, diag, iv["mean"], reward_bounded=True).valid)
    for key, h in hits.items():
        cov, valid = float(np.mean(h)), float(np.mean(marked[key]))
        if key[0] == "spread":  # marked valid, and covers: within 3 binomial standard errors of 0.95
            assert valid == 1.0, key
            assert cov >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / len(h)), (key, cov)
        else:  # refused every time; and rightly: these intervals under-cover
            assert valid == 0.0, key
    worst = min(float(np.mean(h)) for k, h in hits.items() if k[0] == "concentrated")
    assert worst < 0.90, worst


@pytest.mark.parametrize("family, estimator", [("ipw", IPS()), ("dr", DR())])
def test_each_family_reads_its_own_thresholds(family, estimator):
    th = VALIDITY[family]
    ok = {"n_rounds": 10**6, "ess": 10**6 * 0.9, "ess_ratio": 0.9, "expected_ess": 10**6 * 0.9,
          "expected_ess_ratio": 0.9, "max_weight": 1.5, "low_support_share": 0.0, "pscore_one_share": 0.0}
    if th.get("never"):  # the calibration found no rule for the family: never valid
        assert row_verdict(estimator, "normal", ok, 0.3).valid is False
        return
    assert row_verdict(estimator, "normal", ok, 0.3)[:2] == (True, None)
    if th["min_ess_ratio"] > 0:
        low = dict(ok, ess_ratio=th["min_ess_ratio"] / 2, expected_ess_ratio=th["min_ess_ratio"] / 2)
        valid, reason = row_verdict(estimator, "normal", low, 0.3)[:2]
        assert valid is False and "effective sample size" in reason
