"""RecSimCausal/Bandit-v0: one user, one decision (an item, or a slate when slate_size > 1).

The vector env is the core: every ``step()`` serves N users with array operations and, in
Gymnasium's same-step autoreset mode, returns the *next* N users' observations, so no step
is spent on resets. The single env is a thin view of the same computation: it draws users
in blocks of ``block_size`` from its generator and serves them one at a time.

``backend``, ``device`` and ``oracle``: see ``recsim_causal.envs.common`` (torch tensors on the
device from the vector env; what ``info`` holds and what a step costs).
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from recsim_causal.envs.common import (Clock, action_space, check_actions, check_oracle, init_vector_spaces,
                                       make_world, observation_space, on_world_threads, one_user_info, oracle_info,
                                       time_info)
from recsim_causal.config import check_integer
from recsim_causal.scm import World


class _UserBatch:
    """N users drawn from the world with everything a step needs, computed once (the (N, K)
    conditional means and oracle only under ``oracle="full"``)."""

    def __init__(self, world: World, n: int, rng: np.random.Generator, oracle: str = "full", t: int = 0):
        self.users = world.sample_users(n, rng, t)
        self.cond = self.q = None
        if oracle == "full":
            self.cond = world.conditional_means(self.users)
            self.q = world.expected_reward(self.users, self.cond)
        self.obs = world.observe(self.users)


class BanditVectorEnv(Clock, VectorEnv):
    """N independent one-step bandit episodes per ``step()``, no Python loop over users.

    Observation: (N, obs_dim) float32, the users' observed features. Action: (N,) item indices
    (or (N, L) slates). Reward: the world's reward response. ``info`` (see
    ``recsim_causal.envs.common`` for ``oracle``): ``chosen_expected_reward`` (N,), the exact
    E[r | x, do(a)] of the chosen items; with ``oracle="full"`` ``expected_reward`` (N, K) of
    every item for the users who acted; with "full" or "best" ``optimal_action`` and
    ``optimal_expected_reward`` (N,); for slates ``position`` (N, L) and the slate values
    below. ``final_obs`` holds the acted users' observations; ``t`` (N,) the world time of
    the step (decisions before it: each step's N users meet the world of that time, see
    ``scm.dynamics``; ``env.t`` and ``env.catalog`` are the next step's). Arrays are numpy, or
    torch tensors on ``device`` with ``backend="torch"``.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, *, n_items: int = 100, slate_size: int = 1,
                 scm: str | Mapping = "default", world_seed: int = 0, dtype: str = "float32",
                 world: World | None = None, backend: str = "numpy", device: Any = None, oracle: str = "full",
                 threads: int | None = 1,
                 render_mode: str | None = None):
        world = make_world(scm, n_items, slate_size, world_seed, dtype, world, backend, device, threads)
        init_vector_spaces(self, world, num_envs, observation_space(world), oracle)
        self.oracle = check_oracle(oracle)
        self.render_mode = render_mode
        self._batch: _UserBatch | None = None
        xp = world.xp
        self._done = xp.ones((num_envs,), xp.bool)
        self._not_truncated = xp.zeros((num_envs,), xp.bool)

    @on_world_threads
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._start_clock(options)
        self._batch = _UserBatch(self.world, self.num_envs, self.np_random, self.oracle, self.t)
        return self._batch.obs, {}

    @on_world_threads
    def step(self, actions):
        if self._batch is None:
            raise gym.error.ResetNeeded("Call reset() before step().")
        b, world = self._batch, self.world
        actions = check_actions(world, actions, self.num_envs)
        out = world.respond(b.users, actions, cond_means=b.cond)
        if actions.ndim == 2:
            info = self._slate_info(b, actions, out.slot_reward)
        else:
            info = oracle_info(world, b.users, actions, self.oracle, b.q, b.cond, out.expected_reward)
        info["final_obs"] = b.obs
        info["_final_obs"] = self._done
        info["t"] = time_info(world, self.t, self.num_envs)
        self.t += self.num_envs
        self._batch = _UserBatch(world, self.num_envs, self.np_random, self.oracle, self.t)
        return self._batch.obs, out.reward, world.xp.copy(self._done), world.xp.copy(self._not_truncated), info

    def _slate_info(self, b: _UserBatch, slates: Any, slot_reward: Any) -> dict[str, Any]:
        """Per-slot rewards, the chosen slate's exact expected reward, and the best slate's (the
        top-L items by expected reward, best first: optimal under PBM with examination falling
        by position, and under cascade). The best slate is found from the (N, K) oracle under
        "full", blockwise (``World.top_items``) under "best", and not at all under "chosen"."""
        world, xp, L = self.world, self.world.xp, self.world.slate_size
        info: dict[str, Any] = {
            "position": xp.arange(L).expand(self.num_envs, L) if xp.is_torch else
            np.broadcast_to(np.arange(L), (self.num_envs, L)),
            "slot_reward": slot_reward,
            "slate_expected_reward": world.expected_slate_reward(b.users, slates).sum(axis=1),
        }
        if self.oracle == "chosen":
            return info
        if self.oracle == "full":
            best = xp.topk(b.q, L)[1]
            info.update(expected_reward=b.q, optimal_action=xp.argmax(b.q))
        else:
            best = world.top_items(b.users, L)[1]
            info["optimal_action"] = best[:, 0]
        info.update(optimal_slate_reward=world.expected_slate_reward(b.users, best).sum(axis=1), optimal_slate=best)
        return info


