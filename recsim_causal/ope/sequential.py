"""Sequential (session) off-policy estimators with SCOPE-RL's names and formulas.

Logged trajectories i = 1..n, steps t = 0..T_i - 1: (s_t, a_t, r_t, pi_b(a_t | s_t)). With the
per-decision weight w_{0:t} = prod_{t' <= t} pi_e(a_t' | s_t') / pi_b(a_t' | s_t') (w_{0:-1} = 1),
the trajectory weight w_{0:T-1}, and E_n the mean over trajectories:

    TIS     E_n[ sum_t gamma^t w_{0:T-1} r_t ]                            (Precup et al. 2000)
    PDIS    E_n[ sum_t gamma^t w_{0:t} r_t ]                              (Precup et al. 2000)
    SNTIS   TIS with w_{0:T-1} / E_n[w_{0:T-1}]
    SNPDIS  PDIS with w_{0:t} / E_n[w_{0:t}] at each step t
    DR      E_n[ sum_t gamma^t (w_{0:t} (r_t - Qhat(s_t, a_t)) + w_{0:t-1} Vhat(s_t)) ]
            with Vhat(s) = sum_a pi_e(a | s) Qhat(s, a)                    (Jiang & Li 2016)
    SNDR    DR with w_{0:t} / E_n[w_{0:t}] and w_{0:t-1} / E_n[w_{0:t-1}]
    DM      E_n[ Vhat(s_0) ], Qhat from fitted-Q evaluation (:class:`FittedQEvaluation`, Le et al. 2019)
    MIS     E_n[ sum_t gamma^t w_t(s_t) rho_t r_t ]                      (state-action marginal IS)
    MDR     E_n[ sum_t gamma^t (w_t(s_t) rho_t (r_t - Qhat(s_t, a_t)) + w_{t-1}(s_{t-1}) rho_{t-1} Vhat(s_t)) ]
            with rho_t = pi_e(a_t|s_t) / pi_b(a_t|s_t), w_t(s) = d^e_t(s) / d^b_t(s) the state-marginal
            ratio learned from the log (``state_marginal_weight``, see
            :class:`recsim_causal.ope.session_models.StateMarginalWeights`) and w_{-1} rho_{-1} = 1

These are SCOPE-RL's ``tis``, ``pdis``, ``sntis``, ``snpdis``, ``dr``, ``sndr``, ``dm``, ``sam_is``
and ``sam_dr`` (here ``mis`` and ``mdr``)
(SCOPE-RL adds 1e-10 to the self-normalizing means; we do not). SCOPE-RL's DoublyRobust,
SelfNormalizedDR and DirectMethod are :class:`SequentialDoublyRobust` (``SeqDR``),
:class:`SelfNormalizedSequentialDoublyRobust` (``SNSeqDR``) and :class:`SequentialDirectMethod`
(``SeqDM``) here, beside the one-item DR and DM. Its inputs are SCOPE-RL's too
(``action``, ``reward``, ``pscore``, ``evaluation_policy_action_dist``,
``state_action_value_prediction``, ``gamma``, ``step_per_trajectory``), and sessions of
different lengths are given by ``trajectory_id`` instead: rows grouped by trajectory, in time
order. A session that ended (the user left, or the time budget ran out) continues in an
absorbing state with reward 0, weight ratio 1 and value 0, so every trajectory spans the
longest one's horizon; on equal-length data this is exactly SCOPE-RL's computation.

``estimate_interval`` resamples whole trajectories (bootstrap over trajectories; self-normalized
estimators as ratios, see :mod:`recsim_causal.ope.sums`).

D. Precup, R. S. Sutton, S. Singh. "Eligibility Traces for Off-Policy Policy Evaluation.", ICML 2000.
N. Jiang, L. Li. "Doubly Robust Off-policy Value Evaluation for Reinforcement Learning.", ICML 2016.
P. Thomas, E. Brunskill. "Data-Efficient Off-Policy Policy Evaluation for Reinforcement Learning.", ICML 2016.
H. Le, C. Voloshin, Y. Yue. "Batch Policy Learning under Constraints.", ICML 2019 (FQE).
H. Kiyohara et al. "SCOPE-RL: A Python Library for Offline Reinforcement Learning and Off-Policy Evaluation.", 2023.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..data.checks import as_float_array, as_int_array, check_finite
from .diagnostics import mean_weight_check, per_unit_ess, weight_diagnostics
from .inputs import RoundTerms
from .sums import sum_intervals, sum_value

__all__ = [
    "Trajectories",
    "TrajectoryWiseImportanceSampling",
    "PerDecisionImportanceSampling",
    "SelfNormalizedTIS",
    "SelfNormalizedPDIS",
    "SequentialDoublyRobust",
    "SelfNormalizedSequentialDoublyRobust",
    "SequentialDirectMethod",
    "MarginalImportanceSampling",
    "MarginalDoublyRobust",
    "MIS",
    "MDR",
    "TIS",
    "PDIS",
    "SNTIS",
    "SNPDIS",
    "SeqDR",
    "SNSeqDR",
    "SeqDM",
    "FQE",
    "FittedQEvaluation",
    "estimate_all_sequential",
    "refit_intervals",
]


# --------------------------------------------------------------------------- the data
class Trajectories:
    """Logged steps (n_steps,) laid out as (n_trajectories, horizon) matrices.

    Args:
        reward, pscore: (n_steps,) rewards and the logger's pi_b(a_t | s_t) > 0.
        trajectory_id: (n_steps,) ints, rows of a trajectory contiguous and in time order; or
        step_per_trajectory: SCOPE-RL's fixed length (n_steps a multiple of it).
        evaluation_policy_pscore: (n_steps,) pi_e(a_t | s_t); or give ``action`` (n_steps,)
            and ``evaluation_policy_action_dist`` (n_steps, K).
        state_action_value_prediction: (n_steps, K) Qhat(s_t, a) for DM and DR (needs the
            action distribution too).
        state_marginal_weight: (n_steps,) w_t(s_t) >= 0 for MIS and MDR.
    Attributes (all (n, T); padding: reward 0, ratio 1, q 0, v 0): ``reward``, ``ratio``,
    ``q`` (Qhat at the logged action), ``v`` (Vhat of the state), ``mask`` (real steps);
    ``lengths`` (n,).
    """

    def __init__(self, *, reward: Any, pscore: Any, trajectory_id: Any = None, step_per_trajectory: int | None = None,
                 action: Any = None, evaluation_policy_action_dist: Any = None, evaluation_policy_pscore: Any = None,
                 state_action_value_prediction: Any = None, state_marginal_weight: Any = None) -> None:
        r = self._vec(reward, "reward")
        n_steps = r.shape[0]
        if n_steps == 0:
            raise ValueError("reward: no steps")
        b = self._vec(pscore, "pscore", n_steps)
        if not (b.min() > 0 and b.max() <= 1):
            raise ValueError(f"pscore: must be in (0, 1]; {int(((b <= 0) | (b > 1)).sum())} of {n_steps} steps are outside")
        start, self.lengths = self._layout(trajectory_id, step_per_trajectory, n_steps)
        n, T = len(self.lengths), int(self.lengths.max())
        self.unit = np.repeat(np.arange(n), self.lengths)
        self.t = np.arange(n_steps) - np.repeat(start, self.lengths)
        self.n_trajectories, self.horizon = n, T

        dist = q_all = None
        if evaluation_policy_action_dist is not None:
            dist = as_float_array(evaluation_policy_action_dist, "evaluation_policy_action_dist")
            if dist.ndim != 2 or dist.shape[0] != n_steps:
                raise ValueError(f"evaluation_policy_action_dist: expected shape ({n_steps}, n_actions), got {dist.shape}")
            check_finite(dist, "evaluation_policy_action_dist")
            sums = dist.sum(axis=1)
            if dist.min() < 0 or not np.allclose(sums, 1.0):
                i = int(np.argmax(~np.isclose(sums, 1.0)))
                raise ValueError(f"evaluation_policy_action_dist: rows must be distributions; row {i} sums to {sums[i]:.6g}")
            if action is None:
                raise ValueError("action: required with evaluation_policy_action_dist")
            a = as_int_array(action, "action")
            if a.shape != (n_steps,) or a.min() < 0 or a.max() >= dist.shape[1]:
                raise ValueError(f"action: expected ({n_steps},) integers in [0, {dist.shape[1]})")
            e = dist[np.arange(n_steps), a]
        elif evaluation_policy_pscore is not None:
            e = self._vec(evaluation_policy_pscore, "evaluation_policy_pscore", n_steps)
            if e.min() < 0 or e.max() > 1:
                raise ValueError("evaluation_policy_pscore: must be in [0, 1]")
        else:
            raise ValueError("evaluation_policy_action_dist (with action) or evaluation_policy_pscore: required")
        self.reward = self._pad(r, 0.0)
        self.ratio = self._pad(e / b, 1.0)
        self.mask = self._pad(np.ones(n_steps), 0.0) > 0
        self.q = self.v = self.state_weight = None
        if state_marginal_weight is not None:
            sw = self._vec(state_marginal_weight, "state_marginal_weight", n_steps)
            if sw.min() < 0:
                raise ValueError("state_marginal_weight: must be >= 0")
            self.state_weight = self._pad(sw, 0.0)
        if state_action_value_prediction is not None:
            q_all = as_float_array(state_action_value_prediction, "state_action_value_prediction")
            if dist is None or q_all.shape != dist.shape:
                raise ValueError(f"state_action_value_prediction: expected shape {None if dist is None else dist.shape} "
                                 "like evaluation_policy_action_dist (which it needs)")
            check_finite(q_all, "state_action_value_prediction")
            self.q = self._pad(q_all[np.arange(n_steps), a], 0.0)
            self.v = self._pad(np.einsum("ij,ij->i", dist, q_all), 0.0)

    @staticmethod
    def _vec(x: Any, name: str, n: int | None = None) -> np.ndarray:
        if x is None:
            raise ValueError(f"{name}: required")
        arr = as_float_array(x, name)
        if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
            raise ValueError(f"{name}: expected shape ({n if n is not None else 'n_steps'},), got {arr.shape}")
        check_finite(arr, name)
        return arr

    @staticmethod
    def _layout(trajectory_id: Any, step_per_trajectory: Any, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
        if trajectory_id is not None:
            tid = as_int_array(trajectory_id, "trajectory_id")
            if tid.shape != (n_steps,):
                raise ValueError(f"trajectory_id: expected shape ({n_steps},), got {tid.shape}")
            new = np.ones(n_steps, bool)
            new[1:] = tid[1:] != tid[:-1]
            start = np.flatnonzero(new)
            if len(np.unique(tid[start])) != len(start):
                raise ValueError("trajectory_id: the rows of each trajectory must be contiguous (sort by trajectory, then step)")
            return start, np.diff(np.append(start, n_steps))
        if isinstance(step_per_trajectory, bool) or not isinstance(step_per_trajectory, (int, np.integer)) \
                or step_per_trajectory < 1 or n_steps % step_per_trajectory:
            raise ValueError(f"step_per_trajectory: expected an integer >= 1 dividing n_steps={n_steps} "
                             f"(or pass trajectory_id), got {step_per_trajectory!r}")
        start = np.arange(0, n_steps, step_per_trajectory)
        return start, np.full(len(start), int(step_per_trajectory))

    def _pad(self, x: np.ndarray, fill: float) -> np.ndarray:
        out = np.full((self.n_trajectories, self.horizon), fill)
        out[self.unit, self.t] = x
        return out

    def discount(self, gamma: float) -> np.ndarray:
        """(T,) gamma^t."""
        return gamma ** np.arange(self.horizon, dtype=np.float64)

    def weights(self) -> np.ndarray:
        """(n, T) per-decision weights w_{0:t} (constant after a trajectory's end)."""
        return np.cumprod(self.ratio, axis=1)

    def trajectory_weights(self) -> np.ndarray:
        """(n,) trajectory weights w_{0:T-1}."""
        return self.weights()[:, -1]

    def previous(self, w: np.ndarray) -> np.ndarray:
        """(n, T) w_{0:t-1} (1 at t = 0)."""
        return np.concatenate([np.ones((w.shape[0], 1)), w[:, :-1]], axis=1)


def _check_gamma(gamma: Any) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float, np.floating)) or not 0 < gamma <= 1:
        raise ValueError(f"gamma: expected a number in (0, 1], got {gamma!r}")
    return float(gamma)


