"""Off-policy estimators with Open Bandit Pipeline 0.5.7's vocabulary, call shape and numbers.

Each estimator is a small dataclass that validates its hyperparameters on construction and
offers three entry points, in a dense (OBP) and a light form:

    estimate_policy_value(*, reward, action, pscore, action_dist,
                          estimated_rewards_by_reg_model=None, position=None, ...) -> float
    estimate_round_rewards(...)  -> (n,) array whose mean is the estimate
    estimate_interval(..., alpha=0.05, n_bootstrap_samples=10000, random_state=None,
                      method="bootstrap" | "normal" | "bernstein" | "hoeffding",
                      reward_range=None, max_weight=None) -> OBP's interval dict

    estimate_policy_value_light(*, reward, pscore, target_pscore, target_q, q_at_action)
    estimate_round_rewards_light(...), estimate_interval_light(...)

``action_dist`` may be (n, K) or OBP's (n, K, L); ``position`` selects the slot. The dense
path reduces the arrays to the (n,) vectors of :class:`~recsim_causal.ope.inputs.LightInputs`
and both paths call the same ``_terms`` formula. :func:`estimate_all` computes the shared
reductions once for many estimators (1M rounds x 100 actions, eight estimators: well under
a second on two cores).

Notation (OBP's): w(x,a) = pi_e(a|x) / pi_b(a|x), qhat(x, pi_e) = sum_a pi_e(a|x) qhat(x,a),
E_n = empirical mean over the n logged rounds.

Differences from OBP 0.5.7, all deliberate:
- NaN/inf inputs, pscore <= 0 and shape mismatches raise one-line errors naming the array;
  a target that puts mass where the logger cannot act (needs ``pi_b``) warns with the share.
- ``action_dist`` may also be 2-D (n, K) (OBP insists on 3-D).
- SNIPW and SNDR have no ``lambda_`` (OBP accepts one by inheritance and ignores it).
- DRos with lambda_=0 and SG-IPW with lambda_=1 return 0 where OBP divides 0/0 (w=0) and
  returns NaN: the limit of the shrunk weight, which is what the formula intends.
- Bootstrap intervals resample self-normalized estimators as ratios (see intervals.py).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from .inputs import LightInputs, RoundTerms, reduce_dense
from .intervals import estimate_interval_from_terms, estimate_intervals_from_terms

__all__ = [
    "BaseOffPolicyEstimator",
    "DirectMethod",
    "InverseProbabilityWeighting",
    "SelfNormalizedInverseProbabilityWeighting",
    "DoublyRobust",
    "SelfNormalizedDoublyRobust",
    "SwitchDoublyRobust",
    "DoublyRobustWithShrinkage",
    "SubGaussianInverseProbabilityWeighting",
    "SubGaussianDoublyRobust",
    "MarginalizedInverseProbabilityWeighting",
    "DM",
    "IPS",
    "IPW",
    "SNIPS",
    "SNIPW",
    "DR",
    "SNDR",
    "SwitchDR",
    "DRos",
    "SubGaussianIPS",
    "SGIPW",
    "SGDR",
    "MIPS",
    "SelfNormalizedMarginalizedInverseProbabilityWeighting",
    "SNMIPS",
    "estimate_all",
    "estimate_all_light",
    "estimate_all_intervals",
    "p_e_a_from_clusters",
    "slope",
    "tuned_lambdas",
]

_DENSE_KEYS = (
    "action_dist", "reward", "action", "pscore", "estimated_rewards_by_reg_model", "position",
    "estimated_pscore", "pi_b", "action_embed", "p_e_a", "context_weight",
)  # fmt: skip
_LIGHT_KEYS = (
    "target_pscore", "target_q", "q_at_action", "embed_pscore", "embed_target_pscore",
    "unsupported_mass",
)  # fmt: skip
# arrays OBP users pass around (OffPolicyEvaluation hands every estimator the full
# bandit_feedback); accepted and ignored, as OBP's **kwargs does
_IGNORED_KEYS = frozenset({
    "context", "action_context", "expected_reward", "n_rounds", "n_actions", "metadata",
    "estimated_importance_weights", "len_list",
})  # fmt: skip


def _split_arrays(arrays: dict[str, Any], who: str) -> tuple[str, dict[str, Any]]:
    """('dense' | 'light', the arrays that matter); TypeError on unknown names."""
    unknown = sorted(set(arrays) - set(_DENSE_KEYS) - set(_LIGHT_KEYS) - _IGNORED_KEYS)
    if unknown:
        raise TypeError(
            f"{who}: unexpected keyword {unknown} (dense keys: {list(_DENSE_KEYS)}; "
            f"light keys: reward, pscore, estimated_pscore, {', '.join(_LIGHT_KEYS)})"
        )
    given = {k: v for k, v in arrays.items() if v is not None and k not in _IGNORED_KEYS}
    light = [k for k in given if k in _LIGHT_KEYS]
    if light:
        dense_only = [k for k in given if k in _DENSE_KEYS
                      and k not in ("reward", "pscore", "estimated_pscore", "context_weight")]
        if dense_only:
            raise TypeError(f"{who}: pass either dense arrays {dense_only} or light vectors {light}, not both")
        return "light", given
    if "action_dist" not in given:
        raise TypeError(f"{who}: missing action_dist (or the light vectors {list(_LIGHT_KEYS)})")
    return "dense", given


def _to_inputs(arrays: dict[str, Any], who: str) -> LightInputs:
    kind, given = _split_arrays(arrays, who)
    if kind == "light":
        return LightInputs(**given)
    return reduce_dense(**given)


#: ``lambda_="auto"``: choose lambda_ from the data by SLOPE (see :class:`_SlopeTuned`).
AUTO = "auto"
#: SLOPE's default candidates for a clipping threshold (IPS, DR, Switch-DR): no clipping first.
CLIP_LAMBDAS = (np.inf, 1000.0, 500.0, 200.0, 100.0, 50.0, 20.0, 10.0, 5.0, 2.0, 1.0)


def _check_lambda(owner: str, value: Any, upper: float | None = None) -> None:
    if value == AUTO:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{owner}.lambda_: expected a number or 'auto', got {value!r}")
    if math.isnan(value):
        raise ValueError(f"{owner}.lambda_: must not be NaN")
    if value < 0 or (upper is not None and value > upper):
        rng = "[0, inf]" if upper is None else f"[0, {upper}]"
        raise ValueError(f"{owner}.lambda_: must be in {rng}, got {value}")


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den == 0 (the limits the shrinkage formulas intend)."""
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


