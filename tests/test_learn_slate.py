"""Off-policy learning from slate logs: a hand world whose best slate is known, the slate
estimators, and the SCM's truth on the slate world."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from recsim_causal.agents import check_policy
from recsim_causal.agents.slate import PlackettLuceSlate, slate_probs_all
from recsim_causal.learn import fit
from recsim_causal.learn.slate import SLATE_LEARNERS, pl_conditional_log_probs, slate_data
from recsim_causal.ope.slate_log import SlateLog

ATTRACT = np.array([0.9, 0.6, 0.2, 0.1])  # x = +1; x = -1 reverses the items
EXAM = np.array([1.0, 0.5])  # the position-based model: slot 2 is seen half the time
SLATES = np.array(list(itertools.permutations(range(4), 2)))
HAND = np.array([[1.0, 0.0], [-1.0, 0.0]])


def hand_log(n: int = 3000, seed: int = 0):
    """K = 4 items, slates of 2, a uniform Plackett-Luce logger (pscores 1/4 then 1/3). The best
    slate is (0, 1) for x = +1 and (3, 2) for x = -1, worth 0.9 + 0.5 * 0.6 = 1.2; the logger is
    worth 1.5 * mean(ATTRACT) = 0.675."""
    rng = np.random.default_rng(seed)
    sign = rng.choice([-1.0, 1.0], size=n)
    x = np.c_[sign, rng.normal(size=n)]
    attract = np.where(sign[:, None] > 0, ATTRACT, ATTRACT[::-1])
    slates = np.argsort(rng.random((n, 4)), axis=1)[:, :2]
    r = (rng.random((n, 2)) < EXAM * np.take_along_axis(attract, slates, axis=1)).astype(float)
    cascade = np.broadcast_to([1 / 4, 1 / 12], (n, 2))
    return SlateLog(x, slates, r, cascade[:, -1].copy(), cascade.copy(), np.full((n, 2), 1 / 4)).feedback(4)


def hand_value(policy, x: np.ndarray) -> float:
    """V = E_x sum_s P(s | x) sum_l EXAM_l ATTRACT(x, s_l) by enumerating the 12 slates (a greedy
    policy: its one slate, the top 2 of its scores)."""
    attract = np.where(x[:, :1] > 0, ATTRACT, ATTRACT[::-1])
    if policy.greedy:
        slates, _ = policy.act_slate(x, 2, np.random.default_rng(0))
        return float((EXAM * np.take_along_axis(attract, slates, axis=1)).sum(axis=1).mean())
    p = slate_probs_all(PlackettLuceSlate(policy, 2), policy.action_probs(x), SLATES)  # (B, 12)
    value = (EXAM * attract[:, SLATES]).sum(axis=2)  # (B, 12)
    return float((p * value).sum(axis=1).mean())


@pytest.mark.parametrize("kw", [dict(learner="ipw"), dict(learner="snipw"), dict(learner="dr"), dict(learner="dm"),
                                dict(learner="dr", policy="mlp")])  # fmt: skip
def test_each_slate_learner_finds_the_known_best_slate(kw):
    fb = hand_log()
    policy = fit(fb, seed=0, n_epochs=20, **kw)
    check_policy(policy, fb.context[:50], np.random.default_rng(0))
    slates, _ = policy.act_slate(HAND, 2, np.random.default_rng(0))
    assert slates[:, 0].tolist() == [0, 3]  # the most attractive item on top
    assert hand_value(policy, fb.context[::2]) > 1.14  # the best slate is worth 1.2, the logger 0.675


def test_slate_objectives_are_the_slate_estimators():
    """Unclipped, each objective of a fixed Plackett-Luce policy on a log equals the project's
    RIPS / Cascade-DR estimate of it, whose propensities come from agents.slate."""
    import torch

    from recsim_causal.agents.base import BasePolicy
    from recsim_causal.ope import SlateCascadeDoublyRobust, SlateRewardInteractionIPS, slate_long_format

    fb = hand_log(300)
    data = slate_data(fb)
    n, L, K = len(data.slates), 2, 4
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(n, K))
    q_hat = rng.uniform(size=(n, L, K))

    class Fixed(BasePolicy):
        def action_probs(self, contexts):
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)

    target = PlackettLuceSlate(Fixed(K), L)
    probs = target.probs(data.context)
    props = target.propensities(probs, data.slates)
    long = slate_long_format(reward=data.slot_reward, action=data.slates, pscore_cascade=data.pscore_cascade,
                             evaluation_policy_pscore_cascade=props["pscore_cascade"],
                             evaluation_policy_action_dist=target.conditional_dists(probs, data.slates))  # fmt: skip
    long["q_hat"] = q_hat.reshape(n * L, K).ravel()
    long["evaluation_policy_action_dist"] = long["evaluation_policy_action_dist"].ravel()
    rips = SlateRewardInteractionIPS(len_list=L).estimate_policy_value(**long)
    cdr = SlateCascadeDoublyRobust(len_list=L, n_unique_action=K).estimate_policy_value(**long)
    batch = {"slates": torch.as_tensor(data.slates), "reward": torch.as_tensor(data.slot_reward),
             "pscore_cascade": torch.as_tensor(data.pscore_cascade), "q_hat": torch.as_tensor(q_hat),
             "max_weight": float("inf")}  # fmt: skip
    logp = pl_conditional_log_probs(torch.as_tensor(logits), batch["slates"])
    assert float(SLATE_LEARNERS["ipw"].value(logp, batch).mean()) == pytest.approx(rips, rel=1e-12)
    assert float(SLATE_LEARNERS["dr"].value(logp, batch).mean()) == pytest.approx(cdr, rel=1e-12)


def test_a_broken_slate_layout_and_a_one_item_objective_are_one_line_errors():
    fb = hand_log(5)
    fb.position = fb.position[::-1].copy()
    with pytest.raises(ValueError, match=r"^log: a slate log needs each slate's 2 rows contiguous, in position order"):
        fit(fb)
    from recsim_causal.learn import LEARNERS, Objective

    LEARNERS["first"] = Objective(lambda pi, b: pi[:, 0])  # a one-item objective has no slate form
    try:
        with pytest.raises(ValueError, match="^fit: a slate log's learner must be one of dm, ipw, snipw, dr; got 'first'$"):
            fit(hand_log(5), learner="first")
    finally:
        del LEARNERS["first"]


def test_log_learner_refuses_a_slate_log(tmp_path):
    from recsim_causal.data import save_parquet
    from recsim_causal.learn import LogLearner

    save_parquet(hand_log(20), tmp_path / "slates.parquet")
    with pytest.raises(ValueError, match=r"^LogLearner: .*slates.parquet is a slate log and LogLearner refits on one-item"):
        LogLearner(4, 2, log=str(tmp_path / "slates.parquet"))


@pytest.mark.slow
def test_learned_slate_policy_beats_the_logger_on_the_scm_truth():
    """The slate world (position-based model, K = 20, slates of 3), a LinUCB logger dealing
    Plackett-Luce slates with epsilon 0.2: the RIPS-trained policy's true value on fresh users
    (each slate's expected slot rewards from the SCM, one slate drawn per user) beats the logger's."""
    from recsim_causal.learn.slate import slate_value
    from recsim_causal.ope import simulate_log

    log = simulate_log("position_bias", "linucb", 4000, slate_size=3, epsilon=0.2, n_items=20, seed=0,
                       train_rounds=2000)  # fmt: skip
    policy = fit(log, learner="ipw", n_epochs=15, seed=0)
    learned, se = slate_value(log.world, policy, 20000, np.random.default_rng(4))
    logged, logged_se = slate_value(log.world, log.logger, 20000, np.random.default_rng(4))
    assert learned - logged > 0.1 and learned - logged > 5 * np.hypot(se, logged_se), (learned, logged)


@pytest.mark.slow
def test_a_learned_slate_policy_is_a_slate_ope_target_and_a_compare_policy(tmp_path):
    """Saved and named by path (LearnedPolicy), the learned policy is a target of experiment=ope
    env=slate (its estimates beside its truth) and a policy of experiment=compare env=slate."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from recsim_causal.learn import LearnedPolicy
    from recsim_causal.ope import simulate_log

    log = simulate_log("position_bias", "random", 1000, slate_size=3, n_items=20, seed=0)
    world = log.world
    policy = fit(log, learner="ipw", n_epochs=3)
    policy.save(str(tmp_path / "learned.npz"))
    agent = LearnedPolicy(20, world.obs_dim, path=str(tmp_path / "learned.npz"))
    x = log.feedback.context[:9]
    np.testing.assert_array_equal(agent.action_probs(x), policy.action_probs(x))
    spec = f"{{_target_: recsim_causal.learn.LearnedPolicy, path: '{tmp_path / 'learned.npz'}'}}"
    root, env = Path(__file__).resolve().parents[1], {**os.environ, "HF_HUB_OFFLINE": "1"}
    common = ["env=slate", "scm=position_bias", "env.n_items=20", "env.slate_size=3", "wandb.mode=disabled"]
    res = subprocess.run(
        [sys.executable, str(root / "scripts" / "run.py"), "experiment=ope", *common, "experiment.train_rounds=500",
         "experiment.slate.n_rounds=400", "experiment.slate.truth_slates=4", "experiment.ci.n_bootstrap_samples=20",
         "experiment.slate.estimators=[rips,iips]",
         f"experiment.slate.targets=[{{name: learned, agent: {spec}}}]", f"hydra.run.dir={tmp_path / 'ope'}"],
        capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    target = json.loads((tmp_path / "ope" / "ope.json").read_text())["targets"]["learned"]
    assert target["truth"] > 0
    res = subprocess.run(
        [sys.executable, str(root / "scripts" / "run.py"), "experiment=compare", *common,
         f"experiment.policies=[random,{{name: learned, {spec[1:-1]}}}]", "experiment.steps=512", "experiment.n_seeds=2",
         "env.num_envs=512", "experiment.eval_users=500", "experiment.truth_users=1000", "experiment.progress=false",
         "experiment.unpaired=false", f"hydra.run.dir={tmp_path / 'compare'}"],
        capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    result = json.loads((tmp_path / "compare" / "compare.json").read_text())
    assert (result["pairs"][0]["a"], result["pairs"][0]["b"]) == ("random", "learned")
    regret = result["per_policy"]
    # in every replication (the same users), random slates lose more against the best slate than the learned ones
    assert all(r > l for r, l in zip(regret["random"]["cumulative_regret"], regret["learned"]["cumulative_regret"]))
