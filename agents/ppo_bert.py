"""PPO over BERT item embeddings: Stable-Baselines3 PPO with an item-scoring action head.

The policy scores item k for observation x as

    logits[b, k] = < f(x_b), W e_k > / sqrt(h) + c_k

where f is the state tower (an MLP, h units, SB3's ``mlp_extractor`` policy branch), e_k the
fixed text embedding of item k (``recsim_causal.embeddings.encode_texts(catalog.texts)``,
a (K, D) buffer that is never trained), W a learned (h, D) projection and c_k a learned
item bias. The head has D*h + K parameters: items share what their texts share, and a
catalog of any size costs one matrix product. The value head is a linear map of the value
branch of the state tower, as in SB3's ``ActorCriticPolicy``.

PPO itself is SB3's (Schulman et al., 2017, "Proximal Policy Optimization Algorithms"),
not a fork, used through its extension points only: the head is an ``ActorCriticPolicy``
subclass (``ItemEmbeddingPolicy``, passed as PPO's policy class with ``policy_kwargs``); PPO
is built when ``learn`` is given an env (``PPO(ItemEmbeddingPolicy, env, seed=...)``: SB3
seeds its generators and the env, as for any SB3 model); progress and training curves come
from a callback and an SB3 logger output (``KVWriter``). Training runs on a native Gymnasium
vector env through ``recsim_causal.envs.sb3.SB3VecEnv``. On a torch-backend world the adapter
runs in tensor mode and PPO is ``recsim_causal.agents.torch_rollout.TorchRolloutPPO``: rollouts
stay tensors on the device (no numpy per step), SB3's ``PPO.train`` trains on them.

Learning from feedback (``update``): PPO is on-policy, and the runner's online loop feeds
back what this policy itself chose, so ``update`` buffers (context, action, reward) with the
policy's log-probability and value at the time, and every ``update_every`` rows runs SB3's
PPO update (``PPO.train``) on them as one-step episodes: advantage = reward - V(x), the
clipped objective, ``n_epochs`` passes. Sessions are learned by ``learn`` (their returns need
the env's dynamics): after ``learn`` on a multi-step env, ``update`` learns only when
``update_every`` is set.

Saved models (``save``/``load``) are a folder: ``ppo_bert.json`` (our settings and counters,
plain JSON) beside ``policy.pt`` and ``optimizer.pt`` (state dicts, read with
``torch.load(weights_only=True)``: tensors and numbers only, no pickled objects are
executed). SB3's own zip is not used because its ``data`` entry is cloudpickled (spaces,
schedules): loading it would unpickle whatever the file holds. ``load`` refuses a folder
whose JSON was not written by ``PPOBert.save``.
"""

from __future__ import annotations

import json
import math
import numbers
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger, make_output_format
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from recsim_causal.agents.base import BasePolicy, check_int
from recsim_causal.agents.torch_rollout import TorchRolloutBuffer, TorchRolloutPPO
from recsim_causal.config import check_keys
from recsim_causal.io import write_json
from recsim_causal.progress import progress
from recsim_causal.scm.backend import resolve_device
from recsim_causal.threads import torch_threads

__all__ = ["ItemScoringHead", "ItemEmbeddingPolicy", "PPOBert"]

#: What ``save`` writes into ``ppo_bert.json`` and ``load`` insists on.
FORMAT = "recsim_causal.PPOBert"
FORMAT_VERSION = 1
#: SB3 logger keys kept as training curves (learn_stats["curves"], the tracker's ``ppo/*``).
CURVE_KEYS = ("rollout/ep_rew_mean", "train/loss", "train/policy_gradient_loss", "train/value_loss",
              "train/entropy_loss", "train/approx_kl", "train/clip_fraction", "train/explained_variance", "time/fps")


