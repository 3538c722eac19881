"""Slate OPE: hand-computed estimators (numbers confirmed with OBP 0.5.7), exact propensities by
brute-force enumeration, and unbiasedness against the SCM's exact slate truth."""

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from recsim_causal.agents import EpsilonGreedy, LinUCB, Softmax
from recsim_causal.agents.slate import (
    GreedySlate,
    OwnSlate,
    PlackettLuceSlate,
    all_slates,
    pl_item_position_marginals,
    pl_item_position_quadrature,
    slate_item_position_matrix,
    slate_probs_all,
)
from recsim_causal.ope import (
    SelfNormalizedSlateIndependentIPS,
    SelfNormalizedSlateRewardInteractionIPS,
    SelfNormalizedSlateStandardIPS,
    SlateCascadeDoublyRobust,
    SlateIndependentIPS,
    SlateRewardInteractionIPS,
    SlateStandardIPS,
    estimate_all_slate,
    slate_long_format,
)
from recsim_causal.scm import World, load_scm_config
from recsim_causal.ope import slate_log as ope_slate
from recsim_causal.ope.slate_log import collect_slates, slate_truth

# Two slates of two slots, long format (OBP's layout).
HAND = dict(
    slate_id=np.array([0, 0, 1, 1]), reward=np.array([1.0, 0, 0, 1]), position=np.array([0, 1, 0, 1]),
    pscore=np.array([0.2, 0.2, 0.1, 0.1]), evaluation_policy_pscore=np.array([0.4, 0.4, 0.05, 0.05]),
    pscore_item_position=np.array([0.5, 0.4, 0.2, 0.5]),
    evaluation_policy_pscore_item_position=np.array([0.25, 0.8, 0.4, 0.5]),
    pscore_cascade=np.array([0.5, 0.2, 0.2, 0.1]), evaluation_policy_pscore_cascade=np.array([0.5, 0.4, 0.1, 0.05]),
    action=np.array([0, 1, 1, 0]), q_hat=np.array([0.5, 0.2, 0.1, 0.3, 0.4, 0.6, 0.2, 0.2]),
    evaluation_policy_action_dist=np.array([0.5, 0.5, 1, 0, 0.2, 0.8, 0.5, 0.5]),
)  # fmt: skip


@pytest.mark.parametrize("cls, expected", [
    # (1 * 0.4/0.2 + 1 * 0.05/0.1) / 2 slates
    (SlateStandardIPS, (2.0 + 0.5) / 2),
    # (1 * 0.25/0.5 + 1 * 0.5/0.5) / 2
    (SlateIndependentIPS, (0.5 + 1.0) / 2),
    # (1 * 0.5/0.5 + 1 * 0.05/0.1) / 2
    (SlateRewardInteractionIPS, (1.0 + 0.5) / 2),
    # weights 2, 2, .5, .5 (mean 1.25): (2 + .5) / 1.25 / 2
    (SelfNormalizedSlateStandardIPS, 2.5 / 1.25 / 2),
    # position 0 weights .5, 2 (mean 1.25); position 1 weights 2, 1 (mean 1.5)
    (SelfNormalizedSlateIndependentIPS, (0.5 / 1.25 + 1.0 / 1.5) / 2),
    # position 0 weights 1, .5 (mean .75); position 1 weights 2, .5 (mean 1.25)
    (SelfNormalizedSlateRewardInteractionIPS, (1.0 / 0.75 + 0.5 / 1.25) / 2),
])
def test_hand_computed_slate_estimators(cls, expected):
    assert cls(len_list=2).estimate_policy_value(**HAND) == pytest.approx(expected, abs=1e-15)


def test_hand_computed_cascade_dr():
    # rows: w = 1, 2, .5, .5; w_prev = 1, 1, 1, .5; qhat(a_obs) = .5, .3, .6, .2; E_pi qhat = .35, .1, .56, .2
    rows = [1 * (1 - 0.5) + 1 * 0.35, 2 * (0 - 0.3) + 1 * 0.1, 0.5 * (0 - 0.6) + 1 * 0.56, 0.5 * (1 - 0.2) + 0.5 * 0.2]
    est = SlateCascadeDoublyRobust(len_list=2, n_unique_action=2).estimate_policy_value(**HAND)
    assert est == pytest.approx(sum(rows) / 2, abs=1e-15) and est == pytest.approx(0.555)


