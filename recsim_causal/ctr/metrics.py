"""Click-model metrics on probabilities: ROC AUC (with its standard error), log loss, ECE.

All take ``label`` (n,) in {0, 1} and ``prob`` (n,) predicted click probabilities (any real
score for the AUC). The AUC is the Mann-Whitney statistic with tied scores counted one half,
which is the area under the ROC curve that scikit-learn's ``roc_auc_score`` computes.
(The article's own evaluation took the argmax of a single logit, a constant, so its AUC was
always 0.5; here the scores are the predicted probabilities.)

References: J. A. Hanley, B. J. McNeil. "The meaning and use of the area under a receiver
operating characteristic (ROC) curve.", Radiology 1982 (the standard error).
M. P. Naeini, G. Cooper, M. Hauskrecht. "Obtaining Well Calibrated Probabilities Using
Bayesian Binning.", AAAI 2015 (expected calibration error).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["roc_auc", "auc_standard_error", "roc_curve", "log_loss", "expected_calibration_error",
           "reliability_bins", "click_metrics"]


def _check(label: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(label, dtype=np.float64).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"label and prediction: expected the same length, got {y.size} and {s.size}")
    if y.size and not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("label: expected values in {0, 1}")
    if not np.isfinite(s).all():
        raise ValueError("prediction: expected finite values")
    return y, s


def _average_ranks(s: np.ndarray) -> np.ndarray:
    """1-based ranks of ``s``, tied values sharing their average rank."""
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    return (upper - (counts - 1) / 2.0)[inverse]


def roc_auc(label: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve, P(score of a click > score of a non-click) + P(tie) / 2.

    NaN when the labels hold one class only.
    """
    y, s = _check(label, score)
    n1 = float(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = _average_ranks(s)
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def auc_standard_error(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley and McNeil's (1982) standard error of an AUC from n_pos clicks and n_neg non-clicks."""
    if not (n_pos > 0 and n_neg > 0) or not math.isfinite(auc):
        return float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


def roc_curve(label: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct threshold, from (0, 0) to (1, 1)."""
    y, s = _check(label, score)
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), y.size - 1]  # the last row of each tied block
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    tpr = np.r_[0.0, tp / max(tp[-1], 1.0)] if y.size else np.array([0.0, 1.0])
    fpr = np.r_[0.0, fp / max(fp[-1], 1.0)] if y.size else np.array([0.0, 1.0])
    return fpr, tpr


def log_loss(label: np.ndarray, prob: np.ndarray, eps: float = 1e-15) -> float:
    """Mean binary cross-entropy, probabilities clipped to [eps, 1 - eps]."""
    y, p = _check(label, prob)
    p = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p))) if y.size else float("nan")


def reliability_bins(label: np.ndarray, prob: np.ndarray, n_bins: int = 10) -> dict[str, np.ndarray]:
    """Equal-width bins of the predicted probability on [0, 1] (the last one closed):
    ``count``, ``mean_prob`` and ``click_rate`` per bin (NaN in empty bins), each (n_bins,)."""
    y, p = _check(label, prob)
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins: expected an integer >= 1, got {n_bins!r}")
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError("prediction: expected probabilities in [0, 1]")
    b = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(b, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_prob = np.bincount(b, weights=p, minlength=n_bins) / count
        click_rate = np.bincount(b, weights=y, minlength=n_bins) / count
    return {"count": count, "mean_prob": mean_prob, "click_rate": click_rate}


def expected_calibration_error(label: np.ndarray, prob: np.ndarray, n_bins: int = 10) -> float:
    """ECE = sum_b (n_b / n) |click rate in b - mean predicted probability in b| (equal-width bins)."""
    bins = reliability_bins(label, prob, n_bins)
    n = bins["count"].sum()
    if n == 0:
        return float("nan")
    used = bins["count"] > 0
    gap = np.abs(bins["click_rate"][used] - bins["mean_prob"][used])
    return float((bins["count"][used] / n) @ gap)


def click_metrics(label: np.ndarray, prob: np.ndarray, n_bins: int = 10) -> dict[str, float]:
    """auc, auc_se, log_loss, ece, n_rows, n_clicks for one model on one test set."""
    y = np.asarray(label, dtype=np.float64)
    auc = roc_auc(y, prob)
    n_pos = int(y.sum())
    return {"auc": auc, "auc_se": auc_standard_error(auc, n_pos, y.size - n_pos), "log_loss": log_loss(y, prob),
            "ece": expected_calibration_error(y, prob, n_bins), "n_rows": int(y.size), "n_clicks": n_pos}
