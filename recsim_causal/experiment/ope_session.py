"""Session OPE against rollout truth: ``scripts/run.py experiment=ope env=session``.

A thin wrapper over the Python API (:mod:`recsim_causal.ope.session_log` has the path: collect,
log, estimate, truth by rollouts): config -> :func:`~recsim_causal.ope.simulate_log` with
``env="session"`` -> :func:`~recsim_causal.ope.evaluate` -> ope.json, ope.png, logged.parquet
and the W&B run (:mod:`recsim_causal.experiment.ope_report`).

With ``experiment.data`` (a Parquet log of sessions in the same columns, e.g. another run's
logged.parquet) the targets learn from its first half of sessions (as contextual bandits on the
logged steps) and are evaluated on the second half, without truth.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from recsim_causal.build import make_agent, resolve_agents, session_dynamics, session_world
from recsim_causal.data import LoggedFeedback, load_parquet
from recsim_causal.experiment.ope_paths import check_setting
from recsim_causal.experiment.ope_report import report_rows, write_report
from recsim_causal.experiment.tracking import Tracker
from recsim_causal.ope.evaluate import evaluate
from recsim_causal.ope.session_log import ESTIMATORS, SESSIONS
from recsim_causal.ope.simulate import simulate_log

def _check(exp: dict) -> None:
    check_setting(exp, "session", ("n_trajectories", "truth_trajectories"), ESTIMATORS)
    gamma = (exp.get("session") or {}).get("gamma", 1.0)
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
        raise ValueError(f"experiment.session.gamma: expected a number in (0, 1], got {gamma!r}")


def _external(path: str, specs, seed: int) -> tuple[LoggedFeedback, dict]:
    """A logged session Parquet: its second half, and the targets trained on its first half."""
    p = Path(path)
    if p.suffix != ".parquet" or not p.is_file():
        raise ValueError(f"experiment.data: expected a .parquet log of sessions, got '{path}'")
    log = load_parquet(p)
    if log.trajectory_id is None:
        raise ValueError(f"experiment.data: {path} has no trajectory_id column (a one-item log: use env=bandit)")
    ids = np.unique(log.trajectory_id)
    first = np.isin(log.trajectory_id, ids[: len(ids) // 2])
    train_log, feedback = log.subset(first), log.subset(~first)
    targets = {}
    for t_i, (label, spec) in enumerate(resolve_agents(specs, where="experiment.session.targets").items()):
        agent = make_agent(spec, n_actions=log.n_actions, dim=log.dim_context, seed=seed + 1 + t_i,
                           where=f"experiment.session.targets[{t_i}]")
        agent.update(train_log.context, train_log.action, train_log.reward)
        targets[label] = agent
    return feedback, targets


def run_ope_session(resolved: dict, out_dir: str | Path, tracker: Tracker) -> dict:
    """The session OPE experiment (module doc); writes ope.json, ope.png, logged.parquet."""
    exp, seed = resolved["experiment"], int(resolved.get("seed", 0))
    sess = exp.get("session") or {}
    _check(exp)
    start = time.perf_counter()
    gamma = float(sess.get("gamma", 1.0))
    if exp.get("data"):
        log, targets = _external(exp["data"], sess["targets"], seed)
        facts = {"data": str(exp["data"]), "logger": "external", "warning": "no truth: external data"}
    else:
        world = session_world(resolved)
        log = simulate_log(world, exp["logger"]["agent"], sess["n_trajectories"], env="session",
                           epsilon=float(exp["logger"].get("epsilon", 0.0)), seed=seed, train_rounds=exp["train_rounds"],
                           gamma=gamma, env_kwargs=session_dynamics(resolved), truth_trajectories=sess["truth_trajectories"])
        if exp.get("save_log", True):
            log.save(Path(out_dir) / "logged.parquet")
        targets = SESSIONS.targets(sess["targets"], log, n_actions=world.n_items, dim=log.feedback.dim_context,
                                   seed=seed, train_rounds=exp["train_rounds"], where="experiment.session.targets")
        facts = {"scm": world.name, "max_steps": log.data.env.core.max_steps, "logger": exp["logger"]}
    result = evaluate(log, targets, sess.get("estimators") or list(ESTIMATORS), ci=exp["ci"]["method"],
                      alpha=exp["ci"]["alpha"], n_bootstrap_samples=exp["ci"]["n_bootstrap_samples"], seed=seed,
                      gamma=gamma, fqe=sess.get("fqe") or {}, weight_ridge=sess.get("weight_ridge", 1.0),
                      weight_refits=sess.get("weight_refits", 200))
    feedback = log if isinstance(log, LoggedFeedback) else log.feedback
    lengths = np.unique(feedback.trajectory_id, return_counts=True)[1]
    rows, warnings = report_rows(result.targets)
    summary = {
        "experiment": "ope", "setting": "session", "seed": seed, "gamma": gamma, **facts,
        "n_rounds": int(len(lengths)), "n_steps": feedback.n_rounds, "mean_session_length": float(lengths.mean()),
        "targets": result.targets, "wall_s": time.perf_counter() - start,
    }
    return write_report(summary, rows, warnings, out_dir, tracker,
                        title=f"Session OPE (gamma={gamma:g}, 95% CI)" + (
                            ", external data: no truth" if exp.get("data") else " vs rollout truth"))
