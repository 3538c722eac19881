"""Estimates that are sums of :class:`~recsim_causal.ope.inputs.RoundTerms`, and their intervals.

Self-normalized slate and sequential estimators normalize per position or per step:
V = sum_l mean_i(num_il) / mean_i(den_il) (OBP's SNIIPS / SNRIPS, SCOPE-RL's SNPDIS / SNDR).
That is a sum of ratios over the same units (slates, trajectories), so each estimator is a
list of RoundTerms whose values add up. Intervals resample the units once and recompute every
ratio on each resample (the bootstrap of :mod:`~recsim_causal.ope.intervals`, shared by all
estimators); the normal and Bernstein intervals use the summed delta-method terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .inputs import RoundTerms
from .intervals import METHODS, bootstrap_estimates, ci_keys, estimate_intervals_from_terms

__all__ = ["sum_value", "sum_influence", "sum_intervals"]

TermSum = Sequence[RoundTerms]


def sum_value(parts: TermSum) -> float:
    """V = sum of the parts' values (NaN when a self-normalizing mean is 0: every weight is 0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(sum(t.value() for t in parts))


def sum_influence(parts: TermSum) -> np.ndarray:
    """Per-unit delta-method terms psi_i whose mean is V (sum over parts)."""
    return np.sum([t.influence() for t in parts], axis=0)


def sum_intervals(
    estimators: Sequence[TermSum],
    *,
    alpha: float = 0.05,
    n_bootstrap_samples: int = 10000,
    random_state: Any = None,
    method: str = "bootstrap",
) -> list[dict[str, float]]:
    """OBP-style interval dicts, one per estimator given as a list of RoundTerms parts.

    bootstrap: one set of resamples of the units for all estimators; each resample recomputes
    every part (ratios as ratios) and sums them; "mean" is the mean of the resampled
    estimates, as in OBP. normal / bernstein: applied to the summed delta-method terms.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    with np.errstate(invalid="ignore", divide="ignore"):  # all-zero weights: NaN, flagged by the diagnostics
        return _sum_intervals(estimators, alpha, n_bootstrap_samples, random_state, method)


def _sum_intervals(estimators: Sequence[TermSum], alpha: float, n_bootstrap_samples: int, random_state: Any,
                   method: str) -> list[dict[str, float]]:
    if method != "bootstrap":
        return estimate_intervals_from_terms([RoundTerms(base=sum_influence(p)) for p in estimators],
                                             alpha=alpha, method=method)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a float in (0, 1), got {alpha!r}")
    if isinstance(n_bootstrap_samples, bool) or not isinstance(n_bootstrap_samples, (int, np.integer)) \
            or n_bootstrap_samples < 1:
        raise ValueError(f"n_bootstrap_samples: expected a positive int, got {n_bootstrap_samples!r}")
    flat = [t for parts in estimators for t in parts]
    boots = bootstrap_estimates(flat, n_bootstrap_samples=n_bootstrap_samples, random_state=random_state)
    lower, upper = ci_keys(alpha)
    out, j = [], 0
    for parts in estimators:
        b = boots[:, j : j + len(parts)].sum(axis=1)
        j += len(parts)
        out.append({"mean": float(b.mean()), lower: float(np.percentile(b, 100 * alpha / 2)),
                    upper: float(np.percentile(b, 100 * (1 - alpha / 2)))})
    return out
