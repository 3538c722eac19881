"""Off-policy selection (``experiment=ops``): rank candidate policies by each estimator, score
the ranking against the exact truth.

One straight path: train the logger and every candidate (agents x hyperparameters, each on its
own users), log ``n_rounds`` with the logger, estimate every candidate's value with every
estimator (one cross-fitted reward model serves all), and compare each estimator's ranking with
the candidates' exact values V(pi) = E_x sum_a pi(a|x) E[r | x, do(a)] on the logged users
(:mod:`recsim_causal.ope.selection`: Spearman, Kendall, regret@k, nDCG@k, SharpeRatio@k with
the logger's exact value as the risk-free return). Writes ops.json and ops.png.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from recsim_causal.build import agent_config
from recsim_causal.config import as_resolved
from recsim_causal.experiment.ope import make_estimators, make_world
from recsim_causal.experiment.tracking import Tracker
from recsim_causal.ope import evaluate, policy_value, simulate_log
from recsim_causal.plots import save_figure
from recsim_causal.results import format_table, write_result

COLUMNS = ["estimator", "selected", "spearman", "kendall", "regret@1", "ndcg@3", "sharpe@3"]


def candidate_configs(candidates: Any) -> dict[str, dict]:
    """``experiment.candidates`` -> {name: agent config}: the agent's conf/agent/ defaults (or
    its mapping) with the candidate's hyperparameters over them."""
    if not isinstance(candidates, dict) or len(candidates) < 2:
        raise ValueError(f"experiment.candidates: expected a mapping of at least 2 named candidates, got {candidates!r}")
    out = {}
    for name, spec in candidates.items():
        if not isinstance(spec, dict) or "agent" not in spec:
            raise ValueError(f"experiment.candidates.{name}: expected a mapping with 'agent' (and hyperparameters), "
                             f"got {spec!r}")
        base = agent_config(spec["agent"], where=f"experiment.candidates.{name}.agent")
        out[name] = {**base, **{k: v for k, v in spec.items() if k != "agent"}}
    return out


def _check_ops(exp: dict) -> None:
    for key in ("n_rounds", "train_rounds"):
        v = exp.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"experiment.{key}: expected an integer > 0, got {v!r}")
    ks = exp.get("ks")
    if not isinstance(ks, list) or not ks or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in ks):
        raise ValueError(f"experiment.ks: expected a non-empty list of integers >= 1, got {ks!r}")
    if exp.get("data"):
        raise ValueError("experiment.data: off-policy selection needs a simulated world (its truth), not external data")


def run_ops(cfg: Any, out_dir: str | Path, tracker: Tracker | None = None, *, resolved: dict | None = None) -> dict:
    """Run the selection experiment; write ops.json and ops.png into ``out_dir``; return the summary."""
    resolved = as_resolved(cfg, resolved)
    exp, seed = resolved["experiment"], int(resolved.get("seed", 0))
    _check_ops(exp)
    tracker = tracker or Tracker(mode="disabled")
    configs = candidate_configs(exp["candidates"])
    estimators = make_estimators(exp)
    start = time.perf_counter()
    log = simulate_log(make_world(resolved), exp["logger"]["agent"], exp["n_rounds"],
                       epsilon=exp["logger"].get("epsilon", 0.0), seed=seed, train_rounds=exp["train_rounds"])
    result = evaluate(log, configs, list(estimators.values()), ci="normal", reward_model=exp["reward_model"],
                      reward_features=exp.get("reward_features", "cross"), n_folds=exp["n_folds"], seed=seed)
    baseline = policy_value(log.feedback.action_dist, log.feedback.expected_reward)
    selection = result.selection(ks=exp["ks"], baseline=baseline)
    truth = {t: block["truth"] for t, block in result.targets.items()}
    best = max(truth, key=truth.get)
    summary = {"experiment": "ops", "scm": log.world.name, "seed": seed, "n_rounds": exp["n_rounds"],
               "logger": exp["logger"], "logger_value": baseline, "reward_model": exp["reward_model"],
               "reward_features": exp.get("reward_features"), "ks": exp["ks"], "truth": truth, "best": best,
               "candidates": configs, "estimators": selection, "wall_s": time.perf_counter() - start}
    out_dir = Path(out_dir)
    rows = table_rows(summary)
    ops_plot(summary, out_dir / "ops.png")
    write_result(out_dir / "ops.json", "ops", summary)
    tracker.table("ops", COLUMNS, rows)
    tracker.image("ops", out_dir / "ops.png")
    tracker.summary({"n_candidates": len(truth), "n_rounds": exp["n_rounds"], "wall_s": summary["wall_s"]})
    notes = [f"{len(truth)} candidates; best {best} (V = {truth[best]:.4f}); logger V = {baseline:.4f}"]
    summary["table"] = format_table(COLUMNS, rows, notes)
    return summary


def table_rows(summary: dict) -> list[list]:
    """One row per estimator (:data:`COLUMNS`; metrics a run's ks do not include are None)."""
    return [[e, r["selected"], *(r["metrics"].get(c) for c in COLUMNS[2:])] for e, r in summary["estimators"].items()]


def ops_plot(summary: dict, path: Path) -> Path:
    """Left: each estimator's estimate against the exact value of every candidate. Right:
    regret@k of each estimator for k = 1 .. number of candidates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from recsim_causal.ope.selection import regret_at_k

    truth = summary["truth"]
    names = list(truth)
    tv = np.array([truth[n] for n in names])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    ks = np.arange(1, len(names) + 1)
    for e, res in summary["estimators"].items():
        ev = np.array([res["estimates"][n] for n in names])
        ax1.plot(tv, ev, "o", ms=4, label=e)
        ax2.plot(ks, [regret_at_k(ev, tv, int(k)) for k in ks], "-o", ms=3, label=e)
    lo, hi = float(tv.min()), float(tv.max())
    ax1.plot([lo, hi], [lo, hi], "k-", lw=1)
    ax1.set_xlabel("exact V(pi) of the candidate")
    ax1.set_ylabel("estimate")
    ax1.set_title(f"{len(names)} candidates", fontsize=9)
    ax2.set_xlabel("k (candidates deployed from the top of the estimator's ranking)")
    ax2.set_ylabel("regret@k = V(pi*) - best V in the top k")
    ax2.legend(fontsize=7, ncol=2)
    fig.suptitle(f"off-policy selection over {summary['n_rounds']:,} logged rounds ({summary['scm']})", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
