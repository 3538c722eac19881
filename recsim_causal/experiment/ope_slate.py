"""Slate OPE against the SCM's truth: ``scripts/run.py experiment=ope env=slate scm=position_bias``.

A thin wrapper over the Python API (:mod:`recsim_causal.ope.slate_log` has the path: collect,
log, estimate, truth): config -> :func:`~recsim_causal.ope.simulate_log` with ``slate_size``
-> :func:`~recsim_causal.ope.evaluate` -> ope.json, ope.png, logged.parquet and the W&B run
(:mod:`recsim_causal.experiment.ope_report`).

With ``experiment.data`` (a Parquet slate log in OBP's long format: ``slate_id``, ``position``,
``pscore``, ``pscore_cascade``, ``pscore_item_position``, as ``simulate_log(..., slate_size=L)``
and ``experiment=online env=slate`` write it) the targets' agents learn from the slots of its
first half of slates (as online agents do) and the slate estimators evaluate the second half,
through the same :func:`~recsim_causal.ope.evaluate`, without truth.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from recsim_causal.agents.slate import ENUMERATION_LIMIT
from recsim_causal.build import world_from_config
from recsim_causal.data import LoggedFeedback, load_parquet
from recsim_causal.experiment.ope_paths import check_setting
from recsim_causal.experiment.ope_report import report_rows, write_report
from recsim_causal.experiment.tracking import Tracker
from recsim_causal.ope.evaluate import evaluate
from recsim_causal.ope.simulate import simulate_log
from recsim_causal.ope.slate_log import ESTIMATORS, SLATES, wide_slates

#: The columns a slate log has besides a one-item log's (what the slate estimators read).
SLATE_COLUMNS = ("slate_id", "position", "pscore_cascade", "pscore_item_position")


def load_slate_log(path: str) -> LoggedFeedback:
    """``experiment.data`` read as a slate log; one-line errors naming ``experiment.data``."""
    p = Path(path)
    if p.suffix != ".parquet" or not p.is_file():
        raise ValueError(f"experiment.data: expected a .parquet slate log, got '{path}'")
    log = load_parquet(p)
    missing = [c for c in SLATE_COLUMNS if getattr(log, c) is None]
    if missing:
        kind = "a one-item log" if log.setting == "one_item" else f"a {log.setting} log"
        raise ValueError(f"experiment.data: {path} is {kind} without the slate columns {', '.join(missing)}; expected "
                         f"a slate log ({', '.join(SLATE_COLUMNS)}), or use env=bandit for a one-item log")
    try:
        wide_slates(log)
    except ValueError as e:
        raise ValueError(f"experiment.data: {path}: {e}") from None
    return log


def _external(path: str, specs, seed: int) -> tuple[LoggedFeedback, dict]:
    """A logged slate Parquet: its second half of slates, and the targets (slate policies)
    whose agents learned from the first half's slots (context, item in slot l, reward of slot l)."""
    log = load_slate_log(path)
    ids = np.unique(log.slate_id)
    first = np.isin(log.slate_id, ids[: len(ids) // 2])
    train_log, feedback = log.subset(first), log.subset(~first)
    targets = SLATES.targets(specs, log.len_list, world=None, n_actions=log.n_actions, dim=log.dim_context, seed=seed,
                             train_rounds=None, where="experiment.slate.targets")
    for target in targets.values():
        target.policy.update(train_log.context, train_log.action, train_log.reward)
    return feedback, targets


def _evaluate(log, targets: dict, exp: dict, slate_cfg: dict, seed: int):
    """The one call both paths make: :func:`~recsim_causal.ope.evaluate` with the run's settings."""
    return evaluate(log, targets, slate_cfg.get("estimators") or list(ESTIMATORS), ci=exp["ci"]["method"],
                    alpha=exp["ci"]["alpha"], n_bootstrap_samples=exp["ci"]["n_bootstrap_samples"],
                    reward_model=exp["reward_model"], reward_features=exp.get("reward_features", "cross"),
                    n_folds=exp["n_folds"], seed=seed)


def _run_external(exp: dict, slate_cfg: dict, seed: int, out_dir: str | Path, tracker: Tracker, start: float) -> dict:
    """``experiment.data``: evaluate the log's second half (module doc), truth null and why."""
    feedback, targets = _external(exp["data"], slate_cfg["targets"], seed)
    result = _evaluate(feedback, targets, exp, slate_cfg, seed)
    rows, warnings = report_rows(result.targets)
    summary = {
        "experiment": "ope", "setting": "slate", "seed": seed, "data": str(exp["data"]), "logger": "external",
        "warning": "no truth: external data", "n_rounds": result.n_rounds, "n_items": feedback.n_actions,
        "slate_size": feedback.len_list, "reward_model": exp["reward_model"], "targets": result.targets,
        "wall_s": time.perf_counter() - start,
    }
    return write_report(summary, rows, warnings, out_dir, tracker, title="Slate OPE (95% CI), external data: no truth")


def run_ope_slate(resolved: dict, out_dir: str | Path, tracker: Tracker) -> dict:
    """The slate OPE experiment (module doc); writes ope.json, ope.png and logged.parquet,
    returns the summary."""
    exp, env_cfg, seed = resolved["experiment"], resolved["env"], int(resolved.get("seed", 0))
    slate_cfg = exp.get("slate") or {}
    check_setting(exp, "slate", ("n_rounds", "truth_slates"), ESTIMATORS)
    start = time.perf_counter()
    if exp.get("data"):
        return _run_external(exp, slate_cfg, seed, out_dir, tracker, start)
    L = env_cfg.get("slate_size", 1)
    world = world_from_config(resolved)
    K = world.n_items
    log = simulate_log(world, exp["logger"]["agent"], slate_cfg["n_rounds"], epsilon=exp["logger"].get("epsilon", 0.0),
                       slate_size=L, seed=seed, train_rounds=exp["train_rounds"],
                       slate_policy=slate_cfg.get("logger_slate", "plackett_luce"),
                       truth_slates=slate_cfg["truth_slates"])
    if exp.get("save_log", True):
        log.save(Path(out_dir) / "logged.parquet")
    targets = SLATES.targets(slate_cfg["targets"], L, world=world, n_actions=K, dim=world.obs_dim, seed=seed,
                             train_rounds=exp["train_rounds"], where="experiment.slate.targets")
    result = _evaluate(log, targets, exp, slate_cfg, seed)
    rows, warnings = report_rows(result.targets)
    summary = {
        "experiment": "ope", "setting": "slate", "scm": world.name, "click_model": world.slate_model,
        "seed": seed, "n_rounds": log.data.wide.n_rounds, "n_items": K, "slate_size": L,
        "logger": {**exp["logger"], "slate": log.logger.kind}, "reward_model": exp["reward_model"],
        "item_position_pscores": ("exact enumeration" if math.perm(K - 1, L - 1) <= ENUMERATION_LIMIT else
                                  "exponential-race quadrature (relative error < 2e-10)") + " for Plackett-Luce; greedy: exact",
        "targets": result.targets, "wall_s": time.perf_counter() - start,
    }
    return write_report(summary, rows, warnings, out_dir, tracker,
                        title=f"Slate OPE ({world.slate_model}, 95% CI) vs the SCM's truth")
