"""Timing and memory figures for the OPE estimators (called by scripts/bench.py).

Each function builds its own random inputs, times the call (median of ``repeats``) and
measures the peak of memory allocated *during* the call with tracemalloc (numpy reports
its buffers to it); the inputs themselves are reported separately.

    python -m recsim_causal.ope.bench            # prints the table
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from .estimators import (
    DM,
    DR,
    IPS,
    SNDR,
    SNIPS,
    DRos,
    SwitchDR,
    estimate_all,
    estimate_all_light,
    estimate_all_intervals,
)

__all__ = ["bench_dense", "bench_light", "bench_bootstrap", "eight_estimators", "run_all"]


def eight_estimators() -> list:
    """DM, IPS, SNIPS, DR, SNDR, Switch-DR, DRos and clipped IPS."""
    return [
        DM(),
        IPS(),
        SNIPS(),
        DR(),
        SNDR(),
        SwitchDR(lambda_=10.0),
        DRos(lambda_=10.0),
        IPS(lambda_=10.0, estimator_name="ipw-clip10"),
    ]


def _measure(fn: Callable[[], Any], repeats: int) -> tuple[float, int, Any]:
    times, peak, out = [], 0, None
    for _ in range(repeats):
        gc.collect()
        tracemalloc.start()
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return statistics.median(times), peak, out


def _logged(n: int, K: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    pi_e = rng.random((n, K))
    pi_e /= pi_e.sum(axis=1, keepdims=True)
    qhat = rng.random((n, K))
    action = rng.integers(0, K, n)
    pscore = np.full(n, 1.0 / K)
    reward = rng.binomial(1, 0.3, n).astype(np.float64)
    return dict(reward=reward, action=action, pscore=pscore, action_dist=pi_e,
                estimated_rewards_by_reg_model=qhat)  # fmt: skip


def _light_vectors(n: int, seed: int) -> dict[str, np.ndarray]:
    """Random light (n,) vectors: reward, pscore, target_pscore, target_q, q_at_action."""
    rng = np.random.default_rng(seed)
    return dict(
        reward=rng.binomial(1, 0.3, n).astype(np.float64),
        pscore=rng.uniform(0.01, 1.0, n),
        target_pscore=rng.random(n),
        target_q=rng.random(n),
        q_at_action=rng.random(n),
    )


def _obp_style(arrays: dict[str, np.ndarray], lambda_: float = 10.0) -> dict[str, float]:
    """The eight estimators computed the way OBP 0.5.7 does: each one re-reads the dense
    arrays (3-D fancy indexing and np.average per estimator). For the speed ratio."""
    A = arrays["action_dist"][:, :, None]
    Q = arrays["estimated_rewards_by_reg_model"][:, :, None]
    r, a, ps = arrays["reward"], arrays["action"], arrays["pscore"]
    n = a.shape[0]
    pos = np.zeros(n, dtype=int)
    out = {}

    def iw() -> np.ndarray:
        return A[np.arange(n), a, pos] / ps

    def dm() -> np.ndarray:
        return np.average(Q[np.arange(n), :, pos], weights=A[np.arange(n), :, pos], axis=1)

    def qf() -> np.ndarray:
        return Q[np.arange(n), a, pos]

    out["dm"] = dm().mean()
    out["ipw"] = (r * iw()).mean()
    w = iw()
    out["snipw"] = (r * w / w.mean()).mean()
    out["dr"] = (dm() + iw() * (r - qf())).mean()
    w = iw()
    out["sndr"] = (dm() + w * (r - qf()) / w.mean()).mean()
    w = iw()
    out["switch-dr"] = (dm() + np.array(w <= lambda_, dtype=int) * w * (r - qf())).mean()
    w = iw()
    out["dr-os"] = (dm() + lambda_ * w / (w**2 + lambda_) * (r - qf())).mean()
    out["ipw-clip10"] = (r * np.minimum(iw(), lambda_)).mean()
    return out


def bench_dense(n: int = 1_000_000, K: int = 100, repeats: int = 3, seed: int = 0,
                obp_style: bool = True) -> dict[str, Any]:  # fmt: skip
    """estimate_all on dense (n, K) float64 inputs, eight estimators."""
    arrays = _logged(n, K, seed)
    ests = eight_estimators()
    sec, peak, values = _measure(lambda: estimate_all(ests, **arrays), repeats)
    out: dict[str, Any] = {
        "case": f"dense n={n:,} K={K} (8 estimators)",
        "seconds": sec,
        "peak_bytes": peak,
        "input_bytes": int(sum(v.nbytes for v in arrays.values())),
    }
    if obp_style:
        sec_obp, peak_obp, ref = _measure(lambda: _obp_style(arrays), 1)
        out["obp_style_seconds"] = sec_obp
        out["obp_style_peak_bytes"] = peak_obp
        out["speedup"] = sec_obp / sec
        out["max_abs_diff_vs_obp_style"] = max(abs(values[k] - ref[k]) for k in ref)
    return out


def bench_light(n: int = 10_000_000, repeats: int = 3, seed: int = 0) -> dict[str, Any]:
    """estimate_all on the light (n,) vectors, eight estimators."""
    vectors = _light_vectors(n, seed)
    ests = eight_estimators()
    sec, peak, _ = _measure(lambda: estimate_all_light(ests, **vectors), repeats)
    return {
        "case": f"light n={n:,} (8 estimators)",
        "seconds": sec,
        "peak_bytes": peak,
        "input_bytes": int(sum(v.nbytes for v in vectors.values())),
    }


def bench_bootstrap(n: int = 1_000_000, B: int = 1000, repeats: int = 1, seed: int = 0,
                    which: str = "dr") -> dict[str, Any]:  # fmt: skip
    """Bootstrap CIs from light vectors: ``which`` = "dr", "sndr" (a ratio) or "all8"."""
    vectors = _light_vectors(n, seed)
    ests = {"dr": [DR()], "sndr": [SNDR()], "all8": eight_estimators()}[which]
    sec, peak, _ = _measure(
        lambda: estimate_all_intervals(ests, n_bootstrap_samples=B, random_state=seed, **vectors),
        repeats,
    )
    return {
        "case": f"bootstrap {which} n={n:,} B={B}",
        "seconds": sec,
        "peak_bytes": peak,
        "input_bytes": int(sum(v.nbytes for v in vectors.values())),
    }


def bench_reward_models(n: int = 20_000, K: int = 100, d: int = 16, repeats: int = 1, seed: int = 0) -> dict[str, float]:
    """Seconds to fit one reward model on n rounds (no cross-fitting): ours vs scikit-learn
    on the same problem (logistic and ridge, interaction and concat features)."""
    from sklearn.linear_model import LogisticRegression, Ridge

    from .reward_models import RegressionModel

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    a = rng.integers(0, K, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(x[:, 0] + 0.01 * a - 1.0)))).astype(float)
    onehot = np.eye(K)[a]
    item_features = rng.normal(size=(K, 11))

    def sk_per_action(model: Any) -> None:  # interaction features: one fit per action
        for k in range(K):
            rows = a == k
            model.fit(x[rows], y[rows])

    out = {
        "ours_logistic_interaction": _measure(lambda: RegressionModel("logistic", K, features="interaction").fit(x, a, y), repeats)[0],
        "sklearn_logistic_per_action": _measure(lambda: sk_per_action(LogisticRegression(C=1.0)), repeats)[0],
        "ours_ridge_interaction": _measure(lambda: RegressionModel("ridge", K, features="interaction").fit(x, a, y), repeats)[0],
        "sklearn_ridge_per_action": _measure(lambda: sk_per_action(Ridge(alpha=1.0)), repeats)[0],
        "ours_ridge_concat": _measure(lambda: RegressionModel("ridge", K, features="concat").fit(x, a, y), repeats)[0],
        "sklearn_ridge_concat": _measure(lambda: Ridge(alpha=1.0).fit(np.c_[x, onehot], y), repeats)[0],
        "sklearn_logistic_concat": _measure(lambda: LogisticRegression(C=1.0).fit(np.c_[x, onehot], y), repeats)[0],
        # the OPE default: context x 11 item features (Newton on 1 + d + 11 + 11 d shared coefficients + K offsets)
        "ours_logistic_cross": _measure(lambda: RegressionModel("logistic", K, features="cross",
                                                                action_context=item_features).fit(x, a, y), repeats)[0],
    }
    return out


def run_all(small: bool = False) -> list[dict[str, Any]]:
    """All figures; ``small`` shrinks the sizes 10x for a quick look."""
    s = 10 if small else 1
    rows = [
        bench_dense(n=1_000_000 // s),
        bench_light(n=10_000_000 // s),
        bench_bootstrap(n=1_000_000 // s, which="dr"),
        bench_bootstrap(n=1_000_000 // s, which="sndr"),
        bench_bootstrap(n=1_000_000 // s, which="all8"),
    ]
    return rows


if __name__ == "__main__":  # pragma: no cover
    import sys

    for row in run_all(small="--small" in sys.argv):
        extra = ""
        if "obp_style_seconds" in row:
            extra = f"  OBP-style {row['obp_style_seconds']:.2f} s ({row['speedup']:.1f}x)"
        print(
            f"{row['case']:<42} {row['seconds']:7.3f} s  peak {row['peak_bytes'] / 2**20:8.1f} MiB"
            f"  inputs {row['input_bytes'] / 2**20:8.1f} MiB{extra}"
        )
