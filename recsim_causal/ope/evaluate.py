"""Evaluate target policies on a logged dataset: estimates, intervals (with their validity),
overlap diagnostics and, where the log knows it, the truth.

    from recsim_causal.ope import evaluate, simulate_log
    log = simulate_log("default", "linucb", 20_000, epsilon=0.2)
    result = evaluate(log, ["random", my_policy], ["ipw", "dr"])
    print(result.table())
    result.to_frame()          # pandas: target, estimator, estimate, ci_low, ci_high, interval_valid, truth, error, ...
    result.to_json("ope.json"); result.plot("ope.png")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recsim_causal.agents import validate_policy_output
from recsim_causal.build import make_agent, resolve_agents
from recsim_causal.data import LoggedFeedback, load_parquet
from recsim_causal.data.parquet import read_setting
from recsim_causal.ope.diagnostics import (
    ROW_ONLY, overlap_diagnostics, row_verdict, verdict_warnings, weight_diagnostics,
)
from recsim_causal.ope.estimators import (
    DM, DR, IPS, MIPS, SNDR, SNIPS, SNMIPS, BaseOffPolicyEstimator, DRos, SubGaussianIPS, SwitchDR, estimate_all,
    estimate_all_intervals, p_e_a_from_clusters, tuned_lambdas,
)
from recsim_causal.ope.intervals import ci_keys, ci_methods
from recsim_causal.ope.reward_models import fit_predict, reward_model_features
from recsim_causal.ope.sensitivity import check_config, sensitivity_analysis
from recsim_causal.ope.simulate import SimulatedLog, no_options, train_targets
from recsim_causal.ope.truth import ope_table, policy_value
from recsim_causal.scm import World

__all__ = ["evaluate", "OPEResult", "OPERecord", "ESTIMATORS", "DEFAULT_ESTIMATORS", "make_estimator",
           "evaluate_target", "target_block", "setting_estimators", "setting_log", "interval_methods", "add_method_intervals", "EVALUATORS", "setting_of_log", "ci_methods", "reward_range", "max_weight", "TABLE_COLUMNS", "table_rows",
           "diagnostics_line"]

# The estimators by name (the OPE experiment's names; conf/experiment/ope.yaml lists the same).
ESTIMATORS: dict[str, Any] = {
    "dm": DM, "ipw": IPS, "ipw-clip": lambda **kw: IPS(lambda_=20.0, **kw), "snipw": SNIPS, "dr": DR, "sndr": SNDR,
    "switch-dr": lambda **kw: SwitchDR(lambda_=20.0, **kw), "dr-os": lambda **kw: DRos(lambda_=20.0, **kw),
    "sg-ipw": lambda **kw: SubGaussianIPS(lambda_=0.01, **kw), "mipw": MIPS, "snmipw": SNMIPS,
}
ALIASES = {"ips": "ipw", "snips": "snipw"}
DEFAULT_ESTIMATORS = ("dm", "ipw", "snipw", "dr", "sndr")
TABLE_COLUMNS = ["target", "estimator", "estimate", "ci_low", "ci_high", "valid", "truth", "error", "covers"]


def make_estimator(spec: Any, where: str = "estimators") -> BaseOffPolicyEstimator:
    """An estimator from a name (``ESTIMATORS``; ``ips``/``snips`` as aliases) or as given."""
    if isinstance(spec, BaseOffPolicyEstimator):
        return spec
    if isinstance(spec, str):
        name = ALIASES.get(spec, spec)
        if name not in ESTIMATORS:
            raise ValueError(f"{where}: unknown estimator '{spec}' (known: {', '.join([*ESTIMATORS, *ALIASES])})")
        return ESTIMATORS[name](estimator_name=spec)
    raise ValueError(f"{where}: expected an estimator name or object, got {spec!r}")


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
    """Estimates, intervals by every method (with validity), diagnostics and WARNING lines (the
    rows of the first method that the log makes invalid: :func:`verdict_warnings`) for one
    target. ``arrays``: OBP's keyword arrays (reward, action, pscore, pi_b, ...)."""
    ests = list(estimators.values())
    estimates = estimate_all(ests, action_dist=action_dist, **arrays)
    lambdas = tuned_lambdas(ests, action_dist=action_dist, **arrays)  # lambda_="auto": SLOPE's choice
    n, K = action_dist.shape
    weights = action_dist[np.arange(n), arrays["action"]] / arrays["pscore"]
    context_weight = arrays.get("context_weight")
    if context_weight is not None:  # a covariate-shift correction: each round's weight is w(x) pi_e / pi_b
        weights = weights * context_weight
    diag = overlap_diagnostics(weights, arrays["pscore"], K, action_dist=action_dist, pi_b=arrays.get("pi_b"))
    # a priori ranges for the finite-sample methods; without known bounds, the observed ones
    bounds = reward_bounds or (float(arrays["reward"].min()), float(arrays["reward"].max()))
    w_max = max_weight(action_dist, arrays.get("pi_b"))
    if w_max is not None and context_weight is not None:
        w_max *= float(np.max(context_weight, initial=0.0))
    methods = ci_methods(ci)
    intervals = {m: estimate_all_intervals(ests, action_dist=action_dist, method=m, alpha=ci["alpha"],
                                           n_bootstrap_samples=ci["n_bootstrap_samples"], random_state=seed,
                                           reward_range=bounds, max_weight=w_max, **arrays)
                 for m in methods}
    lo_key, hi_key = ci_keys(ci["alpha"])
    table: dict[str, dict] = {}
    verdicts = {}
    for est_name, est in estimators.items():
        by_method = {}
        for m in methods:
            v = row_verdict(est, m, diag, estimates[est_name], confounded=confounded,
                            reward_bounded=reward_bounds is not None)
            verdicts.setdefault(est_name, v)
            iv = intervals[m][est_name]
            row = {"ci_low": iv[lo_key], "ci_high": iv[hi_key], "interval_valid": v.valid, "invalid_reason": v.reason}
            if truth is not None:
                row["covers"] = bool(iv[lo_key] <= truth <= iv[hi_key])
            by_method[m] = row
        primary = by_method[methods[0]]
        base = (ope_table({est_name: estimates[est_name]}, truth, intervals={est_name: intervals[methods[0]][est_name]})[est_name]
                if truth is not None else {"estimate": estimates[est_name], "ci_low": primary["ci_low"], "ci_high": primary["ci_high"]})
        table[est_name] = {**base, "interval_method": methods[0], "interval_valid": primary["interval_valid"],
                           "invalid_reason": primary["invalid_reason"], "intervals": by_method}
        if est_name in lambdas:
            table[est_name]["lambda"] = lambdas[est_name]
    return {"truth": truth, "diagnostics": diag, "warnings": verdict_warnings(name, verdicts, methods[0]),
            "estimators": table}


