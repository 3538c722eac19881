"""RecSimCausal/Session-v0: a session of several recommendations to the same user.

The user's state evolves through the SCM's own variables, so ``expected_reward`` stays exact
at every step:
  * interest drift: after a click, the user's interest node (``taste``) moves toward the
    consumed item's vector (``style``): taste <- (1 - drift) taste + drift * style[a];
  * fatigue: the state node ``fatigue`` (per topic) decays and grows with each recommended
    topic: fatigue <- fatigue_decay * fatigue + fatigue_rate * topic[a]; the SCM's click
    mechanism reads it (``fatigue_effect``);
  * satisfaction: an average of recent rewards, s <- (1 - satisfaction_rate) s + satisfaction_rate r;
  * leaving: after each step the user leaves with P = sigmoid(leave_bias - leave_satisfaction * s)
    (terminated), or runs out of the time budget ``max_steps`` (truncated).
Observation: the observed user features, then [t / max_steps, last reward, satisfaction].
The vector env uses Gymnasium's next-step autoreset; the single env is the core with one user.
``backend``/``device``/``oracle``: as Bandit-v0's (``recsim_causal.envs.common``).
"""

from __future__ import annotations

from typing import Any, Mapping

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from recsim_causal.envs.common import (Clock, action_space, check_actions, check_oracle, init_vector_spaces,
                                       make_world, observation_space, on_world_threads, one_user_info, oracle_info,
                                       time_info)
from recsim_causal.config import check_integer, check_number
from recsim_causal.scm import SCMConfigError, World

DYNAMICS_DEFAULTS = dict(max_steps=20, drift=0.1, fatigue_rate=0.5, fatigue_decay=0.8, satisfaction_rate=0.3,
                         leave_bias=-2.0, leave_satisfaction=3.0, interest_node="taste", interest_item_node="style",
                         fatigue_node="fatigue", fatigue_item_node="topic")