@dataclass
class BaseOffPolicyEstimator(ABC):
    """Base class: subclasses define ``_requires`` and ``_terms(inputs) -> RoundTerms``.

    Subclasses declare their fields in OBP's positional order, ``estimator_name`` last.
    """

    _requires: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.estimator_name, str) or not self.estimator_name:
            raise ValueError(
                f"{type(self).__name__}.estimator_name: expected a non-empty str, "
                f"got {self.estimator_name!r}"
            )
        ue = getattr(self, "use_estimated_pscore", False)
        if not isinstance(ue, bool):
            raise ValueError(
                f"{type(self).__name__}.use_estimated_pscore: expected a bool, got {type(ue).__name__}"
            )

    # -- the formula ---------------------------------------------------------------
    @abstractmethod
    def _terms(self, inputs: LightInputs) -> RoundTerms:
        """The estimator's formula on the per-round vectors."""

    def _needs(self) -> tuple[str, ...]:
        req = self._requires
        if getattr(self, "use_estimated_pscore", False):
            req = tuple("estimated_pscore" if k == "pscore" else k for k in req)
        return req

    def terms(self, inputs: LightInputs) -> RoundTerms:
        """Check that ``inputs`` has what this estimator needs, then apply the formula (each
        round weighted by ``inputs.context_weight`` when given: a covariate-shift correction)."""
        inputs.require(self._needs(), type(self).__name__)
        terms = self._terms(inputs)
        return terms if inputs.context_weight is None else terms.weighted(inputs.context_weight)

    def _iw(self, inputs: LightInputs) -> np.ndarray:
        return inputs.iw(getattr(self, "use_estimated_pscore", False))

    # -- a priori ranges for the finite-sample intervals -----------------------------
    def effective_max_weight(self, max_weight: float) -> float:
        """The largest weight the formula uses when importance weights are at most
        ``max_weight`` (clipping and shrinkage lower it)."""
        return max_weight

    def term_ranges(self, reward_range: tuple[float, float], max_weight: float,
                    q_range: tuple[float, float] | None = None) -> dict[str, tuple[float, float]]:
        """A priori ranges of this estimator's RoundTerms vectors (``base``, ``num``,
        ``den``) for rewards in ``reward_range``, importance weights in [0, max_weight]
        and reward-model predictions in ``q_range`` (default: the reward range).
        Used by the ``bernstein`` and ``hoeffding`` intervals."""
        r_lo, r_hi = reward_range
        q_lo, q_hi = q_range if q_range is not None else reward_range
        W = self.effective_max_weight(float(max_weight))
        kind = self.kind
        if kind == "dm":
            return {"base": (q_lo, q_hi)}
        if kind == "ipw":
            out = {"num": (min(0.0, W * r_lo), max(0.0, W * r_hi))}
        else:  # "dr": qhat(x, pi_e) + w (r - qhat(x, a))
            out = {"base": (q_lo, q_hi), "num": (W * min(0.0, r_lo - q_hi), W * max(0.0, r_hi - q_lo))}
        out["den"] = (0.0, W)
        return out

    kind: ClassVar[str] = "ipw"  # the shape of the formula: "dm", "ipw" (w r) or "dr"

    # -- dense (OBP) API -----------------------------------------------------------
    def estimate_round_rewards(self, **arrays: Any) -> np.ndarray:
        """Per-round estimates (n,) whose mean is the estimate (OBP's _estimate_round_rewards)."""
        return self.terms(_to_inputs(arrays, type(self).__name__)).round_rewards()

    def estimate_policy_value(self, **arrays: Any) -> float:
        """Estimate V(pi_e) from OBP's keyword arrays (reward, action, pscore, action_dist,
        estimated_rewards_by_reg_model, position, ...) or from the light vectors."""
        return self.terms(_to_inputs(arrays, type(self).__name__)).value()

    def estimate_interval(
        self,
        *,
        alpha: float = 0.05,
        n_bootstrap_samples: int = 10000,
        random_state: Any = None,
        method: str = "bootstrap",
        bounds: tuple[float, float] | None = None,
        reward_range: tuple[float, float] | None = None,
        max_weight: float | None = None,
        **arrays: Any,
    ) -> dict[str, float]:
        """OBP's ``{"mean", "95.0% CI (lower)", "95.0% CI (upper)"}``; see ``intervals``.

        For ``method="bernstein"`` / ``"hoeffding"`` pass ``reward_range`` (the a priori
        range of a reward) and ideally ``max_weight`` (the largest pi_e(a|x) / pi_b(a|x)
        over all contexts and actions; default: the largest weight in the log)."""
        return estimate_all_intervals([self], alpha=alpha, n_bootstrap_samples=n_bootstrap_samples,
                                      random_state=random_state, method=method, bounds=bounds,
                                      reward_range=reward_range, max_weight=max_weight,
                                      **arrays)[self.estimator_name]

    # -- light API -----------------------------------------------------------------
    def estimate_policy_value_light(self, **vectors: Any) -> float:
        """Estimate from (n,) vectors: reward, pscore, target_pscore, target_q, q_at_action."""
        return self.terms(LightInputs.from_kwargs(vectors)).value()

    def estimate_round_rewards_light(self, **vectors: Any) -> np.ndarray:
        """Per-round estimates from the (n,) vectors."""
        return self.terms(LightInputs.from_kwargs(vectors)).round_rewards()

    def estimate_interval_light(
        self,
        *,
        alpha: float = 0.05,
        n_bootstrap_samples: int = 10000,
        random_state: Any = None,
        method: str = "bootstrap",
        bounds: tuple[float, float] | None = None,
        **vectors: Any,
    ) -> dict[str, float]:
        """Interval from the (n,) vectors."""
        return estimate_interval_from_terms(
            self.terms(LightInputs.from_kwargs(vectors)),
            alpha=alpha,
            n_bootstrap_samples=n_bootstrap_samples,
            random_state=random_state,
            method=method,
            bounds=bounds,
        )


