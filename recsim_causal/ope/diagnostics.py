"""Overlap diagnostics of importance weights: can an off-policy estimate be trusted?

Every OPE estimate travels with these numbers (architecture, principle 8):

* ``ess``: effective sample size of the weights, (sum w)^2 / sum w^2 (Kong 1992; Owen 2013,
  ch. 9), and ``ess_ratio`` = ess / n. Equal weights give n; one dominant weight gives ~1.
  Below ~100 (or 1% of n) weight-based estimates hang on a handful of rows and their
  intervals (bootstrap, normal) under-cover.
* ``max_weight``: the largest importance weight w = pi_e(a|x) / pi_b(a|x).
* ``n_rounds``: rows (or trajectories) the weights come from.
* ``low_support_share``: the share of the target's probability mass on actions whose
  logged pscore pi_b(a|x) is below 1/(10 K): where the logger (almost) never acts, so
  IPS-type estimators have (almost) no data. Exact from the logger's full distribution
  ``pi_b``; without it, estimated from the logged rows as mean(w 1{pscore < 1/(10K)}),
  which cannot see actions the logger never took (``low_support_source`` says which).
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
numbers for one-item logs. :func:`diagnostic_warnings` turns crossed thresholds into
``WARNING ...`` lines; :func:`is_reliable` says whether there were none.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

#: Thresholds past which an estimate is flagged (see :func:`diagnostic_warnings`).
MIN_ESS_RATIO = 0.01
MIN_ESS = 100.0
MIN_ROUNDS = 100
MAX_LOW_SUPPORT_SHARE = 0.01
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
    coverage reached); the fixed :data:`MIN_ESS_RATIO`, :data:`MIN_ESS` and
    :data:`MAX_LOW_SUPPORT_SHARE` on the logged ESS for a family the file does not
    calibrate. A null limit in the file means no limit; a null family (no rule of the grid
    reached the target coverage) marks the family's bootstrap and normal intervals invalid."""
    fixed = {"ess_source": "logged", "min_ess_ratio": MIN_ESS_RATIO, "min_ess": MIN_ESS, "max_weight": math.inf,
             "max_low_support_share": MAX_LOW_SUPPORT_SHARE, "calibrated": False}
    out = {f: dict(fixed) for f in FAMILIES}
    calibrated = (json.loads(path.read_text()).get("thresholds") or {}) if path.is_file() else {}
    for family, th in calibrated.items():
        if family not in out:
            continue
        if th is None:  # the calibration found no rule that covers: bootstrap and normal intervals never valid
            out[family].update(calibrated=True, never=True)
            continue
        for key, v in th.items():
            out[family][key] = v if key == "ess_source" else (math.inf if v is None else float(v))
        out[family]["calibrated"] = True
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


def diagnostic_warnings(diag: dict[str, float], who: str = "") -> list[str]:
    """``WARNING ...`` lines for an estimate whose diagnostics cross the module's thresholds."""
    where = f"{who}: " if who else ""
    out = []
    if diag.get("n_rounds", MIN_ROUNDS) < MIN_ROUNDS:
        out.append(f"WARNING {where}too few rounds ({diag['n_rounds']} < {MIN_ROUNDS}): intervals are not reliable")
    if "ess" in diag and (diag["ess"] < MIN_ESS or diag.get("ess_ratio", 1.0) < MIN_ESS_RATIO):
        out.append(f"WARNING {where}effective sample size {diag['ess']:,.1f} ({100 * diag.get('ess_ratio', 0):.2f}% of "
                   f"{diag.get('n_rounds', 0):,} rounds): weight-based estimates and their intervals are unreliable")
    if diag.get("low_support_share", 0.0) > MAX_LOW_SUPPORT_SHARE:
        out.append(f"WARNING {where}support: {100 * diag['low_support_share']:.1f}% of the target's mass is on actions "
                   f"the logger takes with probability < 1/(10K) ({diag.get('low_support_source', 'pi_b')}): "
                   "weight-based estimates miss or blow up there")
    if diag.get("pscore_one_share", 0.0) > MAX_PSCORE_ONE_SHARE:
        out.append(f"WARNING {where}near-deterministic logger: {100 * diag['pscore_one_share']:.1f}% of rows have "
                   "pscore 1: the log says nothing about the other actions")
    return out