# --------------------------------------------------------------------------- estimators
@dataclass
class BaseSequentialEstimator:
    """``estimate_policy_value(gamma=1.0, **arrays)``, ``estimate_interval(...)``; the arrays of
    :class:`Trajectories` (unused ones ignored, as SCOPE-RL's ``**kwargs``)."""

    estimator_name: str = "seq"
    needs_q: ClassVar[bool] = False
    #: an assumption the interval cannot check (then never marked valid)
    interval_caveat: ClassVar[str | None] = None
    needs_state_weight: ClassVar[bool] = False
    kind: ClassVar[str] = "ipw"  # the shape of the formula ("dm" | "ipw" | "dr"), for interval_validity
    #: the weights its diagnostics describe: "trajectory" (w_{0:T-1}), "per_decision" (w_{0:t}),
    #: "marginal" (w_t(s_t) rho_t) or None (no weights)
    weight_family: ClassVar[str | None] = "per_decision"

    def parts(self, data: Trajectories | None = None, *, gamma: float = 1.0, **arrays: Any) -> list[RoundTerms]:
        """The estimate as a sum of per-trajectory RoundTerms."""
        data = data or Trajectories(**{k: v for k, v in arrays.items() if k in _TRAJECTORY_KEYS})
        if self.needs_q and data.q is None:
            raise ValueError(f"{type(self).__name__}: needs state_action_value_prediction and evaluation_policy_action_dist")
        if self.needs_state_weight and data.state_weight is None:
            raise ValueError(f"{type(self).__name__}: needs state_marginal_weight")
        return self._parts(data, _check_gamma(gamma))

    def estimate_policy_value(self, *, gamma: float = 1.0, **arrays: Any) -> float:
        return sum_value(self.parts(gamma=gamma, **arrays))

    def weights_refit(self) -> None:
        """Its interval refit the learned state weights on every resample (:func:`refit_intervals`):
        the caveat that they were held fixed no longer applies (any other caveat stays)."""
        if getattr(self, "interval_caveat", None) == _HELD_FIXED:
            self.interval_caveat = None

    def weight_diagnostics(self, data: Trajectories | None = None, **arrays: Any) -> dict[str, Any]:
        """The diagnostics of the weights this estimator uses: ``n_rounds`` (trajectories), the
        trajectory weights' ``trajectory_ess`` (and its ratio, max), and, by ``weight_family``,
        ``ess``/``ess_ratio``/``max_weight``: of the trajectory weights ("trajectory"), or the
        smallest per-step ESS of w_{0:t} ("per_decision") or of w_t(s_t) rho_t ("marginal")
        over the trajectories alive at each step, with ``step_ess`` per step; for trajectory and
        per-decision weights, whose mean under the logger is 1, :func:`mean_weight_check`'s
        ``mean_weight`` and ``mean_weight_z`` (a target whose trajectories the log lacks)."""
        data = data or Trajectories(**{k: v for k, v in arrays.items() if k in _TRAJECTORY_KEYS})
        traj = weight_diagnostics(data.trajectory_weights())
        out: dict[str, Any] = {"n_rounds": data.n_trajectories, "trajectory_ess": traj["ess"],
                               "trajectory_ess_ratio": traj["ess_ratio"], "trajectory_max_weight": traj["max_weight"]}
        if self.weight_family == "trajectory":
            out.update(ess=traj["ess"], ess_ratio=traj["ess_ratio"], max_weight=traj["max_weight"],
                       **mean_weight_check(data.trajectory_weights()))
        elif self.weight_family == "per_decision":
            out.update(per_unit_ess(data.weights(), data.mask), **mean_weight_check(data.weights()))
        elif self.weight_family == "marginal" and data.state_weight is not None:
            out.update(per_unit_ess(data.state_weight * data.ratio, data.mask))
        return out

    def estimate_interval(self, *, gamma: float = 1.0, alpha: float = 0.05, n_bootstrap_samples: int = 10000,
                          random_state: Any = None, method: str = "bootstrap", **arrays: Any) -> dict[str, float]:
        """OBP/SCOPE-RL interval dict, resampling trajectories."""
        return sum_intervals([self.parts(gamma=gamma, **arrays)], alpha=alpha, n_bootstrap_samples=n_bootstrap_samples,
                             random_state=random_state, method=method)[0]

    def _parts(self, data: Trajectories, gamma: float) -> list[RoundTerms]:  # pragma: no cover
        raise NotImplementedError


