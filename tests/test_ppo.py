"""PPO over BERT item embeddings, and the SB3 VecEnv adapter over the native vector envs."""

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from transformers import BertConfig

import recsim_causal.envs
from recsim_causal.agents.base import check_policy
from recsim_causal.agents.ppo_bert import ItemEmbeddingPolicy, PPOBert
from recsim_causal.agents.torch_rollout import TorchRolloutBuffer, TorchRolloutPPO
from recsim_causal.envs.sb3 import SB3VecEnv, TensorStepInfos
from stable_baselines3.common.buffers import RolloutBuffer
from recsim_causal.embeddings import encode_texts

K = 20
TRAIN = dict(n_steps=8, batch_size=256, n_epochs=4, learning_rate=3e-3, hidden=64, device="cpu")


def tiny_encoder():
    return BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                      max_position_embeddings=64)


def bandit(num_envs, **kw):
    return gym.make_vec(recsim_causal.envs.BANDIT_ID, num_envs=num_envs, vectorization_mode="vector_entry_point",
                        **{"n_items": K, **kw})


@pytest.fixture(scope="module")
def item_embeddings():
    texts = bandit(1).unwrapped.world.catalog.texts
    return encode_texts(texts, tiny_encoder(), use_cache=False)


@pytest.fixture(scope="module")
def held_out():
    """20,000 fresh users: their contexts and the exact E[r | x, do(a)] of every item."""
    venv = bandit(20_000)
    x, _ = venv.reset(seed=12345)
    *_, info = venv.step(np.zeros(20_000, dtype=np.int64))
    return x, info["expected_reward"]


def policy_value(agent, held_out):
    x, q = held_out
    return float((agent.action_probs(x) * q).sum(axis=1).mean())


@pytest.fixture(scope="module")
def trained(item_embeddings):
    agent = PPOBert(K, 16, item_embeddings=item_embeddings, seed=0, **TRAIN)
    agent.learn(bandit(256), total_timesteps=60_000)
    return agent


# ---------------------------------------------------------------------------- PPOBert


def test_ppo_learns_to_beat_random(trained, item_embeddings, held_out):
    """The exact value of the learned policy closes most of the gap between random and the oracle."""
    x, q = held_out
    random_value, oracle = q.mean(), q.max(axis=1).mean()
    untrained = PPOBert(K, 16, item_embeddings=item_embeddings, seed=0, **TRAIN)
    assert abs(policy_value(untrained, held_out) - random_value) < 0.02  # starts near uniform
    gain = (policy_value(trained, held_out) - random_value) / (oracle - random_value)
    assert gain > 0.4, f"PPO closed {gain:.0%} of the random-to-oracle gap"


def test_action_probs_and_act_follow_the_contract(trained, held_out):
    x = held_out[0][:500]
    check_policy(trained, x, np.random.default_rng(0))
    probs = trained.action_probs(x)
    assert probs.dtype == np.float64 and probs.shape == (500, K)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    actions, pscores = trained.act(x, np.random.default_rng(1))
    np.testing.assert_array_equal(pscores, probs[np.arange(500), actions])
    again, _ = trained.act(x, np.random.default_rng(1))
    np.testing.assert_array_equal(actions, again)  # the rng passed in is the only randomness
    np.testing.assert_array_equal(trained.action_probs(torch.as_tensor(x)), probs)  # tensors are taken as they are


@pytest.mark.slow
def test_update_learns_from_its_own_feedback(item_embeddings, held_out):
    """update() runs PPO on the policy's own (context, action, reward) rows: from an untrained
    policy, feedback alone (no learn) closes part of the random-to-oracle gap."""
    x_all, q_all = held_out
    agent = PPOBert(K, 16, item_embeddings=item_embeddings, seed=0, update_every=4096, **TRAIN)
    env = bandit(1024)
    agent.learn(env, total_timesteps=0)  # builds the SB3 model, trains nothing
    start = policy_value(agent, held_out)
    obs, _ = env.reset(seed=1)
    rng = np.random.default_rng(0)
    before = agent.action_probs(x_all[:50])
    for t in range(60):
        a, _ = agent.act(obs, rng)
        nxt, r, *_ = env.step(a)
        agent.update(obs, a, r)
        obs = nxt
        if t == 2:  # 3 * 1024 rows buffered, under update_every: nothing learned yet
            np.testing.assert_array_equal(agent.action_probs(x_all[:50]), before)
    random_value, oracle = q_all.mean(), q_all.max(axis=1).mean()
    gain = (policy_value(agent, held_out) - start) / (oracle - random_value)
    assert gain > 0.2, f"update() closed {gain:.0%} of the gap"
    frozen = PPOBert(K, 16, item_embeddings=item_embeddings, seed=0, update_every=0, **TRAIN)
    frozen.learn(env, total_timesteps=0)
    p0 = frozen.action_probs(x_all[:50])
    frozen.update(obs, a, r)
    np.testing.assert_array_equal(frozen.action_probs(x_all[:50]), p0)