def target_block(name: str, estimates: dict[str, float], intervals: dict[str, dict], truth: float | None,
                 weights: dict[str, np.ndarray], validity: dict[str, dict[str, Any]], *, method: str,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """One slate or session target's block: each estimator's estimate, interval (by ``method``),
    error against ``truth`` (None: no truth, no error columns), ``interval_valid`` with its
    reason and diagnostics (``validity``, from
    :func:`~recsim_causal.ope.diagnostics.validity_rows`); the diagnostics of the importance
    weights each family uses (``weights``: one weight per independent unit), and WARNING lines
    for the rows the log makes invalid (:func:`verdict_warnings`)."""
    table = ope_table(estimates, 0.0 if truth is None else truth, intervals=intervals)
    if truth is None:  # external data: estimates and intervals only
        none = dict.fromkeys(("truth", "error", "abs_error", "relative_error", "squared_error", "covers"))
        table = {k: {**v, **none} for k, v in table.items()}
    for est, row in table.items():
        row.update(interval_method=method, **{k: v for k, v in validity[est].items() if k not in ROW_ONLY})
    diagnostics = {k: weight_diagnostics(w) for k, w in weights.items()}
    warnings = verdict_warnings(name, {est: v["verdict"] for est, v in validity.items()}, method)
    return {"truth": truth, **(extra or {}), "estimators": table, "diagnostics": diagnostics, "warnings": warnings}


def setting_estimators(estimators: Any, known: Mapping[str, Any], base: type, build: Any, what: str) -> dict[str, Any]:
    """``{name: estimator}`` of a slate or session evaluation: names from ``known`` (built by
    ``build(cls, name)``) or ``base`` objects as given; None: every known one."""
    specs = list(known) if estimators is None else (
        [estimators] if isinstance(estimators, (str, base)) else list(estimators))
    out: dict[str, Any] = {}
    for i, spec in enumerate(specs):
        if isinstance(spec, base):
            est = spec
        elif isinstance(spec, str) and spec in known:
            est = build(known[spec], spec)
        else:
            raise ValueError(f"estimators[{i}]: unknown {what} estimator {spec!r} (known: {', '.join(known)})")
        if est.estimator_name in out:
            raise ValueError("estimators: two estimators share a name (give each its own estimator_name)")
        out[est.estimator_name] = est
    return out


def setting_log(log: Any, sensitivity: Any) -> tuple[Any, LoggedFeedback, World | None]:
    """A slate or session ``log`` (a path is read into memory), its feedback and world;
    ``sensitivity`` refused (the bounds are for one-item logs)."""
    if sensitivity is not None:
        raise ValueError("sensitivity: bounds under hidden confounding are for one-item logs")
    if isinstance(log, (str, Path)):
        log = load_parquet(log)
    return (log, *_feedback_of(log))


def interval_methods(ci: Any) -> list[str]:
    """``ci`` (one method or a list; the first is the records') as a list of known methods."""
    return ci_methods({"method": ci if isinstance(ci, str) else list(ci)})


def add_method_intervals(block: dict, intervals: dict[str, dict], validity: dict[str, dict]) -> None:
    """With more than one interval method: each estimator row's ``intervals`` by method (the
    interval and its validity)."""
    if len(intervals) < 2:
        return
    for est, row in block["estimators"].items():
        row["intervals"] = {m: {**intervals[m][est], **{k: v for k, v in validity[m][est].items()
                                                        if k not in ("diagnostics", *ROW_ONLY)}}
                            for m in intervals}


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


def diagnostics_lines(name: str, diag: dict) -> list[str]:
    """A target's diagnostics as printed lines: one-item overlap diagnostics in one line; slate
    and session blocks (one weight family each: sips, iips, rips; trajectory) one per family."""
    if "n_rounds" in diag:
        return [diagnostics_line(name, diag)]
    return [f"diagnostics {name}/{family}: n {d['n_rounds']:,}, ESS {d['ess']:,.0f} ({100 * d['ess_ratio']:.1f}%), "
            f"max weight {d['max_weight']:,.1f}" for family, d in diag.items()]


# ------------------------------------------------------------------------------- the result
@dataclass
class OPERecord:
    """One target x estimator: the estimate, its interval (``interval_method``, at level
    1 - alpha) and whether that interval can be trusted, and the truth where the log knows it."""

    target: str
    estimator: str
    estimate: float
    ci_low: float | None
    ci_high: float | None
    interval_method: str
    interval_valid: bool
    invalid_reason: str | None = None
    truth: float | None = None
    error: float | None = None
    covers: bool | None = None


@dataclass
class OPEResult:
    """What :func:`evaluate` returns: :class:`OPERecord` per target x estimator (``records``),
    and per target its full block (``targets``: diagnostics, WARNING lines, intervals by every
    method)."""

    records: list[OPERecord]
    targets: dict[str, dict] = field(default_factory=dict)
    setting: str = "one_item"
    n_rounds: int = 0
    alpha: float = 0.05
    #: :class:`~recsim_causal.ope.sensitivity.SensitivityReport` when ``evaluate(..., sensitivity=...)``
    sensitivity: Any = None

    FRAME_COLUMNS = ("target", "estimator", "estimate", "ci_low", "ci_high", "interval_method", "interval_valid",
                     "truth", "error", "covers", "invalid_reason")

    def to_frame(self):
        """A pandas DataFrame, one row per record."""
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.records], columns=list(self.FRAME_COLUMNS))

    def warnings(self) -> list[str]:
        return [w for block in self.targets.values() for w in block.get("warnings", [])]

    def table(self) -> str:
        """The records as an aligned text table; diagnostics and WARNING lines below."""
        from recsim_causal.results import format_table

        rows = [[r.target, r.estimator, r.estimate, r.ci_low, r.ci_high, r.interval_valid, r.truth, r.error, r.covers]
                for r in self.records]
        notes = [line for k, b in self.targets.items() if "diagnostics" in b for line in diagnostics_lines(k, b["diagnostics"])]
        if self.sensitivity is not None:
            notes += self.sensitivity.lines()
        return format_table(TABLE_COLUMNS, rows, notes + self.warnings())

    def selection(self, ks: Sequence[int] = (1, 3, 5), baseline: float | None = None) -> dict[str, dict[str, Any]]:
        """Off-policy selection over this result's targets (the candidates), by every estimator:
        :func:`recsim_causal.ope.selection.select` against the targets' truths, plus each
        estimator's estimates and, for ``lambda_="auto"``, the lambda chosen per target.
        ``baseline``: the logging policy's value (for SharpeRatio@k)."""
        from recsim_causal.ope.selection import select

        truth = {t: block.get("truth") for t, block in self.targets.items()}
        missing = [t for t, v in truth.items() if v is None]
        if missing:
            raise ValueError(f"selection: target '{missing[0]}' has no truth (evaluate a SimulatedLog, or a log with "
                             "expected_reward)")
        estimates: dict[str, dict[str, float]] = {}
        for r in self.records:
            estimates.setdefault(r.estimator, {})[r.target] = r.estimate
        out = select(estimates, truth, ks=ks, baseline=baseline)
        for est, res in out.items():
            res["estimates"] = estimates[est]
            lam = {t: b["estimators"][est]["lambda"] for t, b in self.targets.items()
                   if b["estimators"][est].get("lambda") is not None}
            if lam:
                res["lambda"] = lam
        return out

    def to_dict(self) -> dict[str, Any]:
        out = {"setting": self.setting, "n_rounds": self.n_rounds, "alpha": self.alpha, "targets": self.targets,
               "records": [asdict(r) for r in self.records]}
        if self.sensitivity is not None:
            out["sensitivity"] = self.sensitivity.to_dict()
        return out

    def to_json(self, path: str | Path) -> Path:
        """Write the result as an ``ope`` result file (:mod:`recsim_causal.results`)."""
        from recsim_causal.results import write_result

        return write_result(path, "ope", self.to_dict())

    def plot(self, path: str | Path, title: str = "OPE estimates vs the truth") -> Path:
        """Estimates with their intervals (and the truth where known), as a PNG."""
        from recsim_causal.plots import errorbar_plot

        rs = self.records
        labels = [f"{r.target} / {r.estimator}" + ("" if r.interval_valid else " (invalid CI)") for r in rs]
        lows = [r.estimate if r.ci_low is None else r.ci_low for r in rs]
        highs = [r.estimate if r.ci_high is None else r.ci_high for r in rs]
        truth = [r.truth for r in rs] if rs and all(r.truth is not None for r in rs) else None
        return errorbar_plot(labels, [r.estimate for r in rs], lows, highs, path, xlabel="policy value", title=title,
                             truth=truth)

    @classmethod
    def from_blocks(cls, blocks: dict[str, dict], *, setting: str = "one_item", alpha: float = 0.05,
                    n_rounds: int | None = None) -> "OPEResult":
        """An OPEResult from per-target blocks as :func:`evaluate_target` (one item) or
        :func:`target_block` (slates, sessions) make them."""
        records = []
        for name, block in blocks.items():
            for est, r in block["estimators"].items():
                records.append(OPERecord(
                    target=name, estimator=est, estimate=r["estimate"], ci_low=r.get("ci_low"), ci_high=r.get("ci_high"),
                    interval_method=r.get("interval_method", ""), interval_valid=bool(r.get("interval_valid", False)),
                    invalid_reason=r.get("invalid_reason"), truth=block.get("truth"), error=r.get("error"),
                    covers=r.get("covers")))
        if n_rounds is None:
            n_rounds = next((b["diagnostics"].get("n_rounds", 0) for b in blocks.values() if "diagnostics" in b), 0)
        return cls(records, blocks, setting, int(n_rounds), alpha)


