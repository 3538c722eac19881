"""The OPE experiment: how far is each estimator from the exact value of each target policy?

Simulated data (the default), one straight path (:func:`_simulated`):

1. Train a logging policy and the target policies online, each on its own users.
2. Log ``n_rounds`` with the logger (mixed with ``epsilon`` uniform exploration), keeping the
   logger's full distribution and each round's pscore.
3. Estimate every target's value with every estimator (cross-fitted reward model for DM/DR
   and friends; item-topic clusters as MIPS's action embedding), with intervals by every
   method in ``ci.method``, each marked ``interval_valid`` or not, and the overlap
   diagnostics of the target's importance weights.
4. Compare with the truth V(pi) = E_x sum_a pi(a|x) E[r | x, do(a)], exact from the SCM, on the
   logged users (their latent variables included) and on a fresh sample of users.

Confounded worlds (``world.privileged`` non-empty, e.g. ``scm=confounded``): the logger acts on
the logged context *plus* the privileged signal, which the log does not keep. The logged
pscore is the exact propensity given the logged context, P(a | x) = E_s[pi_b(a | x, s)]
(integrated over the signal's distribution, :mod:`recsim_causal.ope.propensity`), and the
log keeps the logger's own pi_b(a | x, s) as the oracle column ``pscore_full``. The report
then shows three rows per target: the bias with the logged pscore, the bias with the oracle
pscore (zero up to noise), and what remains: the confounding itself, next to the value the
SCM implies for it (:func:`recsim_causal.ope.truth.ips_confounding_bias`).

External data (``experiment.data``: a Parquet log or an Open Bandit Dataset folder), the other
straight path (:func:`_external`): targets are trained on the first half of the log and
evaluated on the second, without truth. Targets recommend one item, so a log with several
positions (OBD's three) is pooled: each logged impression, with its own pscore, is one
decision of the target. Diagnostics and WARNING lines are the same on both paths.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from recsim_causal.agents import validate_policy_output
from recsim_causal.data import LoggedFeedback, load_obd
from recsim_causal.experiment.online import make_agent
from recsim_causal.experiment.ope_report import format_table
from recsim_causal.experiment.plots import errorbar_plot
from recsim_causal.experiment.tracking import Tracker
from recsim_causal.io import write_json
from recsim_causal.ope import MIPS, estimate_all, estimate_all_intervals, fit_predict, ope_table, p_e_a_from_clusters, policy_value
from recsim_causal.ope.diagnostics import diagnostic_warnings, interval_validity, overlap_diagnostics
from recsim_causal.ope.inputs import reduce_dense
from recsim_causal.ope.intervals import METHODS, ci_keys
from recsim_causal.ope.propensity import marginal_action_probs, signal_quantile
from recsim_causal.ope.truth import ips_confounding_bias
from recsim_causal.progress import progress
from recsim_causal.scm import World
from recsim_causal.scm.world import CONF_DIR

BATCH = 2048
TABLE_COLUMNS = ["target", "estimator", "estimate", "ci_low", "ci_high", "valid", "truth", "error", "covers"]


def agent_config(spec: Any) -> dict:
    """An agent config: a name from conf/agent/ (``linucb``) or a mapping with ``_target_``."""
    if isinstance(spec, str):
        path = CONF_DIR / "agent" / f"{spec}.yaml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in (CONF_DIR / "agent").glob("*.yaml")))
            raise ValueError(f"experiment: unknown agent '{spec}' (known: {known})")
        return OmegaConf.to_container(OmegaConf.load(path))
    return dict(spec)


def target_name(spec: Any) -> str:
    return spec if isinstance(spec, str) else agent_config(spec)["_target_"].rsplit(".", 1)[-1]


def _context(world: World, users, privileged: bool) -> np.ndarray:
    return world.observe(users, privileged=privileged).astype(np.float64)


def train(world: World, agent, n_rounds: int, rng: np.random.Generator, *, privileged: bool = False) -> None:
    """Online training on ``n_rounds`` fresh users (act, respond, update in batches)."""
    for start in range(0, n_rounds, BATCH):
        users = world.sample_users(min(BATCH, n_rounds - start), rng)
        x = _context(world, users, privileged)
        actions, _ = agent.act(x, rng)
        agent.update(x, actions, world.respond(users, actions).reward)


@dataclass
class Oracle:
    """What a simulation knows beyond the log: the users of each batch and, in a confounded
    world, the logger's full distribution pi_b(. | x, s) (n, K) and the quadrature's error
    bound on the logged pscores."""

    users: list = field(default_factory=list)
    pi_b_full: np.ndarray | None = None
    pscore_error_bound: float | None = None


def collect(world: World, logger, n_rounds: int, epsilon: float, rng: np.random.Generator, *,
            show_progress: bool = True) -> tuple[LoggedFeedback, Oracle]:
    """Log ``n_rounds`` with the logger mixed with epsilon-uniform exploration.

    Returns the feedback (context = the logged, non-privileged context; pscore = P(a | x),
    exact; in a confounded world ``pscore_full`` = pi_b(a | x, s)) and the :class:`Oracle`.
    """
    confounded = bool(world.privileged)
    quantile = signal_quantile(world)[0] if confounded else None
    K = world.n_items
    parts: dict[str, list] = {k: [] for k in ("context", "action", "reward", "pscore", "action_dist",
                                              "expected_reward", "pscore_full", "pi_b_full")}
    oracle, bound = Oracle(), 0.0
    with progress(n_rounds, "logging", "rounds", enabled=show_progress) as bar:
        for start in range(0, n_rounds, BATCH):
            users = world.sample_users(min(BATCH, n_rounds - start), rng)
            x_full = _context(world, users, privileged=confounded)
            behaviour = (1 - epsilon) * logger.action_probs(x_full) + epsilon / K  # what the logger does
            validate_policy_output(logger, len(x_full), probs=behaviour)
            actions = np.minimum((behaviour.cumsum(axis=1) < rng.random((len(x_full), 1))).sum(axis=1), K - 1)
            rows = np.arange(len(actions))
            x = x_full[:, : world.obs_dim]
            if confounded:
                marginal, err = marginal_action_probs(logger, x, quantile)
                recorded = (1 - epsilon) * marginal + epsilon / K  # P(a | x), integrated over s
                bound = max(bound, (1 - epsilon) * float(err.max(initial=0.0)))
                parts["pscore_full"].append(behaviour[rows, actions])
                parts["pi_b_full"].append(behaviour)
            else:
                recorded = behaviour
            parts["context"].append(x)
            parts["action"].append(actions)
            parts["reward"].append(world.respond(users, actions).reward.astype(np.float64))
            parts["pscore"].append(recorded[rows, actions])
            parts["action_dist"].append(recorded)
            parts["expected_reward"].append(world.expected_reward(users).astype(np.float64))
            oracle.users.append(users)
            bar.update(len(actions))
    arrays = {k: np.concatenate(v) for k, v in parts.items() if v}
    if confounded:
        oracle.pi_b_full, oracle.pscore_error_bound = arrays.pop("pi_b_full"), bound
    return LoggedFeedback(n_actions=K, **arrays), oracle


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


def ci_methods(ci: dict) -> list[str]:
    """``ci.method`` (the one the table shows; one method or a list) then ``ci.more_methods``."""
    for key in ("method", "more_methods"):
        given = ci.get(key) or []
        given = given if isinstance(given, (list, tuple)) else [given]
        bad = [m for m in given if m not in METHODS]
        if bad or (key == "method" and not given):
            raise ValueError(f"experiment.ci.{key}: expected one or a list of {', '.join(METHODS)}, got {ci.get(key)!r}")
    first = ci["method"] if isinstance(ci["method"], (list, tuple)) else [ci["method"]]
    more = ci.get("more_methods") or []
    return list(dict.fromkeys([*first, *(more if isinstance(more, (list, tuple)) else [more])]))


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
    ci_methods(exp["ci"])


def reward_range(world: World) -> tuple[float, float] | None:
    """The a priori range of the reward: sum of weighted {0, 1} responses; None if unbounded."""
    from recsim_causal.scm.mechanisms import Bernoulli

    if not all(isinstance(world.mech[r], Bernoulli) for r in world.reward_weights):
        return None
    w = list(world.reward_weights.values())
    return sum(min(0.0, v) for v in w), sum(max(0.0, v) for v in w)


def max_weight(action_dist: np.ndarray, pi_b: np.ndarray | None) -> float | None:
    """max over logged contexts and all actions of pi_e(a|x) / pi_b(a|x) (None without pi_b)."""
    if pi_b is None:
        return None
    ratio = np.divide(action_dist, pi_b, out=np.zeros_like(action_dist), where=pi_b > 0)
    return float(ratio.max(initial=0.0))


# ------------------------------------------------------------------------------- one target
def evaluate_target(name: str, estimators: dict, arrays: dict, action_dist: np.ndarray, *, ci: dict, seed: int,
                    reward_bounds: tuple[float, float] | None, truth: float | None = None,
                    confounded: bool = False) -> dict:
    """Estimates, intervals by every method (with validity), diagnostics and WARNING lines for
    one target. ``arrays``: OBP's keyword arrays (reward, action, pscore, pi_b, ...)."""
    ests = list(estimators.values())
    estimates = estimate_all(ests, action_dist=action_dist, **arrays)
    n, K = action_dist.shape
    weights = action_dist[np.arange(n), arrays["action"]] / arrays["pscore"]
    diag = overlap_diagnostics(weights, arrays["pscore"], K, action_dist=action_dist, pi_b=arrays.get("pi_b"))
    warnings = diagnostic_warnings(diag, who=name)
    # a priori ranges for the finite-sample methods; without known bounds, the observed ones
    bounds = reward_bounds or (float(arrays["reward"].min()), float(arrays["reward"].max()))
    w_max = max_weight(action_dist, arrays.get("pi_b"))
    methods = ci_methods(ci)
    intervals = {m: estimate_all_intervals(ests, action_dist=action_dist, method=m, alpha=ci["alpha"],
                                           n_bootstrap_samples=ci["n_bootstrap_samples"], random_state=seed,
                                           reward_range=bounds, max_weight=w_max, **arrays)
                 for m in methods}
    lo_key, hi_key = ci_keys(ci["alpha"])
    table: dict[str, dict] = {}
    for est_name, est in estimators.items():
        by_method = {}
        for m in methods:
            valid, reason = interval_validity(est, m, diag, confounded=confounded, reward_bounded=reward_bounds is not None)
            iv = intervals[m][est_name]
            row = {"ci_low": iv[lo_key], "ci_high": iv[hi_key], "interval_valid": valid, "invalid_reason": reason}
            if truth is not None:
                row["covers"] = bool(iv[lo_key] <= truth <= iv[hi_key])
            by_method[m] = row
        primary = by_method[methods[0]]
        base = (ope_table({est_name: estimates[est_name]}, truth, intervals={est_name: intervals[methods[0]][est_name]})[est_name]
                if truth is not None else {"estimate": estimates[est_name], "ci_low": primary["ci_low"], "ci_high": primary["ci_high"]})
        table[est_name] = {**base, "interval_method": methods[0], "interval_valid": primary["interval_valid"],
                           "invalid_reason": primary["invalid_reason"], "intervals": by_method}
    return {"truth": truth, "diagnostics": diag, "warnings": warnings, "estimators": table}


