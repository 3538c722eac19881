"""Confidence intervals: OBP's dict keys, bootstrap determinism and exactness, ratio
resampling, and coverage of the true policy value on a world with a known V(pi)."""

from __future__ import annotations

import numpy as np
import pytest

from recsim_causal.ope import DR, IPS, SNIPS, RoundTerms, bootstrap_estimates, estimate_all_intervals
from recsim_causal.ope.intervals import (
    _multinomial_counts_large,
    _resampled_sums,
    ci_keys,
    estimate_interval_from_terms,
)


def test_obp_keys():
    assert ci_keys(0.05) == ("95.0% CI (lower)", "95.0% CI (upper)")
    assert ci_keys(0.1) == ("90.0% CI (lower)", "90.0% CI (upper)")
    t = RoundTerms(num=np.arange(10.0))
    for method in ("bootstrap", "normal", "bernstein", "hoeffding"):
        out = estimate_interval_from_terms(t, method=method, n_bootstrap_samples=200, random_state=0)
        assert list(out) == ["mean", "95.0% CI (lower)", "95.0% CI (upper)"]
        assert out["95.0% CI (lower)"] < 4.5 < out["95.0% CI (upper)"]


def test_argument_validation():
    t = RoundTerms(num=np.ones(5))
    with pytest.raises(ValueError, match="alpha"):
        estimate_interval_from_terms(t, alpha=1.5)
    with pytest.raises(ValueError, match="n_bootstrap_samples"):
        estimate_interval_from_terms(t, n_bootstrap_samples=0)
    with pytest.raises(ValueError, match="method"):
        estimate_interval_from_terms(t, method="jackknife")
    with pytest.raises(ValueError, match="random_state"):
        estimate_interval_from_terms(t, random_state="seed")


def test_bootstrap_is_deterministic_and_thread_independent():
    rng = np.random.default_rng(0)
    for n in (500, 40_000):  # the small-n and the large-n count generators
        t = RoundTerms(base=rng.random(n), num=rng.random(n), den=rng.random(n) + 0.5)
        a = bootstrap_estimates([t], n_bootstrap_samples=40, random_state=3, threads=1)
        b = bootstrap_estimates([t], n_bootstrap_samples=40, random_state=3, threads=2)
        c = bootstrap_estimates([t], n_bootstrap_samples=40, random_state=4, threads=1)
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


def test_bootstrap_of_a_ratio_resamples_numerator_and_denominator_together():
    # num = den * 2 exactly: every resampled ratio is exactly 2 (a fixed denominator would not be)
    rng = np.random.default_rng(1)
    den = rng.exponential(size=300)
    t = RoundTerms(num=2 * den, den=den)
    boots = bootstrap_estimates([t], n_bootstrap_samples=500, random_state=0)
    np.testing.assert_allclose(boots, 2.0, rtol=1e-12)
    # and a resampled estimate equals the estimator applied to the resampled rows
    sums = _resampled_sums(np.column_stack([t.num, t.den]), 5, 7, 1)
    np.testing.assert_allclose(sums[:, 0] / sums[:, 1], 2.0, rtol=1e-12)