class _SessionCore:
    """N sessions stepped with array operations; no autoreset (the envs decide)."""

    def __init__(self, world: World, n: int, oracle: str = "full", **dynamics: Any):
        unknown = set(dynamics) - set(DYNAMICS_DEFAULTS)
        if unknown:
            raise SCMConfigError(f"env.{sorted(unknown)[0]}: unknown Session-v0 setting "
                                 f"(known: {', '.join(sorted(DYNAMICS_DEFAULTS))})")
        d = {**DYNAMICS_DEFAULTS, **dynamics}
        if world.slate_size != 1:
            raise SCMConfigError(f"env.slate_size: Session-v0 recommends one item per step, expected 1, got {world.slate_size}")
        check_integer(d["max_steps"], "env.max_steps", minimum=1, error=SCMConfigError)
        for key, low, high in (("drift", 0, 1), ("fatigue_decay", 0, 1), ("satisfaction_rate", 0, 1),
                               ("fatigue_rate", 0, None), ("leave_bias", None, None), ("leave_satisfaction", None, None)):
            d[key] = check_number(d[key], f"env.{key}", low, high, error=SCMConfigError)
        self.world, self.n, self.d, self.xp = world, n, d, world.xp
        self.oracle = check_oracle(oracle)
        self.interest = self._pair(d["interest_node"], d["interest_item_node"], "interest", dynamics)
        self.fatigue = self._pair(d["fatigue_node"], d["fatigue_item_node"], "fatigue", dynamics)
        self.max_steps = d["max_steps"]

    def _pair(self, user_node: str | None, item_node: str | None, what: str,
              given: Mapping[str, Any]) -> tuple[str, str] | None:
        """(user node, item node) of a dynamic, or None when it is off: a node set to None, or the
        default nodes on a world that lacks them. A node named by the caller must exist."""
        if not user_node:
            return None
        for key, node, known in ((f"{what}_node", user_node, self.world.mech),
                                 (f"{what}_item_node", item_node, self.world.item_values)):
            if key in given and node not in known:
                raise SCMConfigError(f"env.{key}: unknown node {node!r} (known: {', '.join(sorted(map(str, known)))}; "
                                     "null turns the dynamic off)")
        if user_node not in self.world.mech or item_node not in self.world.item_values:
            return None
        u, i = self.world.mech[user_node], self.world.item_values[item_node]
        if u.level != "user" or u.dim != i.shape[1]:
            raise SCMConfigError(f"env.{what}_node: '{user_node}' (dim {u.dim}) and '{item_node}' "
                                 f"(dim {i.shape[1]}) must be a user and an item node of equal dim")
        return user_node, item_node

    def reset(self, rng: np.random.Generator, clock: int = 0) -> None:
        xp = self.xp
        self.clock = clock  # world time: decisions made (see scm.dynamics)
        self.users = self.world.sample_users(self.n, rng, clock)
        self.t = xp.zeros((self.n,), xp.int64)
        self.last_reward = xp.zeros((self.n,))
        self.satisfaction = xp.zeros((self.n,))
        self._refresh()

    def reset_some(self, idx: Any, rng: np.random.Generator) -> None:
        """New users in the slots ``idx`` (the others keep their sessions)."""
        new = self.world.sample_users(int(idx.shape[0]), rng, self.clock)
        for store, fresh in ((self.users.values, new.values), (self.users.noise, new.noise)):
            for k, v in fresh.items():
                store[k][idx] = v
        self.t[idx] = 0
        self.last_reward[idx] = 0
        self.satisfaction[idx] = 0
        self._refresh()

    def _refresh(self) -> None:
        self.cond = self.q = None
        if self.oracle == "full":
            self.cond = self.world.conditional_means(self.users)
            self.q = self.world.expected_reward(self.users, self.cond)

    def obs(self) -> Any:
        xp = self.xp
        extra = xp.stack([xp.astype(self.t) / self.max_steps, self.last_reward, self.satisfaction], axis=1)
        return xp.concat([self.world.observe(self.users), xp.astype(extra, xp.float32)], axis=1)

    def step(self, actions: np.ndarray, rng: np.random.Generator, active: np.ndarray | None = None):
        """Respond, evolve the users' states, and decide who leaves. Slots where ``active`` is
        False (just reset) are left as they are: reward 0, not done. Returns reward, terminated,
        truncated, info (info describes the step just taken)."""
        d, values, xp = self.d, self.users.values, self.xp
        out = self.world.respond(self.users, actions, cond_means=self.cond)
        info = oracle_info(self.world, self.users, actions, self.oracle, self.q, self.cond, out.expected_reward)
        info["t"] = time_info(self.world, self.clock, self.n)
        r = out.reward if active is None else xp.astype(xp.where(active, out.reward, 0.0))
        on = (xp.ones((self.n,)) if active is None else xp.astype(active))[:, None]
        item_values = self.world.item_values_at(self.users.t)
        if self.interest is not None:
            node, item_node = self.interest
            w = d["drift"] * xp.astype(r > 0)[:, None]
            values[node] = (1 - w) * values[node] + w * item_values[item_node][actions]
        if self.fatigue is not None:
            node, item_node = self.fatigue
            step = d["fatigue_decay"] * values[node] + d["fatigue_rate"] * item_values[item_node][actions]
            values[node] = on * step + (1 - on) * values[node]
        self.world.recompute(self.users)
        rate = d["satisfaction_rate"] * on[:, 0]
        self.satisfaction = (1 - rate) * self.satisfaction + rate * r
        self.last_reward = xp.astype(r)
        self.t += xp.astype(on[:, 0], xp.int64)
        p_leave = xp.sigmoid(d["leave_bias"] - d["leave_satisfaction"] * self.satisfaction)
        g = xp.generator(rng)
        terminated = (xp.random(g, (self.n,)) < p_leave) & (on[:, 0] > 0)
        truncated = (self.t >= self.max_steps) & ~terminated
        self.clock += int(on[:, 0].sum())
        self.users.t = self.clock
        self.world.redraw_response_noise(self.users, g)
        self._refresh()
        return r, terminated, truncated, info


def _session_spaces(world: World) -> gym.spaces.Box:
    return observation_space(world, [0.0, -np.inf, -np.inf], [1.0, np.inf, np.inf])


