"""The coverage report: how far can OPE be trusted here? (``experiment=ope_coverage``)

One straight path: train the logger and the targets once (as the OPE experiment does), log
``n_replications`` independent logs of ``n_rounds`` new users each, and run every estimator
with every interval method on each. Against the exact population value of each target,

    V(pi) = E_x sum_a pi(a|x) E[r | x, do(a)]   (averaged over ``truth_users`` fresh users,
                                                 exact given the users; its standard error
                                                 is reported as ``truth_se``)

``coverage.json`` gives, for every target x estimator x interval method: ``bias`` (mean of
estimate - truth), ``bias_se``, ``rmse``, ``coverage`` (share of intervals holding the
truth), ``coverage_se``, ``mean_width``, ``valid_share`` (share of replications where the
interval was marked ``interval_valid``) and ``truth``; plus ``reliable_share``, the share of
replications whose diagnostics pass the validity rule's checks of the log for every estimator
family (:func:`~recsim_causal.ope.diagnostics.is_reliable`). ``coverage.png`` plots coverage per estimator with the nominal
line and its binomial band; the same rows go to a W&B table.

Replications share the trained policies and the truth (computed once); each replication's
log is collected in batches, and within a replication all targets and estimators share one
reduction of the arrays and one set of bootstrap resamples (a matrix product per block).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from recsim_causal.build import check_ope_config, make_estimators, one_item_world, reward_model_q_hat
from recsim_causal.config import as_resolved
from recsim_causal.ope.evaluate import ci_methods, max_weight, reward_range
from recsim_causal.ope.simulate import BATCH, collect, observe, train_logger, train_targets
from recsim_causal.plots import save_figure
from recsim_causal.experiment.tracking import Tracker, coverage_scalars
from recsim_causal.results import write_result
from recsim_causal.ope import MIPS, p_e_a_from_clusters
from recsim_causal.ope.diagnostics import is_reliable, overlap_diagnostics, row_verdict
from recsim_causal.ope.estimators import reward_model_range, weight_bound
from recsim_causal.ope.inputs import reduce_dense
from recsim_causal.ope.intervals import estimate_intervals_from_terms
from recsim_causal.progress import progress

COLUMNS = ["target", "estimator", "method", "truth", "bias", "bias_se", "rmse", "coverage", "coverage_se",
           "mean_width", "valid_share"]


def population_values(world, targets: dict, n_users: int, rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    """{target: (V(pi), its standard error)} on ``n_users`` fresh users, exact given the users."""
    sums = {k: [0.0, 0.0] for k in targets}
    for start in range(0, n_users, BATCH):
        users = world.sample_users(min(BATCH, n_users - start), rng)
        x, q = observe(world, users), world.expected_reward(users)
        for k, t in targets.items():
            v = (t.action_probs(x) * q).sum(axis=1)
            sums[k][0] += float(v.sum())
            sums[k][1] += float(v @ v)
    out = {}
    for k, (s, s2) in sums.items():
        mean = s / n_users
        out[k] = (mean, math.sqrt(max(s2 / n_users - mean * mean, 0.0) / n_users))
    return out


def _check_coverage(exp: dict) -> None:
    check_ope_config(exp)
    R = exp.get("n_replications")
    if not isinstance(R, int) or isinstance(R, bool) or R < 2:
        raise ValueError(f"experiment.n_replications: expected an integer >= 2, got {R!r}")


def run_coverage(cfg: Any, out_dir: str | Path, tracker: Tracker | None = None, *, resolved: dict | None = None) -> dict:
    """Run the coverage report; write coverage.json and coverage.png; return the summary."""
    resolved = as_resolved(cfg, resolved)
    exp, seed = resolved["experiment"], int(resolved.get("seed", 0))
    _check_coverage(exp)
    if exp.get("data"):
        raise ValueError("experiment.data: the coverage report needs a simulated world (truth), not external data")
    tracker = tracker or Tracker(mode="disabled")
    start = time.perf_counter()
    world = one_item_world(resolved, "ope_coverage")
    estimators = make_estimators(exp)
    methods = ci_methods(exp["ci"], "experiment.ci")
    R, n = exp["n_replications"], exp["n_rounds"]
    logger, targets = trained_policies(world, exp, seed)
    truth = population_values(world, targets, exp["truth_users"], np.random.default_rng([seed, 4]))
    t_trained = time.perf_counter()
    rngs = [np.random.default_rng([seed, 2, r]) for r in range(R)]  # replication r's log: its own stream
    topic = world.catalog.topic
    mips_arrays = (dict(p_e_a=p_e_a_from_clusters(topic))
                   if any(isinstance(e, MIPS) for e in estimators.values()) else {})
    bounds, confounded = reward_range(world), world.is_confounded
    names, ests = list(estimators), list(estimators.values())
    T, E, M = len(targets), len(ests), len(methods)
    est = np.empty((R, T, E))
    lo, hi = np.empty((R, T, E, M)), np.empty((R, T, E, M))
    valid = np.zeros((R, T, E, M), dtype=bool)
    reliable = np.zeros((R, T), dtype=bool)
    with progress(R, "replications", "logs") as bar:
        for r in range(R):
            part, _ = collect(world, logger, n, exp["logger"].get("epsilon", 0.0), rngs[r], show_progress=False)
            q_hat = reward_model_q_hat(part, exp, seed + r, world)
            terms, ranges = [], []
            for t_i, k in enumerate(targets):
                pi_e = targets[k].action_probs(part.context)
                extra = dict(action_embed=topic[part.action][:, None], **mips_arrays) if mips_arrays else {}
                inputs = reduce_dense(action_dist=pi_e, reward=part.reward, action=part.action, pscore=part.pscore,
                                      estimated_rewards_by_reg_model=q_hat, pi_b=part.action_dist, **extra)
                diag = overlap_diagnostics(inputs.iw(), part.pscore, world.n_items, action_dist=pi_e, pi_b=part.action_dist)
                reliable[r, t_i] = is_reliable(diag)
                w_max = max_weight(pi_e, part.action_dist)
                for e_i, e in enumerate(ests):
                    tm = e.terms(inputs)
                    terms.append(tm)
                    est[r, t_i, e_i] = tm.value()
                    rr = bounds or (float(part.reward.min()), float(part.reward.max()))
                    ranges.append(e.term_ranges(rr, weight_bound(e, inputs, w_max), reward_model_range(inputs, rr)))
                    for m_i, m in enumerate(methods):
                        valid[r, t_i, e_i, m_i] = row_verdict(e, m, diag, est[r, t_i, e_i], confounded=confounded,
                                                              reward_bounded=bounds is not None).valid
            for m_i, m in enumerate(methods):
                out = estimate_intervals_from_terms(terms, method=m, alpha=exp["ci"]["alpha"],
                                                    n_bootstrap_samples=exp["ci"]["n_bootstrap_samples"],
                                                    random_state=np.random.SeedSequence([seed, r]), ranges=ranges,
                                                    value_range=bounds)
                vals = np.array([[v for key, v in d.items() if key != "mean"] for d in out])  # (T*E, 2)
                lo[r, :, :, m_i] = vals[:, 0].reshape(T, E)
                hi[r, :, :, m_i] = vals[:, 1].reshape(T, E)
            bar.update(1)
    t_done = time.perf_counter()
    rows, report = [], {}
    for t_i, k in enumerate(targets):
        v, v_se = truth[k]
        report[k] = {"truth": v, "truth_se": v_se, "reliable_share": float(reliable[:, t_i].mean()), "estimators": {}}
        for e_i, e_name in enumerate(names):
            err = est[:, t_i, e_i] - v
            by_method = {}
            for m_i, m in enumerate(methods):
                covers = (lo[:, t_i, e_i, m_i] <= v) & (v <= hi[:, t_i, e_i, m_i])
                c = float(covers.mean())
                width = hi[:, t_i, e_i, m_i] - lo[:, t_i, e_i, m_i]
                by_method[m] = {"coverage": c, "coverage_se": math.sqrt(c * (1 - c) / R),
                                "mean_width": float(width.mean()), "valid_share": float(valid[:, t_i, e_i, m_i].mean())}
                rows.append([k, e_name, m, v, float(err.mean()), float(err.std(ddof=1) / math.sqrt(R)),
                             float(np.sqrt(np.mean(err**2))), c, by_method[m]["coverage_se"], by_method[m]["mean_width"],
                             by_method[m]["valid_share"]])
            report[k]["estimators"][e_name] = {"truth": v, "bias": float(err.mean()),
                                               "bias_se": float(err.std(ddof=1) / math.sqrt(R)),
                                               "rmse": float(np.sqrt(np.mean(err**2))), "intervals": by_method}
    summary = {"experiment": "ope_coverage", "scm": world.name, "seed": seed, "n_rounds": n, "n_replications": R,
               "n_items": world.n_items, "logger": exp["logger"], "confounded": confounded, "alpha": exp["ci"]["alpha"],
               "interval_methods": methods, "n_bootstrap_samples": exp["ci"]["n_bootstrap_samples"],
               "reward_model": exp["reward_model"], "targets": report,
               "timing_s": {"train_and_truth": t_trained - start, "replications": t_done - t_trained,
                            "total": time.perf_counter() - start}}
    out_dir = Path(out_dir)
    write_result(out_dir / "coverage.json", "coverage", summary)
    coverage_plot(summary, out_dir / "coverage.png")
    tracker.estimates("coverage", coverage_scalars(report))
    tracker.table("coverage", COLUMNS, rows)
    tracker.image("coverage", out_dir / "coverage.png")
    tracker.summary({"n_replications": R, "n_rounds": n, "wall_s": summary["timing_s"]["total"]})
    summary["table"] = format_coverage(rows, summary)
    return summary


def format_coverage(rows: list[list], summary: dict) -> str:
    """The printed table: one line per target x estimator x method."""
    from recsim_causal.results import format_table

    head = (f"coverage of {100 * (1 - summary['alpha']):.0f}% intervals over {summary['n_replications']} logs of "
            f"{summary['n_rounds']:,} rounds ({summary['scm']} world), against the exact V(pi)")
    return head + "\n" + format_table(COLUMNS, rows)


def coverage_plot(summary: dict, path: Path) -> Path:
    """Coverage per estimator and method, one panel per target, with the nominal line and its
    binomial band (+-1.96 sqrt(p (1 - p) / R))."""
    return save_figure(coverage_figure(summary), path)


def coverage_figure(summary: dict):
    """The figure of :func:`coverage_plot` (not saved)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets, methods = list(summary["targets"]), summary["interval_methods"]
    nominal, R = 1 - summary["alpha"], summary["n_replications"]
    band = 1.96 * math.sqrt(nominal * (1 - nominal) / R)
    fig, axes = plt.subplots(len(targets), 1, figsize=(10, 2.6 * len(targets)), squeeze=False)
    for ax, k in zip(axes[:, 0], targets):
        ests = list(summary["targets"][k]["estimators"])
        xs = np.arange(len(ests))
        for m_i, m in enumerate(methods):
            cov = [summary["targets"][k]["estimators"][e]["intervals"][m]["coverage"] for e in ests]
            ax.plot(xs + (m_i - (len(methods) - 1) / 2) * 0.15, cov, "o", label=m)
        ax.axhline(nominal, color="k", lw=1)
        ax.axhspan(nominal - band, nominal + band, color="k", alpha=0.1)
        ax.set_xticks(xs, ests, fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("coverage")
        ax.set_title(f"target {k}", fontsize=9)
    axes[0, 0].legend(fontsize=8, ncol=len(methods), loc="lower right", framealpha=0.9)
    fig.suptitle(f"interval coverage over {R} logs of {summary['n_rounds']:,} rounds ({summary['scm']})", fontsize=10)
    fig.tight_layout()
    return fig


def trained_policies(world, exp: dict, seed: int):
    """The trained logger and targets, as the OPE experiment trains them."""
    logger = train_logger(world, exp["logger"]["agent"], seed=seed, train_rounds=exp["train_rounds"],
                          where="experiment.logger.agent")
    return logger, train_targets(exp["targets"], world, seed=seed, train_rounds=exp["train_rounds"],
                                 where="experiment.targets")