_TRAJECTORY_KEYS = ("reward", "pscore", "trajectory_id", "step_per_trajectory", "action", "evaluation_policy_action_dist",
                    "evaluation_policy_pscore", "state_action_value_prediction", "state_marginal_weight")


@dataclass
class TrajectoryWiseImportanceSampling(BaseSequentialEstimator):
    """TIS: E_n[sum_t gamma^t w_{0:T-1} r_t] (Precup et al. 2000)."""

    estimator_name: str = "tis"
    weight_family: ClassVar[str | None] = "trajectory"

    def _parts(self, data: Trajectories, gamma: float) -> list[RoundTerms]:
        ret = data.reward @ data.discount(gamma)
        return [RoundTerms(num=data.trajectory_weights() * ret)]


@dataclass
class PerDecisionImportanceSampling(BaseSequentialEstimator):
    """PDIS: E_n[sum_t gamma^t w_{0:t} r_t] (Precup et al. 2000)."""

    estimator_name: str = "pdis"

    def _parts(self, data: Trajectories, gamma: float) -> list[RoundTerms]:
        return [RoundTerms(num=(data.weights() * data.reward) @ data.discount(gamma))]


@dataclass
class SelfNormalizedTIS(BaseSequentialEstimator):
    """SNTIS: E_n[w_{0:T-1} sum_t gamma^t r_t] / E_n[w_{0:T-1}]."""

    estimator_name: str = "sntis"
    weight_family: ClassVar[str | None] = "trajectory"

    def _parts(self, data: Trajectories, gamma: float) -> list[RoundTerms]:
        w = data.trajectory_weights()
        return [RoundTerms(num=w * (data.reward @ data.discount(gamma)), den=w)]