def test_order_of_rows_does_not_matter_and_intervals_resample_slates():
    perm = np.array([3, 0, 2, 1])
    shuffled = {k: v[perm] for k, v in HAND.items() if k not in ("q_hat", "evaluation_policy_action_dist")}
    for cls in (SlateStandardIPS, SelfNormalizedSlateIndependentIPS, SelfNormalizedSlateRewardInteractionIPS):
        assert cls(len_list=2).estimate_policy_value(**shuffled) == pytest.approx(cls(len_list=2).estimate_policy_value(**HAND))
    ci = SlateStandardIPS(len_list=2).estimate_interval(**HAND, n_bootstrap_samples=500, random_state=0)
    # two slates worth 2 and .5: every resample is (k * 2 + (2 - k) * .5) / 2 for k in 0..2
    assert ci["95.0% CI (lower)"] == pytest.approx(0.5) and ci["95.0% CI (upper)"] == pytest.approx(2.0)


@pytest.mark.parametrize("arrays, message", [
    (dict(HAND, position=np.array([0, 0, 0, 1])), r"^position: must not be duplicated in each slate$"),
    (dict(HAND, pscore=np.array([0.2, 0.3, 0.1, 0.1])), r"^pscore: must be unique in each slate"),
    (dict(HAND, pscore_cascade=np.array([0.2, 0.5, 0.2, 0.1])), r"^pscore_cascade: must be a non-increasing"),
    (dict(HAND, pscore=np.array([0.0, 0.0, 0.1, 0.1])), r"^pscore: must be in the range \(0, 1\]"),
    (dict(HAND, reward=np.array([1.0, np.nan, 0, 1])), r"^reward"),
    (dict(HAND, position=np.array([0, 2, 0, 1])), r"^position: expected values in \[0, len_list=2\)"),
])
def test_bad_slate_input_is_named(arrays, message):
    est = (SlateRewardInteractionIPS if "cascade" in message else SlateStandardIPS)(len_list=2)
    with pytest.raises(ValueError, match=message):
        est.estimate_policy_value(**arrays)


# --------------------------------------------------------------------------- propensities
class FixedPolicy:
    """pi(a | x) = softmax(x W): a fixed, context-dependent distribution."""

    def __init__(self, n_actions, dim, seed, scale=2.0):
        self.n_actions = n_actions
        self.W = np.random.default_rng(seed).normal(scale=scale, size=(dim, n_actions))

    def action_probs(self, x):
        z = x @ self.W
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("K, L", [(5, 2), (6, 3), (5, 5)])
def test_propensities_are_exact_against_brute_force_enumeration(K, L):
    rng = np.random.default_rng(K * 10 + L)
    probs = rng.dirichlet(np.full(K, 0.3), size=7)
    probs = np.maximum(probs, 1e-5)
    probs /= probs.sum(axis=1, keepdims=True)
    slates = all_slates(K, L)
    assert len(slates) == math.perm(K, L)
    for policy in (PlackettLuceSlate(FixedPolicy(K, 2, 0), L), GreedySlate(FixedPolicy(K, 2, 0), L)):
        p_all = slate_probs_all(policy, probs, slates)  # (rows, every slate)
        np.testing.assert_allclose(p_all.sum(axis=1), 1.0, atol=1e-12)
        # marginals by brute force: sum the probabilities of the slates with item j at position l
        marg = np.stack([p_all @ (slates[:, pos][:, None] == np.arange(K)) for pos in range(L)], axis=2)
        logged = slates[rng.integers(len(slates), size=7)]
        props = policy.propensities(probs, logged)
        rows = np.arange(7)[:, None]
        np.testing.assert_allclose(props["pscore_item_position"], marg[rows, logged, np.arange(L)], atol=1e-12)
        np.testing.assert_allclose(props["pscore"], p_all[np.arange(7), [np.flatnonzero((slates == s).all(1))[0] for s in logged]])
        for pos in range(L):  # a prefix's probability: the sum over the slates that start with it
            starts = (slates[None, :, : pos + 1] == logged[:, None, : pos + 1]).all(axis=2)
            np.testing.assert_allclose(props["pscore_cascade"][:, pos], (p_all * starts).sum(axis=1), atol=1e-12)


