"""Stable-Baselines3 ``VecEnv`` adapter over a native Gymnasium vector env.

``SB3VecEnv(gym.make_vec("RecSimCausal/Bandit-v0", num_envs=N, vectorization_mode="vector_entry_point"))``
hands SB3 one batched ``step`` per call: no ``DummyVecEnv`` loop over N single envs.

Conventions bridged (Gymnasium 1.x vector API -> SB3 ``VecEnv`` API):

- ``reset()`` returns the observations only; the vector env's info dict is kept in
  ``last_info`` (and SB3's ``reset_infos`` holds N empty dicts).
- ``step_wait()`` returns ``(obs, rewards, dones, infos)`` with ``dones = terminated | truncated``
  and, as SB3 expects, ``obs`` already holding the first observation of the next episode
  for the envs that are done.
- Autoreset. SB3 needs "same-step" autoreset.
  ``SAME_STEP`` (Bandit-v0) passes through: every env is done at every step and the
  returned observations are the next users'. ``NEXT_STEP`` (Session-v0) and ``DISABLED``
  envs are reset right after the step for the done envs only, with the Gymnasium 1.x
  partial reset ``venv.reset(options={"reset_mask": dones})``, which the vector env must
  support (it also cancels its own pending next-step autoreset, as Gymnasium's
  ``SyncVectorEnv`` does).
- ``infos`` is a list of N dicts, built with as little Python per env as SB3 allows:
  a done env's dict holds ``"terminal_observation"`` (its last observation: under
  ``SAME_STEP`` the vector env's ``info["final_obs"]`` row when it gives one, otherwise the
  returned observation, i.e. the next user's: a bandit episode ends at its decision and
  has no state after it; SB3 reads ``terminal_observation`` only when
  ``"TimeLimit.truncated"`` is set, which Bandit-v0 never sets) and
  ``"TimeLimit.truncated"`` when the episode was truncated and not terminated.
  Per-env slices of the vector info (e.g. ``expected_reward`` (N, K)) are not copied into
  the dicts; the whole vector info is in ``last_info`` for callbacks that want it.
- Episode statistics are tracked in arrays, Monitor-style: ``info["episode"] = {"r", "l", "t"}``
  is attached to the last ``episode_window`` finished episodes of a step only. SB3 keeps
  just the last ``stats_window_size`` (100) episodes in its ``ep_info_buffer``, so
  ``rollout/ep_rew_mean`` is the same as with a ``VecMonitor`` while Bandit-v0 (N finished
  episodes per step) costs 100 small dicts per step, not N.
- ``get_attr``, ``set_attr`` and ``env_method`` act on the one vector env object (there are
  no sub-env objects): ``get_attr`` and ``env_method`` return its answer once per index.
  ``env_is_wrapped`` is False for every index: a native vector env has no per-env wrappers.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

__all__ = ["SB3VecEnv"]


def _to_numpy(x: Any) -> np.ndarray:
    """numpy view of an array or a (possibly CUDA) torch tensor."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        return x.detach().cpu().numpy()
    return np.asarray(x)


