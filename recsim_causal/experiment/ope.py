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
from pathlib import Path
from typing import Any

import numpy as np

from recsim_causal.config import as_resolved, check_integer
from recsim_causal.build import make_agent, resolve_agents, world_from_config
from recsim_causal.data import LoggedFeedback, load_obd
from recsim_causal.experiment.tracking import Tracker, ope_scalars
from recsim_causal.ope import MIPS, fit_predict
from recsim_causal.ope.evaluate import reward_model_features
from recsim_causal.ope.evaluate import TABLE_COLUMNS, ci_methods, diagnostics_line, evaluate, table_rows
from recsim_causal.ope.inputs import reduce_dense
from recsim_causal.ope.propensity import signal_quantile
from recsim_causal.ope.sensitivity import check_config
from recsim_causal.ope.simulate import Oracle, population_value, simulate_log, train_targets, write_simulated_log
from recsim_causal.ope.truth import ips_confounding_bias
from recsim_causal.plots import ope_plot
from recsim_causal.results import format_table, write_result
from recsim_causal.scm import World



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
    for key in ("stream_above", "stream_fit_rows"):
        if key in exp:
            check_integer(exp[key], f"experiment.{key}", minimum=1)
    ci_methods(exp["ci"], "experiment.ci")



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
    features, action_context = reward_model_features(exp.get("reward_features", "cross"), world)
    return fit_predict(feedback.context, feedback.action, feedback.reward, feedback.n_actions,
                       base_model=exp["reward_model"], features=features, action_context=action_context,
                       n_folds=exp["n_folds"], random_state=seed, groups=groups)


def make_world(resolved: dict) -> World:
    env_cfg = resolved["env"]
    if env_cfg["id"] != "RecSimCausal/Bandit-v0" or env_cfg.get("slate_size", 1) != 1:
        raise ValueError(f"env: experiment=ope evaluates one-item bandit policies (Bandit-v0, slate_size=1), "
                         f"got {env_cfg['id']} with slate_size={env_cfg.get('slate_size', 1)}")
    return world_from_config(resolved)


def _simulated(resolved: dict, estimators: dict, seed: int, out_dir: Path) -> dict:
    exp = resolved["experiment"]
    world = make_world(resolved)
    log = simulate_log(world, exp["logger"]["agent"], exp["n_rounds"], epsilon=exp["logger"].get("epsilon", 0.0),
                       seed=seed, train_rounds=exp["train_rounds"], show_progress=exp.get("progress", True))
    targets = train_targets(exp["targets"], world, seed=seed, train_rounds=exp["train_rounds"],
                            where="experiment.targets")
    feedback, oracle = log.feedback, log.oracle
    if exp.get("save_log", True):
        log.save(out_dir / "logged.parquet")
    q_hat = _reward_model(feedback, exp, seed, world)
    result = evaluate(log, targets, list(estimators.values()), ci=ci_methods(exp["ci"], "experiment.ci"),
                      alpha=exp["ci"]["alpha"], reward_model=q_hat, seed=seed,
                      n_bootstrap_samples=exp["ci"]["n_bootstrap_samples"],
                      sensitivity=_sensitivity_block(exp, world.is_confounded, list(targets)))
    results, confounding, dists = result.targets, {}, {}
    for name, target in targets.items():
        action_dist = dists[name] = target.action_probs(feedback.context)
        results[name]["truth_fresh_users"] = population_value(world, target, exp["truth_users"],
                                                              np.random.default_rng([seed, 4]))[0]
        if world.is_confounded:
            arrays = dict(reward=feedback.reward, action=feedback.action, pscore=feedback.pscore,
                          pi_b=feedback.action_dist, estimated_rewards_by_reg_model=q_hat)
            confounding[name] = _confounding_rows(estimators, arrays, action_dist, feedback, oracle,
                                                  results[name]["truth"])
    _add_dm_refit(results, feedback, dists, estimators, exp, seed, world)
    confounded = world.is_confounded
    summary = {"scm": world.name, "logger": exp["logger"], "confounded": confounded,
               "warning": _warning(world) if confounded else None, "targets": results,
               "sensitivity": result.sensitivity}
    if confounded:
        summary["confounding"] = confounding
        summary["pscore"] = {"method": "P(a|x) integrated over the signal: " + signal_quantile(world)[1],
                             "error_bound": oracle.pscore_error_bound}
    return summary


