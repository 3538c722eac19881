"""OPE across a change (``experiment=ope_shift``): a log from before a change in the world
evaluates policies for the world after it.

One straight path per seed, over the public API:

1. ``simulate_log(world, logger, n_rounds, t=t_before)``: the logger is trained on, and logs,
   users of world time ``t_before``; the targets are trained there too.
2. Every estimator, as usual (``evaluate``), and again with each logged round weighted by the
   contexts' density ratio w(x) = p_after(x) / p_before(x), estimated by a classifier between
   the logged contexts and ``target_contexts`` contexts of users after the change
   (:func:`recsim_causal.ope.shift.context_density_ratio`; only their contexts: no actions, no
   rewards).
3. The truth at both times, exact from the SCM: V_before on the logged users, V_after on
   ``truth_users`` fresh users of time ``t_after`` (``population_value(..., t=t_after)``).

The table, per target x estimator x weights (none | context): the mean estimate over the seeds,
the two truths, the error against V_after, its RMSE, and how often the interval covers V_after
and V_before. Where only the users moved (``scm=user_shift``) the weighted estimators find
V_after; where the reward function itself moved (``scm=drift``: a concept shift) the weights
stay near 1 and nothing in the log can find it. Writes ope_shift.json.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from recsim_causal.build import make_estimators, one_item_world, reward_model_q_hat
from recsim_causal.config import as_resolved, check_integer
from recsim_causal.experiment.tracking import Tracker
from recsim_causal.ope import evaluate, simulate_log
from recsim_causal.ope.diagnostics import weight_diagnostics
from recsim_causal.ope.intervals import ci_methods
from recsim_causal.ope.shift import FEATURES, context_density_ratio
from recsim_causal.ope.simulate import observe, population_value, train_targets
from recsim_causal.results import format_table, write_result

COLUMNS = ["target", "estimator", "weights", "estimate", "truth_before", "truth_after", "error_after",
           "rmse_after", "covers_after", "covers_before"]
WEIGHTS = ("none", "context")


def _check(exp: dict) -> None:
    for key in ("n_rounds", "train_rounds", "truth_users", "target_contexts", "seeds"):
        check_integer(exp.get(key), f"experiment.{key}", minimum=1)
    check_integer(exp.get("t_before"), "experiment.t_before", minimum=0)
    if exp.get("t_after") is not None:
        check_integer(exp["t_after"], "experiment.t_after", minimum=exp["t_before"] + 1)
    eps = exp["logger"].get("epsilon", 0.0)
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 <= eps <= 1:
        raise ValueError(f"experiment.logger.epsilon: expected a number in [0, 1], got {eps!r}")
    if not exp.get("targets"):
        raise ValueError("experiment.targets: expected a non-empty list of agents")
    if exp.get("density_ratio", {}).get("features") not in FEATURES:
        raise ValueError(f"experiment.density_ratio.features: expected one of {', '.join(FEATURES)}, "
                         f"got {exp.get('density_ratio', {}).get('features')!r}")
    ci_methods(exp["ci"], "experiment.ci")


def times(world, exp: dict) -> tuple[int, int]:
    """(t_before, t_after): ``t_after`` null is the world's first change point after ``t_before``."""
    t_before = int(exp["t_before"])
    if exp.get("t_after") is not None:
        return t_before, int(exp["t_after"])
    later = [p for p in world.change_points(t_before + 10**9) if p > t_before]
    if not later:
        raise ValueError(f"scm: experiment=ope_shift needs a world that changes after t_before={t_before} "
                         f"(e.g. scm=user_shift or scm=drift), got '{world.name}' (no change point); "
                         "or set experiment.t_after")
    return t_before, later[0]


