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
- Tensor mode (``tensors=True``; the default when the vector env's world is on the torch
  backend, ``venv.unwrapped.world.xp.is_torch``): observations, rewards and dones stay torch
  tensors on the world's device, actions may be tensors, and nothing is copied to numpy.
  ``infos`` is then a :class:`TensorStepInfos`: a read-only sequence of N dicts, built only
  for the indices read, with the batched tensors (``terminal_obs``, ``timeouts``...) as
  attributes. Episode statistics stay on the device and are handed over in one transfer by
  ``pop_episode_infos`` (``recsim_causal.agents.torch_rollout.TorchRolloutPPO`` calls it once
  per rollout). SB3's own ``collect_rollouts`` and its ``VecEnvWrapper``s take numpy, so a
  tensor-mode adapter is for algorithms that collect tensors.
- ``get_attr``, ``set_attr`` and ``env_method`` act on the one vector env object (there are
  no sub-env objects): ``get_attr`` and ``env_method`` return its answer once per index.
  ``env_is_wrapped`` is False for every index: a native vector env has no per-env wrappers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

__all__ = ["SB3VecEnv", "TensorStepInfos"]

#: Tensor mode: finished-episode records kept per step before they are compacted to the last
#: ``episode_window`` episodes (one small device-to-host sync per this many steps).
_COMPACT_EVERY = 64


def _to_numpy(x: Any) -> np.ndarray:
    """numpy view of an array or a (possibly CUDA) torch tensor."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        return x.detach().cpu().numpy()
    return np.asarray(x)


def is_torch_env(venv: Any) -> bool:
    """Whether a vector env's world computes on the torch backend (its arrays are tensors)."""
    world = getattr(getattr(venv, "unwrapped", venv), "world", None)
    return bool(getattr(getattr(world, "xp", None), "is_torch", False))


class TensorStepInfos(Sequence):
    """A tensor-mode step's ``infos``: SB3's N dicts, built on demand, over batched tensors.

    ``infos[i]`` is the dict the numpy mode gives env i (``"terminal_observation"`` and
    ``"episode"`` when it is done, ``"TimeLimit.truncated"`` when it timed out; ``"episode"``
    for every done env, where the numpy mode marks a step's last ``episode_window`` only); it
    is built (and its tensors read) only when indexed. Algorithms read the batch instead:

    Attributes:
        dones: (N,) bool, episode ended at this step.
        timeouts: (N,) bool, ended truncated and not terminated (SB3's ``TimeLimit.truncated``).
        terminal_obs: (N, ...) the last observation of each env's episode (rows of done envs
            are meaningful; under ``SAME_STEP`` the vector env's ``final_obs`` when a tensor,
            else the returned observation).
        episode_return, episode_length: (N,) return (float64) and length of the episodes that
            ended at this step (rows of done envs).
        t: seconds since the adapter was made (Monitor's ``"t"``).
        vector_info: the vector env's own info dict.
    """

    def __init__(self, dones: th.Tensor, timeouts: th.Tensor, terminal_obs: th.Tensor, episode_return: th.Tensor,
                 episode_length: th.Tensor, t: float, vector_info: dict[str, Any]):
        self.dones, self.timeouts, self.terminal_obs = dones, timeouts, terminal_obs
        self.episode_return, self.episode_length, self.t = episode_return, episode_length, t
        self.vector_info = vector_info

    def __len__(self) -> int:
        return int(self.dones.shape[0])

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(len(self))[i]  # IndexError past the end, negative indices as a list's
        if not bool(self.dones[i]):
            return {}
        info: dict[str, Any] = {"terminal_observation": self.terminal_obs[i],
                                "episode": {"r": float(self.episode_return[i]), "l": int(self.episode_length[i]),
                                            "t": self.t}}
        if bool(self.timeouts[i]):
            info["TimeLimit.truncated"] = True
        return info

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"TensorStepInfos(num_envs={len(self)})"