def _sensitivity_block(exp: dict, confounded: bool, targets: list[str]) -> dict | None:
    """``experiment.sensitivity`` without ``enabled``, or None when off (``auto``: on in a
    confounded world). Pairs naming a target that is not in ``experiment.targets`` are an
    error only when the block is on."""
    block = dict(exp.get("sensitivity") or {})
    enabled = block.pop("enabled", "auto")
    if enabled not in ("auto", True, False):
        raise ValueError(f"experiment.sensitivity.enabled: expected auto, true or false, got {enabled!r}")
    if enabled is False or (enabled == "auto" and not confounded):
        return None
    return check_config(block, "experiment.sensitivity", targets)


def _streamed(resolved: dict, estimators: dict, seed: int, out_dir: Path) -> dict:
    """A log longer than ``experiment.stream_above`` rounds: written to logged.parquet chunk by
    chunk, then evaluated in one streamed pass (memory flat in n_rounds). The reward model is
    fitted on the log's first ``stream_fit_rows`` rows, which the estimators skip; MIPS, the
    confounding rows and DM's refitting bootstrap need the rows in memory and are left out."""
    exp = resolved["experiment"]
    if exp["reward_model"] == "bert":
        raise ValueError(f"experiment.reward_model: 'bert' needs the log in memory; n_rounds={exp['n_rounds']:,} is "
                         f"above experiment.stream_above={exp['stream_above']:,} (raise it, or choose logistic, ridge, mlp)")
    world = make_world(resolved)
    path = out_dir / "logged.parquet"
    write_simulated_log(path, world, exp["logger"]["agent"], exp["n_rounds"], epsilon=exp["logger"].get("epsilon", 0.0),
                        seed=seed, train_rounds=exp["train_rounds"], show_progress=exp.get("progress", True))
    targets = train_targets(exp["targets"], world, seed=seed, train_rounds=exp["train_rounds"],
                            where="experiment.targets")
    kept = [e for e in estimators.values() if not isinstance(e, MIPS)]
    try:
        result = evaluate(path, targets, kept, ci=ci_methods(exp["ci"], "experiment.ci"), alpha=exp["ci"]["alpha"],
                          reward_model=exp["reward_model"], seed=seed, n_bootstrap_samples=exp["ci"]["n_bootstrap_samples"],
                          reward_features=exp.get("reward_features", "interaction"), fit_rows=exp["stream_fit_rows"])
    finally:
        if not exp.get("save_log", True):
            path.unlink(missing_ok=True)
    for name, target in targets.items():
        result.targets[name]["truth_fresh_users"] = population_value(world, target, exp["truth_users"],
                                                                     np.random.default_rng([seed, 4]))[0]
    confounded = world.is_confounded
    left_out = [k for k, e in estimators.items() if isinstance(e, MIPS)]
    return {"scm": world.name, "logger": exp["logger"], "confounded": confounded,
            "warning": _warning(world) if confounded else None, "targets": result.targets,
            "streamed": {"log": str(path) if exp.get("save_log", True) else None, "reward_model_rows": exp["stream_fit_rows"],
                         "left_out": left_out}}


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
        n = naive.n_rounds
        # remaining = naive - oracle on the same rows: its s.e. is the paired difference's
        rows[e.estimator_name] = {"naive_bias": naive.value() - truth, "oracle_bias": full.value() - truth,
                                  "remaining": naive.value() - full.value(),
                                  "remaining_se": float((naive.influence() - full.influence()).std(ddof=1) / np.sqrt(n)),
                                  "se": float(naive.influence().std(ddof=1) / np.sqrt(n))}
    return {"implied_ips_bias": implied, "estimators": rows}