@dataclass
class SelfNormalizedPDIS(BaseSequentialEstimator):
    """SNPDIS: sum_t gamma^t E_n[w_{0:t} r_t] / E_n[w_{0:t}]."""

    estimator_name: str = "snpdis"

    def _parts(self, data: Trajectories, gamma: float) -> list[RoundTerms]:
        w, d = data.weights(), data.discount(gamma)
        return [RoundTerms(num=d[t] * w[:, t] * data.reward[:, t], den=w[:, t]) for t in range(data.horizon)]


@dataclass
class SequentialDoublyRobust(BaseSequentialEstimator):
    """DR (per-decision, Jiang & Li 2016; Thomas & Brunskill 2016):
    E_n[sum_t gamma^t (w_{0:t} (r_t - Qhat(s_t, a_t)) + w_{0:t-1} Vhat(s_t))]."""

    estimator_name: str = "dr"
    needs_q: ClassVar[bool] = True
    kind: ClassVar[str] = "dr"

    def _parts(self, data: Trajectories, gamma: float) -> list[RoundTerms]:
        w = data.weights()
        terms = w * (data.reward - data.q) + data.previous(w) * data.v
        return [RoundTerms(num=terms @ data.discount(gamma))]


@dataclass
class SelfNormalizedSequentialDoublyRobust(BaseSequentialEstimator):
    """SNDR: DR with w_{0:t} / E_n[w_{0:t}] and w_{0:t-1} / E_n[w_{0:t-1}] at each step."""

    estimator_name: str = "sndr"
    needs_q: ClassVar[bool] = True
    kind: ClassVar[str] = "dr"

    def _parts(self, data: Trajectories, gamma: float) -> list[RoundTerms]:
        w, d = data.weights(), data.discount(gamma)
        prev = data.previous(w)
        out = []
        for t in range(data.horizon):
            out.append(RoundTerms(num=d[t] * w[:, t] * (data.reward[:, t] - data.q[:, t]), den=w[:, t]))
            out.append(RoundTerms(num=d[t] * prev[:, t] * data.v[:, t], den=prev[:, t]))
        return out