def slope(round_rewards: Sequence[np.ndarray], delta: float = 0.1) -> int:
    """SLOPE: the index of the candidate to use, from each candidate's per-round estimates.

    Each candidate k (ordered from least to most biased, e.g. from no clipping to the most)
    comes with its estimate theta_k = mean(r_k) and a confidence width
    cnf_k = t_{n-1}(1 - delta) sqrt(var(r_k) / (n - 1)) (the Student-t half-width of a
    one-sided (1 - delta) bound; ``var`` with ddof 0, as OBP). Going through the candidates
    from the widest to the narrowest, a candidate is accepted while its estimate stays within
    cnf_i + C cnf_j of every accepted one (C = sqrt(6) - 1); the last accepted is chosen.
    This is OBP 0.5.7's ``_tune_hyperparam_with_slope`` (SLOPE++), step for step, ties
    included (``np.argsort`` on the candidates in the order given).

    References: Y. Su, P. Srinath, A. Krishnamurthy. "Adaptive Estimator Selection for
    Off-Policy Evaluation.", ICML 2020. G. Tucker, J. Lee. "Improved Estimator Selection for
    Off-Policy Evaluation.", 2021.
    """
    from scipy import stats

    C = math.sqrt(6) - 1
    theta, cnf = [], []
    for r in round_rewards:
        n = r.shape[0]
        theta.append(float(r.mean()))
        cnf.append(float(math.sqrt(np.var(r) / (n - 1)) * stats.t(n - 1).ppf(1.0 - delta)))
    order = np.argsort(cnf)[::-1]
    kept_theta: list[float] = []
    kept_cnf: list[float] = []
    for i, k in enumerate(order):
        if kept_theta and not (np.abs(np.array(kept_theta) - theta[k]) <= cnf[k] + C * np.array(kept_cnf)).all():
            return int(order[i - 1])
        kept_theta.append(theta[k])
        kept_cnf.append(cnf[k])
    return int(order[-1])