def table_rows(name: str, result: dict) -> list[list]:
    """Rows of :data:`TABLE_COLUMNS` for one target's result (from :func:`evaluate_target`)."""
    return [[name, est, r["estimate"], r.get("ci_low"), r.get("ci_high"), r["interval_valid"], result["truth"],
             r.get("error"), r.get("covers")] for est, r in result["estimators"].items()]


def diagnostics_line(name: str, diag: dict) -> str:
    """One printed line of a target's overlap diagnostics."""
    return (f"diagnostics {name}: n {diag['n_rounds']:,}, ESS {diag['ess']:,.0f} ({100 * diag['ess_ratio']:.1f}%), "
            f"max weight {diag['max_weight']:,.1f}, target mass on pscore < 1/(10K) "
            f"{100 * diag['low_support_share']:.2f}% ({diag['low_support_source']}), "
            f"pscore == 1 on {100 * diag['pscore_one_share']:.1f}% of rows")


def dm_refit_intervals(feedback: LoggedFeedback, action_dists: dict[str, np.ndarray], exp: dict, seed: int,
                       n_refits: int, alpha: float, world: World | None = None) -> dict[str, dict]:
    """DM's percentile bootstrap that refits the cross-fitted reward model on every resample of
    the rounds (so the reward model's variance is in the interval; its bias still is not).
    A round drawn twice stays in one cross-fitting fold. One refit serves every target.
    Returns {target: {"ci_low", "ci_high", "refit_mean"}}."""
    rng = np.random.default_rng([seed, 7])
    n = len(feedback.reward)
    values = {k: np.empty(n_refits) for k in action_dists}
    for b in range(n_refits):
        idx = rng.integers(0, n, n)
        q = _reward_model(feedback.subset(idx), exp, seed + 1 + b, world, groups=idx)[:, :, 0]
        for k, pi in action_dists.items():
            values[k][b] = float((pi[idx] * q).sum(axis=1).mean())
    return {k: {"ci_low": float(np.quantile(v, alpha / 2)), "ci_high": float(np.quantile(v, 1 - alpha / 2)),
                "refit_mean": float(v.mean())} for k, v in values.items()}