def test_head_scores_items_through_their_embeddings(trained, item_embeddings):
    policy = trained.model.policy
    assert isinstance(policy, ItemEmbeddingPolicy)
    head = policy.action_net
    np.testing.assert_array_equal(head.item_embeddings.cpu().numpy(), item_embeddings)
    latent = torch.randn(5, 64)
    manual = latent @ head.proj(head.item_embeddings).T / 8.0 + head.item_bias
    torch.testing.assert_close(head(latent), manual)
    assert not head.item_embeddings.requires_grad
    assert "action_net.item_embeddings" not in dict(policy.named_parameters())


def test_save_load_round_trip(trained, held_out, tmp_path):
    x = held_out[0][:1000]
    path = trained.save(tmp_path / "ppo")
    assert sorted(p.name for p in path.iterdir()) == ["optimizer.pt", "policy.pt", "ppo_bert.json"]
    loaded = PPOBert.load(tmp_path / "ppo", device="cpu")
    assert (loaded.n_actions, loaded.dim, loaded.hidden) == (K, 16, 64)
    np.testing.assert_array_equal(loaded.action_probs(x), trained.action_probs(x))
    np.testing.assert_array_equal(loaded.item_embeddings, trained.item_embeddings)
    steps = loaded.num_timesteps
    assert steps == trained.num_timesteps > 0
    loaded.learn(bandit(32), total_timesteps=256)  # training continues, on another number of envs
    assert loaded.num_timesteps == steps + 256


