"""Exact propensities in a confounded world: P(a | logged context) by quadrature over the
privileged signal against Monte Carlo, and the bias that remains is the confounding itself."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from recsim_causal.agents import LinUCB, RandomPolicy
from recsim_causal.ope.simulate import collect, train
from recsim_causal.ope import IPS, policy_value
from recsim_causal.ope.intervals import estimate_interval_from_terms
from recsim_causal.ope.inputs import reduce_dense
from recsim_causal.ope.propensity import marginal_action_probs, signal_quantile
from recsim_causal.ope.truth import ips_confounding_bias
from recsim_causal.scm import World

EPS = 0.2


@pytest.fixture(scope="module")
def confounded():
    world = World("confounded", n_items=50, seed=0, dtype="float64")
    logger = LinUCB(n_actions=50, dim=world.obs_dim + 1, alpha=1.0, seed=0)
    train(world, logger, 10_000, np.random.default_rng(3), privileged=True)
    return world, logger


def test_signal_distribution_is_closed_form_and_matches_draws(confounded):
    world, _ = confounded
    q, how = signal_quantile(world)
    assert how.startswith("closed form gaussian")
    draws = world.sample_users(200_000, np.random.default_rng(0)).values["intent_signal"][:, 0]
    u = np.array([0.01, 0.1, 0.5, 0.9, 0.99])
    np.testing.assert_allclose(q(u), np.quantile(draws, u), atol=0.02)  # intent_signal = intent + 0.3 noise


def test_exact_propensities_match_a_4000_draw_monte_carlo(confounded):
    world, logger = confounded
    users = world.sample_users(150, np.random.default_rng(5))
    x_full = world.observe(users, privileged=True).astype(np.float64)
    x = x_full[:, :-1]
    K = world.n_items
    probs, bound = marginal_action_probs(logger, x, signal_quantile(world)[0])
    a = logger.action_probs(x_full).argmax(axis=1)  # what the logger logs, without exploration
    rows = np.arange(len(x))
    exact = (1 - EPS) * probs[rows, a] + EPS / K
    # 4,000 stratified draws of the signal per row, from the world's own sampler (empirical quantiles)
    pool = np.sort(world.sample_users(1 << 20, np.random.default_rng(6)).values["intent_signal"][:, 0])
    rng = np.random.default_rng(7)
    plain = world.sample_users(4000, np.random.default_rng(8)).values["intent_signal"][:, 0]
    mc, mc_plain = np.empty(len(x)), np.empty(len(x))
    strata = np.quantile(pool, (np.arange(4000) + rng.random((len(x), 4000))) / 4000)  # row i: its 4,000 draws
    for i in rows:
        s = strata[i]
        mc[i] = logger.action_probs(np.c_[np.repeat(x[i : i + 1], 4000, 0), s])[:, a[i]].mean()
        mc_plain[i] = logger.action_probs(np.c_[np.repeat(x[i : i + 1], 4000, 0), plain])[:, a[i]].mean()
    rel = np.abs(exact / ((1 - EPS) * mc + EPS / K) - 1)
    assert np.median(rel) <= 0.01 and np.quantile(rel, 0.9) <= 0.03, (np.median(rel), np.quantile(rel, 0.9))
    # plain Monte Carlo agrees within its own noise, and the quadrature's bound is tiny
    se = np.sqrt(mc_plain * (1 - mc_plain) / 4000) + 1e-12
    assert np.mean(np.abs(probs[rows, a] - mc_plain) / se > 3.5) <= 0.02
    assert bound.max() < 1e-3
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.slow
def test_ips_bias_with_exact_propensities_is_the_confounding(confounded):
    world, logger = confounded
    fb, oracle = collect(world, logger, 20_000, EPS, np.random.default_rng(11))
    assert fb.pscore_full is not None and oracle.pscore_error_bound < 1e-3
    target = RandomPolicy(n_actions=world.n_items, dim=world.obs_dim, seed=0)
    pi_e = target.action_probs(fb.context)
    truth = policy_value(pi_e, fb.expected_reward)
    implied = ips_confounding_bias(pi_e, fb.expected_reward, oracle.pi_b_full, fb.action_dist)

    def bias_and_se(pscore):
        terms = IPS().terms(reduce_dense(action_dist=pi_e, reward=fb.reward, action=fb.action, pscore=pscore))
        half = estimate_interval_from_terms(terms, method="normal")
        return terms.value() - truth, (half["95.0% CI (upper)"] - half["95.0% CI (lower)"]) / 3.92

    naive, se = bias_and_se(fb.pscore)
    full, se_full = bias_and_se(fb.pscore_full)
    assert abs(naive - implied) < 3 * se, (naive, implied, se)  # exact P(a|x): the bias is the confounding
    assert abs(full) < 3 * se_full, (full, se_full)  # the logger's own pi_b(a|x,s): unbiased
    assert implied > 2 * se  # and the confounding is there to see


def _band_logger(center: float, half_width: float) -> LinUCB:
    """LinUCB on (x, s) with x = 1 whose arm 1 wins only for |s - center| < half_width: arm 0's
    UCB is sqrt(1 + (s - center)^2) (a norm with its minimum at the center), arm 1's a constant
    just above that minimum, arm 2 never wins."""
    logger = LinUCB(n_actions=3, dim=2, alpha=1.0, seed=0)
    logger.ridge.theta[:] = [[0.0, 0.0], [np.sqrt(1 + half_width**2), 0.0], [-10.0, 0.0]]
    logger.ridge.A_inv[:] = [[[1 + center**2, -center], [-center, 1.0]], 1e-20 * np.eye(2), 1e-20 * np.eye(2)]
    return logger


def test_a_band_narrower_than_a_grid_cell_is_found_and_the_bound_holds():
    # the band sits inside one cell of the 64-cell grid in u, with arm 0 at both of its ends:
    # comparing neighbouring nodes cannot see it; the certificate on the scores' slopes does
    phi = NormalDist()
    center, half = phi.inv_cdf(0.5 + 1 / 128), 0.004
    logger = _band_logger(center, half)
    q = lambda u: np.vectorize(phi.inv_cdf)(np.asarray(u, np.float64))  # noqa: E731
    probs, bound = marginal_action_probs(logger, np.ones((1, 1)), q)
    exact = phi.cdf(center + half) - phi.cdf(center - half)  # 0.0032
    assert abs(probs[0, 1] - exact) <= bound[0], (probs[0, 1], exact, bound[0])
    assert bound[0] < 1e-4
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.slow
def test_confounded_propensities_within_their_bound_against_a_dense_grid(confounded):
    # rows of a 5k-row log against a 2^15-point midpoint grid per row (its own error: at most
    # one cell per argmax switch, about 3e-5 each): the rows with the largest bounds and others
    world, logger = confounded
    users = world.sample_users(5_000, np.random.default_rng(12))
    x = world.observe(users, privileged=True).astype(np.float64)[:, :-1]
    q = signal_quantile(world)[0]
    probs, bound = marginal_action_probs(logger, x, q)
    G = 1 << 15
    s = q((np.arange(G) + 0.5) / G)
    rows = np.r_[np.argsort(bound)[-10:], np.random.default_rng(13).choice(len(x), 10, replace=False)]
    for i in rows:
        onehot = logger.action_probs(np.c_[np.repeat(x[i : i + 1], G, 0), s])
        switches = int((onehot[1:] != onehot[:-1]).any(axis=1).sum())
        err = np.abs(onehot.mean(axis=0) - probs[i]).max()
        assert err <= bound[i] + (switches + 1) / G, (i, err, bound[i], switches)
    assert bound.max() < 1e-3


def test_confounding_strength_scales_the_confounder_and_is_checked():
    import yaml

    from recsim_causal.scm.mechanisms import SCMConfigError
    from recsim_causal.scm.world import CONF_DIR

    cfg = yaml.safe_load((CONF_DIR / "scm" / "confounded.yaml").read_text())
    strong = World({**cfg, "confounding_strength": 2.5}, n_items=20, seed=0)
    draws = strong.sample_users(100_000, np.random.default_rng(0)).values
    assert np.std(draws["intent"]) == pytest.approx(2.5, rel=0.02)  # the confounder's spread
    assert np.std(draws["intent_signal"]) == pytest.approx(np.hypot(2.5, 0.3), rel=0.02)
    assert signal_quantile(strong)[1] == "closed form gaussian (mean 0, sd 2.518)"
    # an intervention on the confounder fixes it: nothing left to scale
    assert strong.do(intent=0.5).confounding_strength == 2.5
    for bad in (0, -1.0, True, "2"):
        with pytest.raises(SCMConfigError, match=r"^scm.confounding_strength: expected a number > 0, got "):
            World({**cfg, "confounding_strength": bad}, n_items=20)
    default = yaml.safe_load((CONF_DIR / "scm" / "default.yaml").read_text())
    with pytest.raises(SCMConfigError, match=r"^scm.confounding_strength: this world has no confounder to scale"):
        World({**default, "confounding_strength": 2.0}, n_items=20)


@pytest.mark.slow
def test_the_presets_logger_shows_the_bias_and_its_gamma_star_bounds_contain_the_truth():
    """scm=confounded with its own OPE logger (``ope_logger``: a softmax on the logged context and
    the signal): naive IPS misses the uniform target's truth by several standard errors at
    n = 20,000, the weak setting (strength 1) by far less, and the sharp bounds at the logger's
    true Gamma* (finite, small) contain the truth."""
    import yaml

    from recsim_causal.ope.sensitivity import gamma_star, sensitivity_bounds
    from recsim_causal.ope.simulate import simulate_log
    from recsim_causal.scm.world import CONF_DIR

    cfg = yaml.safe_load((CONF_DIR / "scm" / "confounded.yaml").read_text())
    assert cfg["confounding_strength"] == 3.0 and cfg["ope_logger"]["epsilon"] == 0.1
    ratio = {}
    for strength in (3.0, 1.0):
        world = World({**cfg, "confounding_strength": strength}, n_items=100, seed=0, dtype="float64")
        log = simulate_log(world, cfg["ope_logger"]["agent"], 20_000, epsilon=0.1, seed=0, train_rounds=5_000)
        fb, oracle = log.feedback, log.oracle
        pi_e = np.full((fb.n_rounds, 100), 0.01)
        truth = policy_value(pi_e, fb.expected_reward)
        terms = IPS().terms(reduce_dense(action_dist=pi_e, reward=fb.reward, action=fb.action, pscore=fb.pscore))
        se = float(terms.influence().std(ddof=1) / np.sqrt(fb.n_rounds))
        ratio[strength] = (terms.value() - truth) / se
        if strength == 3.0:
            star = gamma_star(oracle.pi_b_full, fb.action_dist, action=fb.action)["gamma_star"]
            assert 1.5 < star < 10, star
            b = sensitivity_bounds(fb.reward, fb.pscore, np.full(fb.n_rounds, 0.01), [1.0, star], method="zsb",
                                   n_bootstrap_samples=50, random_state=0)
            assert b.lower_ci_low[1] <= truth <= b.upper_ci_high[1] and not b.lower_ci_low[0] <= truth <= b.upper_ci_high[0]
            assert b.upper[1] - b.lower[1] < 0.8  # informative: far from [0, 1]
    assert ratio[3.0] > 4 and abs(ratio[1.0]) < ratio[3.0] / 2, ratio
