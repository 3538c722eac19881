"""Slate off-policy estimators with Open Bandit Pipeline 0.5.7's names, arrays and numbers.

The data is OBP's long format: one row per (slate, position), n_rows <= n_slates * len_list:

    slate_id   (n_rows,) int >= 0        which slate the row belongs to
    reward     (n_rows,)                 the slot's reward r_i(l)
    position   (n_rows,) int in [0, L)   the slot (0 = top)
    pscore                 pi_b(a_i | x_i)            the whole slate (same on every row of a slate)
    pscore_item_position   pi_b(a_i(l) at l | x_i)    the item at its position (marginal)
    pscore_cascade         pi_b(a_i(1..l) | x_i)      the prefix down to the row's position
    evaluation_policy_*    the same three for the target pi_e

Estimators (V = (1/n_slates) sum over rows of the row's term; w = evaluation / behaviour):

    SlateStandardIPS (sips)             r_i(l) w_slate                      no assumption on clicks
    SlateIndependentIPS (iips)          r_i(l) w_item_position(l)           unbiased under the PBM
    SlateRewardInteractionIPS (rips)    r_i(l) w_cascade(1..l)              unbiased under the cascade
    SelfNormalized* (snsips, sniips, snrips)   weights divided by their mean (over all rows for
        SNSIPS; per position for SNIIPS and SNRIPS), as OBP does
    SlateCascadeDoublyRobust (cascade-dr)
        sum_l w_{1:l} (r_i(l) - qhat_l(x, a_{1:l})) + w_{1:l-1} sum_a pi_e(a | x, a_{1:l-1}) qhat_l(x, a_{1:l-1}, a)
        with ``q_hat`` and ``evaluation_policy_action_dist`` flat (n_rows * n_unique_action,)
        and rows sorted by slate then position, len_list rows per slate (as OBP requires).

Every estimator has ``estimate_policy_value(**arrays)`` and ``estimate_interval(**arrays,
alpha, n_bootstrap_samples, random_state, method)``; intervals resample slates (OBP sums each
slate's rows and bootstraps the sums; self-normalized estimators are resampled as ratios here,
see :mod:`recsim_causal.ope.sums`). Arrays not used by an estimator are accepted and ignored,
as OBP's ``**kwargs``, so one dict of arrays serves all (:func:`estimate_all_slate`).

Differences from OBP 0.5.7: aggregation is vectorized (OBP loops over slates in Python); the
bootstrap's random stream differs (same method); errors name the array and the rows at fault.

References: J. McInerney, B. Brost, P. Chandar, R. Mehrotra, B. Carterette. "Counterfactual
Evaluation of Slate Recommendations with Sequential Reward Interactions.", KDD 2020 (SIPS,
RIPS). S. Li, Y. Abbasi-Yadkori, B. Kveton, S. Muthukrishnan, V. Vinay, Z. Wen. "Offline
Evaluation of Ranking Policies with Click Models.", KDD 2018 (IIPS). H. Kiyohara, Y. Saito,
T. Matsuhiro, Y. Narita, N. Shimizu, Y. Yamamoto. "Doubly Robust Off-Policy Evaluation for
Ranking Policies under the Cascade Behavior Model.", WSDM 2022 (Cascade-DR). A. Swaminathan,
T. Joachims. "The Self-Normalized Estimator for Counterfactual Learning.", NeurIPS 2015.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..data.checks import as_float_array, as_int_array, check_finite
from .diagnostics import per_unit_ess
from .inputs import RoundTerms
from .sums import sum_intervals, sum_value

__all__ = [
    "SlateStandardIPS",
    "SlateIndependentIPS",
    "SlateRewardInteractionIPS",
    "SlateCascadeDoublyRobust",
    "SelfNormalizedSlateStandardIPS",
    "SelfNormalizedSlateIndependentIPS",
    "SelfNormalizedSlateRewardInteractionIPS",
    "SlateRows",
    "estimate_all_slate",
    "slate_long_format",
]


# --------------------------------------------------------------------------- the rows
class SlateRows:
    """Validated long-format slate rows and their grouping into slates.

    ``unit`` (n_rows,) maps each row to its slate in [0, n_slates); per-slate sums are one
    ``np.bincount``. Sorted slate ids (the usual layout) are grouped in O(n_rows).
    """

    def __init__(self, slate_id: Any, reward: Any, position: Any, len_list: int | None = None):
        sid = as_int_array(slate_id, "slate_id")
        if sid.ndim != 1:
            raise ValueError(f"slate_id: expected shape (n_rows,), got {sid.shape}")
        n = sid.shape[0]
        if n == 0:
            raise ValueError("slate_id: no rows")
        if sid.min() < 0:
            raise ValueError(f"slate_id: expected integers >= 0, min is {sid.min()}")
        self.reward = self._vector(reward, "reward", n)
        pos = as_int_array(position, "position")
        if pos.shape != (n,):
            raise ValueError(f"position: expected shape ({n},) like slate_id, got {pos.shape}")
        if pos.min() < 0:
            raise ValueError(f"position: expected integers >= 0 (0 = top), min is {pos.min()}")
        if len_list is not None and pos.max() >= len_list:
            raise ValueError(f"position: expected values in [0, len_list={len_list}), max is {pos.max()}")
        ordered = bool((sid[1:] >= sid[:-1]).all())
        if ordered:
            new = np.empty(n, bool)
            new[0], new[1:] = True, sid[1:] != sid[:-1]
            self.unit = np.cumsum(new) - 1
            self.n_slates = int(self.unit[-1]) + 1
        else:
            uniq, self.unit = np.unique(sid, return_inverse=True)
            self.n_slates = len(uniq)
        self.n_rows, self.slate_id, self.position = n, sid, pos
        same = self.unit[1:] == self.unit[:-1]
        # rows sorted by (slate, position): checks along the slate are neighbour comparisons
        self._order = None if ordered and (pos[1:][same] > pos[:-1][same]).all() else np.lexsort((pos, self.unit))
        if self._order is not None:
            key = self.unit * (int(pos.max()) + 1) + pos
            if np.unique(key).size != n:
                raise ValueError("position: must not be duplicated in each slate")
        self._cache: dict[tuple[str, str], np.ndarray] = {}

    @staticmethod
    def _vector(x: Any, name: str, n: int) -> np.ndarray:
        arr = as_float_array(x, name)
        if arr.shape != (n,):
            raise ValueError(f"{name}: expected shape ({n},) like slate_id, got {arr.shape}")
        check_finite(arr, name)
        return arr

    def pscore(self, x: Any, name: str, *, behaviour: bool) -> np.ndarray:
        """A pscore column: (0, 1] for the logger, [0, 1] for the target."""
        if x is None:
            raise ValueError(f"{name}: required by this estimator")
        arr = self._vector(x, name, self.n_rows)
        bad = ~(arr > 0) if behaviour else arr < 0
        if bad.any() or arr.max() > 1:
            rng = "(0, 1]" if behaviour else "[0, 1]"
            raise ValueError(f"{name}: must be in the range {rng}; {int((bad | (arr > 1)).sum())} of "
                             f"{self.n_rows} rows are outside (min {arr.min():.6g}, max {arr.max():.6g})")
        return arr

    def per_slate(self, values: np.ndarray) -> np.ndarray:
        """Sum of ``values`` (n_rows,) within each slate: (n_slates,)."""
        return np.bincount(self.unit, weights=values, minlength=self.n_slates)

    def _along(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``x`` in (slate, position) order, and whether each row continues the previous row's slate."""
        u = self.unit if self._order is None else self.unit[self._order]
        return (x if self._order is None else x[self._order]), u[1:] == u[:-1]

    def check_constant(self, x: np.ndarray, name: str) -> None:
        """OBP: the whole-slate pscore must be the same on every row of a slate."""
        xs, same = self._along(x)
        bad = same & (xs[1:] != xs[:-1])
        if bad.any():
            raise ValueError(f"{name}: must be unique in each slate; {int(bad.sum())} rows differ from the row above")

    def check_non_increasing(self, x: np.ndarray, name: str) -> None:
        """OBP: a cascade pscore cannot grow down the slate."""
        xs, same = self._along(x)
        bad = same & (xs[1:] > xs[:-1])
        if bad.any():
            raise ValueError(f"{name}: must be a non-increasing sequence in each slate; "
                             f"{int(bad.sum())} rows increase")

    def weights(self, behaviour_key: str, target_key: str, arrays: Mapping[str, Any]) -> np.ndarray:
        """evaluation / behaviour pscore per row, validated once per pair of columns."""
        key = (behaviour_key, target_key)
        if key not in self._cache:
            behaviour = self.pscore(arrays.get(behaviour_key), behaviour_key, behaviour=True)
            target = self.pscore(arrays.get(target_key), target_key, behaviour=False)
            check = {"pscore": self.check_constant, "pscore_cascade": self.check_non_increasing}.get(behaviour_key)
            if check is not None:
                check(behaviour, behaviour_key)
                check(target, target_key)
            self._cache[key] = target / behaviour
        return self._cache[key]


