"""Tune a policy fairly: one job runs the policy online over several seeds and answers one number.

A new policy should meet baselines whose hyperparameters were tuned with the same budget; this
experiment is the objective for that. ``experiment=tune`` runs the online experiment once per
seed in ``experiment.seeds`` (the same seeds, users and budget for every configuration) and
returns the mean of ``experiment.metric`` over them, which Hydra's Optuna sweeper minimizes::

    python scripts/run.py -m hydra/sweeper=optuna experiment=tune agent=linucb \\
        'agent.alpha=interval(0.01, 3.0)' hydra.sweeper.n_trials=20

Each seed's run is a normal online run in ``seed<k>/`` (its ``summary.json`` holds the config
it ran with), so the sweep's leaderboard ranks the trials with a 95% interval over the seeds;
the job writes ``tune.json`` (the metric's per-seed values, mean and interval) and Optuna's
``optimization_results.yaml`` in the sweep directory names the best values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recsim_causal.config import as_resolved, check_integer
from recsim_causal.experiment.online import run_online
from recsim_causal.experiment.report import mean_ci
from recsim_causal.experiment.tracking import Tracker
from recsim_causal.results import KINDS, better, format_table, write_result

ONLINE_KEYS = ("steps", "curve_points", "progress")  # what the tune config hands to each online run


def run_tune(cfg: Any, out_dir: str | Path, tracker: Tracker | None = None) -> dict:
    """Online runs of ``cfg.agent`` for every seed of ``experiment.seeds``; the summary's
    ``objective`` is the mean of ``experiment.metric`` over them (what the Optuna sweeper reads)."""
    resolved = as_resolved(cfg)
    exp = resolved["experiment"]
    seeds = exp.get("seeds")
    if not isinstance(seeds, list) or not seeds:
        raise ValueError(f"experiment.seeds: expected a non-empty list of seeds, got {seeds!r}")
    seeds = [check_integer(s, "experiment.seeds", minimum=0) for s in seeds]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"experiment.seeds: each seed once, got {seeds}")
    metric = exp.get("metric", "cumulative_regret")
    direction = better(metric, "summary") if metric in KINDS["summary"].metrics else None
    if direction not in ("lower", "higher"):
        known = ", ".join(m for m, b in KINDS["summary"].metrics.items() if b in ("lower", "higher"))
        raise ValueError(f"experiment.metric: expected a metric of an online run ({known}), got {metric!r}")
    out_dir = Path(out_dir)
    tracker = tracker or Tracker(mode="disabled")
    values = []
    for seed in seeds:
        run_cfg = {**resolved, "seed": seed,
                   "experiment": {"name": "online", "save_log": False, **{k: exp[k] for k in ONLINE_KEYS if k in exp}}}
        summary = run_online(run_cfg, out_dir / f"seed{seed}", Tracker(mode="disabled"))
        # the run's config beside its result: the sweep's report keys the trials by it
        write_result(out_dir / f"seed{seed}" / "summary.json", "summary", {**summary, "config": run_cfg})
        values.append(float(summary[metric]))
        tracker.curve("tune", seed, {metric: values[-1]})
    stats = mean_ci(values, metric)
    result = {"experiment": "tune", "agent": resolved["agent"], "env": resolved["env"]["id"],
              "scm": resolved["scm"].get("name"), "metric": metric, "better": direction, "seeds": seeds,
              "values": values, "objective": stats["mean"], "ci_low": stats["ci_low"], "ci_high": stats["ci_high"],
              "steps": exp["steps"]}
    write_result(out_dir / "tune.json", "tune", result)
    tracker.summary({"objective": stats["mean"], f"{metric}/mean": stats["mean"],
                     **{f"{metric}/seed{s}": v for s, v in zip(seeds, values)}})
    rows = [[f"seed {s}", v] for s, v in zip(seeds, values)] + [["mean", stats["mean"]]]
    interval = "" if stats["ci_low"] is None else f" (95% CI {stats['ci_low']:,.4g} .. {stats['ci_high']:,.4g})"
    return {**result, "table": format_table(["seed", metric], rows, f"objective: mean {metric}{interval}")}
