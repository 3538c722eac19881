"""The online experiment: an agent acts in the vectorized env and learns from every batch.

``run_online(cfg, out_dir)`` runs ``experiment.steps`` user decisions and writes into
``out_dir``: ``summary.json``, ``logged.parquet`` (context, action, reward, pscore; slates in
the long format ``simulate_log`` writes, :meth:`~recsim_causal.ope.slate_log.SlateLog.feedback`:
one row per slot with ``slate_id``, ``position``, the whole slate's ``pscore``,
``pscore_cascade`` and ``pscore_item_position``; the run's resolved config in the file
metadata) and ``regret.png``. Regret is measured
against the oracle: at each decision, max_a E[r | x, do(a)] minus E[r | x, do(chosen)] (for
slates, the best slate's expected reward minus the chosen slate's). With slates, agents learn
from each slot: (context, item in slot j, reward of slot j), one row per slot.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import recsim_causal.envs  # noqa: F401  (registers the environments)
from recsim_causal.agents import validate_policy_output
from recsim_causal.agents.slate import OwnSlate
from recsim_causal.build import make_agent
from recsim_causal.config import as_resolved, check_integer
from recsim_causal.data import LoggedFeedback, ParquetLogWriter
from recsim_causal.dynamic_regret import DynamicRegret
from recsim_causal.ope.slate_log import SlateLog
from recsim_causal.plots import regret_plot
from recsim_causal.experiment.tracking import Tracker
from recsim_causal.progress import progress
from recsim_causal.results import write_result

ENV_KEYS_NOT_FOR_MAKE = ("id", "num_envs")
LOG_CHUNK_ROWS = 1 << 16  # logged rows held in memory before they are written out


def make_vector_env(env_cfg: dict, scm: Any, num_envs: int | None = None) -> gym.vector.VectorEnv:
    """The native vector env described by an ``env`` config group and an SCM config; a world on
    the torch backend (``env.backend=torch env.device=cuda``) is seen through numpy arrays."""
    from recsim_causal.envs.common import numpy_view

    kwargs = {k: v for k, v in env_cfg.items() if k not in ENV_KEYS_NOT_FOR_MAKE}
    venv = gym.make_vec(env_cfg["id"], num_envs=num_envs or env_cfg["num_envs"],
                        vectorization_mode="vector_entry_point", scm=scm, **kwargs)
    world = venv.unwrapped.world
    if world.backend != "numpy":
        print(f"env: the world computes with {world.backend} on {world.device}", file=sys.stderr, flush=True)
    return numpy_view(venv)


def _check_experiment(exp: dict) -> None:
    check_integer(exp.get("steps"), "experiment.steps", minimum=1)
    check_integer(exp.get("curve_points", 100), "experiment.curve_points", minimum=1)


def _columns(chunk: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """A chunk of per-step row dicts as one dict of columns."""
    return {k: np.concatenate([c[k] for c in chunk]) for k in chunk[0]}


class OneItem:
    """One recommendation per user: the agent's ``act``; one logged row per decision."""

    rows_per_decision = 1

    def decide(self, agent, obs: np.ndarray, rng: np.random.Generator, check: bool) -> tuple[np.ndarray, np.ndarray]:
        actions, pscores = agent.act(obs, rng)
        validate_policy_output(agent, len(obs), actions=actions, pscores=pscores,
                               probs=agent.action_probs(obs) if check else None)
        return actions, pscores

    def values(self, actions: np.ndarray, info: dict) -> tuple[np.ndarray, np.ndarray]:
        """E[r | x, do(chosen)] and max_a E[r | x, do(a)] per user (the env's oracle, "full" or "best")."""
        return info["chosen_expected_reward"], info["optimal_expected_reward"]

    def rows_of(self, live, obs, actions, pscores, reward, info) -> dict[str, np.ndarray]:
        """The logged rows of the ``live`` users: context, action, reward, pscore."""
        return {"context": obs[live], "action": actions[live], "reward": reward[live], "pscore": pscores[live]}

    def learn(self, agent, rows: dict[str, np.ndarray]) -> None:
        agent.update(rows["context"], rows["action"], rows["reward"])

    def feedback(self, chunk: list[dict[str, np.ndarray]], n_actions: int, metadata: dict) -> LoggedFeedback:
        """Logged rows, one per decision, as LoggedFeedback."""
        cols = _columns(chunk)
        return LoggedFeedback(context=cols["context"], action=cols["action"], reward=cols["reward"].astype(np.float64),
                              pscore=cols["pscore"], n_actions=n_actions, t=cols.get("t"), metadata=metadata)