def test_load_refuses_files_it_did_not_write(trained, tmp_path):
    path = trained.save(tmp_path / "ppo")
    (path / "ppo_bert.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="was not written by PPOBert.save"):
        PPOBert.load(path)
    with pytest.raises(ValueError, match="is not a folder written by PPOBert.save"):
        PPOBert.load(tmp_path / "missing")
    import pickle

    class Boom:
        def __reduce__(self):
            return (print, ("unpickled!",))

    trained.save(tmp_path / "evil")
    (tmp_path / "evil" / "policy.pt").write_bytes(pickle.dumps({"w": Boom()}))
    with pytest.raises(pickle.UnpicklingError):  # weights_only: no code in the file is run
        PPOBert.load(tmp_path / "evil")


def test_learn_reports_progress_device_and_curves(item_embeddings, capsys):
    class Tracker:
        def __init__(self):
            self.rows = []

        def curve(self, name, step, values):  # the tracker's curve protocol (tracking.Tracker.curve)
            self.rows.append((step, {f"{name}/{k}": v for k, v in values.items()}))

    tracker = Tracker()
    agent = PPOBert(K, 16, item_embeddings=item_embeddings, seed=0, **TRAIN)
    agent.learn(bandit(64), total_timesteps=64 * 8 * 3, tracker=tracker)
    err = capsys.readouterr().err
    assert "PPOBert: training on cpu (device=cpu)" in err
    curves = agent.learn_stats["curves"]
    assert curves["steps"] == [512, 1024, 1536, 1536]  # a dump per rollout, and the last update's losses
    assert all(v is not None for v in curves["train/entropy_loss"][1:]) and curves["train/entropy_loss"][0] is None
    assert all(v > 0 for v in curves["time/fps"][:3])
    assert all(v is not None and v >= 0 for v in curves["train/approx_kl"][1:])  # SB3 logs it as numpy float32
    assert [s for s, _ in tracker.rows] == curves["steps"]
    assert "ppo/train/value_loss" in tracker.rows[-1][1]
    assert agent.learn_stats["device"] == "cpu"
    with pytest.raises(ValueError, match="device: 'cuda' was asked for, but torch .* sees no CUDA device"):
        if torch.cuda.is_available():
            raise ValueError("device: 'cuda' was asked for, but torch x sees no CUDA device")
        PPOBert(K, 16, item_embeddings=item_embeddings, device="cuda")


def test_ppo_end_to_end_on_the_torch_backend(item_embeddings, held_out):
    """The torch world (CPU here, the GPU in gpu_check.sh) trains PPO like the numpy one."""
    venv = bandit(256, backend="torch", device="cpu")
    agent = PPOBert(K, 16, item_embeddings=item_embeddings, seed=0, **TRAIN)
    agent.learn(venv, total_timesteps=30_000)
    assert type(agent.model) is TorchRolloutPPO  # rollouts as tensors (see test_torch_backend_rollouts_*)
    x, q = held_out
    random_value, oracle = q.mean(), q.max(axis=1).mean()
    assert (policy_value(agent, held_out) - random_value) / (oracle - random_value) > 0.25
    obs, _ = venv.reset(seed=0)
    assert torch.is_tensor(obs)
    np.testing.assert_allclose(agent.action_probs(obs), agent.action_probs(obs.numpy()))


def session(num_envs, **kw):
    return gym.make_vec(recsim_causal.envs.SESSION_ID, num_envs=num_envs, vectorization_mode="vector_entry_point",
                        **{"n_items": K, **kw})


# ---------------------------------------------------------------------------- tensor rollouts (torch worlds)


def test_torch_rollout_buffer_matches_sb3s():
    """GAE advantages, returns and the minibatches of TorchRolloutBuffer equal SB3's RolloutBuffer's
    on the same random rollout (episode starts inside it, dones and a value at its end)."""
    n_steps, n_envs, gamma, lam = 9, 5, 0.95, 0.9
    obs_space, act_space = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32), gym.spaces.Discrete(7)
    rng = np.random.default_rng(0)
    ours = TorchRolloutBuffer(n_steps, obs_space, act_space, device="cpu", gamma=gamma, gae_lambda=lam, n_envs=n_envs)
    sb3 = RolloutBuffer(n_steps, obs_space, act_space, device="cpu", gamma=gamma, gae_lambda=lam, n_envs=n_envs)
    for t in range(n_steps):
        obs = rng.normal(size=(n_envs, 3)).astype(np.float32)
        obs[:, 0] = t * n_envs + np.arange(n_envs)  # a row id, to match samples drawn in different orders
        actions = rng.integers(0, 7, n_envs)
        rewards = rng.normal(size=n_envs).astype(np.float32)
        starts = (rng.random(n_envs) < 0.3) | (t == 0)
        values, log_probs = torch.randn(n_envs, 1), torch.randn(n_envs)
        sb3.add(obs, actions[:, None], rewards, starts, values, log_probs)
        ours.add(torch.as_tensor(obs), torch.as_tensor(actions), torch.as_tensor(rewards), torch.as_tensor(starts),
                 values, log_probs)
    last_values, dones = torch.randn(n_envs, 1), rng.random(n_envs) < 0.5
    assert 0 < dones.sum() < n_envs
    sb3.compute_returns_and_advantage(last_values, dones)
    ours.compute_returns_and_advantage(last_values, torch.as_tensor(dones))
    assert isinstance(ours.advantages, torch.Tensor) and isinstance(ours.returns_tensor, torch.Tensor)
    np.testing.assert_allclose(ours.advantages.numpy(), sb3.advantages, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours.returns, sb3.returns, rtol=0, atol=1e-6)
    assert np.abs(sb3.advantages).max() > 0.5  # not a trivially zero rollout

    def samples(buffer, batch_size):
        batches = list(buffer.get(batch_size))
        assert all(isinstance(f, torch.Tensor) for b in batches for f in b)
        rows = {f: torch.cat([getattr(b, f) for b in batches]) for f in batches[0]._fields}
        order = torch.argsort(rows["observations"][:, 0])
        return [len(batches)] + [rows[f][order].numpy() for f in batches[0]._fields]

    ours_rows, sb3_rows = samples(ours, 8), samples(sb3, 8)
    assert ours_rows[0] == sb3_rows[0] == 6  # ceil(45 / 8) minibatches
    for a, b in zip(ours_rows[1:], sb3_rows[1:]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def _count_numpy_in_rollouts(monkeypatch):
    """Count Tensor.numpy / np.asarray(tensor) / the adapter's _to_numpy calls made inside
    TorchRolloutPPO.collect_rollouts (and how many rollouts ran)."""
    import recsim_causal.envs.sb3 as sb3_module

    counts = {"numpy": 0, "rollouts": 0}
    inside = [False]
    tensor_numpy, to_numpy = torch.Tensor.numpy, sb3_module._to_numpy
    collect = TorchRolloutPPO.collect_rollouts

    def counted_numpy(self, *args, **kwargs):
        # not counted: the world's own CPU kernel (TorchBackend.max_argmax reads a CPU tensor through
        # a zero-copy numpy view; on a GPU it is torch's): no copy, nothing leaves the device
        caller = sys._getframe(1).f_code.co_filename
        counts["numpy"] += inside[0] and not caller.endswith(os.path.join("scm", "backend.py"))
        return tensor_numpy(self, *args, **kwargs)

    def counted_to_numpy(x):
        counts["numpy"] += inside[0]
        return to_numpy(x)

    def counted_collect(self, *args, **kwargs):
        inside[0] = True
        counts["rollouts"] += 1
        try:
            return collect(self, *args, **kwargs)
        finally:
            inside[0] = False

    monkeypatch.setattr(torch.Tensor, "numpy", counted_numpy)
    monkeypatch.setattr(sb3_module, "_to_numpy", counted_to_numpy)
    monkeypatch.setattr(TorchRolloutPPO, "collect_rollouts", counted_collect)
    return counts


@pytest.mark.parametrize("make_env", [bandit, session], ids=["bandit", "session"])
def test_torch_backend_rollouts_never_touch_numpy(make_env, item_embeddings, monkeypatch):
    """On a torch world PPO collects its rollouts as tensors: no numpy conversion inside
    collect_rollouts, and the rollout buffer holds tensors on the policy's device."""
    venv = make_env(64, backend="torch", device="cpu")
    dim = venv.single_observation_space.shape[0]
    agent = PPOBert(K, dim, item_embeddings=item_embeddings, seed=0, progress=False, **TRAIN)
    counts = _count_numpy_in_rollouts(monkeypatch)
    agent.learn(venv, total_timesteps=64 * 8 * 3)
    assert counts == {"numpy": 0, "rollouts": 3}
    model = agent.model
    assert type(model) is TorchRolloutPPO and isinstance(model.rollout_buffer, TorchRolloutBuffer)
    assert model.get_env().tensors
    buf = model.rollout_buffer
    for name in ("observations", "actions", "rewards", "episode_starts", "log_probs", "advantages",
                 "values_tensor", "returns_tensor"):
        x = getattr(buf, name)
        assert isinstance(x, torch.Tensor) and x.device == agent.device, name
    assert isinstance(model._last_obs, torch.Tensor)
    assert len(model.ep_info_buffer) > 0  # episode statistics reached SB3 (rollout/ep_rew_mean)
    curves = agent.learn_stats["curves"]
    assert all(np.isfinite(v) for v in curves["rollout/ep_rew_mean"][:3])


def test_numpy_worlds_keep_sb3s_rollouts(item_embeddings):
    agent = PPOBert(K, 16, item_embeddings=item_embeddings, seed=0, progress=False, **TRAIN)
    agent.learn(bandit(16), total_timesteps=16 * 8)
    assert type(agent.model).__name__ == "PPO" and type(agent.model.rollout_buffer) is RolloutBuffer
    assert not agent.model.get_env().tensors


def test_ppo_on_the_torch_session_env_returns_finite_curves(item_embeddings):
    """Session-v0 (next-step autoreset, partial resets, truncation at 20 steps: the timeout
    bootstrapping path) trains through the tensor rollouts."""
    venv = session(64, backend="torch", device="cpu")
    agent = PPOBert(K, venv.single_observation_space.shape[0], item_embeddings=item_embeddings, seed=0,
                    progress=False, **TRAIN)
    agent.learn(venv, total_timesteps=64 * 8 * 8)
    assert type(agent.model) is TorchRolloutPPO
    curves = agent.learn_stats["curves"]
    assert len(curves["steps"]) == 9
    for key in ("rollout/ep_rew_mean", "train/loss", "train/value_loss", "train/entropy_loss", "train/approx_kl"):
        values = [v for v in curves[key] if v is not None]
        assert len(values) >= 7 and np.isfinite(values).all(), key
    lengths = [e["l"] for e in agent.model.ep_info_buffer]
    assert max(lengths) <= 20 and min(lengths) >= 1


def test_seeded_training_is_reproducible_on_the_torch_backend(item_embeddings):
    def train(seed):
        agent = PPOBert(K, 16, item_embeddings=item_embeddings, seed=seed, progress=False, **TRAIN)
        agent.learn(bandit(64, backend="torch", device="cpu"), total_timesteps=2048)
        assert type(agent.model) is TorchRolloutPPO
        return agent.policy.state_dict()

    first, again, other = train(0), train(0), train(1)
    for name, w in first.items():
        assert torch.equal(w, again[name]), name
    assert any(not torch.equal(w, other[name]) for name, w in first.items() if w.is_floating_point())


def test_learn_reads_texts_from_the_env_and_continues(item_embeddings):
    agent = PPOBert(K, 16, encoder=tiny_encoder(), encode_kwargs={"use_cache": False}, **TRAIN)
    with pytest.raises(RuntimeError, match="no item embeddings yet"):
        agent.action_probs(np.zeros((1, 16)))
    agent.learn(bandit(64), total_timesteps=512)
    np.testing.assert_array_equal(agent.item_embeddings, item_embeddings)
    agent.learn(bandit(16), total_timesteps=128)
    assert agent.num_timesteps == 640


def test_seeded_training_is_reproducible(item_embeddings, held_out):
    """Seeded through SB3 (PPO(seed=...) and the env): the same seed gives the same policy."""

    def train(seed):
        agent = PPOBert(K, 16, item_embeddings=item_embeddings, seed=seed, **TRAIN)
        agent.learn(bandit(64), total_timesteps=2048)
        return agent.action_probs(held_out[0][:200])

    first, again, other = train(0), train(0), train(1)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first - other).max() > 1e-3


