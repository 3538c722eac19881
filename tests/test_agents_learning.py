"""The agents learn: regret on a seeded synthetic linear-logistic contextual bandit.

The bandit is built here (K=10 arms, d=5 features, the first a constant 1): arm ``a`` pays 1
with probability ``sigmoid(x . theta_a)``, so the per-round regret ``max_k p_k(x) - p_a(x)`` is
exact. Arm intercepts differ, so a context-free learner has a best arm to find too.
"""

from __future__ import annotations

import numpy as np
import pytest

from recsim_causal.agents import EpsilonGreedy, LinearThompsonSampling, LinUCB, RandomPolicy

N_ACTIONS, DIM, N_ROUNDS = 10, 5, 2000


def make_theta(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(N_ACTIONS, DIM))


def run(policy, theta: np.ndarray, seed: int, batch_size: int = 1) -> np.ndarray:
    """Play ``N_ROUNDS`` rounds in batches; return the per-round expected regret ``(N_ROUNDS,)``."""
    rng = np.random.default_rng(seed + 1000)
    regret = np.empty(N_ROUNDS)
    rows = np.arange(batch_size)
    for t in range(0, N_ROUNDS, batch_size):
        x = rng.normal(size=(batch_size, DIM))
        x[:, 0] = 1.0
        p = 1.0 / (1.0 + np.exp(-(x @ theta.T)))
        actions, pscores = policy.act(x.astype(np.float32), rng)
        assert ((pscores > 0) & (pscores <= 1)).all()
        rewards = (rng.random(batch_size) < p[rows, actions]).astype(np.float64)
        policy.update(x.astype(np.float32), actions, rewards)
        regret[t : t + batch_size] = p.max(axis=1) - p[rows, actions]
    return regret


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_agents_beat_epsilon_greedy_beats_random(seed):
    theta = make_theta(seed)
    regret = {
        "random": run(RandomPolicy(N_ACTIONS, seed=seed), theta, seed),
        "eps": run(EpsilonGreedy(N_ACTIONS, epsilon=0.1, seed=seed), theta, seed),
        "linucb": run(LinUCB(N_ACTIONS, DIM, seed=seed), theta, seed),
        "lints": run(LinearThompsonSampling(N_ACTIONS, DIM, seed=seed), theta, seed),
    }
    total = {k: v.sum() for k, v in regret.items()}
    assert total["linucb"] < total["eps"] < total["random"], total
    assert total["lints"] < total["eps"], total
    half = N_ROUNDS // 2
    assert regret["linucb"][half:].sum() < regret["linucb"][:half].sum(), total
    assert regret["lints"][half:].sum() < regret["lints"][:half].sum(), total


def test_batched_linucb_learns_like_sequential():
    # vector envs feed 16 users a step: the batched (Woodbury / fresh-inverse) updates must learn too
    theta = make_theta(0)
    batched = run(LinUCB(N_ACTIONS, DIM, seed=0), theta, 0, batch_size=16).sum()
    epsilon = run(EpsilonGreedy(N_ACTIONS, epsilon=0.1, seed=0), theta, 0, batch_size=16).sum()
    sequential = run(LinUCB(N_ACTIONS, DIM, seed=0), theta, 0).sum()
    assert batched < epsilon
    assert batched < 1.5 * sequential, (batched, sequential)
