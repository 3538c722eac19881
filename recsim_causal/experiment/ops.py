"""Off-policy selection (``experiment=ops``): rank candidate policies by each estimator, score
the ranking against the exact truth, for one item, slates or sessions (``env=bandit``,
``env=slate``, ``env=session``).

One straight path: train the logger and every candidate (agents x hyperparameters, each on its
own users), log ``n_rounds`` users (slates, sessions) with the logger, estimate every
candidate's value with every estimator of the setting (:func:`~recsim_causal.ope.evaluate`;
one item: one cross-fitted reward model serves all), and compare each estimator's ranking with
the candidates' truth (:meth:`~recsim_causal.ope.OPEResult.selection`: Spearman, Kendall,
regret@k, nDCG@k, SharpeRatio@k). The truth: one item, V(pi) = E_x sum_a pi(a|x) E[r | x, do(a)]
on the logged users; slates, the SCM's exact expected slot rewards; sessions, on-policy rollouts
(``experiment.session.truth_trajectories``). SharpeRatio@k's risk-free return is the logger's
value: exact for one item; for slates and sessions the logged mean return (SCOPE-RL's
``behavior_policy_value``). Writes ops.json and ops.png.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from recsim_causal.build import (agent_config, make_estimators, one_item_world, session_dynamics, session_world,
                                  world_from_config)
from recsim_causal.config import as_resolved
from recsim_causal.experiment.registry import setting_of
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


def logged_value(feedback: Any, gamma: float = 1.0) -> float:
    """The logger's on-policy value from its own log: the mean over logged units (slates,
    sessions) of their (discounted) summed reward; one item: the mean reward. SCOPE-RL's
    ``behavior_policy_value`` (without its 1e-10)."""
    r = np.asarray(feedback.reward, np.float64)
    if feedback.trajectory_id is not None:
        unit, disc = feedback.trajectory_id, gamma ** np.asarray(feedback.step, np.float64)
    elif feedback.slate_id is not None:
        unit, disc = feedback.slate_id, 1.0
    else:
        return float(r.mean())
    _, idx = np.unique(unit, return_inverse=True)
    return float(np.bincount(idx, weights=r * disc).mean())


def _one_item(resolved: dict, exp: dict, configs: dict, seed: int) -> tuple[Any, Any, float]:
    estimators = make_estimators(exp)
    log = simulate_log(one_item_world(resolved, "ops"), exp["logger"]["agent"], exp["n_rounds"],
                       epsilon=exp["logger"].get("epsilon", 0.0), seed=seed, train_rounds=exp["train_rounds"])
    result = evaluate(log, configs, list(estimators.values()), ci="normal", reward_model=exp["reward_model"],
                      reward_features=exp.get("reward_features", "cross"), n_folds=exp["n_folds"], seed=seed)
    return log, result, policy_value(log.feedback.action_dist, log.feedback.expected_reward)


def _slate(resolved: dict, exp: dict, configs: dict, seed: int) -> tuple[Any, Any, float]:
    slate = exp.get("slate") or {}
    world = world_from_config(resolved)
    log = simulate_log(world, exp["logger"]["agent"], exp["n_rounds"], epsilon=exp["logger"].get("epsilon", 0.0),
                       slate_size=resolved["env"]["slate_size"], seed=seed, train_rounds=exp["train_rounds"],
                       slate_policy=slate.get("logger_slate", "plackett_luce"),
                       truth_slates=slate.get("truth_slates", 32))
    # every candidate's distribution becomes a slate the same way, with uniform exploration mixed in
    # (Plackett-Luce needs slate_size items of positive probability; greedy agents have one)
    specs = {name: {"agent": cfg, "slate": slate.get("target_slate", "plackett_luce"),
                    "epsilon": slate.get("target_epsilon", 0.05)} for name, cfg in configs.items()}
    result = evaluate(log, specs, slate.get("estimators"), ci="normal", reward_model=exp["reward_model"],
                      reward_features=exp.get("reward_features", "cross"), n_folds=exp["n_folds"], seed=seed)
    return log, result, logged_value(log.feedback)


def _session(resolved: dict, exp: dict, configs: dict, seed: int) -> tuple[Any, Any, float]:
    sess = exp.get("session") or {}
    gamma = float(sess.get("gamma", 1.0))
    log = simulate_log(session_world(resolved), exp["logger"]["agent"], exp["n_rounds"], env="session",
                       epsilon=float(exp["logger"].get("epsilon", 0.0)), seed=seed, train_rounds=exp["train_rounds"],
                       gamma=gamma, env_kwargs=session_dynamics(resolved),
                       truth_trajectories=sess.get("truth_trajectories", 20_000))
    # the ranking needs no interval: normal intervals, no refit bootstrap of the marginal weights
    result = evaluate(log, configs, sess.get("estimators"), ci="normal", seed=seed, gamma=gamma,
                      fqe=sess.get("fqe") or {}, weight_ridge=sess.get("weight_ridge", 1.0), weight_refits=0)
    return log, result, logged_value(log.feedback, gamma)


#: setting -> (resolved, exp, candidate configs, seed) -> (log, OPEResult, the logger's value)
SETTING_PATHS = {"one_item": _one_item, "slate": _slate, "session": _session}


def run_ops(cfg: Any, out_dir: str | Path, tracker: Tracker | None = None, *, resolved: dict | None = None) -> dict:
    """Run the selection experiment; write ops.json and ops.png into ``out_dir``; return the summary."""
    resolved = as_resolved(cfg, resolved)
    exp, seed = resolved["experiment"], int(resolved.get("seed", 0))
    _check_ops(exp)
    tracker = tracker or Tracker(mode="disabled")
    configs = candidate_configs(exp["candidates"])
    setting = setting_of(resolved)
    start = time.perf_counter()
    log, result, baseline = SETTING_PATHS[setting](resolved, exp, configs, seed)
    selection = result.selection(ks=exp["ks"], baseline=baseline)
    truth = {t: block["truth"] for t, block in result.targets.items()}
    best = max(truth, key=truth.get)
    summary = {"experiment": "ops", "setting": setting, "scm": log.world.name, "seed": seed,
               "n_rounds": exp["n_rounds"], "logger": exp["logger"], "logger_value": baseline,
               "logger_value_source": "exact" if setting == "one_item" else "logged mean return",
               "reward_model": exp["reward_model"] if setting != "session" else "fitted-Q evaluation",
               "reward_features": exp.get("reward_features"), "ks": exp["ks"], "truth": truth, "best": best,
               "candidates": configs, "estimators": selection, "wall_s": time.perf_counter() - start}
    if setting == "session":
        summary["truth_se"] = {t: block.get("truth_se") for t, block in result.targets.items()}
    out_dir = Path(out_dir)
    rows = table_rows(summary)
    ops_plot(summary, out_dir / "ops.png")
    write_result(out_dir / "ops.json", "ops", summary)
    tracker.table("ops", COLUMNS, rows)
    tracker.image("ops", out_dir / "ops.png")
    tracker.summary({"n_candidates": len(truth), "n_rounds": exp["n_rounds"], "wall_s": summary["wall_s"]})
    notes = [f"{len(truth)} candidates; best {best} (V = {truth[best]:.4f}); logger V = {baseline:.4f} "
             f"({summary['logger_value_source']})"]
    notes += [f"{e}: {r['reason']}" for e, r in selection.items() if r.get("reason")]
    summary["table"] = format_table(COLUMNS, rows, notes)
    return summary


def table_rows(summary: dict) -> list[list]:
    """One row per estimator (:data:`COLUMNS`; metrics a run's ks do not include are None)."""
    return [[e, r["selected"], *((r["metrics"] or {}).get(c) for c in COLUMNS[2:])]
            for e, r in summary["estimators"].items()]


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
        if res["ranking"] is None:  # no estimate for some candidate (its reason in ops.json)
            continue
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
    unit = {"slate": "slates", "session": "sessions"}.get(summary.get("setting"), "rounds")
    fig.suptitle(f"off-policy selection over {summary['n_rounds']:,} logged {unit} ({summary['scm']})", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
