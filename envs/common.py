"""What the two environments share: building the World from env kwargs, honest spaces, the
actions check and the oracle's step info.

Backends. ``backend="torch", device=...`` puts the env's World on torch: the vector envs then
return torch tensors on that device, as Gymnasium's ``NumpyToTorch`` wrapper would
(observations float32, rewards in the world's dtype, ``terminated``/``truncated`` bool, every
array in ``info`` a tensor) and take actions as tensors (or anything ``as_tensor`` takes).
The single envs are Gymnasium's numpy view whatever the backend (numpy observations inside
their Box, float rewards), so ``gymnasium.utils.env_checker.check_env`` applies to them.

Oracle. ``oracle="full"`` (the default) puts the (N, K) ``info["expected_reward"]`` in every
step: cost N x K. ``"chosen"`` gives only ``chosen_expected_reward`` (N,), the exact
E[r | x, do(a)] of the chosen items: a step then costs O(N (d + L)) whatever K.
``"best"`` adds the exact best item's value and index (``optimal_expected_reward``,
``optimal_action``) by a blockwise maximum inner product (``World.top_items``), without an
(N, K) array. Every mode gives ``chosen_expected_reward``; "full" and "best" give
``optimal_expected_reward``, so regret = optimal - chosen in both.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import numpy as np
import gymnasium as gym
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

from recsim_causal.config import check_memory
from recsim_causal.scm import SCMConfigError, World


ORACLES = ("full", "chosen", "best")


def make_world(scm: str | Mapping = "default", n_items: int = 100, slate_size: int = 1, world_seed: int = 0,
               dtype: str = "float32", world: World | None = None, backend: str = "numpy",
               device: Any = None, threads: int | None = 1) -> World:
    """The env's World: ``world`` if given, else built from (scm preset/dict, n_items, slate_size,
    world_seed, dtype, backend, device, threads)."""
    if world is not None:
        return world
    if dtype not in ("float32", "float64"):
        raise SCMConfigError(f"env.dtype: expected 'float32' or 'float64', got {dtype!r}")
    if backend not in ("numpy", "torch"):
        raise SCMConfigError(f"env.backend: expected 'numpy' or 'torch', got {backend!r}")
    try:
        return World(scm, n_items=n_items, seed=world_seed, slate_size=slate_size, dtype=dtype, backend=backend,
                     device=device, threads=threads)
    except ValueError as e:
        if isinstance(e, SCMConfigError) or not str(e).startswith(("device:", "backend:", "threads:")):
            raise
        raise SCMConfigError(f"env.{e}") from None


def on_world_threads(method: Callable) -> Callable:
    """An env method (reset, step) run in its world's compute context (the torch backend's CPU
    threads, see ``World(threads=)``)."""
    @functools.wraps(method)
    def wrapped(self, *args: Any, **kwargs: Any) -> Any:
        with self.world.xp.compute():
            return method(self, *args, **kwargs)
    return wrapped


def check_oracle(oracle: Any) -> str:
    if oracle not in ORACLES:
        raise SCMConfigError(f"env.oracle: expected one of {', '.join(ORACLES)}, got {oracle!r}")
    return oracle


def batch_bytes(world: World, num_envs: int, oracle: str, obs_dim: int) -> float:
    """Bytes a step of ``num_envs`` users holds at once, over-estimated: per user the
    observation, the user-level node values and the noise; and with ``oracle="full"`` per user
    and item the conditional mean and gated mean of each response, the reward and the info's
    copy, in the world's dtype. The oracles ``best`` and ``chosen`` hold no (users x items) array."""
    size = world.dtype.itemsize
    user_cols = sum(world.mech[n].dim for n in world.user_nodes)
    per_user = size * (obs_dim + 2 * user_cols + 16)
    per_pair = size * (2 * len(world.responses) + 3) if oracle == "full" else 0.0
    return num_envs * (per_user + world.n_items * per_pair)


def check_batch_memory(world: World, num_envs: int, oracle: str, obs_dim: int) -> None:
    """Refuse, before anything is allocated, a batch whose arrays cannot fit in the memory
    available (:func:`recsim_causal.config.check_memory`): the one check for every array that
    scales with users x items."""
    what = (f"{num_envs:,} users x {world.n_items:,} items (oracle=full; oracle=best or chosen holds no users x items array)"
            if oracle == "full" else f"{num_envs:,} users")
    check_memory(batch_bytes(world, num_envs, oracle, obs_dim),
                 "env.num_envs x env.n_items" if oracle == "full" else "env.num_envs", what)