def one_seed(world, exp: dict, estimators: dict, seed: int, t_before: int, t_after: int) -> dict:
    """Estimates (naive and context-weighted), both truths and the weights' diagnostics for one
    log: {"rows": [...], "weights": {...}}."""
    log = simulate_log(world, exp["logger"]["agent"], exp["n_rounds"], epsilon=exp["logger"].get("epsilon", 0.0),
                       seed=seed, train_rounds=exp["train_rounds"], t=t_before)
    targets = train_targets(exp["targets"], world, seed=seed, train_rounds=exp["train_rounds"],
                            where="experiment.targets", t=t_before)
    after_users = world.sample_users(exp["target_contexts"], np.random.default_rng([seed, 5]), t_after)
    ratio = exp["density_ratio"]
    w = context_density_ratio(log.feedback.context, observe(world, after_users), features=ratio["features"],
                              C=float(ratio.get("C", 1.0)), clip=ratio.get("clip"), random_state=seed)
    ests = list(estimators.values())
    q_hat = reward_model_q_hat(log.feedback, exp, seed, world) if any(e.kind in ("dm", "dr") for e in ests) else None
    truth_after = {name: population_value(world, policy, exp["truth_users"], np.random.default_rng([seed, 4]),
                                          t=t_after)[0] for name, policy in targets.items()}
    rows = []
    for weights, cw in zip(WEIGHTS, (None, w)):
        result = evaluate(log, targets, ests, ci=ci_methods(exp["ci"], "experiment.ci")[0], alpha=exp["ci"]["alpha"],
                          reward_model=q_hat, seed=seed, n_bootstrap_samples=exp["ci"].get("n_bootstrap_samples", 1000),
                          context_weight=cw)
        for r in result.records:
            after = truth_after[r.target]
            rows.append({"target": r.target, "estimator": r.estimator, "weights": weights, "estimate": r.estimate,
                         "ci_low": r.ci_low, "ci_high": r.ci_high, "truth_before": r.truth, "truth_after": after,
                         "covers_after": bool(r.ci_low <= after <= r.ci_high),
                         "covers_before": bool(r.ci_low <= r.truth <= r.ci_high)})
    return {"rows": rows, "weights": weight_diagnostics(w)}


def aggregate(runs: list[dict]) -> list[dict]:
    """Per target x estimator x weights over the seeds: mean estimate and truths, mean error and
    RMSE against V_after, coverage of V_after and of V_before."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        for row in run["rows"]:
            groups.setdefault((row["target"], row["estimator"], row["weights"]), []).append(row)
    out = []
    for (target, est, weights), rows in groups.items():
        err = np.array([r["estimate"] - r["truth_after"] for r in rows])
        out.append({"target": target, "estimator": est, "weights": weights,
                    "estimate": float(np.mean([r["estimate"] for r in rows])),
                    "truth_before": float(np.mean([r["truth_before"] for r in rows])),
                    "truth_after": float(np.mean([r["truth_after"] for r in rows])),
                    "error_after": float(err.mean()), "rmse_after": float(np.sqrt((err ** 2).mean())),
                    "covers_after": float(np.mean([r["covers_after"] for r in rows])),
                    "covers_before": float(np.mean([r["covers_before"] for r in rows])), "n_seeds": len(rows)})
    return out


def run_ope_shift(cfg: Any, out_dir: str | Path, tracker: Tracker | None = None, *,
                  resolved: dict | None = None) -> dict:
    """Run the experiment over ``experiment.seeds`` logs (seeds seed, seed + 1, ...); write
    ope_shift.json into ``out_dir``; return the summary (with its text ``table``)."""
    resolved = as_resolved(cfg, resolved)
    exp, seed = resolved["experiment"], int(resolved.get("seed", 0))
    if exp.get("data"):
        raise ValueError("experiment.data: experiment=ope_shift needs a simulated world (its truth at two times)")
    _check(exp)
    tracker = tracker or Tracker(mode="disabled")
    world = one_item_world(resolved, "ope_shift")
    t_before, t_after = times(world, exp)
    estimators = make_estimators(exp)
    start = time.perf_counter()
    runs = [one_seed(world, exp, estimators, seed + r, t_before, t_after) for r in range(exp["seeds"])]
    rows = aggregate(runs)
    ess = [r["weights"]["ess_ratio"] for r in runs]
    summary = {"experiment": "ope_shift", "scm": world.name, "seed": seed, "seeds": exp["seeds"],
               "n_rounds": exp["n_rounds"], "t_before": t_before, "t_after": t_after,
               "change_points": [p for p in world.change_points(t_after + 1) if t_before < p <= t_after],
               "logger": exp["logger"], "density_ratio": exp["density_ratio"], "interval": exp["ci"]["method"],
               "rows": rows, "weights": [r["weights"] for r in runs], "runs": runs,
               "wall_s": time.perf_counter() - start}
    write_result(Path(out_dir) / "ope_shift.json", "ope_shift", summary)
    table = [[r[c] for c in COLUMNS] for r in rows]
    tracker.table("ope_shift", COLUMNS, table)
    tracker.summary({"n_rounds": exp["n_rounds"], "t_before": t_before, "t_after": t_after,
                     "weight_ess_ratio": float(np.mean(ess)), "wall_s": summary["wall_s"]})
    notes = [f"log at t = {t_before:,}, evaluated for t = {t_after:,} ({world.name}, {exp['seeds']} seeds); "
             f"context weights: ESS {100 * float(np.mean(ess)):.1f}% of the logged rounds, "
             f"max weight {max(r['weights']['max_weight'] for r in runs):.1f}"]
    summary["table"] = format_table(COLUMNS, table, notes)
    return summary
