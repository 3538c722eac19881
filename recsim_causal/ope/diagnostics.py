"""Overlap diagnostics of importance weights: can an off-policy estimate be trusted?

Every OPE estimate travels with these numbers (architecture, principle 8):

* ``ess``: effective sample size of the weights, (sum w)^2 / sum w^2 (Kong 1992; Owen 2013,
  ch. 9), and ``ess_ratio`` = ess / n. Equal weights give n; one dominant weight gives ~1.
  With too small an ESS weight-based estimates hang on a handful of rows and their intervals
  (bootstrap, normal) under-cover: how small is the calibrated rule's (:data:`VALIDITY`).
* ``max_weight``: the largest importance weight w = pi_e(a|x) / pi_b(a|x).
* ``n_rounds``: rows (or trajectories) the weights come from.
* ``low_support_share``: the share of the target's probability mass on actions whose
  logged pscore pi_b(a|x) is below 1/(10 K): where the logger rarely acts. Exact from the
  logger's full distribution ``pi_b``; without it, estimated from the logged rows as
  mean(w 1{pscore < 1/(10K)}), which cannot see actions the logger never took
  (``low_support_source`` says which). A fact, not a verdict: a logger exploring with
  epsilon 0.05 over K items gives every action but its greedy one pi_b = 0.05 / K, so 99% of
  a uniform target's mass is there, and those intervals cover (the calibration grid; the
  rule reads the ESS, which prices this in, and needed no limit on this share).
* ``pscore_one_share``: the share of rows whose pscore is 1: a (near-)deterministic
  logger, whose log says nothing about the other actions.
* ``expected_ess_ratio`` (with the logger's full distribution ``pi_b``): 1 / E[w^2], the
  ESS share the weights have in expectation over the logger's draws,
  E[w^2] = mean_i sum_a pi_e(a|x_i)^2 / pi_b(a|x_i) (0 when the target puts mass where
  pi_b is 0), and ``expected_ess`` = n x that. Unlike the ESS of the logged weights it
  does not look healthy when a target's heavy tail happens not to be drawn, so the
  validity rule reads it when it is there. ``support_max_weight``: max over the logged
  contexts and all actions of pi_e / pi_b (the largest weight the logger could produce).

:func:`weight_diagnostics` works for one-item weights, slate weights and trajectory weights
alike (one weight per independent unit); :func:`overlap_diagnostics` adds the support
numbers for one-item logs. :func:`row_verdict` judges one result row's interval by one rule
(the calibrated thresholds of ``validity.json`` and the fixed :data:`MIN_ROUNDS`,
:data:`MAX_PSCORE_ONE_SHARE`, :data:`MAX_MEAN_WEIGHT_Z`); :func:`verdict_warnings` turns the
rows this log makes invalid into ``WARNING ...`` lines that repeat their reasons, so a
WARNING always goes with a row marked invalid and says which quantity crossed which limit.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

#: Limits of the validity rule that hold for every interval method (the weight limits are
#: calibrated: :func:`validity_thresholds`): fewer rows, or more rows with pscore 1, and no
#: interval is valid.
MIN_ROUNDS = 100
MAX_PSCORE_ONE_SHARE = 0.5
#: an importance weight's mean is 1 under the logger; a sample mean this many standard errors away
#: says the target's likely units are missing from the log (:func:`mean_weight_check`)
MAX_MEAN_WEIGHT_Z = 3.0
#: pscore at or above this counts as 1 (a deterministic logger's rows).
PSCORE_ONE = 1.0 - 1e-9
#: Where scripts/calibrate_validity.py writes the thresholds it chose from the coverage grid.
CALIBRATION_FILE = Path(__file__).with_name("validity.json")


#: The estimator families whose bootstrap and normal intervals the calibration judges, by
#: ``estimator.kind``: weighted rewards (IPS, SNIPS, ...) and doubly robust (DR, SNDR, ...).
FAMILIES = ("ipw", "dr")
#: Which ESS the rule reads: the weights' ESS on the log ("logged"), the expected ESS from the
#: full distributions ("expected"; the logged one where the diagnostics lack it) or the
#: smaller of the two ("min").
ESS_SOURCES = ("logged", "expected", "min")


def validity_thresholds(path: Path = CALIBRATION_FILE) -> dict[str, dict[str, Any]]:
    """{family: thresholds} of bootstrap and normal intervals' validity
    (:func:`interval_validity`), one set per estimator family (:data:`FAMILIES`):
    ``ess_source`` (:data:`ESS_SOURCES`), ``min_ess_ratio``, ``min_ess``, ``max_weight``,
    ``max_low_support_share``, as calibrated on the coverage grid by
    scripts/calibrate_validity.py (``validity.json``; docs/trust.md shows the grid and the
    coverage reached). The file is the only source of these limits: a null limit in it means
    no limit; a null family (no rule of the grid reached the target coverage), or a family the
    file lacks, has no valid bootstrap or normal interval (``never``)."""
    out: dict[str, dict[str, Any]] = {f: {"calibrated": False, "never": True} for f in FAMILIES}
    calibrated = (json.loads(path.read_text()).get("thresholds") or {}) if path.is_file() else {}
    for family, th in calibrated.items():
        if family not in out:
            continue
        out[family] = {"calibrated": True, "never": th is None}
        for key, v in (th or {}).items():
            out[family][key] = v if key == "ess_source" else (math.inf if v is None else float(v))
    return out


VALIDITY = validity_thresholds()


def weight_diagnostics(weights: np.ndarray) -> dict[str, float]:
    """ESS, ESS / n and the max weight of one weight per independent unit (row or trajectory).

    Args:
        weights: (n,) non-negative importance weights.
    Returns:
        ``{"n_rounds", "ess", "ess_ratio", "max_weight"}`` (ESS is 0 when every weight is 0).
    """
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    n = len(w)
    s, s2 = float(w.sum()), float(np.dot(w, w))
    ess = s * s / s2 if s2 > 0 else 0.0
    return {"n_rounds": n, "ess": ess, "ess_ratio": ess / n if n else 0.0,
            "max_weight": float(w.max()) if n else 0.0}


def mean_weight_check(weights: np.ndarray) -> dict[str, Any]:
    """The mean of weights whose expectation under the logger is 1 (trajectory weights, or
    per-decision weights w_{0:t} over all trajectories, ended ones carrying their last weight).

    ESS cannot see a target whose likely trajectories the log lacks: the logged weights are then
    all tiny, their ESS can be large and their mean is far below 1. ``weights`` (n,) or (n, T)
    (one column per step). Returns ``mean_weight`` and ``mean_weight_z`` = (mean - 1) / s.e. at
    the step whose z is largest in size (``mean_weight_at``), and ``step_mean_weight`` per step
    for (n, T). z is finite: a zero spread gives s.e. 1e-12."""
    w = np.asarray(weights, np.float64)
    cols = w.reshape(len(w), -1)
    n = cols.shape[0]
    if n == 0:
        return {"mean_weight": 0.0, "mean_weight_z": 0.0}
    means = cols.mean(axis=0)
    se = np.maximum(cols.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else np.zeros_like(means), 1e-12)
    z = (means - 1.0) / se
    at = int(np.argmax(np.abs(z)))
    out: dict[str, Any] = {"mean_weight": float(means[at]), "mean_weight_z": float(z[at])}
    if w.ndim == 2:
        out.update(mean_weight_at=at, step_mean_weight=[float(m) for m in means])
    return out


def overlap_diagnostics(weights: Any, pscore: Any, n_actions: int, *, action_dist: Any = None,
                        pi_b: Any = None) -> dict[str, Any]:
    """:func:`weight_diagnostics` plus the support numbers of a one-item log.

    Args:
        weights: (n,) w_i = pi_e(a_i|x_i) / pscore_i.
        pscore: (n,) the logged pscores.
        n_actions: K (the support threshold is 1 / (10 K)).
        action_dist: (n, K) the target pi_e(.|x_i), with ``pi_b`` (n, K) the logger's
            distribution: then ``low_support_share`` is exact.
    Returns:
        weight_diagnostics' keys + ``low_support_share``, ``low_support_source``
        ("pi_b" | "logged rows"), ``pscore_one_share``.
    """
    out: dict[str, Any] = weight_diagnostics(weights)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    ps = np.asarray(pscore, dtype=np.float64).reshape(-1)
    threshold = 1.0 / (10.0 * n_actions)
    if action_dist is not None and pi_b is not None:
        pe, pb = np.asarray(action_dist), np.asarray(pi_b)
        pe, pb = pe.reshape(pe.shape[0], -1), pb.reshape(pb.shape[0], -1)
        out["low_support_share"] = float(np.where(pb < threshold, pe, 0.0).sum(axis=1).mean()) if len(pe) else 0.0
        out["low_support_source"] = "pi_b"
        out.update(expected_weight_diagnostics(len(pe), *weight_moments(pe, pb)))
    else:
        # an estimate of a share: capped at 1 (tiny pscores give huge weights)
        out["low_support_share"] = min(1.0, float(np.mean(w * (ps < threshold)))) if len(w) else 0.0
        out["low_support_source"] = "logged rows"
    out["pscore_one_share"] = float(np.mean(ps >= PSCORE_ONE)) if len(ps) else 0.0
    return out


def weight_moments(action_dist: Any, pi_b: Any) -> tuple[float, float]:
    """(sum over rows of E[w^2 | x_i] = sum_a pi_e(a|x_i)^2 / pi_b(a|x_i), max over rows and
    actions of pi_e / pi_b), both inf when the target puts mass where pi_b is 0."""
    pe, pb = np.asarray(action_dist, np.float64), np.asarray(pi_b, np.float64)
    pe, pb = pe.reshape(pe.shape[0], -1), pb.reshape(pb.shape[0], -1)
    if np.any((pb <= 0) & (pe > 0)):
        return math.inf, math.inf
    ratio = np.divide(pe, pb, out=np.zeros_like(pe), where=pb > 0)
    return float((ratio * pe).sum()), float(ratio.max(initial=0.0))


def expected_weight_diagnostics(n: int, second: float, support_max: float) -> dict[str, float]:
    """``expected_ess_ratio``, ``expected_ess`` and ``support_max_weight`` of ``n`` rows from
    :func:`weight_moments` (summed over batches; see the module doc)."""
    share = n / second if n and 0 < second < math.inf else 0.0
    return {"expected_ess_ratio": share, "expected_ess": n * share, "support_max_weight": support_max}


class Verdict(NamedTuple):
    """An interval's validity: ``reason`` (None when valid), and ``of_log``: whether the reason is
    a fact of this log (its diagnostics past the rule's limits, confounding, all weights 0)
    rather than of the estimator and method (DM, clipping, an assumption it cannot check),
    which are invalid whatever the log."""

    valid: bool
    reason: str | None = None
    of_log: bool = False


VALID = Verdict(True)
CONFOUNDED = "confounded log: the pscore is P(a|x), the logger also used a signal the log lacks"


def estimator_reason(estimator: Any, method: str, *, reward_bounded: bool = True) -> str | None:
    """Why ``estimator``'s ``method`` interval is not a confidence interval for V(pi_e) on any
    log, or None: DM's (the reward model's bias is not in it), MIPS's (it assumes no direct
    effect of the action beyond its embedding), clipped, shrunk or SLOPE-tuned estimators'
    (their bias by design is not in it), a family without a calibrated rule (bootstrap and
    normal), finite-sample bounds without an a priori reward range.
    ``estimator`` is duck-typed: ``kind`` ("dm" | "ipw" | "dr"), ``effective_max_weight``."""
    kind = getattr(estimator, "kind", "ipw")
    if kind == "dm":
        return "holds the reward model fixed: the model's bias is not in the interval"
    if "Marginalized" in type(estimator).__name__:
        return "assumes the reward depends on the action only through its embedding"
    if getattr(estimator, "lambda_", None) == "auto":
        return "lambda chosen from the data (SLOPE): the interval ignores the choice and the clipping bias"
    big = 1e300
    if getattr(estimator, "effective_max_weight", lambda w: w)(big) < big:
        return "clipped or shrunk weights: the estimator's bias is not in the interval"
    if method in ("bernstein", "hoeffding"):
        return None if reward_bounded else "no a priori reward range: the bound's guarantee needs one"
    th = VALIDITY.get(kind, VALIDITY["ipw"])
    if th.get("never"):
        if th["calibrated"]:
            return (f"no rule of the coverage calibration gives {kind.upper()}-family {method} intervals their "
                    "target coverage (docs/trust.md)")
        return f"no calibrated validity rule for the {kind.upper()} family in {CALIBRATION_FILE.name}"
    return None


def _ess_reason(diag: dict[str, Any], th: dict[str, Any], method: str) -> str | None:
    ess, ratio, source = rule_ess(diag, th["ess_source"])
    if ess is None:
        return None
    low, thin = ess < th["min_ess"], ratio < th["min_ess_ratio"]
    if not (low or thin):
        return None
    at = f" at {diag.get('ess_column', 'step')} {diag['ess_at']}" if "ess_at" in diag else ""
    share = f"{100 * float(ratio):.2f}% of n = {diag.get('n_rounds', 0):,}{at}"
    if low and thin:
        crossed = (f"< {th['min_ess']:,.0f} and its share {share} < {100 * th['min_ess_ratio']:.2f}%, "
                   "the calibrated minimums")
    elif low:
        crossed = f"< {th['min_ess']:,.0f}, the calibrated minimum ({share})"
    else:
        crossed = f"is {share} < {100 * th['min_ess_ratio']:.2f}%, the calibrated minimum share"
    return f"{source} effective sample size {float(ess):,.1f} {crossed}: {method} intervals under-cover"


def log_reason(kind: str, method: str, diag: dict[str, Any]) -> str | None:
    """Why this log's diagnostics ``diag`` rule out a ``kind``-family (:data:`FAMILIES`)
    ``method`` interval, or None; the reason names the quantity, its value and the limit.
    Every method: too few rounds, a near-deterministic logger. Bootstrap and normal intervals
    (the finite-sample bounds keep their guarantee): a mean weight far from 1 (trajectories the
    log lacks), then the family's calibrated limits (:func:`validity_thresholds`) on the ESS
    it reads (:func:`rule_ess`), the max weight and the low-support mass."""
    if diag.get("n_rounds", MIN_ROUNDS) < MIN_ROUNDS:
        return f"too few rounds ({diag['n_rounds']} < {MIN_ROUNDS})"
    if diag.get("pscore_one_share", 0.0) > MAX_PSCORE_ONE_SHARE:
        return (f"near-deterministic logger: {100 * diag['pscore_one_share']:.1f}% of rows have pscore 1 (more than "
                f"{100 * MAX_PSCORE_ONE_SHARE:.0f}%): the log says nothing about the other actions")
    if method in ("bernstein", "hoeffding"):
        return None
    if abs(diag.get("mean_weight_z", 0.0)) > MAX_MEAN_WEIGHT_Z:
        at = f" at step {diag['mean_weight_at']}" if "mean_weight_at" in diag else ""
        return (f"mean weight {diag['mean_weight']:.3g}{at} is {abs(diag['mean_weight_z']):,.1f} standard errors "
                f"from 1 (more than {MAX_MEAN_WEIGHT_Z:g}), its expectation under the logger: the target's likely "
                f"trajectories are missing from the log, {method} intervals miss")
    th = VALIDITY.get(kind, VALIDITY["ipw"])
    if th.get("never"):
        return None
    reason = _ess_reason(diag, th, method)
    if reason:
        return reason
    mw = diag.get("max_weight", 0.0)
    if mw > th["max_weight"]:
        shown = f"{mw:,.1f}" if mw < 1e6 else f"{mw:.3g}"
        return f"max weight {shown} > {th['max_weight']:,.0f}, the calibrated maximum: {method} intervals under-cover"
    if diag.get("low_support_share", 0.0) > th["max_low_support_share"]:
        return (f"{100 * diag['low_support_share']:.1f}% of the target's mass is on actions the logger takes with "
                f"probability < 1/(10K) ({diag.get('low_support_source', 'pi_b')}) > "
                f"{100 * th['max_low_support_share']:.1f}%, the calibrated maximum: {method} intervals under-cover")
    return None


def interval_verdict(estimator: Any, method: str, diag: dict[str, Any], *, confounded: bool = False,
                     reward_bounded: bool = True) -> Verdict:
    """Can ``estimator``'s ``method`` interval be read as a confidence interval for V(pi_e)?

    Not on a confounded log (pscores are P(a|x): the estimate is biased by the confounding);
    not where :func:`estimator_reason` says the estimator or method never gives one; not where
    :func:`log_reason` says this log's diagnostics rule it out."""
    if confounded:
        return Verdict(False, CONFOUNDED, True)
    reason = estimator_reason(estimator, method, reward_bounded=reward_bounded)
    if reason:
        return Verdict(False, reason)
    reason = log_reason(getattr(estimator, "kind", "ipw"), method, diag)
    return Verdict(False, reason, True) if reason else VALID