def _add_dm_refit(results: dict, feedback: LoggedFeedback, dists: dict, estimators: dict, exp: dict, seed: int,
                  world: World | None = None) -> None:
    """Attach DM's refitting bootstrap (``ci.dm_refits`` > 0) to each target's DM row, and show
    it. Not for ``reward_model=bert`` (a fine-tuning per resample would take too long)."""
    n_refits = int(exp["ci"].get("dm_refits", 0) or 0)
    dm_names = [k for k, e in estimators.items() if e.kind == "dm"]
    if n_refits <= 0 or not dm_names or exp["reward_model"] == "bert":
        return
    refit = dm_refit_intervals(feedback, dists, exp, seed, n_refits, exp["ci"]["alpha"], world)
    for name, res in results.items():
        for dm in dm_names:
            row, truth = res["estimators"][dm], res["truth"]
            # The refits see smaller samples (about 63% distinct rounds): where DM's bias depends on
            # the sample size, their mean moves off the estimate, and the interval may not contain
            # it. mean(refits) - estimate is the bootstrap's estimate of that bias, shown with it.
            shift = refit[name]["refit_mean"] - row["estimate"]
            reason = row["invalid_reason"] or ""
            if not reason.startswith("confounded"):
                reason = (f"refits the reward model (its variance is in), but its bias is not in the interval "
                          f"(the refits centre {shift:+.4f} from the estimate: a bootstrap estimate of that bias)")
            iv = {**refit[name], "bootstrap_bias": shift, "interval_valid": False, "invalid_reason": reason}
            if truth is not None:
                iv["covers"] = bool(iv["ci_low"] <= truth <= iv["ci_high"])
            row["intervals"]["bootstrap_refit"] = iv
            row.update(ci_low=iv["ci_low"], ci_high=iv["ci_high"], interval_method="bootstrap_refit",
                       invalid_reason=iv["invalid_reason"])
            if truth is not None:
                row.update(covers=iv["covers"], ci_width=iv["ci_high"] - iv["ci_low"])