# --------------------------------------------------------------------------- estimators
@dataclass
class BaseSlateEstimator:
    """Common entry points; subclasses give ``_parts(rows, arrays) -> list[RoundTerms]``."""

    len_list: int
    estimator_name: str = "slate"
    _keys: ClassVar[tuple[str, ...]] = ()
    #: an assumption about the world the interval cannot check (then never marked valid)
    interval_caveat: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        if isinstance(self.len_list, bool) or not isinstance(self.len_list, (int, np.integer)) or self.len_list < 1:
            raise ValueError(f"{type(self).__name__}: len_list must be an integer >= 1, got {self.len_list!r}")

    def _rows(self, arrays: Mapping[str, Any]) -> SlateRows:
        for k in ("slate_id", "reward", "position"):
            if arrays.get(k) is None:
                raise ValueError(f"{type(self).__name__}: missing {k}")
        return SlateRows(arrays["slate_id"], arrays["reward"], arrays["position"], self.len_list)

    def parts(self, rows: SlateRows | None = None, **arrays: Any) -> list[RoundTerms]:
        """The estimate as a sum of per-slate RoundTerms (see :mod:`recsim_causal.ope.sums`)."""
        return self._parts(rows or self._rows(arrays), arrays)

    def estimate_policy_value(self, **arrays: Any) -> float:
        """The estimate V (OBP's keyword arrays; unused ones are ignored)."""
        return sum_value(self.parts(**arrays))

    def estimate_interval(self, *, alpha: float = 0.05, n_bootstrap_samples: int = 10000,
                          random_state: Any = None, method: str = "bootstrap", **arrays: Any) -> dict[str, float]:
        """OBP's interval dict ``{"mean", "95.0% CI (lower)", "95.0% CI (upper)"}``, resampling slates."""
        return sum_intervals([self.parts(**arrays)], alpha=alpha, n_bootstrap_samples=n_bootstrap_samples,
                             random_state=random_state, method=method)[0]

    def _parts(self, rows: SlateRows, arrays: Mapping[str, Any]) -> list[RoundTerms]:  # pragma: no cover
        raise NotImplementedError

    def weight_diagnostics(self, rows: SlateRows | None = None, **arrays: Any) -> dict[str, Any]:
        """ESS (smallest over positions, of the weights multiplying that position's rewards,
        over slates), max weight and n_rounds (slates) of this estimator's weights:
        :func:`recsim_causal.ope.diagnostics.per_unit_ess`."""
        rows = rows or self._rows(arrays)
        w, on = np.zeros((rows.n_slates, self.len_list)), np.zeros((rows.n_slates, self.len_list), bool)
        w[rows.unit, rows.position] = self._weights(rows, arrays)
        on[rows.unit, rows.position] = True
        return per_unit_ess(w, on, column="position")

    def _weights(self, rows: SlateRows, arrays: Mapping[str, Any]) -> np.ndarray:
        return rows.weights(*self._keys, arrays)