# ------------------------------------------------------------------------------- evaluate
def _feedback_of(log: Any) -> tuple[LoggedFeedback, World | None]:
    if isinstance(log, SimulatedLog):
        return log.feedback, log.world
    if isinstance(log, LoggedFeedback):
        return log, None
    raise ValueError(f"log: expected a SimulatedLog, a LoggedFeedback or a Parquet path, got {type(log).__name__}")


def _targets(log: Any, feedback: LoggedFeedback, targets: Any, seed: int, train_rounds: int | None) -> dict[str, Any]:
    """``{label: Policy}``: a SimulatedLog trains names and mappings in its world; a bare log
    instantiates them untrained (a Policy object is always used as given)."""
    if isinstance(log, SimulatedLog):
        rounds = log.train_rounds if train_rounds is None else train_rounds
        return train_targets(targets, log.world, seed=log.seed, train_rounds=rounds)
    return {label: make_agent(spec, n_actions=feedback.n_actions, dim=feedback.dim_context, seed=seed + 1 + i,
                              where=f"targets[{i}]")
            for i, (label, spec) in enumerate(resolve_agents(targets, where="targets").items())}


def _estimators(estimators: Any) -> list[BaseOffPolicyEstimator]:
    if estimators is None:
        estimators = DEFAULT_ESTIMATORS
    if isinstance(estimators, (str, BaseOffPolicyEstimator)):
        estimators = [estimators]
    ests = [make_estimator(e, f"estimators[{i}]") for i, e in enumerate(estimators)]
    if len({e.estimator_name for e in ests}) < len(ests):
        raise ValueError("estimators: two estimators share a name (give each its own estimator_name)")
    return ests