@dataclass
class _SlopeTuned(BaseOffPolicyEstimator):
    """``lambda_="auto"``: lambda_ chosen from the data by :func:`slope` over ``lambdas``.

    ``lambdas`` (keyword only): the candidates (default: the class's ``LAMBDAS``), taken in
    OBP's order (``LAMBDAS_DESCENDING``: largest first for clipping thresholds, smallest first
    for shrinkage strengths); ``delta``: SLOPE's confidence level (OBP's default 0.1). The
    chosen value is :meth:`tuned_lambda`; the estimate and every interval use it (the interval
    does not account for the choice; see ``diagnostics.interval_validity``).
    """

    LAMBDAS: ClassVar[tuple[float, ...]] = ()
    LAMBDAS_DESCENDING: ClassVar[bool] = True
    lambdas: tuple[float, ...] | None = field(default=None, kw_only=True)
    delta: float = field(default=0.1, kw_only=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        owner = type(self).__name__
        upper = getattr(self, "LAMBDA_MAX", None)
        if self.lambdas is not None:
            if isinstance(self.lambdas, (str, bytes)) or not isinstance(self.lambdas, Sequence) or not len(self.lambdas):
                raise ValueError(f"{owner}.lambdas: expected a non-empty list of numbers, got {self.lambdas!r}")
            for v in self.lambdas:
                if v == AUTO:
                    raise ValueError(f"{owner}.lambdas: expected numbers, got 'auto'")
                _check_lambda(owner, v, upper)
        if isinstance(self.delta, bool) or not isinstance(self.delta, (int, float)) or not 0 < self.delta < 1:
            raise ValueError(f"{owner}.delta: expected a number in (0, 1), got {self.delta!r}")
        _check_lambda(owner, self.lambda_, upper)

    def candidates(self) -> list[float]:
        """The candidate lambdas in the order SLOPE visits them (OBP's sort)."""
        grid = [float(v) for v in (self.lambdas if self.lambdas is not None else self.LAMBDAS)]
        return sorted(grid, reverse=self.LAMBDAS_DESCENDING)

    def tuned_lambda(self, inputs: LightInputs) -> float:
        """lambda_ itself, or with ``lambda_="auto"`` SLOPE's choice on ``inputs`` (memoized per inputs)."""
        if self.lambda_ != AUTO:
            return float(self.lambda_)
        grid = self.candidates()
        key = f"slope:{type(self).__name__}:{grid}:{self.delta}:{getattr(self, 'use_estimated_pscore', False)}"

        def choose() -> np.ndarray:
            rr = [replace(self, lambda_=v).terms(inputs).round_rewards() for v in grid]
            return np.array([grid[slope(rr, self.delta)]])

        return float(inputs.cached(key, choose)[0])

    def terms(self, inputs: LightInputs) -> RoundTerms:
        if self.lambda_ == AUTO:
            return replace(self, lambda_=self.tuned_lambda(inputs)).terms(inputs)
        return super().terms(inputs)

    def effective_max_weight(self, max_weight: float) -> float:
        if self.lambda_ == AUTO:  # whichever candidate SLOPE picks
            return max(replace(self, lambda_=v).effective_max_weight(max_weight) for v in self.candidates())
        return self._effective_max_weight(max_weight)

    def _effective_max_weight(self, max_weight: float) -> float:
        return min(max_weight, self.lambda_)


# =============================================================================== estimators
@dataclass
class DirectMethod(BaseOffPolicyEstimator):
    """Direct Method (DM).

    V_DM = E_n[ qhat(x_i, pi_e) ] = E_n[ sum_a pi_e(a|x_i) qhat(x_i, a) ]

    Unbiased only if qhat is; no importance weights, so low variance.

    References: A. Beygelzimer and J. Langford. "The offset tree for learning with partial
    labels.", 2009. M. Dudik, D. Erhan, J. Langford, L. Li. "Doubly Robust Policy Evaluation
    and Optimization.", 2014.
    """

    estimator_name: str = "dm"
    _requires: ClassVar[tuple[str, ...]] = ("target_q",)
    kind: ClassVar[str] = "dm"

    def _terms(self, inputs: LightInputs) -> RoundTerms:
        return RoundTerms(base=inputs.target_q)


@dataclass
class InverseProbabilityWeighting(_SlopeTuned):
    """Inverse Probability Weighting (IPW / IPS), with optional weight clipping.

    V_IPW = E_n[ min(w(x_i, a_i), lambda_) r_i ]

    Unbiased when pi_b is known and lambda_ = inf; clipping (OBP: ``np.minimum(iw,
    lambda_)``) trades bias for variance.

    References: A. Strehl, J. Langford, L. Li, S. Kakade. "Learning from Logged Implicit
    Exploration Data.", 2010. Y. Su, M. Dimakopoulou, A. Krishnamurthy, M. Dudik. "Doubly
    Robust Off-Policy Evaluation with Shrinkage.", 2020.
    """

    lambda_: float | str = np.inf
    use_estimated_pscore: bool = False
    estimator_name: str = "ipw"
    _requires: ClassVar[tuple[str, ...]] = ("reward", "pscore", "target_pscore")
    LAMBDAS: ClassVar[tuple[float, ...]] = CLIP_LAMBDAS

    def _terms(self, inputs: LightInputs) -> RoundTerms:
        iw = self._iw(inputs)
        if self.lambda_ < np.inf:
            iw = np.minimum(iw, self.lambda_)
        return RoundTerms(num=inputs.reward * iw)


@dataclass
class SelfNormalizedInverseProbabilityWeighting(BaseOffPolicyEstimator):
    """Self-Normalized Inverse Probability Weighting (SNIPW / SNIPS).

    V_SNIPW = E_n[ w(x_i, a_i) r_i ] / E_n[ w(x_i, a_i) ]

    Biased but consistent; bounded by the reward range.

    References: A. Swaminathan and T. Joachims. "The Self-normalized Estimator for
    Counterfactual Learning.", 2015. N. Kallus and M. Uehara. "Intrinsically Efficient,
    Stable, and Bounded Off-Policy Evaluation for Reinforcement Learning.", 2019.
    """

    use_estimated_pscore: bool = False
    estimator_name: str = "snipw"
    _requires: ClassVar[tuple[str, ...]] = ("reward", "pscore", "target_pscore")

    def _terms(self, inputs: LightInputs) -> RoundTerms:
        iw = self._iw(inputs)
        return RoundTerms(num=inputs.reward * iw, den=iw)


@dataclass
class DoublyRobust(_SlopeTuned):
    """Doubly Robust (DR), with optional weight clipping.

    V_DR = E_n[ qhat(x_i, pi_e) + min(w(x_i, a_i), lambda_) (r_i - qhat(x_i, a_i)) ]

    Unbiased if either pi_b or qhat is right (lambda_ = inf); with qhat = q it has the
    smallest variance of the unbiased estimators. A finite lambda_ is OBP's "DR with
    pessimistic shrinkage" (Su et al. 2020).

    References: M. Dudik, D. Erhan, J. Langford, L. Li. "Doubly Robust Policy Evaluation
    and Optimization.", 2014. M. Farajtabar, Y. Chow, M. Ghavamzadeh. "More Robust Doubly
    Robust Off-policy Evaluation.", 2018.
    """

    lambda_: float | str = np.inf
    use_estimated_pscore: bool = False
    estimator_name: str = "dr"
    _requires: ClassVar[tuple[str, ...]] = (
        "reward", "pscore", "target_pscore", "target_q", "q_at_action",
    )  # fmt: skip
    kind: ClassVar[str] = "dr"
    LAMBDAS: ClassVar[tuple[float, ...]] = CLIP_LAMBDAS

    def _terms(self, inputs: LightInputs) -> RoundTerms:
        iw = self._iw(inputs)
        if self.lambda_ < np.inf:
            iw = np.minimum(iw, self.lambda_)
        return RoundTerms(base=inputs.target_q, num=iw * inputs.residual())


@dataclass
class SelfNormalizedDoublyRobust(BaseOffPolicyEstimator):
    """Self-Normalized Doubly Robust (SNDR).

    V_SNDR = E_n[ qhat(x_i, pi_e) + w(x_i, a_i) (r_i - qhat(x_i, a_i)) / E_n[w(x_i, a_i)] ]

    References: M. Dudik et al. 2014 (as DR). N. Kallus and M. Uehara. "Intrinsically
    Efficient, Stable, and Bounded Off-Policy Evaluation for Reinforcement Learning.", 2019.
    """

    use_estimated_pscore: bool = False
    estimator_name: str = "sndr"
    _requires: ClassVar[tuple[str, ...]] = DoublyRobust._requires
    kind: ClassVar[str] = "dr"

    def _terms(self, inputs: LightInputs) -> RoundTerms:
        iw = self._iw(inputs)
        return RoundTerms(base=inputs.target_q, num=iw * inputs.residual(), den=iw)


@dataclass
class SwitchDoublyRobust(_SlopeTuned):
    """Switch Doubly Robust (Switch-DR).

    V_SwitchDR = E_n[ qhat(x_i, pi_e) + w(x_i, a_i) (r_i - qhat(x_i, a_i)) 1{w(x_i, a_i) <= lambda_} ]

    DR where the weight is small, DM where it exceeds lambda_ (lambda_ = inf: DR;
    lambda_ = 0: DM except rounds with w = 0, which contribute 0 anyway).

    References: Y.-X. Wang, A. Agarwal, M. Dudik. "Optimal and Adaptive Off-policy
    Evaluation in Contextual Bandits.", 2017.
    """

    lambda_: float | str = np.inf
    use_estimated_pscore: bool = False
    estimator_name: str = "switch-dr"
    _requires: ClassVar[tuple[str, ...]] = DoublyRobust._requires
    kind: ClassVar[str] = "dr"
    LAMBDAS: ClassVar[tuple[float, ...]] = CLIP_LAMBDAS

    def _terms(self, inputs: LightInputs) -> RoundTerms:
        iw = self._iw(inputs)
        switch = np.array(iw <= self.lambda_, dtype=int)
        return RoundTerms(base=inputs.target_q, num=switch * iw * inputs.residual())


@dataclass
class DoublyRobustWithShrinkage(_SlopeTuned):
    """Doubly Robust with optimistic shrinkage (DRos).

    V_DRos = E_n[ qhat(x_i, pi_e) + lambda_ w / (w^2 + lambda_) * (r_i - qhat(x_i, a_i)) ],
    w = w(x_i, a_i).

    lambda_ = 0 gives DM, lambda_ = inf gives DR. OBP's default lambda_ is 0.0 (so DM!);
    set it.

    References: Y. Su, M. Dimakopoulou, A. Krishnamurthy, M. Dudik. "Doubly Robust
    Off-Policy Evaluation with Shrinkage.", 2020.
    """

    lambda_: float | str = 0.0
    use_estimated_pscore: bool = False
    estimator_name: str = "dr-os"
    _requires: ClassVar[tuple[str, ...]] = DoublyRobust._requires
    kind: ClassVar[str] = "dr"
    LAMBDAS: ClassVar[tuple[float, ...]] = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, np.inf)
    LAMBDAS_DESCENDING: ClassVar[bool] = False

    def _effective_max_weight(self, max_weight: float) -> float:
        # lambda w / (w^2 + lambda) <= min(w, sqrt(lambda) / 2)
        return max_weight if self.lambda_ == np.inf else min(max_weight, math.sqrt(self.lambda_) / 2)

    def _terms(self, inputs: LightInputs) -> RoundTerms:
        iw = self._iw(inputs)
        if self.lambda_ < np.inf:
            iw = _safe_div(self.lambda_ * iw, iw**2 + self.lambda_)
        return RoundTerms(base=inputs.target_q, num=iw * inputs.residual())


