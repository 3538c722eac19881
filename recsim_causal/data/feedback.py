"""LoggedFeedback: the logged-bandit-feedback schema (Open Bandit Pipeline's vocabulary).

One round i is (x_i, a_i, r_i, pi_b(a_i|x_i)) plus, when the simulator knows them, the
logger's whole distribution pi_b(.|x_i) and the oracle q(x_i, a) = E[r | x_i, do(a)].
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..io import to_jsonable
from .checks import as_float_array, as_int_array, check_finite

__all__ = ["LoggedFeedback", "SETTING_COLUMNS", "setting_of_columns"]

#: the column that marks a log of each setting; a log with neither holds one item per row.
SETTING_COLUMNS = {"session": "trajectory_id", "slate": "slate_id"}


def setting_of_columns(columns: Any) -> str:
    """The setting of a log with these columns: ``session``, ``slate`` or ``one_item``."""
    have = set(columns)
    return next((setting for setting, column in SETTING_COLUMNS.items() if column in have), "one_item")

_PSCORE_MATCH_RTOL = 1e-6
_PSCORE_MATCH_ATOL = 1e-9


@dataclass(eq=False, kw_only=True)
class LoggedFeedback:
    """Logged bandit feedback, validated on construction.

    Parameters
    ----------
    context: (n_rounds, dim_context) float
        Context x_i seen by the logger.
    action: (n_rounds,) int64
        Logged action a_i in [0, n_actions).
    reward: (n_rounds,) float
        Observed reward r_i.
    pscore: (n_rounds,) float
        Logger propensity pi_b(a_i | x_i), in (0, 1].
    n_actions: int
        Number of actions K.
    position: (n_rounds,) int64 or None
        Slot of the recommendation list where a_i was shown (0-based); None for one slot.
    action_dist: (n_rounds, K) or (n_rounds, K, L) float or None
        The logger's full distribution pi_b(. | x_i) (OBP calls it ``pi_b``). When given,
        ``pscore`` must equal it at the logged action (and position).
    expected_reward: (n_rounds, K) or (n_rounds, K, L) float or None
        The oracle q(x_i, a) = E[r | x_i, do(a)] from the SCM.
    action_context: (K, dim_action_context) float or None
        Features of each action (item), as OBP's ``action_context``.
    pscore_full: (n_rounds,) float or None
        Oracle column of a confounded simulation: the logger's propensity given everything
        it saw, pi_b(a_i | x_i, s_i), the privileged signal s_i included (``pscore`` is then
        P(a_i | x_i), the best a log without s allows).
    metadata: dict
        JSON-serializable facts about how the log was made: world config, logging policy,
        seed. Stored in the Parquet schema metadata.
    trajectory_id, step: (n_rounds,) int64 or None
        Sessions (trajectories): the session each row belongs to and the step's index in it
        (0-based); a session's rows are contiguous and in time order.
    terminated, truncated: (n_rounds,) bool or None
        Whether the session ended after this step because the user left (terminated) or the
        time budget ran out (truncated), Gymnasium's two done flags.
    t: (n_rounds,) int64 or None
        The world time of the round (decisions before it), in a world that changes with time
        (``scm.dynamics``): which state of the world the user met.
    slate_id, pscore_cascade, pscore_item_position: (n_rounds,) or None
        Slates in OBP's long format (one row per slate and position, a slate's rows contiguous
        and in position order): the slate each row belongs to, and the logger's propensities
        of the slate's items down to this row's position (cascade) and of this item at this
        position (item-position); ``pscore`` is then the whole slate's propensity.
    """

    context: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    n_actions: int
    position: np.ndarray | None = None
    action_dist: np.ndarray | None = None
    expected_reward: np.ndarray | None = None
    action_context: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    pscore_full: np.ndarray | None = None
    trajectory_id: np.ndarray | None = None
    step: np.ndarray | None = None
    terminated: np.ndarray | None = None
    truncated: np.ndarray | None = None
    t: np.ndarray | None = None
    slate_id: np.ndarray | None = None
    pscore_cascade: np.ndarray | None = None
    pscore_item_position: np.ndarray | None = None

    def __post_init__(self) -> None:
        p = "LoggedFeedback"
        if isinstance(self.n_actions, bool) or not isinstance(self.n_actions, (int, np.integer)):
            raise ValueError(f"{p}.n_actions: expected an int, got {type(self.n_actions).__name__}")
        self.n_actions = int(self.n_actions)
        if self.n_actions < 1:
            raise ValueError(f"{p}.n_actions: expected >= 1, got {self.n_actions}")
        K = self.n_actions

        self.action = as_int_array(self.action, f"{p}.action")
        if self.action.ndim != 1:
            raise ValueError(f"{p}.action: expected shape (n_rounds,), got {self.action.shape}")
        n = self.action.shape[0]

        def vec(x: Any, name: str) -> np.ndarray:
            arr = as_float_array(x, f"{p}.{name}")
            if arr.shape != (n,):
                raise ValueError(f"{p}.{name}: expected shape ({n},), got {arr.shape}")
            check_finite(arr, f"{p}.{name}")
            return arr

        self.reward = vec(self.reward, "reward")
        self.pscore = vec(self.pscore, "pscore")
        for name in ("pscore_full", "pscore_cascade", "pscore_item_position"):
            if getattr(self, name) is not None:
                setattr(self, name, vec(getattr(self, name), name))

        self.context = as_float_array(self.context, f"{p}.context")
        if self.context.ndim != 2 or self.context.shape[0] != n:
            raise ValueError(
                f"{p}.context: expected shape ({n}, dim_context), got {self.context.shape}"
            )
        check_finite(self.context, f"{p}.context")

        bad = (self.action < 0) | (self.action >= K)
        if bad.any():
            raise ValueError(
                f"{p}.action: values must be in [0, {K}) (n_actions={K}); "
                f"{int(bad.sum())} of {n} rows are outside (min {self.action.min()}, "
                f"max {self.action.max()})"
            )

        bad = ~(self.pscore > 0) | (self.pscore > 1 + 1e-9)
        if bad.any():
            raise ValueError(
                f"{p}.pscore: must be in (0, 1]; {int(bad.sum())} of {n} rows are outside "
                f"(min {self.pscore.min():.6g}, max {self.pscore.max():.6g})"
            )

        slots = None
        for name in ("action_dist", "expected_reward"):
            arr = getattr(self, name)
            if arr is None:
                continue
            arr = as_float_array(arr, f"{p}.{name}")
            if arr.ndim not in (2, 3) or arr.shape[:2] != (n, K):
                raise ValueError(
                    f"{p}.{name}: expected shape ({n}, {K}) or ({n}, {K}, len_list), "
                    f"got {arr.shape}"
                )
            check_finite(arr, f"{p}.{name}")
            setattr(self, name, arr)
            if arr.ndim == 3:
                slots = max(slots or 1, arr.shape[2])

        if self.position is not None:
            self.position = as_int_array(self.position, f"{p}.position")
            if self.position.shape != (n,):
                raise ValueError(f"{p}.position: expected shape ({n},), got {self.position.shape}")
            if n and self.position.min() < 0:
                raise ValueError(f"{p}.position: must be >= 0 (0-based), min is {self.position.min()}")
        for name in ("action_dist", "expected_reward"):
            arr = getattr(self, name)
            if arr is not None and arr.ndim == 3 and arr.shape[2] > 1:
                if self.position is None:
                    raise ValueError(f"{p}.position: required when {name} has len_list > 1")
                if n and self.position.max() >= arr.shape[2]:
                    raise ValueError(
                        f"{p}.position: values must be < {name}.shape[2]={arr.shape[2]}, "
                        f"max is {self.position.max()}"
                    )

        if self.action_dist is not None:
            self._check_logger_dist()

        if self.action_context is not None:
            self.action_context = as_float_array(self.action_context, f"{p}.action_context")
            if self.action_context.ndim != 2 or self.action_context.shape[0] != K:
                raise ValueError(
                    f"{p}.action_context: expected shape ({K}, dim_action_context), "
                    f"got {self.action_context.shape}"
                )
            check_finite(self.action_context, f"{p}.action_context")

        self._check_trajectories()

        if not isinstance(self.metadata, dict):
            raise ValueError(f"{p}.metadata: expected a dict, got {type(self.metadata).__name__}")
        try:
            json.dumps(to_jsonable(self.metadata, _where=f"{p}.metadata"))
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    def _check_trajectories(self) -> None:
        p, n = "LoggedFeedback", self.n_rounds
        for name in ("trajectory_id", "step", "t", "slate_id"):
            x = getattr(self, name)
            if x is None:
                continue
            x = as_int_array(x, f"{p}.{name}")
            if x.shape != (n,):
                raise ValueError(f"{p}.{name}: expected shape ({n},), got {x.shape}")
            if n and x.min() < 0:
                raise ValueError(f"{p}.{name}: must be >= 0, min is {x.min()}")
            setattr(self, name, x)
        for name in ("terminated", "truncated"):
            x = getattr(self, name)
            if x is None:
                continue
            x = np.asarray(x)
            if x.shape != (n,) or x.dtype.kind not in "bui":
                raise ValueError(f"{p}.{name}: expected booleans of shape ({n},), got {x.dtype} {x.shape}")
            setattr(self, name, x.astype(bool))
        if self.step is not None and self.trajectory_id is None:
            raise ValueError(f"{p}.step: given without trajectory_id")
        if self.slate_id is not None and self.position is None:
            raise ValueError(f"{p}.position: required with slate_id (the slot of each row)")
        for name in ("pscore_cascade", "pscore_item_position"):
            if getattr(self, name) is not None and self.slate_id is None:
                raise ValueError(f"{p}.{name}: given without slate_id")

    def _check_logger_dist(self) -> None:
        p = "LoggedFeedback"
        dist = self.action_dist
        n = self.n_rounds
        if dist.size and dist.min() < 0:
            raise ValueError(f"{p}.action_dist: probabilities must be >= 0, min is {dist.min():.6g}")
        sums = dist.sum(axis=1)
        off = ~np.isclose(sums, 1.0, rtol=1e-5, atol=1e-8)
        if off.any():
            rows = off.reshape(n, -1).any(axis=1)
            i = int(np.argmax(rows))
            raise ValueError(
                f"{p}.action_dist: each row must sum to 1 over actions; {int(rows.sum())} of "
                f"{n} rows do not (row {i} sums to {np.ravel(sums[i])[0]:.6g})"
            )
        at = self._at_logged(dist)
        bad = ~np.isclose(self.pscore, at, rtol=_PSCORE_MATCH_RTOL, atol=_PSCORE_MATCH_ATOL)
        if bad.any():
            raise ValueError(
                f"{p}.pscore: must equal action_dist at the logged action; differs in "
                f"{int(bad.sum())} of {n} rows (max abs diff {np.abs(self.pscore - at).max():.3g})"
            )

    def _at_logged(self, arr: np.ndarray) -> np.ndarray:
        """arr[i, a_i] or arr[i, a_i, position_i]."""
        rows = np.arange(self.n_rounds)
        if arr.ndim == 2:
            return arr[rows, self.action]
        pos = self.position if self.position is not None else np.zeros(self.n_rounds, np.int64)
        return arr[rows, self.action, pos]

    # ------------------------------------------------------------------ properties
    @property
    def n_rounds(self) -> int:
        """Number of logged rounds n."""
        return int(self.action.shape[0])

    @property
    def setting(self) -> str:
        """``session`` (rows with ``trajectory_id``), ``slate`` (rows with ``slate_id``) or
        ``one_item``: how the log is evaluated."""
        return setting_of_columns(c for c in SETTING_COLUMNS.values() if getattr(self, c) is not None)

    @property
    def dim_context(self) -> int:
        """Dimension of the context vectors."""
        return int(self.context.shape[1])

    @property
    def len_list(self) -> int:
        """Number of slots: 1 without positions, else max(position) + 1 (or the arrays' L)."""
        ls = [1]
        if self.position is not None and self.n_rounds:
            ls.append(int(self.position.max()) + 1)
        for arr in (self.action_dist, self.expected_reward):
            if arr is not None and arr.ndim == 3:
                ls.append(arr.shape[2])
        return max(ls)

    # ------------------------------------------------------------------ helpers
    def ope_arrays(self) -> dict[str, np.ndarray | None]:
        """Keyword arrays for the OPE estimators: reward, action, pscore, position, pi_b.

        ``pi_b`` (the logger's distribution) lets the estimators detect support violations.
        Add the target's ``action_dist`` and ``estimated_rewards_by_reg_model`` yourself.
        """
        return dict(
            reward=self.reward,
            action=self.action,
            pscore=self.pscore,
            position=self.position,
            pi_b=self.action_dist,
        )

    def subset(self, index: np.ndarray | slice) -> LoggedFeedback:
        """The rounds selected by ``index`` (a slice, an index array or a boolean mask)."""

        def take(x: np.ndarray | None) -> np.ndarray | None:
            return None if x is None else x[index]

        return LoggedFeedback(
            context=self.context[index],
            action=self.action[index],
            reward=self.reward[index],
            pscore=self.pscore[index],
            n_actions=self.n_actions,
            position=take(self.position),
            action_dist=take(self.action_dist),
            expected_reward=take(self.expected_reward),
            action_context=self.action_context,
            metadata=dict(self.metadata),
            pscore_full=take(self.pscore_full),
            trajectory_id=take(self.trajectory_id),
            step=take(self.step),
            terminated=take(self.terminated),
            truncated=take(self.truncated),
            t=take(self.t),
            slate_id=take(self.slate_id),
            pscore_cascade=take(self.pscore_cascade),
            pscore_item_position=take(self.pscore_item_position),
        )

    def __repr__(self) -> str:
        extras = [
            name
            for name in ("position", "action_dist", "expected_reward", "action_context", "trajectory_id", "slate_id")
            if getattr(self, name) is not None
        ]
        return (
            f"LoggedFeedback(n_rounds={self.n_rounds}, n_actions={self.n_actions}, "
            f"dim_context={self.dim_context}, with={extras}, metadata_keys={sorted(self.metadata)})"
        )