class SB3VecEnv(VecEnv):
    """SB3 view of a native Gymnasium ``VectorEnv`` (see the module docstring for the conventions).

    Args:
        venv: a ``gymnasium.vector.VectorEnv`` with ``single_observation_space`` and
            ``single_action_space`` and ``metadata["autoreset_mode"]`` (``NEXT_STEP`` if absent,
            Gymnasium's default).
        episode_window: how many finished episodes per step get an ``"episode"`` info entry
            (SB3's ``stats_window_size``; 0 turns episode statistics off).
    """

    def __init__(self, venv: gym.vector.VectorEnv, *, episode_window: int = 100):
        self.venv = venv
        mode = venv.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self.autoreset_mode = mode if isinstance(mode, AutoresetMode) else AutoresetMode(mode)
        self.episode_window = int(episode_window)
        self.last_info: dict[str, Any] = {}
        self._actions: np.ndarray | None = None
        n = venv.num_envs
        self._ep_return = np.zeros(n, dtype=np.float64)
        self._ep_length = np.zeros(n, dtype=np.int64)
        self._t0 = time.perf_counter()
        super().__init__(n, venv.single_observation_space, venv.single_action_space)

    # -- core API -------------------------------------------------------------------------

    def reset(self) -> VecEnvObs:
        seed = self._seeds[0]  # SB3's seed(s) gives env i the seed s + i, as Gymnasium's vector reset does
        options = self._options[0] or None
        obs, info = self.venv.reset(seed=seed, options=options)
        self._reset_seeds()
        self._reset_options()
        self.last_info = info
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._ep_return[:] = 0.0
        self._ep_length[:] = 0
        return _to_numpy(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without a pending step_async(actions)")
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        self._actions = None
        obs = _to_numpy(obs)
        rewards = _to_numpy(rewards).astype(np.float32, copy=False)
        terminated = _to_numpy(terminated).astype(bool, copy=False)
        truncated = _to_numpy(truncated).astype(bool, copy=False)
        dones = terminated | truncated
        self.last_info = info

        self._ep_return += rewards
        self._ep_length += 1
        done_idx = np.flatnonzero(dones)
        infos: list[dict[str, Any]]
        if done_idx.size:
            if self.autoreset_mode is AutoresetMode.SAME_STEP:
                final = info.get("final_obs") if isinstance(info, dict) else None
                terminal_obs = obs if final is None else final
            else:
                terminal_obs = obs
                reset_obs, reset_info = self.venv.reset(options={"reset_mask": dones})
                reset_obs = _to_numpy(reset_obs)
                keep = ~dones
                if keep.any() and not np.array_equal(reset_obs[keep], obs[keep], equal_nan=True):
                    raise RuntimeError(
                        f"{type(self.venv.unwrapped).__name__}.reset(options={{'reset_mask': mask}}) changed "
                        "envs outside the mask: SB3VecEnv needs the Gymnasium 1.x partial reset "
                        "(reset only the masked envs and cancel their pending next-step autoreset)"
                    )
                obs = np.where(dones.reshape((-1,) + (1,) * (obs.ndim - 1)), reset_obs, obs)
                self.last_info = {**info, "reset_info": reset_info}
            if done_idx.size == self.num_envs:  # Bandit-v0: every env, every step
                infos = [{"terminal_observation": o} for o in terminal_obs]
            else:
                infos = [{} for _ in range(self.num_envs)]
                for i in done_idx.tolist():
                    infos[i]["terminal_observation"] = terminal_obs[i]
            timeouts = truncated & ~terminated
            for i in np.flatnonzero(timeouts).tolist():
                infos[i]["TimeLimit.truncated"] = True
            if self.episode_window > 0:
                t = round(time.perf_counter() - self._t0, 6)
                for i in done_idx[-self.episode_window :].tolist():
                    infos[i]["episode"] = {"r": float(self._ep_return[i]), "l": int(self._ep_length[i]), "t": t}
            self._ep_return[done_idx] = 0.0
            self._ep_length[done_idx] = 0
        else:
            infos = [{} for _ in range(self.num_envs)]
        return obs, rewards, dones, infos

    def close(self) -> None:
        self.venv.close()

    # -- attribute access (one vector env object, answered once per index) -----------------

    def _indices(self, indices: VecEnvIndices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def _target(self, attr_name: str) -> Any:
        if hasattr(self.venv, attr_name):
            return self.venv
        unwrapped = getattr(self.venv, "unwrapped", self.venv)
        if hasattr(unwrapped, attr_name):
            return unwrapped
        raise AttributeError(f"{type(self.venv).__name__} has no attribute {attr_name!r}")

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self._target(attr_name), attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if len(self._indices(indices)) != self.num_envs:
            raise ValueError(
                f"set_attr({attr_name!r}): a native vector env is one object; set it for all envs (indices=None)"
            )
        try:
            target = self._target(attr_name)
        except AttributeError:
            target = self.venv
        setattr(target, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        result = getattr(self._target(method_name), method_name)(*method_args, **method_kwargs)
        return [result for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]