# ------------------------------------------------------------------------------- the two paths
def _reward_model(feedback: LoggedFeedback, exp: dict, seed: int, world: World | None = None,
                  groups: np.ndarray | None = None) -> np.ndarray:
    """Cross-fitted qhat (n, K, 1) from ``experiment.reward_model`` (``groups``: a bootstrap
    resample's original row indices, so that a row drawn twice stays in one fold)."""
    if exp["reward_model"] == "bert":  # the text-aware click model (recsim_causal.ctr), cross-fitted
        from recsim_causal.experiment.ctr import ope_q_hat

        return ope_q_hat(world, feedback, exp, seed)
    return fit_predict(feedback.context, feedback.action, feedback.reward, feedback.n_actions,
                       base_model=exp["reward_model"], features=exp.get("reward_features", "interaction"),
                       n_folds=exp["n_folds"], random_state=seed, groups=groups)


def make_world(resolved: dict) -> World:
    env_cfg = resolved["env"]
    if env_cfg["id"] != "RecSimCausal/Bandit-v0" or env_cfg.get("slate_size", 1) != 1:
        raise ValueError(f"env: experiment=ope evaluates one-item bandit policies (Bandit-v0, slate_size=1), "
                         f"got {env_cfg['id']} with slate_size={env_cfg.get('slate_size', 1)}")
    return World(resolved["scm"], n_items=env_cfg["n_items"], seed=env_cfg.get("world_seed", 0), dtype="float64")