class ItemScoringHead(nn.Module):
    """Logits of K items from a state latent: ``latent @ (E W^T)^T / sqrt(h) + bias``.

    Args:
        latent_dim: h, the width of the state tower's output.
        item_embeddings: (K, D) fixed item embeddings, registered as a buffer.
    """

    def __init__(self, latent_dim: int, item_embeddings: np.ndarray | th.Tensor):
        super().__init__()
        emb = th.as_tensor(np.asarray(item_embeddings, dtype=np.float32))
        if emb.ndim != 2:
            raise ValueError(f"item_embeddings: expected shape (K, D), got {tuple(emb.shape)}")
        self.register_buffer("item_embeddings", emb)
        self.proj = nn.Linear(emb.shape[1], latent_dim, bias=False)
        self.item_bias = nn.Parameter(th.zeros(emb.shape[0]))
        self.scale = 1.0 / math.sqrt(latent_dim)
        nn.init.orthogonal_(self.proj.weight, gain=1.0)

    def forward(self, latent: th.Tensor) -> th.Tensor:
        items = self.proj(self.item_embeddings)  # (K, h)
        return latent @ items.T * self.scale + self.item_bias  # (B, K)


class ItemEmbeddingPolicy(ActorCriticPolicy):
    """SB3 ``ActorCriticPolicy`` whose action net is an ``ItemScoringHead`` over fixed item embeddings.

    Takes ``ActorCriticPolicy``'s arguments plus ``item_embeddings`` (K, D), K being the
    size of the ``Discrete`` action space. Pass it as ``PPO(ItemEmbeddingPolicy, env,
    policy_kwargs={"item_embeddings": E, "net_arch": ...})``.
    """

    def __init__(self, observation_space, action_space, lr_schedule, *args, item_embeddings=None, **kwargs):
        if item_embeddings is None:
            raise ValueError("ItemEmbeddingPolicy: item_embeddings (K, D) is required")
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ValueError(
                f"ItemEmbeddingPolicy: the action space must be Discrete(K) (slate_size=1), got {action_space}"
            )
        self.item_embeddings = np.asarray(item_embeddings, dtype=np.float32)
        if self.item_embeddings.ndim != 2 or self.item_embeddings.shape[0] != action_space.n:
            raise ValueError(
                f"item_embeddings: expected shape ({action_space.n}, D) for Discrete({action_space.n}), "
                f"got {self.item_embeddings.shape}"
            )
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        self.action_net = ItemScoringHead(self.mlp_extractor.latent_dim_pi, self.item_embeddings)
        # Rebuild the optimizer: the one super() made holds the replaced Linear action net.
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["item_embeddings"] = self.item_embeddings
        return data


class _Curves(KVWriter):
    """An SB3 logger output: keeps every dump's curve values and sends them to a tracker."""

    def __init__(self, tracker: Any = None, offset: int = 0):
        self.tracker, self.offset = tracker, offset
        self.steps: list[int] = []
        self.values: dict[str, list[float | None]] = {k: [] for k in CURVE_KEYS}

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        # numbers.Real: SB3 logs some values as numpy float32 (train/approx_kl), which is not a float
        row = {k: float(key_values[k]) for k in CURVE_KEYS
               if isinstance(key_values.get(k), numbers.Real) and not isinstance(key_values[k], bool)}
        if not row:
            return
        self.steps.append(int(step))
        for k in CURVE_KEYS:
            self.values[k].append(row.get(k))
        if self.tracker is not None:
            self.tracker.curve("ppo", int(step), row)  # x axis: PPO's env steps (ppo/step)

    def close(self) -> None:
        pass


class _Progress(BaseCallback):
    """SB3 callback: advances a ``recsim_causal.progress`` reporter by the env steps taken, and
    dumps the last update's losses (SB3 dumps before each update, so the last one would be lost)."""

    def __init__(self, bar: Any):
        super().__init__()
        self.bar = bar

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        return True

    def _on_rollout_end(self) -> None:
        reward = self.logger.name_to_value.get("rollout/ep_rew_mean")
        if reward is not None:
            self.bar.set_postfix_str(f"ep_rew_mean {reward:.4f}")

    def _on_training_end(self) -> None:
        if any(k.startswith("train/") for k in self.logger.name_to_value):
            self.logger.dump(self.num_timesteps)