def interval_validity(estimator: Any, method: str, diag: dict[str, Any], *, confounded: bool = False,
                      reward_bounded: bool = True) -> tuple[bool, str | None]:
    """:func:`interval_verdict` as ``(True, None)`` or ``(False, reason)``."""
    return interval_verdict(estimator, method, diag, confounded=confounded, reward_bounded=reward_bounded)[:2]


def rule_ess(diag: dict[str, Any], source: str) -> tuple[Any, Any, str]:
    """(ESS, ESS share, which) the validity rule reads from ``diag`` for ``source``
    (:data:`ESS_SOURCES`); (None, None, ..) when the diagnostics carry no ESS. Elementwise
    when the diagnostics are arrays (the calibration's replications)."""
    if "ess" not in diag:
        return None, None, "logged"
    logged = (diag["ess"], diag.get("ess_ratio", 1.0))
    if source == "logged" or "expected_ess" not in diag:
        return *logged, "logged"
    expected = (diag["expected_ess"], diag["expected_ess_ratio"])
    if source == "expected":
        return *expected, "expected"
    return np.minimum(logged[0], expected[0]), np.minimum(logged[1], expected[1]), "smaller of the logged and expected"


def per_unit_ess(weights: np.ndarray, alive: np.ndarray | None = None, column: str = "step") -> dict[str, Any]:
    """Diagnostics of weights that multiply one reward per step or slot: ``weights`` (n, T),
    column t the weights of the units' rewards at step (or position) t, ``alive`` (n, T) which
    units have a reward there. ``ess`` and ``ess_ratio`` are the smallest over the columns
    (ratio to the units alive there), at column ``ess_at`` (a ``column``: "step" or
    "position", as ``ess_column``), ``step_ess`` all of them; ``max_weight`` over live cells."""
    w = np.asarray(weights, np.float64)
    on = np.ones(w.shape, bool) if alive is None else np.asarray(alive, bool)
    ess, ratio = [], []
    for t in range(w.shape[1]):
        d = weight_diagnostics(w[on[:, t], t])
        if d["n_rounds"]:
            ess.append(d["ess"])
            ratio.append(d["ess_ratio"])
    t_min = int(np.argmin(ess)) if ess else 0
    return {"n_rounds": int(w.shape[0]), "ess": float(ess[t_min]) if ess else 0.0,
            "ess_ratio": float(ratio[t_min]) if ess else 0.0, "ess_at": t_min, "ess_column": column,
            "step_ess": [float(e) for e in ess],
            "max_weight": float(w[on].max(initial=0.0))}