def _external(resolved: dict, estimators: dict, seed: int) -> dict:
    exp = resolved["experiment"]
    feedback = _load_external(exp["data"])
    n_train = len(feedback.reward) // 2
    train_log, feedback = feedback.subset(slice(0, n_train)), feedback.subset(slice(n_train, None))
    feedback.expected_reward = None  # external data is evaluated as real data: without an oracle
    estimators = {k: e for k, e in estimators.items() if not isinstance(e, MIPS)}  # no item clusters here
    K, dim = feedback.n_actions, feedback.context.shape[1]
    targets = {}
    for t_i, (label, spec) in enumerate(resolve_agents(exp["targets"], where="experiment.targets").items()):
        target = make_agent(spec, n_actions=K, dim=dim, seed=seed + 1 + t_i, where=f"experiment.targets[{t_i}]")
        target.update(train_log.context, train_log.action, train_log.reward)  # trained on the first half
        targets[label] = target
    # finite-sample bounds need a priori ranges: clicks are in [0, 1], and the logger's full
    # distribution bounds the weights; without both they are not called valid (evaluate's rule)
    result = evaluate(feedback, targets, list(estimators.values()), ci=ci_methods(exp["ci"], "experiment.ci"),
                      alpha=exp["ci"]["alpha"], reward_model=_reward_model(feedback, exp, seed), seed=seed,
                      n_bootstrap_samples=exp["ci"]["n_bootstrap_samples"],
                      sensitivity=_sensitivity_block(exp, False, list(targets)))
    dists = {k: t.action_probs(feedback.context) for k, t in targets.items()}
    _add_dm_refit(result.targets, feedback, dists, estimators, exp, seed)
    return {"scm": None, "logger": "external", "confounded": False, "warning": "no truth: external data",
            "targets": result.targets, "sensitivity": result.sensitivity}


def run_ope(cfg: Any, out_dir: str | Path, tracker: Tracker | None = None, *, resolved: dict | None = None) -> dict:
    """Run the OPE experiment; write ope.json and ope.png into ``out_dir``; return the summary."""
    resolved = as_resolved(cfg, resolved)
    exp, seed = resolved["experiment"], int(resolved.get("seed", 0))
    _check(exp)
    tracker = tracker or Tracker(mode="disabled")
    estimators = make_estimators(exp)
    start = time.perf_counter()
    if exp.get("data"):
        part = _external(resolved, estimators, seed)
    elif exp["n_rounds"] > exp.get("stream_above", exp["n_rounds"]):
        part = _streamed(resolved, estimators, seed, Path(out_dir))
    else:
        part = _simulated(resolved, estimators, seed, Path(out_dir))
    rows = [row for name, res in part["targets"].items() for row in table_rows(name, res)]
    n_rounds = next(iter(part["targets"].values()))["diagnostics"]["n_rounds"]
    summary = {"experiment": "ope", "data": exp.get("data"), "seed": seed, "n_rounds": n_rounds,
               "reward_model": exp["reward_model"], "interval_methods": ci_methods(exp["ci"], "experiment.ci"), **part,
               "wall_s": time.perf_counter() - start}
    out_dir = Path(out_dir)
    _plot(rows, out_dir / "ope.png", summary)
    report = summary.pop("sensitivity", None)
    if report is not None:
        summary["sensitivity"] = report.to_dict()
        report.plot(out_dir / "sensitivity.png", title="Sensitivity bounds against Gamma"
                    + (" (truth: the SCM's)" if summary["confounded"] else ""))
        tracker.image("sensitivity", out_dir / "sensitivity.png")
    write_result(out_dir / "ope.json", "ope", summary)
    tracker.estimates("ope", ope_scalars(summary["targets"]))
    tracker.table("ope", TABLE_COLUMNS, rows)
    tracker.image("ope", out_dir / "ope.png")
    tracker.summary({"confounded": summary["confounded"], "n_rounds": n_rounds, "wall_s": summary["wall_s"]})
    notes = [diagnostics_line(name, res["diagnostics"]) for name, res in summary["targets"].items()]
    notes += confounding_lines(summary.get("confounding", {}))
    notes += report.lines() if report is not None else []
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
        out.append(f"confounding {name} (ipw bias): with logged P(a|x) {ipw['naive_bias']:+.4f} "
                   f"({ipw['naive_bias'] / ipw['se']:+.1f} s.e.) | with oracle pi_b(a|x,s) {ipw['oracle_bias']:+.4f} | "
                   f"remaining = confounding {ipw['remaining']:+.4f} +- {ipw['remaining_se']:.4f} (SCM implies "
                   f"{c['implied_ips_bias']:+.4f}, {c['implied_ips_bias'] / ipw['se']:+.1f} s.e.; IPS s.e. {ipw['se']:.4f})")
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
    title = "OPE estimates (95% CI) vs the SCM's truth" + (" — CONFOUNDED world" if summary["confounded"] else "")
    ope_plot(summary["targets"], path, title=title)