@dataclass
class SequentialDirectMethod(BaseSequentialEstimator):
    """DM: E_n[Vhat(s_0)] with Vhat(s) = sum_a pi_e(a|s) Qhat(s, a) (Qhat from FQE)."""

    estimator_name: str = "dm"
    needs_q: ClassVar[bool] = True
    kind: ClassVar[str] = "dm"
    weight_family: ClassVar[str | None] = None

    def _parts(self, data: Trajectories, gamma: float) -> list[RoundTerms]:
        return [RoundTerms(base=data.v[:, 0].copy())]


_HELD_FIXED = ("the state-marginal weights are learned from the log and held fixed in this interval "
               "(refit_intervals refits them on every resample)")
_OBSERVATION_MARKOV = ("assumes the reward and the next state depend on the history only through the observed state: "
                       "a hidden state (Session-v0's fatigue and interest drift) biases it, and the interval cannot see that")


@dataclass
class MarginalImportanceSampling(BaseSequentialEstimator):
    """MIS (state-action marginal IS; SCOPE-RL's SAM-IS): E_n[sum_t gamma^t w_t(s_t) rho_t r_t],
    w_t the state-marginal ratio learned from the log (Xie et al. 2019; Uehara et al. 2020)."""

    estimator_name: str = "mis"
    needs_state_weight: ClassVar[bool] = True
    weight_family: ClassVar[str | None] = "marginal"
    interval_caveat: ClassVar[str | None] = _OBSERVATION_MARKOV

    def _parts(self, data: Trajectories, gamma: float) -> list[RoundTerms]:
        return [RoundTerms(num=(data.state_weight * data.ratio * data.reward) @ data.discount(gamma))]


