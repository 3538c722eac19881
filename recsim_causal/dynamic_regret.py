"""Regret in a world that changes: against the moving oracle, after each change, on new items.

The online runner's regret is already dynamic: at every decision it is max_a E[r | x, do(a)]
minus E[r | x, do(chosen)] in the world of that decision's time (``scm.dynamics``), so the
oracle moves with the world. :class:`DynamicRegret` adds what a changing world asks:

* ``change_points``: the world's abrupt changes within the run (shift jumps, schedule points,
  catalogue churn);
* ``recovery_regret``: for each change point, the regret of the ``recovery_window`` decisions
  after it (how much the change cost before the agent caught up), and ``recovery_baseline``,
  the regret of as many decisions just before it;
* ``new_item_regret``: where items arrive (churn), the regret of the decisions that showed a new
  item during its first ``new_item_impressions`` impressions (cold start), with the number of
  such impressions and their mean regret.

With slates the regret of a decision is the slate's (the best slate's expected reward minus
the chosen one's), and a slate shows each of its items once: a decision counts toward the new
items' regret when one of its new items is within its first impressions (once per decision).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Impressions of a new item counted as its cold start.
NEW_ITEM_IMPRESSIONS = 1000


class DynamicRegret:
    """Accumulates per-decision regret by time and item; ``summary()`` gives the fields above.

    Args:
        world: the World (its ``change_points`` and, under churn, ``catalog_at``).
        horizon: the decisions the run will make (change points up to it).
        recovery_window: decisions after a change point counted as its recovery (default:
            10,000, or the shortest gap between changes when shorter).
    """

    def __init__(self, world: Any, horizon: int, recovery_window: int | None = None,
                 new_item_impressions: int = NEW_ITEM_IMPRESSIONS):
        self.world = world
        self.change_points = [int(c) for c in world.change_points(int(horizon))]
        gaps = np.diff([0, *self.change_points])
        self.window = int(recovery_window or max(1, min(10_000, int(gaps.min()) if len(gaps) else 10_000)))
        self.recovery = np.zeros(len(self.change_points))
        self.before = np.zeros(len(self.change_points))
        self.churn = getattr(world.dynamics, "churn", None) is not None
        self.n_base = world.n_items
        self.new_item_impressions = int(new_item_impressions)
        self._shown: dict[int, int] = {}  # new item id -> impressions so far
        self.new_item_regret = 0.0
        self.new_item_rows = 0
        self.last_t = -1  # the latest world time met: later change points did not happen in the run

    def add(self, t: np.ndarray, actions: np.ndarray, regret: np.ndarray) -> None:
        """Decisions at times ``t`` (n,) that chose ``actions`` (n,), or slates (n, L), with ``regret`` (n,)."""
        t = np.asarray(t, dtype=np.int64)
        regret = np.asarray(regret, dtype=np.float64)
        if not len(t):
            return
        self.last_t = max(self.last_t, int(t.max()))
        for i, cp in enumerate(self.change_points):
            after = (t >= cp) & (t < cp + self.window)
            before = (t >= cp - self.window) & (t < cp)
            self.recovery[i] += regret[after].sum()
            self.before[i] += regret[before].sum()
        if self.churn:
            self._new_items(t, np.asarray(actions, dtype=np.int64), regret)

    def _new_items(self, t: np.ndarray, actions: np.ndarray, regret: np.ndarray) -> None:
        slates = actions.reshape(len(actions), -1)  # one item per decision: slates of one
        for time in np.unique(t):
            rows = np.flatnonzero(t == time)
            ids = self.world.catalog_at(int(time)).item_id[slates[rows]]  # (r, L)
            hit = np.flatnonzero((ids >= self.n_base).any(axis=1))
            for j, items in zip(rows[hit], ids[hit].tolist()):  # in order: an item's first impressions count
                cold = False
                for item in items:
                    if item >= self.n_base:
                        seen = self._shown.get(item, 0)
                        cold |= seen < self.new_item_impressions
                        self._shown[item] = seen + 1
                if cold:
                    self.new_item_regret += regret[j]
                    self.new_item_rows += 1

    def summary(self) -> dict[str, Any]:
        met = [i for i, cp in enumerate(self.change_points) if cp <= self.last_t]
        out: dict[str, Any] = {
            "change_points": [self.change_points[i] for i in met],
            "recovery_window": self.window,
            "recovery_regret": self.recovery[met].tolist(),
            "recovery_baseline": self.before[met].tolist(),
        }
        if self.churn:
            out.update(new_item_regret=self.new_item_regret, new_item_impressions=self.new_item_rows,
                       new_item_mean_regret=self.new_item_regret / self.new_item_rows if self.new_item_rows else None,
                       new_items_shown=len(self._shown), new_item_window=self.new_item_impressions)
        return out