def test_errors_name_the_problem(item_embeddings):
    with pytest.raises(ValueError, match=r"expected shape \(20, D\)"):
        PPOBert(K, 16, item_embeddings=item_embeddings[:5])
    agent = PPOBert(K, 16, item_embeddings=item_embeddings, **TRAIN)
    with pytest.raises(ValueError, match="Discrete"):
        agent.learn(bandit(4, slate_size=3), total_timesteps=64)
    with pytest.raises(ValueError, match="expected dim=16"):
        agent.action_probs(np.zeros((3, 5)))


@pytest.mark.gpu
def test_ppo_on_cuda(item_embeddings, held_out):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    agent = PPOBert(K, 16, item_embeddings=item_embeddings, **{**TRAIN, "device": "cuda"})
    agent.learn(bandit(1024), total_timesteps=200_000)
    assert agent.policy.device.type == "cuda"
    check_policy(agent, held_out[0][:100], np.random.default_rng(0))
    x, q = held_out
    assert policy_value(agent, held_out) > q.mean() + 0.4 * (q.max(axis=1).mean() - q.mean())
    on_gpu = PPOBert(K, 16, item_embeddings=item_embeddings, **{**TRAIN, "device": "cuda"})
    venv = bandit(1024, backend="torch", device="cuda")  # the world on the same card
    on_gpu.learn(venv, total_timesteps=200_000)
    obs, _ = venv.reset(seed=0)
    assert obs.is_cuda and on_gpu.action_probs(obs).shape == (1024, K)
    assert policy_value(on_gpu, held_out) > q.mean() + 0.4 * (q.max(axis=1).mean() - q.mean())


