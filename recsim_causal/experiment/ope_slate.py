"""Slate OPE against the SCM's truth: ``scripts/run.py experiment=ope env=slate scm=position_bias``.

A thin wrapper over the Python API (:mod:`recsim_causal.ope.slate_log` has the path: collect,
log, estimate, truth): config -> :func:`~recsim_causal.ope.simulate_log` with ``slate_size``
-> :func:`~recsim_causal.ope.evaluate` -> ope.json, ope.png, logged.parquet and the W&B run
(:mod:`recsim_causal.experiment.ope_report`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from recsim_causal.agents.slate import ENUMERATION_LIMIT
from recsim_causal.build import world_from_config
from recsim_causal.experiment.ope_paths import check_setting
from recsim_causal.experiment.ope_report import report_rows, write_report
from recsim_causal.experiment.tracking import Tracker
from recsim_causal.ope.evaluate import evaluate
from recsim_causal.ope.simulate import simulate_log
from recsim_causal.ope.slate_log import ESTIMATORS, SLATES


def run_ope_slate(resolved: dict, out_dir: str | Path, tracker: Tracker) -> dict:
    """The slate OPE experiment (module doc); writes ope.json, ope.png and logged.parquet,
    returns the summary."""
    exp, env_cfg, seed = resolved["experiment"], resolved["env"], int(resolved.get("seed", 0))
    slate_cfg = exp.get("slate") or {}
    check_setting(exp, "slate", ("n_rounds", "truth_slates"), ESTIMATORS)
    start = time.perf_counter()
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
    result = evaluate(log, targets, slate_cfg.get("estimators") or list(ESTIMATORS), ci=exp["ci"]["method"],
                      alpha=exp["ci"]["alpha"], n_bootstrap_samples=exp["ci"]["n_bootstrap_samples"],
                      reward_model=exp["reward_model"], reward_features=exp.get("reward_features", "cross"),
                      n_folds=exp["n_folds"], seed=seed)
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