class Slate(OneItem):
    """A slate of L items per user, the agent's own (:class:`~recsim_causal.agents.slate.OwnSlate`:
    its ``act_slate``, or Plackett-Luce over its distribution), with the slate's three exact
    propensities. Agents learn from each slot: (context, item in slot j, reward of slot j). The
    log is ``simulate_log``'s slate log, through the same writer (:meth:`SlateLog.feedback`)."""

    def __init__(self, agent, L: int, logged: bool = True):
        self.L = self.rows_per_decision = L
        self.slates, self.logged = OwnSlate(agent, L), logged
        self.n_logged = 0  # slates written so far: the next chunk's first slate_id

    def decide(self, agent, obs, rng, check):
        # the item-position marginals are for the log only (Plackett-Luce's cost the most)
        return self.slates.deal(self.slates.probs(obs), rng, item_position=self.logged)

    def values(self, actions, info):
        return info["slate_expected_reward"], info["optimal_slate_reward"]

    def rows_of(self, live, obs, actions, pscores, reward, info):
        return {"context": obs[live].astype(np.float64), "slates": actions[live],
                "slot_reward": info["slot_reward"][live].astype(np.float64),
                **{k: v[live] for k, v in pscores.items()}}

    def learn(self, agent, rows):
        agent.update(np.repeat(rows["context"], self.L, axis=0), rows["slates"].reshape(-1),
                     rows["slot_reward"].reshape(-1))

    def feedback(self, chunk, n_actions, metadata):
        cols = _columns(chunk)
        t = cols.pop("t", None)
        wide = SlateLog(**cols)
        out = wide.feedback(n_actions, metadata, first_slate_id=self.n_logged, t=t)
        self.n_logged += wide.n_rounds
        return out