@dataclass
class MarginalDoublyRobust(BaseSequentialEstimator):
    """MDR (state-action marginal DR; SCOPE-RL's SAM-DR):
    E_n[sum_t gamma^t (w_t rho_t (r_t - Qhat(s_t, a_t)) + w_{t-1} rho_{t-1} Vhat(s_t))]."""

    estimator_name: str = "mdr"
    needs_q: ClassVar[bool] = True
    needs_state_weight: ClassVar[bool] = True
    kind: ClassVar[str] = "dr"
    weight_family: ClassVar[str | None] = "marginal"
    interval_caveat: ClassVar[str | None] = _HELD_FIXED

    def _parts(self, data: Trajectories, gamma: float) -> list[RoundTerms]:
        w = data.state_weight * data.ratio
        terms = w * (data.reward - data.q) + data.previous(w) * data.v
        return [RoundTerms(num=terms @ data.discount(gamma))]


TIS, PDIS, SNTIS, SNPDIS = TrajectoryWiseImportanceSampling, PerDecisionImportanceSampling, SelfNormalizedTIS, SelfNormalizedPDIS
SeqDR, SNSeqDR, SeqDM = SequentialDoublyRobust, SelfNormalizedSequentialDoublyRobust, SequentialDirectMethod
MIS, MDR = MarginalImportanceSampling, MarginalDoublyRobust


def estimate_all_sequential(estimators: Sequence[BaseSequentialEstimator], *, gamma: float = 1.0, intervals: bool = True,
                            alpha: float = 0.05, n_bootstrap_samples: int = 1000, random_state: Any = None,
                            method: str = "bootstrap", **arrays: Any
                            ) -> tuple[dict[str, float], dict[str, dict[str, float]], Trajectories]:
    """Every estimator on the same trajectories (laid out once, bootstrap resamples shared):
    ({name: estimate}, {name: interval}, the Trajectories)."""
    data = Trajectories(**{k: v for k, v in arrays.items() if k in _TRAJECTORY_KEYS})
    parts = [e.parts(data, gamma=gamma) for e in estimators]
    names = [e.estimator_name for e in estimators]
    estimates = {n: sum_value(p) for n, p in zip(names, parts)}
    ints = sum_intervals(parts, alpha=alpha, n_bootstrap_samples=n_bootstrap_samples, random_state=random_state,
                         method=method) if intervals else []
    return estimates, dict(zip(names, ints)), data


def refit_intervals(estimators: Sequence[BaseSequentialEstimator], data: Trajectories,
                    refit_state_weight: Any, *, gamma: float = 1.0, alpha: float = 0.05,
                    n_bootstrap_samples: int = 200, random_state: Any = None) -> dict[str, dict[str, float]]:
    """Percentile bootstrap over trajectories that refits the state-marginal weights on every
    resample, so their estimation error is in the interval (for MIS and MDR; the others'
    bootstrap has nothing to refit). ``refit_state_weight(sample_weight (n_steps,)) -> (n_steps,)``
    refits w_t(s_t) with each logged step weighted by its trajectory's count in the resample.
    Returns OBP's interval dicts by estimator name ("mean": the mean of the resamples)."""
    if any(t.is_ratio for e in estimators for t in e._parts(data, gamma)):
        raise ValueError("refit_intervals: self-normalized estimators are not supported (MIS and MDR are plain means)")
    gamma = _check_gamma(gamma)
    rng = np.random.default_rng(random_state)
    n = data.n_trajectories
    boots = np.empty((n_bootstrap_samples, len(estimators)))
    keep = data.state_weight
    try:
        for b in range(n_bootstrap_samples):
            counts = rng.multinomial(n, np.full(n, 1.0 / n)).astype(np.float64)
            data.state_weight = data._pad(np.asarray(refit_state_weight(counts[data.unit]), np.float64), 0.0)
            for j, est in enumerate(estimators):
                boots[b, j] = sum(float(np.dot(counts, t.round_rewards())) / n for t in est._parts(data, gamma))
    finally:
        data.state_weight = keep
    lo_key, hi_key = (f"{100 * (1.0 - alpha)}% CI (lower)", f"{100 * (1.0 - alpha)}% CI (upper)")
    lo, hi = np.percentile(boots, 100 * alpha / 2, axis=0), np.percentile(boots, 100 * (1 - alpha / 2), axis=0)
    return {e.estimator_name: {"mean": float(boots[:, j].mean()), lo_key: float(lo[j]), hi_key: float(hi[j])}
            for j, e in enumerate(estimators)}