def init_vector_spaces(env, world: World, num_envs: int, single_observation_space: spaces.Box,
                       oracle: str = "full") -> None:
    """Set a vector env's world, num_envs and single/batched spaces (one item or a slate per user);
    check the oracle and that a batch fits in memory."""
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"env.num_envs: expected an integer >= 1, got {num_envs!r}")
    check_batch_memory(world, num_envs, check_oracle(oracle), int(np.prod(single_observation_space.shape)))
    env.world, env.num_envs = world, num_envs
    env.single_observation_space = single_observation_space
    env.single_action_space = action_space(world)
    env.observation_space = batch_space(single_observation_space, num_envs)
    env.action_space = batch_space(env.single_action_space, num_envs)


class SlateSpace(spaces.MultiDiscrete):
    """Slates of L distinct items out of K: ``MultiDiscrete([K] * L)`` (also batched, shape
    (N, L)) whose samples never repeat an item within a slate and whose members are exactly
    the slates the envs accept (``contains`` refuses repeats)."""

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        if mask is not None or probability is not None:
            raise ValueError("SlateSpace.sample: masks and probabilities are not supported (slates are distinct items)")
        K, L = int(self.nvec.flat[0]), self.nvec.shape[-1]
        rows = int(np.prod(self.nvec.shape[:-1], dtype=np.int64))
        # L distinct items per row: the first L of a random permutation (argpartition of uniforms).
        draws = np.argpartition(self.np_random.random((rows, K)), L - 1, axis=1)[:, :L] if L < K else \
            np.argsort(self.np_random.random((rows, K)), axis=1)
        return draws.reshape(self.nvec.shape).astype(self.dtype)

    def __repr__(self) -> str:
        return f"SlateSpace(n_items={int(self.nvec.flat[0])}, slate_size={self.nvec.shape[-1]}, shape={self.shape})"

    def contains(self, x: Any) -> bool:
        if not super().contains(x):
            return False
        ranked = np.sort(np.asarray(x).reshape(-1, self.nvec.shape[-1]), axis=1)
        return not bool((ranked[:, 1:] == ranked[:, :-1]).any())


@batch_space.register(SlateSpace)
def _batch_slate_space(space: SlateSpace, n: int = 1) -> SlateSpace:
    return SlateSpace(np.broadcast_to(space.nvec, (n, *space.nvec.shape)).copy(), dtype=space.dtype,
                      seed=int(space.np_random.integers(2**31)))


def action_space(world: World) -> spaces.Space:
    """Discrete(K) for one item; a :class:`SlateSpace` (L distinct items of K) for a slate."""
    if world.slate_size == 1:
        return spaces.Discrete(world.n_items)
    return SlateSpace(np.full(world.slate_size, world.n_items, dtype=np.int64))


def observation_space(world: World, extra_low: list[float] = (), extra_high: list[float] = ()) -> spaces.Box:
    """The observed user features (bounds from their mechanisms) plus ``extra`` columns."""
    low, high = world.observation_bounds()
    low = np.concatenate([low, np.asarray(extra_low, np.float32)])
    high = np.concatenate([high, np.asarray(extra_high, np.float32)])
    return spaces.Box(low, high, dtype=np.float32)


def check_actions(world: World, actions: Any, n: int, *, single: bool = False) -> Any:
    """Actions as an int64 array, (n,) or (n, L), with a clear error on the wrong type, shape or range.

    Item indices must be integers (Python or numpy ints, or integer arrays): floats, strings,
    bools and None are refused rather than cast. A slate lists L distinct items. ``single``:
    one env's action (an int, or a slate of L), returned as a batch of one.
    On the torch backend: an int64 tensor on the world's device (tensors are checked there)."""
    if world.xp.is_torch and world.xp.is_array(actions):
        return _check_tensor_actions(world, actions, n, single)
    arr = np.asarray(actions)
    if arr.dtype.kind not in "iu":
        got = type(actions).__name__ if arr.dtype.kind == "O" or arr.ndim == 0 else f"an array of {arr.dtype}"
        raise ValueError(f"actions: expected integer item indices (an int or an integer array), got {got}"
                         + (f" {actions!r}" if arr.ndim == 0 else ""))
    actions = arr.astype(np.int64, copy=False)[None] if single else arr.astype(np.int64, copy=False)
    shape = (n,) if world.slate_size == 1 else (n, world.slate_size)
    if actions.shape != shape:
        raise ValueError(f"actions: expected shape {shape}, got {actions.shape}")
    if actions.size and (actions.min() < 0 or actions.max() >= world.n_items):
        raise ValueError(f"actions: expected item indices in [0, {world.n_items}), got [{actions.min()}, {actions.max()}]")
    if actions.ndim == 2 and actions.shape[1] > 1:
        ranked = np.sort(actions, axis=1)
        dup = np.flatnonzero((ranked[:, 1:] == ranked[:, :-1]).any(axis=1))
        if dup.size:
            raise ValueError(f"actions: a slate lists distinct items, row {dup[0]} repeats one: {actions[dup[0]].tolist()}")
    return world.xp.as_index(actions)