def trained_policies(world: World, exp: dict, seed: int) -> tuple[Any, dict[str, Any]]:
    """The trained logger (on the logged context plus any privileged signal) and targets."""
    dim_full = world.obs_dim + sum(world.mech[n].dim for n in world.privileged)
    logger = make_agent(agent_config(exp["logger"]["agent"]), n_actions=world.n_items, dim=dim_full, seed=seed)
    train(world, logger, exp["train_rounds"], np.random.default_rng([seed, 3]), privileged=bool(world.privileged))
    targets = {}
    for t_i, spec in enumerate(exp["targets"]):
        target = make_agent(agent_config(spec), n_actions=world.n_items, dim=world.obs_dim, seed=seed + 1 + t_i)
        train(world, target, exp["train_rounds"], np.random.default_rng([seed, 10 + t_i]))
        targets[target_name(spec)] = target
    return logger, targets


def _simulated(resolved: dict, estimators: dict, seed: int) -> dict:
    exp = resolved["experiment"]
    world = make_world(resolved)
    logger, targets = trained_policies(world, exp, seed)
    feedback, oracle = collect(world, logger, exp["n_rounds"], exp["logger"].get("epsilon", 0.0),
                               np.random.default_rng([seed, 2]))
    q_hat = _reward_model(feedback, exp, seed, world)
    arrays = dict(reward=feedback.reward, action=feedback.action, pscore=feedback.pscore, pi_b=feedback.action_dist,
                  estimated_rewards_by_reg_model=q_hat)
    if any(isinstance(e, MIPS) for e in estimators.values()):
        topic = world.catalog.topic
        arrays.update(action_embed=topic[feedback.action][:, None], p_e_a=p_e_a_from_clusters(topic))
    confounded, bounds = world.is_confounded, reward_range(world)
    results, confounding, dists = {}, {}, {}
    for name, target in targets.items():
        action_dist = dists[name] = target.action_probs(feedback.context)
        validate_policy_output(target, len(action_dist), probs=action_dist)
        truth = policy_value(action_dist, feedback.expected_reward)
        res = evaluate_target(name, estimators, arrays, action_dist, ci=exp["ci"], seed=seed, reward_bounds=bounds,
                              truth=truth, confounded=confounded)
        res["truth_fresh_users"] = fresh_truth(world, target, exp["truth_users"], np.random.default_rng([seed, 4]))
        results[name] = res
        if confounded:
            confounding[name] = _confounding_rows(estimators, arrays, action_dist, feedback, oracle, truth)
    _add_dm_refit(results, feedback, dists, estimators, exp, seed, world)
    summary = {"scm": world.name, "logger": exp["logger"], "confounded": confounded,
               "warning": _warning(world) if confounded else None, "targets": results}
    if confounded:
        summary["confounding"] = confounding
        summary["pscore"] = {"method": "P(a|x) integrated over the signal: " + signal_quantile(world)[1],
                             "error_bound": oracle.pscore_error_bound}
    return summary


