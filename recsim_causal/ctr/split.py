"""Held-out sets for click models: later rounds (warm test) and items never trained on (cold start)."""

from __future__ import annotations

import numpy as np

__all__ = ["cold_start_split"]


def cold_start_split(action: np.ndarray, n_actions: int, *, test_fraction: float, cold_fraction: float,
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Split logged rounds (in time order) into train / warm / cold row indices.

    ``cold_items``: round(cold_fraction * K) items drawn at random; every row that shows one
    of them, in any round, is in ``cold`` (cold-start test) and never in ``train``. The other
    rows: the last ``test_fraction`` of the rounds are ``warm`` (warm test), the earlier ones
    ``train``. Returns {"train", "warm", "cold", "cold_items"}, index arrays.
    """
    action = np.asarray(action)
    if not 0 < test_fraction < 1:
        raise ValueError(f"experiment.test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    if not 0 <= cold_fraction < 1:
        raise ValueError(f"experiment.cold_fraction: expected a number in [0, 1), got {cold_fraction!r}")
    n = action.shape[0]
    cold_items = np.sort(rng.permutation(n_actions)[: int(round(cold_fraction * n_actions))])
    is_cold = np.isin(action, cold_items)
    later = np.arange(n) >= n - int(round(test_fraction * n))
    return {"train": np.flatnonzero(~is_cold & ~later), "warm": np.flatnonzero(~is_cold & later),
            "cold": np.flatnonzero(is_cold), "cold_items": cold_items}
