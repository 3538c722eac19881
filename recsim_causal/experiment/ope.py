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

from recsim_causal.build import (check_ope_config, make_agent, make_estimators, one_item_world, resolve_agents,
                                  reward_model_q_hat)
from recsim_causal.config import as_resolved
from recsim_causal.data import LoggedFeedback, load_obd, load_parquet
from recsim_causal.experiment.tracking import Tracker, ope_scalars
from recsim_causal.ope import MIPS, p_e_a_from_clusters
from recsim_causal.ope.evaluate import TABLE_COLUMNS, ci_methods, diagnostics_line, evaluate, table_rows
from recsim_causal.ope.inputs import reduce_dense
from recsim_causal.ope.propensity import signal_quantile
from recsim_causal.ope.sensitivity import check_config
from recsim_causal.ope.simulate import Oracle, population_value, simulate_log, train_targets, write_simulated_log
from recsim_causal.ope.truth import ips_confounding_bias
from recsim_causal.plots import ope_plot
from recsim_causal.results import format_table, write_result
from recsim_causal.scm import World



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
        q = reward_model_q_hat(feedback.subset(idx), exp, seed + 1 + b, world, groups=idx)[:, :, 0]
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


# ------------------------------------------------------------------------------- the paths
def _simulated(resolved: dict, estimators: dict, seed: int, out_dir: Path) -> dict:
    exp = resolved["experiment"]
    world = one_item_world(resolved, "ope")
    log = simulate_log(world, exp["logger"]["agent"], exp["n_rounds"], epsilon=exp["logger"].get("epsilon", 0.0),
                       seed=seed, train_rounds=exp["train_rounds"], show_progress=exp.get("progress", True))
    targets = train_targets(exp["targets"], world, seed=seed, train_rounds=exp["train_rounds"],
                            where="experiment.targets")
    feedback, oracle = log.feedback, log.oracle
    if exp.get("save_log", True):
        log.save(out_dir / "logged.parquet")
    q_hat = reward_model_q_hat(feedback, exp, seed, world)
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
    fitted on the log's first ``stream_fit_rows`` rows, which the estimators skip; MIPS reads
    the catalog's item clusters. What needs the rows in memory (:data:`NOT_STREAMED`) is null in
    ope.json, with its reason under ``nulls``."""
    exp = resolved["experiment"]
    if exp["reward_model"] == "bert":
        raise ValueError(f"experiment.reward_model: 'bert' needs the log in memory; n_rounds={exp['n_rounds']:,} is "
                         f"above experiment.stream_above={exp['stream_above']:,} (raise it, or choose logistic, ridge, mlp)")
    world = one_item_world(resolved, "ope")
    path = out_dir / "logged.parquet"
    write_simulated_log(path, world, exp["logger"]["agent"], exp["n_rounds"], epsilon=exp["logger"].get("epsilon", 0.0),
                        seed=seed, train_rounds=exp["train_rounds"], show_progress=exp.get("progress", True))
    targets = train_targets(exp["targets"], world, seed=seed, train_rounds=exp["train_rounds"],
                            where="experiment.targets")
    try:
        result = evaluate(path, targets, list(estimators.values()), ci=ci_methods(exp["ci"], "experiment.ci"),
                          alpha=exp["ci"]["alpha"], reward_model=exp["reward_model"], seed=seed,
                          n_bootstrap_samples=exp["ci"]["n_bootstrap_samples"],
                          reward_features=exp.get("reward_features", "interaction"), fit_rows=exp["stream_fit_rows"],
                          p_e_a=p_e_a_from_clusters(world.catalog.topic))
    finally:
        if not exp.get("save_log", True):
            path.unlink(missing_ok=True)
    for name, target in targets.items():
        result.targets[name]["truth_fresh_users"] = population_value(world, target, exp["truth_users"],
                                                                     np.random.default_rng([seed, 4]))[0]
    confounded = world.is_confounded
    part = {"scm": world.name, "logger": exp["logger"], "confounded": confounded,
            "warning": _warning(world) if confounded else None, "targets": result.targets, "nulls": {},
            "streamed": {"log": str(path) if exp.get("save_log", True) else None,
                         "reward_model_rows": exp["stream_fit_rows"], "left_out": []}}
    # what the in-memory path would add here: null, and why
    if confounded:
        _left_out(part, "confounding", "confounding")
    if _sensitivity_block(exp, confounded, list(targets)) is not None:
        _left_out(part, "sensitivity", "sensitivity")
    if int(exp["ci"].get("dm_refits", 0) or 0) > 0:
        for name, res in part["targets"].items():
            for est, row in res["estimators"].items():
                if estimators[est].kind == "dm":
                    _left_out(part, "dm_refits", f"targets.{name}.estimators.{est}.intervals.bootstrap_refit",
                              row["intervals"])
    return part


#: What a streamed OPE run leaves out, and why (each is null in ope.json, its reason under nulls).
NOT_STREAMED = {
    "confounding": "not in a streamed run: the naive / oracle / remaining rows need the logger's distribution given "
                   "the hidden signal for every row, which the streamed log does not keep",
    "sensitivity": "not in a streamed run: the sensitivity bounds solve for per-row weights over the whole log "
                   "in memory",
    "dm_refits": "not in a streamed run: the refitting bootstrap fits the reward model again on every resample "
                 "and predicts every row with each fit (ci.dm_refits passes over the log)",
}


def _left_out(part: dict, what: str, path: str, where: dict | None = None) -> None:
    """Set ``path``'s value (its last key, in ``where`` or ``part``) to null with its reason."""
    (part if where is None else where)[path.rsplit(".", 1)[-1]] = None
    part["nulls"][path] = NOT_STREAMED[what]
    if what not in part["streamed"]["left_out"]:
        part["streamed"]["left_out"].append(what)


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
                      alpha=exp["ci"]["alpha"], reward_model=reward_model_q_hat(feedback, exp, seed), seed=seed,
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
    check_ope_config(exp)
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
    if "sensitivity" in summary.get("nulls", {}):  # left out of a streamed run: null, with its reason
        summary["sensitivity"] = None
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
    notes += [f"{what}: {NOT_STREAMED[what]}" for what in summary.get("streamed", {}).get("left_out", [])]
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
        return load_parquet(p)
    raise ValueError(f"experiment.data: expected a .parquet log or an Open Bandit Dataset folder, got '{path}'")


def _plot(rows: list[list], path: Path, summary: dict) -> None:
    title = "OPE estimates (95% CI) vs the SCM's truth" + (" — CONFOUNDED world" if summary["confounded"] else "")
    ope_plot(summary["targets"], path, title=title)
