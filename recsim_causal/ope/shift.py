"""Covariate shift: evaluate a policy for users who are not the users of the log.

A log collected before a change in the user population (tastes, price sensitivity, a new
market) estimates a policy's value *for the logged users*. When only the users changed, so
that E[r | x, do(a)] is the same and only p(x) moved, the value for the new users is

    V_after(pi) = E_{x ~ p_after} sum_a pi(a|x) q(x, a) = E_{x ~ p_before} w(x) sum_a pi(a|x) q(x, a),
    w(x) = p_after(x) / p_before(x),

so every estimator stays consistent with each logged round weighted by w(x_i) (importance
sampling on the contexts, Shimodaira 2000). The density ratio needs no densities: a
probabilistic classifier c(x) = P(after | x), fitted on contexts drawn after the change (no
actions or rewards needed) against the logged ones, gives w(x) = (n_before / n_after)
c(x) / (1 - c(x)) (Bickel, Brückner & Scheffer, JMLR 2009; Sugiyama et al. 2012).

    from recsim_causal.ope import evaluate
    from recsim_causal.ope.shift import context_density_ratio
    w = context_density_ratio(log.feedback.context, contexts_after)
    evaluate(log, targets, context_weight=w)      # every estimator, weighted by w(x_i)

When the change is in the reward function itself (E[r | x, do(a)] moves: a concept shift),
no weighting of the contexts recovers the new value: the log has no rounds from the new world.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recsim_causal.config import check_integer, check_number
from recsim_causal.data.checks import as_float_array, check_finite

__all__ = ["context_density_ratio", "FEATURES"]

#: the classifier's features of a context: ``spline`` (a cubic B-spline basis per column: the
#: log-ratio is any smooth additive function, exact when the shifted columns are independent
#: of the rest), ``linear`` (x: exact for a Gaussian mean shift) or ``quadratic`` (x and all
#: products x_i x_j: exact for any Gaussian shift, scale and correlations included)
FEATURES = ("spline", "linear", "quadratic")


def _features(kind: str):
    from sklearn.preprocessing import FunctionTransformer, SplineTransformer

    if kind == "spline":
        return SplineTransformer(n_knots=6, degree=3, extrapolation="constant")
    if kind == "linear":
        return FunctionTransformer()

    def quadratic(x: np.ndarray) -> np.ndarray:
        i, j = np.triu_indices(x.shape[1])
        return np.concatenate([x, x[:, i] * x[:, j]], axis=1)

    return FunctionTransformer(quadratic)


def context_density_ratio(logged: Any, target: Any, *, features: str = "spline", C: float = 1.0,
                          normalize: bool = True, clip: float | None = None, random_state: int = 0,
                          max_iter: int = 1000) -> np.ndarray:
    """w(x_i) = p_target(x_i) / p_logged(x_i) for every logged context, from a logistic
    regression that tells the target contexts (label 1) from the logged ones (label 0).

    Parameters
    ----------
    logged: the logged contexts (n, d).
    target: contexts of the population the policy will meet (m, d), e.g. users after a change.
    features: ``spline``, ``linear`` or ``quadratic`` (:data:`FEATURES`), standardized before the fit.
    C: the inverse L2 penalty of the logistic regression (scikit-learn's ``C``).
    normalize: rescale the weights to mean 1 over the logged rows (the self-normalized ratio:
        less variance, the same limit).
    clip: an upper bound on a weight (after normalizing), or None.
    random_state, max_iter: passed to the solver.

    Returns (n,) weights >= 0.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xb, xa = as_float_array(logged, "logged"), as_float_array(target, "target")
    for name, x in (("logged", xb), ("target", xa)):
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"{name}: expected contexts of shape (n >= 2, d), got {x.shape}")
        check_finite(x, name)
    if xa.shape[1] != xb.shape[1]:
        raise ValueError(f"target: expected {xb.shape[1]} columns (as logged), got {xa.shape[1]}")
    if features not in FEATURES:
        raise ValueError(f"features: expected one of {', '.join(FEATURES)}, got {features!r}")
    check_number(C, "C", low=1e-12)
    check_integer(max_iter, "max_iter", minimum=1)
    if clip is not None:
        check_number(clip, "clip", low=1e-12)
    X = np.concatenate([xb, xa])
    y = np.concatenate([np.zeros(len(xb)), np.ones(len(xa))])
    clf = make_pipeline(_features(features), StandardScaler(),
                        LogisticRegression(C=C, max_iter=max_iter, random_state=random_state))
    clf.fit(X, y)
    # log w = logit c(x) + log(n_before / n_after): the classifier's log-odds, prior-corrected
    logit = clf.decision_function(X[: len(xb)])
    w = np.exp(np.clip(logit + np.log(len(xb) / len(xa)), -50.0, 50.0))
    if normalize:
        w = w / w.mean()
    if clip is not None:
        w = np.minimum(w, clip)
    return w