class PPOBert(BasePolicy):
    """PPO over BERT item embeddings, behind the Policy contract (``action_probs`` / ``act`` / ``update``).

    Args:
        n_actions: K, the number of items.
        dim: the observation (context) dimension.
        item_texts: K item descriptions (``world.catalog.texts``), encoded with ``encoder``.
        item_embeddings: (K, D) embeddings, instead of ``item_texts``. With neither, the texts
            are read from the env at the first ``learn`` (``venv.unwrapped.world.catalog.texts``).
        encoder: see ``recsim_causal.embeddings.encode_texts`` (``"default"``: all-MiniLM-L6-v2).
        hidden: h, width of the two-layer state tower (policy and value branches).
        n_steps, batch_size, n_epochs, learning_rate, ent_coef, gamma: SB3 PPO's. ``n_steps``
            is per env: a rollout holds ``n_steps * num_envs`` transitions.
        total_timesteps: default budget of ``learn``.
        update_every: rows of feedback ``update`` gathers before one PPO update (0: ``update``
            learns nothing; None: one rollout's worth, ``n_steps * num_envs`` of the last
            ``learn``, when that env is a one-step (bandit) env, else 0).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda[:i]"``; asking for CUDA on
            a machine without it is a one-line ``ValueError``. The device used is in
            ``learn_stats["device"]`` and in the line printed when training starts.
        seed: SB3's seed (``PPO(seed=...)``: SB3 seeds Python's, numpy's and torch's generators
            and the env, as it does for any model), also used for the initial weights before
            any env is known and for ``act``'s default generator.
        cpu_threads: torch intra-op threads while training or scoring on the CPU (None: leave
            torch's setting alone).
        encode_kwargs: extra keyword arguments of ``encode_texts`` (e.g. ``cache_dir``).
        progress: show a progress display while ``learn`` runs (``recsim_causal.progress``).
        **ppo_kwargs: any other ``stable_baselines3.PPO`` argument (``clip_range``, ``vf_coef``...).
    """

    def __init__(
        self,
        n_actions: int,
        dim: int,
        item_texts: Sequence[str] | None = None,
        item_embeddings: np.ndarray | None = None,
        encoder: Any = "default",
        hidden: int = 64,
        n_steps: int = 16,
        batch_size: int = 512,
        n_epochs: int = 4,
        learning_rate: float = 3e-3,
        ent_coef: float = 0.0,
        gamma: float = 0.99,
        total_timesteps: int = 500_000,
        update_every: int | None = None,
        device: str = "auto",
        seed: int = 0,
        encode_kwargs: dict[str, Any] | None = None,
        cpu_threads: int | None = 1,
        progress: bool = True,
        verbose: int = 0,
        **ppo_kwargs: Any,
    ):
        super().__init__(n_actions, dim, seed)
        self.encoder = encoder
        self.hidden = check_int(self.name, "hidden", hidden, 1)
        self.total_timesteps = check_int(self.name, "total_timesteps", total_timesteps, 0)
        self.update_every = None if update_every is None else check_int(self.name, "update_every", update_every, 0)
        self.device = resolve_device(device)
        self.device_request = str(device)
        self.cpu_threads = cpu_threads
        self.progress = bool(progress)
        self.encode_kwargs = dict(encode_kwargs or {})
        self.ppo_kwargs = dict(
            n_steps=check_int(self.name, "n_steps", n_steps, 1),
            batch_size=check_int(self.name, "batch_size", batch_size, 1),
            n_epochs=check_int(self.name, "n_epochs", n_epochs, 1),
            learning_rate=float(learning_rate),
            ent_coef=float(ent_coef),
            gamma=float(gamma),
            verbose=verbose,
            **ppo_kwargs,
        )
        self._params.update(
            encoder=encoder if isinstance(encoder, str) else type(encoder).__name__,
            hidden=self.hidden,
            total_timesteps=self.total_timesteps,
            device=self.device_request,
            **{k: v for k, v in self.ppo_kwargs.items() if k != "verbose"},
        )
        self.model: PPO | None = None
        self.policy: ItemEmbeddingPolicy | None = None
        self.item_embeddings: np.ndarray | None = None
        self.num_timesteps = 0
        self.learn_stats: dict[str, Any] = {}  # the last learn(): timesteps, wall_s, steps_per_s, num_envs, device, curves
        self._feedback_rows: list[tuple[np.ndarray, ...]] = []
        self._rollout_rows = self.ppo_kwargs["n_steps"] * 256
        if item_embeddings is not None:
            self._set_embeddings(item_embeddings)
        elif item_texts is not None:
            self._set_embeddings(self._encode(item_texts))

    # -- construction -----------------------------------------------------------------------

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        from recsim_causal.embeddings import encode_texts

        if len(texts) != self.n_actions:
            raise ValueError(f"item_texts: expected {self.n_actions} texts (n_actions), got {len(texts)}")
        return encode_texts(list(texts), self.encoder, **self.encode_kwargs)

    def _set_embeddings(self, embeddings: np.ndarray) -> None:
        """Keep the embeddings and build the initial policy (SB3's class, seeded by SB3's seeding)."""
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != self.n_actions:
            raise ValueError(f"item_embeddings: expected shape ({self.n_actions}, D), got {emb.shape}")
        self.item_embeddings = emb
        set_random_seed(self.seed)  # what PPO(seed=...) does first: the initial weights are the seed's
        lr = self.ppo_kwargs["learning_rate"]
        self.policy = ItemEmbeddingPolicy(
            gym.spaces.Box(-np.inf, np.inf, (self.dim,), np.float32), gym.spaces.Discrete(self.n_actions),
            lambda _: lr, **self._policy_kwargs(),
        ).to(self.device)

    def _policy_kwargs(self) -> dict[str, Any]:
        arch = [self.hidden, self.hidden]
        return dict(item_embeddings=self.item_embeddings, net_arch=dict(pi=arch, vf=arch), activation_fn=nn.Tanh)

    def _require_policy(self) -> ItemEmbeddingPolicy:
        if self.policy is None:
            raise RuntimeError(
                "PPOBert has no item embeddings yet: pass item_texts= or item_embeddings=, "
                "or call learn(vec_env) on an env whose world has a catalog"
            )
        return self.policy

    def _wrap(self, vec_env: Any) -> VecEnv:
        from recsim_causal.envs.sb3 import SB3VecEnv

        if isinstance(vec_env, VecEnv):
            return vec_env
        if isinstance(vec_env, gym.vector.VectorEnv):
            return SB3VecEnv(vec_env)
        raise TypeError(
            f"learn: expected a gymnasium.vector.VectorEnv (gym.make_vec(...)) or an SB3 VecEnv, "
            f"got {type(vec_env).__name__}"
        )

    def _check_spaces(self, env: VecEnv) -> None:
        obs, act = env.observation_space, env.action_space
        if not isinstance(act, gym.spaces.Discrete) or act.n != self.n_actions:
            raise ValueError(
                f"{self.name}: the env's action space must be Discrete({self.n_actions}) "
                f"(one item per decision: slate_size=1), got {act}"
            )
        if not isinstance(obs, gym.spaces.Box) or obs.shape != (self.dim,):
            raise ValueError(f"{self.name}: the env's observations must be Box(({self.dim},)) (dim), got {obs}")

    def _model_for(self, env: VecEnv) -> PPO:
        """SB3's PPO on ``env``, carrying this agent's policy (weights and optimizer state) and
        step counter; the same model again while the env is the same.

        A tensor-mode env (``SB3VecEnv`` over a torch-backend world) gets
        ``recsim_causal.agents.torch_rollout.TorchRolloutPPO`` with a ``TorchRolloutBuffer``:
        rollouts stay tensors on the policy's device and SB3's ``PPO.train`` trains on them.
        When the world is on another device than the policy, each step's observations, rewards
        and dones are moved with one ``.to(device)`` (and the actions back by the env), still
        without numpy. A numpy env gets SB3's ``PPO`` as it is."""
        if self.model is not None and self.model.get_env() is env:
            return self.model
        seed = int(np.random.SeedSequence([self.seed, self.num_timesteps]).generate_state(1)[0] >> 1)
        algo, kwargs = PPO, self.ppo_kwargs
        if getattr(env, "tensors", False):
            algo, kwargs = TorchRolloutPPO, {"rollout_buffer_class": TorchRolloutBuffer, **self.ppo_kwargs}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(mini-batch|GPU).*")
            model = algo(ItemEmbeddingPolicy, env, policy_kwargs=self._policy_kwargs(), device=self.device,
                         seed=seed, **kwargs)
        model.policy.load_state_dict(self._require_policy().state_dict())
        model.policy.optimizer.load_state_dict(self.policy.optimizer.state_dict())
        model.num_timesteps = self.num_timesteps
        self.model, self.policy = model, model.policy
        return model

    # -- training ---------------------------------------------------------------------------

    def learn(self, vec_env: Any, total_timesteps: int | None = None, callback: Any = None,
              tracker: Any = None) -> PPOBert:
        """Train with PPO on ``vec_env`` for ``total_timesteps`` env steps (default: the constructor's).

        ``vec_env`` is a native Gymnasium vector env (wrapped in ``recsim_causal.envs.sb3.SB3VecEnv``)
        or an SB3 ``VecEnv``. Calling ``learn`` again continues training (timesteps accumulate;
        weights and optimizer state are kept, also on another env). A progress display runs
        while it trains; SB3's training curves (episode reward, losses, entropy, approx. KL,
        fps) go to ``learn_stats["curves"]`` and, with a ``tracker``
        (``recsim_causal.experiment.tracking.Tracker``), to its run as ``ppo/<key>``.
        """
        if self.policy is None:
            world = getattr(getattr(vec_env, "unwrapped", vec_env), "world", None)
            texts = getattr(getattr(world, "catalog", None), "texts", None)
            if texts is None:
                self._require_policy()
            self._set_embeddings(self._encode(texts))
        env = self._wrap(vec_env)
        self._check_spaces(env)
        model = self._model_for(env)
        # update()'s default: one rollout of one-step (bandit) feedback; a session's rows are not
        # one-step episodes, so on a multi-step env update() leaves learning to learn()
        one_step = getattr(env, "autoreset_mode", None) is AutoresetMode.SAME_STEP
        self._rollout_rows = model.n_steps * env.num_envs if one_step else 0
        steps = self.total_timesteps if total_timesteps is None else check_int(self.name, "total_timesteps",
                                                                                  total_timesteps, 0)
        curves = _Curves(tracker)
        stdout = [make_output_format("stdout", "")] if self.ppo_kwargs["verbose"] else []  # SB3's table
        model.set_logger(Logger(folder=None, output_formats=[curves, *stdout]))
        print(f"{self.name}: training on {self.device} (device={self.device_request}), {steps:,} env steps, "
              f"{env.num_envs} envs", file=sys.stderr, flush=True)
        start, t0 = model.num_timesteps, time.perf_counter()
        with torch_threads(self.cpu_threads if self.device.type == "cpu" else None), \
                progress(steps, desc=self.name, unit="step", enabled=self.progress) as bar:
            callbacks = [_Progress(bar)] + ([callback] if callback is not None else [])
            model.learn(total_timesteps=steps, callback=callbacks, reset_num_timesteps=False)
        wall = time.perf_counter() - t0
        self.num_timesteps = model.num_timesteps
        done = model.num_timesteps - start
        self.learn_stats = {"timesteps": done, "wall_s": wall, "steps_per_s": done / wall if wall > 0 else 0.0,
                            "num_envs": env.num_envs, "device": str(self.device),
                            "curves": {"steps": curves.steps, **curves.values}}
        return self

    # -- Policy contract --------------------------------------------------------------------

    def _obs(self, contexts: Any) -> th.Tensor:
        """Contexts as float32 on the policy's device: tensors stay where they are (a torch world
        on the same device never round-trips through numpy)."""
        if isinstance(contexts, th.Tensor):
            if contexts.ndim != 2 or contexts.shape[1] != self.dim:
                raise ValueError(f"{self.name}: contexts have shape {tuple(contexts.shape)}, expected (B, dim={self.dim})")
            return contexts.to(device=self.device, dtype=th.float32)
        return th.as_tensor(self._contexts(contexts), dtype=th.float32, device=self.device)

    @th.no_grad()
    def action_probs(self, contexts: Any) -> np.ndarray:
        """pi(a | x) for a batch of contexts: (B, dim) -> (B, K) float64, rows summing to 1."""
        policy = self._require_policy()
        policy.set_training_mode(False)
        obs = self._obs(contexts)
        with torch_threads(self.cpu_threads if self.device.type == "cpu" else None):
            # float64 softmax of the logits: rows sum to 1 to ~1e-16, not float32's ~1e-7
            logits = policy.get_distribution(obs).distribution.logits
            return th.softmax(logits.double(), dim=1).cpu().numpy()

    def update(self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Learn from feedback on this policy's own choices (see the module docstring): buffer
        the rows with their log-probability and value now, and run one PPO update (SB3's
        ``PPO.train``) every ``update_every`` rows. Needs a model (after ``learn``); before it,
        and with ``update_every=0``, nothing is learned."""
        every = self._rollout_rows if self.update_every is None else self.update_every
        if every == 0 or self.model is None:
            return
        x, a, r = self._feedback(contexts, actions, rewards)
        policy = self.policy
        policy.set_training_mode(False)
        with th.no_grad():
            obs = th.as_tensor(x, dtype=th.float32, device=self.device)
            value, log_prob, _ = policy.evaluate_actions(obs, th.as_tensor(a, device=self.device))
        self._feedback_rows.append((x.astype(np.float32), a, r.astype(np.float32), value.flatten(), log_prob))
        if sum(len(row[1]) for row in self._feedback_rows) >= every:
            self._train_on_feedback()

    def _train_on_feedback(self) -> None:
        x, a, r, values, log_probs = (np.concatenate(c) if i < 3 else th.cat(c)
                                      for i, c in enumerate(zip(*self._feedback_rows)))
        self._feedback_rows = []
        model, n = self.model, len(a)
        # one-step episodes, one per "env": buffer_size 1, n_envs = n rows (one add, no Python loop)
        buffer = RolloutBuffer(1, model.observation_space, model.action_space, device=self.device,
                               gamma=model.gamma, gae_lambda=model.gae_lambda, n_envs=n)
        buffer.add(x, a[:, None], r, np.ones(n, dtype=np.float32), values, log_probs)
        buffer.compute_returns_and_advantage(last_values=th.zeros(n, device=self.device), dones=np.ones(n))
        rollout, model.rollout_buffer = model.rollout_buffer, buffer
        try:
            with torch_threads(self.cpu_threads if self.device.type == "cpu" else None):
                model.train()
        finally:
            model.rollout_buffer = rollout

    # -- persistence ------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the agent to the folder ``path``: ``ppo_bert.json`` (settings, counters),
        ``policy.pt`` and ``optimizer.pt`` (state dicts). Returns the folder."""
        policy = self._require_policy()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        th.save({k: v.detach().cpu() for k, v in policy.state_dict().items()}, path / "policy.pt")
        th.save(policy.optimizer.state_dict(), path / "optimizer.pt")
        write_json(path / "ppo_bert.json", {"format": FORMAT, "version": FORMAT_VERSION,
                                            "settings": self._settings(), "num_timesteps": self.num_timesteps,
                                            "embedding_shape": list(self.item_embeddings.shape)})
        return path

    def _settings(self) -> dict[str, Any]:
        return dict(
            n_actions=self.n_actions,
            dim=self.dim,
            seed=self.seed,
            encoder=self.encoder if isinstance(self.encoder, str) else "default",
            hidden=self.hidden,
            total_timesteps=self.total_timesteps,
            update_every=self.update_every,
            encode_kwargs=self.encode_kwargs,
            cpu_threads=self.cpu_threads,
            progress=self.progress,
            **self.ppo_kwargs,
        )

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> PPOBert:
        """Read an agent written by :meth:`save` onto ``device``. Nothing is unpickled: the JSON is
        parsed, the state dicts are read with ``torch.load(weights_only=True)``; a folder without
        our JSON is refused."""
        path = Path(path)
        meta_path = path / "ppo_bert.json"
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{cls.__name__}.load: {path} is not a folder written by {cls.__name__}.save "
                             f"({type(e).__name__}: {e})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"{cls.__name__}.load: {meta_path} was not written by {cls.__name__}.save "
                             f"(expected format {FORMAT!r} version {FORMAT_VERSION})")
        check_keys(meta, ("format", "version", "settings", "num_timesteps", "embedding_shape"),
                   f"{cls.__name__}.load: {meta_path}")
        dev = resolve_device(device)
        state = th.load(path / "policy.pt", map_location=dev, weights_only=True)
        settings = {**meta["settings"], "device": str(dev)}
        agent = cls(**settings, item_embeddings=state["action_net.item_embeddings"].cpu().numpy())
        agent.policy.load_state_dict(state)
        agent.policy.optimizer.load_state_dict(th.load(path / "optimizer.pt", map_location=dev, weights_only=True))
        agent.num_timesteps = int(meta["num_timesteps"])
        return agent
