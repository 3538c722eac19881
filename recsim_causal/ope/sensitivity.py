"""How wrong can IPS be if the logger saw a confounder the log does not keep?

The marginal sensitivity model (Tan 2006). The log keeps the nominal propensity
e_i = P(a_i | x_i); the logger really drew a_i from pi_b(a_i | x_i, s_i), with s a signal
the log lacks. The model assumes, for a chosen Gamma >= 1,

    1/Gamma <= [pi_b / (1 - pi_b)] / [e / (1 - e)] <= Gamma          for every row and action,

so the true inverse propensity w_i = 1/pi_b(a_i | x_i, s_i) lies in the box

    a_i = 1 + (1/e_i - 1)/Gamma  <=  w_i  <=  b_i = 1 + Gamma (1/e_i - 1).

Gamma = 1 is no confounding (w = 1/e). The bounds on V(pi) over every w the model allows
come in two estimators and two methods:

estimators
    ``ipw``: (1/n) sum_i pi(a_i|x_i) w_i r_i (IPS); ``snipw``: the same over
    sum_i pi(a_i|x_i) w_i (SNIPS, the Hajek form). At Gamma = 1 both are the usual estimate.
methods
    ``zsb``: the extremes over the box (Zhao, Small & Bhattacharya 2019; Kallus & Zhou 2018
    for policies). For ``snipw`` a linear-fractional program, solved exactly by sorting the
    rows by reward: the optimum puts b on the rows above a threshold and a below it (for the
    upper bound), so it is the best of the n + 1 thresholds, all scored by cumulative sums.
    For ``ipw`` each row takes a or b by the sign of its reward. Valid, not sharp: the box
    ignores that the true weights of each (x, a) must average to 1/e(x, a).
    ``sharp``: Dorn & Guo (2022)'s quantile balancing: the worst-case weights put
    b on the top 1/(1 + Gamma) of the reward's conditional distribution given (x, a) and a on
    the rest, which keeps E[e w | x, a] = 1. For rewards in {0, 1} that distribution is a
    Bernoulli whose mean the analyst estimates (``expected_reward``, the reward model at the
    logged (x, a)); the row at the quantile's atom gets the mixed weight that balances it
    exactly. Sharp: no narrower interval is valid under the model. Its weights lie in the
    box, so its bounds are never wider than ``zsb``'s, for the same estimator.

Sampling uncertainty: the bounds are recomputed on bootstrap resamples of the rows (the
reward model held fixed); the interval [alpha/2 quantile of the lower bound,
1 - alpha/2 quantile of the upper bound] covers the partially identified value with
probability >= 1 - alpha asymptotically (ZSB 2019, Thm 4, the percentile bootstrap).

Which Gamma is true? In a simulation the logger's full distribution is known:
:func:`gamma_star` is the largest odds ratio over the logged rows and every action, with its
quantiles (a maximum over rows can be driven by a few). :func:`breakdown_gamma`: the
smallest Gamma at which the bounds on V(pi_1) - V(pi_2) reach 0 (the sign of the
comparison can flip).

Z. Tan. "A distributional approach for causal inference using propensity scores.", JASA 2006.
Q. Zhao, D. Small, B. Bhattacharya. "Sensitivity analysis for inverse probability weighting
estimators via the percentile bootstrap.", JRSS-B 2019.
N. Kallus, A. Zhou. "Confounding-robust policy improvement.", NeurIPS 2018.
J. Dorn, K. Guo. "Sharp sensitivity analysis for inverse propensity weighting via quantile
balancing.", JASA 2022.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recsim_causal.data.checks import as_float_array, check_finite, check_ndim, check_rows

from .intervals import _multinomial_counts_small, _seed_sequence

__all__ = [
    "ESTIMATORS",
    "METHODS",
    "SensitivityBounds",
    "check_gammas",
    "weight_box",
    "sharp_weights",
    "sensitivity_bounds",
    "dr_sensitivity_bounds",
    "bounds_at",
    "breakdown_gamma",
    "gamma_star",
    "odds_ratio",
    "SensitivityReport",
    "sensitivity_analysis",
    "best_pair",
    "check_config",
    "DEFAULT_GAMMAS",
]

ESTIMATORS = ("ipw", "snipw")
METHODS = ("sharp", "zsb")
DEFAULT_GAMMAS = (1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)
#: The keys of a sensitivity block (``evaluate(..., sensitivity={...})``, ``experiment.sensitivity``).
CONFIG_KEYS = {"gammas": DEFAULT_GAMMAS, "pairs": None, "estimator": "snipw", "method": None,
               "n_bootstrap_samples": 200}
_P_CLIP = 1e-9  # a modelled click rate of exactly 0 or 1 would divide by zero at the atom


# ------------------------------------------------------------------------------- checks
def check_gammas(gammas: Any, name: str = "gammas") -> np.ndarray:
    """The Gamma grid as a float array: non-empty, finite, every value >= 1."""
    arr = np.atleast_1d(np.asarray(gammas, dtype=object))
    if arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty list of numbers >= 1, got an empty grid")
    bad = [g for g in arr.ravel() if isinstance(g, bool) or not isinstance(g, (int, float, np.integer, np.floating))]
    if bad:
        raise ValueError(f"{name}: expected numbers >= 1, got {bad[0]!r}")
    arr = arr.astype(np.float64).ravel()
    low = arr[~(arr >= 1.0) | ~np.isfinite(arr)]
    if low.size:
        raise ValueError(f"{name}: expected finite numbers >= 1 (1: no hidden confounding), got {low[0]:g}")
    return arr


def check_config(cfg: Any, where: str = "sensitivity", targets: Sequence[str] | None = None) -> dict:
    """A sensitivity block with its defaults filled in (:data:`CONFIG_KEYS`), checked: one-line
    errors that name ``<where>.<key>``. ``targets``: the names a pair may use; ``pairs: null``
    stays null: :func:`sensitivity_analysis` then compares the two targets with the highest
    estimates."""
    from recsim_causal.config import check_integer, check_keys

    cfg = dict(cfg or {})
    check_keys(cfg, CONFIG_KEYS, where)
    out = {k: cfg.get(k, v) for k, v in CONFIG_KEYS.items()}
    out["gammas"] = check_gammas(list(out["gammas"]) if isinstance(out["gammas"], (list, tuple)) else out["gammas"],
                                 f"{where}.gammas").tolist()
    _check_choice(out["estimator"], ESTIMATORS, f"{where}.estimator")
    if out["method"] is not None:
        _check_choice(out["method"], METHODS, f"{where}.method")
    check_integer(out["n_bootstrap_samples"], f"{where}.n_bootstrap_samples", 0)
    pairs = out["pairs"]
    if pairs is None:  # the best target against the runner-up, chosen on the log (sensitivity_analysis)
        return out
    if not isinstance(pairs, (list, tuple)) or any(not isinstance(p, (list, tuple)) or len(p) != 2 for p in pairs):
        raise ValueError(f"{where}.pairs: expected a list of [target, target] pairs, got {pairs!r}")
    if targets is not None:
        unknown = [n for p in pairs for n in p if n not in targets]
        if unknown:
            raise ValueError(f"{where}.pairs: unknown target '{unknown[0]}' (known: {', '.join(targets)})")
    out["pairs"] = [list(p) for p in pairs]
    return out


def _check_choice(value: str, known: Sequence[str], name: str) -> str:
    if value not in known:
        raise ValueError(f"{name}: expected one of {', '.join(known)}, got {value!r}")
    return value


def _inputs(reward: Any, pscore: Any, target_pscore: Any, expected_reward: Any, method: str
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    r = as_float_array(reward, "reward")
    check_ndim(r, "reward", (1,), "a 1-D array (n_rounds,)")
    n = r.shape[0]
    if n == 0:
        raise ValueError("reward: expected at least one round, got 0")
    out = [r]
    for arr, name in ((pscore, "pscore"), (target_pscore, "target_pscore")):
        a = as_float_array(arr, name)
        check_ndim(a, name, (1,), "a 1-D array (n_rounds,)")
        check_rows(a, name, n, "reward")
        out.append(a)
    for a, name in zip(out, ("reward", "pscore", "target_pscore")):
        check_finite(a, name)
    e, pi = out[1], out[2]
    if not ((e > 0) & (e <= 1)).all():
        raise ValueError(f"pscore: expected probabilities in (0, 1], got {e[~((e > 0) & (e <= 1))][0]:g}")
    if not ((pi >= 0) & (pi <= 1)).all():
        raise ValueError(f"target_pscore: expected probabilities in [0, 1], got {pi[~((pi >= 0) & (pi <= 1))][0]:g}")
    q = None
    if method == "sharp":
        if not np.isin(r, (0.0, 1.0)).all():
            raise ValueError("reward: method='sharp' needs rewards in {0, 1} (the quantile of a binary reward "
                             "given (x, a) follows from its mean); use method='zsb' for other rewards")
        if expected_reward is None:
            raise ValueError("expected_reward: method='sharp' needs the reward model's E[r | x, a] at the logged "
                             "rows (n_rounds,)")
        q = as_float_array(expected_reward, "expected_reward")
        check_ndim(q, "expected_reward", (1,), "a 1-D array (n_rounds,): E[r | x_i, a_i]")
        check_rows(q, "expected_reward", n, "reward")
        check_finite(q, "expected_reward")
        q = np.clip(q, _P_CLIP, 1.0 - _P_CLIP)
    return r, e, pi, q


# ------------------------------------------------------------------------------- weights
def weight_box(pscore: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """(a, b): the bounds on the true inverse propensity 1/pi_b under the model at ``gamma``."""
    odds_inv = 1.0 / np.asarray(pscore, np.float64) - 1.0
    return 1.0 + odds_inv / gamma, 1.0 + odds_inv * gamma


def sharp_weights(reward: np.ndarray, pscore: np.ndarray, expected_reward: np.ndarray, gamma: float,
                  upper: bool) -> np.ndarray:
    """Dorn & Guo's worst-case inverse propensities for a {0, 1} reward, per row (n,).

    With L = e + (1 - e)/Gamma and U = e + (1 - e) Gamma (the box times e) and the top mass
    m = 1/(1 + Gamma) (so that m U + (1 - m) L = 1): for the upper bound the ones (mass p =
    expected_reward) take U up to mass m and the zeros fill the rest of m; everything else
    takes L. The lower bound is the mirror image (zeros first). Returns v / e, in [a, b].
    """
    e = np.asarray(pscore, np.float64)
    L, U = e + (1.0 - e) / gamma, e + (1.0 - e) * gamma
    m = 1.0 / (1.0 + gamma)
    r, p = (reward, expected_reward) if upper else (1.0 - reward, 1.0 - expected_reward)
    # r is the "high" outcome here (reward for the upper bound, 1 - reward for the lower)
    v_high = np.where(p <= m, U, (m * U + (p - m) * L) / p)
    v_low = np.where(p >= m, L, ((m - p) * U + (1.0 - m) * L) / (1.0 - p))
    return np.where(r > 0.5, v_high, v_low) / e


# ------------------------------------------------------------------------------- bounds
def _group_sums(r: np.ndarray, basis: np.ndarray, counts: np.ndarray | None) -> np.ndarray:
    """Sums of the ``basis`` columns (n, m) over the rows of each distinct reward, in
    decreasing reward order: (B, n_groups, m) (B = 1 without resample ``counts`` (B, n))."""
    values, group = np.unique(-r, return_inverse=True)  # group 0: the largest reward
    ng, (n, m) = len(values), basis.shape
    if counts is None:
        out = np.stack([np.bincount(group, weights=basis[:, j], minlength=ng) for j in range(m)], axis=1)
        return out[None]
    if ng <= 64:  # few distinct rewards (clicks: 2): one matrix product serves every group
        onehot = np.zeros((n, ng * m))
        onehot[np.arange(n)[:, None], group[:, None] * m + np.arange(m)[None, :]] = basis
        return (counts @ onehot).reshape(len(counts), ng, m)
    order = np.argsort(group, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(group[order]) > 0])
    c = counts[:, order]
    return np.stack([np.add.reduceat(c * basis[order, j][None, :], starts, axis=1) for j in range(m)], axis=2)


def _lfp(num_hi: np.ndarray, den_hi: np.ndarray, num_lo: np.ndarray, den_lo: np.ndarray, maximize: bool
         ) -> np.ndarray:
    """The extreme over thresholds of a linear-fractional program whose rows come in groups
    of equal reward, best first (..., n_groups): for the maximum the first k groups take the
    high weights and the rest the low ones; for the minimum the last groups take the high
    weights. At the optimum rows of equal reward sit on one side (a vertex), so the n_groups + 1
    thresholds are all the candidates."""
    def prefix(v):
        return np.concatenate([np.zeros(v.shape[:-1] + (1,)), np.cumsum(v, axis=-1)], axis=-1)

    nh, dh, nl, dl = (prefix(v) for v in (num_hi, den_hi, num_lo, den_lo))
    if maximize:
        num, den = nh + (nl[..., -1:] - nl), dh + (dl[..., -1:] - dl)
    else:
        num, den = nl + (nh[..., -1:] - nh), dl + (dh[..., -1:] - dh)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return np.nanmax(ratio, axis=-1) if maximize else np.nanmin(ratio, axis=-1)


def _bounds(r: np.ndarray, e: np.ndarray, pi: np.ndarray, q: np.ndarray | None, gammas: np.ndarray, estimator: str,
            method: str, counts: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper), each (G, B): the bounds at each Gamma on the sample (B = 1) or on each
    resample of ``counts`` (B, n)."""
    n = r.shape[0]
    g = gammas[:, None]
    if method == "zsb" and estimator == "snipw":  # the linear-fractional program over the box
        odds = 1.0 / e - 1.0  # b = 1 + Gamma odds, a = 1 + odds / Gamma: linear in the basis below
        S = _group_sums(r, np.stack([pi * r, pi * odds * r, pi, pi * odds], axis=1), counts)  # (B, ng, 4)
        S = S[None]  # (1, B, ng, 4)
        gg = gammas[:, None, None]
        nh, dh = S[..., 0] + gg * S[..., 1], S[..., 2] + gg * S[..., 3]
        nl, dl = S[..., 0] + S[..., 1] / gg, S[..., 2] + S[..., 3] / gg
        return _lfp(nh, dh, nl, dl, maximize=False), _lfp(nh, dh, nl, dl, maximize=True)
    if method == "sharp":
        lo_w = np.stack([sharp_weights(r, e, q, gamma, upper=False) for gamma in gammas])  # (G, n)
        hi_w = np.stack([sharp_weights(r, e, q, gamma, upper=True) for gamma in gammas])
    else:
        a, b = weight_box(e[None, :], g)
        hi_w, lo_w = np.where(r > 0, b, a), np.where(r > 0, a, b)
    vectors = np.concatenate([pi * r * lo_w, pi * lo_w, pi * r * hi_w, pi * hi_w], axis=0)  # (4G, n)
    sums = (vectors.sum(axis=1)[:, None] if counts is None else vectors @ counts.T)  # (4G, B)
    G = len(gammas)
    s_nl, s_dl, s_nh, s_dh = sums[:G], sums[G : 2 * G], sums[2 * G : 3 * G], sums[3 * G :]
    if estimator == "ipw":
        return s_nl / n, s_nh / n
    with np.errstate(invalid="ignore", divide="ignore"):
        return s_nl / s_dl, s_nh / s_dh


