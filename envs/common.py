"""What the two environments share: building the World from env kwargs, and honest spaces."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

from recsim_causal.scm import SCMConfigError, World


def make_world(scm: str | Mapping = "default", n_items: int = 100, slate_size: int = 1, world_seed: int = 0,
               dtype: str = "float32", world: World | None = None) -> World:
    """The env's World: ``world`` if given, else built from (scm preset/dict, n_items, slate_size, world_seed)."""
    if world is not None:
        return world
    if dtype not in ("float32", "float64"):
        raise SCMConfigError(f"env.dtype: expected 'float32' or 'float64', got {dtype!r}")
    return World(scm, n_items=n_items, seed=world_seed, slate_size=slate_size, dtype=dtype)


def init_vector_spaces(env, world: World, num_envs: int, single_observation_space: spaces.Box) -> None:
    """Set a vector env's world, num_envs and single/batched spaces (one item or a slate per user)."""
    if not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"env.num_envs: expected an integer >= 1, got {num_envs!r}")
    env.world, env.num_envs = world, num_envs
    env.single_observation_space = single_observation_space
    env.single_action_space = action_space(world)
    env.observation_space = batch_space(single_observation_space, num_envs)
    env.action_space = batch_space(env.single_action_space, num_envs)


def action_space(world: World) -> spaces.Space:
    """Discrete(K) for one item; MultiDiscrete([K] * L) for a slate of L items."""
    if world.slate_size == 1:
        return spaces.Discrete(world.n_items)
    return spaces.MultiDiscrete(np.full(world.slate_size, world.n_items, dtype=np.int64))


def observation_space(world: World, extra_low: list[float] = (), extra_high: list[float] = ()) -> spaces.Box:
    """The observed user features (bounds from their mechanisms) plus ``extra`` columns."""
    low, high = world.observation_bounds()
    low = np.concatenate([low, np.asarray(extra_low, np.float32)])
    high = np.concatenate([high, np.asarray(extra_high, np.float32)])
    return spaces.Box(low, high, dtype=np.float32)


def check_actions(world: World, actions: Any, n: int, *, single: bool = False) -> np.ndarray:
    """Actions as an int64 array, (n,) or (n, L), with a clear error on the wrong type, shape or range.

    Item indices must be integers (Python or numpy ints, or integer arrays): floats, strings,
    bools and None are refused rather than cast. A slate lists L distinct items. ``single``:
    one env's action (an int, or a slate of L), returned as a batch of one."""
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
    return actions


def step_info(world: World, q: np.ndarray, slate: bool) -> dict[str, Any]:
    """The info every step carries: the oracle values and the best action (and slate positions)."""
    info: dict[str, Any] = {"expected_reward": q, "optimal_action": q.argmax(axis=1)}
    if slate:
        info["position"] = np.broadcast_to(np.arange(world.slate_size), (q.shape[0], world.slate_size))
    return info
