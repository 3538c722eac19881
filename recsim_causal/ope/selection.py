"""Off-policy selection (OPS): how well does an estimator rank candidate policies?

Given each candidate policy's estimate V_hat(pi) and its true value V(pi) (exact here, from
the SCM), every metric compares the estimator's ranking with the true one:

    spearman        Spearman's rank correlation of (V_hat, V) (average ranks for ties;
                    = ``scipy.stats.spearmanr``)
    kendall         Kendall's tau-b of (V_hat, V) (= ``scipy.stats.kendalltau``)
    regret@k        V(pi*) - max_{pi in top-k(V_hat)} V(pi): how much worse the best policy
                    among the estimator's top k is than the best candidate (Paine et al. 2020;
                    Fu et al. 2021; SCOPE-RL's Regret@1 = V(pi*) - V(pi_hat*)); 0 is perfect
    ndcg@k          DCG@k / IDCG@k with gains V(pi) - min V (so a constant shift of the reward
                    changes nothing) and discounts 1 / log2(1 + rank)
    sharpe@k        SCOPE-RL's SharpeRatio@k (Kiyohara et al. 2023):
                    max(best@k - V(pi_b), 0) / std@k, best@k and std@k (ddof 1) the max and
                    standard deviation of the true values of the estimator's top k, pi_b the
                    logging policy (the "risk-free" return); undefined (None) for k = 1 and
                    when the top k all have the same value

The estimator's ranking sorts by V_hat, descending; ties keep the candidates' given order.
Metrics are registered by name in :data:`RANK_METRICS` and :data:`TOPK_METRICS`;
:func:`selection_metrics` computes all of them for one estimator and :func:`select` for many.

References: T. L. Paine et al. "Hyperparameter Selection for Offline Reinforcement
Learning.", 2020. J. Fu et al. "Benchmarks for Deep Off-Policy Evaluation.", ICLR 2021.
H. Kiyohara et al. "Towards Assessing and Benchmarking Risk-Return Tradeoff of Off-Policy
Evaluation.", ICLR 2024 (SCOPE-RL's ``OffPolicySelection``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["RANK_METRICS", "TOPK_METRICS", "ranking", "spearman", "kendall", "regret_at_k", "ndcg_at_k",
           "sharpe_ratio_at_k", "selection_metrics", "select"]


def _pair(estimated: Any, true: Any) -> tuple[np.ndarray, np.ndarray]:
    est = np.asarray(estimated, dtype=np.float64).reshape(-1)
    tru = np.asarray(true, dtype=np.float64).reshape(-1)
    if est.shape != tru.shape:
        raise ValueError(f"estimated: expected one value per candidate ({tru.shape[0]}), got {est.shape[0]}")
    if est.shape[0] < 2:
        raise ValueError(f"estimated: selection needs at least 2 candidate policies, got {est.shape[0]}")
    for name, v in (("estimated", est), ("true", tru)):
        if not np.isfinite(v).all():
            raise ValueError(f"{name}: policy values must be finite")
    return est, tru


def ranking(estimated: Any) -> np.ndarray:
    """Candidate indices from the highest estimate to the lowest (ties: the given order)."""
    return np.argsort(-np.asarray(estimated, dtype=np.float64), kind="stable")


def _average_ranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v))
    sv = v[order]
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(estimated: Any, true: Any) -> float | None:
    """Spearman's rho: Pearson's correlation of the average ranks (None if either is constant)."""
    est, tru = _pair(estimated, true)
    a, b = _average_ranks(est), _average_ranks(tru)
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else None


def kendall(estimated: Any, true: Any) -> float | None:
    """Kendall's tau-b over all pairs (None if either is constant)."""
    est, tru = _pair(estimated, true)
    de = np.sign(est[:, None] - est[None, :])
    dt = np.sign(tru[:, None] - tru[None, :])
    iu = np.triu_indices(len(est), 1)
    de, dt = de[iu], dt[iu]
    n_e, n_t = float(np.count_nonzero(de)), float(np.count_nonzero(dt))
    return float((de * dt).sum()) / math.sqrt(n_e * n_t) if n_e > 0 and n_t > 0 else None


def _check_k(k: Any, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"k: expected an int in [1, {n}] (the number of candidates), got {k!r}")
    return int(k)


def regret_at_k(estimated: Any, true: Any, k: int = 1) -> float:
    """V(pi*) - the best true value among the estimator's top k."""
    est, tru = _pair(estimated, true)
    k = _check_k(k, len(est))
    return float(tru.max() - tru[ranking(est)[:k]].max())