def _evaluate_parquet(path: Path, targets: Any, estimators: Any, *, ci: Any, alpha: float, reward_model: Any,
                      seed: int, n_bootstrap_samples: int, reward_features: str, fit_rows: int,
                      batch_rows: int, p_e_a: Any = None) -> OPEResult:
    """:func:`evaluate` of a Parquet log: targets must be Policy objects or build without a
    world (untrained); one streamed pass (:mod:`recsim_causal.ope.stream`). A log that says it
    is confounded (``metadata.confounded``, as :func:`~recsim_causal.ope.simulate.write_simulated_log` records) gets no
    valid interval."""
    from recsim_causal.data.parquet import read_meta

    from .stream import evaluate_stream

    if not path.exists():
        raise ValueError(f"log: no such file or directory '{path}'")
    meta = read_meta(path)
    dim = int(meta["shapes"]["context"][1])
    policies = {label: make_agent(spec, n_actions=int(meta["n_actions"]), dim=dim, seed=seed + 1 + i,
                                  where=f"targets[{i}]")
                for i, (label, spec) in enumerate(resolve_agents(targets, where="targets").items())}
    blocks, _ = evaluate_stream(path, policies, _estimators(estimators), methods=interval_methods(ci), alpha=alpha, seed=seed,
                                n_bootstrap_samples=n_bootstrap_samples, reward_model=reward_model,
                                reward_features=reward_features, fit_rows=fit_rows, batch_rows=batch_rows,
                                p_e_a=p_e_a, confounded=bool(meta["metadata"].get("confounded", False)))
    return OPEResult.from_blocks(blocks, setting="one_item", alpha=alpha)


