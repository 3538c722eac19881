"""Ground truth and the comparison of OPE estimates against it.

In recsim-causal the world is an SCM, so the oracle q(x, a) = E[r | x, do(a)] is known for
every logged context and the policy value of any target is exact on those contexts:

    V(pi) = (1/n) sum_i sum_a pi(a | x_i) q(x_i, a)

(the estimand all the estimators in :mod:`estimators` aim at; averaging over the logged
contexts removes the context-sampling noise from the comparison).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .inputs import reduce_dense

__all__ = ["policy_value", "ope_table", "ips_confounding_bias"]


def policy_value(action_dist: Any, expected_reward: Any, position: Any = None) -> float:
    """V(pi) = mean_i sum_a pi(a|x_i) q(x_i, a).

    ``action_dist`` (n, K) or (n, K, L); ``expected_reward`` the same shape, or (n, K)
    when the reward does not depend on the slot; ``position`` (n,) picks the slot
    (required when L > 1). Computed with the same reduction as the DM estimator, so
    ``policy_value(pi, q) == DM().estimate_policy_value(action_dist=pi,
    estimated_rewards_by_reg_model=q)`` exactly.
    """
    A = np.asarray(action_dist)
    Q = np.asarray(expected_reward)
    if A.ndim == 3 and Q.ndim == 2:
        Q = np.broadcast_to(Q[:, :, np.newaxis], A.shape)
    if Q.ndim == 3 and A.ndim == 2:
        if Q.shape[2] != 1:
            raise ValueError(
                f"expected_reward has len_list={Q.shape[2]} but action_dist is 2-D {A.shape}"
            )
        Q = Q[:, :, 0]
    inputs = reduce_dense(action_dist=A, estimated_rewards_by_reg_model=Q, position=position)
    return float(inputs.target_q.mean())


def _interval_bounds(d: Mapping[str, Any]) -> tuple[float | None, float | None]:
    lo = next((v for k, v in d.items() if k.endswith("CI (lower)")), None)
    hi = next((v for k, v in d.items() if k.endswith("CI (upper)")), None)
    return (None if lo is None else float(lo)), (None if hi is None else float(hi))


def ope_table(
    estimates: Mapping[str, float | Mapping[str, float]],
    truth: float,
    intervals: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Compare estimates with the true policy value; JSON-ready rows keyed by estimator.

    ``estimates`` maps a name to a float, or to an interval dict (OBP's, from
    ``estimate_interval``: its "mean" is then the estimate). ``intervals`` (optional) maps
    names to interval dicts whose bounds give ``ci_low``/``ci_high``/``covers``.

    Row fields: estimate, truth, error = estimate - truth, abs_error, relative_error =
    |error| / |truth| (None when truth is 0), squared_error, ci_low, ci_high,
    ci_width, covers (truth within the closed interval; None without an interval).
    """
    truth = float(truth)
    if not math.isfinite(truth):
        raise ValueError(f"truth: expected a finite number, got {truth}")
    rows: dict[str, dict[str, Any]] = {}
    for name, est in estimates.items():
        interval: Mapping[str, Any] | None = None
        if isinstance(est, Mapping):
            interval = est
            if "mean" not in est:
                raise ValueError(f"estimates[{name!r}]: interval dict without 'mean' ({sorted(est)})")
            value = float(est["mean"])
        else:
            value = float(est)
        if intervals is not None and name in intervals:
            interval = intervals[name]
        lo, hi = _interval_bounds(interval) if interval is not None else (None, None)
        error = value - truth
        rows[name] = {
            "estimate": value,
            "truth": truth,
            "error": error,
            "abs_error": abs(error),
            "relative_error": abs(error) / abs(truth) if truth != 0 else None,
            "squared_error": error * error,
            "ci_low": lo,
            "ci_high": hi,
            "ci_width": (hi - lo) if lo is not None and hi is not None else None,
            "covers": (lo <= truth <= hi) if lo is not None and hi is not None else None,
        }
    return rows


def ips_confounding_bias(action_dist: Any, expected_reward: Any, pi_b_full: Any, pi_b_marginal: Any) -> float:
    """E[IPS] - V(pi_e) given the logged users, when the pscore is P(a|x) but the logger drew
    a from pi_b(a | x, s): exact from the SCM (expectation over actions and rewards only).

        bias = (1/n) sum_i sum_a pi_e(a|x_i) q_i(a) (pi_b(a|x_i,s_i) / P(a|x_i) - 1)

    with q_i(a) = E[r | all of user i's variables, do(a)]. Averaged over users it is
    E_x sum_a pi_e(a|x) Cov(q(a), pi_b(a|x,S) | x) / P(a|x): the confounding itself.
    All arrays (n, K).
    """
    pe, q = np.asarray(action_dist, np.float64), np.asarray(expected_reward, np.float64)
    full, marg = np.asarray(pi_b_full, np.float64), np.asarray(pi_b_marginal, np.float64)
    ratio = np.divide(full, marg, out=np.ones_like(full), where=marg > 0)
    return float((pe * q * (ratio - 1.0)).sum(axis=1).mean())