# ---------------------------------------------------------------------------- SB3VecEnv


def test_adapter_same_step_bandit():
    venv = bandit(8)
    env = SB3VecEnv(venv)
    assert isinstance(env, VecEnv) and env.num_envs == 8
    assert env.observation_space == venv.single_observation_space and env.action_space == gym.spaces.Discrete(K)
    env.seed(7)
    obs0 = env.reset()
    env.seed(7)
    np.testing.assert_array_equal(env.reset(), obs0)  # SB3's seed() reaches the vector env
    obs1, rewards, dones, infos = env.step(np.arange(8) % K)
    assert obs1.shape == (8, 16) and not np.array_equal(obs1, obs0)  # next users, same step
    assert rewards.dtype == np.float32 and rewards.shape == (8,)
    assert dones.dtype == bool and dones.all()
    assert len(infos) == 8 and len({id(i) for i in infos}) == 8
    for i, info in enumerate(infos):
        np.testing.assert_array_equal(info["terminal_observation"], obs0[i])  # the acted user
        assert info["episode"]["r"] == rewards[i] and info["episode"]["l"] == 1
        assert "TimeLimit.truncated" not in info
    assert env.last_info["expected_reward"].shape == (8, K)
    assert env.get_attr("world", [0, 3]) == [venv.unwrapped.world] * 2
    assert env.env_is_wrapped(gym.Wrapper) == [False] * 8
    with pytest.raises(ValueError, match="for all envs"):
        env.set_attr("render_mode", None, indices=[0])