def evaluate(log: Any, targets: Any, estimators: Any = None, *, ci: str | Sequence[str] = "bootstrap",
             alpha: float = 0.05, reward_model: Any = "logistic", seed: int = 0, n_bootstrap_samples: int = 1000,
             n_folds: int = 2, reward_features: str = "cross", train_rounds: int | None = None,
             fit_rows: int = 100_000, batch_rows: int = 1 << 16, sensitivity: Mapping | None = None,
             **options: Any) -> OPEResult:
    """Estimate every target's value with every estimator.

    Parameters
    ----------
    log: a :class:`SimulatedLog` (truth known), a :class:`LoggedFeedback` (truth known if it
        has ``expected_reward``) or a path to a Parquet log (a file or a directory of files).
        The setting is read from the log: one item per row, slates (rows with ``slate_id``,
        :mod:`recsim_causal.ope.slate_log`) or sessions (rows with ``trajectory_id``,
        :mod:`recsim_causal.ope.session_log`); every setting returns the same
        :class:`OPEResult`, every record with ``interval_valid`` and its reason.
    targets: Policy objects, agent names (conf/agent), mappings with ``_target_`` and an
        optional ``name``, a list of those, or ``{label: spec}``. On a SimulatedLog names and
        mappings are trained online in its world (``train_rounds``, default: the logger's).
    estimators: names (``ESTIMATORS``: dm, ipw (ips), snipw (snips), dr, sndr, switch-dr, ...)
        or estimator objects; default ``DEFAULT_ESTIMATORS``. Slates: sips, iips, rips, snsips,
        sniips, snrips, cascade-dr; sessions: dm, tis, pdis, sntis, snpdis, dr, sndr, mis, mdr
        (default: all of the setting's).
    ci: the interval method (bootstrap, normal, bernstein, hoeffding) or a list (the first is
        the records'; every one is in ``targets[...]["estimators"][...]["intervals"]``).
    alpha: 1 - the intervals' level.
    reward_model: for DM/DR-type estimators: a base model name (logistic, ridge, mlp; fitted
        cross-fitted with ``n_folds``), or the predictions q-hat (n, K) or (n, K, 1).
    seed: seeds the reward model's folds, the bootstrap and untrained targets.
    reward_features: "cross" (context x the world's item features; "interaction" without a
        world), "interaction" (per action) or "concat" (see ``RegressionModel``).
    fit_rows, batch_rows: a Parquet ``log`` (a file or a directory of files) is read in one
        streamed pass of ``batch_rows`` rows, in memory flat in its length: the IPS, SNIPS and
        DR families, intervals from streamed sums (normal, Bernstein, Hoeffding; the bootstrap
        by Poisson(1) multipliers). A ``reward_model`` name is then fitted on the log's first
        ``fit_rows`` rows, and every estimator evaluates the rows after them; or pass a fitted
        model (``predict(context)``) or a function context -> q-hat (n, K). MIPS and SNMIPS
        run on a Parquet log given ``p_e_a``.
    sensitivity: bounds on every target's value if the logger saw a hidden confounder
        (:mod:`recsim_causal.ope.sensitivity`): ``{gammas, pairs, estimator, method,
        n_bootstrap_samples}``, any subset (``{}``: the defaults). On a confounded SimulatedLog
        the logger's true Gamma* joins the grid. The report is ``result.sensitivity``.
    options: the setting's own. One item: ``context_weight``, (n,) weights w(x_i) =
        p_target(x_i) / p_log(x_i) of the logged contexts (a covariate shift:
        :func:`recsim_causal.ope.shift.context_density_ratio`): every estimator weights round i
        by it and estimates the value for the target contexts; the intervals hold the weights
        fixed, the truth stays the logged users' value; ``p_e_a``, MIPS's action embedding on a
        Parquet log, p(e_d = c | a) of shape (K, n_cat, n_dim), deterministic
        (:func:`~recsim_causal.ope.estimators.p_e_a_from_clusters`; a SimulatedLog's MIPS uses
        its catalog's item clusters). Slates: ``truth_slates``. Sessions:
        ``gamma``, ``fqe``, ``weight_ridge``, ``weight_refits``, ``truth_trajectories`` (see
        their modules).
    """
    return EVALUATORS[setting_of_log(log)](
        log, targets, estimators, ci=ci, alpha=alpha, reward_model=reward_model, seed=seed,
        n_bootstrap_samples=n_bootstrap_samples, n_folds=n_folds, reward_features=reward_features,
        train_rounds=train_rounds, fit_rows=fit_rows, batch_rows=batch_rows, sensitivity=sensitivity, **options)