def bounds_at(reward: Any, pscore: Any, target_pscore: Any, gammas: Any, *, estimator: str = "snipw",
              method: str = "sharp", expected_reward: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(lower (G,), upper (G,)): the bounds on V(pi) at each Gamma, without resampling.

    ``reward``, ``pscore`` (nominal P(a_i | x_i)), ``target_pscore`` (pi(a_i | x_i)) and, for
    ``method="sharp"``, ``expected_reward`` (E[r | x_i, a_i] from a reward model): (n,).
    """
    g = check_gammas(gammas)
    _check_choice(estimator, ESTIMATORS, "estimator")
    _check_choice(method, METHODS, "method")
    r, e, pi, q = _inputs(reward, pscore, target_pscore, expected_reward, method)
    lower, upper = _bounds(r, e, pi, q, g, estimator, method, None)
    return lower[:, 0], upper[:, 0]


@dataclass
class SensitivityBounds:
    """Bounds on V(pi) per Gamma, with their bootstrap sampling interval.

    ``lower``/``upper`` (G,): the bounds on the sample; ``lower_ci_low``/``upper_ci_high``:
    the alpha/2 and 1 - alpha/2 bootstrap quantiles of the lower and upper bound.
    ``estimate``: the point estimate (the bounds at Gamma = 1).
    """

    gammas: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    lower_ci_low: np.ndarray
    upper_ci_high: np.ndarray
    estimate: float
    estimator: str
    method: str
    alpha: float
    n_bootstrap_samples: int
    truth: float | None = None
    extra: dict = field(default_factory=dict)

    def at(self, gamma: float) -> tuple[float, float]:
        """(lower, upper) at a Gamma of the grid."""
        hit = np.flatnonzero(np.isclose(self.gammas, gamma))
        if hit.size == 0:
            raise ValueError(f"gamma: {gamma:g} is not on the grid ({', '.join(f'{g:g}' for g in self.gammas)})")
        return float(self.lower[hit[0]]), float(self.upper[hit[0]])

    def to_dict(self) -> dict:
        """JSON-ready: lists of floats per Gamma."""
        return {"estimator": self.estimator, "method": self.method, "estimate": self.estimate,
                "gammas": self.gammas.tolist(), "lower": self.lower.tolist(), "upper": self.upper.tolist(),
                "lower_ci_low": self.lower_ci_low.tolist(), "upper_ci_high": self.upper_ci_high.tolist(),
                "alpha": self.alpha, "n_bootstrap_samples": self.n_bootstrap_samples, "truth": self.truth,
                **self.extra}


def _percentile_bootstrap(bounds: Any, lower: np.ndarray, upper: np.ndarray, n: int, B: int, alpha: float,
                          random_state: Any) -> tuple[np.ndarray, np.ndarray]:
    """(lower_ci_low, upper_ci_high) (G,): the alpha/2 quantile of the lower bound and the
    1 - alpha/2 quantile of the upper one over ``B`` resamples of the ``n`` rows;
    ``bounds(counts (b, n))`` gives both bounds on each resample, (G, b) each. ``B = 0``: the
    bounds themselves."""
    if not B:
        return lower.copy(), upper.copy()
    rng = np.random.default_rng(_seed_sequence(random_state))
    block = max(1, min(B, (1 << 22) // n))
    boot_lo, boot_hi = np.empty((len(lower), B)), np.empty((len(lower), B))
    for start in range(0, B, block):
        counts = _multinomial_counts_small(rng, n, min(block, B - start)).astype(np.float64)
        lo, hi = bounds(counts)
        boot_lo[:, start : start + lo.shape[1]], boot_hi[:, start : start + hi.shape[1]] = lo, hi
    return np.nanquantile(boot_lo, alpha / 2, axis=1), np.nanquantile(boot_hi, 1 - alpha / 2, axis=1)


def sensitivity_bounds(reward: Any, pscore: Any, target_pscore: Any, gammas: Any, *, estimator: str = "snipw",
                       method: str = "sharp", expected_reward: Any = None, n_bootstrap_samples: int = 200,
                       alpha: float = 0.05, random_state: Any = 0, truth: float | None = None) -> SensitivityBounds:
    """Bounds on V(pi) under the marginal sensitivity model at each Gamma of ``gammas``, with a
    percentile-bootstrap interval (``n_bootstrap_samples`` resamples of the rows; 0: none).

    Args:
        reward, pscore, target_pscore: (n,) the logged reward, the nominal propensity
            P(a_i | x_i) the log keeps, the target's probability of the logged action.
        gammas: the grid, numbers >= 1.
        estimator: ``snipw`` (the Hajek form) or ``ipw``.
        method: ``sharp`` (Dorn & Guo; rewards in {0, 1} and ``expected_reward`` needed) or
            ``zsb`` (the box; any reward).
        truth: carried along for reports (the bounds do not use it).
    """
    g = check_gammas(gammas)
    _check_choice(estimator, ESTIMATORS, "estimator")
    _check_choice(method, METHODS, "method")
    B = int(n_bootstrap_samples)
    if B < 0:
        raise ValueError(f"n_bootstrap_samples: expected an integer >= 0, got {n_bootstrap_samples!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    r, e, pi, q = _inputs(reward, pscore, target_pscore, expected_reward, method)
    n = r.shape[0]
    lower, upper = (v[:, 0] for v in _bounds(r, e, pi, q, g, estimator, method, None))
    lo_ci, hi_ci = _percentile_bootstrap(lambda counts: _bounds(r, e, pi, q, g, estimator, method, counts), lower,
                                         upper, n, B, alpha, random_state)
    point = _bounds(r, e, pi, q, np.ones(1), estimator, method, None)[0][0, 0]
    return SensitivityBounds(gammas=g, lower=lower, upper=upper, lower_ci_low=lo_ci, upper_ci_high=hi_ci,
                             estimate=float(point), estimator=estimator, method=method, alpha=float(alpha),
                             n_bootstrap_samples=B, truth=None if truth is None else float(truth))


# ------------------------------------------------------------------------------- doubly robust
def _worst_case_means(p: np.ndarray, e: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For a {0, 1} reward with mean p given (x, a) and nominal propensity e: the sharp bounds'
    worst-case means E[e w Y | x, a] (mu_lo convex, mu_hi concave, both piecewise linear in p)
    and their slopes in p."""
    L, U = e + (1.0 - e) / gamma, e + (1.0 - e) * gamma
    m = 1.0 / (1.0 + gamma)  # m U + (1 - m) L = 1
    hi_a, hi_b = p * U, m * U + (p - m) * L            # the ones take U up to mass m, then L
    lo_a, lo_b = p * L, (p - 1.0 + m) * U + (1.0 - m) * L  # the zeros take U first
    mu_hi, mu_lo = np.minimum(hi_a, hi_b), np.maximum(lo_a, lo_b)
    return mu_lo, mu_hi, np.where(lo_a >= lo_b, L, U), np.where(hi_a <= hi_b, U, L)


def dr_sensitivity_bounds(reward: Any, action: Any, action_dist: Any, target_dist: Any, estimated_rewards: Any,
                          gammas: Any, *, n_bootstrap_samples: int = 200, alpha: float = 0.05, random_state: Any = 0,
                          truth: float | None = None) -> SensitivityBounds:
    """Doubly robust sharp bounds on V(pi) for {0, 1} rewards at each Gamma, with a
    percentile-bootstrap interval.

    The sharp upper bound is V+ = E[sum_a pi(a|x) mu+(x, a)], mu+ = E[e w+ Y | x, a] the
    worst-case mean that Dorn & Guo's weights give; for a click it is a concave, piecewise-linear
    function of p(x, a) = P(Y = 1 | x, a) (the lower bound's mu- is convex). The estimate is the
    plug-in of a reward model q plus its first-order correction on the logged row,

        (1/n) sum_i [ sum_a pi(a|x_i) mu+(q(x_i, a)) + pi(a_i|x_i) / e_i mu+'(q_i) (r_i - q_i) ],

    (the efficient influence function's form, as in Dorn, Guo & Kallus 2022). The nominal
    propensities e are known (the log keeps them), so in expectation the correction turns
    mu+(q) into mu+(q) + mu+'(q)(p - q), a tangent of a concave function: never below mu+(p).
    So the upper bound is valid for any reward model and sharp when q is right, the lower
    bound likewise (convex); the IPS-form sharp bounds need q right to be valid. At Gamma = 1
    both are the ordinary DR estimate.

    Args:
        reward, action: (n,) the logged clicks and actions.
        action_dist: (n, K) the nominal P(a | x_i) for every action (the log's ``action_dist``).
        target_dist: (n, K) pi(a | x_i); estimated_rewards: (n, K) or (n, K, 1), q(x_i, a).
    """
    g = check_gammas(gammas)
    B = int(n_bootstrap_samples)
    if B < 0:
        raise ValueError(f"n_bootstrap_samples: expected an integer >= 0, got {n_bootstrap_samples!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    r = as_float_array(reward, "reward")
    check_ndim(r, "reward", (1,), "a 1-D array (n_rounds,)")
    if r.shape[0] == 0:
        raise ValueError("reward: expected at least one round, got 0")
    if not np.isin(r, (0.0, 1.0)).all():
        raise ValueError("reward: the doubly robust sharp bounds need rewards in {0, 1}")
    n = r.shape[0]
    a = np.asarray(action)
    check_rows(a, "action", n, "reward")
    arrays = {}
    for arr, name in ((action_dist, "action_dist"), (target_dist, "target_dist"), (estimated_rewards, "estimated_rewards")):
        x = as_float_array(arr, name)
        if x.ndim == 3:
            x = x[:, :, 0]
        check_ndim(x, name, (2,), "a 2-D array (n_rounds, n_actions)")
        check_rows(x, name, n, "reward")
        check_finite(x, name)
        arrays[name] = x
    E, P, Q = arrays["action_dist"], arrays["target_dist"], np.clip(arrays["estimated_rewards"], 0.0, 1.0)
    if not (E.shape == P.shape == Q.shape):
        raise ValueError(f"target_dist, estimated_rewards: expected the shape of action_dist {E.shape}, "
                         f"got {P.shape} and {Q.shape}")
    rows = np.arange(n)
    e_i, pi_i, q_i = E[rows, a], P[rows, a], Q[rows, a]
    if not (e_i > 0).all():
        raise ValueError(f"action_dist: the logged action's nominal propensity must be > 0, got 0 on row "
                         f"{int(np.flatnonzero(e_i <= 0)[0])}")
    terms_lo, terms_hi = np.empty((len(g), n)), np.empty((len(g), n))
    resid = pi_i / e_i * (r - q_i)
    step = max(1, (1 << 22) // Q.shape[1])  # rows per block: the (rows, K) temporaries stay near 32 MiB each
    for j, gamma in enumerate(g):
        _, _, d_lo, d_hi = _worst_case_means(q_i, e_i, gamma)
        for s in range(0, n, step):
            mu_lo, mu_hi, _, _ = _worst_case_means(Q[s : s + step], E[s : s + step], gamma)
            terms_lo[j, s : s + step] = (P[s : s + step] * mu_lo).sum(axis=1)
            terms_hi[j, s : s + step] = (P[s : s + step] * mu_hi).sum(axis=1)
        terms_lo[j] += d_lo * resid
        terms_hi[j] += d_hi * resid
    lower, upper = terms_lo.mean(axis=1), terms_hi.mean(axis=1)
    lo_ci, hi_ci = _percentile_bootstrap(lambda counts: (terms_lo @ counts.T / n, terms_hi @ counts.T / n), lower,
                                         upper, n, B, alpha, random_state)
    point = float(((P * Q).sum(axis=1) + pi_i / e_i * (r - q_i)).mean())
    return SensitivityBounds(gammas=g, lower=lower, upper=upper, lower_ci_low=lo_ci, upper_ci_high=hi_ci,
                             estimate=point, estimator="dr", method="sharp", alpha=float(alpha), n_bootstrap_samples=B,
                             truth=None if truth is None else float(truth))


# ------------------------------------------------------------------------------- breakdown
def _difference_bound(r, e, c, q, gamma, estimator, method, lowest: bool) -> float:
    """The lower (``lowest``) or upper bound of V(pi_1) - V(pi_2) at one Gamma;
    c = pi_1(a_i|x_i) - pi_2(a_i|x_i), or (pi_1, pi_2) for snipw's two ratios."""
    p1, p2 = c
    d = p1 - p2
    if method == "sharp":
        # the problem separates over (x, a): rows that count for pi_1 take the weights that lower
        # (raise) its value, rows that count for pi_2 the opposite
        lo_w, hi_w = sharp_weights(r, e, q, gamma, upper=False), sharp_weights(r, e, q, gamma, upper=True)
        w = np.where(d > 0, lo_w, hi_w) if lowest else np.where(d > 0, hi_w, lo_w)
        if estimator == "ipw":
            return float((d * w * r).mean())
        return float((p1 * w * r).sum() / (p1 * w).sum() - (p2 * w * r).sum() / (p2 * w).sum())
    if estimator == "ipw":  # the box, row by row: exact
        a, b = weight_box(e, gamma)
        w = np.where(d * r > 0, a, b) if lowest else np.where(d * r > 0, b, a)
        return float((d * w * r).mean())
    # snipw over the box: two linear-fractional programs apart (an outer bound: conservative)
    lo1, hi1 = _bounds(r, e, p1, None, np.array([gamma]), "snipw", "zsb", None)
    lo2, hi2 = _bounds(r, e, p2, None, np.array([gamma]), "snipw", "zsb", None)
    return float(lo1[0, 0] - hi2[0, 0]) if lowest else float(hi1[0, 0] - lo2[0, 0])


def breakdown_gamma(reward: Any, pscore: Any, target_pscore_1: Any, target_pscore_2: Any, *,
                    estimator: str = "snipw", method: str = "sharp", expected_reward: Any = None,
                    gamma_max: float = 1e4, rtol: float = 1e-4) -> float:
    """The smallest Gamma at which the bounds on V(pi_1) - V(pi_2) contain 0: up to it, the
    sign of the estimated difference holds for every confounder the model allows.

    1.0 when the point estimate of the difference is 0; ``inf`` when the sign holds up to
    ``gamma_max``. Found by bisection on log Gamma (the bounds widen with Gamma).
    """
    _check_choice(estimator, ESTIMATORS, "estimator")
    _check_choice(method, METHODS, "method")
    r, e, p1, q = _inputs(reward, pscore, target_pscore_1, expected_reward, method)
    p2 = as_float_array(target_pscore_2, "target_pscore_2")
    check_ndim(p2, "target_pscore_2", (1,), "a 1-D array (n_rounds,)")
    check_rows(p2, "target_pscore_2", r.shape[0], "reward")
    check_finite(p2, "target_pscore_2")
    check_gammas([gamma_max], "gamma_max")
    c = (p1, p2)
    point = _difference_bound(r, e, c, q, 1.0, estimator, method, lowest=True)
    if point == 0:
        return 1.0
    positive = point > 0

    def flips(gamma: float) -> bool:
        bound = _difference_bound(r, e, c, q, gamma, estimator, method, lowest=positive)
        return bound <= 0 if positive else bound >= 0

    if not flips(gamma_max):
        return float("inf")
    lo, hi = 0.0, float(np.log(gamma_max))
    while hi - lo > rtol:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if flips(float(np.exp(mid))) else (mid, hi)
    return float(np.exp(hi))


# ------------------------------------------------------------------------------- the true Gamma
def odds_ratio(p_full: Any, p_nominal: Any) -> np.ndarray:
    """max(OR, 1/OR) for OR = [p_full/(1 - p_full)] / [p_nominal/(1 - p_nominal)], elementwise:
    the Gamma a row needs. Equal probabilities give 1 (also at 0 and 1); a probability of 0
    or 1 against a different one gives inf."""
    pf, pn = np.asarray(p_full, np.float64), np.asarray(p_nominal, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_or = (np.log(pf) - np.log1p(-pf)) - (np.log(pn) - np.log1p(-pn))
    out = np.exp(np.abs(log_or))
    out = np.where(np.isclose(pf, pn, rtol=1e-12, atol=0.0), 1.0, out)
    return np.where(np.isnan(out), np.inf, out)


def gamma_star(pi_b_full: Any, pi_b_nominal: Any, action: Any = None,
               quantiles: Sequence[float] = (0.5, 0.9, 0.99)) -> dict:
    """The logger's true sensitivity parameter on a log, from its full distribution.

    ``pi_b_full`` (n, K): pi_b(a | x_i, s_i), what the logger did; ``pi_b_nominal`` (n, K):
    P(a | x_i), what the log keeps. Returns ``{"gamma_star": max over rows and actions,
    "quantiles": {q: quantile over rows of each row's max over actions}, "gamma_star_logged":
    max over rows at the logged action (when ``action`` is given; the bounds need only these)}``.
    """
    full = as_float_array(pi_b_full, "pi_b_full")
    nom = as_float_array(pi_b_nominal, "pi_b_nominal")
    check_ndim(full, "pi_b_full", (2,), "a 2-D array (n_rounds, n_actions)")
    if nom.shape != full.shape:
        raise ValueError(f"pi_b_nominal: expected the shape of pi_b_full {full.shape}, got {nom.shape}")
    if full.shape[0] == 0:
        raise ValueError("pi_b_full: expected at least one round, got 0")
    ratio = odds_ratio(full, nom)
    per_row = ratio.max(axis=1)
    out = {"gamma_star": float(per_row.max()),
           "quantiles": {f"{q:g}": float(np.quantile(per_row, q)) for q in quantiles}}
    if action is not None:
        a = np.asarray(action)
        check_rows(a, "action", full.shape[0], "pi_b_full")
        out["gamma_star_logged"] = float(ratio[np.arange(len(a)), a].max())
    return out


# ------------------------------------------------------------------------------- a whole log
@dataclass
class SensitivityReport:
    """The sensitivity analysis of one log: bounds per target (``targets``, the ``estimator``
    and ``method`` named; ``zsb``: the box bounds beside them; ``dr``: the doubly robust sharp
    bounds where they apply), the breakdown Gamma of each pair, and, where the logger's full
    distribution is known, its true Gamma*."""

    targets: dict[str, SensitivityBounds]
    zsb: dict[str, SensitivityBounds]
    breakdown: list[dict]
    gamma_star: dict | None
    estimator: str
    method: str
    dr: dict[str, SensitivityBounds] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready: ``{gamma_star, gamma_star_quantiles, gamma_star_logged, estimator, method,
        targets: {name: {gammas, lower, upper, lower_ci_low, upper_ci_high, truth, estimate,
        zsb_lower, zsb_upper, zsb_lower_ci_low, zsb_upper_ci_high[, dr_lower, dr_upper, dr_lower_ci_low,
        dr_upper_ci_high, dr_estimate]}}, breakdown: [{a, b, gamma}]}``."""
        gs = self.gamma_star or {}
        targets = {}
        for name, b in self.targets.items():
            row = {"gammas": b.gammas.tolist(), "lower": b.lower.tolist(), "upper": b.upper.tolist(),
                   "lower_ci_low": b.lower_ci_low.tolist(), "upper_ci_high": b.upper_ci_high.tolist(),
                   "truth": b.truth, "estimate": b.estimate}
            z = self.zsb.get(name)
            if z is not None:
                row.update(zsb_lower=z.lower.tolist(), zsb_upper=z.upper.tolist(),
                           zsb_lower_ci_low=z.lower_ci_low.tolist(), zsb_upper_ci_high=z.upper_ci_high.tolist())
            d = self.dr.get(name)
            if d is not None:
                row.update(dr_lower=d.lower.tolist(), dr_upper=d.upper.tolist(), dr_lower_ci_low=d.lower_ci_low.tolist(),
                           dr_upper_ci_high=d.upper_ci_high.tolist(), dr_estimate=d.estimate)
            targets[name] = row
        return {"gamma_star": gs.get("gamma_star"), "gamma_star_quantiles": gs.get("quantiles"),
                "gamma_star_logged": gs.get("gamma_star_logged"), "estimator": self.estimator, "method": self.method,
                "targets": targets, "breakdown": [dict(b) for b in self.breakdown]}

    def lines(self) -> list[str]:
        """Printable lines: Gamma*, then per target the bounds at each Gamma (truth marked),
        then the breakdown Gamma of each pair."""
        out = []
        if self.gamma_star:
            q = ", ".join(f"q{k} {v:,.3g}" for k, v in self.gamma_star["quantiles"].items())
            out.append(f"sensitivity: the logger's true Gamma* = {self.gamma_star['gamma_star']:,.4g} "
                       f"(max over logged rows and actions; per-row max: {q})")
        for name, b in self.targets.items():
            z = self.zsb.get(name)
            cells = []
            for j, g in enumerate(b.gammas):
                cell = f"G={g:g}: [{b.lower[j]:.4f}, {b.upper[j]:.4f}] (ci [{b.lower_ci_low[j]:.4f}, {b.upper_ci_high[j]:.4f}])"
                if z is not None and self.method != "zsb":
                    cell += f" zsb [{z.lower[j]:.4f}, {z.upper[j]:.4f}]"
                if name in self.dr:
                    cell += f" dr [{self.dr[name].lower[j]:.4f}, {self.dr[name].upper[j]:.4f}]"
                cells.append(cell)
            truth = "" if b.truth is None else f", truth {b.truth:.4f}"
            out.append(f"sensitivity {name} ({self.estimator} {self.method}{truth}): " + " | ".join(cells))
        for row in self.breakdown:
            out.append(f"sensitivity breakdown {row['a']} vs {row['b']}: the sign of V({row['a']}) - V({row['b']}) "
                       f"({row['difference']:+.4f}) can flip from Gamma = {row['gamma']:,.4g}")
        return out

    def plot(self, path: Any, title: str = "Sensitivity bounds against Gamma") -> Any:
        """One panel per target: the bounds against Gamma (log axis), their sampling interval
        shaded, ZSB's box bounds dashed, the truth (where known) and Gamma* marked. A PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from recsim_causal.io import atomic_path

        names = list(self.targets)
        cols = min(2, len(names))
        rows = -(-len(names) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.6 * rows), squeeze=False)
        star = (self.gamma_star or {}).get("gamma_star")
        for ax, name in zip(axes.ravel(), names):
            b, z = self.targets[name], self.zsb.get(name)
            ax.fill_between(b.gammas, b.lower_ci_low, b.upper_ci_high, color="tab:blue", alpha=0.15,
                            label=f"{100 * (1 - b.alpha):g}% sampling interval")
            ax.plot(b.gammas, b.lower, color="tab:blue", lw=2, label=f"{self.method} bounds ({self.estimator})")
            ax.plot(b.gammas, b.upper, color="tab:blue", lw=2)
            if z is not None and z is not b:
                ax.plot(z.gammas, z.lower, "--", color="tab:gray", lw=1, label="ZSB bounds")
                ax.plot(z.gammas, z.upper, "--", color="tab:gray", lw=1)
            d = self.dr.get(name)
            if d is not None:
                ax.plot(d.gammas, d.lower, ":", color="tab:green", lw=1.5, label="DR sharp bounds")
                ax.plot(d.gammas, d.upper, ":", color="tab:green", lw=1.5)
            if b.truth is not None:
                ax.axhline(b.truth, color="tab:red", lw=1.5, label="truth (SCM)")
            if star is not None and np.isfinite(star):
                ax.axvline(star, color="black", ls=":", lw=1.5, label=f"Gamma* = {star:,.3g}")
            if len(b.gammas) > 1 and b.gammas.max() / b.gammas.min() > 5:
                ax.set_xscale("log")
            ax.set_title(name)
            ax.set_xlabel("Gamma")
            ax.set_ylabel("policy value")
        for ax in axes.ravel()[len(names):]:
            ax.axis("off")
        axes.ravel()[0].legend(fontsize=7, loc="best")
        fig.suptitle(title)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
        plt.close(fig)
        return path


def _at_logged(arr: Any, action: np.ndarray, name: str) -> np.ndarray:
    a = as_float_array(arr, name)
    if a.ndim == 3:
        a = a[:, :, 0]
    check_ndim(a, name, (2,), "a 2-D array (n_rounds, n_actions)")
    check_rows(a, name, len(action), "action")
    return a[np.arange(len(action)), action]


def best_pair(estimates: dict[str, float]) -> list[list[str]]:
    """The default comparison: ``[[best, runner_up]]`` by estimated value (ties: the first
    named), the choice a log is used for; ``[]`` for fewer than two targets."""
    order = sorted(estimates, key=lambda k: -estimates[k])
    return [order[:2]] if len(order) >= 2 else []


def sensitivity_analysis(log: Any, action_dists: dict[str, Any], gammas: Any = DEFAULT_GAMMAS, *,
                         pairs: Sequence[Sequence[str]] | None = (), estimated_rewards: Any = None, pi_b_full: Any = None,
                         truths: dict[str, float] | None = None, estimator: str = "snipw", method: str | None = None,
                         n_bootstrap_samples: int = 200, alpha: float = 0.05, random_state: Any = 0,
                         add_gamma_star: bool = True) -> SensitivityReport:
    """Sensitivity bounds for every target on a log (a :class:`~recsim_causal.data.LoggedFeedback`).

    Args:
        log: a :class:`~recsim_causal.data.LoggedFeedback` (``reward``, ``action``, ``pscore``: the
            nominal P(a_i | x_i); ``action_dist`` for Gamma*).
        action_dists: ``{name: pi(. | x_i) (n, K)}``, each target on the logged contexts (or a
            Policy: its ``action_probs`` on the log's contexts).
        gammas: the Gamma grid (numbers >= 1).
        pairs: ``[(a, b), ...]`` target names whose comparison's breakdown Gamma to find; None:
            the decision the log is used for, the target with the highest estimate (at Gamma = 1)
            against the runner-up (:func:`best_pair`).
        estimated_rewards: q-hat (n, K) or (n, K, 1), a reward model's E[r | x, a]; needed by
            the sharp bounds. With clicks and the log's ``action_dist`` (P(a | x) for every
            action) the report adds the doubly robust sharp bounds (:func:`dr_sensitivity_bounds`).
        pi_b_full: (n, K) the logger's full distribution pi_b(. | x_i, s_i), known in a
            simulation: gives the true Gamma* (the log's ``action_dist`` is the nominal P(a | x)).
        method: ``sharp`` or ``zsb``; default sharp where the rewards are {0, 1} and
            ``estimated_rewards`` is given, else zsb (external logs with other rewards).
        truths: ``{name: V(pi)}`` where known, carried into the report.
        add_gamma_star: put the true Gamma* (when known) into the grid, so the bounds at it are
            reported.
    """
    action = np.asarray(log.action)
    r = np.asarray(log.reward, np.float64)
    binary = bool(np.isin(r, (0.0, 1.0)).all())
    if method is None:
        method = "sharp" if binary and estimated_rewards is not None else "zsb"
    _check_choice(method, METHODS, "method")
    g = check_gammas(gammas)
    q = _at_logged(estimated_rewards, action, "estimated_rewards") if estimated_rewards is not None else None
    unknown = [n for pair in pairs or () for n in pair if n not in action_dists]
    if unknown:
        raise ValueError(f"pairs: unknown target '{unknown[0]}' (known: {', '.join(action_dists)})")
    bad = [p for p in pairs or () if len(p) != 2]
    if bad:
        raise ValueError(f"pairs: expected pairs of two target names, got {list(bad[0])!r}")
    full = {name: d.action_probs(log.context) if hasattr(d, "action_probs") else d for name, d in action_dists.items()}
    probs = {name: _at_logged(d, action, f"action_dists[{name!r}]") for name, d in full.items()}
    star = None
    if pi_b_full is not None:
        if log.action_dist is None:
            raise ValueError("pi_b_full: the true Gamma* compares it with the log's action_dist (P(a | x)), "
                             "which this log does not keep")
        star = gamma_star(pi_b_full, log.action_dist, action=action)
        if add_gamma_star and np.isfinite(star["gamma_star"]):
            g = np.unique(np.r_[g, star["gamma_star"]])
    truths = truths or {}
    targets, zsb, dr = {}, {}, {}
    with_dr = binary and estimated_rewards is not None and log.action_dist is not None
    for name, p in probs.items():
        common = dict(estimator=estimator, n_bootstrap_samples=n_bootstrap_samples, alpha=alpha,
                      random_state=random_state, truth=truths.get(name))
        targets[name] = sensitivity_bounds(r, log.pscore, p, g, method=method, expected_reward=q, **common)
        zsb[name] = targets[name] if method == "zsb" else sensitivity_bounds(r, log.pscore, p, g, method="zsb", **common)
        if with_dr:
            dr[name] = dr_sensitivity_bounds(r, action, log.action_dist, full[name], estimated_rewards, g,
                                             n_bootstrap_samples=n_bootstrap_samples, alpha=alpha,
                                             random_state=random_state, truth=truths.get(name))
    breakdown = []
    if pairs is None:
        pairs = best_pair({name: t.estimate for name, t in targets.items()})
    for a, b in pairs:
        gamma = breakdown_gamma(r, log.pscore, probs[a], probs[b], estimator=estimator, method=method, expected_reward=q)
        breakdown.append({"a": a, "b": b, "gamma": gamma, "difference": targets[a].estimate - targets[b].estimate})
    return SensitivityReport(targets, zsb, breakdown, star, estimator, method, dr)