def ndcg_at_k(estimated: Any, true: Any, k: int | None = None) -> float | None:
    """nDCG@k with gains V(pi) - min V (None when every candidate has the same value)."""
    est, tru = _pair(estimated, true)
    k = len(est) if k is None else _check_k(k, len(est))
    gain = tru - tru.min()
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = float(np.sort(gain)[::-1][:k] @ disc)
    return float(gain[ranking(est)[:k]] @ disc) / ideal if ideal > 0 else None


def sharpe_ratio_at_k(estimated: Any, true: Any, k: int, baseline: float) -> float | None:
    """SCOPE-RL's SharpeRatio@k: max(best@k - baseline, 0) / std@k (ddof 1); None if std@k is
    0 or undefined (k = 1)."""
    est, tru = _pair(estimated, true)
    k = _check_k(k, len(est))
    if not (isinstance(baseline, (int, float, np.floating)) and math.isfinite(baseline)):
        raise ValueError(f"baseline: expected a finite number (the logging policy's value), got {baseline!r}")
    top = tru[ranking(est)[:k]]
    if k < 2:
        return None
    sd = float(top.std(ddof=1))
    return max(float(top.max()) - float(baseline), 0.0) / sd if sd > 0 else None


#: name -> metric(estimated, true) of the whole ranking
RANK_METRICS: dict[str, Callable[[Any, Any], float | None]] = {"spearman": spearman, "kendall": kendall}
#: name -> metric(estimated, true, k, baseline) of the top k
TOPK_METRICS: dict[str, Callable[[Any, Any, int, float | None], float | None]] = {
    "regret": lambda e, t, k, b: regret_at_k(e, t, k),
    "ndcg": lambda e, t, k, b: ndcg_at_k(e, t, k),
    "sharpe": lambda e, t, k, b: None if b is None else sharpe_ratio_at_k(e, t, k, b),
}


def selection_metrics(estimated: Any, true: Any, *, ks: Sequence[int] = (1, 3, 5),
                      baseline: float | None = None) -> dict[str, float | None]:
    """Every metric for one estimator: ``{"spearman", "kendall", "regret@1", "ndcg@1",
    "sharpe@1", ...}`` for each k in ``ks`` (those above the number of candidates are skipped);
    ``sharpe@k`` needs ``baseline`` (the logging policy's true value)."""
    est, tru = _pair(estimated, true)
    out: dict[str, float | None] = {name: fn(est, tru) for name, fn in RANK_METRICS.items()}
    for k in ks:
        if _check_k(k, 10**9) > len(est):
            continue
        for name, fn in TOPK_METRICS.items():
            out[f"{name}@{k}"] = fn(est, tru, k, baseline)
    return out


def select(estimates: Mapping[str, Mapping[str, float]], truth: Mapping[str, float], *,
           ks: Sequence[int] = (1, 3, 5), baseline: float | None = None) -> dict[str, dict[str, Any]]:
    """Off-policy selection by each estimator.

    Args:
        estimates: {estimator: {policy: estimate}}; every estimator must cover the policies
            of ``truth``.
        truth: {policy: true value}.
        ks, baseline: see :func:`selection_metrics`.
    Returns:
        {estimator: {"ranking": policies from the best estimate down, "selected": the top
        one, "metrics": :func:`selection_metrics`}}; an estimator without a finite estimate
        for every policy gets None for the three and a ``reason``.
    """
    names = list(truth)
    tru = np.array([truth[p] for p in names], dtype=np.float64)
    out = {}
    for est_name, values in estimates.items():
        missing = [p for p in names if p not in values]
        if missing:
            raise ValueError(f"estimates.{est_name}: no estimate for policy '{missing[0]}'")
        est = np.array([np.nan if values[p] is None else values[p] for p in names], dtype=np.float64)
        undefined = [p for p, v in zip(names, est) if not np.isfinite(v)]
        if undefined:  # e.g. a self-normalized estimate whose weights are all 0: no ranking
            out[est_name] = {"ranking": None, "selected": None, "metrics": None,
                             "reason": f"no finite estimate for {len(undefined)} of {len(names)} candidates "
                                       f"(first '{undefined[0]}'): it cannot rank them"}
            continue
        order = ranking(est)
        out[est_name] = {"ranking": [names[i] for i in order], "selected": names[order[0]],
                         "metrics": selection_metrics(est, tru, ks=ks, baseline=baseline)}
    return out
