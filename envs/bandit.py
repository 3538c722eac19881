"""RecSimCausal/Bandit-v0: one user, one decision (an item, or a slate when slate_size > 1).

The vector env is the core: every ``step()`` serves N users with array operations and, in
Gymnasium's same-step autoreset mode, returns the *next* N users' observations, so no step
is spent on resets. The single env is a thin view of the same computation: it draws users
in blocks of ``block_size`` from its generator and serves them one at a time.
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from recsim_causal.envs.common import action_space, check_actions, init_vector_spaces, make_world, observation_space, step_info
from recsim_causal.scm import World


class _UserBatch:
    """N users drawn from the world with everything a step needs, computed once."""

    def __init__(self, world: World, n: int, rng: np.random.Generator):
        self.users = world.sample_users(n, rng)
        self.cond = world.conditional_means(self.users)
        self.q = world.expected_reward(self.users, self.cond)
        self.obs = world.observe(self.users)


class BanditVectorEnv(VectorEnv):
    """N independent one-step bandit episodes per ``step()``, no Python loop over users.

    Observation: (N, obs_dim) float32, the users' observed features. Action: (N,) item indices
    (or (N, L) slates). Reward: the world's reward response. ``info``: ``expected_reward``
    (N, K) oracle E[r | x, do(a)] of the users who acted, ``optimal_action`` (N,), and for
    slates ``position`` (N, L); ``final_obs`` holds the acted users' observations.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, *, n_items: int = 100, slate_size: int = 1,
                 scm: str | Mapping = "default", world_seed: int = 0, dtype: str = "float32",
                 world: World | None = None, render_mode: str | None = None):
        world = make_world(scm, n_items, slate_size, world_seed, dtype, world)
        init_vector_spaces(self, world, num_envs, observation_space(world))
        self.render_mode = render_mode
        self._batch: _UserBatch | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._batch = _UserBatch(self.world, self.num_envs, self.np_random)
        return self._batch.obs, {}

    def step(self, actions):
        if self._batch is None:
            raise gym.error.ResetNeeded("Call reset() before step().")
        b = self._batch
        actions = check_actions(self.world, actions, self.num_envs)
        out = self.world.respond(b.users, actions, cond_means=b.cond)
        info = step_info(self.world, b.q, actions.ndim == 2)
        if actions.ndim == 2:
            info.update(self._slate_info(b, actions, out.slot_reward))
        info["final_obs"] = b.obs
        info["_final_obs"] = np.ones(self.num_envs, dtype=bool)
        self._batch = _UserBatch(self.world, self.num_envs, self.np_random)
        done = np.ones(self.num_envs, dtype=bool)
        return self._batch.obs, out.reward, done, np.zeros(self.num_envs, dtype=bool), info


    def _slate_info(self, b: _UserBatch, slates: np.ndarray, slot_reward: np.ndarray) -> dict[str, np.ndarray]:
        """Per-slot rewards, the chosen slate's exact expected reward, and the best slate's (the
        top-L items by expected reward, best first: optimal under PBM with examination falling
        by position, and under cascade)."""
        L = self.world.slate_size
        best = np.argsort(-b.q, axis=1)[:, :L]
        return {
            "slot_reward": slot_reward,
            "slate_expected_reward": self.world.expected_slate_reward(b.users, slates).sum(axis=1),
            "optimal_slate_reward": self.world.expected_slate_reward(b.users, best).sum(axis=1),
            "optimal_slate": best,
        }


class BanditEnv(gym.Env):
    """One user per episode: ``reset()`` draws a user, ``step(action)`` answers and terminates.

    Users are drawn ``block_size`` at a time by the same batched code as the vector env.
    """

    metadata = {"render_modes": []}

    def __init__(self, *, n_items: int = 100, slate_size: int = 1, scm: str | Mapping = "default",
                 world_seed: int = 0, dtype: str = "float32", world: World | None = None,
                 block_size: int = 256, render_mode: str | None = None):
        self.world = make_world(scm, n_items, slate_size, world_seed, dtype, world)
        self.observation_space = observation_space(self.world)
        self.action_space = action_space(self.world)
        self.block_size = block_size
        self.render_mode = render_mode
        self._block: _UserBatch | None = None
        self._i = -1
        self._acted = True

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None or self._block is None or self._i + 1 >= self.block_size:
            self._block = _UserBatch(self.world, self.block_size, self.np_random)
            self._i = -1
        self._i += 1
        self._acted = False
        return self._block.obs[self._i].copy(), {}

    def step(self, action):
        if self._acted:
            raise gym.error.ResetNeeded("Call reset() before step(): a bandit episode is one step.")
        b, i = self._block, self._i
        actions = check_actions(self.world, action, 1, single=True)
        row = slice(i, i + 1)
        users = b.users.take(row)
        out = self.world.respond(users, actions, cond_means={r: c[row] for r, c in b.cond.items()})
        q = b.q[i]
        info = {"expected_reward": q, "optimal_action": int(q.argmax())}
        if self.world.slate_size > 1:
            info["position"] = np.arange(self.world.slate_size)
        self._acted = True
        return b.obs[i].copy(), float(out.reward[0]), True, False, info