def test_adapter_episode_window_matches_sb3_buffer():
    env = SB3VecEnv(bandit(300), episode_window=100)
    env.reset()
    _, rewards, _, infos = env.step(np.zeros(300, dtype=np.int64))
    marked = [i for i, info in enumerate(infos) if "episode" in info]
    assert marked == list(range(200, 300))  # SB3 keeps only the last 100 episodes anyway
    env.close()


class Countdown(gym.Env):
    """Episodes of ``length`` steps, reward 1 per step; odd lengths end truncated, even terminated."""

    def __init__(self, length):
        self.length = length
        self.observation_space = gym.spaces.Box(0, 100, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        end = self.t == self.length
        return np.array([self.t], np.float32), 1.0, end and self.length % 2 == 0, end and self.length % 2 == 1, {}


def test_adapter_turns_next_step_autoreset_into_same_step():
    lengths = [1, 2, 3, 4]
    venv = SyncVectorEnv([lambda n=n: Countdown(n) for n in lengths], autoreset_mode=AutoresetMode.NEXT_STEP)
    env = SB3VecEnv(venv)
    obs = env.reset()
    for step in range(1, 13):
        prev = obs
        obs, rewards, dones, infos = env.step(np.zeros(4, dtype=np.int64))
        np.testing.assert_array_equal(rewards, 1.0)  # no step is spent on a reset
        for i, n in enumerate(lengths):
            done = step % n == 0
            assert dones[i] == done
            expect = 0.0 if done else prev[i, 0] + 1
            assert obs[i, 0] == expect  # a done env already shows its next episode's first obs
            if done:
                assert infos[i]["terminal_observation"][0] == n
                assert infos[i].get("TimeLimit.truncated", False) == (n % 2 == 1)
                assert infos[i]["episode"]["l"] == n and infos[i]["episode"]["r"] == n
            else:
                assert infos[i] == {}


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_adapter_on_session_env(backend):
    venv = gym.make_vec(recsim_causal.envs.SESSION_ID, num_envs=64, vectorization_mode="vector_entry_point", n_items=K,
                        backend=backend)
    env = SB3VecEnv(venv)
    env.seed(0)
    obs = env.reset()
    rng = np.random.default_rng(0)
    n_done = n_truncated = 0
    try:
        for _ in range(40):
            prev = obs
            obs, rewards, dones, infos = env.step(rng.integers(0, K, 64))
            for i in np.flatnonzero(dones):
                assert obs[i, -3] == 0.0  # t / max_steps of a fresh session
                assert infos[i]["terminal_observation"][-3] == pytest.approx(prev[i, -3] + 1 / 20)
                if infos[i].get("TimeLimit.truncated", False):  # the budget; a user may also leave at step 20
                    assert infos[i]["episode"]["l"] == 20
                    n_truncated += 1
                else:
                    assert infos[i]["episode"]["l"] <= 20
            live = ~dones
            np.testing.assert_allclose(obs[live, -3], prev[live, -3] + 1 / 20, rtol=1e-6)
            n_done += dones.sum()
    except RuntimeError as err:
        if "reset_mask" in str(err):
            pytest.skip(f"Session-v0's vector env has no partial reset yet: {err}")
        raise
    assert n_done > n_truncated > 0  # sessions ended by leaving and by the 20-step budget
    assert env.reset().shape == (64, venv.single_observation_space.shape[0])


def test_adapter_works_under_sb3_wrappers():
    env = VecNormalize(SB3VecEnv(bandit(16)), norm_reward=False)
    obs = env.reset()
    obs, rewards, dones, infos = env.step(np.zeros(16, dtype=np.int64))
    assert obs.shape == (16, 16) and np.isfinite(obs).all() and len(infos) == 16
    assert "terminal_observation" in infos[0]


class TorchView(gym.vector.VectorWrapper):
    """A numpy vector env seen with torch tensors (observations, rewards, flags), as a torch world gives them."""

    def reset(self, *, seed=None, options=None):
        if options and "reset_mask" in options:
            options = {**options, "reset_mask": options["reset_mask"].numpy()}
        obs, info = self.env.reset(seed=seed, options=options)
        return torch.as_tensor(obs), info

    def step(self, actions):
        obs, r, terminated, truncated, info = self.env.step(actions.numpy())
        return (torch.as_tensor(obs), torch.as_tensor(r), torch.as_tensor(terminated), torch.as_tensor(truncated),
                info)


def test_adapter_tensor_mode_matches_numpy_mode():
    """Tensor mode gives the numpy mode's observations, rewards, dones, infos (on demand) and episode
    statistics (pop_episode_infos, in the order the numpy infos list them), as tensors."""
    lengths = [1, 2, 3, 4, 5]
    make = lambda: SyncVectorEnv([lambda n=n: Countdown(n) for n in lengths],  # noqa: E731
                                 autoreset_mode=AutoresetMode.NEXT_STEP)
    ref, env = SB3VecEnv(make()), SB3VecEnv(TorchView(make()), tensors=True, episode_window=7)
    assert not ref.tensors and env.tensors
    np.testing.assert_array_equal(env.reset().numpy(), ref.reset())
    episodes = []
    for _ in range(150):  # past the compaction of the episode records (every 64 steps)
        obs, rewards, dones, infos = ref.step(np.zeros(5, dtype=np.int64))
        t_obs, t_rewards, t_dones, t_infos = env.step(torch.zeros(5, dtype=torch.int64))
        assert isinstance(t_infos, TensorStepInfos) and len(t_infos) == 5
        assert t_obs.dtype == torch.float32 and t_rewards.dtype == torch.float32 and t_dones.dtype == torch.bool
        np.testing.assert_array_equal(t_obs.numpy(), obs)
        np.testing.assert_array_equal(t_rewards.numpy(), rewards)
        np.testing.assert_array_equal(t_dones.numpy(), dones)
        for info, t_info in zip(infos, t_infos):
            assert info.keys() == t_info.keys()
            if "terminal_observation" in info:
                np.testing.assert_array_equal(t_info["terminal_observation"].numpy(), info["terminal_observation"])
                assert (t_info["episode"]["r"], t_info["episode"]["l"]) == (info["episode"]["r"], info["episode"]["l"])
        np.testing.assert_array_equal(t_infos.timeouts.numpy(), [i.get("TimeLimit.truncated", False) for i in infos])
        episodes += [(i["episode"]["r"], i["episode"]["l"]) for i in infos if "episode" in i]
    popped = env.pop_episode_infos()
    assert [(e["r"], e["l"]) for e in popped] == episodes[-7:]
    assert env.pop_episode_infos() == []  # handed over once


def test_adapter_tensor_mode_on_the_torch_bandit():
    venv = bandit(8, backend="torch", device="cpu")
    env = SB3VecEnv(venv)  # tensor mode: the world is torch's
    assert env.tensors
    obs0 = env.reset()
    obs1, rewards, dones, infos = env.step(torch.arange(8) % K)
    assert isinstance(obs1, torch.Tensor) and obs1.shape == (8, 16) and not torch.equal(obs1, obs0)
    assert dones.all() and not infos.timeouts.any()
    assert torch.equal(infos.terminal_obs, obs0)  # the acted users (the vector env's final_obs)
    assert torch.equal(infos[3]["terminal_observation"], obs0[3]) and infos[3]["episode"]["l"] == 1
    assert [e["r"] for e in env.pop_episode_infos()] == rewards.tolist()