class _SubGaussianWeights(_SlopeTuned):
    """Shared by SG-IPW and SG-DR: lambda_ in [0, 1] and the shrunk weight
    w / (1 - lambda_ + lambda_ w). Subclasses declare ``lambda_``."""

    lambda_: float | str  # a dataclass field of each subclass (not of this class)
    LAMBDA_MAX: ClassVar[float] = 1.0
    LAMBDAS: ClassVar[tuple[float, ...]] = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
    LAMBDAS_DESCENDING: ClassVar[bool] = False

    def _effective_max_weight(self, max_weight: float) -> float:
        return max_weight / (1 - self.lambda_ + self.lambda_ * max_weight) if max_weight > 0 else 0.0

    def _shrunk_iw(self, inputs: LightInputs) -> np.ndarray:
        iw = self._iw(inputs)
        return _safe_div(iw, 1 - self.lambda_ + self.lambda_ * iw)


@dataclass
class SubGaussianInverseProbabilityWeighting(_SubGaussianWeights):
    """Sub-Gaussian Inverse Probability Weighting (SG-IPW).

    V_SGIPW = E_n[ w / (1 - lambda_ + lambda_ w) * r_i ],  w = w(x_i, a_i), lambda_ in [0, 1].

    lambda_ = 0 gives IPW; larger lambda_ shrinks large weights (power-mean correction).

    References: A. M. Metelli, A. Russo, M. Restelli. "Subgaussian and Differentiable
    Importance Sampling for Off-Policy Evaluation and Learning.", 2021.
    """

    lambda_: float = 0.0
    use_estimated_pscore: bool = False
    estimator_name: str = "sg-ipw"
    _requires: ClassVar[tuple[str, ...]] = InverseProbabilityWeighting._requires

    def _terms(self, inputs: LightInputs) -> RoundTerms:
        return RoundTerms(num=self._shrunk_iw(inputs) * inputs.reward)