def _confounding_rows(estimators: dict, arrays: dict, action_dist: np.ndarray, feedback: LoggedFeedback,
                      oracle: Oracle, truth: float) -> dict:
    """Bias of each weight-based estimator with the logged P(a|x) (naive) and with the oracle
    pi_b(a|x,s), their difference, and the IPS bias the SCM implies (exact given the users)."""
    weight_based = [e for e in estimators.values() if e.kind != "dm" and not isinstance(e, MIPS)]
    plain = {k: v for k, v in arrays.items() if k not in ("action_embed", "p_e_a")}
    naive_inputs = reduce_dense(action_dist=action_dist, **plain)
    full_inputs = reduce_dense(action_dist=action_dist, **dict(plain, pscore=feedback.pscore_full, pi_b=oracle.pi_b_full))
    implied = ips_confounding_bias(action_dist, feedback.expected_reward, oracle.pi_b_full, feedback.action_dist)
    rows = {}
    for e in weight_based:
        naive, full = e.terms(naive_inputs), e.terms(full_inputs)
        rows[e.estimator_name] = {"naive_bias": naive.value() - truth, "oracle_bias": full.value() - truth,
                                  "remaining": naive.value() - full.value(),
                                  "se": float(naive.influence().std(ddof=1) / np.sqrt(naive.n_rounds))}
    return {"implied_ips_bias": implied, "estimators": rows}


def _external(resolved: dict, estimators: dict, seed: int) -> dict:
    exp = resolved["experiment"]
    feedback = _load_external(exp["data"])
    n_train = len(feedback.reward) // 2
    train_log, feedback = feedback.subset(slice(0, n_train)), feedback.subset(slice(n_train, None))
    estimators = {k: e for k, e in estimators.items() if not isinstance(e, MIPS)}  # no item clusters here
    q_hat = _reward_model(feedback, exp, seed)
    arrays = dict(reward=feedback.reward, action=feedback.action, pscore=feedback.pscore,
                  estimated_rewards_by_reg_model=q_hat)
    if feedback.action_dist is not None:
        arrays["pi_b"] = feedback.action_dist
    K, dim = feedback.n_actions, feedback.context.shape[1]
    # finite-sample bounds need a priori ranges: clicks are in [0, 1], and the logger's full
    # distribution bounds the weights; without both they are not called valid
    binary = bool(np.isin(feedback.reward, (0.0, 1.0)).all())
    bounds = (0.0, 1.0) if binary and feedback.action_dist is not None else None
    results, dists = {}, {}
    for t_i, spec in enumerate(exp["targets"]):
        target = make_agent(agent_config(spec), n_actions=K, dim=dim, seed=seed + 1 + t_i)
        target.update(train_log.context, train_log.action, train_log.reward)
        action_dist = dists[target_name(spec)] = target.action_probs(feedback.context)
        validate_policy_output(target, len(action_dist), probs=action_dist)
        results[target_name(spec)] = evaluate_target(target_name(spec), estimators, arrays, action_dist, ci=exp["ci"],
                                                     seed=seed, reward_bounds=bounds)
    _add_dm_refit(results, feedback, dists, estimators, exp, seed)
    return {"scm": None, "logger": "external", "confounded": False, "warning": "no truth: external data",
            "targets": results}


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
    part = _external(resolved, estimators, seed) if exp.get("data") else _simulated(resolved, estimators, seed)
    rows = [row for name, res in part["targets"].items() for row in table_rows(name, res)]
    n_rounds = next(iter(part["targets"].values()))["diagnostics"]["n_rounds"]
    summary = {"experiment": "ope", "data": exp.get("data"), "seed": seed, "n_rounds": n_rounds,
               "reward_model": exp["reward_model"], "interval_methods": ci_methods(exp["ci"]), **part,
               "wall_s": time.perf_counter() - start}
    out_dir = Path(out_dir)
    _plot(rows, out_dir / "ope.png", summary)
    write_json(out_dir / "ope.json", summary)
    tracker.table("ope", TABLE_COLUMNS, rows)
    tracker.image("ope", out_dir / "ope.png")
    tracker.summary({"confounded": summary["confounded"], "n_rounds": n_rounds, "wall_s": summary["wall_s"]})
    notes = [diagnostics_line(name, res["diagnostics"]) for name, res in summary["targets"].items()]
    notes += confounding_lines(summary.get("confounding", {}))
    notes += dm_refit_lines(summary["targets"])
    warnings = [w for res in summary["targets"].values() for w in res["warnings"]]
    if summary["warning"]:
        warnings.append(f"WARNING: {summary['warning']}")
    summary["table"] = format_table(TABLE_COLUMNS, rows, notes + warnings)
    return summary