def _check_tensor_actions(world: World, actions: Any, n: int, single: bool) -> Any:
    """``check_actions`` for a torch tensor: the same rules, checked on the world's device."""
    torch = world.xp.torch
    if actions.dtype.is_floating_point or actions.dtype.is_complex or actions.dtype == torch.bool:
        raise ValueError(f"actions: expected integer item indices (an int or an integer array), got a tensor of "
                         f"{actions.dtype}")
    actions = actions.to(device=world.device, dtype=torch.int64)
    actions = actions[None] if single else actions
    shape = (n,) if world.slate_size == 1 else (n, world.slate_size)
    if tuple(actions.shape) != shape:
        raise ValueError(f"actions: expected shape {shape}, got {tuple(actions.shape)}")
    lo, hi = world.xp.min_max(actions)
    if lo < 0 or hi >= world.n_items:
        raise ValueError(f"actions: expected item indices in [0, {world.n_items}), got [{lo}, {hi}]")
    if actions.ndim == 2 and actions.shape[1] > 1:
        ranked = actions.sort(dim=1).values
        dup = torch.nonzero((ranked[:, 1:] == ranked[:, :-1]).any(dim=1)).flatten()
        if dup.numel():
            row = int(dup[0])
            raise ValueError(f"actions: a slate lists distinct items, row {row} repeats one: {actions[row].tolist()}")
    return actions


def oracle_info(world: World, users: Any, actions: Any, oracle: str, q: Any = None, cond: dict | None = None,
                chosen: Any = None) -> dict[str, Any]:
    """The oracle's part of a step's info for single-item actions (N,): see the module docstring.
    ``q`` (N, K) (oracle "full"), ``cond`` (the users' conditional means) and ``chosen`` (the
    chosen items' expected reward, ``Outcome.expected_reward``) skip recomputation."""
    xp = world.xp
    if oracle == "full":
        best, best_item = xp.max_argmax(q)
        return {"expected_reward": q, "optimal_action": best_item, "chosen_expected_reward": xp.take_along(q, actions),
                "optimal_expected_reward": best}
    if chosen is None:
        chosen = world.expected_reward_at(users, actions, cond)
    info = {"chosen_expected_reward": chosen}
    if oracle == "best":
        value, item = world.top_items(users, 1)
        info.update(optimal_expected_reward=value[:, 0], optimal_action=item[:, 0])
    return info


def time_info(world: World, t: int, n: int) -> Any:
    """``info["t"]``: the world time of a step's users (decisions before them), (n,) int64."""
    return world.xp.as_index(np.full(n, t, dtype=np.int64))


class Clock:
    """An env's world time: the decisions made so far (``t``), and the catalogue at that time
    (items replaced by churn, ``scm.dynamics``). ``reset(options={"t": t0})`` starts at t0."""

    t: int = 0
    world: World

    @property
    def catalog(self):
        """The catalogue the current users meet."""
        return self.world.catalog_at(self.t)

    def _start_clock(self, options: dict[str, Any] | None) -> None:
        t = (options or {}).get("t", 0)
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 0:
            raise ValueError(f"options.t: expected an integer >= 0 (the world time to start at), got {t!r}")
        self.t = int(t)


def one_user_info(world: World, info: dict[str, Any]) -> dict[str, Any]:
    """A one-user batch's info as a single env gives it: numpy arrays and Python scalars."""
    out = {}
    for k, v in info.items():
        x = world.xp.to_numpy(v)[0]
        out[k] = x.item() if x.ndim == 0 else x
    return out


class NumpyView(gym.vector.VectorWrapper):
    """A vector env on the torch backend seen with numpy arrays (what the runner and numpy agents
    take): observations, rewards, flags and every ``info`` array come back to the host; actions
    are passed as they are. The world keeps computing on its device."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return _host(obs), {k: _host(v) for k, v in info.items()}

    def step(self, actions):
        obs, reward, terminated, truncated, info = self.env.step(actions)
        return (_host(obs), _host(reward), _host(terminated), _host(truncated), {k: _host(v) for k, v in info.items()})


def _host(x: Any) -> Any:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x


def numpy_view(venv: gym.vector.VectorEnv) -> gym.vector.VectorEnv:
    """``venv`` itself when its world is numpy's, else a ``NumpyView`` of it."""
    return NumpyView(venv) if venv.unwrapped.world.xp.is_torch else venv