@dataclass
class SubGaussianDoublyRobust(_SubGaussianWeights):
    """Sub-Gaussian Doubly Robust (SG-DR).

    V_SGDR = E_n[ qhat(x_i, pi_e) + w / (1 - lambda_ + lambda_ w) (r_i - qhat(x_i, a_i)) ].

    References: A. M. Metelli, A. Russo, M. Restelli, 2021 (as SG-IPW).
    """

    lambda_: float = 0.0
    use_estimated_pscore: bool = False
    estimator_name: str = "sg-dr"
    _requires: ClassVar[tuple[str, ...]] = DoublyRobust._requires
    kind: ClassVar[str] = "dr"

    def _terms(self, inputs: LightInputs) -> RoundTerms:
        return RoundTerms(base=inputs.target_q, num=self._shrunk_iw(inputs) * inputs.residual())


@dataclass
class MarginalizedInverseProbabilityWeighting(BaseOffPolicyEstimator):
    """Marginalized Inverse Probability Weighting over action embeddings (MIPW / MIPS).

    V_MIPS = E_n[ w(x_i, e_i) r_i ],  w(x, e) = p(e | x, pi_e) / p(e | x, pi_b),
    p(e | x, pi) = sum_a pi(a|x) p(e|a),

    with e_i the logged action's embedding (discrete categories; in recsim-causal the
    cluster id of the item's text embedding). With several embedding dimensions e is the
    joint embedding: p(e | a) = prod_d p(e_d | a) (the dimensions independent given the
    action, as ``p_e_a`` describes them) and p(e | x, pi) = sum_a pi(a|x) prod_d p(e_d|a),
    exactly as OBP 0.5.7's ``MarginalizedInverseProbabilityWeighting`` computes it from
    ``p_e_a`` (not the product of per-dimension marginal ratios, which is a different
    weight). Unbiased when the reward depends on the action only
    through e (no direct effect) and the embedding has common support; its variance
    does not grow with K the way IPS's does.

    Dense inputs (OBP's): ``action_embed`` (n, n_dim) int, ``pi_b`` (n, K[, L]) the
    logger, ``action_dist`` the target, ``p_e_a`` (K, n_cat, n_dim) = p(e_d = c | a).
    For a deterministic item -> cluster map use :func:`p_e_a_from_clusters`.
    Light inputs: ``embed_pscore`` = p(e_i|x_i, pi_b), ``embed_target_pscore`` =
    p(e_i|x_i, pi_e). OBP's alternative of fitting pi(a | x, e) by a classifier when
    ``p_e_a`` is unknown, and its embedding selection, are not implemented.

    References: Y. Saito and T. Joachims. "Off-Policy Evaluation for Large Action Spaces
    via Embeddings.", ICML 2022.
    """

    n_actions: int | None = None
    estimator_name: str = "mipw"
    _requires: ClassVar[tuple[str, ...]] = ("reward", "embed_pscore", "embed_target_pscore")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_actions is not None and (
            isinstance(self.n_actions, bool) or not isinstance(self.n_actions, (int, np.integer)) or self.n_actions < 2
        ):
            raise ValueError(f"{type(self).__name__}.n_actions: expected an int >= 2, got {self.n_actions!r}")

    def _terms(self, inputs: LightInputs) -> RoundTerms:
        w = inputs.cached("w_x_e", lambda: inputs.embed_target_pscore / inputs.embed_pscore)
        return RoundTerms(num=inputs.reward * w)


