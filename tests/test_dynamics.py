"""Time in the SCM (scm.dynamics): drift, churn, seasonality; exact truth at every t."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import recsim_causal.envs  # noqa: F401
from recsim_causal.data import LoggedFeedback, load_parquet, save_parquet
from recsim_causal.scm import SCMConfigError, Users, World, load_scm_config

TIMES = (0, 49_999, 50_000, 137_000)


def test_stationary_world_unchanged():
    """The numbers of a stationary preset for fixed seeds, recorded before time entered the SCM."""
    w = World("default", n_items=50, seed=3)
    u = w.sample_users(64, np.random.default_rng(7))
    assert float(w.expected_reward(u).sum()) == 847.1776729089468
    assert float(w.respond(u, np.arange(64) % 50).reward.sum()) == 14.0
    assert float(w.observe(u).sum()) == 101.46185302734375
    assert w.top_items(u, 3)[1][:2].tolist() == [[39, 26, 7], [25, 44, 15]]
    venv = gym.make_vec("RecSimCausal/Bandit-v0", num_envs=32, vectorization_mode="vector_entry_point", n_items=20,
                        world_seed=1)
    obs, _ = venv.reset(seed=5)
    total = regret = 0.0
    for _ in range(5):
        obs, r, _, _, info = venv.step(np.arange(32) % 20)
        total += float(r.sum())
        regret += float((info["optimal_expected_reward"] - info["chosen_expected_reward"]).sum())
    assert (total, regret, float(obs.sum())) == (45.0, 77.4416618347168, 107.081787109375)
    assert info["t"].tolist() == [128] * 32 and venv.unwrapped.t == 160
    venv = gym.make_vec("RecSimCausal/Session-v0", num_envs=16, vectorization_mode="vector_entry_point", n_items=20,
                        world_seed=1)
    obs, _ = venv.reset(seed=5)
    total = 0.0
    for _ in range(6):
        obs, r, *_ = venv.step(np.arange(16) % 20)
        total += float(r.sum())
    assert (total, float(obs.sum())) == (21.0, 50.16703414916992)


@pytest.mark.parametrize("t", TIMES)
def test_drift_world_at_t_is_the_stationary_world_under_do(t):
    """At time t the drifting world is the stationary one with the taste mean fixed at its value
    at t (an independent path: do() on a world without dynamics)."""
    cfg = load_scm_config("drift")
    moving = World(cfg, n_items=60, seed=2, dtype="float64")
    still = World({k: v for k, v in cfg.items() if k != "dynamics"}, n_items=60, seed=2, dtype="float64")
    trend = moving.dynamics.user_offsets(t)["taste_trend"]
    fixed = still.do(taste_trend=trend.tolist())
    users = moving.sample_users(500, np.random.default_rng(t), t)
    np.testing.assert_allclose(users.values["taste_trend"], np.broadcast_to(trend, (500, 8)))
    np.testing.assert_allclose(moving.expected_reward(users), fixed.expected_reward(users), rtol=1e-12)


def test_drift_schedule_jumps_at_change_points_and_drifts_between():
    w = World("drift", n_items=30, seed=0)
    off = lambda t: w.dynamics.user_offsets(t)["taste_trend"]  # noqa: E731
    assert w.change_points(160_000) == [50_000, 100_000, 150_000]
    assert np.all(off(0) == 0)
    step_within = np.linalg.norm(off(49_999) - off(49_998))
    jump = np.linalg.norm(off(50_000) - off(49_999))
    assert jump > 0.3 and step_within < 1e-4  # an abrupt change, and a slow drift
    np.testing.assert_allclose(off(75_000) - off(50_000), 0.5 * (off(99_999) - off(50_000)), atol=1e-4)


@pytest.mark.parametrize("t", (0, 50_000, 120_000))
def test_truth_matches_monte_carlo_rollouts_at_t(t):
    """V_t(a) = E_x E[r | x, do(a)] from the SCM vs rollouts: fresh users at t, fresh noise."""
    w = World("drift", n_items=20, seed=1, dtype="float64")
    rng = np.random.default_rng(t + 1)
    a = np.full(200_000, 3)
    users = w.sample_users(len(a), rng, t)
    clicks = w.respond(users, a).reward
    exact = w.expected_reward(w.sample_users(200_000, rng, t))[:, 3].mean()
    se = np.sqrt(clicks.var() / len(a) + 0.25 / 200_000)
    assert abs(clicks.mean() - exact) < 4 * se


def test_truth_moves_across_a_change_point():
    w = World("drift", n_items=40, seed=0, dtype="float64")
    rng = np.random.default_rng(0)
    before = w.expected_reward(w.sample_users(20_000, rng, 49_000)).mean(axis=0)
    after = w.expected_reward(w.sample_users(20_000, rng, 50_000)).mean(axis=0)
    assert before.argmax() != after.argmax()
    assert np.abs(before - after).max() > 0.05


def test_churn_replaces_a_tenth_of_the_catalogue_with_new_items_and_texts():
    w = World("churn", n_items=100, seed=0, dtype="float64")
    c0, c1, c2 = w.catalog_at(0), w.catalog_at(50_000), w.catalog_at(100_000)
    assert c0 is w.catalog and w.catalog_at(49_999) is c0
    new = np.flatnonzero(c1.item_id != c0.item_id)
    assert len(new) == 10 and set(c1.item_id[new]) == set(range(100, 110))
    assert all(c1.texts[k] != c0.texts[k] or c1.rating[k] != c0.rating[k] for k in new)
    assert sorted(set(c2.item_id) - set(c1.item_id)) == list(range(110, 120))
    kept = np.setdiff1d(np.arange(100), new)
    assert c1.texts[int(kept[0])] == c0.texts[int(kept[0])]
    # new items come from the same population: their topic vectors sit near the same topic centres
    centres = c0.population.centres
    dist = np.linalg.norm(c1.features["topic_vec"][new] - centres[c1.topic[new]], axis=1)
    assert dist.max() < 1.0
    # at t the world is the stationary world built on the catalogue of t
    still = World({k: v for k, v in load_scm_config("churn").items() if k != "dynamics"}, n_items=100, seed=0,
                  dtype="float64", catalog=c2)
    users = w.sample_users(300, np.random.default_rng(1), 100_000)
    np.testing.assert_allclose(w.expected_reward(users), still.expected_reward(users), rtol=1e-12)
    at_start = Users(users.values, users.noise, users.n, t=0)  # the same users meeting the first catalogue
    assert not np.allclose(w.expected_reward(users), w.expected_reward(at_start))


def test_seasonal_item_node_cycles_with_its_period():
    cfg = load_scm_config("default")
    cfg["dynamics"] = {"seasonal": {"popularity": {"period": 1000, "amplitude": 0.5}}}
    w = World(cfg, n_items=30, seed=0, dtype="float64")
    base = w.item_values["popularity"]
    at = lambda t: w.item_values_at(t)["popularity"] - base  # noqa: E731
    np.testing.assert_allclose(at(250), at(1250), atol=1e-12)
    np.testing.assert_allclose(at(250), -at(750), atol=1e-12)
    assert np.abs(at(250)).max() <= 0.5 + 1e-12 and np.abs(at(250)).max() > 0.3
    users = w.sample_users(100, np.random.default_rng(0), 0)
    later = w.sample_users(100, np.random.default_rng(0), 250)
    assert not np.allclose(w.expected_reward(users), w.expected_reward(later))


def test_schedule_and_rotation_shifts():
    cfg = load_scm_config("default")
    cfg["nodes"]["theta"] = {"type": "constant", "dim": 2, "value": 0.0}
    cfg["dynamics"] = {"shift": {"theta": {"kind": "schedule", "points": [10, 20], "values": [[-1, 0], [0, 1]]}}}
    w = World(cfg, n_items=5, seed=0)
    assert [w.dynamics.user_offsets(t)["theta"].tolist() for t in (9, 10, 25)] == [[0, 0], [-1, 0], [0, 1]]
    assert w.change_points(100) == [10, 20]
    cfg["dynamics"] = {"shift": {"theta": {"kind": "rotation", "start": 0, "stop": 100, "angle_to": float(np.pi)}}}
    w = World(cfg, n_items=5, seed=0)
    np.testing.assert_allclose(w.dynamics.user_offsets(50)["theta"], [0.0, 1.0], atol=1e-12)
    assert w.change_points(100) == []


@pytest.mark.parametrize("dynamics, message", [
    ({"shfit": {}}, "scm.dynamics.shfit: unknown key (did you mean 'shift'?"),
    ({"shift": {"tsate": {"kind": "jumps", "every": 5}}}, "scm.dynamics.shift: unknown node 'tsate'"),
    ({"shift": {"taste": {"kind": "jump", "every": 5}}}, "scm.dynamics.shift.taste.kind: expected one of jumps, "),
    ({"shift": {"taste": {"kind": "jumps", "every": 0}}}, "scm.dynamics.shift.taste.every: expected an integer >= 1"),
    ({"shift": {"taste": {"kind": "jumps", "every": 5, "jmp": 1}}}, "scm.dynamics.shift.taste.jmp: unknown key"),
    ({"churn": {"every": 10, "fraction": 1.5}}, "scm.dynamics.churn.fraction: expected a number in (0, 1]"),
    ({"seasonal": {"taste": {"period": 10, "amplitude": 1}}}, "scm.dynamics.seasonal.taste: a user node; expected"),
])
def test_dynamics_config_errors_are_one_line(dynamics, message):
    cfg = load_scm_config("default")
    cfg["dynamics"] = dynamics
    with pytest.raises(SCMConfigError) as e:
        World(cfg, n_items=10, seed=0)
    assert str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)


def test_envs_expose_time_and_the_current_catalogue(tmp_path):
    venv = gym.make_vec("RecSimCausal/Bandit-v0", num_envs=1000, vectorization_mode="vector_entry_point",
                        n_items=50, scm="churn", world_seed=0)
    env = venv.unwrapped
    venv.reset(seed=0, options={"t": 49_000})
    assert env.t == 49_000 and env.catalog is env.world.catalog
    _, _, _, _, info = venv.step(np.zeros(1000, dtype=np.int64))
    assert env.t == 50_000 and (info["t"] == 49_000).all()
    assert (env.catalog.item_id != env.world.catalog.item_id).sum() == 5
    # the oracle of the step after the change is the new catalogue's
    obs, _, _, _, info = venv.step(np.zeros(1000, dtype=np.int64))
    users = env.world.sample_users(5, np.random.default_rng(0), 50_000)
    assert users.t == 50_000 and (info["t"] == 50_000).all()
    log = LoggedFeedback(context=obs, action=np.zeros(1000, np.int64), reward=np.zeros(1000), pscore=np.ones(1000),
                         n_actions=50, t=info["t"])
    back = load_parquet(save_parquet(log, tmp_path / "log.parquet"))
    assert back.t.tolist() == info["t"].tolist()
    single = gym.make("RecSimCausal/Bandit-v0", n_items=10, scm="drift", block_size=4).unwrapped
    single.reset(seed=0, options={"t": 7})
    for i in range(6):
        _, _, _, _, info = single.step(0)
        single.reset()
    assert single.t == 13 and info["t"] == 11  # users drawn in blocks of 4 meet the world of the block's start
    session = gym.make_vec("RecSimCausal/Session-v0", num_envs=8, vectorization_mode="vector_entry_point",
                           n_items=10, scm="churn")
    session.reset(seed=0)
    session.step(np.zeros(8, dtype=np.int64))
    assert session.unwrapped.t == 8


@pytest.mark.parametrize("scm, t, theta", [("russac_abrupt", 0, [1, 0]), ("russac_abrupt", 1500, [-1, 0]),
                                           ("russac_abrupt", 2999, [0, 1]), ("russac_abrupt", 5000, [0, -1]),
                                           ("russac_smooth", 1500, [np.cos(np.pi / 4), np.sin(np.pi / 4)]),
                                           ("russac_smooth", 4000, [0, 1])])
def test_russac_worlds_truth_by_hand_and_by_rollouts(scm, t, theta):
    """E[r | actions, do(k)] = <a_k, theta_t>; the Gaussian rewards average to it."""
    w = World(scm, n_items=50, seed=0, dtype="float64")
    users = w.sample_users(4000, np.random.default_rng(t), t)
    acts = users.values["actions"].reshape(4000, 50, 2)
    assert np.abs(acts).max() <= 1 and np.linalg.norm(acts, axis=2).max() <= 1 + 1e-12
    np.testing.assert_allclose(w.expected_reward(users), acts @ np.asarray(theta, float), atol=1e-12)
    a = np.random.default_rng(1).integers(50, size=4000)
    out = w.respond(users, a)
    resid = out.reward - acts[np.arange(4000), a] @ np.asarray(theta, float)
    assert abs(resid.mean()) < 4 / np.sqrt(4000) and abs(resid.std() - 1.0) < 0.05  # N(0, 1) noise


def test_action_set_world_refuses_more_items_than_actions():
    with pytest.raises(SCMConfigError, match="the action set has 50 actions, the world 60 items"):
        World("russac_abrupt", n_items=60, seed=0)
    w = World("russac_abrupt", n_items=20, seed=0, dtype="float64")  # item k is action k: the first 20
    users = w.sample_users(5, np.random.default_rng(0), 0)
    np.testing.assert_allclose(w.expected_reward(users), users.values["actions"].reshape(5, 50, 2)[:, :20, 0])
