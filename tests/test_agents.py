"""The Policy contract for every built-in agent: distributions, propensities, sampling, slates,
the ridge state's exact updates, and one-line validation errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import recsim_causal.agents
from recsim_causal.agents import (
    BasePolicy,
    EpsilonGreedy,
    LinearThompsonSampling,
    LinUCB,
    Policy,
    RandomPolicy,
    RidgeState,
    Softmax,
    ThompsonSampling,
    check_action_probs,
    check_actions,
    check_policy,
    greedy_act,
    greedy_probs,
    validate_policy_output,
)

K, D = 5, 3

FACTORIES = {
    "random": lambda: RandomPolicy(K, seed=1),
    "eps": lambda: EpsilonGreedy(K, epsilon=0.2, seed=1),
    "eps_linear": lambda: EpsilonGreedy(K, D, epsilon=0.2, linear=True, seed=1),
    "softmax": lambda: Softmax(K, tau=0.2, seed=1),
    "softmax_linear": lambda: Softmax(K, D, tau=0.2, linear=True, seed=1),
    "linucb": lambda: LinUCB(K, D, alpha=0.5, seed=1),
    "ts": lambda: ThompsonSampling(K, seed=1),
    "lints": lambda: LinearThompsonSampling(K, D, v=0.5, seed=1),
}


def trained(key: str, n_rounds: int = 60) -> BasePolicy:
    """A policy after a few rounds of feedback whose mean depends on the arm and the context."""
    policy = FACTORIES[key]()
    rng = np.random.default_rng(123)
    for _ in range(n_rounds // 4):
        x = rng.normal(size=(4, D)).astype(np.float32)
        actions, _ = policy.act(x, rng)
        p = 1.0 / (1.0 + np.exp(-(0.5 * actions - 1.0 + x[:, 0])))
        policy.update(x, actions, (rng.random(4) < p).astype(float))
    return policy


def contexts(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)


# --------------------------------------------------------------------------- the contract


@pytest.mark.parametrize("key", FACTORIES)
def test_action_probs_is_a_distribution(key):
    policy = trained(key)
    probs = policy.action_probs(contexts(7))
    assert probs.shape == (7, K) and probs.dtype == np.float64
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert isinstance(policy, Policy)
    check_policy(policy, contexts(7), np.random.default_rng(0))


@pytest.mark.parametrize("key", FACTORIES)
def test_pscore_equals_action_probs_of_the_chosen_action(key):
    # exact for every built-in policy, Monte-Carlo ones included: they act from the very
    # distribution they report (see LinearThompsonSampling / ThompsonSampling docstrings)
    policy = trained(key)
    x = contexts(200, seed=1)
    actions, pscores = policy.act(x, np.random.default_rng(5))
    assert actions.dtype == np.int64 and pscores.dtype == np.float64
    probs = policy.action_probs(x)
    np.testing.assert_array_equal(pscores, probs[np.arange(200), actions])
    assert (pscores > 0).all()


@pytest.mark.parametrize("key", FACTORIES)
def test_act_frequencies_match_action_probs(key):
    policy = trained(key)
    n = 20_000
    x = np.repeat(contexts(1, seed=2), n, axis=0)
    probs = policy.action_probs(x[:1])[0]
    actions, _ = policy.act(x, np.random.default_rng(9))
    freq = np.bincount(actions, minlength=K) / n
    se = np.sqrt(probs * (1 - probs) / n)
    assert (np.abs(freq - probs) <= 5 * se + 1e-12).all(), (freq, probs)
    assert (freq[probs == 0] == 0).all()


@pytest.mark.parametrize("key", ["linucb", "eps_linear", "softmax_linear", "lints"])
def test_action_probs_do_not_depend_on_batching(key):
    # a runner logs pscores one user at a time; OPE recomputes action_probs in one batch. The
    # scores differ in the last bits between the two (BLAS), which must not move a greedy or
    # Monte-Carlo distribution; softmax, a smooth map, moves by rounding only.
    for policy in (FACTORIES[key](), trained(key)):  # untrained: all arms tied
        x = contexts(40, seed=6)
        rows = np.concatenate([policy.action_probs(x[i : i + 1]) for i in range(40)])
        if key == "softmax_linear":
            np.testing.assert_allclose(policy.action_probs(x), rows, rtol=1e-12)
        else:
            np.testing.assert_array_equal(policy.action_probs(x), rows)


def test_mc_action_probs_are_reproducible_and_close_to_thompson():
    # LinTS: deterministic given the seed; within MC error of an independent 200k-draw estimate
    policy = trained("lints")
    x = contexts(3, seed=4)
    first = policy.action_probs(x)
    np.testing.assert_array_equal(first, policy.action_probs(x))
    np.testing.assert_array_equal(first, trained("lints").action_probs(x))
    scores = np.stack([policy.sample_scores(x, np.random.default_rng(s)) for s in range(20_000)])
    exact = np.stack([np.bincount(scores[:, i].argmax(1), minlength=K) for i in range(3)]) / 20_000
    n = policy.n_mc_draws
    se = np.sqrt(exact * (1 - exact) * (1 / n + 1 / 20_000))
    assert (np.abs(first - exact) <= 5 * se + 1e-3).all(), (first, exact)
    # Beta TS: same two properties for the context-free posterior
    ts = trained("ts")
    probs = ts.action_probs(x)[0]
    np.testing.assert_array_equal(probs, trained("ts").action_probs(x)[0])
    draws = np.random.default_rng(0).beta(ts.alpha, ts.beta, size=(200_000, K))
    exact = np.bincount(draws.argmax(1), minlength=K) / 200_000
    se = np.sqrt(exact * (1 - exact) * (1 / ts.n_mc_draws + 1 / 200_000))
    assert (np.abs(probs - exact) <= 5 * se + 1e-3).all(), (probs, exact)
    assert exact.max() > 0.5  # the posterior has moved: a stale table would fail the check above


def test_lints_pruning_gives_identical_probs():
    policy = trained("lints")
    rng = np.random.default_rng(3)
    mean = rng.normal(size=(300, K))
    sd = rng.uniform(0.05, 0.5, size=(300, K))
    pruned = np.concatenate([policy._mc_probs(mean[i : i + 1], sd[i : i + 1]) for i in range(300)])
    np.testing.assert_array_equal(pruned, policy._mc_probs(mean, sd, prune=False))
    assert ((pruned > 0) & (pruned < 0.01)).any() and (pruned == 0).any()  # the boundary is exercised


def test_lints_posterior_is_v_scaled_ridge_posterior():
    policy = trained("lints")
    x = contexts(4).astype(np.float64)
    mean, sd = policy.posterior(x)
    r = policy.ridge
    np.testing.assert_allclose(mean, x @ r.theta.T, rtol=1e-12)
    np.testing.assert_allclose(sd, 0.5 * np.sqrt(np.einsum("bi,kij,bj->bk", x, r.A_inv, x)), rtol=1e-12)


def test_deterministic_policy_splits_ties():
    policy = LinUCB(K, D)  # untrained: every arm has the same UCB
    x = contexts(4)
    np.testing.assert_array_equal(policy.action_probs(x), np.full((4, K), 1 / K))
    actions, pscores = policy.act(np.repeat(x[:1], 10_000, axis=0), np.random.default_rng(0))
    np.testing.assert_array_equal(pscores, 1 / K)
    freq = np.bincount(actions, minlength=K) / 10_000
    assert np.abs(freq - 1 / K).max() < 5 * np.sqrt(0.2 * 0.8 / 10_000)

    scores = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 1.0, 0.0, -1.0], [5.0, 5.0, 5.0, 5.0]])
    expected = np.array([[0, 0.5, 0.5, 0], [1, 0, 0, 0], [0.25] * 4])
    np.testing.assert_array_equal(greedy_probs(scores), expected)
    actions, pscores = greedy_act(scores, np.random.default_rng(0))
    np.testing.assert_array_equal(pscores, expected[np.arange(3), actions])
    # near-ties within rounding count as ties, so batched and one-row scoring agree
    assert greedy_probs(np.array([[1.0, 1.0 + 1e-15, 0.0]]))[0, 0] == 0.5


def test_epsilon_greedy_probs_formula():
    policy = EpsilonGreedy(4, epsilon=0.3)
    policy.update(contexts(2)[:, :1], np.array([2, 1]), np.array([1.0, 0.5]))
    np.testing.assert_allclose(policy.action_probs(np.zeros((1, 1)))[0], [0.075, 0.075, 0.775, 0.075])


def test_softmax_probs_formula():
    policy = Softmax(3, tau=0.5)
    policy.update(np.zeros((3, 1)), np.array([0, 1, 2]), np.array([0.0, 0.5, 1.0]))
    expected = np.exp(np.array([0.0, 1.0, 2.0]))
    np.testing.assert_allclose(policy.action_probs(np.zeros((1, 1)))[0], expected / expected.sum())


def test_thompson_fractional_rewards_update_beta_counts():
    policy = ThompsonSampling(3, alpha0=2.0, beta0=1.0)
    policy.update(np.zeros((3, 1)), np.array([0, 0, 2]), np.array([0.25, 1.0, 0.0]))
    np.testing.assert_allclose(policy.alpha, [3.25, 2.0, 2.0])
    np.testing.assert_allclose(policy.beta, [1.75, 1.0, 2.0])
    with pytest.raises(ValueError, match=r"ThompsonSampling\.update: rewards must be in \[0, 1\]"):
        policy.update(np.zeros((1, 1)), np.array([0]), np.array([1.5]))


def test_rng_argument_drives_act():
    policy = trained("softmax")
    x = contexts(50)
    a1, _ = policy.act(x, np.random.default_rng(3))
    a2, _ = policy.act(x, np.random.default_rng(3))
    a3, _ = policy.act(x, np.random.default_rng(4))
    np.testing.assert_array_equal(a1, a2)
    assert not np.array_equal(a1, a3)


# --------------------------------------------------------------------------- ridge state


def _direct_ridge(x, actions, rewards, n_actions, lambda_):
    dim = x.shape[1]
    a_inv = np.empty((n_actions, dim, dim))
    theta = np.empty((n_actions, dim))
    for arm in range(n_actions):
        xa = x[actions == arm]
        a_inv[arm] = np.linalg.inv(lambda_ * np.eye(dim) + xa.T @ xa)
        theta[arm] = a_inv[arm] @ (xa.T @ rewards[actions == arm])
    return a_inv, theta


def test_sherman_morrison_matches_direct_inverse():
    rng = np.random.default_rng(0)
    n_actions, dim, lambda_ = 4, 6, 0.7
    x = rng.normal(size=(800, dim))
    actions = rng.integers(n_actions, size=800)
    rewards = rng.random(800)
    state = RidgeState(n_actions, dim, lambda_)
    for i in range(800):
        state.update_one(x[i], int(actions[i]), float(rewards[i]))
    a_inv, theta = _direct_ridge(x, actions, rewards, n_actions, lambda_)
    np.testing.assert_allclose(state.A_inv, a_inv, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(state.theta, theta, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(state.A, np.linalg.inv(a_inv), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("batch_size", [2, 7, 40, 333])
def test_batched_update_equals_sequential(batch_size):
    # batch 2 and 7 (d=10, K=6): mostly Woodbury; 40: a mix; 333: fresh inverses
    rng = np.random.default_rng(batch_size)
    n_actions, dim = 6, 10
    x = rng.normal(size=(999, dim))
    actions = rng.integers(n_actions, size=999)
    rewards = rng.random(999)
    sequential = RidgeState(n_actions, dim, 1.0)
    batched = RidgeState(n_actions, dim, 1.0)
    for i in range(999):
        sequential.update_one(x[i], int(actions[i]), float(rewards[i]))
    for start in range(0, 999, batch_size):
        s = slice(start, start + batch_size)
        batched.update(x[s], actions[s], rewards[s])
    for key in ("A", "A_inv", "b", "theta"):
        np.testing.assert_allclose(getattr(batched, key), getattr(sequential, key), rtol=1e-9, atol=1e-11)


def test_woodbury_and_fresh_inverse_paths_agree():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 8))
    actions = np.r_[np.zeros(3, int), np.ones(20, int), np.full(7, 2)]  # ranks 3, 20, 7 on d=8
    rewards = rng.random(30)
    state = RidgeState(3, 8, 2.0)
    state.update(x[:5], actions[:5] * 0, rewards[:5])  # some history first
    state.update(x, actions, rewards)
    a_inv, theta = _direct_ridge(np.r_[x[:5], x], np.r_[np.zeros(5, int), actions], np.r_[rewards[:5], rewards], 3, 2.0)
    np.testing.assert_allclose(state.A_inv, a_inv, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(state.theta, theta, rtol=1e-9, atol=1e-12)


def test_quad_form_both_layouts_agree():
    rng = np.random.default_rng(2)
    for n_actions, dim in [(7, 3), (3, 7)]:  # d <= K: outer-product route; d > K: per-arm route
        state = RidgeState(n_actions, dim, 1.0)
        state.update(rng.normal(size=(50, dim)), rng.integers(n_actions, size=50), rng.random(50))
        x = rng.normal(size=(9, dim))
        direct = np.einsum("bi,kij,bj->bk", x, state.A_inv, x)
        np.testing.assert_allclose(state.quad_form(x), direct, rtol=1e-12)
        np.testing.assert_allclose(state.quad_form(x[:1]), direct[:1], rtol=1e-12)


def test_linucb_scores_are_ucb():
    policy = trained("linucb")
    x = contexts(5).astype(np.float64)
    r = policy.ridge
    expected = x @ r.theta.T + 0.5 * np.sqrt(np.einsum("bi,kij,bj->bk", x, r.A_inv, x))
    np.testing.assert_allclose(policy.scores(x), expected, rtol=1e-12)


# --------------------------------------------------------------------------- slates


class FixedPolicy(BasePolicy):
    """A context-free policy with a given distribution (exercises the generic slate path)."""

    def __init__(self, probs):
        super().__init__(len(probs))
        self.probs = np.asarray(probs, dtype=float)

    def action_probs(self, contexts):
        return np.repeat(self.probs[None], len(contexts), axis=0)

    def update(self, contexts, actions, rewards):
        pass


def _plackett_luce(p, slate):
    """Exact per-position probabilities of ``slate`` under Plackett-Luce with weights ``p``."""
    left = np.ones(len(p), bool)
    out = []
    for item in slate:
        out.append(p[item] / p[left].sum())
        left[item] = False
    return np.array(out)


@pytest.mark.parametrize(
    "policy, weights",
    [
        (FixedPolicy([0.1, 0.2, 0.3, 0.4]), np.array([0.1, 0.2, 0.3, 0.4])),
        (Softmax(4, tau=0.5), None),  # Plackett-Luce over exp(score / tau)
    ],
)
def test_slate_propensities_match_exact_enumeration(policy, weights):
    n, slate_size = 40_000, 3
    if isinstance(policy, Softmax):
        policy.update(np.zeros((4, 1)), np.arange(4), np.array([0.0, 0.2, 0.3, 0.6]))
        weights = policy.action_probs(np.zeros((1, 1)))[0]
    x = np.zeros((n, 1))
    slates, pscores = policy.act_slate(x, slate_size, np.random.default_rng(0))
    assert slates.shape == (n, slate_size) and pscores.shape == (n, slate_size)
    assert all(len(set(row)) == slate_size for row in slates[:100])
    exact = {s: _plackett_luce(weights, s) for s in itertools.permutations(range(4), slate_size)}
    # per-position propensities are the exact conditional probabilities
    for row in range(200):
        np.testing.assert_allclose(pscores[row], exact[tuple(slates[row])], rtol=1e-12)
    # and slates occur with the enumerated probabilities
    keys, counts = np.unique(slates, axis=0, return_counts=True)
    seen = {tuple(k): c for k, c in zip(keys, counts)}
    for s, probs in exact.items():
        p = probs.prod()
        assert abs(seen.get(s, 0) / n - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12, (s, p)
    assert abs(sum(probs.prod() for probs in exact.values()) - 1) < 1e-12


def test_greedy_slate_is_top_l_and_empty_mass_fills_uniformly():
    policy = LinUCB(4, 1, alpha=0.0)
    policy.update(np.ones((4, 1)), np.arange(4), np.array([0.1, 0.9, 0.5, 0.3]))
    slates, pscores = policy.act_slate(np.ones((3, 1)), 3, np.random.default_rng(0))
    np.testing.assert_array_equal(slates, [[1, 2, 3]] * 3)
    np.testing.assert_array_equal(pscores, 1.0)

    one_hot = FixedPolicy([0.0, 1.0, 0.0, 0.0])
    slates, pscores = one_hot.act_slate(np.zeros((2000, 1)), 3, np.random.default_rng(0))
    assert (slates[:, 0] == 1).all()
    np.testing.assert_allclose(pscores, np.broadcast_to([1.0, 1 / 3, 1 / 2], (2000, 3)))
    assert set(np.unique(slates[:, 1:])) == {0, 2, 3}


def test_epsilon_greedy_slate_spreads_exploration_over_remaining():
    policy = EpsilonGreedy(4, epsilon=0.4)
    policy.update(np.zeros((1, 1)), np.array([2]), np.array([1.0]))
    slates, pscores = policy.act_slate(np.zeros((5000, 1)), 2, np.random.default_rng(1))
    first = np.where(slates[:, 0] == 2, 0.6 + 0.1, 0.1)
    np.testing.assert_allclose(pscores[:, 0], first)
    # second position: greedy among the remaining (ties split 3 ways if 2 is taken) + 0.4 / 3
    second = np.where(slates[:, 0] == 2, 0.6 / 3 + 0.4 / 3, np.where(slates[:, 1] == 2, 0.6 + 0.4 / 3, 0.4 / 3))
    np.testing.assert_allclose(pscores[:, 1], second)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (LinUCB, dict(n_actions=5, dim=3, alpha=-1.0), "LinUCB: alpha must be >= 0, got -1.0"),
        (LinUCB, dict(n_actions=0, dim=3), "LinUCB: n_actions must be >= 1, got 0"),
        (LinUCB, dict(n_actions=5, dim=0), "LinUCB: dim must be >= 1, got 0"),
        (LinUCB, dict(n_actions=5, dim=None), "LinUCB: dim must be an integer >= 1, got None"),
        (LinUCB, dict(n_actions=5, dim=3, lambda_=0.0), "LinUCB: lambda_ must be > 0, got 0.0"),
        (LinUCB, dict(n_actions=2.5, dim=3), "LinUCB: n_actions must be an integer >= 1, got 2.5"),
        (EpsilonGreedy, dict(n_actions=5, epsilon=1.5), "EpsilonGreedy: epsilon must be in [0, 1], got 1.5"),
        (EpsilonGreedy, dict(n_actions=5, linear=True), "EpsilonGreedy: dim must be an integer >= 1, got None"),
        (Softmax, dict(n_actions=5, tau=0.0), "Softmax: tau must be > 0, got 0.0"),
        (Softmax, dict(n_actions=5, tau=float("nan")), "Softmax: tau must be finite, got nan"),
        (ThompsonSampling, dict(n_actions=5, alpha0=0), "ThompsonSampling: alpha0 must be > 0, got 0.0"),
        (ThompsonSampling, dict(n_actions=5, beta0=-2), "ThompsonSampling: beta0 must be > 0, got -2.0"),
        (LinearThompsonSampling, dict(n_actions=5, dim=3, v=0), "LinearThompsonSampling: v must be > 0, got 0.0"),
        (LinearThompsonSampling, dict(n_actions=5, dim=3, n_mc_draws=0), "LinearThompsonSampling: n_mc_draws must be >= 1, got 0"),
        (RandomPolicy, dict(n_actions=5, seed=-1), "RandomPolicy: seed: expected an integer in [0, 2**32), got -1"),
        (LinUCB, dict(n_actions=5, dim=3, alpha="big"), "LinUCB: alpha must be a number, got 'big'"),
    ],
)
def test_constructor_errors_are_one_line(cls, kwargs, message):
    with pytest.raises(ValueError) as err:
        cls(**kwargs)
    assert str(err.value) == message


def test_check_action_probs_names_policy_and_problem():
    policy = LinUCB(3, 2)
    good = np.full((2, 3), 1 / 3)
    assert check_action_probs(policy, good, 2) is not None
    cases = [
        (np.full((2, 4), 0.25), r"LinUCB\.action_probs: expected shape \(B, K\) = \(2, 3\), got \(2, 4\)"),
        (np.array([[np.nan, 0.5, 0.5], [1 / 3] * 3]), r"LinUCB\.action_probs: NaN or inf at row 0, action 0"),
        (np.array([[0.2, 0.2, 0.2], [1 / 3] * 3]), r"LinUCB\.action_probs: rows must sum to 1 \(tol 1e-06\); row 0 sums to 0\.6"),
        (np.array([[1.5, -0.5, 0.0], [1 / 3] * 3]), r"LinUCB\.action_probs: negative probability -0\.5 at row 0, action 1"),
    ]
    for probs, pattern in cases:
        with pytest.raises(ValueError, match=pattern) as err:
            check_action_probs(policy, probs, 2)
        assert "\n" not in str(err.value)


def test_check_actions_names_policy_and_problem():
    policy = RandomPolicy(3)
    check_actions(policy, np.array([0, 2]), np.array([0.5, 1.0]), 2)
    cases = [
        (np.array([0, 3]), np.array([0.5, 0.5]), r"RandomPolicy\.act: action 3 at row 1 is out of range \[0, 3\)"),
        (np.array([0, -1]), np.array([0.5, 0.5]), r"RandomPolicy\.act: action -1 at row 1 is out of range"),
        (np.array([0, 1]), np.array([0.0, 0.5]), r"RandomPolicy\.act: pscores must be in \(0, 1\]; got 0\.0 at row 0"),
        (np.array([0, 1]), np.array([0.5, 1.2]), r"pscores must be in \(0, 1\]; got 1\.2 at row 1"),
        (np.array([0, 1]), np.array([0.5, np.nan]), r"pscores must be in \(0, 1\]; got nan at row 1"),
        (np.array([0.0, 1.0]), np.array([0.5, 0.5]), r"RandomPolicy\.act: actions must be integers, got dtype float64"),
        (np.array([0, 1, 2]), np.array([0.5, 0.5]), r"RandomPolicy\.act: expected actions of shape \(B,\) = \(2,\), got \(3,\)"),
    ]
    for actions, pscores, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            check_actions(policy, actions, pscores, 2)


def test_validate_policy_output_catches_inconsistent_pscores_of_a_user_policy():
    class Liar:
        n_actions = 2

        def action_probs(self, contexts):
            return np.tile([0.25, 0.75], (len(contexts), 1))

        def act(self, contexts, rng):
            return np.zeros(len(contexts), dtype=np.int64), np.full(len(contexts), 0.5)

        def update(self, contexts, actions, rewards):
            pass

    liar = Liar()
    assert isinstance(liar, Policy)
    with pytest.raises(ValueError, match=r"Liar\.act: pscore 0\.5 of action 0 at row 0 differs from action_probs 0\.25"):
        check_policy(liar, np.zeros((3, 1)), np.random.default_rng(0))
    validate_policy_output(liar, 3, probs=liar.action_probs(np.zeros((3, 1))), actions=np.zeros(3, int), pscores=np.full(3, 0.5), pscore_atol=None)

    class Incomplete:
        n_actions = 2

    with pytest.raises(ValueError, match=r"Incomplete: does not implement the Policy protocol \(missing: action_probs, act, update\)"):
        check_policy(Incomplete(), np.zeros((1, 1)), np.random.default_rng(0))


def test_input_errors_name_the_policy():
    policy = LinUCB(3, 2)
    with pytest.raises(ValueError, match=r"LinUCB: contexts have 3 features, expected dim=2"):
        policy.action_probs(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"LinUCB: contexts must be a 2-D array \(B, d\), got shape \(2,\)"):
        policy.act(np.zeros(2), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"LinUCB\.update: actions must be in \[0, 3\), got 0\.\.3"):
        policy.update(np.zeros((2, 2)), np.array([0, 3]), np.zeros(2))
    with pytest.raises(ValueError, match=r"LinUCB\.update: expected actions and rewards of shape \(2,\)"):
        policy.update(np.zeros((2, 2)), np.array([0]), np.zeros(2))
    with pytest.raises(ValueError, match=r"LinUCB: slate_size must be <= n_actions=3, got 4"):
        policy.act_slate(np.zeros((1, 2)), 4, np.random.default_rng(0))


# --------------------------------------------------------------------------- persistence


@pytest.mark.parametrize("key", FACTORIES)
def test_save_load_round_trip(key, tmp_path):
    policy = trained(key)
    path = tmp_path / f"{key}.npz"
    policy.save(str(path))
    loaded = type(policy).load(str(path))
    assert repr(loaded) == repr(policy)
    x = contexts(6, seed=8)
    np.testing.assert_array_equal(loaded.action_probs(x), policy.action_probs(x))


def test_public_api():
    for name in recsim_causal.agents.__all__:
        assert hasattr(recsim_causal.agents, name), name


@pytest.mark.parametrize("shared", [False, True])
def test_linucb_score_slopes_match_finite_differences(shared):
    rng = np.random.default_rng(0)
    K, d = 4, 12
    pol = LinUCB(K, d, alpha=1.3, shared=shared)
    pol.update(rng.normal(size=(300, d)), rng.integers(0, K, 300), rng.random(300))
    z = rng.normal(size=(5, d))
    for col in (0, 5, 11):
        scores, slope = pol.scores_with_slope(z, col)
        z2 = z.copy()
        z2[:, col] += 1e-6
        np.testing.assert_allclose(scores, pol.scores(z))
        np.testing.assert_allclose(slope, (pol.scores(z2) - pol.scores(z)) / 1e-6, atol=1e-5)