class _SlateIPS(BaseSlateEstimator):
    def _parts(self, rows: SlateRows, arrays: Mapping[str, Any]) -> list[RoundTerms]:
        return [RoundTerms(num=rows.per_slate(rows.reward * self._weights(rows, arrays)))]


class _SelfNormalizedOverall(BaseSlateEstimator):
    def _parts(self, rows: SlateRows, arrays: Mapping[str, Any]) -> list[RoundTerms]:
        w = self._weights(rows, arrays)  # OBP: reward * w / mean over all rows of w
        scale = rows.n_slates / rows.n_rows
        return [RoundTerms(num=rows.per_slate(rows.reward * w), den=rows.per_slate(w) * scale)]


class _SelfNormalizedPerPosition(BaseSlateEstimator):
    def _parts(self, rows: SlateRows, arrays: Mapping[str, Any]) -> list[RoundTerms]:
        w = self._weights(rows, arrays)  # OBP: reward * w / mean of w over the rows at the same position
        rw = rows.reward * w
        out = []
        for pos in range(self.len_list):
            at = rows.position == pos
            n_at = int(at.sum())
            if n_at:
                out.append(RoundTerms(num=rows.per_slate(np.where(at, rw, 0.0)),
                                      den=rows.per_slate(np.where(at, w, 0.0)) * (rows.n_slates / n_at)))
        return out