def run_online(cfg: Any, out_dir: str | Path, tracker: Tracker | None = None, *, resolved: dict | None = None) -> dict:
    """Run the online experiment described by ``cfg`` (Hydra config or plain dict); returns the summary.

    The loop runs whole vector steps until at least ``experiment.steps`` user decisions are
    made (Session-v0's reset steps, where a slot only starts a new session, are not decisions).
    The log streams to ``logged.parquet`` in chunks (memory stays flat however many steps)
    unless ``experiment.save_log`` is false.
    """
    resolved = as_resolved(cfg, resolved)
    exp, env_cfg = resolved["experiment"], resolved["env"]
    _check_experiment(exp)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tracker = tracker or Tracker(mode="disabled")
    seed = int(resolved.get("seed", 0))

    venv = make_vector_env(env_cfg, resolved["scm"])
    world = venv.unwrapped.world
    n_envs, L = venv.num_envs, world.slate_size
    agent = make_agent(cfg["agent"], n_actions=world.n_items, dim=venv.single_observation_space.shape[0],
                       seed=seed, world=world)
    agent_name = type(agent).__name__
    setting = OneItem() if L == 1 else Slate(agent, L, logged=exp.get("save_log", True))
    rng = np.random.default_rng([seed, 1])

    train_steps = 0
    if hasattr(agent, "learn"):  # deep-RL agents train with their own loop first (e.g. PPO)
        train_steps = int(resolved["agent"].get("total_timesteps", 0))
        takes_tracker = "tracker" in inspect.signature(agent.learn).parameters
        agent.learn(venv, total_timesteps=train_steps, **({"tracker": tracker} if takes_tracker else {}))

    if env_cfg.get("oracle", "full") == "chosen":
        raise ValueError("env.oracle: the online experiment measures regret against the best item: "
                         "expected 'full' or 'best', got 'chosen'")
    steps = exp["steps"]
    every = max(1, steps // n_envs // exp.get("curve_points", 100))
    next_step_autoreset = venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    meta = {"config": resolved, "logging_policy": agent_name, "seed": seed, "world": world.config}
    log = ParquetLogWriter(out_dir / "logged.parquet") if exp.get("save_log", True) else None
    chunk: list[dict[str, np.ndarray]] = []
    curve = {"steps": [], "cumulative_regret": [], "mean_reward": []}
    total_reward = total_regret = total_oracle = 0.0
    n_decisions = env_steps = t = 0

    # a world that changes: regret after each change point and on new items; logs record t
    dynamic = None if world.is_stationary else DynamicRegret(world, steps)
    catalog_ids = world.catalog.item_id

    obs, _ = venv.reset(seed=seed)
    autoreset = np.zeros(n_envs, dtype=bool)  # next-step autoreset (Session-v0): those slots only reset
    with contextlib.ExitStack() as stack:
        if log is not None:
            stack.enter_context(log)
        bar = stack.enter_context(progress(steps, desc=agent_name, unit="decision", enabled=exp.get("progress", True)))
        start = time.perf_counter()
        while n_decisions < steps:
            actions, pscores = setting.decide(agent, obs, rng, check=t == 0)
            next_obs, reward, term, trunc, info = venv.step(actions)
            live = ~autoreset
            chosen, best = setting.values(actions, info)
            rows = setting.rows_of(live, obs, actions, pscores, reward, info)
            if live.any():
                setting.learn(agent, rows)
            if dynamic is not None:
                rows["t"] = info["t"][live]
                dynamic.add(info["t"][live], actions[live], (best - chosen)[live])
                catalog_ids = _tell_new_items(agent, world, venv.unwrapped.t, catalog_ids)
            n_live = int(live.sum())
            total_reward += float(reward[live].sum())
            total_regret += float((best - chosen)[live].sum())
            total_oracle += float(best[live].sum())
            n_decisions += n_live
            env_steps += n_envs
            t += 1
            if log is not None:
                chunk.append(rows)
                if sum(len(c["context"]) for c in chunk) * setting.rows_per_decision >= LOG_CHUNK_ROWS:
                    log.write(setting.feedback(chunk, world.n_items, meta))
                    chunk = []
            if t % every == 0 or n_decisions >= steps:
                curve["steps"].append(n_decisions)
                curve["cumulative_regret"].append(total_regret)
                curve["mean_reward"].append(total_reward / max(n_decisions, 1))
                tracker.curve("online", n_decisions, {  # x axis: decisions (online/step)
                    "cumulative_regret": total_regret, "mean_reward": curve["mean_reward"][-1],
                    "steps_per_s": n_decisions / (time.perf_counter() - start)})
            bar.update(n_live)
            autoreset = (term | trunc) if next_step_autoreset else autoreset
            obs = next_obs
        wall = time.perf_counter() - start
        if log is not None and chunk:
            log.write(setting.feedback(chunk, world.n_items, meta))

    half = np.searchsorted(curve["steps"], n_decisions / 2)  # cumulative regret at the curve point nearest half-way
    first_half = float(curve["cumulative_regret"][half]) if half < len(curve["steps"]) else None
    summary = {
        "agent": agent_name,
        "agent_config": resolved["agent"].get("_target_"),
        "env": env_cfg["id"],
        "scm": world.name,
        "slate_size": L,
        "seed": seed,
        "steps": n_decisions,
        "steps_counted": "user decisions (whole vector steps; Session-v0 reset steps excluded)",
        "env_steps": env_steps,
        "train_steps": train_steps,
        "cumulative_reward": total_reward,
        "cumulative_regret": total_regret,
        "mean_reward": total_reward / n_decisions,
        "oracle_mean_reward": total_oracle / n_decisions,
        "regret_first_half": first_half,
        "regret_second_half": None if first_half is None else total_regret - first_half,
        "steps_per_s": n_decisions / wall,
        "wall_s": wall,
        "logged_rows": log.n_rounds if log is not None else 0,
    }
    if getattr(agent, "learn_stats", None):
        summary["train_steps_per_s"] = agent.learn_stats.get("steps_per_s")
        summary["train_wall_s"] = agent.learn_stats.get("wall_s")
        summary["device"] = agent.learn_stats.get("device")
        if "curves" in agent.learn_stats:
            summary["train_curves"] = agent.learn_stats["curves"]
    summary["env_backend"], summary["env_device"] = world.backend, str(world.device)
    if dynamic is not None:
        summary.update(dynamic.summary())
    if hasattr(agent, "restarts"):  # a change-detecting agent: when it started afresh
        summary["restarts"] = [int(t) for t in agent.restarts]
    summary["curve"] = curve

    title = f"{agent_name} on {env_cfg['id']}{f' (slates of {L})' if L > 1 else ''}, scm={world.name}"
    regret_plot(np.asarray(curve["steps"]), np.asarray(curve["cumulative_regret"]), out_dir / "regret.png", title,
                change_points=summary.get("change_points", ()))
    write_result(out_dir / "summary.json", "summary", summary)
    tracker.summary({k: v for k, v in summary.items() if k != "curve"})
    tracker.image("regret", out_dir / "regret.png")
    return summary


def _tell_new_items(agent: Any, world: Any, t: int, before: np.ndarray) -> np.ndarray:
    """Under churn, tell an agent that takes them (``new_items(slots, texts)``) which slots hold new
    items for the decisions from time t on; returns the catalogue's item ids at t."""
    catalog = world.catalog_at(t)
    if catalog.item_id is before or not hasattr(agent, "new_items"):
        return catalog.item_id
    slots = np.flatnonzero(catalog.item_id != before)
    if slots.size:
        agent.new_items(slots, [catalog.texts[int(k)] for k in slots])
    return catalog.item_id