# --------------------------------------------------------------------------- FQE
class FittedQEvaluation:
    """Fitted-Q evaluation (Le et al. 2019) with one ridge regression per action on [s, 1].

    Q_0 = 0; for k = 1..n_iterations: regress y = r_t + gamma (not last_t) sum_a pi_e(a | s_{t+1})
    Q_{k-1}(s_{t+1}, a) on (s_t, a_t). ``n_iterations`` defaults to the longest trajectory
    (enough for a finite horizon: the state carries the step index in Session-v0). A step with
    no successor (the user left, or the budget ran out) has continuation value 0. Per-action
    Gram matrices are factored once; each iteration is a few matrix products.
    """

    def __init__(self, n_actions: int, *, ridge: float = 1.0, n_iterations: int | None = None) -> None:
        if isinstance(n_actions, bool) or not isinstance(n_actions, (int, np.integer)) or n_actions < 1:
            raise ValueError(f"FQE: n_actions must be an integer >= 1, got {n_actions!r}")
        if not ridge > 0:
            raise ValueError(f"FQE: ridge must be > 0, got {ridge!r}")
        if n_iterations is not None and (not isinstance(n_iterations, (int, np.integer)) or n_iterations < 1):
            raise ValueError(f"FQE: n_iterations must be an integer >= 1 or None, got {n_iterations!r}")
        self.n_actions, self.ridge, self.n_iterations = int(n_actions), float(ridge), n_iterations

    def fit_predict(self, *, context: Any, action: Any, reward: Any, trajectory_id: Any,
                    evaluation_policy_action_dist: Any, gamma: float = 1.0) -> np.ndarray:
        """Qhat(s_t, a) for every logged step and action, (n_steps, K)."""
        gamma = _check_gamma(gamma)
        x = as_float_array(context, "context")
        a = as_int_array(action, "action")
        r = as_float_array(reward, "reward")
        pi = as_float_array(evaluation_policy_action_dist, "evaluation_policy_action_dist")
        tid = as_int_array(trajectory_id, "trajectory_id")
        n, K = len(a), self.n_actions
        if x.ndim != 2 or x.shape[0] != n or r.shape != (n,) or tid.shape != (n,) or pi.shape != (n, K):
            raise ValueError(f"FQE: expected context (n, d), action/reward/trajectory_id (n,), "
                             f"evaluation_policy_action_dist (n, {K}) with n = {n}")
        phi = np.concatenate([x, np.ones((n, 1))], axis=1)
        has_next = np.zeros(n, bool)
        has_next[:-1] = tid[1:] == tid[:-1]
        lengths = np.bincount(np.unique(tid, return_inverse=True)[1])
        n_iter = self.n_iterations or int(lengths.max())
        solves = []
        for k in range(K):
            rows = np.flatnonzero(a == k)
            gram = phi[rows].T @ phi[rows] + self.ridge * np.eye(phi.shape[1])
            solves.append((rows, np.linalg.inv(gram) @ phi[rows].T))
        theta = np.zeros((K, phi.shape[1]))
        q = np.zeros((n, K))
        for _ in range(n_iter):
            v = np.einsum("ij,ij->i", pi, q)
            y = r.copy()
            y[has_next] += gamma * v[1:][has_next[:-1]]
            for k, (rows, solve) in enumerate(solves):
                theta[k] = solve @ y[rows]
            q = phi @ theta.T
        return q


FQE = FittedQEvaluation
