"""Off-policy learners: each against a hand-computable world, the OPE estimators, and the SCM's truth."""

from __future__ import annotations

import numpy as np
import pytest

from recsim_causal.agents import check_policy
from recsim_causal.data import LoggedFeedback, save_parquet
from recsim_causal.learn import LEARNERS, NetworkPolicy, RewardModelPolicy, fit
from recsim_causal.ope import DR, IPS


def two_action_log(n: int = 4000, seed: int = 0) -> tuple[LoggedFeedback, np.ndarray]:
    """x = +1 or -1 (plus an irrelevant feature); action 0 clicks with 0.8 when x = +1 and 0.2
    when x = -1, action 1 the reverse; a uniform logger. The optimal policy plays 0 on x = +1,
    1 on x = -1 and is worth 0.8; the logger is worth 0.5."""
    rng = np.random.default_rng(seed)
    sign = rng.choice([-1.0, 1.0], size=n)
    x = np.c_[sign, rng.normal(size=n)]
    q = np.where(sign[:, None] > 0, [0.8, 0.2], [0.2, 0.8])
    a = rng.integers(0, 2, size=n)
    r = (rng.random(n) < q[np.arange(n), a]).astype(float)
    fb = LoggedFeedback(context=x, action=a, reward=r, pscore=np.full(n, 0.5), n_actions=2,
                        action_dist=np.full((n, 2), 0.5), expected_reward=q)  # fmt: skip
    return fb, q


HAND = np.array([[1.0, 0.0], [-1.0, 0.0]])  # the two kinds of user, the irrelevant feature at 0


@pytest.mark.parametrize("kw", [dict(learner="ipw"), dict(learner="snipw"), dict(learner="dr"), dict(learner="dm"),
                                dict(learner="dr", policy="mlp"), dict(learner="ipw", greedy=True)])  # fmt: skip
def test_each_learner_finds_the_known_optimal_policy(kw):
    fb, q = two_action_log()
    policy = fit(fb, seed=0, **kw)
    check_policy(policy, fb.context[:50], np.random.default_rng(0))
    probs = policy.action_probs(HAND)
    assert probs[0, 0] > 0.9 and probs[1, 1] > 0.9, probs
    value = float((policy.action_probs(fb.context) * q).sum(axis=1).mean())
    assert value > 0.77  # the optimum is 0.8, the logger 0.5


def test_objectives_are_the_ope_estimators():
    """The trained objective of a policy equals the project's IPS / DR estimate of that policy
    (unclipped), computed by the estimators' own code."""
    import torch

    fb, _ = two_action_log(500)
    rng = np.random.default_rng(1)
    pi = rng.dirichlet([1.0, 1.0], size=fb.n_rounds)
    q_hat = rng.uniform(size=(fb.n_rounds, 2))
    batch = {"action": torch.as_tensor(fb.action), "reward": torch.as_tensor(fb.reward),
             "pscore": torch.as_tensor(fb.pscore), "q_hat": torch.as_tensor(q_hat), "max_weight": float("inf")}
    pit = torch.as_tensor(pi)
    ips = IPS().estimate_policy_value(reward=fb.reward, action=fb.action, pscore=fb.pscore, action_dist=pi)
    dr = DR().estimate_policy_value(reward=fb.reward, action=fb.action, pscore=fb.pscore, action_dist=pi,
                                    estimated_rewards_by_reg_model=q_hat)  # fmt: skip
    assert float(LEARNERS["ipw"].value(pit, batch).mean()) == pytest.approx(ips, rel=1e-12)
    assert float(LEARNERS["dr"].value(pit, batch).mean()) == pytest.approx(dr, rel=1e-12)


def test_learned_policy_beats_the_logger_on_the_scm_truth():
    """Default world, a LinUCB logger with epsilon 0.2: the learned policy's exact value on fresh
    users (from the SCM, not estimated) beats the logger's."""
    from recsim_causal.build import agent_config, make_agent
    from recsim_causal.ope.simulate import collect, fresh_truth, train
    from recsim_causal.scm import World

    world = World("default", n_items=30, seed=0, dtype="float64")
    logger = make_agent(agent_config("linucb"), n_actions=30, dim=world.obs_dim, seed=0)
    train(world, logger, 3000, np.random.default_rng(3))
    log, _ = collect(world, logger, 5000, 0.2, np.random.default_rng(2), show_progress=False)
    log.action_context = np.concatenate(list(world.catalog.features.values()), axis=1)
    behaviour = float((log.action_dist * log.expected_reward).sum(axis=1).mean())
    policy = fit(log, learner="ipw", n_epochs=20, seed=0)
    learned = fresh_truth(world, policy, 20000, np.random.default_rng(4))
    assert learned > behaviour + 0.05, (learned, behaviour)


def test_network_policy_save_load_roundtrip(tmp_path):
    fb, _ = two_action_log(300)
    policy = fit(fb, learner="ipw", n_epochs=2, policy="mlp", action_context=np.array([[1.0, 0.3], [-2.0, 0.5]]))
    path = tmp_path / "p.npz"
    policy.save(str(path))
    again = NetworkPolicy.load(str(path))
    np.testing.assert_array_equal(again.action_probs(fb.context), policy.action_probs(fb.context))


