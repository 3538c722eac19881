"""The Gymnasium environments: API conformance, determinism, honest spaces, dynamics."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import recsim_causal.envs
from recsim_causal.scm import SCMConfigError

warnings.filterwarnings("ignore", message=".*Box observation space (minimum|maximum) value is.*")

CASES = [
    (recsim_causal.envs.BANDIT_ID, {}),
    (recsim_causal.envs.BANDIT_ID, {"scm": "position_bias", "slate_size": 5}),
    (recsim_causal.envs.SESSION_ID, {}),
    (recsim_causal.envs.SESSION_ID, {"scm": "confounded", "n_items": 20}),
]


def _actions(space, rng, n=None):
    """Valid actions (slates without repeats)."""
    if isinstance(space, gym.spaces.MultiDiscrete):
        k, L = int(space.nvec.flat[0]), space.shape[-1]
        shape = (n, k) if n else (k,)
        return np.argsort(rng.random(shape), axis=-1)[..., :L]
    return rng.integers(0, space.n, n) if n else int(rng.integers(space.n))


@pytest.mark.parametrize("env_id, kw", CASES)
def test_check_env(env_id, kw):
    check_env(gym.make(env_id, **kw).unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id, kw", CASES)
def test_single_env_is_deterministic_and_honest(env_id, kw):
    def rollout(seed):
        env = gym.make(env_id, **kw)
        rng = np.random.default_rng(0)
        obs, _ = env.reset(seed=seed)
        trace = []
        for _ in range(60):
            assert env.observation_space.contains(obs)
            obs, r, term, trunc, info = env.step(_actions(env.action_space, rng))
            assert info["expected_reward"].shape == (env.unwrapped.world.n_items,)
            trace.append((obs.copy(), r, term, trunc))
            if term or trunc:
                obs, _ = env.reset()
        return trace

    a, b, c = rollout(1), rollout(1), rollout(2)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[0], y[0])
        assert x[1:] == y[1:]
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, c))


@pytest.mark.parametrize("env_id, kw", CASES)
def test_vector_env_is_deterministic_and_honest(env_id, kw):
    def rollout(seed):
        venv = gym.make_vec(env_id, num_envs=16, vectorization_mode="vector_entry_point", **kw)
        rng = np.random.default_rng(0)
        obs, _ = venv.reset(seed=seed)
        trace = []
        for _ in range(25):
            assert venv.observation_space.contains(obs)
            obs, r, term, trunc, info = venv.step(_actions(venv.single_action_space, rng, 16))
            assert r.shape == term.shape == trunc.shape == (16,)
            assert info["expected_reward"].shape == (16, venv.unwrapped.world.n_items)
            assert np.all((info["expected_reward"] >= 0) & (info["expected_reward"] <= 1))
            trace.append(np.concatenate([obs.ravel(), r, term, trunc]))
        return np.stack(trace)

    np.testing.assert_array_equal(rollout(5), rollout(5))
    assert not np.array_equal(rollout(5), rollout(6))


def test_bandit_vector_env_serves_new_users_every_step():
    venv = gym.make_vec(recsim_causal.envs.BANDIT_ID, num_envs=8, vectorization_mode="vector_entry_point")
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    obs0, _ = venv.reset(seed=0)
    obs1, r, term, trunc, info = venv.step(np.zeros(8, dtype=int))
    assert term.all() and not trunc.any()
    np.testing.assert_array_equal(info["final_obs"], obs0)  # the users who acted
    assert not np.array_equal(obs0, obs1)  # the next users
    q = info["expected_reward"]
    np.testing.assert_array_equal(info["optimal_action"], q.argmax(1))


def test_vector_bandit_random_click_rate_matches_oracle():
    """The vector env's rewards are draws from its own oracle: mean within 3 s.e."""
    venv = gym.make_vec(recsim_causal.envs.BANDIT_ID, num_envs=4096, vectorization_mode="vector_entry_point", dtype="float64")
    venv.reset(seed=3)
    rng = np.random.default_rng(0)
    rewards, exact = [], []
    for _ in range(49):  # ~200k users
        a = rng.integers(0, 100, 4096)
        _, r, _, _, info = venv.step(a)
        rewards.append(r)
        exact.append(info["expected_reward"].mean(axis=1))
    r, q = np.concatenate(rewards), np.concatenate(exact)
    assert abs(r.mean() - q.mean()) < 3 * r.std() / np.sqrt(r.size)


def test_session_fatigue_lowers_the_repeated_topic():
    venv = gym.make_vec(recsim_causal.envs.SESSION_ID, num_envs=256, vectorization_mode="vector_entry_point",
                        drift=0.0, leave_bias=-30.0, dtype="float64")
    venv.reset(seed=0)
    world = venv.unwrapped.world
    _, _, _, _, info = venv.step(np.zeros(256, dtype=int))
    q_before = info["expected_reward"][:, 0]
    for _ in range(3):
        _, _, _, _, info = venv.step(np.zeros(256, dtype=int))
    assert np.all(info["expected_reward"][:, 0] < q_before)
    topic = world.catalog.topic
    other = np.flatnonzero(topic != topic[0])[0]
    fatigue = venv.unwrapped.core.users.values["fatigue"]
    assert np.all(fatigue[:, topic[0]] > 0) and np.all(fatigue[:, topic[other]] == 0)