def test_plackett_luce_quadrature_matches_enumeration_to_2e10_relative():
    rng = np.random.default_rng(0)
    for K, L, conc, floor in [(8, 4, 0.05, 1e-4), (9, 3, 0.1, 1e-9), (7, 4, 1.0, 0.0)]:
        probs = np.maximum(rng.dirichlet(np.full(K, conc), size=20), floor + 1e-300)
        probs /= probs.sum(axis=1, keepdims=True)
        exact = slate_item_position_matrix(probs, L)
        items = np.tile(np.arange(K), (20, L))
        pos = np.repeat(np.arange(L), K)[None].repeat(20, axis=0)
        approx, err = pl_item_position_quadrature(probs, items, pos)
        ref = exact[np.arange(20)[:, None], items, pos]
        assert (np.abs(approx - ref) / ref).max() < 2e-10
        assert err < 1e-3  # the conservative a-posteriori estimate


def _uneven(rng, K, n, tiny=(1e-9, 1e-6)):
    """Dirichlet(0.3) rows with a few tiny entries, shuffled."""
    probs = rng.dirichlet(np.full(K, 0.3), size=n)
    probs[:, : len(tiny)] = tiny
    probs = rng.permuted(probs, axis=1)
    return probs / probs.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("K, L", [(7, 3), (9, 4)])
def test_all_pairs_marginals_match_enumeration(K, L):
    """Every item at every position (forward-backward quadrature) against the enumeration of all
    ordered prefixes; measured: 1.2e-11 (K=7), 1.7e-10 (K=9) relative."""
    probs = _uneven(np.random.default_rng(K * 10 + L), K, 12)
    marg = pl_item_position_marginals(probs, L)
    exact = slate_item_position_matrix(probs, L)
    assert marg.shape == (12, K, L)
    np.testing.assert_array_equal(marg[:, :, 0], probs)
    assert (np.abs(marg - exact) / exact).max() < 1e-9
    np.testing.assert_allclose(marg.sum(axis=1), 1.0, atol=1e-12)  # someone is at each position
    assert marg.sum(axis=2).max() <= 1.0 + 1e-12  # an item is at one position at most


def test_all_pairs_marginals_match_exact_rational_enumeration_down_to_the_last_position():
    """K = L = 6 with entries of 1e-9 and 1e-6: every ordered slate's probability in exact rational
    arithmetic (float enumeration loses digits here: 1 - the mass above cancels). Measured:
    3.3e-9 relative at worst, on an entry of 3e-21; 1.1e-10 on the entries above 1e-6."""
    K = L = 6
    probs = _uneven(np.random.default_rng(66), K, 6)
    exact = np.zeros((6, K, L))
    for b, row in enumerate(probs):
        weights = [Fraction(p) for p in row]
        for slate in itertools.permutations(range(K)):
            prob, left = Fraction(1), sum(weights)
            for k in slate:
                prob *= weights[k] / left
                left -= weights[k]
            exact[b, list(slate), np.arange(L)] += float(prob)
    rel = np.abs(pl_item_position_marginals(probs, L) - exact) / exact
    assert rel.max() < 1e-8 and rel[exact > 1e-6].max() < 1e-9


def test_all_pairs_marginals_match_the_pairwise_quadrature_at_100_items():
    """K=100, L=5: the all-pairs marginals against the one-pair-at-a-time quadrature (a dynamic
    programme over the other items for each pair) on random pairs; and the sums."""
    rng = np.random.default_rng(5)
    B, K, L = 16, 100, 5
    probs = 0.95 * _uneven(rng, K, B) + 0.05 * rng.dirichlet(np.ones(K), size=B)
    probs[3] = 0.999 * np.eye(K)[7] + 0.001 / K  # one peaked row: a long log-time range
    probs /= probs.sum(axis=1, keepdims=True)
    marg = pl_item_position_marginals(probs, L)
    items, positions = rng.integers(K, size=(B, 40)), rng.integers(L, size=(B, 40))
    pairwise, _ = pl_item_position_quadrature(probs, items, positions)
    assert (np.abs(marg[np.arange(B)[:, None], items, positions] - pairwise) / pairwise).max() < 1e-12
    np.testing.assert_allclose(marg.sum(axis=1), 1.0, atol=1e-9)
    assert marg.sum(axis=2).max() <= 1.0 + 1e-12
    with pytest.raises(ValueError, match=r"^probs: item-position marginals need at least slate_size=5 positive"):
        pl_item_position_marginals(np.eye(K)[:2], L)