def row_verdict(estimator: Any, method: str, diag: dict[str, Any], estimate: Any, **kw: Any) -> Verdict:
    """:func:`interval_verdict` for one result row, after two checks every setting shares: an
    estimate that is not a finite number (e.g. a self-normalized estimator whose weights are
    all 0: the target never takes what the logger logged) and an estimator's own
    ``interval_caveat`` (an assumption about the world its interval cannot check)."""
    if estimate is None or not np.isfinite(float(estimate)):
        if diag.get("ess", 1.0) == 0.0:
            return Verdict(False, "estimate undefined: every importance weight is 0 (the target never takes what "
                           "was logged)", True)
        return Verdict(False, "estimate undefined: not a finite number", True)
    caveat = getattr(estimator, "interval_caveat", None)
    if caveat:
        return Verdict(False, caveat)
    return interval_verdict(estimator, method, diag, **kw)


def validity_rows(estimators: dict[str, Any], diagnostics: dict[str, dict[str, Any]], estimates: dict[str, Any],
                  method: str, *, shared: dict[str, Any] | None = None, **kw: Any) -> dict[str, dict[str, Any]]:
    """{name: {"interval_valid", "invalid_reason", "diagnostics", "verdict"}} for every estimator
    of a slate or session result: :func:`row_verdict` on its own weights' diagnostics
    (``diagnostics[name]``) merged with the numbers all rows share (``shared``: support,
    pscore-one share); ``verdict`` (the :class:`Verdict`) is for :func:`verdict_warnings` and
    stays out of result rows (:data:`ROW_ONLY`)."""
    out = {}
    for name, est in estimators.items():
        diag = {**(shared or {}), **diagnostics[name]}
        v = row_verdict(est, method, diag, estimates.get(name), **kw)
        out[name] = {"interval_valid": v.valid, "invalid_reason": v.reason, "diagnostics": diag, "verdict": v}
    return out


#: keys of :func:`validity_rows`' entries that are not written into result rows
ROW_ONLY = ("verdict",)


def verdict_warnings(who: str, verdicts: dict[str, Verdict], method: str) -> list[str]:
    """``WARNING`` lines for the rows of target ``who`` that this log makes invalid
    (``verdicts``: {estimator: :class:`Verdict`} of its ``method`` intervals): one line per
    reason, naming the estimators it holds for. Rows the estimator's design makes invalid (DM,
    clipping, ...) say why in their ``invalid_reason`` only; valid rows get no line."""
    by_reason: dict[str, list[str]] = {}
    for name, v in verdicts.items():
        if not v.valid and v.of_log:
            by_reason.setdefault(v.reason, []).append(name)
    return [f"WARNING {who}: {', '.join(names)} ({method}) not valid: {reason}" for reason, names in by_reason.items()]


def is_reliable(diag: dict[str, Any]) -> bool:
    """True when this log's diagnostics rule out no family's bootstrap interval
    (:func:`log_reason` for every family of :data:`FAMILIES`)."""
    return all(log_reason(family, "bootstrap", diag) is None for family in FAMILIES)