def interval_validity(estimator: Any, method: str, diag: dict[str, Any], *, confounded: bool = False,
                      reward_bounded: bool = True) -> tuple[bool, str | None]:
    """Can ``estimator``'s ``method`` interval be read as a confidence interval for V(pi_e)?

    ``(True, None)`` or ``(False, reason)``. Invalid: any interval of a confounded log
    (pscores are P(a|x): the estimate is biased by the confounding); DM's (the reward
    model's bias is not in it; see the coverage report); MIPS's (it assumes no direct
    effect of the action beyond its embedding); clipped or shrunk estimators' (their
    bias by design is not in it); every interval when the diagnostics flag too few rounds
    or a near-deterministic logger; bootstrap and normal intervals when the effective
    sample size or the support is flagged (they under-cover there; the finite-sample
    bounds keep their guarantee; the thresholds: :func:`validity_thresholds`); finite-sample
    bounds without an a priori reward range.
    ``estimator`` is duck-typed: ``kind`` ("dm" | "ipw" | "dr"), ``effective_max_weight``.
    """
    kind = getattr(estimator, "kind", "ipw")
    if confounded:
        return False, "confounded log: the pscore is P(a|x), the logger also used a signal the log lacks"
    if kind == "dm":
        return False, "holds the reward model fixed: the model's bias is not in the interval"
    if "Marginalized" in type(estimator).__name__:
        return False, "assumes the reward depends on the action only through its embedding"
    if getattr(estimator, "lambda_", None) == "auto":
        return False, "lambda chosen from the data (SLOPE): the interval ignores the choice and the clipping bias"
    big = 1e300
    if getattr(estimator, "effective_max_weight", lambda w: w)(big) < big:
        return False, "clipped or shrunk weights: the estimator's bias is not in the interval"
    if diag.get("n_rounds", MIN_ROUNDS) < MIN_ROUNDS:
        return False, f"too few rounds ({diag['n_rounds']} < {MIN_ROUNDS})"
    if diag.get("pscore_one_share", 0.0) > MAX_PSCORE_ONE_SHARE:
        return False, "near-deterministic logger"
    if method in ("bernstein", "hoeffding"):
        if not reward_bounded:
            return False, "no a priori reward range: the bound's guarantee needs one"
        return True, None
    if abs(diag.get("mean_weight_z", 0.0)) > MAX_MEAN_WEIGHT_Z:
        at = f" at step {diag['mean_weight_at']}" if "mean_weight_at" in diag else ""
        return False, (f"mean weight {diag['mean_weight']:.3g}{at} is {abs(diag['mean_weight_z']):,.1f} standard errors "
                       f"from 1, its expectation under the logger: the target's likely trajectories are missing "
                       f"from the log, {method} intervals miss")
    th = VALIDITY.get(kind, VALIDITY["ipw"])
    if th.get("never"):
        return False, (f"no rule of the coverage calibration gives {kind.upper()}-family {method} intervals their "
                       "target coverage (docs/trust.md)")
    ess, ratio, source = rule_ess(diag, th["ess_source"])
    if ess is not None and (ess < th["min_ess"] or ratio < th["min_ess_ratio"]):
        how = "calibrated" if th["calibrated"] else "fixed"
        return False, (f"{source} effective sample size {float(ess):,.0f} ({100 * float(ratio):.2f}% of rounds; {how} minimum "
                       f"{th['min_ess']:,.0f} and {100 * th['min_ess_ratio']:.2f}%): {method} intervals under-cover")
    if diag.get("max_weight", 0.0) > th["max_weight"]:
        return False, f"max weight {diag['max_weight']:,.1f} > {th['max_weight']:,.0f} (calibrated): {method} intervals under-cover"
    if diag.get("low_support_share", 0.0) > th["max_low_support_share"]:
        return False, "support: target mass where the logger (almost) never acts"
    return True, None


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
    return np.minimum(logged[0], expected[0]), np.minimum(logged[1], expected[1]), "smaller (logged, expected)"


def per_unit_ess(weights: np.ndarray, alive: np.ndarray | None = None) -> dict[str, float]:
    """Diagnostics of weights that multiply one reward per step or slot: ``weights`` (n, T),
    column t the weights of the units' rewards at step (or position) t, ``alive`` (n, T) which
    units have a reward there. ``ess`` and ``ess_ratio`` are the smallest over the columns
    (ratio to the units alive there), ``step_ess`` all of them; ``max_weight`` over live cells."""
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
            "ess_ratio": float(ratio[t_min]) if ess else 0.0, "ess_at": t_min, "step_ess": [float(e) for e in ess],
            "max_weight": float(w[on].max(initial=0.0))}


def row_validity(estimator: Any, method: str, diag: dict[str, Any], estimate: Any, **kw: Any) -> tuple[bool, str | None]:
    """:func:`interval_validity` for one result row, after two checks every setting shares: an
    estimate that is not a finite number (e.g. a self-normalized estimator whose weights are
    all 0: the target never takes what the logger logged) and an estimator's own
    ``interval_caveat`` (an assumption about the world its interval cannot check)."""
    if estimate is None or not np.isfinite(float(estimate)):
        if diag.get("ess", 1.0) == 0.0:
            return False, "estimate undefined: every importance weight is 0 (the target never takes what was logged)"
        return False, "estimate undefined: not a finite number"
    caveat = getattr(estimator, "interval_caveat", None)
    if caveat:
        return False, caveat
    return interval_validity(estimator, method, diag, **kw)


def validity_rows(estimators: dict[str, Any], diagnostics: dict[str, dict[str, Any]], estimates: dict[str, Any],
                  method: str, *, shared: dict[str, Any] | None = None, **kw: Any) -> dict[str, dict[str, Any]]:
    """{name: {"interval_valid", "invalid_reason", "diagnostics"}} for every estimator of a slate
    or session result: :func:`row_validity` on its own weights' diagnostics (``diagnostics[name]``)
    merged with the numbers all rows share (``shared``: support, pscore-one share)."""
    out = {}
    for name, est in estimators.items():
        diag = {**(shared or {}), **diagnostics[name]}
        valid, reason = row_validity(est, method, diag, estimates.get(name), **kw)
        out[name] = {"interval_valid": valid, "invalid_reason": reason, "diagnostics": diag}
    return out


def is_reliable(diag: dict[str, float]) -> bool:
    """True when no threshold of :func:`diagnostic_warnings` is crossed."""
    return not diagnostic_warnings(diag)
