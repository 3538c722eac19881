"""The OPE experiment: how far is each estimator from the exact value of each target policy?

1. Train a logging policy and the target policies online, each on its own users.
2. Log ``n_rounds`` with the logger (mixed with ``epsilon`` uniform exploration), keeping the
   logger's full distribution and each round's pscore.
3. Estimate every target's value with every estimator (cross-fitted reward model for DM/DR
   and friends; item-topic clusters as MIPS's action embedding) with confidence intervals.
4. Compare with the truth V(pi) = E_x sum_a pi(a|x) E[r | x, do(a)], exact from the SCM, on the
   logged users (their latent variables included) and on a fresh sample of users.

Confounded worlds (``world.privileged`` non-empty, e.g. ``scm=confounded``): the logger acts on
the logged context *plus* the privileged signal, which the log does not keep; the logged
pscore is the propensity given the logged context, P(a | x) = E_s[pi_log(a | x, s)] (Monte
Carlo over the signal's marginal: signals of other users of the batch, valid when the signal
is independent of the logged context, as in the preset). That is the best pscore the log
allows, and the estimators are biased by what it leaves out; the report says so.

External data (``experiment.data``: a Parquet log or an Open Bandit Dataset folder): targets
are trained on the first half of the log and evaluated on the second, without truth. Targets
recommend one item, so a log with several positions (OBD's three) is pooled: each logged
impression, with its own pscore, is one decision of the target.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from recsim_causal.agents import validate_policy_output
from recsim_causal.data import LoggedFeedback, load_obd
from recsim_causal.experiment.online import make_agent
from recsim_causal.experiment.plots import errorbar_plot
from recsim_causal.experiment.tracking import Tracker
from recsim_causal.io import write_json
from recsim_causal.ope import (
    estimate_all,
    estimate_all_intervals,
    fit_predict,
    ope_table,
    p_e_a_from_clusters,
    policy_value,
)
from recsim_causal.scm import World
from recsim_causal.scm.world import CONF_DIR

BATCH = 2048
SIGNAL_DRAWS = 32


def agent_config(spec: Any) -> dict:
    """An agent config: a name from conf/agent/ (``linucb``) or a mapping with ``_target_``."""
    if isinstance(spec, str):
        path = CONF_DIR / "agent" / f"{spec}.yaml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in (CONF_DIR / "agent").glob("*.yaml")))
            raise ValueError(f"experiment: unknown agent '{spec}' (known: {known})")
        return OmegaConf.to_container(OmegaConf.load(path))
    return dict(spec)


def _context(world: World, users, privileged: bool) -> np.ndarray:
    return world.observe(users, privileged=privileged).astype(np.float64)


def train(world: World, agent, n_rounds: int, rng: np.random.Generator, *, privileged: bool = False) -> None:
    """Online training on ``n_rounds`` fresh users (act, respond, update in batches)."""
    for start in range(0, n_rounds, BATCH):
        users = world.sample_users(min(BATCH, n_rounds - start), rng)
        x = _context(world, users, privileged)
        actions, _ = agent.act(x, rng)
        agent.update(x, actions, world.respond(users, actions).reward)


def marginal_probs(agent, x: np.ndarray, n_signal: int, rng: np.random.Generator) -> np.ndarray:
    """E_s[pi(. | x, s)] for contexts x_full = [x, s] whose last ``n_signal`` columns are a
    signal independent of x: averaged over signals of other rows of the batch."""
    if n_signal == 0:
        return agent.action_probs(x)
    base, signal = x[:, :-n_signal], x[:, -n_signal:]
    total = np.zeros((len(x), agent.n_actions))
    for _ in range(SIGNAL_DRAWS):
        total += agent.action_probs(np.concatenate([base, signal[rng.permutation(len(x))]], axis=1))
    return total / SIGNAL_DRAWS


def collect(world: World, logger, n_rounds: int, epsilon: float, rng: np.random.Generator) -> tuple[LoggedFeedback, list]:
    """Log ``n_rounds`` with the logger mixed with epsilon-uniform exploration. Returns the
    feedback (context = the logged, non-privileged context) and the users of each batch."""
    n_signal = sum(world.mech[n].dim for n in world.privileged)
    K = world.n_items
    parts: dict[str, list] = {k: [] for k in ("context", "action", "reward", "pscore", "action_dist", "expected_reward")}
    batches = []
    for start in range(0, n_rounds, BATCH):
        users = world.sample_users(min(BATCH, n_rounds - start), rng)
        x_full = _context(world, users, privileged=n_signal > 0)
        behaviour = (1 - epsilon) * logger.action_probs(x_full) + epsilon / K        # what the logger does
        recorded = (1 - epsilon) * marginal_probs(logger, x_full, n_signal, rng) + epsilon / K  # P(a | x)
        validate_policy_output(logger, len(x_full), probs=behaviour)
        u = rng.random((len(x_full), 1))
        actions = np.minimum((behaviour.cumsum(axis=1) < u).sum(axis=1), K - 1)
        parts["context"].append(x_full[:, : x_full.shape[1] - n_signal])
        parts["action"].append(actions)
        parts["reward"].append(world.respond(users, actions).reward.astype(np.float64))
        parts["pscore"].append(recorded[np.arange(len(actions)), actions])
        parts["action_dist"].append(recorded)
        parts["expected_reward"].append(world.expected_reward(users).astype(np.float64))
        batches.append(users)
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    return LoggedFeedback(n_actions=K, **arrays), batches


def fresh_truth(world: World, target, n_users: int, rng: np.random.Generator) -> float:
    """V(pi) on ``n_users`` fresh users, exact given the users (no reward sampling)."""
    total = 0.0
    for start in range(0, n_users, BATCH):
        users = world.sample_users(min(BATCH, n_users - start), rng)
        total += float((target.action_probs(_context(world, users, False)) * world.expected_reward(users)).sum())
    return total / n_users


def make_estimators(cfg: dict) -> dict:
    from hydra.utils import instantiate

    use = cfg.get("use") or list(cfg["estimators"])
    unknown = [u for u in use if u not in cfg["estimators"]]
    if unknown:
        raise ValueError(f"experiment.use: unknown estimator '{unknown[0]}' (known: {', '.join(cfg['estimators'])})")
    return {name: instantiate(cfg["estimators"][name], estimator_name=name) for name in use}


def _check(exp: dict) -> None:
    for key in ("n_rounds", "train_rounds", "truth_users"):
        v = exp.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"experiment.{key}: expected an integer > 0, got {v!r}")
    eps = exp["logger"].get("epsilon", 0.0)
    if not isinstance(eps, (int, float)) or not 0 <= eps <= 1:
        raise ValueError(f"experiment.logger.epsilon: expected a number in [0, 1], got {eps!r}")
    if not exp.get("targets"):
        raise ValueError("experiment.targets: expected a non-empty list of agents")


def run_ope(cfg: Any, out_dir: str | Path, tracker: Tracker | None = None, *, resolved: dict | None = None) -> dict:
    """Run the OPE experiment; write ope.json and ope.png into ``out_dir``; return the summary."""
    resolved = resolved or OmegaConf.to_container(cfg, resolve=True)
    exp, env_cfg, seed = resolved["experiment"], resolved["env"], int(resolved.get("seed", 0))
    if env_cfg["id"] == "RecSimCausal/Session-v0" or (not exp.get("data") and env_cfg.get("slate_size", 1) > 1):
        from recsim_causal.experiment.ope_paths import run_setting  # slates and sessions: their own paths

        return run_setting(resolved, out_dir, tracker or Tracker(mode="disabled"))
    _check(exp)
    tracker = tracker or Tracker(mode="disabled")
    estimators = make_estimators(exp)
    start = time.perf_counter()
    rng = np.random.default_rng([seed, 2])

    if exp.get("data"):
        world = None
        feedback = _load_external(exp["data"])
        n_train = len(feedback.reward) // 2
        train_log, feedback = feedback.subset(slice(0, n_train)), feedback.subset(slice(n_train, None))
    else:
        if env_cfg["id"] != "RecSimCausal/Bandit-v0" or env_cfg.get("slate_size", 1) != 1:
            raise ValueError(f"env: experiment=ope evaluates one-item bandit policies (Bandit-v0, slate_size=1), "
                             f"got {env_cfg['id']} with slate_size={env_cfg.get('slate_size', 1)}")
        world = World(resolved["scm"], n_items=env_cfg["n_items"], seed=env_cfg.get("world_seed", 0), dtype="float64")
        dim_full = world.obs_dim + sum(world.mech[n].dim for n in world.privileged)
        logger = make_agent(agent_config(exp["logger"]["agent"]), n_actions=world.n_items, dim=dim_full, seed=seed)
        train(world, logger, exp["train_rounds"], np.random.default_rng([seed, 3]), privileged=bool(world.privileged))
        feedback, _ = collect(world, logger, exp["n_rounds"], exp["logger"].get("epsilon", 0.0), rng)
        train_log = None

    K, dim = feedback.n_actions, feedback.context.shape[1]
    if exp["reward_model"] == "bert":  # the text-aware click model (recsim_causal.ctr), cross-fitted
        from recsim_causal.experiment.ctr import ope_q_hat

        q_hat = ope_q_hat(world, feedback, exp, seed)
    else:
        q_hat = fit_predict(feedback.context, feedback.action, feedback.reward, K, base_model=exp["reward_model"],
                            features=exp.get("reward_features", "interaction"), n_folds=exp["n_folds"],
                            random_state=seed)
    arrays = dict(reward=feedback.reward, action=feedback.action, pscore=feedback.pscore,
                  estimated_rewards_by_reg_model=q_hat)
    if feedback.action_dist is not None:  # the logger's distribution: support violations get flagged
        arrays["pi_b"] = feedback.action_dist
    if world is not None and "mipw" in estimators:
        arrays.update(action_embed=world.catalog.topic[feedback.action][:, None],
                      p_e_a=p_e_a_from_clusters(world.catalog.topic, len(np.unique(world.catalog.topic))))
    elif "mipw" in estimators:
        estimators.pop("mipw")  # external data carries no item clusters

    results: dict[str, Any] = {}
    rows_for_table = []
    for t_i, spec in enumerate(exp["targets"]):
        t_cfg = agent_config(spec)
        target = make_agent(t_cfg, n_actions=K, dim=dim, seed=seed + 1 + t_i)
        name = spec if isinstance(spec, str) else t_cfg["_target_"].rsplit(".", 1)[-1]
        if world is not None:
            train(world, target, exp["train_rounds"], np.random.default_rng([seed, 10 + t_i]))
        else:
            target.update(train_log.context, train_log.action, train_log.reward)
        action_dist = target.action_probs(feedback.context)
        validate_policy_output(target, len(action_dist), probs=action_dist)
        ests = list(estimators.values())
        estimates = estimate_all(ests, action_dist=action_dist, **arrays)
        intervals = estimate_all_intervals(ests, action_dist=action_dist,
                                           n_bootstrap_samples=exp["ci"]["n_bootstrap_samples"],
                                           alpha=exp["ci"]["alpha"], method=exp["ci"]["method"],
                                           random_state=seed, **arrays)
        if world is not None:
            truth = policy_value(action_dist, feedback.expected_reward)
            truth_fresh = fresh_truth(world, target, exp["truth_users"], np.random.default_rng([seed, 4]))
            table = ope_table(estimates, truth, intervals=intervals)
        else:
            truth = truth_fresh = None
            table = {k: {"estimate": v, **dict(zip(("ci_low", "ci_high"), _bounds(intervals[k])))}
                     for k, v in estimates.items()}
        results[name] = {"truth": truth, "truth_fresh_users": truth_fresh, "estimators": table}
        for est, r in table.items():
            rows_for_table.append([name, est, r["estimate"], r.get("ci_low"), r.get("ci_high"), truth,
                                   r.get("error"), r.get("relative_error"), r.get("covers")])

    confounded = bool(world is not None and world.is_confounded)
    summary = {
        "experiment": "ope",
        "scm": world.name if world is not None else None,
        "data": exp.get("data"),
        "seed": seed,
        "n_rounds": int(len(feedback.reward)),
        "logger": exp["logger"] if world is not None else "external",
        "confounded": confounded,
        "warning": _warning(world) if confounded else ("no truth: external data" if world is None else None),
        "reward_model": exp["reward_model"],
        "targets": results,
        "wall_s": time.perf_counter() - start,
    }
    out_dir = Path(out_dir)
    columns = ["target", "estimator", "estimate", "ci_low", "ci_high", "truth", "error", "relative_error", "covers"]
    _plot(rows_for_table, out_dir / "ope.png", summary)
    write_json(out_dir / "ope.json", summary)
    tracker.table("ope", columns, rows_for_table)
    tracker.image("ope", out_dir / "ope.png")
    tracker.summary({"confounded": confounded, "n_rounds": summary["n_rounds"], "wall_s": summary["wall_s"]})
    summary["table"] = format_table(columns, rows_for_table, summary["warning"])
    return summary


def _bounds(interval: dict) -> tuple[float, float]:
    lo = next(v for k, v in interval.items() if k.endswith("(lower)"))
    hi = next(v for k, v in interval.items() if k.endswith("(upper)"))
    return lo, hi


def _warning(world: World) -> str:
    return (f"confounded world: the logger used {', '.join(world.privileged)}, which the log does not keep, "
            f"and the latent {', '.join(world.confounders)} behind it drives the reward; the logged pscores are "
            "P(a | logged context), and estimates may miss the truth by more than their CIs")


def _load_external(path: str) -> LoggedFeedback:
    p = Path(path)
    if p.is_dir():
        return load_obd(p)
    if p.suffix == ".parquet" and p.is_file():
        return LoggedFeedback.from_parquet(p)
    raise ValueError(f"experiment.data: expected a .parquet log or an Open Bandit Dataset folder, got '{path}'")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def format_table(columns: list[str], rows: list[list], warning: str | None) -> str:
    cells = [columns] + [[_fmt(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    if warning:
        lines.append(f"WARNING: {warning}")
    return "\n".join(lines)


def _plot(rows: list[list], path: Path, summary: dict) -> None:
    labels = [f"{r[0]} / {r[1]}" for r in rows]
    lows = [r[3] if r[3] is not None else r[2] for r in rows]
    highs = [r[4] if r[4] is not None else r[2] for r in rows]
    truth = [r[5] for r in rows] if all(r[5] is not None for r in rows) else None
    title = "OPE estimates (95% CI) vs the SCM's truth" + (" — CONFOUNDED world" if summary["confounded"] else "")
    errorbar_plot(labels, [r[2] for r in rows], lows, highs, path, xlabel="policy value", title=title, truth=truth)