class BanditEnv(Clock, gym.Env):
    """One user per episode: ``reset()`` draws a user, ``step(action)`` answers and terminates.

    Users are drawn ``block_size`` at a time by the same batched code as the vector env, at
    the world time of the block's first user (``env.t`` counts the decisions). This
    is Gymnasium's numpy view whatever the backend: observations are numpy float32 in the
    observation space, rewards Python floats, ``info`` values numpy.
    """

    metadata = {"render_modes": []}

    def __init__(self, *, n_items: int = 100, slate_size: int = 1, scm: str | Mapping = "default",
                 world_seed: int = 0, dtype: str = "float32", world: World | None = None,
                 backend: str = "numpy", device: Any = None, oracle: str = "full",
                 threads: int | None = 1,
                 block_size: int = 256, render_mode: str | None = None):
        self.world = make_world(scm, n_items, slate_size, world_seed, dtype, world, backend, device, threads)
        self.oracle = check_oracle(oracle)
        self.observation_space = observation_space(self.world)
        self.action_space = action_space(self.world)
        self.block_size = check_integer(block_size, "block_size", 1)
        self.render_mode = render_mode
        self._block: _UserBatch | None = None
        self._obs: np.ndarray | None = None
        self._q: np.ndarray | None = None
        self._i = -1
        self._acted = True

    @on_world_threads
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None or self._block is None or options:  # the clock starts again (at options["t"] or 0)
            self._start_clock(options)
        if seed is not None or options or self._block is None or self._i + 1 >= self.block_size:
            self._block = _UserBatch(self.world, self.block_size, self.np_random, self.oracle, self.t)
            self._obs = self.world.xp.to_numpy(self._block.obs)
            if self._block.q is not None:  # the whole block's oracle at once, read one user at a time
                self._q = self.world.xp.to_numpy(self._block.q)
                self._best_item = self._q.argmax(axis=1)
            self._i = -1
        self._i += 1
        self._acted = False
        return self._obs[self._i].copy(), {}

    @on_world_threads
    def step(self, action):
        if self._acted:
            raise gym.error.ResetNeeded("Call reset() before step(): a bandit episode is one step.")
        b, i, world = self._block, self._i, self.world
        actions = check_actions(world, action, 1, single=True)
        row = slice(i, i + 1)
        users = b.users.take(row)
        cond = None if b.cond is None else {r: c[row] for r, c in b.cond.items()}
        out = world.respond(users, actions, cond_means=cond)
        if b.q is not None:
            q, best = self._q[i], int(self._best_item[i])
            info: dict[str, Any] = {"expected_reward": q, "optimal_action": best}
            if world.slate_size > 1:
                info["position"] = np.arange(world.slate_size)
            else:
                info.update(chosen_expected_reward=float(q[int(actions[0])]), optimal_expected_reward=float(q[best]))
        elif world.slate_size > 1:
            info = {"position": np.arange(world.slate_size)}
        else:
            info = one_user_info(world, oracle_info(world, users, actions, self.oracle, chosen=out.expected_reward))
        info["t"] = b.users.t
        self.t += 1
        self._acted = True
        return self._obs[i].copy(), float(world.xp.to_numpy(out.reward)[0]), True, False, info