@pytest.mark.parametrize("kw", [dict(reward_model="logistic", reward_features="interaction"),
                                dict(reward_model="ridge", reward_features="cross", greedy=False, temperature=0.1),
                                dict(reward_model="ridge", reward_features="concat", greedy=False),
                                dict(reward_model="mlp", reward_features="interaction", greedy=False)])  # fmt: skip
def test_reward_model_policy_save_load_roundtrip(tmp_path, kw):
    """The DM learner's policy written by save and read by load gives the same distribution,
    whatever built-in reward model it stands on; a scikit-learn one is refused in one line."""
    fb, _ = two_action_log(400)
    fb.action_context = np.array([[1.0, 0.5], [-1.0, 2.0]])
    policy = fit(fb, learner="dm", **kw)
    path = tmp_path / "dm.npz"
    policy.save(str(path))
    again = RewardModelPolicy.load(str(path))
    x = np.random.default_rng(3).normal(size=(64, 2))
    np.testing.assert_allclose(again.action_probs(x), policy.action_probs(x), rtol=1e-12, atol=1e-12)
    assert repr(again) == repr(policy)


def test_reward_model_policy_on_a_scikit_learn_model_says_how_to_save_it(tmp_path):
    from sklearn.linear_model import LogisticRegression

    from recsim_causal.ope import RegressionModel

    fb, _ = two_action_log(200)
    model = RegressionModel(base_model=LogisticRegression(), n_actions=2).fit(fb.context, fb.action, fb.reward)
    policy = RewardModelPolicy(2, 2, model=model)
    with pytest.raises(ValueError, match="^RegressionModel: a scikit-learn base_model .* save it with joblib"):
        policy.save(str(tmp_path / "p.npz"))


def test_learned_policies_are_frozen_and_fill_slates():
    fb, _ = two_action_log(300)
    policy = fit(fb, learner="dm")
    assert isinstance(policy, RewardModelPolicy)
    before = policy.action_probs(HAND)
    policy.update(fb.context, fb.action, fb.reward)
    np.testing.assert_array_equal(policy.action_probs(HAND), before)
    slates, pscores = policy.act_slate(HAND, 2, np.random.default_rng(0))
    np.testing.assert_array_equal(slates, [[0, 1], [1, 0]])  # greedy: best item first


@pytest.mark.parametrize("kw, message", [
    (dict(learner="poem"), "fit: learner must be one of dm, ipw, snipw, dr; got 'poem'"),
    (dict(policy="tree"), "fit: policy must be one of linear, mlp; got 'tree'"),
    (dict(n_epochs=0), "fit: n_epochs must be >= 1, got 0"),
    (dict(max_weight=-1.0), "fit: max_weight must be > 0, got -1.0"),
])  # fmt: skip
def test_bad_arguments_are_one_line_errors(kw, message):
    fb, _ = two_action_log(50)
    with pytest.raises(ValueError) as err:
        fit(fb, **kw)
    assert str(err.value) == message


def test_log_must_be_a_log():
    with pytest.raises(ValueError, match="log: expected a LoggedFeedback, a simulated log or a Parquet path, got dict"):
        fit({})


def test_log_learner_learns_from_its_own_batches_and_from_a_parquet_log(tmp_path):
    """The agent form: online batches in the two-action world (its own pscores), then a fresh
    agent from the Parquet log; both end on the known optimal policy."""
    from recsim_causal.learn import LogLearner

    rng = np.random.default_rng(5)
    agent = LogLearner(2, 2, seed=0, learner="dr", refit_every=1000, epsilon=0.1)
    check_policy(agent, HAND, rng)
    np.testing.assert_allclose(agent.action_probs(HAND), 0.5)  # no data yet: uniform
    for _ in range(4):
        x = np.c_[rng.choice([-1.0, 1.0], size=1000), rng.normal(size=1000)]
        a, _ = agent.act(x, rng)
        q = np.where(x[:, :1] > 0, [0.8, 0.2], [0.2, 0.8])
        agent.update(x, a, (rng.random(1000) < q[np.arange(1000), a]).astype(float))
    probs = agent.action_probs(HAND)
    assert probs[0, 0] > 0.9 and probs[1, 1] > 0.9, probs  # at most 1 - epsilon / 2 = 0.95
    fb, _ = two_action_log()
    save_parquet(fb, tmp_path / "log.parquet")
    again = LogLearner(2, 2, learner="dm", log=str(tmp_path / "log.parquet"), epsilon=0.0)
    np.testing.assert_array_equal(again.action_probs(HAND), [[1.0, 0.0], [0.0, 1.0]])


def test_log_learners_are_agents_of_experiment_compare(tmp_path):
    """Named from conf/agent and as a mapping with _target_ (fit arguments in fit_kwargs)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    res = subprocess.run(
        [sys.executable, str(root / "scripts" / "run.py"), "experiment=compare",
         "experiment.policies=[offline_dm,{name: ipw_mlp, _target_: recsim_causal.learn.LogLearner, learner: ipw, "
         "refit_every: 1024, fit_kwargs: {policy: mlp, n_epochs: 3}}]",
         "experiment.steps=1024", "experiment.n_seeds=2", "env.num_envs=256", "env.n_items=10",
         "experiment.eval_users=500", "experiment.truth_users=1000", "experiment.progress=false",
         "experiment.unpaired=false", "wandb.mode=disabled", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    pair = json.loads((tmp_path / "compare.json").read_text())["pairs"][0]
    assert (pair["a"], pair["b"]) == ("offline_dm", "ipw_mlp")