@dataclass
class SlateStandardIPS(_SlateIPS):
    """SIPS: V = (1/n) sum_i sum_l r_i(l) pi_e(a_i|x_i) / pi_b(a_i|x_i), the whole slate's weight
    (McInerney et al. 2020, Eq. 1). Arrays: slate_id, reward, position, pscore,
    evaluation_policy_pscore."""

    estimator_name: str = "sips"
    _keys: ClassVar[tuple[str, str]] = ("pscore", "evaluation_policy_pscore")


@dataclass
class SlateIndependentIPS(_SlateIPS):
    """IIPS: V = (1/n) sum_i sum_l r_i(l) pi_e(a_i(l) at l|x_i) / pi_b(a_i(l) at l|x_i), unbiased when
    the reward at a slot depends only on the item there (item-position / PBM model; Li et al.
    2018). Arrays: slate_id, reward, position, pscore_item_position,
    evaluation_policy_pscore_item_position."""

    estimator_name: str = "iips"
    _keys: ClassVar[tuple[str, str]] = ("pscore_item_position", "evaluation_policy_pscore_item_position")
    interval_caveat: ClassVar[str | None] = ("assumes the independence (item-position) model, each slot's reward a "
                                             "function of its own item only: its bias when slots interact is not in the interval")


@dataclass
class SlateRewardInteractionIPS(_SlateIPS):
    """RIPS: V = (1/n) sum_i sum_l r_i(l) pi_e(a_i(1..l)|x_i) / pi_b(a_i(1..l)|x_i), unbiased when the
    reward at a slot depends on the items above it and itself only (cascade; McInerney et al.
    2020, Eq. 3). Arrays: slate_id, reward, position, pscore_cascade,
    evaluation_policy_pscore_cascade."""

    estimator_name: str = "rips"
    _keys: ClassVar[tuple[str, str]] = ("pscore_cascade", "evaluation_policy_pscore_cascade")


@dataclass
class SelfNormalizedSlateStandardIPS(_SelfNormalizedOverall):
    """SNSIPS: SIPS with the weights divided by their mean over all rows (OBP 0.5.7)."""

    estimator_name: str = "snsips"
    _keys: ClassVar[tuple[str, str]] = SlateStandardIPS._keys


@dataclass
class SelfNormalizedSlateIndependentIPS(_SelfNormalizedPerPosition):
    """SNIIPS: IIPS with each position's weights divided by their mean at that position (OBP 0.5.7)."""

    estimator_name: str = "sniips"
    _keys: ClassVar[tuple[str, str]] = SlateIndependentIPS._keys
    interval_caveat: ClassVar[str | None] = ("assumes the independence (item-position) model, each slot's reward a "
                                             "function of its own item only: its bias when slots interact is not in the interval")


@dataclass
class SelfNormalizedSlateRewardInteractionIPS(_SelfNormalizedPerPosition):
    """SNRIPS: RIPS with each position's weights divided by their mean at that position (OBP 0.5.7)."""

    estimator_name: str = "snrips"
    _keys: ClassVar[tuple[str, str]] = SlateRewardInteractionIPS._keys