class SessionVectorEnv(Clock, VectorEnv):
    """N sessions stepped together (next-step autoreset: a finished slot starts a new user at
    the following ``step()``, whose action for that slot is ignored and whose reward is 0)."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, *, n_items: int = 100, scm: str | Mapping = "default",
                 world_seed: int = 0, dtype: str = "float32", world: World | None = None,
                 slate_size: int = 1, backend: str = "numpy", device: Any = None, oracle: str = "full",
                 threads: int | None = 1,
                 render_mode: str | None = None, **dynamics: Any):
        world = make_world(scm, n_items, slate_size, world_seed, dtype, world, backend, device, threads)
        init_vector_spaces(self, world, num_envs, _session_spaces(world), oracle)
        self.core = _SessionCore(world, num_envs, oracle, **dynamics)
        self.render_mode = render_mode
        self._autoreset = None

    @on_world_threads
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Reset every slot, or only those where ``options["reset_mask"]`` is True (Gymnasium's
        partial reset, used by the SB3 adapter)."""
        super().reset(seed=seed)
        mask = (options or {}).get("reset_mask")
        xp = self.world.xp
        if mask is not None and self._autoreset is not None:
            mask = xp.as_bool(mask)
            if tuple(mask.shape) != (self.num_envs,):
                raise ValueError(f"options.reset_mask: expected shape ({self.num_envs},), got {tuple(mask.shape)}")
            idx = xp.nonzero(mask)
            if idx.shape[0]:
                self.core.reset_some(idx, self.np_random)
            self._autoreset[idx] = False
            return self.core.obs(), {}
        self._start_clock(options)
        self.core.reset(self.np_random, self.t)
        self._autoreset = xp.zeros((self.num_envs,), xp.bool)
        return self.core.obs(), {}

    @on_world_threads
    def step(self, actions):
        if self._autoreset is None:
            raise gym.error.ResetNeeded("Call reset() before step().")
        actions = check_actions(self.world, actions, self.num_envs)
        restart = self.world.xp.nonzero(self._autoreset)
        if restart.shape[0]:  # those slots only start a new session: no reward, not done
            self.core.reset_some(restart, self.np_random)
        r, terminated, truncated, info = self.core.step(actions, self.np_random,
                                                        ~self._autoreset if restart.shape[0] else None)
        self.t = self.core.clock
        self._autoreset = terminated | truncated
        return self.core.obs(), r, terminated, truncated, info


class SessionEnv(Clock, gym.Env):
    """One user's session: the core with one user."""

    metadata = {"render_modes": []}

    def __init__(self, *, n_items: int = 100, scm: str | Mapping = "default", world_seed: int = 0,
                 dtype: str = "float32", world: World | None = None, slate_size: int = 1,
                 backend: str = "numpy", device: Any = None, oracle: str = "full",
                 threads: int | None = 1,
                 render_mode: str | None = None, **dynamics: Any):
        self.world = make_world(scm, n_items, slate_size, world_seed, dtype, world, backend, device, threads)
        self.core = _SessionCore(self.world, 1, oracle, **dynamics)
        self.observation_space = _session_spaces(self.world)
        self.action_space = action_space(self.world)
        self.render_mode = render_mode
        self._done = True

    @on_world_threads
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None or options:  # a seeded reset starts the world's clock again (at options["t"] or 0)
            self._start_clock(options)
        self.core.reset(self.np_random, self.t)
        self._done = False
        return self.world.xp.to_numpy(self.core.obs()[0]), {}

    @on_world_threads
    def step(self, action):
        if self._done:
            raise gym.error.ResetNeeded("Call reset() before step(): the session has ended.")
        actions = check_actions(self.world, action, 1, single=True)
        r, term, trunc, info = self.core.step(actions, self.np_random)
        self.t = self.core.clock
        self._done = bool(term[0] or trunc[0])
        info = one_user_info(self.world, info)
        return self.world.xp.to_numpy(self.core.obs()[0]), float(r[0]), bool(term[0]), bool(trunc[0]), info