@dataclass
class SelfNormalizedMarginalizedInverseProbabilityWeighting(MarginalizedInverseProbabilityWeighting):
    """Self-normalized MIPS (SNMIPW / SNMIPS): V = E_n[ w(x_i, e_i) r_i ] / E_n[ w(x_i, e_i) ].

    Same joint-embedding weight as :class:`MarginalizedInverseProbabilityWeighting`. (OBP
    0.5.7's ``SelfNormalizedMarginalizedInverseProbabilityWeighting`` multiplies
    per-dimension marginals instead; the two agree for a one-dimensional embedding.)

    References: Y. Saito and T. Joachims, ICML 2022 (as MIPS).
    """

    estimator_name: str = "snmipw"

    def _terms(self, inputs: LightInputs) -> RoundTerms:
        w = inputs.cached("w_x_e", lambda: inputs.embed_target_pscore / inputs.embed_pscore)
        return RoundTerms(num=inputs.reward * w, den=w)


def p_e_a_from_clusters(action_cluster: Any, n_clusters: int | None = None) -> np.ndarray:
    """p(e | a) for a deterministic action -> category map: one-hot (K, n_clusters, 1)."""
    c = np.asarray(action_cluster)
    if c.ndim != 1 or c.dtype.kind not in "iu":
        raise ValueError(f"action_cluster: expected a 1-D integer array, got {c.dtype} {c.shape}")
    if c.size and c.min() < 0:
        raise ValueError("action_cluster: cluster ids must be >= 0")
    m = int(c.max()) + 1 if n_clusters is None else int(n_clusters)
    if c.size and c.max() >= m:
        raise ValueError(f"action_cluster: ids must be < n_clusters={m}")
    out = np.zeros((c.shape[0], m, 1))
    out[np.arange(c.shape[0]), c, 0] = 1.0
    return out


# ============================================================================== aliases
DM = DirectMethod
IPS = IPW = InverseProbabilityWeighting
SNIPS = SNIPW = SelfNormalizedInverseProbabilityWeighting
DR = DoublyRobust
SNDR = SelfNormalizedDoublyRobust
SwitchDR = SwitchDoublyRobust
DRos = DoublyRobustWithShrinkage
SubGaussianIPS = SGIPW = SubGaussianInverseProbabilityWeighting
SGDR = SubGaussianDoublyRobust
MIPS = MarginalizedInverseProbabilityWeighting
SNMIPS = SelfNormalizedMarginalizedInverseProbabilityWeighting


# ============================================================================== many at once
def _names(estimators: Sequence[BaseOffPolicyEstimator]) -> list[str]:
    names = [e.estimator_name for e in estimators]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(
            f"estimate_all: duplicate estimator_name {dup}; give each estimator a distinct "
            "estimator_name (e.g. IPS(lambda_=100, estimator_name='ipw-clip100'))"
        )
    return names