def test_plackett_luce_samples_follow_the_reported_marginals():
    """K=30, L=4 (quadrature): 100k sampled slates vs the reported item-position marginals."""
    K, L, n = 30, 4, 100_000
    probs = np.random.default_rng(1).dirichlet(np.full(K, 0.5))[None]
    policy = PlackettLuceSlate(FixedPolicy(K, 2, 0), L)
    slates = policy.sample(np.repeat(probs, n, 0), np.random.default_rng(2))
    top = np.argsort(-probs[0])[:L]
    marg = policy.item_position(probs, top[None])[0]
    freq = (slates == top[None]).mean(axis=0)
    assert np.all(np.abs(freq - marg) < 4 * np.sqrt(marg * (1 - marg) / n))


# --------------------------------------------------------------------------- unbiasedness vs the SCM
def _world(model):
    cfg = load_scm_config("position_bias")
    cfg["slate"] = {**cfg["slate"], "model": model}
    return World(cfg, n_items=6, seed=0, slate_size=3, dtype="float64")


@pytest.mark.parametrize("model, unbiased", [("pbm", ("sips", "iips", "rips", "cascade-dr")),
                                             ("cascade", ("sips", "rips", "cascade-dr"))])
def test_slate_estimators_are_unbiased_against_the_exact_truth(model, unbiased):
    """Each logged slate's term minus the exact value for its user: mean within 3 s.e. of 0
    (20k slates, i.e. many repetitions of a 1k-slate log). IIPS is unbiased under the PBM only."""
    world = _world(model)
    K, L, n = world.n_items, world.slate_size, 20_000
    logger = PlackettLuceSlate(FixedPolicy(K, world.obs_dim, 1, scale=0.5), L, epsilon=0.2)
    target = PlackettLuceSlate(FixedPolicy(K, world.obs_dim, 2, scale=0.7), L)
    log, batches = collect_slates(world, logger, n, np.random.default_rng(3))
    probs = target.probs(log.context)
    props = target.propensities(probs, log.slates)
    # exact per-user truth by enumerating all 120 slates
    slates = all_slates(K, L)
    per_user, start = [], 0
    for users in batches:
        p = slate_probs_all(target, probs[start : start + users.n], slates)
        rep = users.take(np.repeat(np.arange(users.n), len(slates)))
        v = world.expected_slate_reward(rep, np.tile(slates, (users.n, 1))).sum(axis=1).reshape(users.n, -1)
        per_user.append((p * v).sum(axis=1))
        start += users.n
    per_user = np.concatenate(per_user)
    truth, _, method = slate_truth(world, batches, log, target, 1, np.random.default_rng(0))
    assert method == "enumeration" and truth == pytest.approx(per_user.mean(), rel=1e-12)
    q_hat = np.tile(world.expected_reward(world.sample_users(1, np.random.default_rng(0))), (n * L, 1)) * 0.5
    arrays = slate_long_format(
        reward=log.slot_reward, action=log.slates, pscore=log.pscore, pscore_cascade=log.pscore_cascade,
        pscore_item_position=log.pscore_item_position, evaluation_policy_pscore=props["pscore"],
        evaluation_policy_pscore_cascade=props["pscore_cascade"],
        evaluation_policy_pscore_item_position=props["pscore_item_position"],
        evaluation_policy_action_dist=target.conditional_dists(probs, log.slates))
    arrays["q_hat"] = q_hat
    ests = {"sips": SlateStandardIPS(len_list=L), "iips": SlateIndependentIPS(len_list=L),
            "rips": SlateRewardInteractionIPS(len_list=L), "cascade-dr": SlateCascadeDoublyRobust(len_list=L, n_unique_action=K)}
    for name in unbiased:
        d = ests[name].parts(**arrays)[0].num - per_user  # per-slate term minus that user's exact value
        z = d.mean() / (d.std(ddof=1) / np.sqrt(n))
        assert abs(z) < 3, (name, model, z)


def test_estimate_all_slate_shares_one_grouping_and_matches_each_estimator():
    ests = [SlateStandardIPS(len_list=2), SelfNormalizedSlateRewardInteractionIPS(len_list=2),
            SlateCascadeDoublyRobust(len_list=2, n_unique_action=2)]
    estimates, intervals = estimate_all_slate(ests, n_bootstrap_samples=100, random_state=0, **HAND)
    for e in ests:
        assert estimates[e.estimator_name] == pytest.approx(e.estimate_policy_value(**HAND))
        assert intervals[e.estimator_name]["95.0% CI (lower)"] <= intervals[e.estimator_name]["95.0% CI (upper)"]
    normal = SlateStandardIPS(len_list=2).estimate_interval(**HAND, method="normal")
    assert normal["mean"] == pytest.approx(1.25)


