"""``experiment=offline``: learn policies from a log and judge them by the exact truth.

One item per user (``env=bandit``), :func:`run_offline`:

1. log     the logger (``experiment.logger``, trained online first) logs ``n_rounds`` rounds with
           ``epsilon`` uniform exploration (:func:`recsim_causal.ope.simulate_log`).
2. learn   every learner of ``experiment.learners`` (``recsim_causal.learn.fit`` arguments) on
           the first ``train_fraction`` of the log.
3. judge   each learned policy: exact V(pi) on ``truth_users`` fresh users (with s.e.), every
           estimator on the held-out part (interval, validity) and on the training part (the
           winner's curse); the pick by ``select_by``'s held-out estimate, its regret
           (:func:`recsim_causal.learn.judge`).
4. compare beside the logger's, the best online agent's (``experiment.online``, trained online
           as long as the logger) and the oracle's true value.
5. report  the table, offline.json (an ``offline`` result record), offline.png, the W&B run.

Sessions (``env=session``), :func:`run_offline_session`, the same five steps: the logger (a
contextual bandit on the session state, trained online) logs ``session.n_trajectories``
sessions; each ``session.learners`` entry (``recsim_causal.learn.fit_sessions`` arguments: CQL,
IQL, DQN) learns on the first ``train_fraction`` of the sessions; its true per-session return is
the mean of ``session.truth_trajectories`` on-policy sessions (the same seeded users for every
policy); the sequential estimators estimate it on the held-out and the training sessions. The
reported oracle is the *myopic* one, labelled so in the table and in offline.json
(``oracle.kind``, ``oracle.why``): the best immediate item at every step. The true session
optimum is not computable: the user's state (an interest vector, a fatigue per topic, a
satisfaction level) is continuous and the leaving probability depends on it, so there is no
finite state space on which dynamic programming gives the Bellman optimum. A session policy
may beat the myopic oracle.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import math

import numpy as np

from recsim_causal.agents import greedy_probs
from recsim_causal.build import agent_config, make_agent, world_from_config
from recsim_causal.data import LoggedFeedback
from recsim_causal.experiment.tracking import Tracker
from recsim_causal.build import session_env
from recsim_causal.ope.session_log import ESTIMATORS, estimate_sessions, run_sessions, train_on_sessions
from recsim_causal.learn import Behaviour, fit_sessions, judge
from recsim_causal.ope.intervals import ci_keys
from recsim_causal.ope.simulate import oracle_value, simulate_log, train_targets
from recsim_causal.plots import errorbar_plot
from recsim_causal.results import format_table, write_result


def run_offline(cfg: dict, out_dir: str | Path, tracker: Tracker | None = None) -> dict:
    """Run the offline-learning experiment on a resolved config; write offline.json and offline.png."""
    exp, seed = cfg["experiment"], int(cfg.get("seed", 0))
    tracker = tracker or Tracker(mode="disabled")
    start = time.perf_counter()
    world = world_from_config(cfg, slate_size=1)
    log = simulate_log(world, exp["logger"]["agent"], int(exp["n_rounds"]), epsilon=float(exp["logger"]["epsilon"]),
                       seed=seed, train_rounds=int(exp["train_rounds"]))  # fmt: skip
    result = judge(log, exp["learners"], estimators=exp["estimators"], select_by=exp["select_by"],
                   train_fraction=exp["train_fraction"], truth_users=int(exp["truth_users"]), ci=exp["ci"]["method"],
                   n_bootstrap_samples=int(exp["ci"]["n_bootstrap_samples"]), reward_model=exp["reward_model"],
                   seed=seed)  # fmt: skip
    users = int(exp["truth_users"])
    online = train_targets(exp["online"], world, seed=seed, train_rounds=int(exp["train_rounds"]),
                           where="experiment.online")  # fmt: skip
    online_values = {}
    for name, policy in online.items():
        value, se = log.population_truth(policy, users)
        online_values[name] = {"true_value": value, "true_value_se": se}
    best_online = max(online_values, key=lambda k: online_values[k]["true_value"])
    oracle, oracle_se = oracle_value(world, users, seed=seed)
    body = result.to_dict()
    summary = {
        "experiment": "offline", "setting": "one_item", "seed": seed, "scm": world.name, "n_rounds": log.n_rounds,
        "logger": {"agent": exp["logger"]["agent"], **body.pop("logger")},
        "online": online_values, "online_best": {"agent": best_online, **online_values[best_online]},
        "oracle": {"true_value": oracle, "true_value_se": oracle_se}, **body,
        "wall_s": time.perf_counter() - start,
    }  # fmt: skip
    out_dir = Path(out_dir)
    write_result(out_dir / "offline.json", "offline", summary)
    _plot(summary, out_dir / "offline.png")
    tracker.table("offline", result.TABLE_COLUMNS, result.table_rows())
    tracker.image("offline", out_dir / "offline.png")
    tracker.summary({"logger_true_value": summary["logger"]["true_value"], "oracle_true_value": oracle,
                     "online_best_true_value": summary["online_best"]["true_value"],
                     "pick_true_value": summary["selection"]["pick_true_value"],
                     "regret": summary["selection"]["regret"], "wall_s": summary["wall_s"],
                     **{f"{k}_true_value": v["true_value"] for k, v in summary["learners"].items()}})  # fmt: skip
    ref = [f"online best ({best_online}) true value {summary['online_best']['true_value']:.4f}; "
           f"oracle {oracle:.4f}"]
    summary["table"] = format_table(result.TABLE_COLUMNS, result.table_rows(), result.notes() + ref)
    return summary


def _plot(summary: dict, path: Path) -> Path:
    """Per learner: the held-out and the training-part estimate by ``select_by`` (95% CI) against
    its true value; the logger, the best online agent and the oracle as true values only."""
    by = summary["selection"]["by"]
    labels, means, lows, highs, truth = [], [], [], [], []
    for name, r in summary["learners"].items():
        for part in ("heldout", "train"):
            rec = r[part][by]
            labels.append(f"{name} / {by} on {'held-out' if part == 'heldout' else 'training'} part")
            means.append(rec["estimate"])
            lows.append(rec["ci_low"] if rec["ci_low"] is not None else float("nan"))
            highs.append(rec["ci_high"] if rec["ci_high"] is not None else float("nan"))
            truth.append(r["true_value"])
    for name in ("logger", "online_best", "oracle"):
        v = summary[name]["true_value"]
        labels.append(f"{name} (true value)")
        means.append(v), lows.append(float("nan")), highs.append(float("nan")), truth.append(v)
    return errorbar_plot(labels, means, lows, highs, path, xlabel="policy value",
                         title="Learned policies: OPE estimates vs the exact value", truth=truth)  # fmt: skip


# ------------------------------------------------------------------------------- sessions
MYOPIC_WHY = ("not the session optimum, which is not computable: the user state (interest vector, fatigue per topic, "
              "satisfaction) is continuous, so no dynamic programme over a finite state space gives the Bellman "
              "optimum; a session policy may beat the myopic oracle")
SESSION_COLUMNS = ["learner", "true_return", "se", "estimator", "heldout", "ci_low", "ci_high", "train", "train-truth"]


def run_offline_session(cfg: dict, out_dir: str | Path, tracker: Tracker | None = None) -> dict:
    """Offline RL on logged sessions, judged by rollouts (module doc); offline.json, offline.png."""
    exp, seed = cfg["experiment"], int(cfg.get("seed", 0))
    sess, tracker = exp["session"], tracker or Tracker(mode="disabled")
    start = time.perf_counter()
    gamma = float(sess["gamma"])
    env = session_env(cfg, 2048)
    K, dim = env.world.n_items, env.single_observation_space.shape[0]
    logger = make_agent(agent_config(exp["logger"]["agent"], where="experiment.logger.agent"), n_actions=K, dim=dim,
                        seed=seed, where="experiment.logger.agent")  # fmt: skip
    train_on_sessions(env, logger, int(exp["train_rounds"]), [seed, 3])
    behaviour = Behaviour(logger, float(exp["logger"]["epsilon"]))
    _, steps = run_sessions(env, behaviour.action_probs, int(sess["n_trajectories"]), [seed, 2], record=True)
    log = LoggedFeedback(n_actions=K, **steps, metadata={"logger": exp["logger"], "seed": seed})
    ids = np.unique(log.trajectory_id)
    n_train = int(round(float(exp["train_fraction"]) * len(ids)))
    if not 0 < n_train < len(ids):
        raise ValueError(f"experiment.train_fraction: {exp['train_fraction']} of {len(ids)} sessions leaves an empty part")
    in_train = np.isin(log.trajectory_id, ids[:n_train])
    parts = {"train": log.subset(in_train), "heldout": log.subset(~in_train)}

    def truth(probs) -> dict[str, float]:
        returns, _ = run_sessions(env, probs, int(sess["truth_trajectories"]), [seed, 4], gamma=gamma)
        return {"true_value": float(returns.mean()), "true_value_se": float(returns.std(ddof=1) / math.sqrt(len(returns)))}

    estimators = [ESTIMATORS[n]() for n in sess["estimators"]]
    ci = {"method": exp["ci"]["method"], "alpha": exp["ci"]["alpha"], "n_bootstrap_samples": exp["ci"]["n_bootstrap_samples"]}
    low, high = ci_keys(ci["alpha"])
    learners, rows = {}, []
    for name, kw in sess["learners"].items():
        t0 = time.perf_counter()
        policy = fit_sessions(parts["train"], **{"seed": seed, **kw})
        r = {"params": dict(kw), "fit_s": time.perf_counter() - t0, **truth(policy.action_probs)}
        for part, fb in parts.items():
            est, iv, _ = estimate_sessions(fb, policy.action_probs(fb.context), estimators, gamma=gamma,
                                           fqe=sess["fqe"], ci=ci, seed=seed)  # fmt: skip
            r[f"ope_{part}"] = {k: float(v) for k, v in est.items()}
            r[part] = {k: {"estimate": float(v), "ci_low": iv[k].get(low), "ci_high": iv[k].get(high)}
                       for k, v in est.items()}
        r["winners_curse"] = {k: {"heldout_minus_truth": r["ope_heldout"][k] - r["true_value"],
                                  "train_minus_truth": r["ope_train"][k] - r["true_value"]} for k in r["ope_heldout"]}
        learners[name] = r
        for k in r["ope_heldout"]:
            h = r["heldout"][k]
            rows.append([name, r["true_value"], r["true_value_se"], k, h["estimate"], h["ci_low"], h["ci_high"],
                         r["ope_train"][k], r["ope_train"][k] - r["true_value"]])
    online = {}
    for i, spec in enumerate(sess["online"]):
        agent = make_agent(agent_config(spec, where=f"experiment.session.online[{i}]"), n_actions=K, dim=dim,
                           seed=seed + 1 + i, where=f"experiment.session.online[{i}]")  # fmt: skip
        train_on_sessions(env, agent, int(exp["train_rounds"]), [seed, 10 + i])
        online[spec if isinstance(spec, str) else f"online{i}"] = truth(agent.action_probs)
    best_online = max(online, key=lambda k: online[k]["true_value"])
    by = exp["select_by"] if exp["select_by"] in sess["estimators"] else sess["estimators"][-1]
    best = max(learners, key=lambda k: learners[k]["true_value"])
    pick = max(learners, key=lambda k: learners[k]["ope_heldout"][by])
    selection = {"by": by, "pick": pick, "pick_true_value": learners[pick]["true_value"], "best": best,
                 "best_true_value": learners[best]["true_value"],
                 "regret": learners[best]["true_value"] - learners[pick]["true_value"]}
    summary = {
        "experiment": "offline", "setting": "session", "seed": seed, "gamma": gamma, "scm": env.world.name,
        "n_rounds": len(ids), "n_steps": log.n_rounds, "n_train": n_train, "n_heldout": len(ids) - n_train,
        "logger": {"agent": exp["logger"]["agent"], "epsilon": behaviour.epsilon, **truth(behaviour.action_probs)},
        "online": online, "online_best": {"agent": best_online, **online[best_online]},
        "oracle": {"kind": "myopic", "definition": "the best immediate item at every step", "why": MYOPIC_WHY,
                   **truth(lambda x: greedy_probs(np.asarray(env.core.q, dtype=np.float64)))},
        "learners": learners, "selection": selection, "estimators": list(sess["estimators"]),
        "wall_s": time.perf_counter() - start,
    }  # fmt: skip
    out_dir = Path(out_dir)
    write_result(out_dir / "offline.json", "offline", summary)
    _plot(summary, out_dir / "offline.png")
    tracker.table("offline", SESSION_COLUMNS, rows)
    tracker.image("offline", out_dir / "offline.png")
    tracker.summary({"logger_true_value": summary["logger"]["true_value"], "wall_s": summary["wall_s"],
                     "oracle_true_value": summary["oracle"]["true_value"], "regret": selection["regret"],
                     **{f"{k}_true_value": v["true_value"] for k, v in learners.items()}})  # fmt: skip
    notes = [f"per-session return (gamma {gamma:g}); learned on {n_train:,} sessions, estimated on "
             f"{len(ids) - n_train:,} held-out sessions",
             f"logger {summary['logger']['true_value']:.3f}; online best ({best_online}) "
             f"{summary['online_best']['true_value']:.3f}; myopic oracle (best immediate item; not the session optimum) "
             f"{summary['oracle']['true_value']:.3f}",
             f"pick by held-out {by}: {pick} (true {selection['pick_true_value']:.3f}); truly best: {best} "
             f"(true {selection['best_true_value']:.3f}); regret {selection['regret']:.3f}"]  # fmt: skip
    summary["table"] = format_table(SESSION_COLUMNS, rows, notes)
    return summary