def dm_refit_lines(targets: dict) -> list[str]:
    """One line per DM estimator with a refitting bootstrap: why its interval is never valid, and
    where the refits centre relative to each target's estimate (the bootstrap's bias estimate)."""
    shifts: dict[str, list[str]] = {}
    for name, res in targets.items():
        for est, row in res["estimators"].items():
            iv = row.get("intervals", {}).get("bootstrap_refit")
            if iv is not None:
                shifts.setdefault(est, []).append(f"{iv['bootstrap_bias']:+.4f} ({name})")
    return [f"{est} interval: bootstrap refits of the reward model (its variance is in, its bias is not: never "
            f"valid); the refits centre {', '.join(s)} from the estimate" for est, s in shifts.items()]


def confounding_lines(confounding: dict) -> list[str]:
    """The three-row confounding story per target (IPS): naive, oracle, what remains."""
    out = []
    for name, c in confounding.items():
        ipw = c["estimators"].get("ipw")
        if ipw is None:
            continue
        out.append(f"confounding {name} (ipw bias): with logged P(a|x) {ipw['naive_bias']:+.4f} | with oracle "
                   f"pi_b(a|x,s) {ipw['oracle_bias']:+.4f} | remaining = confounding {ipw['remaining']:+.4f} "
                   f"(SCM implies {c['implied_ips_bias']:+.4f}; IPS s.e. {ipw['se']:.4f})")
    return out


def _warning(world: World) -> str:
    return (f"confounded world: the logger used {', '.join(world.privileged)}, which the log does not keep, "
            f"and the latent {', '.join(world.confounders)} behind it drives the reward; the logged pscores are "
            "the exact P(a | logged context), and estimates miss the truth by the confounding bias "
            "(intervals are marked invalid)")


def _load_external(path: str) -> LoggedFeedback:
    p = Path(path)
    if p.is_dir():
        return load_obd(p)
    if p.suffix == ".parquet" and p.is_file():
        return LoggedFeedback.from_parquet(p)
    raise ValueError(f"experiment.data: expected a .parquet log or an Open Bandit Dataset folder, got '{path}'")


def _plot(rows: list[list], path: Path, summary: dict) -> None:
    labels = [f"{r[0]} / {r[1]}" + ("" if r[5] else " (invalid CI)") for r in rows]
    lows = [r[3] if r[3] is not None else r[2] for r in rows]
    highs = [r[4] if r[4] is not None else r[2] for r in rows]
    truth = [r[6] for r in rows] if all(r[6] is not None for r in rows) else None
    title = "OPE estimates (95% CI) vs the SCM's truth" + (" — CONFOUNDED world" if summary["confounded"] else "")
    errorbar_plot(labels, [r[2] for r in rows], lows, highs, path, xlabel="policy value", title=title, truth=truth)
