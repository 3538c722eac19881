"""The online experiment: an agent acts in the vectorized env and learns from every batch.

``run_online(cfg, out_dir)`` runs ``experiment.steps`` user decisions and writes into
``out_dir``: ``summary.json``, ``logged.parquet`` (context, action, reward, pscore, position,
with the run's resolved config in the file metadata) and ``regret.png``. Regret is measured
against the oracle: at each decision, max_a E[r | x, do(a)] minus E[r | x, do(chosen)] (for
slates, the best slate's expected reward minus the chosen slate's). With slates, agents learn
from each slot: (context, item in slot j, reward of slot j), one row per slot.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import recsim_causal.envs  # noqa: F401  (registers the environments)
from recsim_causal.agents import validate_policy_output
from recsim_causal.data import LoggedFeedback
from recsim_causal.experiment.plots import regret_plot
from recsim_causal.experiment.tracking import Tracker
from recsim_causal.progress import progress
from recsim_causal.io import write_json

ENV_KEYS_NOT_FOR_MAKE = ("id", "num_envs")


def make_vector_env(env_cfg: dict, scm: Any, num_envs: int | None = None) -> gym.vector.VectorEnv:
    """The native vector env described by an ``env`` config group and an SCM config."""
    kwargs = {k: v for k, v in env_cfg.items() if k not in ENV_KEYS_NOT_FOR_MAKE}
    return gym.make_vec(env_cfg["id"], num_envs=num_envs or env_cfg["num_envs"],
                        vectorization_mode="vector_entry_point", scm=scm, **kwargs)


def make_agent(agent_cfg: Any, *, n_actions: int, dim: int, seed: int, world=None):
    """Instantiate an agent config (``_target_`` + params); the runner supplies n_actions, dim,
    seed and, to agents that take them, the item texts of the catalog. One-line errors."""
    from hydra.errors import InstantiationException
    from hydra.utils import get_class, instantiate

    target = agent_cfg.get("_target_") if hasattr(agent_cfg, "get") else None
    if not target:
        raise ValueError("agent._target_: missing (expected a Policy class, e.g. recsim_causal.agents.LinUCB)")
    try:
        cls = get_class(target)
    except Exception as e:
        raise ValueError(f"agent._target_: cannot import '{target}' ({str(e).splitlines()[0]})") from None
    offered = {"n_actions": n_actions, "dim": dim, "seed": seed}
    if world is not None:
        offered["item_texts"] = world.catalog.texts
    params = inspect.signature(cls).parameters
    takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    extra = {k: v for k, v in offered.items() if (k in params or takes_any) and k not in agent_cfg}
    try:
        return instantiate(agent_cfg, **extra)
    except InstantiationException as e:
        cause = e.__cause__ or e
        msg = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        if msg.split(":", 1)[0] in agent_cfg:  # the agent named one of its parameters: say its config path
            raise ValueError(f"agent.{msg}") from None
        raise ValueError(f"agent ({target}): {msg}") from None


def _check_experiment(exp: dict) -> None:
    steps = exp.get("steps")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps <= 0:
        raise ValueError(f"experiment.steps: expected an integer > 0, got {steps!r}")
    points = exp.get("curve_points", 100)
    if not isinstance(points, int) or points < 1:
        raise ValueError(f"experiment.curve_points: expected an integer >= 1, got {points!r}")


def run_online(cfg: Any, out_dir: str | Path, tracker: Tracker | None = None, *, resolved: dict | None = None) -> dict:
    """Run the online experiment described by ``cfg`` (Hydra config or plain dict); returns the summary."""
    from omegaconf import OmegaConf

    resolved = resolved or (OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else cfg)
    exp, env_cfg = resolved["experiment"], resolved["env"]
    _check_experiment(exp)
    out_dir = Path(out_dir)
    tracker = tracker or Tracker(mode="disabled")
    seed = int(resolved.get("seed", 0))

    venv = make_vector_env(env_cfg, resolved["scm"])
    world = venv.unwrapped.world
    n_envs, L = venv.num_envs, world.slate_size
    agent = make_agent(cfg["agent"], n_actions=world.n_items, dim=venv.single_observation_space.shape[0],
                       seed=seed, world=world)
    agent_name = type(agent).__name__
    rng = np.random.default_rng([seed, 1])

    train_steps = 0
    if hasattr(agent, "learn"):  # deep-RL agents train with their own loop first (e.g. PPO)
        train_steps = int(resolved["agent"].get("total_timesteps", 0))
        takes_tracker = "tracker" in inspect.signature(agent.learn).parameters
        agent.learn(venv, total_timesteps=train_steps, **({"tracker": tracker} if takes_tracker else {}))

    n_vec_steps = -(-exp["steps"] // n_envs)
    every = max(1, n_vec_steps // exp.get("curve_points", 100))
    obs, _ = venv.reset(seed=seed)
    autoreset = np.zeros(n_envs, dtype=bool)  # next-step autoreset (Session-v0): those slots only reset
    log = {k: [] for k in ("context", "action", "reward", "pscore", "position")}
    curve_steps, curve_regret, curve_reward = [], [], []
    total_reward = total_regret = total_oracle = 0.0
    n_decisions = 0

    bar_cm = progress(n_vec_steps * n_envs, desc=agent_name, unit="step", enabled=exp.get("progress", True))
    bar = bar_cm.__enter__()
    start = time.perf_counter()
    for t in range(n_vec_steps):
        if L == 1:
            actions, pscores = agent.act(obs, rng)
            validate_policy_output(agent, n_envs, actions=actions, pscores=pscores,
                                   probs=agent.action_probs(obs) if t == 0 else None)
        else:
            actions, pscores = agent.act_slate(obs, L, rng)
        next_obs, reward, term, trunc, info = venv.step(actions)
        live = ~autoreset
        q = info["expected_reward"]
        if L == 1:
            chosen = q[np.arange(n_envs), actions]
            best = q.max(axis=1)
        else:
            chosen, best = info["slate_expected_reward"], info["optimal_slate_reward"]
        regret = (best - chosen)[live]
        if L == 1:
            learn = (obs[live], actions[live], reward[live])
        else:  # each slot's reward updates its item (position bias is left to the agent to handle)
            learn = (np.repeat(obs, L, axis=0), actions.reshape(-1), info["slot_reward"].reshape(-1))
        if live.any():
            agent.update(*learn)
        log["context"].append(obs[live])
        log["action"].append(actions[live])
        log["reward"].append(reward[live] if L == 1 else info["slot_reward"][live])
        log["pscore"].append(pscores[live])
        total_reward += float(reward[live].sum())
        total_regret += float(regret.sum())
        total_oracle += float(best[live].sum())
        n_decisions += int(live.sum())
        if (t + 1) % every == 0 or t == n_vec_steps - 1:
            curve_steps.append(n_decisions)
            curve_regret.append(total_regret)
            curve_reward.append(total_reward / max(n_decisions, 1))
            tracker.log({"cumulative_regret": total_regret, "mean_reward": curve_reward[-1],
                         "steps_per_s": n_decisions / (time.perf_counter() - start)}, step=n_decisions)
        bar.update(n_envs)
        autoreset = term | trunc if venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP \
            else np.zeros(n_envs, dtype=bool)
        obs = next_obs
    wall = time.perf_counter() - start
    bar_cm.__exit__(None, None, None)

    half = np.searchsorted(curve_steps, n_decisions / 2)  # cumulative regret at the curve point nearest half-way
    first_half = float(curve_regret[half]) if half < len(curve_regret) else None
    summary = {
        "agent": agent_name,
        "agent_config": resolved["agent"].get("_target_"),
        "env": env_cfg["id"],
        "scm": world.name,
        "seed": seed,
        "steps": n_decisions,
        "train_steps": train_steps,
        "cumulative_reward": total_reward,
        "cumulative_regret": total_regret,
        "mean_reward": total_reward / n_decisions,
        "oracle_mean_reward": total_oracle / n_decisions,
        "regret_first_half": first_half,
        "regret_second_half": None if first_half is None else total_regret - first_half,
        "steps_per_s": n_decisions / wall,
        "wall_s": wall,
    }
    if getattr(agent, "learn_stats", None):
        summary["train_steps_per_s"] = agent.learn_stats.get("steps_per_s")
        summary["train_wall_s"] = agent.learn_stats.get("wall_s")
        summary["device"] = agent.learn_stats.get("device")
        if "curves" in agent.learn_stats:
            summary["train_curves"] = agent.learn_stats["curves"]

    feedback = _feedback(log, world, L, resolved, agent_name, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    feedback.to_parquet(out_dir / "logged.parquet")
    regret_plot(np.asarray(curve_steps), np.asarray(curve_regret), out_dir / "regret.png",
                f"{agent_name} on {env_cfg['id']} ({world.name})")
    write_json(out_dir / "summary.json", summary)
    tracker.summary(summary)
    tracker.image("regret", out_dir / "regret.png")
    return summary


def _feedback(log: dict, world, L: int, resolved: dict, agent_name: str, seed: int) -> LoggedFeedback:
    """The logged rounds as LoggedFeedback: slates become one row per (user, position), as in OBP."""
    context = np.concatenate(log["context"])
    action, reward, pscore = (np.concatenate(log[k]) for k in ("action", "reward", "pscore"))
    position = None
    if L > 1:
        n = len(context)
        context = np.repeat(context, L, axis=0)
        position = np.tile(np.arange(L), n)
        action, pscore, reward = action.reshape(-1), pscore.reshape(-1), reward.reshape(-1)
    return LoggedFeedback(
        context=context, action=action, reward=reward.astype(np.float64), pscore=pscore, n_actions=world.n_items,
        position=position,
        metadata={"config": resolved, "logging_policy": agent_name, "seed": seed, "world": world.config},
    )
