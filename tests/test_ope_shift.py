"""OPE across a shift: the density ratio of the contexts against its closed form, and a log from
before a change in the users that, reweighted, finds the exact value after it."""

from __future__ import annotations

import numpy as np
import pytest

from recsim_causal.agents import RandomPolicy
from recsim_causal.ope import evaluate, simulate_log
from recsim_causal.ope.shift import context_density_ratio
from recsim_causal.ope.simulate import observe, population_value, train_targets
from recsim_causal.scm import World


def test_density_ratio_matches_the_gaussian_closed_form():
    """x ~ N(0, I) before, N(mu, I) after: w(x) = exp(mu.x - |mu|^2 / 2) exactly."""
    rng = np.random.default_rng(0)
    mu = np.array([0.5, -0.3, 0.0])
    before, after = rng.standard_normal((20_000, 3)), rng.standard_normal((20_000, 3)) + mu
    exact = np.exp(before @ mu - mu @ mu / 2)
    for features in ("linear", "quadratic", "spline"):
        w = context_density_ratio(before, after, features=features, normalize=False)
        assert np.corrcoef(np.log(w), np.log(exact))[0, 1] > 0.98, features
        assert np.median(np.abs(w / exact - 1)) < 0.1, features
        # an expectation under "after" from "before" rows: E_after[x] = mu
        np.testing.assert_allclose((w[:, None] * before).mean(axis=0) / w.mean(), mu, atol=0.05)


def test_density_ratio_errors_name_the_argument():
    x = np.zeros((10, 2))
    with pytest.raises(ValueError, match=r"^target: expected 2 columns \(as logged\), got 3$"):
        context_density_ratio(x, np.zeros((10, 3)))
    with pytest.raises(ValueError, match=r"^features: expected one of spline, linear, quadratic, got 'cubic'$"):
        context_density_ratio(x, x, features="cubic")


def test_context_weights_find_the_value_after_a_user_shift():
    """scm=user_shift: only p(x) moves at t = 50,000. A uniform log from before, reweighted by
    the estimated density ratio, is within 3 s.e. of the exact V_after; unweighted it is not."""
    world = World("user_shift", n_items=20, seed=0)
    log = simulate_log(world, RandomPolicy(n_actions=20, dim=world.obs_dim, seed=0), 30_000, seed=1)
    target = train_targets(["softmax"], world, seed=1, train_rounds=3000)["softmax"]
    after_x = observe(world, world.sample_users(30_000, np.random.default_rng(5), 50_000))
    w = context_density_ratio(log.feedback.context, after_x)
    v_after, v_after_se = population_value(world, target, 50_000, np.random.default_rng(4), t=50_000)
    v_before = log.truth(target)
    assert log.t == 0 and (log.feedback.t == 0).all()  # the log records its world time
    assert v_after - v_before > 0.05  # the shift matters for this target
    z = {}
    for name, cw in (("naive", None), ("corrected", w)):
        rec = {r.estimator: r for r in evaluate(log, [target], ["snipw", "ipw"], ci="normal", context_weight=cw).records}
        for est, r in rec.items():
            se = np.hypot((r.ci_high - r.ci_low) / (2 * 1.959964), v_after_se)
            z[name, est] = (r.estimate - v_after) / se
    assert abs(z["corrected", "snipw"]) < 3 and abs(z["corrected", "ipw"]) < 3, z
    assert z["naive", "snipw"] < -3 and z["naive", "ipw"] < -3, z