def estimate_all(estimators: Sequence[BaseOffPolicyEstimator], **arrays: Any) -> dict[str, float]:
    """{estimator_name: estimate} for many estimators, reducing the dense arrays once.

    Pass the dense OBP arrays (``action_dist``, ``estimated_rewards_by_reg_model``, ...)
    or the light vectors (``target_pscore``, ``target_q``, ``q_at_action``, ...).
    """
    names = _names(estimators)
    inputs = _to_inputs(arrays, "estimate_all")
    return {name: est.terms(inputs).value() for name, est in zip(names, estimators)}


def estimate_all_light(estimators: Sequence[BaseOffPolicyEstimator], **vectors: Any) -> dict[str, float]:
    """{estimator_name: estimate} from the light (n,) vectors only (reward, pscore,
    target_pscore, target_q, q_at_action, ...): O(n) memory, for logs far larger than n x K."""
    names = _names(estimators)
    inputs = LightInputs.from_kwargs(vectors)
    return {name: est.terms(inputs).value() for name, est in zip(names, estimators)}


def estimate_all_intervals(
    estimators: Sequence[BaseOffPolicyEstimator],
    *,
    alpha: float = 0.05,
    n_bootstrap_samples: int = 10000,
    random_state: Any = None,
    method: str = "bootstrap",
    bounds: tuple[float, float] | None = None,
    reward_range: tuple[float, float] | None = None,
    max_weight: float | None = None,
    **arrays: Any,
) -> dict[str, dict[str, float]]:
    """{estimator_name: interval dict}; the bootstrap resamples are shared by all estimators.

    ``reward_range`` (and ``max_weight``) give the finite-sample methods their a priori
    ranges (:meth:`BaseOffPolicyEstimator.term_ranges`); see ``intervals``.
    """
    names = _names(estimators)
    inputs = _to_inputs(arrays, "estimate_all_intervals")
    terms = [est.terms(inputs) for est in estimators]
    ranges = value_range = None
    if reward_range is not None:
        value_range = check_reward_range(reward_range, inputs.reward)
        if max_weight is not None and not (math.isfinite(float(max_weight)) and float(max_weight) > 0):
            raise ValueError(f"max_weight: expected the largest importance weight, a number > 0, got {max_weight!r}")
        ranges = [est.term_ranges(value_range, weight_bound(est, inputs, max_weight),
                                  reward_model_range(inputs, value_range)) for est in estimators]
    out = estimate_intervals_from_terms(
        terms,
        alpha=alpha,
        n_bootstrap_samples=n_bootstrap_samples,
        random_state=random_state,
        method=method,
        bounds=bounds,
        ranges=ranges,
        value_range=value_range,
    )
    return dict(zip(names, out))


def check_reward_range(reward_range: Any, reward: np.ndarray | None) -> tuple[float, float]:
    """``reward_range`` as (low, high), finite with low < high and holding every logged reward
    (a finite-sample bound's guarantee rests on it), or a one-line ValueError."""
    try:
        lo, hi = (float(v) for v in reward_range)
    except (TypeError, ValueError):
        raise ValueError(f"reward_range: expected (low, high), got {reward_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"reward_range: expected finite (low, high) with low < high, got {(lo, hi)}")
    if reward is not None and reward.size:
        out = (reward < lo) | (reward > hi)
        if out.any():
            k, bad = int(out.sum()), float(reward[np.argmax(out)])
            raise ValueError(f"reward: {k} of {reward.size} rewards lie outside reward_range [{lo:g}, {hi:g}] "
                             f"(e.g. {bad:g}): the finite-sample bound needs every reward inside it")
    return lo, hi


def tuned_lambdas(estimators: Sequence[BaseOffPolicyEstimator], **arrays: Any) -> dict[str, float]:
    """{estimator_name: the lambda_ it uses on these arrays} for the estimators with
    ``lambda_="auto"`` (SLOPE's choice; the dense or light arrays of :func:`estimate_all`)."""
    auto = [e for e in estimators if getattr(e, "lambda_", None) == AUTO]
    if not auto:
        return {}
    inputs = _to_inputs(arrays, "tuned_lambdas")
    return {e.estimator_name: e.tuned_lambda(inputs) for e in auto}


def weight_bound(est: BaseOffPolicyEstimator, inputs: LightInputs, given: float | None) -> float:
    """The weight bound for ``est``'s finite-sample ranges: ``given`` (a priori), else the
    largest weight in the log (then the bound is approximate)."""
    if given is not None:
        return float(given)
    if isinstance(est, MarginalizedInverseProbabilityWeighting):
        return float((inputs.embed_target_pscore / inputs.embed_pscore).max())
    if est.kind == "dm":
        return 0.0
    return float(est._iw(inputs).max())


def reward_model_range(inputs: LightInputs, reward_range: tuple[float, float]) -> tuple[float, float]:
    """The reward range, widened to the reward model's predictions when they leave it."""
    lo, hi = reward_range
    for v in (inputs.target_q, inputs.q_at_action):
        if v is not None and v.size:
            lo, hi = min(lo, float(v.min())), max(hi, float(v.max()))
    return lo, hi
