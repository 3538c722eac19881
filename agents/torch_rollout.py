"""PPO rollouts that stay torch tensors: for an env whose world computes on the torch backend.

SB3's ``OnPolicyAlgorithm.collect_rollouts`` steps the env with numpy actions, takes numpy
observations and fills a numpy ``RolloutBuffer``: on a torch world every step would copy the
batch to the host and back. Here, through SB3's extension points (no fork of SB3):

- :class:`TorchRolloutBuffer`, a ``RolloutBuffer`` (PPO's ``rollout_buffer_class=``) whose
  storage is tensors on its device: ``add`` takes tensors, ``compute_returns_and_advantage``
  is SB3's GAE (Schulman et al., 2016, "High-Dimensional Continuous Control Using Generalized
  Advantage Estimation") in tensor operations, ``get`` yields ``RolloutBufferSamples`` of
  tensors, so SB3's own ``PPO.train`` runs unchanged;
- :class:`TorchRolloutPPO`, SB3's ``PPO`` with ``collect_rollouts`` for a tensor-mode
  ``recsim_causal.envs.sb3.SB3VecEnv``: the same loop as SB3's (callbacks ``update_locals`` /
  ``on_step``, ``num_timesteps``, bootstrapping of truncated episodes from their terminal
  observations, ``_last_obs`` / ``_last_episode_starts``), with actions, observations,
  rewards, dones, values and log-probabilities kept as tensors. Episode statistics
  (``ep_info_buffer``, hence ``rollout/ep_rew_mean``) are read from the adapter once per
  rollout (``SB3VecEnv.pop_episode_infos``), not once per step. An env in numpy mode gets
  SB3's own ``collect_rollouts``.

Devices: the buffer and the policy live on the model's device. When the env's tensors are
on another device, observations, rewards and dones are moved with one ``.to(device)`` each per
step and actions go to the env as they are (the env moves them to its world's device): no
numpy on the way either.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import RolloutBufferSamples
from stable_baselines3.common.vec_env import VecEnv

__all__ = ["TorchRolloutBuffer", "TorchRolloutPPO"]


def _torch_dtype(dtype: Any) -> th.dtype:
    """The torch dtype of a numpy dtype (a space's)."""
    return th.from_numpy(np.zeros(0, dtype=dtype)).dtype


class TorchRolloutBuffer(RolloutBuffer):
    """SB3's ``RolloutBuffer`` with tensor storage on ``device`` (same arguments, same samples).

    Storage, (buffer_size, n_envs, ...) until ``get`` flattens it as SB3 does (env-major):
    ``observations`` (the observation space's dtype), ``actions`` (the action space's dtype,
    sampled as float32 like SB3's), ``rewards``, ``episode_starts``, ``log_probs``,
    ``advantages``, and ``values_tensor``, ``returns_tensor`` (float32).

    ``values`` and ``returns`` are numpy copies of the last two, made when read: SB3 declares
    them numpy and ``PPO.train`` reads them once per rollout for its ``explained_variance``
    log line (``np.var`` does not take tensors). Minibatch order comes from ``torch.randperm``
    on the device (seeded by SB3's ``set_random_seed``, as numpy's is for SB3's buffer).
    """

    def reset(self) -> None:
        dev, shape = self.device, (self.buffer_size, self.n_envs)
        self.observations = th.zeros((*shape, *self.obs_shape), dtype=_torch_dtype(self.observation_space.dtype),
                                     device=dev)
        self.actions = th.zeros((*shape, self.action_dim), dtype=_torch_dtype(self.action_space.dtype), device=dev)
        self.rewards = th.zeros(shape, dtype=th.float32, device=dev)
        self.episode_starts = th.zeros(shape, dtype=th.float32, device=dev)
        self.log_probs = th.zeros(shape, dtype=th.float32, device=dev)
        self.advantages = th.zeros(shape, dtype=th.float32, device=dev)
        self.values_tensor = th.zeros(shape, dtype=th.float32, device=dev)
        self.returns_tensor = th.zeros(shape, dtype=th.float32, device=dev)
        self.generator_ready = False
        self.pos, self.full = 0, False

    @property
    def values(self) -> np.ndarray:
        return self.values_tensor.detach().cpu().numpy()

    @property
    def returns(self) -> np.ndarray:
        return self.returns_tensor.detach().cpu().numpy()

    def _tensor(self, x: Any, dtype: th.dtype | None = None) -> th.Tensor:
        return th.as_tensor(x, device=self.device) if dtype is None else th.as_tensor(x, dtype=dtype, device=self.device)

    def add(self, obs: th.Tensor, action: th.Tensor, reward: th.Tensor, episode_start: th.Tensor,
            value: th.Tensor, log_prob: th.Tensor) -> None:
        """One step of the N envs: obs (N, *obs_shape), action (N,) or (N, action_dim), reward,
        episode_start (N,), value (N, 1) or (N,), log_prob (N,). Tensors (arrays are taken too)."""
        if self.full:
            raise ValueError(f"TorchRolloutBuffer.add: the buffer is full ({self.buffer_size} steps); reset() it first")
        self.observations[self.pos] = self._tensor(obs).reshape(self.n_envs, *self.obs_shape)
        self.actions[self.pos] = self._tensor(action).reshape(self.n_envs, self.action_dim)
        self.rewards[self.pos] = self._tensor(reward, th.float32).flatten()
        self.episode_starts[self.pos] = self._tensor(episode_start, th.float32).flatten()
        self.values_tensor[self.pos] = value.detach().flatten()
        self.log_probs[self.pos] = log_prob.detach().flatten()
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full = True

    def compute_returns_and_advantage(self, last_values: th.Tensor, dones: Any) -> None:
        """GAE(lambda) advantages and TD(lambda) returns, SB3's recursion in tensor operations:
        delta_t = r_t + gamma V_{t+1} (1 - done_{t+1}) - V_t,
        A_t = delta_t + gamma lambda (1 - done_{t+1}) A_{t+1}, returns = A + V."""
        last_values = last_values.detach().to(self.device, th.float32).flatten()
        last_non_terminal = 1.0 - self._tensor(dones, th.float32).flatten()
        last_gae_lam = th.zeros(self.n_envs, dtype=th.float32, device=self.device)
        for step in reversed(range(self.buffer_size)):
            if step == self.buffer_size - 1:
                next_non_terminal, next_values = last_non_terminal, last_values
            else:
                next_non_terminal, next_values = 1.0 - self.episode_starts[step + 1], self.values_tensor[step + 1]
            delta = self.rewards[step] + self.gamma * next_values * next_non_terminal - self.values_tensor[step]
            last_gae_lam = delta + self.gamma * self.gae_lambda * next_non_terminal * last_gae_lam
            self.advantages[step] = last_gae_lam
        self.returns_tensor = self.advantages + self.values_tensor

    @staticmethod
    def _swap_and_flatten(x: th.Tensor) -> th.Tensor:
        """(buffer_size, n_envs, ...) -> (n_envs * buffer_size, ...), env-major (SB3's ``swap_and_flatten``)."""
        return x.transpose(0, 1).reshape(x.shape[0] * x.shape[1], *x.shape[2:])

    def get(self, batch_size: int | None = None) -> Generator[RolloutBufferSamples, None, None]:
        if not self.full:
            raise ValueError("TorchRolloutBuffer.get: the buffer is not full yet")
        n = self.buffer_size * self.n_envs
        indices = th.randperm(n, device=self.device)
        if not self.generator_ready:
            for name in ("observations", "actions", "log_probs", "advantages", "values_tensor", "returns_tensor"):
                setattr(self, name, self._swap_and_flatten(getattr(self, name)))
            self.generator_ready = True
        batch_size = n if batch_size is None else batch_size
        for start in range(0, n, batch_size):
            yield self._get_samples(indices[start:start + batch_size])

    def _get_samples(self, batch_inds: Any, env: Any = None) -> RolloutBufferSamples:
        idx = self._tensor(batch_inds, th.int64)
        return RolloutBufferSamples(
            self.observations[idx],
            self.actions[idx].to(th.float32),  # as SB3's: PPO.train casts Discrete actions back to long
            self.values_tensor[idx].flatten(),
            self.log_probs[idx].flatten(),
            self.advantages[idx].flatten(),
            self.returns_tensor[idx].flatten(),
        )


class TorchRolloutPPO(PPO):
    """SB3's ``PPO`` whose rollouts stay tensors on a tensor-mode ``SB3VecEnv`` (see the module
    docstring). Build it with ``rollout_buffer_class=TorchRolloutBuffer``; ``train`` is SB3's."""

    def collect_rollouts(self, env: VecEnv, callback: BaseCallback, rollout_buffer: RolloutBuffer,
                         n_rollout_steps: int) -> bool:
        """SB3's ``collect_rollouts`` (same arguments, callbacks and return value); with a
        tensor-mode env and a :class:`TorchRolloutBuffer`, nothing is converted to numpy."""
        if not getattr(env, "tensors", False):
            return super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps)
        if not isinstance(rollout_buffer, TorchRolloutBuffer):
            raise TypeError(f"{type(self).__name__}: a tensor-mode env needs rollout_buffer_class=TorchRolloutBuffer, "
                            f"got {type(rollout_buffer).__name__}")
        if not isinstance(self.action_space, (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
            raise TypeError(f"{type(self).__name__}: tensor rollouts take discrete action spaces, got {self.action_space}")
        assert self._last_obs is not None, "No previous observation was provided"
        self.policy.set_training_mode(False)
        n_steps = 0
        rollout_buffer.reset()
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)
        callback.on_rollout_start()
        device = self.device
        # SB3's _setup_learn starts the episode flags as a numpy array: one conversion per learn()
        self._last_episode_starts = th.as_tensor(self._last_episode_starts, device=device)

        while n_steps < n_rollout_steps:
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                self.policy.reset_noise(env.num_envs)
            with th.no_grad():
                obs_tensor = self._last_obs.to(device)
                actions, values, log_probs = self.policy(obs_tensor)
            new_obs, rewards, dones, infos = env.step(actions)
            self.num_timesteps += env.num_envs

            callback.update_locals(locals())
            if not callback.on_step():
                self.ep_info_buffer.extend(env.pop_episode_infos(self.ep_info_buffer.maxlen))
                return False
            n_steps += 1

            rewards, dones = rewards.to(device), dones.to(device)
            # truncated episodes: bootstrap with the value of their terminal observation (SB3 #633)
            if bool(infos.timeouts.any()):
                idx = th.nonzero(infos.timeouts).flatten()  # on the env's device, as terminal_obs
                with th.no_grad():
                    terminal_values = self.policy.predict_values(infos.terminal_obs[idx].to(device)).flatten()
                rewards = rewards.index_add(0, idx.to(device), self.gamma * terminal_values.to(rewards.dtype))

            rollout_buffer.add(obs_tensor, actions, rewards, self._last_episode_starts, values, log_probs)
            self._last_obs = new_obs
            self._last_episode_starts = dones

        with th.no_grad():
            values = self.policy.predict_values(new_obs.to(device))
        rollout_buffer.compute_returns_and_advantage(last_values=values, dones=dones)
        self.ep_info_buffer.extend(env.pop_episode_infos(self.ep_info_buffer.maxlen))

        callback.update_locals(locals())
        callback.on_rollout_end()
        return True