class SB3VecEnv(VecEnv):
    """SB3 view of a native Gymnasium ``VectorEnv`` (see the module docstring for the conventions).

    Args:
        venv: a ``gymnasium.vector.VectorEnv`` with ``single_observation_space`` and
            ``single_action_space`` and ``metadata["autoreset_mode"]`` (``NEXT_STEP`` if absent,
            Gymnasium's default).
        episode_window: how many finished episodes per step get an ``"episode"`` info entry
            (SB3's ``stats_window_size``; 0 turns episode statistics off). In tensor mode: how
            many of the last finished episodes ``pop_episode_infos`` keeps.
        tensors: tensor mode (see the module docstring); None: on when the vector env's world
            is on the torch backend. The vector env must then return torch tensors.
    """

    def __init__(self, venv: gym.vector.VectorEnv, *, episode_window: int = 100, tensors: bool | None = None):
        self.venv = venv
        mode = venv.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self.autoreset_mode = mode if isinstance(mode, AutoresetMode) else AutoresetMode(mode)
        self.episode_window = int(episode_window)
        self.tensors = is_torch_env(venv) if tensors is None else bool(tensors)
        self.last_info: dict[str, Any] = {}
        self._actions: np.ndarray | None = None
        n = venv.num_envs
        self._ep_return = np.zeros(n, dtype=np.float64)
        self._ep_length = np.zeros(n, dtype=np.int64)
        self._t0 = time.perf_counter()
        # tensor mode: finished episodes, per step (dones, returns, lengths, t) and compacted
        self._ep_steps: list[tuple[th.Tensor, th.Tensor, th.Tensor, float]] = []
        self._ep_kept: tuple[th.Tensor, th.Tensor, th.Tensor] | None = None
        self._checked_partial_reset = False
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
        if self.tensors:
            self._check_tensor(obs, "reset() observations")
            self._ep_return = th.zeros(self.num_envs, dtype=th.float64, device=obs.device)
            self._ep_length = th.zeros(self.num_envs, dtype=th.int64, device=obs.device)
            self._ep_steps, self._ep_kept = [], None
            return obs
        self._ep_return[:] = 0.0
        self._ep_length[:] = 0
        return _to_numpy(obs)

    def step_async(self, actions: np.ndarray | th.Tensor) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without a pending step_async(actions)")
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        self._actions = None
        if self.tensors:
            return self._tensor_step(obs, rewards, terminated, truncated, info)
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

    # -- tensor mode ----------------------------------------------------------------------

    def _check_tensor(self, x: Any, what: str) -> None:
        if not isinstance(x, th.Tensor):
            raise TypeError(f"SB3VecEnv(tensors=True): {type(self.venv.unwrapped).__name__} returned "
                            f"{type(x).__name__} {what}, expected torch tensors (a vector env on the torch backend)")

    def _tensor_step(self, obs: Any, rewards: Any, terminated: Any, truncated: Any,
                     info: dict[str, Any]) -> tuple[th.Tensor, th.Tensor, th.Tensor, TensorStepInfos]:
        """``step_wait`` in tensor mode: the numpy mode's conventions with tensor operations only
        (one scalar sync per step when a next-step autoreset env may need a partial reset)."""
        self._check_tensor(obs, "observations")
        rewards = rewards.to(th.float32)
        terminated, truncated = terminated.to(th.bool), truncated.to(th.bool)
        dones = terminated | truncated
        self.last_info = info
        if self.autoreset_mode is AutoresetMode.SAME_STEP:
            final = info.get("final_obs") if isinstance(info, dict) else None
            terminal_obs = final if isinstance(final, th.Tensor) else obs
        else:
            terminal_obs = obs
            if bool(dones.any()):
                reset_obs, reset_info = self.venv.reset(options={"reset_mask": dones})
                rows = dones.reshape((-1,) + (1,) * (obs.ndim - 1))
                if not self._checked_partial_reset:  # once: a vector env without partial reset fails at once
                    same = (reset_obs == obs) | (reset_obs.isnan() & obs.isnan()) | rows
                    if not bool(same.all()):
                        raise RuntimeError(
                            f"{type(self.venv.unwrapped).__name__}.reset(options={{'reset_mask': mask}}) changed "
                            "envs outside the mask: SB3VecEnv needs the Gymnasium 1.x partial reset "
                            "(reset only the masked envs and cancel their pending next-step autoreset)")
                    self._checked_partial_reset = True
                obs = th.where(rows, reset_obs, obs)
                self.last_info = {**info, "reset_info": reset_info}
        self._ep_return += rewards
        self._ep_length += 1
        ep_return, ep_length = self._ep_return.clone(), self._ep_length.clone()
        self._ep_return.masked_fill_(dones, 0.0)
        self._ep_length.masked_fill_(dones, 0)
        t = round(time.perf_counter() - self._t0, 6)
        if self.episode_window > 0:
            self._ep_steps.append((dones, ep_return, ep_length, t))
            if len(self._ep_steps) >= _COMPACT_EVERY:
                self._compact_episodes()
        infos = TensorStepInfos(dones, truncated & ~terminated, terminal_obs, ep_return, ep_length, t, info)
        return obs, rewards, dones, infos

    def _compact_episodes(self) -> None:
        """Keep only the last ``episode_window`` finished episodes of the recorded steps (in
        order: step, then env index, as the numpy mode's infos list them)."""
        if not self._ep_steps:
            return
        dones = th.stack([s[0] for s in self._ep_steps]).flatten()
        ret = th.stack([s[1] for s in self._ep_steps]).flatten()
        length = th.stack([s[2] for s in self._ep_steps]).flatten()
        t = th.tensor([s[3] for s in self._ep_steps], dtype=th.float64, device=dones.device)
        t = t.repeat_interleave(self.num_envs)
        idx = th.nonzero(dones).flatten()[-self.episode_window:]
        kept = (ret[idx], length[idx], t[idx])
        if self._ep_kept is not None:
            kept = tuple(th.cat([old, new])[-self.episode_window:] for old, new in zip(self._ep_kept, kept))
        self._ep_kept, self._ep_steps = kept, []

    def pop_episode_infos(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Tensor mode: SB3 ``"episode"`` dicts ``{"r", "l", "t"}`` of the last ``limit`` (default
        ``episode_window``) episodes finished since the last call, oldest first, in one
        device-to-host transfer; they are then forgotten. (The numpy mode puts them in ``infos``.)"""
        if not self.tensors:
            raise RuntimeError("pop_episode_infos: only in tensor mode (the numpy mode gives 'episode' in infos)")
        self._compact_episodes()
        if self._ep_kept is None:
            return []
        limit = self.episode_window if limit is None else int(limit)
        ret, length, t = (x[-limit:].tolist() if limit > 0 else [] for x in self._ep_kept)
        self._ep_kept = None
        return [{"r": r, "l": n, "t": s} for r, n, s in zip(ret, length, t)]

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