@pytest.mark.parametrize("model", ["pbm", "cascade"])
def test_slate_truth_matches_on_policy_simulation(model):
    """The exact truth (enumeration; greedy: one slate) against the clicks the world actually
    draws when the target itself shows its slates: within 3 s.e."""
    world = _world(model)
    for target in (PlackettLuceSlate(FixedPolicy(6, world.obs_dim, 2, scale=0.7), 3),
                   GreedySlate(FixedPolicy(6, world.obs_dim, 3), 3)):
        log, batches = collect_slates(world, target, 20_000, np.random.default_rng(4))
        truth, truth_se, method = slate_truth(world, batches, log, target, 1, np.random.default_rng(0))
        assert truth_se == 0 and method in ("enumeration", "exact")
        clicks = log.slot_reward.sum(axis=1)
        assert abs(clicks.mean() - truth) < 3 * clicks.std(ddof=1) / np.sqrt(len(clicks))


# --------------------------------------------------------------------------- exact pbm truth by marginals
def _gated_pbm_world(n_items, slate_size):
    """The default preset (purchase gated on click) with a pbm slate model and a two-response reward."""
    cfg = load_scm_config("default")
    cfg["slate"] = {"model": "pbm", "examination": [1.0, 0.7, 0.5, 0.35, 0.25]}
    cfg["reward"] = {"click": 1.0, "purchase": 3.0}
    return World(cfg, n_items=n_items, seed=0, slate_size=slate_size, dtype="float64")


def test_expected_slot_rewards_agree_with_expected_slate_reward():
    world = _gated_pbm_world(20, 4)
    users = world.sample_users(50, np.random.default_rng(0))
    slates = np.argsort(np.random.default_rng(1).random((50, 20)), axis=1)[:, :4]
    slot = world.expected_slot_rewards(users)
    assert slot.shape == (50, 20, 4)
    np.testing.assert_allclose(slot[np.arange(50)[:, None], slates, np.arange(4)],
                               world.expected_slate_reward(users, slates), rtol=1e-13)
    with pytest.raises(ValueError, match=r"^expected_slot_rewards: needs the position-based model"):
        _world("cascade").expected_slot_rewards(users)


def test_pbm_truth_by_marginals_equals_enumeration(monkeypatch):
    """K=7, L=3 (210 slates): the truth from the marginals (enumeration switched off) against the
    truth from every slate's probability and exact expected reward; gated two-response reward."""
    world = _gated_pbm_world(7, 3)
    target = PlackettLuceSlate(FixedPolicy(7, world.obs_dim, 2, scale=1.5), 3)
    log, batches = collect_slates(world, target, 3000, np.random.default_rng(6))
    enumerated, se, method = slate_truth(world, batches, log, target, 1, np.random.default_rng(0))
    assert method == "enumeration" and se == 0
    monkeypatch.setattr(ope_slate, "TRUTH_ENUMERATION_LIMIT", 0)
    exact, se, method = slate_truth(world, batches, log, target, 1, np.random.default_rng(0))
    assert method == "marginals" and se == 0
    assert exact == pytest.approx(enumerated, rel=1e-9)


def test_pbm_truth_by_marginals_within_4se_of_monte_carlo_at_100_items():
    """K=100, L=5: the exact truth against slates drawn from the target and their exact expected
    rewards (64 per user); the cascade keeps its Monte-Carlo truth."""
    world = World(load_scm_config("position_bias"), n_items=100, seed=0, slate_size=5, dtype="float64")
    target = PlackettLuceSlate(FixedPolicy(100, world.obs_dim, 2, scale=1.0), 5, epsilon=0.05)
    log, batches = collect_slates(world, target, 1000, np.random.default_rng(7))
    exact, se, method = slate_truth(world, batches, log, target, 32, np.random.default_rng(0))
    assert method == "marginals" and se == 0
    rng, draws, start = np.random.default_rng(8), [], 0
    for users in batches:
        probs = target.probs(log.context[start : start + users.n])
        start += users.n
        draws.append(np.stack([world.expected_slate_reward(users, target.sample(probs, rng)).sum(axis=1)
                               for _ in range(64)], axis=1))
    draws = np.concatenate(draws)  # (users, 64): the s.e. is the draws' only, given these users
    mc, mc_se = draws.mean(), np.sqrt((draws.var(axis=1, ddof=1) / 64).sum()) / len(draws)
    assert abs(exact - mc) < 4 * mc_se, (exact, mc, mc_se)
    cfg = load_scm_config("position_bias")
    cfg["slate"] = {**cfg["slate"], "model": "cascade"}
    cascade = World(cfg, n_items=100, seed=0, slate_size=5, dtype="float64")
    log, batches = collect_slates(cascade, target, 200, np.random.default_rng(7))
    _, se, method = slate_truth(cascade, batches, log, target, 8, np.random.default_rng(0))
    assert method == "monte_carlo" and se > 0


