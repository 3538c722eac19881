"""Offline RL on logged sessions (TorchRL): a two-step world whose optimal policy is known."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torchrl", reason="the offline-rl extra (pip install -e '.[offline-rl]')")

from recsim_causal.agents import check_policy  # noqa: E402
from recsim_causal.data import LoggedFeedback  # noqa: E402
from recsim_causal.learn.sessions import fit_sessions, transitions  # noqa: E402

S0, S1 = [1.0, 0.0], [0.0, 1.0]


def two_step_log(n: int = 600, seed: int = 0) -> LoggedFeedback:
    """State s0: action 0 pays 1 and ends the session; action 1 pays 0 and leads to s1, where
    action 0 pays 3 and action 1 pays 0, then the session ends. A uniform logger. With gamma 0.9,
    Q(s0, 1) = 2.7 > Q(s0, 0) = 1: the greedy, myopic choice at s0 is the wrong one."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        a0 = int(rng.integers(2))
        rows.append((i, 0, S0, a0, 1.0 if a0 == 0 else 0.0))
        if a0 == 1:
            a1 = int(rng.integers(2))
            rows.append((i, 1, S1, a1, 3.0 if a1 == 0 else 0.0))
    tid, step, x, a, r = (np.array(c) for c in zip(*rows))
    done = np.r_[tid[1:] != tid[:-1], True]
    return LoggedFeedback(context=x, action=a, reward=r, pscore=np.full(len(a), 0.5), n_actions=2, trajectory_id=tid,
                          step=step, terminated=done, truncated=np.zeros(len(a), bool))


def test_transitions_pair_each_step_with_the_next_row_of_its_session():
    log = two_step_log(5)
    t = transitions(log)
    for i in range(log.n_rounds):
        last = i == log.n_rounds - 1 or log.trajectory_id[i + 1] != log.trajectory_id[i]
        assert t["done"][i] == last
        if not last:
            np.testing.assert_array_equal(t["next_observation"][i], log.context[i + 1])


@pytest.mark.parametrize("algorithm", ["dqn", "cql", "iql"])
def test_each_algorithm_learns_the_known_optimal_policy(algorithm):
    log = two_step_log()
    policy = fit_sessions(log, algorithm, n_steps=600, batch_size=128, learning_rate=3e-3, hidden_sizes=(16,),
                          target_update=0.9, seed=0)
    check_policy(policy, log.context[:20], np.random.default_rng(0))
    probs = policy.action_probs(np.array([S0, S1]))
    np.testing.assert_array_equal(probs, [[0.0, 1.0], [1.0, 0.0]])  # wait at s0, then take the 3


def test_bad_arguments_are_one_line_errors():
    log = two_step_log(20)
    with pytest.raises(ValueError, match="^fit_sessions: algorithm must be one of dqn, cql, iql; got 'bcq'$"):
        fit_sessions(log, "bcq")
    flat = LoggedFeedback(context=log.context, action=log.action, reward=log.reward, pscore=log.pscore, n_actions=2)
    with pytest.raises(ValueError, match="^log: expected logged sessions"):
        fit_sessions(flat)


def test_q_policy_save_load_roundtrip(tmp_path):
    from recsim_causal.learn import QPolicy

    log = two_step_log(100)
    policy = fit_sessions(log, "iql", n_steps=20, batch_size=32, hidden_sizes=(8,), seed=0)
    path = tmp_path / "q.npz"
    policy.save(str(path))
    again = QPolicy.load(str(path))
    x = np.random.default_rng(0).normal(size=(32, 2))
    np.testing.assert_array_equal(again.scores(x), policy.scores(x))  # the network's outputs, not only the argmax
    np.testing.assert_array_equal(again.action_probs(x), policy.action_probs(x))