def test_large_n_counts_are_exactly_multinomial():
    # totals are exactly n; the cell counts follow Binomial(n, 1/n) ~ Poisson(1)
    g = np.random.Generator(np.random.SFC64(5))
    n = 50_000
    counts = np.stack([_multinomial_counts_large(g, n) for _ in range(200)]).astype(np.int64)
    assert (counts.sum(axis=1) == n).all()
    freq = np.bincount(counts.ravel(), minlength=6)[:6] / counts.size
    pmf = np.array([0.36788, 0.36788, 0.18394, 0.06131, 0.01533, 0.00307])
    tol = 5 * np.sqrt(pmf / counts.size) + 1e-5
    assert np.all(np.abs(freq - pmf) <= tol), (freq, pmf)
    # the sum of the first half of the cells is Binomial(n, 1/2): variance n/4
    half = counts[:, : n // 2].sum(axis=1)
    assert 0.6 < half.var() / (n / 4) < 1.5


def test_bootstrap_standard_error_matches_the_analytic_one():
    rng = np.random.default_rng(2)
    n = 40_000  # large-n path
    t = RoundTerms(num=rng.exponential(size=n))
    boots = bootstrap_estimates([t], n_bootstrap_samples=400, random_state=1)[:, 0]
    se = t.num.std() / np.sqrt(n)
    assert boots.std() == pytest.approx(se, rel=0.15)
    assert boots.mean() == pytest.approx(t.value(), abs=4 * se / np.sqrt(400) + 1e-12)


class DiscreteWorld:
    """M context types with known probabilities: V(pi) = sum_m p_m sum_a pi(a|m) q(m,a) exactly."""

    def __init__(self, M=20, K=4, seed=0):
        rng = np.random.default_rng(seed)
        self.p = rng.dirichlet(np.ones(M) * 3)
        self.q = rng.uniform(0.1, 0.9, size=(M, K))
        self.pi_b = rng.dirichlet(np.ones(K) * 3, size=M)
        self.pi_e = rng.dirichlet(np.ones(K) * 3, size=M)
        self.truth = float(self.p @ (self.pi_e * self.q).sum(axis=1))
        self.K = K

    def sample(self, n, rng):
        m = rng.choice(self.p.shape[0], size=n, p=self.p)
        pi_b = self.pi_b[m]
        a = (pi_b.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
        r = rng.binomial(1, self.q[m, a]).astype(float)
        qhat = np.clip(self.q[m] + 0.1, 0, 1)  # a biased reward model: DR must fix it
        return dict(reward=r, action=a, pscore=pi_b[np.arange(n), a], action_dist=self.pi_e[m],
                    estimated_rewards_by_reg_model=qhat)  # fmt: skip


def _coverage(method, reps=200, n=800, B=400):
    world = DiscreteWorld()
    rng = np.random.default_rng(11)
    hits = {"ipw": 0, "snipw": 0, "dr": 0}
    for rep in range(reps):
        arrays = world.sample(n, rng)
        out = estimate_all_intervals([IPS(), SNIPS(), DR()], method=method, n_bootstrap_samples=B,
                                     random_state=rep, bounds=(0.0, 1.0 / world.pi_b.min()), **arrays)  # fmt: skip
        for k, v in out.items():
            hits[k] += v["95.0% CI (lower)"] <= world.truth <= v["95.0% CI (upper)"]
    return {k: v / reps for k, v in hits.items()}


def test_bootstrap_ci_covers_the_truth_95_percent():
    cov = _coverage("bootstrap")
    for k, c in cov.items():
        assert 0.91 <= c <= 0.99, (k, c)


def test_normal_ci_coverage_and_bernstein_is_conservative():
    cov = _coverage("normal")
    for k, c in cov.items():
        assert 0.91 <= c <= 0.99, (k, c)
    cov_b = _coverage("bernstein", reps=60)
    for k, c in cov_b.items():
        assert c >= 0.95, (k, c)


def test_estimator_interval_methods_share_the_bootstrap():
    world = DiscreteWorld(seed=1)
    arrays = world.sample(500, np.random.default_rng(0))
    alone = DR().estimate_interval(n_bootstrap_samples=300, random_state=5, **arrays)
    together = estimate_all_intervals([IPS(), DR()], n_bootstrap_samples=300, random_state=5, **arrays)["dr"]
    assert together == pytest.approx(alone, rel=1e-12)
    light = DR().estimate_interval_light(
        n_bootstrap_samples=300, random_state=5, reward=arrays["reward"], pscore=arrays["pscore"],
        target_pscore=arrays["action_dist"][np.arange(500), arrays["action"]],
        target_q=(arrays["action_dist"] * arrays["estimated_rewards_by_reg_model"]).sum(axis=1),
        q_at_action=arrays["estimated_rewards_by_reg_model"][np.arange(500), arrays["action"]],
    )  # fmt: skip
    assert light == pytest.approx(alone, rel=1e-12)


def test_hoeffding_and_bernstein_by_hand():
    # n = 8 rewards in [0, 1]: mean 0.5, sample variance 2/7
    v = np.array([0, 1, 0, 1, 0, 1, 0, 1.0])
    t = RoundTerms(num=v)
    h = estimate_interval_from_terms(t, method="hoeffding", ranges=None, bounds=(0.0, 1.0))
    half = np.sqrt(np.log(2 / 0.05) / 16)
    assert h["95.0% CI (upper)"] == pytest.approx(0.5 + half) and h["95.0% CI (lower)"] == pytest.approx(0.5 - half)
    b = estimate_interval_from_terms(t, method="bernstein", bounds=(0.0, 1.0))
    half = np.sqrt(2 * (2 / 7) * np.log(80) / 8) + 7 * np.log(80) / 21
    assert b["95.0% CI (upper)"] == pytest.approx(0.5 + half)


def test_ratio_bounds_combine_the_parts_by_interval_arithmetic():
    from recsim_causal.ope.intervals import estimate_intervals_from_terms

    rng = np.random.default_rng(0)
    w = rng.uniform(0, 2, 5000)
    r = rng.binomial(1, 0.3, 5000).astype(float)
    t = RoundTerms(num=w * r, den=w)
    out = estimate_intervals_from_terms([t], method="hoeffding", ranges=[{"num": (0, 2), "den": (0, 2)}],
                                        value_range=(0.0, 1.0))[0]
    # each mean gets alpha / 2: num in mean(w r) +- 2 sqrt(ln(80) / 10000), den likewise
    h = 2 * np.sqrt(np.log(2 / 0.025) / (2 * 5000))
    num, den = (w * r).mean(), w.mean()
    assert out["95.0% CI (lower)"] == pytest.approx((num - h) / (den + h))
    assert out["95.0% CI (upper)"] == pytest.approx((num + h) / (den - h))


def test_finite_sample_intervals_never_under_cover():
    cov = _coverage_ranges(reps=150)
    for k, c in cov.items():
        assert c >= 0.95, (k, c)


def _coverage_ranges(reps, n=800):
    world = DiscreteWorld()
    rng = np.random.default_rng(12)
    hits = {}
    for rep in range(reps):
        arrays = world.sample(n, rng)
        for m in ("bernstein", "hoeffding"):
            out = estimate_all_intervals([IPS(), SNIPS(), DR()], method=m, reward_range=(0.0, 1.0),
                                         max_weight=float((world.pi_e / world.pi_b).max()), **arrays)
            for k, v in out.items():
                hits[(k, m)] = hits.get((k, m), 0) + (v["95.0% CI (lower)"] <= world.truth <= v["95.0% CI (upper)"])
    return {k: v / reps for k, v in hits.items()}


def test_finite_sample_bounds_refuse_arguments_that_void_their_guarantee():
    rng = np.random.default_rng(0)
    n, K = 500, 4
    arrays = dict(reward=rng.binomial(1, 0.3, n).astype(float), action=rng.integers(0, K, n),
                  pscore=np.full(n, 1 / K), action_dist=np.full((n, K, 1), 1 / K))
    ok = estimate_all_intervals([IPS()], method="bernstein", reward_range=(0, 1), max_weight=1.0, **arrays)["ipw"]
    assert ok["95.0% CI (lower)"] <= ok["mean"] <= ok["95.0% CI (upper)"]
    with pytest.raises(ValueError, match=r"^max_weight: expected .* > 0, got -1$"):
        estimate_all_intervals([IPS()], method="bernstein", reward_range=(0, 1), max_weight=-1, **arrays)
    bad = {**arrays, "reward": arrays["reward"] * 2.0}
    with pytest.raises(ValueError, match=r"^reward: \d+ of 500 rewards lie outside reward_range \[0, 1\]"):
        estimate_all_intervals([IPS()], method="bernstein", reward_range=(0, 1), **bad)
    with pytest.raises(ValueError, match=r"^reward_range: expected finite \(low, high\) with low < high"):
        estimate_all_intervals([IPS()], method="hoeffding", reward_range=(1, 0), **arrays)
    with pytest.raises(ValueError, match=r"^pscore must be a probability <= 1; 500 of 500 rows are above 1"):
        estimate_all_intervals([IPS()], method="bernstein", reward_range=(0, 1), **{**arrays, "pscore": np.full(n, 1.5)})