def test_marginals_of_a_near_deterministic_plackett_luce():
    """A learned slate policy can put all but 1e-18 of its mass on one item, so 1 - p rounds to 0
    in floats. Every path (enumeration, pairwise and all-pairs quadrature) against exact rational
    enumeration at K = 6; at K = 100 every position is filled exactly once (sums to 1)."""
    rng = np.random.default_rng(3)
    K, L = 6, 3
    logits = rng.normal(size=(4, K)) * np.array([[20.0], [30.0], [40.0], [80.0]])
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    exact = np.zeros((4, K, L))
    for b, row in enumerate(probs):
        weights = [Fraction(p) for p in row]
        for slate in itertools.permutations(range(K), L):
            prob, left = Fraction(1), sum(weights)
            for k in slate:
                prob *= weights[k] / left
                left -= weights[k]
            exact[b, list(slate), np.arange(L)] += float(prob)
    items = np.tile(np.arange(K), (4, L))
    positions = np.repeat(np.arange(L), K)[None].repeat(4, axis=0)
    for marg in (pl_item_position_marginals(probs, L), slate_item_position_matrix(probs, L),
                 pl_item_position_quadrature(probs, items, positions)[0].reshape(4, L, K).transpose(0, 2, 1)):
        assert (np.abs(marg - exact) / exact).max() < 1e-9
    big = rng.normal(size=(8, 100)) * 80.0
    big = np.exp(big - big.max(axis=1, keepdims=True))
    big /= big.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(pl_item_position_marginals(big, 5).sum(axis=1), 1.0, atol=1e-9)


class _Sparse:
    """A user's policy without slates of its own: two items of positive probability (row 2:
    uniform), so Plackett-Luce fills the third slot uniformly from the others."""

    n_actions = 6

    def action_probs(self, x):
        p = np.zeros((len(x), 6))
        p[:, 0], p[:, 1] = 0.7, 0.3
        p[2] = 1 / 6
        return p


@pytest.mark.parametrize("make", [
    lambda: _trained(EpsilonGreedy(6, 3, epsilon=0.3, linear=True)),
    lambda: _trained(LinUCB(6, 3)),
    lambda: _trained(Softmax(6, 3, tau=0.5, linear=True)),
    lambda: _Sparse(),
])
@pytest.mark.parametrize("ties", [False, True])
def test_own_slates_item_position_marginals_match_enumeration(make, ties):
    """OwnSlate's item-position marginals (epsilon-greedy rank DP averaged over tie groups,
    Plackett-Luce with the uniform fill) against brute force: every one of the 120 slates of 3
    out of 6, its probability the product of the policy's own conditionals (act_slate's)."""
    policy = make()
    own = OwnSlate(policy, 3)
    base = own.probs(np.random.default_rng(0).normal(size=(4, 3)))
    if ties and not isinstance(policy, _Sparse):  # tied scores: two items, and a whole row
        base = base.copy()
        base[:, 2], base[1] = base[:, 4], 0.0
    slates = all_slates(6, 3)
    brute = np.zeros((4, 6, 3))
    for b in range(4):
        p = own.cascade(np.repeat(base[b : b + 1], len(slates), 0), slates)[:, -1]
        for pos in range(3):
            np.add.at(brute[b, :, pos], slates[:, pos], p)
    np.testing.assert_allclose(brute.sum(axis=1), 1.0, atol=1e-12)
    asked = np.stack([np.random.default_rng(b).permutation(6)[:3] for b in range(4)])
    got = own.item_position(base, asked)
    np.testing.assert_allclose(got, brute[np.arange(4)[:, None], asked, np.arange(3)[None]], atol=1e-14)


def _trained(policy):
    x = np.random.default_rng(1).normal(size=(6, 3))
    policy.update(x, np.array([0, 1, 2, 0, 1, 2]), np.array([1.0, 0, 1, 0, 1, 1]))
    return policy