def setting_of_log(log: Any) -> str:
    """The setting of a SimulatedLog, a LoggedFeedback or a Parquet path (from its columns)."""
    if isinstance(log, (str, Path)):
        if not Path(log).exists():
            raise ValueError(f"log: no such file or directory '{log}'")
        return read_setting(log)
    return _feedback_of(log)[0].setting


def _evaluate_one_item(log: Any, targets: Any, estimators: Any = None, *, ci: str | Sequence[str] = "bootstrap",
                       alpha: float = 0.05, reward_model: Any = "logistic", seed: int = 0, n_bootstrap_samples: int = 1000,
                       n_folds: int = 2, reward_features: str = "cross", train_rounds: int | None = None,
                       fit_rows: int = 100_000, batch_rows: int = 1 << 16, sensitivity: Mapping | None = None,
                       context_weight: Any = None, p_e_a: Any = None, **options: Any) -> OPEResult:
    """:func:`evaluate` of a one-item log (in memory, or a Parquet path in one streamed pass)."""
    no_options(options, "one-item logs")

    if isinstance(log, (str, Path)):  # a Parquet file or directory: one streamed pass
        if context_weight is not None:
            raise ValueError("context_weight: needs the log in memory (recsim_causal.data.load_parquet(path) or a "
                             "SimulatedLog), not a streamed Parquet path")
        if sensitivity is not None:
            raise ValueError("sensitivity: needs the log in memory (recsim_causal.data.load_parquet(path) or a "
                             "SimulatedLog), not a streamed Parquet path")
        return _evaluate_parquet(Path(log), targets, estimators, ci=ci, alpha=alpha, reward_model=reward_model,
                                 seed=seed, n_bootstrap_samples=n_bootstrap_samples,
                                 reward_features=reward_model_features(reward_features, None)[0],  # no item features
                                 fit_rows=fit_rows, batch_rows=batch_rows, p_e_a=p_e_a)
    feedback, world = _feedback_of(log)
    methods, ests = interval_methods(ci), _estimators(estimators)
    by_name = {e.estimator_name: e for e in ests}
    policies = _targets(log, feedback, targets, seed, train_rounds)
    n, K = feedback.n_rounds, feedback.n_actions
    arrays: dict[str, Any] = dict(reward=feedback.reward, action=feedback.action, pscore=feedback.pscore)
    if feedback.action_dist is not None:
        arrays["pi_b"] = feedback.action_dist
    if context_weight is not None:
        if sensitivity is not None:
            raise ValueError("context_weight: the sensitivity bounds do not take context weights; pass one of the two")
        arrays["context_weight"] = context_weight
    sens = None if sensitivity is None else check_config(sensitivity, "sensitivity", list(policies))
    binary = bool(np.isin(feedback.reward, (0.0, 1.0)).all())
    wants_q = sens is not None and sens["method"] != "zsb" and binary
    q = None
    if any(e.kind in ("dm", "dr") for e in ests) or (wants_q and reward_model is not None):
        if reward_model is None:
            raise ValueError("reward_model: DM and DR need a reward model (a base model name or q-hat (n, K))")
        if isinstance(reward_model, str):
            features, action_context = reward_model_features(reward_features, world)
            q = fit_predict(feedback.context, feedback.action, feedback.reward, K, base_model=reward_model,
                            features=features, action_context=action_context, n_folds=n_folds, random_state=seed)
        else:
            q = np.asarray(reward_model, dtype=np.float64)
            q = q[:, :, None] if q.ndim == 2 else q
            if q.shape[:2] != (n, K):
                raise ValueError(f"reward_model: expected q-hat of shape ({n}, {K}) or ({n}, {K}, 1), got {q.shape}")
        if any(e.kind in ("dm", "dr") for e in ests):
            arrays["estimated_rewards_by_reg_model"] = q
    if any(isinstance(e, MIPS) for e in ests):
        if world is None:
            raise ValueError("estimators: MIPS needs the items' clusters (a SimulatedLog's catalog topics)")
        topic = world.catalog.topic
        arrays.update(action_embed=topic[feedback.action][:, None], p_e_a=p_e_a_from_clusters(topic))
    if world is not None:
        bounds, confounded = reward_range(world), world.is_confounded
    else:
        bounds, confounded = ((0.0, 1.0) if binary and feedback.action_dist is not None else None), False
    ci_cfg = {"method": methods, "alpha": alpha, "n_bootstrap_samples": n_bootstrap_samples}
    blocks, dists = {}, {}
    for name, policy in policies.items():
        action_dist = dists[name] = policy.action_probs(feedback.context)
        validate_policy_output(policy, len(action_dist), probs=action_dist)
        truth = policy_value(action_dist, feedback.expected_reward) if feedback.expected_reward is not None else None
        blocks[name] = evaluate_target(name, by_name, arrays, action_dist, ci=ci_cfg, seed=seed, reward_bounds=bounds,
                                       truth=truth, confounded=confounded)
    result = OPEResult.from_blocks(blocks, setting="one_item", alpha=alpha)
    if sens is not None:
        oracle = getattr(log, "oracle", None)
        result.sensitivity = sensitivity_analysis(
            feedback, dists, sens["gammas"], pairs=sens["pairs"], estimated_rewards=q if wants_q else None,
            pi_b_full=getattr(oracle, "pi_b_full", None), truths={k: b["truth"] for k, b in blocks.items()},
            estimator=sens["estimator"], method=sens["method"], n_bootstrap_samples=sens["n_bootstrap_samples"],
            alpha=alpha, random_state=seed)
    return result


#: setting -> its evaluation ``(log, targets, estimators, **evaluate's options) -> OPEResult``;
#: slates and sessions register theirs (:mod:`recsim_causal.ope.slate_log`,
#: :mod:`recsim_causal.ope.session_log`).
EVALUATORS: dict[str, Any] = {"one_item": _evaluate_one_item}
