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
not a fork: the head plugs in through the policy class (``ItemEmbeddingPolicy``).
Training runs on a native Gymnasium vector env through ``recsim_causal.envs.sb3.SB3VecEnv``.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

from recsim_causal.agents.base import BasePolicy, check_int
from recsim_causal.threads import torch_threads

__all__ = ["ItemScoringHead", "ItemEmbeddingPolicy", "PPOBert"]


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


class _SpacesVecEnv(VecEnv):
    """Spaces only: lets PPO be built before a real env exists (it is swapped out by ``learn``)."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space):
        super().__init__(1, observation_space, action_space)

    def reset(self):
        raise RuntimeError("PPOBert: call learn(vec_env, ...) with a real vector env")

    step_async = step_wait = reset  # type: ignore[assignment]

    def close(self) -> None:
        pass

    def get_attr(self, attr_name, indices=None):
        if attr_name == "render_mode":
            return [None]
        raise AttributeError(attr_name)

    def set_attr(self, attr_name, value, indices=None) -> None:
        pass

    def env_method(self, method_name, *method_args, indices=None, **method_kwargs):
        return [None]

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False]


@contextlib.contextmanager
def _private_rng(seed: int | None, *key: int, cuda: bool = False):
    """Seed numpy's and torch's global generators from ``(seed, *key)`` inside, restore them after.

    SB3 draws from the global generators (torch for initial weights and action sampling, numpy
    for minibatch shuffles); this keeps PPOBert reproducible from its own seed while leaving
    the caller's global random state as it was.
    """
    np_state = np.random.get_state()
    devices = list(range(th.cuda.device_count())) if cuda else []
    with th.random.fork_rng(devices=devices):
        if seed is not None:
            entropy = np.random.SeedSequence([seed, *key]).generate_state(2)
            th.manual_seed(int(entropy[0]))
            np.random.seed(int(entropy[1]))
        try:
            yield
        finally:
            np.random.set_state(np_state)


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
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``.
        seed: fixes the initial weights, PPO's sampling and shuffling (drawn from torch's and
            numpy's global generators, seeded from ``(seed, timesteps so far)`` inside ``learn``
            and restored after), the env's first reset and ``act``'s default generator.
        cpu_threads: torch intra-op threads while training or scoring on the CPU (None: leave
            torch's setting alone).
        encode_kwargs: extra keyword arguments of ``encode_texts`` (e.g. ``cache_dir``).
        **ppo_kwargs: any other ``stable_baselines3.PPO`` argument (``clip_range``, ``vf_coef``...).

    Training is PPO's: ``learn(vec_env, total_timesteps)``. ``update`` is a no-op (see there).
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
        device: str = "auto",
        seed: int = 0,
        encode_kwargs: dict[str, Any] | None = None,
        cpu_threads: int | None = 1,
        verbose: int = 0,
        **ppo_kwargs: Any,
    ):
        super().__init__(n_actions, dim, seed)
        self.encoder = encoder
        self.hidden = check_int(self.name, "hidden", hidden, 1)
        self.total_timesteps = check_int(self.name, "total_timesteps", total_timesteps, 0)
        self.device = device
        self.cpu_threads = cpu_threads
        self.encode_kwargs = dict(encode_kwargs or {})
        self.ppo_kwargs = dict(
            n_steps=int(n_steps),
            batch_size=int(batch_size),
            n_epochs=int(n_epochs),
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
            device=device,
            **{k: v for k, v in self.ppo_kwargs.items() if k != "verbose"},
        )
        self.model: PPO | None = None
        self.item_embeddings: np.ndarray | None = None
        self.learn_stats: dict[str, Any] = {}  # the last learn(): timesteps, wall_s, steps_per_s, num_envs, device
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
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != self.n_actions:
            raise ValueError(f"item_embeddings: expected shape ({self.n_actions}, D), got {emb.shape}")
        self.item_embeddings = emb
        obs_space = gym.spaces.Box(-np.inf, np.inf, (self.dim,), np.float32)
        with warnings.catch_warnings(), _private_rng(self.seed, 0):
            warnings.filterwarnings("ignore", message=".*mini-batch.*")  # the 1-env stand-in's buffer is small
            self.model = PPO(
                ItemEmbeddingPolicy,
                _SpacesVecEnv(obs_space, gym.spaces.Discrete(self.n_actions)),
                policy_kwargs=self._policy_kwargs(),
                device=self.device,
                seed=None,  # SB3 would seed the global generators; _private_rng seeds privately
                **self.ppo_kwargs,
            )

    def _policy_kwargs(self) -> dict[str, Any]:
        arch = [self.hidden, self.hidden]
        return dict(item_embeddings=self.item_embeddings, net_arch=dict(pi=arch, vf=arch), activation_fn=nn.Tanh)

    def _require_model(self) -> PPO:
        if self.model is None:
            raise RuntimeError(
                "PPOBert has no item embeddings yet: pass item_texts= or item_embeddings=, "
                "or call learn(vec_env) on an env whose world has a catalog"
            )
        return self.model

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

    # -- training ---------------------------------------------------------------------------

    def learn(self, vec_env: Any, total_timesteps: int | None = None, callback: Any = None) -> PPOBert:
        """Train with PPO on ``vec_env`` for ``total_timesteps`` env steps (default: the constructor's).

        ``vec_env`` is a native Gymnasium vector env (wrapped in ``recsim_causal.envs.sb3.SB3VecEnv``) or an
        SB3 ``VecEnv``. Calling ``learn`` again continues training (timesteps accumulate;
        the optimizer state is kept even when the number of envs changes).
        """
        if self.model is None:
            unwrapped = getattr(vec_env, "unwrapped", vec_env)
            world = getattr(unwrapped, "world", None)
            texts = getattr(getattr(world, "catalog", None), "texts", None)
            if texts is None:
                self._require_model()
            self._set_embeddings(self._encode(texts))
        env = self._wrap(vec_env)
        model = self._require_model()
        self._check_spaces(env)
        if (
            env.num_envs != model.n_envs
            or env.observation_space != model.observation_space
            or env.action_space != model.action_space
        ):
            # SB3's set_env wants the same number of envs and equal spaces (bounds included); a
            # save/load round trip re-sizes the rollout buffer, takes the env's spaces and keeps
            # weights, optimizer state and counters.
            buffer = io.BytesIO()
            model.save(buffer)
            buffer.seek(0)
            spaces = {"observation_space": env.observation_space, "action_space": env.action_space}
            with _private_rng(None):  # building the new policy draws initial weights, then overwritten
                model = PPO.load(buffer, env=env, device=model.device, custom_objects=spaces)
            model._last_obs = None  # saved with the old env's shape: make learn() reset the new env
        else:
            model.set_env(env, force_reset=True)
        if model.num_timesteps == 0:
            env.seed(self.seed)  # the first reset of a fresh agent's training is seeded
        self.model = model
        on_cuda = model.device.type == "cuda"
        rng = _private_rng(self.seed, 1, model.num_timesteps, cuda=on_cuda)
        start, t0 = model.num_timesteps, time.perf_counter()
        with torch_threads(self.cpu_threads if model.device.type == "cpu" else None), rng:
            model.learn(
                total_timesteps=self.total_timesteps if total_timesteps is None else int(total_timesteps),
                callback=callback,
                reset_num_timesteps=False,
            )
        wall = time.perf_counter() - t0
        steps = model.num_timesteps - start
        self.learn_stats = {"timesteps": steps, "wall_s": wall, "steps_per_s": steps / wall if wall > 0 else 0.0,
                            "num_envs": env.num_envs, "device": str(model.device)}
        return self

    # -- Policy contract --------------------------------------------------------------------

    @th.no_grad()
    def action_probs(self, contexts: np.ndarray) -> np.ndarray:
        """pi(a | x) for a batch of contexts: (B, dim) -> (B, K) float64, rows summing to 1."""
        policy = self._require_model().policy
        policy.set_training_mode(False)
        obs = th.as_tensor(self._contexts(contexts), dtype=th.float32, device=policy.device)
        with torch_threads(self.cpu_threads if policy.device.type == "cpu" else None):
            # float64 softmax of the logits: rows sum to 1 to ~1e-16, not float32's ~1e-7
            logits = policy.get_distribution(obs).distribution.logits
            probs = th.softmax(logits.double(), dim=1).cpu().numpy()
        return probs

    def update(self, contexts: np.ndarray, actions: np.ndarray, rewards: np.ndarray) -> None:
        """No-op: PPO learns on-policy from its own rollouts in ``learn(vec_env, ...)``.

        Logged (context, action, reward) triples from another policy are off-policy data that
        PPO's clipped objective cannot use without importance weights it does not take.
        """

    # -- persistence ------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the agent to one SB3 zip: weights, item embeddings (in the policy's buffer and
        constructor arguments), optimizer state, counters and PPOBert's own settings.
        ``.zip`` is appended when missing; returns the path written."""
        model = self._require_model()
        path = Path(path)
        if path.suffix != ".zip":
            path = path.with_name(path.name + ".zip")
        model.recsim_causal_ppo_bert = self._settings()  # SB3 saves the model's plain attributes
        model.save(path)
        return path

    def _settings(self) -> dict[str, Any]:
        return dict(
            n_actions=self.n_actions,
            dim=self.dim,
            seed=self.seed,
            encoder=self.encoder if isinstance(self.encoder, str) else "default",
            hidden=self.hidden,
            total_timesteps=self.total_timesteps,
            encode_kwargs=self.encode_kwargs,
            cpu_threads=self.cpu_threads,
            **self.ppo_kwargs,
        )

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> PPOBert:
        """Read an agent written by :meth:`save` (``.zip`` may be left out), onto ``device``."""
        path = Path(path)
        if not path.exists() and path.with_name(path.name + ".zip").exists():
            path = path.with_name(path.name + ".zip")
        with _private_rng(None):
            model = PPO.load(path, device=device)
        settings = getattr(model, "recsim_causal_ppo_bert", None)
        if settings is None:
            raise ValueError(f"{cls.__name__}.load: {path} is an SB3 zip but was not written by {cls.__name__}.save")
        agent = cls(**settings, device=device)
        agent.model = model
        agent.item_embeddings = np.asarray(model.policy.item_embeddings, dtype=np.float32)
        return agent