@dataclass
class SlateCascadeDoublyRobust(BaseSlateEstimator):
    """Cascade-DR (Kiyohara et al. 2022, Sec. 3.1):

        V = (1/n) sum_i sum_l [ w_{1:l} (r_i(l) - qhat_l(x_i, a_i(1..l)))
                                + w_{1:l-1} sum_a pi_e(a | x_i, a_i(1..l-1)) qhat_l(x_i, a_i(1..l-1), a) ]

    with w_{1:l} = evaluation_policy_pscore_cascade / pscore_cascade and w_{1:0} = 1.
    Arrays: slate_id, action, reward, position, pscore_cascade,
    evaluation_policy_pscore_cascade, q_hat and evaluation_policy_action_dist (both flat,
    (n_rows * n_unique_action,), or (n_rows, n_unique_action)). Rows sorted by slate then
    position, ``len_list`` rows per slate (OBP's layout).
    """

    n_unique_action: int = 0
    estimator_name: str = "cascade-dr"
    _keys: ClassVar[tuple[str, str]] = ("pscore_cascade", "evaluation_policy_pscore_cascade")

    def __post_init__(self) -> None:
        super().__post_init__()
        K = self.n_unique_action
        if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 1:
            raise ValueError(f"SlateCascadeDoublyRobust: n_unique_action must be an integer >= 1, got {K!r}")

    def _parts(self, rows: SlateRows, arrays: Mapping[str, Any]) -> list[RoundTerms]:
        L, K, n = self.len_list, self.n_unique_action, rows.n_rows
        if n != rows.n_slates * L or not (rows.position == np.tile(np.arange(L), rows.n_slates)).all() \
                or not (np.diff(rows.unit) >= 0).all():
            raise ValueError(f"SlateCascadeDoublyRobust: rows must be sorted by slate then position, with "
                             f"len_list={L} rows per slate (positions 0..{L - 1})")
        action = as_int_array(arrays.get("action"), "action") if arrays.get("action") is not None else None
        if action is None or action.shape != (n,):
            raise ValueError(f"action: expected shape ({n},) like slate_id")
        if action.min() < 0 or action.max() >= K:
            raise ValueError(f"action: values must be in [0, n_unique_action={K}), got {action.min()}..{action.max()}")
        mats = {}
        for name in ("q_hat", "evaluation_policy_action_dist"):
            x = arrays.get(name)
            if x is None:
                raise ValueError(f"{name}: required by SlateCascadeDoublyRobust")
            x = as_float_array(x, name)
            if x.size != n * K:
                raise ValueError(f"{name}: expected n_rows * n_unique_action = {n * K} values, got {x.size}")
            check_finite(x, name)
            mats[name] = x.reshape(n, K)
        sums = mats["evaluation_policy_action_dist"].sum(axis=1)
        if not np.allclose(sums, 1.0):
            i = int(np.argmax(~np.isclose(sums, 1.0)))
            raise ValueError(f"evaluation_policy_action_dist: each row's {K} values must sum to 1; row {i} sums to {sums[i]:.6g}")
        w = self._weights(rows, arrays)
        w_prev = np.ones(n)
        w_prev[1:] = w[:-1]
        w_prev[rows.position == 0] = 1.0
        q = mats["q_hat"]
        q_obs = q[np.arange(n), action]
        q_exp = np.einsum("ij,ij->i", mats["evaluation_policy_action_dist"], q)
        return [RoundTerms(num=rows.per_slate(w * (rows.reward - q_obs) + w_prev * q_exp))]


# --------------------------------------------------------------------------- helpers
def slate_long_format(**wide: Any) -> dict[str, np.ndarray]:
    """(n_slates, L[, K]) arrays -> OBP's long format: ``slate_id``, ``position`` and each array
    flattened row-major (slate then position). (n_slates,) arrays (a whole-slate pscore) are
    repeated on every row of their slate."""
    ref = next(v for v in wide.values() if v is not None and np.ndim(v) >= 2)
    n, L = np.shape(ref)[:2]
    out = {"slate_id": np.repeat(np.arange(n), L), "position": np.tile(np.arange(L), n)}
    for k, v in wide.items():
        if v is None:
            continue
        v = np.asarray(v)
        if v.shape == (n,):
            v = np.repeat(v, L)
        elif v.shape[:2] == (n, L):
            v = v.reshape((n * L, *v.shape[2:]))
        else:
            raise ValueError(f"{k}: expected shape ({n},) or ({n}, {L}, ...), got {v.shape}")
        out[k] = v
    return out


def estimate_all_slate(estimators: Sequence[BaseSlateEstimator], *, intervals: bool = True, alpha: float = 0.05,
                       n_bootstrap_samples: int = 1000, random_state: Any = None, method: str = "bootstrap",
                       **arrays: Any) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Every estimator on the same arrays: ({name: estimate}, {name: interval dict}). The rows are
    grouped once and the bootstrap resamples are shared by all estimators."""
    if not estimators:
        return {}, {}
    rows = estimators[0]._rows(arrays)
    parts = [e.parts(rows, **arrays) for e in estimators]
    names = [e.estimator_name for e in estimators]
    estimates = {name: sum_value(p) for name, p in zip(names, parts)}
    if not intervals:
        return estimates, {}
    ints = sum_intervals(parts, alpha=alpha, n_bootstrap_samples=n_bootstrap_samples,
                         random_state=random_state, method=method)
    return estimates, dict(zip(names, ints))