def test_session_ends_by_leaving_or_time_budget():
    venv = gym.make_vec(recsim_causal.envs.SESSION_ID, num_envs=512, vectorization_mode="vector_entry_point", max_steps=5)
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    obs, _ = venv.reset(seed=0)
    rng = np.random.default_rng(0)
    steps = np.zeros(512, int)
    lengths, terms = [], 0
    done_prev = np.zeros(512, bool)
    for _ in range(30):
        obs, r, term, trunc, _ = venv.step(rng.integers(0, 100, 512))
        assert np.all(r[done_prev] == 0) and not np.any((term | trunc)[done_prev])  # autoreset step
        steps = np.where(done_prev, 0, steps + 1)
        done = term | trunc
        lengths += list(steps[done])
        terms += term.sum()
        done_prev = done
    assert max(lengths) == 5 and min(lengths) >= 1
    assert terms > 0  # some users leave before the budget
    np.testing.assert_allclose(obs[~done_prev, -3] * 5, steps[~done_prev])  # t / max_steps column


@pytest.mark.parametrize(
    "env_id, kw, message",
    [
        (recsim_causal.envs.BANDIT_ID, {"scm": "position_bias", "n_items": 5, "slate_size": 6}, r"^env.slate_size"),
        (recsim_causal.envs.SESSION_ID, {"slate_size": 3}, r"^env.slate_size: Session-v0 recommends one item per step"),
        (recsim_causal.envs.SESSION_ID, {"max_steps": 0}, r"^env.max_steps: expected an integer >= 1, got 0"),
        (recsim_causal.envs.SESSION_ID, {"drift": 1.5}, r"^env.drift: expected a number in \[0, 1\], got 1.5"),
        (recsim_causal.envs.SESSION_ID, {"leave_speed": 1}, r"^env.leave_speed: unknown Session-v0 setting"),
        (recsim_causal.envs.BANDIT_ID, {"dtype": "float16"}, r"^env.dtype: expected 'float32' or 'float64'"),
    ],
)
def test_invalid_env_settings(env_id, kw, message):
    with pytest.raises(SCMConfigError, match=message):
        gym.make(env_id, **kw)


def test_invalid_actions_are_named():
    venv = gym.make_vec(recsim_causal.envs.BANDIT_ID, num_envs=4, vectorization_mode="vector_entry_point", n_items=10)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions: expected item indices in \[0, 10\)"):
        venv.step(np.array([0, 1, 2, 10]))
    with pytest.raises(ValueError, match=r"actions: expected shape \(4,\), got \(3,\)"):
        venv.step(np.array([0, 1, 2]))


@pytest.mark.parametrize("action, got", [
    (3.7, "got float 3.7"), ("3", "got str '3'"), (True, "got bool True"), (None, "got NoneType None"),
    (np.float32(2.0), r"got float32 np.float32\(2.0\)"),
])
def test_step_refuses_non_integer_actions(action, got):
    env = gym.make(recsim_causal.envs.BANDIT_ID, n_items=10)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"^actions: expected integer item indices \(an int or an integer array\), " + got):
        env.step(action)
    venv = gym.make_vec(recsim_causal.envs.SESSION_ID, num_envs=2, vectorization_mode="vector_entry_point", n_items=10)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=r"^actions: expected integer item indices"):
        venv.step(np.array([action, action]))
    env.reset(seed=0)
    env.step(np.int32(3))  # numpy integers are integers


def test_slate_with_a_repeated_item_is_an_error():
    env = gym.make(recsim_causal.envs.BANDIT_ID, scm="position_bias", n_items=10, slate_size=3)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"^actions: a slate lists distinct items, row 0 repeats one: \[1, 1, 2\]"):
        env.step([1, 1, 2])
    env.step([1, 2, 3])


def test_slate_action_space_is_honest():
    """Samples are L distinct items (single and batched), and the space contains exactly the
    slates the env accepts."""
    env = gym.make(recsim_causal.envs.BANDIT_ID, scm="position_bias", n_items=4, slate_size=3)
    env.action_space.seed(0)
    for _ in range(100):
        a = env.action_space.sample()
        assert len(set(a.tolist())) == 3 and env.action_space.contains(a)
    assert not env.action_space.contains(np.array([1, 1, 2]))
    venv = gym.make_vec(recsim_causal.envs.BANDIT_ID, num_envs=64, vectorization_mode="vector_entry_point",
                        scm="position_bias", n_items=4, slate_size=3)
    venv.reset(seed=0)
    batch = venv.action_space.sample()
    assert batch.shape == (64, 3) and all(len(set(row)) == 3 for row in batch.tolist())
    venv.step(batch)
